//! The daemon's life: pidfile, directories, socket, startup recovery, the
//! serving loop and an orderly stop.
//!
//! [`run`] takes its stop signal as a future, so tests can stop a daemon
//! without signals; `main` passes SIGTERM/SIGINT. The pidfile is taken by
//! [`Pidfile::acquire`] in `main` before any runtime exists.

use crate::config::{Config, Tunables};
use crate::engine::Engine;
use crate::queue::{OpenError, QueueError};
use crate::recovery;
use crate::server;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName};
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Metrics(#[from] crate::exporter::ExporterError),
    #[error("already running (pid {pid}): {} is locked", path.display())]
    AlreadyRunning { pid: String, path: PathBuf },
    #[error("cannot use pidfile {}: {source}", path.display())]
    Pidfile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot create directory {}: {source}", path.display())]
    Directory {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "refusing to use {}: not a directory owned by this user or root, or writable by others",
        path.display()
    )]
    Untrusted { path: PathBuf },
    /// The directory is sound but another user's, typically the service
    /// user of an installed package (`/run/vidvard`, `/var/lib/vidvard`).
    #[error(
        "refusing to use {}: it belongs to {owner}, not to this user or root. Where the \
         package runs vidvard as {owner}, start it as that user (`systemctl start vidvard`, or \
         `runuser -u {owner} -- vidvard ...`), or give this daemon its own --socket, \
         --pidfile and --state-dir",
        path.display()
    )]
    OtherOwner { path: PathBuf, owner: String },
    #[error("refusing to use {} as a pidfile: {reason}", path.display())]
    NotAPidfile { path: PathBuf, reason: &'static str },
    /// A daemon answers on the socket: named by its pid (SO_PEERCRED) and,
    /// when it also holds this state directory's lock, that directory.
    #[error("{}", describe_running(*pid, path, state_dir.as_deref()))]
    SocketInUse {
        pid: Option<i32>,
        path: PathBuf,
        state_dir: Option<PathBuf>,
    },
    #[error(
        "refusing to replace {} with a socket: it is {kind}, not a socket left by a crash",
        path.display()
    )]
    NotASocket { path: PathBuf, kind: &'static str },
    #[error("cannot listen on {}: {source}", path.display())]
    Socket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    StateDir(#[from] crate::state_dir::StateDirError),
    #[error(transparent)]
    Queue(#[from] OpenError),
    #[error("recovery failed: {0}")]
    Recovery(#[source] QueueError),
}

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

/// Create `dir` (and missing parents) unless it exists. A directory created
/// here gets exactly `mode` whatever the umask, and `group` when given. An
/// existing one is left as it is, but must be trustworthy: a directory
/// owned by the daemon's user or root, not a symlink of anyone else's, and
/// not writable by others unless sticky (like /tmp). Otherwise someone else
/// could swap the socket or plant a pidfile there.
fn create_dir(dir: &Path, mode: u32, group: Option<u32>) -> Result<(), DaemonError> {
    let err = |source| DaemonError::Directory {
        path: dir.to_path_buf(),
        source,
    };
    let exists = match std::fs::symlink_metadata(dir) {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(err(e)),
    };
    // Made here, or found (also when made by someone else meanwhile).
    if !exists && crate::state_dir::make_dir(dir, mode).map_err(err)? {
        if let Some(gid) = group {
            std::os::unix::fs::chown(dir, None, Some(gid)).map_err(err)?;
        }
        return Ok(());
    }
    let me = nix::unistd::geteuid().as_raw();
    let untrusted = || DaemonError::Untrusted {
        path: dir.to_path_buf(),
    };
    let link = std::fs::symlink_metadata(dir).map_err(err)?;
    if link.file_type().is_symlink() && link.uid() != me && link.uid() != 0 {
        return Err(untrusted());
    }
    // A dangling symlink of ours is no directory either.
    let meta = std::fs::metadata(dir).map_err(|_| untrusted())?;
    let shared = meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0;
    if !meta.is_dir() || shared {
        return Err(untrusted());
    }
    if meta.uid() != me && meta.uid() != 0 {
        let owner = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(meta.uid()))
            .ok()
            .flatten()
            .map_or(format!("uid {}", meta.uid()), |u| u.name);
        return Err(DaemonError::OtherOwner {
            path: dir.to_path_buf(),
            owner,
        });
    }
    Ok(())
}

/// Create the socket's directory unless it exists: mode 0750 and `group`
/// with a group, 0700 without. Called before the pidfile is taken, since
/// both usually share this directory.
pub fn create_socket_dir(socket: &Path, group: Option<u32>) -> Result<(), DaemonError> {
    if let Some(dir) = socket.parent() {
        let mode = if group.is_some() { 0o750 } else { 0o700 };
        create_dir(dir, mode, group)?;
    }
    Ok(())
}

/// Refuse to start on `socket` when a daemon answers there. `state_dir`
/// is named in the error when the same process holds its lock.
///
/// Errors: [`DaemonError::SocketInUse`].
pub fn refuse_live_socket(socket: &Path, state_dir: &Path) -> Result<(), DaemonError> {
    let Ok(stream) = std::os::unix::net::UnixStream::connect(socket) else {
        return Ok(());
    };
    let pid = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .ok()
        .map(|creds| creds.pid());
    // Read as a state file (a regular file of ours, never a FIFO), before
    // the state directory is judged: at most a pid's worth.
    let holder = crate::state_dir::open_file(
        &state_dir.join(crate::paths::STATE_LOCK_NAME),
        OpenOptions::new().read(true),
    )
    .ok()
    .and_then(|file| {
        let mut text = String::new();
        file.take(32).read_to_string(&mut text).ok().map(|_| text)
    });
    let same = pid.is_some_and(|pid| holder.is_some_and(|held| held.trim() == pid.to_string()));
    Err(DaemonError::SocketInUse {
        pid,
        path: socket.to_path_buf(),
        state_dir: same.then(|| state_dir.to_path_buf()),
    })
}

/// The refusal of a second daemon: who runs, where.
fn describe_running(pid: Option<i32>, socket: &Path, state_dir: Option<&Path>) -> String {
    let who = match pid {
        Some(pid) => format!("vidvard (pid {pid})"),
        None => "vidvard".into(),
    };
    let mut text = format!("{who} is already running on {}", socket.display());
    if let Some(dir) = state_dir {
        text.push_str(&format!(", state dir {}", dir.display()));
    }
    text
}

/// Bind the socket at `path`, replacing a stale socket file left by a
/// crash but never a live one, and never anything that is not a socket.
/// Without `group`: socket 0600 in a directory created 0700; with it:
/// socket 0660 in a directory created 0750, both of that group. Modes are
/// set explicitly, so the umask does not matter.
fn listen(
    path: &Path,
    group: Option<u32>,
    state_dir: &Path,
) -> Result<interprocess::local_socket::tokio::Listener, DaemonError> {
    let err = |source| DaemonError::Socket {
        path: path.to_path_buf(),
        source,
    };
    create_socket_dir(path, group)?;
    let socket_mode = if group.is_some() { 0o660 } else { 0o600 };
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(DaemonError::NotASocket {
                    path: path.to_path_buf(),
                    kind: crate::state_dir::kind_of(&meta),
                });
            }
            refuse_live_socket(path, state_dir)?;
            log::info!("removing stale socket {}", path.display());
            std::fs::remove_file(path).map_err(err)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let name = path.to_fs_name::<GenericFilePath>().map_err(err)?;
    let listener = ListenerOptions::new()
        .name(name)
        .create_tokio()
        .map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(socket_mode)).map_err(err)?;
    if group.is_some() {
        std::os::unix::fs::chown(path, None, group).map_err(err)?;
    }
    Ok(listener)
}

