//! Watch folders in domain terms (pure): what a folder is set up with
//! ([`FolderSpec`], as `vidvarctl folder add` gives it and the queue stores
//! it), what is done with an input once its job ended ([`AfterAction`],
//! [`FailedAction`]), which names are never taken ([`ignored_name`]), when
//! two directories would feed each other ([`nested`]), and which file a
//! ledger entry means ([`FileKey`]). It touches no file system and no
//! database: the watcher (`engine::watch`) and the queue apply these rules.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A folder's id in the queue.
pub type FolderId = i64;

/// Most folders one user other than root and the daemon's user may have.
pub const MAX_FOLDERS_PER_USER: u64 = 64;
/// `--settle` when not given, seconds.
pub const DEFAULT_SETTLE_SECS: u32 = 10;
/// `--poll` when not given, seconds.
pub const DEFAULT_POLL_SECS: u32 = 60;
/// Longest `--settle` and `--poll`, seconds (one day).
pub const MAX_INTERVAL_SECS: u32 = 86_400;
/// The label every job of folder `id` carries besides the folder's own.
pub fn folder_label(id: FolderId) -> String {
    format!("folder:{id}")
}

/// What is done with an input whose job succeeded (`--after`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterAction {
    /// Leave it where it is.
    Keep,
    /// Remove it (only once every variation of it succeeded).
    Delete,
    /// Move it into this directory (absolute).
    Move(PathBuf),
}

/// What is done with an input whose job failed or was partial
/// (`--failed`); nothing is ever deleted then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailedAction {
    Keep,
    Move(PathBuf),
}

/// Why an action's text cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("{0:?} is not an action (keep, delete or move:DIR)")]
    Unknown(String),
    #[error("{0:?} is not an action for a failed job (keep or move:DIR)")]
    NotForFailed(String),
    #[error("move: needs a directory (move:DIR)")]
    EmptyMove,
}

impl AfterAction {
    /// `keep`, `delete` or `move:DIR`, as `--after` takes it and the queue
    /// stores it.
    ///
    /// Errors: [`ActionError`] naming the text.
    pub fn parse(text: &str) -> Result<AfterAction, ActionError> {
        match text {
            "keep" => Ok(AfterAction::Keep),
            "delete" => Ok(AfterAction::Delete),
            _ => match text.strip_prefix("move:") {
                Some("") => Err(ActionError::EmptyMove),
                Some(dir) => Ok(AfterAction::Move(dir.into())),
                None => Err(ActionError::Unknown(text.into())),
            },
        }
    }

    /// The directory it moves into, if it moves.
    pub fn move_dir(&self) -> Option<&Path> {
        match self {
            AfterAction::Move(dir) => Some(dir),
            _ => None,
        }
    }
}

impl FailedAction {
    /// `keep` or `move:DIR`.
    ///
    /// Errors: [`ActionError`]; `delete` is refused.
    pub fn parse(text: &str) -> Result<FailedAction, ActionError> {
        match AfterAction::parse(text)? {
            AfterAction::Keep => Ok(FailedAction::Keep),
            AfterAction::Move(dir) => Ok(FailedAction::Move(dir)),
            AfterAction::Delete => Err(ActionError::NotForFailed(text.into())),
        }
    }

    /// The directory it moves into, if it moves.
    pub fn move_dir(&self) -> Option<&Path> {
        match self {
            FailedAction::Move(dir) => Some(dir),
            FailedAction::Keep => None,
        }
    }
}

impl std::fmt::Display for AfterAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AfterAction::Keep => f.write_str("keep"),
            AfterAction::Delete => f.write_str("delete"),
            AfterAction::Move(dir) => write!(f, "move:{}", dir.display()),
        }
    }
}

impl std::fmt::Display for FailedAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailedAction::Keep => f.write_str("keep"),
            FailedAction::Move(dir) => write!(f, "move:{}", dir.display()),
        }
    }
}

/// A watch folder as set up: every settled file in `dir` becomes one job
/// of `variations` variations into `output_dir`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FolderSpec {
    /// The directory watched, absolute.
    pub dir: PathBuf,
    /// Where the outputs go, absolute.
    pub output_dir: PathBuf,
    /// Variations per file, 1..=1000 (the protocol's `MAX_VARIATIONS`).
    pub variations: u32,
    /// Priority of its jobs.
    pub priority: i32,
    /// Labels of its jobs (besides [`folder_label`]), at most
    /// `MAX_LABELS - 1`.
    pub labels: Vec<String>,
    /// Seconds a file's size and mtime must stay the same before it is
    /// taken, 1..=[`MAX_INTERVAL_SECS`].
    pub settle_secs: u32,
    /// Seconds between rescans of the folder, 1..=[`MAX_INTERVAL_SECS`].
    pub poll_secs: u32,
    /// No inotify watch: found by the rescans only (network file systems).
    pub poll_only: bool,
    /// Files in subdirectories too.
    pub recursive: bool,
    pub after: AfterAction,
    pub failed: FailedAction,
}

/// Which file a ledger entry means: its identity and content as stat(2)
/// saw it when it was taken. A file whose inode, size or mtime differs is
/// another file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    /// Bytes.
    pub size: u64,
    /// Nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

/// Partial-download suffixes that are never taken (browsers, curl, editors).
pub const PARTIAL_SUFFIXES: [&str; 4] = [".part", ".crdownload", ".tmp", "~"];

/// Whether a file of this name is never taken: hidden (vidvar's own
/// temporary files are hidden too) or a partial download.
pub fn ignored_name(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') || PARTIAL_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// Whether one of two directories (real paths, absolute) is the other or
/// inside it: outputs written to one would be found in the other.
pub fn nested(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Whether a file last seen changing at `since` (seconds on any monotonic
/// clock) has settled at `now` for a settle time of `settle_secs`.
pub fn settled(since: f64, now: f64, settle_secs: u32) -> bool {
    now - since >= f64::from(settle_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn actions_read_and_print_alike() {
        for text in ["keep", "delete", "move:/srv/done"] {
            assert_eq!(AfterAction::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            FailedAction::parse("move:/x").unwrap(),
            FailedAction::Move("/x".into())
        );
        assert_eq!(
            FailedAction::parse("delete"),
            Err(ActionError::NotForFailed("delete".into()))
        );
        assert_eq!(AfterAction::parse("move:"), Err(ActionError::EmptyMove));
        assert!(matches!(
            AfterAction::parse("remove"),
            Err(ActionError::Unknown(_))
        ));
    }

    #[test]
    fn hidden_and_partial_names_are_ignored() {
        for name in [
            ".x.mp4",
            "a.mp4.part",
            "a.crdownload",
            "a.tmp",
            "a.mp4~",
            ".clip_v01.vidvar-3-1.part",
        ] {
            assert!(ignored_name(OsStr::new(name)), "{name}");
        }
        for name in ["a.mp4", "part.mp4", "a.tmp.mp4"] {
            assert!(!ignored_name(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn nesting_is_either_way_and_by_component() {
        assert!(nested(Path::new("/a"), Path::new("/a/out")));
        assert!(nested(Path::new("/a/out"), Path::new("/a")));
        assert!(nested(Path::new("/a"), Path::new("/a")));
        assert!(!nested(Path::new("/a"), Path::new("/ab")));
    }

    #[test]
    fn settling_counts_from_the_last_change() {
        assert!(!settled(10.0, 11.9, 2));
        assert!(settled(10.0, 12.0, 2));
    }
}
