//! The attribution crate's one error type.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot fit a {method} model: {msg}")]
    Fit { method: &'static str, msg: String },
    #[error("interval {seq} of host {host} is invalid: {msg}")]
    BadRecord { host: String, seq: u64, msg: String },
    #[error("interval {seq} of host {host} belongs to another host than this attributor's ({expected})")]
    WrongHost { host: String, seq: u64, expected: String },
    #[error("interval {seq} of host {host} does not come after interval {last} (already attributed)")]
    OutOfOrder { host: String, seq: u64, last: u64 },
    #[error("invalid parameter: {0}")]
    Param(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
