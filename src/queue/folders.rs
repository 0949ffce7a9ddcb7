//! Watch folders as the queue stores them: a folder to add, a stored
//! folder, a file it takes, and a taken file whose job ended. Plain data:
//! the rules of folders are [`crate::folder`]'s, the scanning the
//! engine's.

use crate::folder::{FileKey, FolderId, FolderSpec};
use crate::job::{Credentials, JobState};
use std::path::PathBuf;

/// A watch folder to store.
#[derive(Debug, Clone)]
pub struct NewFolder {
    /// As set up, its directories by their real paths (as vetted).
    pub spec: FolderSpec,
    /// The client that added it: its jobs are this user's.
    pub owner: Credentials,
    /// Unix seconds.
    pub created_at: i64,
}

/// A stored watch folder.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderRow {
    pub id: FolderId,
    pub spec: FolderSpec,
    pub owner: Credentials,
    /// Paused by its owner: not scanned, nothing taken.
    pub paused: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// The node that scans it now (shared queue only).
    pub node: Option<String>,
    /// Files taken from it so far (ledger entries with a job).
    pub taken: u64,
}

/// A file a folder takes: which file ([`FileKey`]) and where it was found.
#[derive(Debug, Clone, PartialEq)]
pub struct TakenFile {
    pub folder: FolderId,
    pub key: FileKey,
    /// Its real path when it was taken.
    pub path: PathBuf,
}

/// A taken file whose job ended, its after-action not yet done.
#[derive(Debug, Clone, PartialEq)]
pub struct EndedFile {
    pub file: TakenFile,
    /// How its job ended; `None` when the job's record was pruned first.
    pub state: Option<JobState>,
}
