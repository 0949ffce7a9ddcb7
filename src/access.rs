//! Who is asking, and may they touch this path: the daemon's own check of
//! Unix permissions on behalf of a client.
//!
//! A connection's [`Peer`] comes from SO_PEERCRED (socket(7)): uid, gid and
//! pid; Linux does not pass supplementary groups there, so they are read
//! from `/proc/PID/status` (`Groups:`) when that process still has the
//! peer's uid, and left out otherwise (fewer groups only ever deny more).
//! [`check`] applies the classic owner/group/other rules of path
//! resolution (path_resolution(7)) to every directory on the way and to the
//! file itself. POSIX ACLs are not consulted, so a user granted access only
//! by an ACL is refused.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The credentials of a client (and so of the jobs it submits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (may include `gid`).
    pub groups: Vec<u32>,
}

impl Peer {
    /// Whether this peer is root, which may see and touch every job.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Credentials from SO_PEERCRED values, with the supplementary groups of
    /// `pid` when it still runs as `uid`.
    pub fn from_creds(uid: u32, gid: u32, pid: Option<i32>) -> Peer {
        let groups = pid.and_then(|p| groups_of(p, uid)).unwrap_or_default();
        Peer { uid, gid, groups }
    }

    fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
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
}

const R: u32 = 4;
const W: u32 = 2;
const X: u32 = 1;

/// Whether `peer` has all `bits` (R, W, X) on a file with this owner,
/// group and mode, by the owner/group/other rule.
fn allowed(peer: &Peer, uid: u32, gid: u32, mode: u32, bits: u32) -> bool {
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

/// Whether `peer` may do `want` with `path` (absolute), including search
/// permission on every directory above it. Symlinks are followed as the
/// kernel would.
///
/// Errors: a message for the client naming the path, "permission denied"
/// or the I/O reason.
pub fn check(peer: &Peer, path: &Path, want: Want) -> Result<(), String> {
    let denied = || format!("permission denied: {}", path.display());
    let real = std::fs::canonicalize(path).map_err(|e| {
        format!(
            "cannot use {}: {}",
            path.display(),
            crate::scheduler::describe_io(&e)
        )
    })?;
    let mut dir = real.parent();
    let mut ancestors = Vec::new();
    while let Some(d) = dir {
        ancestors.push(d);
        dir = d.parent();
    }
    for d in ancestors.into_iter().rev() {
        let m = std::fs::metadata(d).map_err(|_| denied())?;
        if !allowed(peer, m.uid(), m.gid(), m.mode(), X) {
            return Err(denied());
        }
    }
    let m = std::fs::metadata(&real).map_err(|_| denied())?;
    let bits = match want {
        Want::Read => R,
        Want::CreateIn => W | X,
    };
    if allowed(peer, m.uid(), m.gid(), m.mode(), bits) {
        Ok(())
    } else {
        Err(denied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
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
    fn paths_are_checked_against_the_real_filesystem() {
        let me = Peer::from_creds(
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
            Some(std::process::id() as i32),
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert_eq!(check(&me, &file, Want::Read), Ok(()));
        assert_eq!(check(&me, dir.path(), Want::CreateIn), Ok(()));
        let missing = check(&me, &dir.path().join("nope"), Want::Read).unwrap_err();
        assert!(missing.contains("no such file"), "{missing}");

        // An unprivileged stranger is kept out of a 0700 directory.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let stranger = peer(4_000_000, 4_000_000, &[]);
        if me.uid != stranger.uid {
            let err = check(&stranger, &file, Want::Read).unwrap_err();
            assert!(err.starts_with("permission denied"), "{err}");
        }
    }

    #[test]
    fn groups_come_only_from_a_process_with_the_peers_uid() {
        let pid = std::process::id() as i32;
        let uid = nix::unistd::getuid().as_raw();
        assert!(groups_of(pid, uid).is_some());
        assert_eq!(groups_of(pid, uid.wrapping_add(1)), None);
    }
}
