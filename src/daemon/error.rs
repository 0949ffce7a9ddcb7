//! Why the daemon could not start or run ([`DaemonError`]), with the path
//! and the cause of each refusal, and the words that tell a user which
//! daemon already runs where. It decides nothing: the modules that start the
//! daemon return these.

use crate::queue::{OpenError, QueueError};
use std::io;
use std::path::{Path, PathBuf};

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
    /// The directory of a metrics setting (`metrics_socket`,
    /// `metrics_textfile`) is sound but another user's: the daemon's user
    /// (`user`, named to chown(1) as `chown_to`: its login name, or its
    /// uid when it has none) must own it, or the setting must name another
    /// place.
    #[error("{}", describe_metrics_dir_owner(setting, path, owner, user, chown_to))]
    MetricsDirOwner {
        setting: &'static str,
        path: PathBuf,
        owner: String,
        user: String,
        chown_to: String,
    },
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

/// The refusal of a metrics setting's directory of another user's, with
/// the advice that fits that setting.
fn describe_metrics_dir_owner(
    setting: &str,
    dir: &Path,
    owner: &str,
    user: &str,
    chown_to: &str,
) -> String {
    let allowed = if user == "root" {
        "root (the user vidvard runs as)".to_owned()
    } else {
        format!("{user} (the user vidvard runs as) or root")
    };
    format!(
        "refusing to use {dir} for {setting}: the directory belongs to {owner}, not to \
         {allowed}, so {owner} could swap what the daemon puts there. Give the directory to \
         {user} (`chown {chown_to} {quoted}`; see {setting} in vidvard.conf(5)), or set {setting} \
         in vidvard.conf to a path in a directory of {user}'s",
        dir = dir.display(),
        quoted = shlex::try_quote(&dir.to_string_lossy()).unwrap_or_default()
    )
}
