//! The crate's error type.

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PlaceError {
    /// No host can take the VM now (or ever, when the message says so).
    #[error("no capacity: {0}")]
    NoCapacity(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("configuration: {0}")]
    Config(String),
    /// A learned model that cannot be saved, read or used (RL agents).
    #[error("model: {0}")]
    Model(String),
}

pub type Result<T, E = PlaceError> = std::result::Result<T, E>;
