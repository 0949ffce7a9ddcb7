//! Why a request could not be served ([`ApiError`]), and the one mapping
//! of those reasons to what a client sees on the wire
//! ([`ApiError::to_wire`]), which logs the daemon's own faults instead of
//! detailing them.

use crate::engine::admission;
use crate::proto::{ErrorKind, JobId, JobState, WireError};
use crate::queue::QueueError;

/// Why a request could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no such job: {0}")]
    NotFound(JobId),
    #[error("no such folder: {0}")]
    NoFolder(crate::folder::FolderId),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    BadInput(String),
    #[error("daemon is shutting down")]
    ShuttingDown,
    /// `request` (cancel, retry) of a job that had already ended, in
    /// `state`, with nothing left for the request to do.
    #[error("job {job} had already {}: nothing to {request}", ended(*.state))]
    AlreadyEnded {
        job: JobId,
        state: JobState,
        request: &'static str,
    },
    /// The client may not do this (pause the daemon, say).
    #[error("{0}")]
    Forbidden(String),
    /// The queue is full, for everyone or for this user.
    #[error("{0}")]
    Busy(String),
    /// The daemon is at fault (its configuration, a bug); logged.
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// How a job in a final `state` ended, after "had already": `succeeded`,
/// `failed`, `ended partial`, `been cancelled`.
fn ended(state: JobState) -> &'static str {
    match state {
        JobState::Partial => "ended partial",
        JobState::Cancelled => "been cancelled",
        other => other.as_str(),
    }
}

impl From<admission::Rejection> for ApiError {
    fn from(rejection: admission::Rejection) -> Self {
        if rejection.is_bad_input() {
            ApiError::BadInput(rejection.to_string())
        } else {
            ApiError::Invalid(rejection.to_string())
        }
    }
}

impl ApiError {
    /// The error as a client sees it: the one mapping from internal errors
    /// to the wire. Store failures are logged here and not detailed.
    pub fn to_wire(&self) -> WireError {
        let kind = match self {
            ApiError::NotFound(_) | ApiError::NoFolder(_) => ErrorKind::NotFound,
            ApiError::Invalid(_) => ErrorKind::InvalidRequest,
            ApiError::BadInput(_) => ErrorKind::BadInput,
            ApiError::ShuttingDown => ErrorKind::ShuttingDown,
            ApiError::AlreadyEnded { .. } => ErrorKind::Ended,
            ApiError::Forbidden(_) => ErrorKind::PermissionDenied,
            ApiError::Busy(_) => ErrorKind::Busy,
            ApiError::Internal(message) => {
                log::error!("{message}");
                ErrorKind::Internal
            }
            ApiError::Queue(err @ QueueError::Unavailable(_)) => {
                log::warn!("{err}");
                return WireError {
                    kind: ErrorKind::Unavailable,
                    message: format!("vidvard: {err}; try again later"),
                };
            }
            ApiError::Queue(err) => {
                log::error!("{err}");
                return WireError {
                    kind: ErrorKind::Internal,
                    message: "internal error in the daemon's database; see its log".into(),
                };
            }
        };
        WireError {
            kind,
            message: self.to_string(),
        }
    }
}
