//! inotify(7) for one folder: watches on its directories, and their events
//! as the paths they name. An event only wakes the watcher early (a file
//! is settled by its size and mtime, never by an event), so a lost event
//! costs nothing but time: the folder's rescans find everything anyway.
//! It judges nothing and takes nothing.

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use tokio::io::unix::AsyncFd;

/// Why inotify cannot serve a folder; the watcher then polls.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot start inotify: {0} (fs.inotify.max_user_instances)")]
    Init(#[source] Errno),
    #[error("no inotify watch left for {} (fs.inotify.max_user_watches)", dir.display())]
    NoWatchLeft { dir: PathBuf },
    #[error("cannot watch {} with inotify: {source}", dir.display())]
    Watch {
        dir: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("cannot read inotify events: {0}")]
    Read(#[source] std::io::Error),
}

/// What an event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A file was created, written and closed, or moved in: look at it.
    File(PathBuf),
    /// A directory appeared (or events were lost): scan the folder.
    Rescan,
}

/// The events that wake the watcher: a file written and closed, moved in,
/// or created (inotify(7)).
fn mask() -> AddWatchFlags {
    AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_ONLYDIR
}

/// An inotify instance as tokio's reactor takes it.
struct Instance(Inotify);

impl AsRawFd for Instance {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// One inotify instance with the watches of one folder's directories.
pub struct Notifier {
    fd: AsyncFd<Instance>,
    dirs: HashMap<WatchDescriptor, PathBuf>,
}

impl Notifier {
    /// A new instance, with no watch yet.
    ///
    /// Errors: [`NotifyError::Init`] (too many instances: `EMFILE`).
    pub fn new() -> Result<Notifier, NotifyError> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(NotifyError::Init)?;
        // SAFETY: the descriptor is the instance's own, which the AsyncFd
        // owns from here on: it stays open, and the same, for its life.
        let fd = unsafe { AsyncFd::register(Instance(inotify)) }
            .map_err(|e| NotifyError::Read(e.into()))?;
        Ok(Notifier {
            fd,
            dirs: HashMap::new(),
        })
    }

    /// Watch `dir` (again: harmless).
    ///
    /// Errors: [`NotifyError::NoWatchLeft`] on `ENOSPC`, the user's watches
    /// used up; [`NotifyError::Watch`] otherwise.
    pub fn watch(&mut self, dir: &Path) -> Result<(), NotifyError> {
        match self.fd.get_ref().0.add_watch(dir, mask()) {
            Ok(wd) => {
                self.dirs.insert(wd, dir.to_path_buf());
                Ok(())
            }
            Err(Errno::ENOSPC) => Err(NotifyError::NoWatchLeft {
                dir: dir.to_path_buf(),
            }),
            Err(source) => Err(NotifyError::Watch {
                dir: dir.to_path_buf(),
                source,
            }),
        }
    }

    /// Whether `dir` is watched.
    pub fn watches(&self, dir: &Path) -> bool {
        self.dirs.values().any(|d| d == dir)
    }

    /// The next events, waiting for them.
    ///
    /// Errors: [`NotifyError::Read`].
    pub async fn next(&mut self) -> Result<Vec<Event>, NotifyError> {
        loop {
            let mut ready = self.fd.readable().await.map_err(NotifyError::Read)?;
            match ready.get_inner().0.read_events() {
                Ok(events) => {
                    return Ok(events.into_iter().filter_map(|e| self.event(e)).collect());
                }
                Err(Errno::EAGAIN) => ready.clear_ready(),
                Err(errno) => return Err(NotifyError::Read(errno.into())),
            }
        }
    }

    fn event(&mut self, event: nix::sys::inotify::InotifyEvent) -> Option<Event> {
        if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            return Some(Event::Rescan);
        }
        if event.mask.contains(AddWatchFlags::IN_IGNORED) {
            self.dirs.remove(&event.wd);
            return None;
        }
        let path = self.dirs.get(&event.wd)?.join(event.name?);
        if event.mask.contains(AddWatchFlags::IN_ISDIR) {
            Some(Event::Rescan)
        } else {
            Some(Event::File(path))
        }
    }
}
