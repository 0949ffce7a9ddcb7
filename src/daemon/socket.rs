//! The control socket: bound with its modes and group, replacing a socket
//! file a crash left but never a live one (nor anything that is not a
//! socket), and refusing a start where a daemon already answers. Serving
//! it is `server`'s.

use super::dirs::create_socket_dir;
use super::error::DaemonError;
use crate::socket_file::{Before, before_bind, set_access};
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName};
use std::fs::OpenOptions;
use std::io::Read;
use std::path::Path;

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

/// Bind the socket at `path`, replacing a stale socket file left by a
/// crash but never a live one, and never anything that is not a socket.
/// Without `group`: socket 0600 in a directory created 0700; with it:
/// socket 0660 in a directory created 0750, both of that group. Modes are
/// set explicitly, so the umask does not matter.
pub(super) fn listen(
    path: &Path,
    group: Option<u32>,
    state_dir: &Path,
) -> Result<interprocess::local_socket::tokio::Listener, DaemonError> {
    let err = |source| DaemonError::Socket {
        path: path.to_path_buf(),
        source,
    };
    create_socket_dir(path, group)?;
    match before_bind(path).map_err(err)? {
        Before::Nothing => {}
        Before::Other(kind) => {
            return Err(DaemonError::NotASocket {
                path: path.to_path_buf(),
                kind,
            });
        }
        Before::Socket => {
            refuse_live_socket(path, state_dir)?;
            log::info!("removing stale socket {}", path.display());
            std::fs::remove_file(path).map_err(err)?;
        }
    }
    let name = path.to_fs_name::<GenericFilePath>().map_err(err)?;
    let listener = ListenerOptions::new()
        .name(name)
        .create_tokio()
        .map_err(err)?;
    set_access(path, group).map_err(err)?;
    Ok(listener)
}
