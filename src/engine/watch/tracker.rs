//! Which files of one folder are settling, and which are done with (pure):
//! a file is due once its [`FileKey`] (identity, size, mtime) has stayed
//! the same for the settle time since it was last seen changing (issue
//! "Complete files only"). It only counts; looking at files is
//! [`super::scan`]'s, taking them the watcher's.

use crate::folder::FileKey;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A file being settled: as last seen, and since when unchanged.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seen {
    key: FileKey,
    since: Instant,
}

/// The settle state of one folder's files, by path.
#[derive(Debug, Default)]
pub struct Tracker {
    settling: HashMap<PathBuf, Seen>,
    /// Files taken (or refused, or found taken before) as they were: never
    /// settled again until they change.
    done: HashSet<FileKey>,
}

impl Tracker {
    /// `path` was seen as `key` at `now`: settling starts, or starts over
    /// when the file changed since it was last seen.
    pub fn observe(&mut self, path: &Path, key: FileKey, now: Instant) {
        if self.done.contains(&key) {
            self.settling.remove(path);
            return;
        }
        match self.settling.get(path) {
            Some(seen) if seen.key == key => {}
            _ => {
                self.settling
                    .insert(path.to_path_buf(), Seen { key, since: now });
            }
        }
    }

    /// `path` is gone, or no longer a file to take.
    pub fn forget(&mut self, path: &Path) {
        self.settling.remove(path);
    }

    /// The paths being settled.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.settling.keys().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.settling.is_empty()
    }

    /// The files unchanged for `settle` by `now`, with their keys.
    pub fn settled(&self, now: Instant, settle: Duration) -> Vec<(PathBuf, FileKey)> {
        self.settling
            .iter()
            .filter(|(_, seen)| now.duration_since(seen.since) >= settle)
            .map(|(path, seen)| (path.clone(), seen.key))
            .collect()
    }

    /// Done with `path` as `key` (taken, refused, or taken before).
    pub fn finish(&mut self, path: &Path, key: FileKey) {
        self.settling.remove(path);
        self.done.insert(key);
    }

    /// Settle `path` again from `now` (its take must be tried later).
    pub fn restart(&mut self, path: &Path, now: Instant) {
        if let Some(seen) = self.settling.get_mut(path) {
            seen.since = now;
        }
    }

    /// After a full scan that found `present`: forget the done files that
    /// are gone, so that memory follows the folder.
    pub fn keep_done(&mut self, present: &HashSet<FileKey>) {
        self.done.retain(|key| present.contains(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(size: u64, mtime_ns: i64) -> FileKey {
        FileKey {
            dev: 1,
            ino: 2,
            size,
            mtime_ns,
        }
    }

    #[test]
    fn a_growing_file_is_never_due_and_a_quiet_one_is() {
        let settle = Duration::from_secs(2);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut tracker = Tracker::default();
        let path = Path::new("/in/a.mp4");
        for (i, ms) in [0, 1500, 3000, 4500].into_iter().enumerate() {
            tracker.observe(path, key(i as u64, i as i64), at(ms));
            assert!(tracker.settled(at(ms + 1999), settle).is_empty());
        }
        tracker.observe(path, key(3, 3), at(6000));
        assert!(
            tracker.settled(at(6499), settle).is_empty(),
            "2 s after the last change"
        );
        assert_eq!(
            tracker.settled(at(6500), settle),
            [(path.into(), key(3, 3))]
        );
    }

    #[test]
    fn a_finished_file_is_not_settled_again_under_another_name() {
        let now = Instant::now();
        let mut tracker = Tracker::default();
        tracker.observe(Path::new("/in/a.mp4"), key(1, 1), now);
        tracker.finish(Path::new("/in/a.mp4"), key(1, 1));
        tracker.observe(Path::new("/in/b.mp4"), key(1, 1), now);
        assert!(tracker.is_empty(), "renamed, same file");
        tracker.observe(Path::new("/in/b.mp4"), key(2, 2), now);
        assert_eq!(tracker.paths(), [PathBuf::from("/in/b.mp4")], "changed");
        tracker.keep_done(&HashSet::new());
        tracker.observe(Path::new("/in/c.mp4"), key(1, 1), now);
        assert_eq!(tracker.paths().len(), 2, "forgotten once gone");
    }
}
