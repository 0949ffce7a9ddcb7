//! A watch folder as a client sees it (`vidvarctl folder list`, `show`).

use super::{FolderId, FolderSpec};
use serde::{Deserialize, Serialize};

/// A watch folder as `vidvarctl folder list` and `show` give it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FolderInfo {
    pub id: FolderId,
    /// As added, with its directories' real paths.
    pub spec: FolderSpec,
    /// Uid of the user it belongs to: its jobs are theirs.
    pub owner_uid: u32,
    /// Paused by `vidvarctl folder pause`.
    pub paused: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// The node that scans it now (shared queue only).
    pub node: Option<String>,
    /// Files taken from it so far, each as one job.
    pub taken: u64,
}
