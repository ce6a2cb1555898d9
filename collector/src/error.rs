//! The collector's one error type. Every variant names the sensor, and where
//! there is one the file, so a log line or metric label says what to fix.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{sensor}: cannot read {}: {source}", path.display())]
    Io {
        sensor: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{sensor}: permission denied on {}: {hint}", path.display())]
    PermissionDenied { sensor: &'static str, path: PathBuf, hint: String },
    #[error("{sensor}: malformed {}: {msg}", path.display())]
    Parse { sensor: &'static str, path: PathBuf, msg: String },
    #[error("{sensor}: not available: {reason}")]
    NotAvailable { sensor: &'static str, reason: String },
    /// A native library or syscall failed (NVML, perf_event_open).
    #[error("{sensor}: {msg}")]
    Device { sensor: &'static str, msg: String },
    #[error("configuration {}: {msg}", path.display())]
    Config { path: PathBuf, msg: String },
    #[error("spool {}: {msg}", path.display())]
    Spool { path: PathBuf, msg: String },
}

impl Error {
    /// Wraps an IO error, turning EACCES/EPERM into [`Error::PermissionDenied`]
    /// with a generic hint; sensors with a better hint build that variant themselves.
    pub fn io(sensor: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            return Error::PermissionDenied { sensor, path, hint: "run the agent as root or grant read access".into() };
        }
        Error::Io { sensor, path, source }
    }

    pub fn parse(sensor: &'static str, path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Parse { sensor, path: path.into(), msg: msg.into() }
    }

    /// The sensor this error belongs to, for the `sensor` metric label.
    pub fn sensor(&self) -> &'static str {
        match self {
            Error::Io { sensor, .. }
            | Error::PermissionDenied { sensor, .. }
            | Error::Parse { sensor, .. }
            | Error::NotAvailable { sensor, .. }
            | Error::Device { sensor, .. } => sensor,
            Error::Config { .. } => "config",
            Error::Spool { .. } => "spool",
        }
    }

    /// True when the thing simply is not there (as opposed to failing).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
            || matches!(self, Error::NotAvailable { .. })
    }
}
