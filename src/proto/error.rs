//! What went wrong, as a client sees it: a message and its class
//! ([`ErrorKind`]), which clients map to an exit status.

use serde::{Deserialize, Serialize};

/// What went wrong, as the client sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    pub kind: ErrorKind,
    /// One sentence for a person, e.g. "no such job: 7".
    pub message: String,
}

/// Class of a [`WireError`]; clients map it to an exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is malformed or its values are out of range.
    InvalidRequest,
    /// The job (or watch folder) does not exist, or is another user's.
    NotFound,
    /// An input path does not exist or is not a regular file.
    BadInput,
    /// Client and daemon speak different protocol versions.
    VersionMismatch,
    /// The daemon is stopping and takes no new work.
    ShuttingDown,
    /// Too many connections are open (in all, or of this user).
    Busy,
    /// The daemon failed (database, I/O); details are in its log.
    Internal,
    /// The daemon cannot reach its shared queue's database now.
    Unavailable,
    /// The client may not do this: pausing the daemon is for root and the
    /// daemon's own user.
    PermissionDenied,
    /// Nothing to do: the job had already ended (succeeded, partial,
    /// failed or cancelled) when it was asked to be cancelled, or had
    /// succeeded when it was asked to be retried (a retry of a job a
    /// cancel is still stopping is an [`ErrorKind::InvalidRequest`]).
    Ended,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WireError {}
