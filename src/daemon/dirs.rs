//! The directories of the daemon's socket, pidfile and metrics textfile:
//! created with exact modes, or, when they exist, trusted only where no one
//! else could swap what is in them. It creates no file in them, and the state directory is
//! `state_dir`'s.

use super::error::DaemonError;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Create `dir` (and missing parents) unless it exists. A directory created
/// here gets exactly `mode` whatever the umask, and `group` when given. An
/// existing one is left as it is, but must be trustworthy: a directory
/// owned by the daemon's user or root, not a symlink of anyone else's, and
/// not writable by others unless sticky (like /tmp). Otherwise someone else
/// could swap the socket or plant a pidfile there.
pub(super) fn create_dir(dir: &Path, mode: u32, group: Option<u32>) -> Result<(), DaemonError> {
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
        return Err(DaemonError::OtherOwner {
            path: dir.to_path_buf(),
            owner: user_name(meta.uid()),
        });
    }
    Ok(())
}

/// The login name of user `uid`, or `uid N` when it has none.
fn user_name(uid: u32) -> String {
    crate::state_dir::login_name(uid).unwrap_or_else(|| format!("uid {uid}"))
}

/// [`create_dir`] for the directory of a metrics setting (`setting`, as
/// vidvard.conf(5) names it): a directory of another user's is refused
/// with advice about that setting ([`DaemonError::MetricsDirOwner`]), not
/// the control socket's.
fn create_metrics_dir(
    dir: &Path,
    mode: u32,
    group: Option<u32>,
    setting: &'static str,
) -> Result<(), DaemonError> {
    create_dir(dir, mode, group).map_err(|err| match err {
        DaemonError::OtherOwner { path, owner } => {
            let me = nix::unistd::geteuid().as_raw();
            let name = crate::state_dir::login_name(me);
            DaemonError::MetricsDirOwner {
                setting,
                path,
                owner,
                user: name.clone().unwrap_or_else(|| format!("uid {me}")),
                chown_to: name.unwrap_or_else(|| me.to_string()),
            }
        }
        other => other,
    })
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

/// Create the directory of `metrics_socket` unless it exists, as the
/// control socket's ([`create_socket_dir`]: 0750 with `group`, 0700
/// without), or trust it as that one; one of another user's is refused
/// with advice about `metrics_socket`.
pub fn create_metrics_socket_dir(socket: &Path, group: Option<u32>) -> Result<(), DaemonError> {
    match socket.parent() {
        Some(dir) => {
            let mode = if group.is_some() { 0o750 } else { 0o700 };
            create_metrics_dir(dir, mode, group, "metrics_socket")
        }
        None => Ok(()),
    }
}

/// Create the directory of `metrics_textfile` unless it exists (mode 0755:
/// node_exporter reads the file as its own user), or trust it as the
/// socket's: the file is replaced there every 15 s by rename(2), so a
/// directory, or a symlink to one, that another user controls would let
/// that user choose what the daemon overwrites.
pub fn create_textfile_dir(textfile: &Path) -> Result<(), DaemonError> {
    match textfile.parent() {
        Some(dir) => create_metrics_dir(dir, 0o755, None, "metrics_textfile"),
        None => Ok(()),
    }
}
