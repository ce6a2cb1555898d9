//! The crate's one error type; each variant maps to an HTTP status and a
//! JSON body `{"error": KIND, "message": TEXT}` that names the problem.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or breaks a rule; the message says which.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with the stored state (e.g. an issued invoice).
    #[error("{0}")]
    Conflict(String),
    #[error("missing or unknown API key")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The database cannot be reached: clients should retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("configuration: {0}")]
    Config(String),
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    fn kind(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::TooLarge { .. } => "payload_too_large",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Database(_) => "database",
            ApiError::Config(_) => "config",
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            // Connection-level failures: the store is down or restarting.
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => {
                ApiError::Unavailable(e.to_string())
            }
            other => ApiError::Database(other.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for ApiError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        ApiError::Database(format!("migration failed: {e}"))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Database(_) | ApiError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unavailable(_)) {
            r.insert_header(("Retry-After", "5"));
        }
        r.json(serde_json::json!({ "error": self.kind(), "message": self.to_string() }))
    }
}
