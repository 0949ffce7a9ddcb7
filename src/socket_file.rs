//! A Unix socket's file, the control socket's and the metrics socket's
//! alike: what its path names before bind(2) (nothing, a socket, or
//! something that must not be replaced) and its mode and group once bound.
//! Must not decide whether a socket found there is stale or live, nor
//! remove it (the caller's rules), nor touch its directory (`daemon::dirs`).

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

/// What a socket's path names before bind(2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    /// Nothing: bind(2) may create the socket.
    Nothing,
    /// A socket (not followed if a symlink): left by a crash or live.
    Socket,
    /// Something else, named for messages (see [`crate::state_dir::kind_of`]).
    Other(&'static str),
}

/// What `path` names, by lstat(2).
///
/// Errors: lstat(2) failing other than with ENOENT.
pub fn before_bind(path: &Path) -> io::Result<Before> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => Ok(Before::Socket),
        Ok(meta) => Ok(Before::Other(crate::state_dir::kind_of(&meta))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Before::Nothing),
        Err(e) => Err(e),
    }
}

/// Gives the socket just bound at `path` to `group` with mode 0660, or
/// leaves its group and sets 0600 without one: explicitly, so that the
/// umask does not matter (connect(2) needs write permission, unix(7)).
/// The socket is opened first (`O_PATH | O_NOFOLLOW`, open(2)) and must be
/// a socket of the daemon's user; the group and mode are then set through
/// that descriptor, so that a symlink or a directory swapped in on the way
/// since bind(2) never turns them onto another file.
///
/// Errors: open(2), fstat(2), fchownat(2) or chmod(2) failing, or
/// [`io::ErrorKind::InvalidData`] when `path` no longer names a socket of
/// this user.
pub fn set_access(path: &Path, group: Option<u32>) -> io::Result<()> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::{Mode, SFlag, fstat};
    use std::os::fd::AsRawFd;
    let socket = open(
        path,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let stat = fstat(&socket)?;
    let is_socket = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFSOCK;
    if !is_socket || stat.st_uid != nix::unistd::geteuid().as_raw() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no longer the socket just bound (replaced since)",
        ));
    }
    if let Some(gid) = group {
        // SAFETY: the empty path is a valid C string; with AT_EMPTY_PATH
        // fchownat changes the file the descriptor refers to.
        let done = unsafe {
            libc::fchownat(
                socket.as_raw_fd(),
                c"".as_ptr(),
                u32::MAX,
                gid,
                libc::AT_EMPTY_PATH,
            )
        };
        if done != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    // chmod(2) of the descriptor's /proc/self/fd link reaches the file it
    // refers to (proc(5)); fchmod(2) refuses O_PATH descriptors.
    let link = format!("/proc/self/fd/{}", socket.as_raw_fd());
    std::fs::set_permissions(link, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_path_is_free_a_socket_or_in_the_way_and_symlinks_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s.sock");
        assert_eq!(before_bind(&socket).unwrap(), Before::Nothing);
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        assert_eq!(before_bind(&socket).unwrap(), Before::Socket);
        let link = dir.path().join("link.sock");
        std::os::unix::fs::symlink(&socket, &link).unwrap();
        assert!(matches!(before_bind(&link).unwrap(), Before::Other(k) if k == "a symlink"));
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(before_bind(&file).unwrap(), Before::Other(k) if k == "a regular file"));
    }

    #[test]
    fn a_bound_socket_gets_0600_or_0660_with_its_group_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let mode = || std::fs::symlink_metadata(&path).unwrap().mode() & 0o7777;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
        set_access(&path, None).unwrap();
        assert_eq!(mode(), 0o600);
        let gid = nix::unistd::getegid().as_raw();
        set_access(&path, Some(gid)).unwrap();
        assert_eq!(mode(), 0o660);
        assert_eq!(std::fs::symlink_metadata(&path).unwrap().gid(), gid);
    }

    #[test]
    fn a_socket_swapped_for_a_symlink_or_a_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "x").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = dir.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert!(
            set_access(&path, None).is_err(),
            "a symlink is not the socket"
        );
        std::fs::remove_file(&path).unwrap();
        std::fs::hard_link(&victim, &path).unwrap();
        let err = set_access(&path, None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        let mode = std::fs::metadata(&victim).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o644, "the victim's mode is untouched");
    }
}
