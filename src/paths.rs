//! Default locations of the socket, pidfile and database.
//!
//! System mode (root or the `vidvar` service user): `/run/vidvard/` and
//! `/var/lib/vidvard/`. User mode:
//! `$XDG_RUNTIME_DIR/vidvard/` and `${XDG_STATE_HOME:-~/.local/state}/vidvard/`.
//! Under systemd, `$RUNTIME_DIRECTORY` and `$STATE_DIRECTORY` win. The
//! client resolves the socket the same way, so both agree without flags.
//!
//! A user without `XDG_RUNTIME_DIR` (`su -`, no logind) falls back to
//! `$TMPDIR/vidvard-UID`, a name anyone can take first in a shared
//! directory: it is used only while it does not exist or is the user's own
//! private directory (not a symlink, owned by the user, no group or other
//! access); otherwise [`runtime_dir`] is `run/` in the user's state
//! directory, which nobody else can plant.

use std::env;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// File name of the socket inside the runtime directory.
pub const SOCKET_NAME: &str = "vidvard.sock";
/// File name of the pidfile inside the runtime directory.
pub const PIDFILE_NAME: &str = "vidvard.pid";
/// File name of the database inside the state directory.
pub const DATABASE_NAME: &str = "vidvard.db";
/// File name of the state directory's lock (see `daemon::StateLock`).
pub const STATE_LOCK_NAME: &str = "vidvard.lock";
/// File name of the log a daemonized vidvard writes in the state directory
/// while syslog cannot be reached (see `logging::init_daemon`).
pub const LOG_FILE_NAME: &str = "vidvard.log";

fn var(name: &str) -> Option<PathBuf> {
    env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

/// The dedicated service user of system mode.
pub const SERVICE_USER: &str = "vidvar";

/// System mode: running as root or as the [`SERVICE_USER`]. Decides the
/// default paths and whether clients are other users.
pub fn is_system_mode() -> bool {
    let euid = nix::unistd::geteuid();
    euid.is_root()
        || nix::unistd::User::from_uid(euid)
            .ok()
            .flatten()
            .is_some_and(|u| u.name == SERVICE_USER)
}

/// Directory of the socket and pidfile.
pub fn runtime_dir() -> PathBuf {
    if let Some(dir) = var("RUNTIME_DIRECTORY") {
        return dir;
    }
    if is_system_mode() {
        return PathBuf::from("/run/vidvard");
    }
    match var("XDG_RUNTIME_DIR") {
        Some(dir) => dir.join("vidvard"),
        None => user_runtime_fallback(),
    }
}

/// The runtime directory of a user without `XDG_RUNTIME_DIR`: see the
/// module docs.
fn user_runtime_fallback() -> PathBuf {
    let me = nix::unistd::geteuid().as_raw();
    let shared = env::temp_dir().join(format!("vidvard-{me}"));
    let private = state_dir().join("run");
    match std::fs::symlink_metadata(&shared) {
        // Unless a daemon of this user's moved to the private place while
        // the name was taken (and it has been given up since).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if private.join(SOCKET_NAME).exists() {
                private
            } else {
                shared
            }
        }
        Ok(meta) if meta.is_dir() && meta.uid() == me && meta.mode() & 0o077 == 0 => shared,
        _ => private,
    }
}

/// Directory of the database.
pub fn state_dir() -> PathBuf {
    if let Some(dir) = var("STATE_DIRECTORY") {
        return dir;
    }
    if is_system_mode() {
        return PathBuf::from("/var/lib/vidvard");
    }
    let base = var("XDG_STATE_HOME")
        .or_else(|| var("HOME").map(|home| home.join(".local/state")))
        .unwrap_or_else(|| env::temp_dir().join(format!("vidvard-{}", nix::unistd::geteuid())));
    base.join("vidvard")
}

/// The system daemon's socket.
pub const SYSTEM_SOCKET: &str = "/run/vidvard/vidvard.sock";

/// The socket a client uses: `VIDVAR_SOCKET` if set, else the one in
/// [`runtime_dir`]; a user without a daemon of their own falls back to the
/// system daemon's socket when it exists, or when its directory keeps the
/// user from even seeing it (so that the user is told so, not that nothing
/// runs).
pub fn default_socket() -> PathBuf {
    if let Some(socket) = var("VIDVAR_SOCKET") {
        return socket;
    }
    let own = runtime_dir().join(SOCKET_NAME);
    let system = match std::fs::symlink_metadata(SYSTEM_SOCKET) {
        Ok(_) => true,
        Err(err) => err.kind() == std::io::ErrorKind::PermissionDenied,
    };
    if !own.exists() && system {
        return PathBuf::from(SYSTEM_SOCKET);
    }
    own
}
