//! The pidfile ([`Pidfile`], BSD pidfile(3) semantics) and the state
//! directory's lock ([`StateLock`], a pidfile that is never removed):
//! creating and locking one, taking over a stale one, writing the pid, and
//! removing the file at the end. A file that is not a pidfile of this user
//! is never truncated, rewritten or removed.

use super::dirs::create_dir;
use super::error::DaemonError;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The lock on a state directory, so that one daemon at most uses its
/// database, whatever socket and pidfile each was given. Locked with
/// `flock` and holding the pid like a [`Pidfile`], but never removed: a
/// starter may already have the file open, so its inode must not change.
pub struct StateLock {
    _held: Pidfile,
}

impl StateLock {
    /// Lock [`crate::paths::STATE_LOCK_NAME`] in `state_dir` and write the pid into it.
    ///
    /// Errors: as [`Pidfile::acquire`] and [`Pidfile::write_pid`].
    pub fn acquire(state_dir: &Path) -> Result<StateLock, DaemonError> {
        let mut lock = Pidfile::acquire_lock(
            &state_dir.join(crate::paths::STATE_LOCK_NAME),
            false,
            crate::state_dir::FILE_MODE,
        )?;
        lock.write_pid()?;
        Ok(StateLock { _held: lock })
    }
}

/// How long a start waits for a pidfile or state lock held although the
/// daemon named in it is gone, and how often it tries meanwhile.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(20);

/// Whether `pid` (a pidfile's text) names a process that exists (kill(2)
/// with no signal); an unreadable pid is taken to exist.
fn process_exists(pid: &str) -> bool {
    pid.parse::<i32>().map_or(true, |pid| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            != Err(nix::errno::Errno::ESRCH)
    })
}

/// A pidfile locked with `flock` for as long as this value lives (BSD
/// pidfile(3) semantics). When dropped, the file is removed if this value
/// created it or wrote its pid into it, and the path still names it: a
/// file found there is taken over only when it is a stale pidfile (empty,
/// or a pid and a newline), so nothing else is ever truncated or removed.
pub struct Pidfile {
    file: Flock<File>,
    path: PathBuf,
    remove_on_drop: bool,
    /// Created by this process (`O_EXCL`), or holding its pid.
    ours: bool,
}

impl Pidfile {
    /// Open and lock `path`, creating its directory (mode 0755) if needed.
    /// The pid is written by [`Pidfile::write_pid`], after any fork.
    ///
    /// Errors: [`DaemonError::AlreadyRunning`] with the holder's pid when
    /// another process holds the lock; [`DaemonError::NotAPidfile`] when
    /// the path holds something else; [`DaemonError::Pidfile`] otherwise.
    pub fn acquire(path: &Path) -> Result<Pidfile, DaemonError> {
        Self::acquire_lock(path, true, PIDFILE_MODE)
    }

