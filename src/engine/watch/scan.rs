//! Looking at a folder's files (blocking: run it on a blocking thread, as
//! a network mount may hang): a full scan of the folder, and the current
//! [`FileKey`] of a file being settled. Only regular files (a symlink is
//! followed, and judged when taken) with names that are not
//! [`ignored_name`]s count; subdirectories are listed when recursive (never
//! through a symlink, at most [`MAX_DEPTH`] deep). It decides nothing.

use crate::access::vetted::{self, AccessError};
use crate::access::{Judge, Want};
use crate::folder::{FileKey, ignored_name};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Deepest subdirectory a recursive folder is scanned in (the folder is 0).
pub const MAX_DEPTH: usize = 16;

/// What a full scan found.
#[derive(Debug, Default)]
pub struct Found {
    /// Files to settle, with their keys now.
    pub files: Vec<(PathBuf, FileKey)>,
    /// The directories scanned (the folder first), for inotify watches.
    pub dirs: Vec<PathBuf>,
}

/// The key of the file at `path` now (a symlink followed), if it is a
/// regular file with a name that is taken.
pub fn key_of(path: &Path) -> Option<FileKey> {
    if path.file_name().is_none_or(ignored_name) {
        return None;
    }
    let meta = std::fs::metadata(path).ok()?;
    meta.is_file().then(|| FileKey {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
    })
}

/// Scan the folder `dir`, listed as its owner would (`judge`: read and
/// search permission, judged anew each time), with its subdirectories when
/// `recursive`. A subdirectory that cannot be read is passed over.
///
/// Errors: [`AccessError`] when the folder itself cannot be listed.
pub fn scan(dir: &Path, recursive: bool, judge: &Judge) -> Result<Found, AccessError> {
    vetted::vet(dir, judge, Want::List)?;
    let mut found = Found::default();
    let mut pending = vec![(dir.to_path_buf(), 0)];
    while let Some((at, depth)) = pending.pop() {
        let entries = match std::fs::read_dir(&at) {
            Ok(entries) => entries,
            Err(err) if depth == 0 => {
                return Err(AccessError::Io {
                    path: at,
                    source: err,
                });
            }
            Err(_) => continue,
        };
        found.dirs.push(at);
        for entry in entries.flatten() {
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir {
                if recursive && depth < MAX_DEPTH && !ignored_name(&entry.file_name()) {
                    pending.push((path, depth + 1));
                }
            } else if let Some(key) = key_of(&path) {
                found.files.push((path, key));
            }
        }
    }
    Ok(found)
}
