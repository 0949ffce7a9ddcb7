//! Who is asking, and may they touch this file: the daemon's own check of
//! Unix permissions on behalf of a client.
//!
//! A connection's [`Credentials`] come from SO_PEERCRED (socket(7)): uid, gid and
//! pid; Linux does not pass supplementary groups there, so they are read
//! from `/proc/PID/status` (`Groups:`) when that process still has the
//! peer's uid, and left out otherwise (fewer groups only ever deny more).
//! [`Judge`] applies the rules of path resolution (path_resolution(7)) to
//! a file already opened, so what is judged is what is used: the classic
//! owner/group/other bits, or the file's POSIX access ACL when it has one
//! ([`acl`], acl(5)); [`vetted`] walks paths with it.

pub mod acl;
pub mod vetted;

use crate::job::Credentials;
use nix::sys::stat::FileStat;
use std::os::fd::BorrowedFd;

/// The credentials of the client that `pid` is, from SO_PEERCRED values,
/// with the supplementary groups of `pid` when it still runs as `uid`.
pub fn peer_credentials(uid: u32, gid: u32, pid: Option<i32>) -> Credentials {
    let groups = pid.and_then(|p| groups_of(p, uid)).unwrap_or_default();
    Credentials { uid, gid, groups }
}

/// Supplementary groups of process `pid` if its real and effective uid are
/// `uid`.
fn groups_of(pid: i32, uid: u32) -> Option<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).map(|v| {
            v.split_whitespace()
                .filter_map(|n| n.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
    };
    let uids = field("Uid:")?;
    if uids.get(..2)? != [uid, uid] {
        return None;
    }
    field("Groups:")
}

/// What a peer wants to do with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Read a file.
    Read,
    /// Create files in a directory (write and search permission).
    CreateIn,
    /// List a directory and open what is in it (read and search
    /// permission): a watch folder.
    List,
}

/// Permission bits of one class (owner, group or other).
const R: u32 = 4;
const W: u32 = 2;
const X: u32 = 1;

impl Want {
    /// The permission bits this needs on the file itself.
    fn bits(self) -> u32 {
        match self {
            Want::Read => R,
            Want::CreateIn => W | X,
            Want::List => R | X,
        }
    }
}

/// Whose permissions decide whether a file may be used for a request.
#[derive(Debug, Clone)]
pub enum Judge {
    /// Another user than the daemon's: their Unix permission bits, judged
    /// by the daemon on the files it opens.
    User(Credentials),
    /// The daemon's own user (user mode, root, or the service user itself):
    /// the kernel, as the daemon opens the files.
    Daemon,
}

impl Judge {
    /// Whether this judge grants `bits` (R, W, X) on the open file `fd`,
    /// which `stat` describes: by its access ACL when it has one, else by
    /// its mode bits. An ACL that cannot be read grants nothing. The
    /// daemon's own access is left to the kernel: true.
    fn grants(&self, fd: BorrowedFd<'_>, stat: &FileStat, bits: u32) -> bool {
        let Judge::User(peer) = self else {
            return true;
        };
        if peer.is_root() {
            return true;
        }
        match acl::Acl::of(fd) {
            Ok(None) => allowed(peer, stat.st_uid, stat.st_gid, stat.st_mode, bits),
            Ok(Some(acl)) => acl.grants(peer, stat.st_uid, stat.st_gid, bits),
            Err(err) => {
                log::warn!("cannot read an ACL, access refused: {err}");
                false
            }
        }
    }
}

/// A short, lowercase reason for an I/O error on a path.
pub fn describe_io(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => err.to_string(),
    }
}

/// Whether `peer` has all `bits` (R, W, X) on a file with this owner,
/// group and mode, by the owner/group/other rule.
fn allowed(peer: &Credentials, uid: u32, gid: u32, mode: u32, bits: u32) -> bool {
    if peer.is_root() {
        // Root needs an x bit somewhere only to execute, never here.
        return true;
    }
    let class = if peer.uid == uid {
        (mode >> 6) & 7
    } else if peer.in_group(gid) {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    class & bits == bits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Credentials {
        Credentials {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn owner_group_other_classes_are_exclusive() {
        let alice = peer(1000, 1000, &[27]);
        // Owner bits apply to the owner even when other bits would allow.
        assert!(!allowed(&alice, 1000, 5, 0o077, R));
        assert!(allowed(&alice, 1000, 5, 0o400, R));
        // Group bits via a supplementary group.
        assert!(allowed(&alice, 0, 27, 0o040, R));
        assert!(!allowed(&alice, 0, 27, 0o004, R));
        // Others.
        assert!(allowed(&alice, 0, 0, 0o004, R));
        assert!(!allowed(&alice, 0, 0, 0o001, R | X));
        assert!(allowed(&alice, 0, 0, 0o003, W | X));
    }

    #[test]
    fn root_may_do_anything() {
        assert!(allowed(&peer(0, 0, &[]), 1000, 1000, 0o000, R | W | X));
    }

    #[test]
    fn groups_come_only_from_a_process_with_the_peers_uid() {
        let pid = std::process::id() as i32;
        let uid = nix::unistd::getuid().as_raw();
        assert!(groups_of(pid, uid).is_some());
        assert_eq!(groups_of(pid, uid.wrapping_add(1)), None);
    }
}