/// Serve the metrics on `listener` (bound at `metrics.socket`) and write
/// `metrics.textfile`, until `stop` fires; returns their tasks.
fn spawn_exporters(
    metrics: &crate::config::MetricsOutputs,
    listener: Option<tokio::net::UnixListener>,
    engine: &Arc<Engine>,
    stop: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let (Some(listener), Some(path)) = (listener, &metrics.socket) {
        log::info!("serving GET /metrics on {}", path.display());
        let serving =
            crate::exporter::serve(listener, path.clone(), Arc::clone(engine), stop.clone());
        tasks.push(tokio::spawn(serving));
    }
    if let Some(path) = &metrics.textfile {
        let writing =
            crate::exporter::write_textfile(path.clone(), Arc::clone(engine), stop.clone());
        tasks.push(tokio::spawn(writing));
    }
    tasks
}

/// Run the daemon until `shutdown` resolves, then stop in order: refuse new
/// submissions, stop FFmpeg (SIGTERM, SIGKILL after the grace period), mark
/// unfinished work interrupted, remove the socket.
///
/// `ready` is called once the database is open, recovery is done and the
/// socket listens. Settings received on `reloaded` (SIGHUP) are applied to
/// running work. Errors: any failure to start; once running, problems are
/// logged and do not end the daemon.
pub async fn run(
    config: Config,
    ready: impl FnOnce(),
    shutdown: impl Future<Output = ()>,
    mut reloaded: mpsc::UnboundedReceiver<Tunables>,
) -> Result<(), DaemonError> {
    // Before anything is created: a live daemon on this socket wins.
    refuse_live_socket(&config.socket, &config.state_dir)?;
    for change in crate::state_dir::prepare(&config.state_dir)? {
        log::info!("{change}");
    }
    // One daemon per database, whatever socket and pidfile each was given.
    let _state_lock = StateLock::acquire(&config.state_dir)?;
    let backend = config.queue();
    if let crate::queue::Backend::Sqlite { path } = &backend {
        // 0600 before SQLite makes it (and its -wal and -shm) 0644.
        crate::state_dir::create_database(path)?;
    }
    let queue = crate::queue::open(&backend).await?;
    // Before recovery, which may end jobs: those owe a hook too.
    queue
        .set_hooks(config.engine.hook.is_some())
        .await
        .map_err(DaemonError::Recovery)?;
    recovery::recover(&*queue)
        .await
        .map_err(DaemonError::Recovery)?;
    let listener = listen(&config.socket, config.socket_group, &config.state_dir)?;
    if config.system_mode && config.socket_group.is_none() {
        log::warn!(
            "system mode without a socket group (group {} does not exist): \
             only the daemon's user and root can connect",
            crate::config::DEFAULT_SOCKET_GROUP
        );
    }
    let socket = config.socket.clone();
    let metrics = config.metrics.clone();
    let metrics_listener = match &metrics.socket {
        Some(path) => {
            // Its directory judged (or made) as the control socket's.
            create_socket_dir(path, metrics.socket_group)?;
            Some(crate::exporter::bind(path, metrics.socket_group)?)
        }
        None => None,
    };
    log::info!(
        "vidvard {} listening on {}, database {}, up to {} slot(s) of work",
        env!("CARGO_PKG_VERSION"),
        socket.display(),
        backend.describe(),
        config.tunables.max_parallel
    );
    let engine = Engine::new(config, queue);
    let dispatcher = tokio::spawn(Arc::clone(&engine).run());
    tokio::spawn(Arc::clone(&engine).enforce_retention());
    tokio::spawn(Arc::clone(&engine).hear_queue_changes());
    tokio::spawn(Arc::clone(&engine).run_hooks());
    tokio::spawn(Arc::clone(&engine).watch_folders());
    let stop_serving = CancellationToken::new();
    let server = tokio::spawn(server::serve(
        listener,
        Arc::clone(&engine),
        stop_serving.clone(),
    ));
    let exporters = spawn_exporters(&metrics, metrics_listener, &engine, &stop_serving);
    let reloader = {
        let engine = Arc::clone(&engine);
        tokio::spawn(async move {
            while let Some(tunables) = reloaded.recv().await {
                engine.apply_tunables(tunables);
            }
        })
    };
    ready();
    shutdown.await;
    reloader.abort();
    log::info!("shutting down");
    engine.stop();
    if let Err(err) = dispatcher.await {
        log::error!("dispatcher ended abnormally: {err}");
    }
    stop_serving.cancel();
    let _ = server.await;
    for exporter in exporters {
        let _ = exporter.await;
    }
    engine.notify_change();
    if let Err(err) = std::fs::remove_file(&socket)
        && err.kind() != io::ErrorKind::NotFound
    {
        log::warn!("cannot remove socket {}: {err}", socket.display());
    }
    log::info!("stopped");
    Ok(())
}
