//! Why a queue operation failed ([`QueueError`]): the backend's own error
//! kept as the source, a queue that has shut down, or a shared queue's
//! database out of reach for now; and the [`Result`] of every operation.

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The backend failed (a database error, I/O); the source says how.
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync>),
    /// The queue has shut down and takes no more calls.
    #[error("the job queue has shut down")]
    Closed,
    /// The database of a shared queue cannot be reached now (down,
    /// restarting, cut off); the call may succeed later.
    #[error("the job queue's database cannot be reached: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The result of a queue operation.
pub type Result<T> = std::result::Result<T, QueueError>;