    fn acquire_lock(path: &Path, remove_on_drop: bool, mode: u32) -> Result<Pidfile, DaemonError> {
        let err = |source| DaemonError::Pidfile {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            create_dir(dir, 0o755, None)?;
        }
        let deadline = std::time::Instant::now() + LOCK_PATIENCE;
        loop {
            let (file, created) = match Self::lock_once(path, mode) {
                Ok(Some(locked)) => locked,
                Ok(None) => continue,
                // The daemon named in the file is gone, but a child it had
                // just forked holds the lock until it execs (close-on-exec)
                // or exits: moments.
                Err(DaemonError::AlreadyRunning { pid, .. })
                    if !process_exists(&pid) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(LOCK_RETRY);
                    continue;
                }
                Err(e) => return Err(e),
            };
            // A daemon that was stopping may have removed the file after we
            // opened it: then our lock is on a dead inode; start over.
            let held = file.metadata().map_err(err)?;
            match std::fs::symlink_metadata(path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    return Ok(Pidfile {
                        file,
                        path: path.to_path_buf(),
                        remove_on_drop,
                        ours: created,
                    });
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(err(e)),
            }
        }
    }

    /// Create `path` (with `mode`) or open the file there, and lock it.
    /// `None`: it vanished in between; try again. The flag: whether it was
    /// created.
    fn lock_once(path: &Path, mode: u32) -> Result<Option<(Flock<File>, bool)>, DaemonError> {
        let err = |source| DaemonError::Pidfile {
            path: path.to_path_buf(),
            source,
        };
        // O_NOFOLLOW: a symlink planted in a shared directory is refused;
        // O_NONBLOCK: a FIFO planted there cannot block the open.
        let flags = nix::libc::O_CLOEXEC | nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK;
        let created = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(flags)
            .open(path);
        let (file, created) = match created {
            Ok(file) => (file, true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                match OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(flags | nix::libc::O_NOCTTY)
                    .open(path)
                {
                    Ok(file) => (file, false),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(err(e)),
                }
            }
            Err(e) => return Err(err(e)),
        };
        let meta = file.metadata().map_err(err)?;
        if !meta.is_file() {
            return Err(DaemonError::NotAPidfile {
                path: path.to_path_buf(),
                reason: "not a regular file",
            });
        }
        // Another user's file (planted in a shared directory) is theirs to
        // rewrite: never take it over.
        if meta.uid() != nix::unistd::geteuid().as_raw() {
            return Err(DaemonError::NotAPidfile {
                path: path.to_path_buf(),
                reason: "it belongs to another user",
            });
        }
        if created {
            // Exactly `mode`, whatever the umask.
            file.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(err)?;
        }
        let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let meta = file.metadata().map_err(err)?;
                if !locked_by_our_user(&meta) {
                    // Anyone who may read the file may flock it (a member of
                    // the socket group, say): no daemon of ours holds it, so
                    // it is replaced by a new file, which they hold nothing of.
                    log::warn!(
                        "{} is locked by another user's process, not by a vidvard: replaced",
                        path.display()
                    );
                    std::fs::remove_file(path).map_err(err)?;
                    return Ok(None);
                }
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(DaemonError::AlreadyRunning {
                    pid: if pid.is_empty() {
                        "unknown".into()
                    } else {
                        pid.into()
                    },
                    path: path.to_path_buf(),
                });
            }
            Err((_, errno)) => return Err(err(errno.into())),
            Ok(locked) => locked,
        };
        if !created {
            // Unlocked: a stale pidfile of a daemon that died, or not a
            // pidfile at all, which must be left alone.
            let mut content = Vec::new();
            (&mut *locked)
                .take(64)
                .read_to_end(&mut content)
                .map_err(err)?;
            if !is_stale_pidfile(&content) {
                return Err(DaemonError::NotAPidfile {
                    path: path.to_path_buf(),
                    reason: "it holds something other than a process id",
                });
            }
        }
        Ok(Some((locked, created)))
    }

    /// Write this process's pid (replacing the file's content).
    pub fn write_pid(&mut self) -> Result<(), DaemonError> {
        let pid = std::process::id();
        self.ours = true;
        (|| {
            self.file.set_len(0)?;
            self.file.rewind()?;
            writeln!(self.file, "{pid}")?;
            self.file.sync_all()
        })()
        .map_err(|source| DaemonError::Pidfile {
            path: self.path.clone(),
            source,
        })
    }
}

/// Whether a process of this daemon's user holds a lock on the file of
/// `meta`, as /proc/locks lists them (proc(5): the locking pid and the
/// file's `MAJOR:MINOR:INODE`) with each holder's effective uid from
/// /proc/PID/status. A holder that no longer exists is not a daemon (a
/// daemon's lock dies with it); when anything cannot be told, the answer is
/// yes, so that a live daemon is never taken for a stale one.
fn locked_by_our_user(meta: &std::fs::Metadata) -> bool {
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return true;
    };
    let dev = meta.dev();
    let file = format!(
        "{:02x}:{:02x}:{}",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev),
        meta.ino()
    );
    let me = nix::unistd::geteuid().as_raw();
    let mut holders = 0;
    for line in locks.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // `N: -> FLOCK ...` is a waiter, not a holder.
        if fields.len() < 6 || fields[1] == "->" || fields[5] != file {
            continue;
        }
        holders += 1;
        let Ok(pid) = fields[4].parse::<u32>() else {
            return true;
        };
        let status = match std::fs::read_to_string(format!("/proc/{pid}/status")) {
            Ok(status) => status,
            Err(e) if e.kind() == io::ErrorKind::NotFound && pid != 0 => continue,
            Err(_) => return true,
        };
        let euid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .and_then(|id| id.parse::<u32>().ok());
        if euid.is_none_or(|uid| uid == me) {
            return true;
        }
    }
    holders == 0
}

/// Mode of the pidfile: readable by all, as init scripts and
/// `start-stop-daemon --pidfile` read it.
pub const PIDFILE_MODE: u32 = 0o644;

/// Whether `content` is what a pidfile holds: nothing (a daemon that died
/// before writing), or decimal digits and a newline.
fn is_stale_pidfile(content: &[u8]) -> bool {
    let digits = content.strip_suffix(b"\n").unwrap_or(content);
    digits.len() <= 20 && digits.iter().all(u8::is_ascii_digit)
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        if !(self.remove_on_drop && self.ours) {
            return;
        }
        // Still holding the lock: the file is ours to remove, if the path
        // still names it.
        let same = match (self.file.metadata(), std::fs::symlink_metadata(&self.path)) {
            (Ok(held), Ok(now)) => held.ino() == now.ino() && held.dev() == now.dev(),
            _ => false,
        };
        if same {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
