//! POSIX access ACLs: read from a file's `system.posix_acl_access`
//! extended attribute and applied by the access check algorithm of acl(5),
//! so that an entry which denies a user access is honoured, and one that
//! grants it too.
//!
//! The attribute is the kernel's binary form (`posix_acl_xattr.h`): a
//! little-endian `u32` version (2), then 8-byte entries of `u16` tag,
//! `u16` permission bits and `u32` id.

use crate::job::Credentials;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

const XATTR_NAME: &str = "system.posix_acl_access";
const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
/// Largest attribute read, in bytes (about 8000 entries).
const MAX_XATTR_BYTES: usize = 64 * 1024;

/// One ACL entry: tag, permission bits (r=4, w=2, x=1), uid or gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    tag: u16,
    perm: u32,
    id: u32,
}

/// An access ACL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    entries: Vec<Entry>,
}

impl Acl {
    /// Parse the attribute's bytes; `None` when they are not a version 2
    /// ACL.
    pub fn parse(bytes: &[u8]) -> Option<Acl> {
        let (version, rest) = bytes.split_first_chunk::<4>()?;
        if u32::from_le_bytes(*version) != VERSION || rest.len() % 8 != 0 {
            return None;
        }
        let entries = rest
            .chunks_exact(8)
            .map(|e| Entry {
                tag: u16::from_le_bytes([e[0], e[1]]),
                perm: u32::from(u16::from_le_bytes([e[2], e[3]]) & 7),
                id: u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
            })
            .collect();
        Some(Acl { entries })
    }

    /// The ACL of the open file `fd` (an `O_PATH` descriptor will do), or
    /// `None` when it has none beyond its mode bits.
    ///
    /// Errors: the I/O error of getxattr(2) other than "no such attribute"
    /// or "not supported"; `InvalidData` for an attribute that is not an
    /// ACL.
    pub fn of(fd: BorrowedFd<'_>) -> io::Result<Option<Acl>> {
        // getxattr(2) through the descriptor's /proc entry: fgetxattr does
        // not take O_PATH descriptors.
        let path = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
        let name = CString::new(XATTR_NAME)?;
        let mut buf = vec![0u8; MAX_XATTR_BYTES];
        // SAFETY: both strings are NUL-terminated and the buffer's pointer
        // and length describe live memory.
        let n = unsafe {
            nix::libc::getxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(nix::libc::ENODATA | nix::libc::EOPNOTSUPP) => Ok(None),
                _ => Err(err),
            };
        }
        buf.truncate(n as usize);
        Acl::parse(&buf)
            .map(Some)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed ACL"))
    }

    /// Whether `peer` has all `bits` on a file with this ACL, owned by
    /// `uid` and group `gid`: the access check algorithm of acl(5).
    pub fn grants(&self, peer: &Credentials, uid: u32, gid: u32, bits: u32) -> bool {
        let has = |perm: u32| perm & bits == bits;
        let mask = self
            .entries
            .iter()
            .find(|e| e.tag == MASK)
            .map_or(7, |e| e.perm);
        let perm_of = |tag| self.entries.iter().find(|e| e.tag == tag).map(|e| e.perm);
        if peer.uid == uid {
            return perm_of(USER_OBJ).is_some_and(has);
        }
        if let Some(user) = self
            .entries
            .iter()
            .find(|e| e.tag == USER && e.id == peer.uid)
        {
            return has(user.perm & mask);
        }
        let mut in_a_group = false;
        for entry in &self.entries {
            let group = match entry.tag {
                GROUP_OBJ => gid,
                GROUP => entry.id,
                _ => continue,
            };
            if peer.in_group(group) {
                in_a_group = true;
                if has(entry.perm & mask) {
                    return true;
                }
            }
        }
        !in_a_group && perm_of(OTHER).is_some_and(has)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut bytes = VERSION.to_le_bytes().to_vec();
        for &(tag, perm, id) in entries {
            bytes.extend(tag.to_le_bytes());
            bytes.extend(perm.to_le_bytes());
            bytes.extend(id.to_le_bytes());
        }
        bytes
    }

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Credentials {
        Credentials {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    const ANY: u32 = u32::MAX;

    #[test]
    fn named_entries_and_the_mask_decide_before_other() {
        // user::rw- user:1001:--- group::r-- group:50:rw- mask::r-- other::r--
        let acl = Acl::parse(&acl(&[
            (USER_OBJ, 6, ANY),
            (USER, 0, 1001),
            (GROUP_OBJ, 4, ANY),
            (GROUP, 6, 50),
            (MASK, 4, ANY),
            (OTHER, 4, ANY),
        ]))
        .unwrap();
        let (owner, group) = (1000, 100);
        assert!(acl.grants(&peer(1000, 1, &[]), owner, group, 6));
        // Denied by name, although others may read.
        assert!(!acl.grants(&peer(1001, 1, &[]), owner, group, 4));
        // A named group: read passes the mask, write does not.
        assert!(acl.grants(&peer(1002, 1, &[50]), owner, group, 4));
        assert!(!acl.grants(&peer(1002, 1, &[50]), owner, group, 2));
        assert!(acl.grants(&peer(1003, 9, &[]), owner, group, 4));
    }

    #[test]
    fn a_matching_group_without_the_bits_denies_even_when_other_allows() {
        // user::rw- group::--- group:7:r-- mask::r-- other::r--
        let acl = Acl::parse(&acl(&[
            (USER_OBJ, 6, ANY),
            (GROUP_OBJ, 0, ANY),
            (GROUP, 4, 7),
            (MASK, 4, ANY),
            (OTHER, 4, ANY),
        ]))
        .unwrap();
        assert!(!acl.grants(&peer(1001, 100, &[]), 1000, 100, 4));
        assert!(acl.grants(&peer(1001, 1, &[7]), 1000, 100, 4));
        assert!(acl.grants(&peer(1002, 1, &[]), 1000, 100, 4));
    }

    #[test]
    fn malformed_attributes_are_not_acls() {
        assert_eq!(Acl::parse(&[]), None);
        assert_eq!(Acl::parse(&[1, 0, 0, 0]), None);
        assert_eq!(Acl::parse(&[2, 0, 0, 0, 1]), None);
    }

    #[test]
    fn the_acl_of_a_real_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "x").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        use std::os::fd::AsFd;
        assert_eq!(Acl::of(file.as_fd()).unwrap(), None, "mode bits only");
        let bytes = acl(&[
            (USER_OBJ, 6, ANY),
            (USER, 0, 65534),
            (GROUP_OBJ, 4, ANY),
            (MASK, 4, ANY),
            (OTHER, 4, ANY),
        ]);
        let (cpath, name) = (
            CString::new(path.to_str().unwrap()).unwrap(),
            CString::new(XATTR_NAME).unwrap(),
        );
        // SAFETY: NUL-terminated strings and a live buffer.
        let set = unsafe {
            nix::libc::setxattr(
                cpath.as_ptr(),
                name.as_ptr(),
                bytes.as_ptr().cast(),
                bytes.len(),
                0,
            )
        };
        assert_eq!(
            set,
            0,
            "cannot set an ACL on {} (a file system without ACLs?): {}",
            path.display(),
            io::Error::last_os_error()
        );
        let read = Acl::of(file.as_fd()).unwrap().expect("an ACL");
        assert!(!read.grants(&peer(65534, 65534, &[]), 0, 0, 4));
    }
}
