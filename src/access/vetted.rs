//! Files used on a user's behalf are the very files vetted for that user.
//!
//! At submit, [`vet`] resolves a path as path_resolution(7) does, symlinks
//! followed, but one component at a time from `/`, each opened with
//! `O_PATH | O_NOFOLLOW` (open(2)) relative to the directory before it. The
//! [`Judge`] rules on each directory passed (search permission) and on the
//! file reached, always on the descriptor just opened, never on a path
//! that could be swapped in between. What is kept is a [`Vetted`] file: its
//! real path (no symlinks left in it) and its [`FileIdentity`] (device and
//! inode, stat(2)).
//!
//! Every later use calls [`reopen`]: the same walk along the real path, but
//! refusing any symlink, then the identity compared with the vetted one. A
//! file or directory renamed, replaced or symlinked in between is refused
//! ([`AccessError::Changed`]), never used; permissions are judged again.
//! The caller then works through the descriptors it got (FFmpeg is handed
//! `/dev/fd/N`; temporary files are created, published and removed with
//! `*at` calls relative to the directory's descriptor) and never through
//! the path again.
//!
//! A component walk rather than openat2(2) with `RESOLVE_NO_SYMLINKS`: the
//! walk judges every directory on the descriptor it opened, which openat2
//! cannot, and it runs on any Linux kernel.

use super::{Judge, Want, X, describe_io};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};
use nix::unistd::AccessFlags;
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// Most symlinks one resolution follows, as Linux does (`MAXSYMLINKS`,
/// path_resolution(7)); more is `ELOOP`.
pub const MAX_SYMLINKS: usize = 40;

pub use crate::job::{FileIdentity, Vetted};

/// Which file `stat` describes.
fn identity_of(stat: &FileStat) -> FileIdentity {
    FileIdentity {
        dev: stat.st_dev,
        ino: stat.st_ino,
    }
}

/// Why a path cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("cannot use {}: {}", path.display(), describe_io(source))]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("permission denied: {}", path.display())]
    Denied { path: PathBuf },
    #[error("{} is not a directory", path.display())]
    NotDirectory { path: PathBuf },
    /// The file, or a directory on its way, was renamed, replaced or
    /// symlinked since it was vetted.
    #[error("{} is not the file it was when the job was submitted", path.display())]
    Changed { path: PathBuf },
}

impl AccessError {
    fn io(path: &Path, errno: Errno) -> AccessError {
        AccessError::Io {
            path: path.to_path_buf(),
            source: io::Error::from(errno),
        }
    }
}

/// A path walked to its last component.
#[derive(Debug)]
pub struct Walked {
    /// The directory holding it (`O_PATH`); `/` itself for `/`.
    parent: OwnedFd,
    /// Its name in `parent`; `.` for `/`.
    name: OsString,
    /// The file itself (`O_PATH`): pins it while it is judged.
    fd: OwnedFd,
    stat: FileStat,
    real: PathBuf,
}

/// What to do with a symlink met on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Symlinks {
    Follow,
    Refuse,
}

/// Resolve `path` (absolute) for `judge`, following symlinks, and judge
/// `want` on the file reached (for [`Want::CreateIn`] and [`Want::List`] it must be a
/// directory). Returns the walk, from which [`Walked::vetted`] gives what
/// to store.
///
/// Errors: [`AccessError::Io`] (missing, `ELOOP` past [`MAX_SYMLINKS`], a
/// file where a directory is needed...), [`AccessError::Denied`] when the
/// judge refuses a directory on the way or the file, and
/// [`AccessError::NotDirectory`].
pub fn vet(path: &Path, judge: &Judge, want: Want) -> Result<Walked, AccessError> {
    let walked = walk(path, judge, Symlinks::Follow)?;
    walked.check(judge, want)?;
    Ok(walked)
}

/// Walk to a vetted file again, refusing every symlink, and check that it
/// is the same file; then judge `want` again (access may have been taken
/// away since). A vetted file of an older database, without an identity,
/// is walked as at submit.
///
/// Errors: [`AccessError::Changed`] when a component is now a symlink or
/// the file is another one; the errors of [`vet`] otherwise.
pub fn reopen(
    path: &Path,
    identity: Option<FileIdentity>,
    judge: &Judge,
    want: Want,
) -> Result<Walked, AccessError> {
    let Some(identity) = identity else {
        return vet(path, judge, want);
    };
    let walked = walk(path, judge, Symlinks::Refuse)?;
    if !walked.identity().same_file(&identity) {
        return Err(AccessError::Changed {
            path: path.to_path_buf(),
        });
    }
    walked.check(judge, want)?;
    Ok(walked)
}

impl Walked {
    /// Which file was reached.
    pub fn identity(&self) -> FileIdentity {
        identity_of(&self.stat)
    }

    /// The real path and identity, to be stored.
    pub fn vetted(&self) -> Vetted {
        Vetted {
            real: self.real.clone(),
            identity: self.identity(),
        }
    }

    /// The path walked, without symlinks.
    pub fn real_path(&self) -> &Path {
        &self.real
    }

    /// The file's type bits (`S_IFMT` of `st_mode`).
    fn kind(&self) -> SFlag {
        SFlag::from_bits_truncate(self.stat.st_mode) & SFlag::S_IFMT
    }

    pub fn is_dir(&self) -> bool {
        self.kind() == SFlag::S_IFDIR
    }

    pub fn is_regular_file(&self) -> bool {
        self.kind() == SFlag::S_IFREG
    }

    /// Size in bytes (`st_size`).
    pub fn len(&self) -> u64 {
        self.stat.st_size.max(0) as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The directory itself (`O_PATH`), for `*at` calls relative to it.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Give up the walk and keep the descriptor of the file itself.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Judge `want` on the file reached, for `judge` (as [`vet`] did for
    /// its own `want`): a second right on the same walk.
    ///
    /// Errors: [`AccessError::Denied`], [`AccessError::NotDirectory`].
    pub fn check(&self, judge: &Judge, want: Want) -> Result<(), AccessError> {
        if matches!(want, Want::CreateIn | Want::List) && !self.is_dir() {
            return Err(AccessError::NotDirectory {
                path: self.real.clone(),
            });
        }
        let denied = || AccessError::Denied {
            path: self.real.clone(),
        };
        if !judge.grants(self.fd.as_fd(), &self.stat, want.bits()) {
            return Err(denied());
        }
        if matches!(judge, Judge::Daemon) {
            // The daemon's own access: the kernel decides (faccessat(2)
            // with AT_EACCESS, on this very name in this very directory).
            let mode = match want {
                Want::Read => AccessFlags::R_OK,
                Want::CreateIn => AccessFlags::W_OK | AccessFlags::X_OK,
                Want::List => AccessFlags::R_OK | AccessFlags::X_OK,
            };
            let flags = AtFlags::AT_EACCESS | AtFlags::AT_SYMLINK_NOFOLLOW;
            nix::unistd::faccessat(&self.parent, self.name.as_os_str(), mode, flags)
                .map_err(|_| denied())?;
        }
        Ok(())
    }

    /// Open the regular file for reading, for handing to FFmpeg: a fresh
    /// open of the same name in the same directory, without following a
    /// symlink, checked to be the file that was judged.
    ///
    /// Errors: [`AccessError::Changed`] when the name now holds another
    /// file or a symlink; [`AccessError::Io`] when it cannot be opened.
    pub fn open_read(&self) -> Result<File, AccessError> {
        let flags = OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC;
        let fd =
            openat(&self.parent, self.name.as_os_str(), flags, Mode::empty()).map_err(|errno| {
                match errno {
                    Errno::ELOOP => AccessError::Changed {
                        path: self.real.clone(),
                    },
                    other => AccessError::io(&self.real, other),
                }
            })?;
        let stat = fstat(&fd).map_err(|e| AccessError::io(&self.real, e))?;
        if !identity_of(&stat).same_file(&self.identity()) {
            return Err(AccessError::Changed {
                path: self.real.clone(),
            });
        }
        Ok(File::from(fd))
    }
}

fn open_path(dir: impl AsFd, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// The walk itself: see the module docs.
fn walk(path: &Path, judge: &Judge, symlinks: Symlinks) -> Result<Walked, AccessError> {
    if !path.is_absolute() {
        return Err(AccessError::Io {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "path is not absolute"),
        });
    }
    let root = open_path(nix::fcntl::AT_FDCWD, OsStr::new("/"))
        .map_err(|e| AccessError::io(Path::new("/"), e))?;
    // The directories walked so far, `/` first, with their names.
    let mut dirs: Vec<(OwnedFd, OsString)> = Vec::new();
    let mut current = root;
    let mut pending: VecDeque<OsString> = names(path);
    let mut followed = 0;
    let real = |dirs: &[(OwnedFd, OsString)]| -> PathBuf {
        let mut p = PathBuf::from("/");
        p.extend(dirs.iter().map(|(_, name)| name));
        p
    };
    loop {
        let Some(name) = pending.pop_front() else {
            // Nothing after the last directory: the path names a
            // directory (`/`, or one reached by `..`).
            let here = real(&dirs);
            let stat = fstat(&current).map_err(|e| AccessError::io(&here, e))?;
            let (parent, name) = match dirs.pop() {
                Some(entry) => entry,
                None => (
                    open_path(&current, OsStr::new(".")).map_err(|e| AccessError::io(&here, e))?,
                    OsString::from("."),
                ),
            };
            return Ok(Walked {
                parent,
                name,
                fd: current,
                stat,
                real: here,
            });
        };
        if name == ".." {
            // Each entry holds the directory above the next one.
            if let Some((fd, _)) = dirs.pop() {
                current = fd;
            }
            continue;
        }
        let here = real(&dirs).join(&name);
        let fd = open_path(&current, &name).map_err(|e| AccessError::io(&here, e))?;
        let stat = fstat(&fd).map_err(|e| AccessError::io(&here, e))?;
        let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFLNK {
            if symlinks == Symlinks::Refuse {
                return Err(AccessError::Changed { path: here });
            }
            followed += 1;
            if followed > MAX_SYMLINKS {
                return Err(AccessError::io(&here, Errno::ELOOP));
            }
            let target =
                readlinkat(&current, name.as_os_str()).map_err(|e| AccessError::io(&here, e))?;
            let target = PathBuf::from(target);
            if target.is_absolute() {
                // Back to `/`, which every walk may search.
                while let Some((fd, _)) = dirs.pop() {
                    current = fd;
                }
            }
            for component in names(&target).into_iter().rev() {
                pending.push_front(component);
            }
            continue;
        }
        if pending.is_empty() {
            return Ok(Walked {
                parent: current,
                name,
                fd,
                stat,
                real: here,
            });
        }
        if kind != SFlag::S_IFDIR {
            return Err(AccessError::io(&here, Errno::ENOTDIR));
        }
        if !judge.grants(fd.as_fd(), &stat, X) {
            return Err(AccessError::Denied { path: here });
        }
        let previous = std::mem::replace(&mut current, fd);
        dirs.push((previous, name));
    }
}

/// The names of a path's components, `..` kept, `/` and `.` dropped.
fn names(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Credentials;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    fn me() -> Judge {
        Judge::Daemon
    }

    #[test]
    fn symlinks_are_resolved_at_submit_and_refused_afterwards() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::fs::create_dir(base.join("real")).unwrap();
        std::fs::write(base.join("real/clip.mp4"), "video").unwrap();
        symlink("real", base.join("link")).unwrap();
        symlink("../real/clip.mp4", base.join("real/alias.mp4")).unwrap();

        let walked = vet(&base.join("link/alias.mp4"), &me(), Want::Read).unwrap();
        let vetted = walked.vetted();
        assert_eq!(vetted.real, base.join("real/clip.mp4"));
        let meta = std::fs::metadata(base.join("real/clip.mp4")).unwrap();
        assert_eq!(vetted.identity.ino, meta.ino());
        assert_eq!(
            walked.open_read().unwrap().metadata().unwrap().ino(),
            meta.ino()
        );

        // The real path opens again as the same file...
        reopen(&vetted.real, Some(vetted.identity), &me(), Want::Read).unwrap();
        // ...but not once a directory on the way became a symlink,
        std::fs::rename(base.join("real"), base.join("moved")).unwrap();
        symlink("moved", base.join("real")).unwrap();
        let err = reopen(&vetted.real, Some(vetted.identity), &me(), Want::Read).unwrap_err();
        assert!(matches!(err, AccessError::Changed { .. }), "{err}");
        // ...or the name holds another file.
        std::fs::remove_file(base.join("real")).unwrap();
        std::fs::create_dir(base.join("real")).unwrap();
        std::fs::write(base.join("real/clip.mp4"), "other").unwrap();
        let err = reopen(&vetted.real, Some(vetted.identity), &me(), Want::Read).unwrap_err();
        assert!(matches!(err, AccessError::Changed { .. }), "{err}");
    }

    #[test]
    fn a_file_swapped_after_the_walk_is_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("clip.mp4");
        std::fs::write(&clip, "video").unwrap();
        let walked = vet(&clip, &me(), Want::Read).unwrap();
        std::fs::remove_file(&clip).unwrap();
        symlink("/etc/hostname", &clip).unwrap();
        assert!(matches!(
            walked.open_read(),
            Err(AccessError::Changed { .. })
        ));
    }

    #[test]
    fn dots_loops_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::fs::create_dir(base.join("a")).unwrap();
        let up = vet(&base.join("a/../a/./.."), &me(), Want::CreateIn).unwrap();
        assert_eq!(up.real_path(), base);
        assert!(up.is_dir());
        let root = vet(Path::new("/"), &me(), Want::Read).unwrap();
        assert_eq!(root.real_path(), Path::new("/"));

        symlink("loop", base.join("loop")).unwrap();
        let err = vet(&base.join("loop"), &me(), Want::Read).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot use {}: {}",
                base.join("loop").display(),
                io::Error::from(Errno::ELOOP)
            )
        );
        let err = vet(&base.join("nope"), &me(), Want::Read).unwrap_err();
        assert!(err.to_string().contains("no such file"), "{err}");
        std::fs::write(base.join("f"), "x").unwrap();
        let err = vet(&base.join("f/g"), &me(), Want::Read).unwrap_err();
        assert!(err.to_string().contains("Not a directory"), "{err}");
        let err = vet(&base.join("f"), &me(), Want::CreateIn).unwrap_err();
        assert!(matches!(err, AccessError::NotDirectory { .. }), "{err}");
    }

    #[test]
    fn another_user_is_judged_on_every_directory_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::fs::create_dir(base.join("open")).unwrap();
        std::fs::write(base.join("open/clip.mp4"), "x").unwrap();
        let stranger = Judge::User(Credentials {
            uid: 4_000_000,
            gid: 4_000_000,
            groups: vec![],
        });
        let mode = |p: &str, m: u32| {
            std::fs::set_permissions(base.join(p), std::fs::Permissions::from_mode(m)).unwrap()
        };
        // A directory on the way that others may not search.
        mode("", 0o700);
        let err = vet(&base.join("open/clip.mp4"), &stranger, Want::Read).unwrap_err();
        assert!(matches!(err, AccessError::Denied { .. }), "{err}");
        mode("", 0o711);
        mode("open/clip.mp4", 0o644);
        vet(&base.join("open/clip.mp4"), &stranger, Want::Read).unwrap();
        mode("open/clip.mp4", 0o600);
        let err = vet(&base.join("open/clip.mp4"), &stranger, Want::Read).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "permission denied: {}",
                base.join("open/clip.mp4").display()
            )
        );
        // Writing needs w and x on the directory.
        mode("open", 0o755);
        assert!(vet(&base.join("open"), &stranger, Want::CreateIn).is_err());
        mode("open", 0o733);
        vet(&base.join("open"), &stranger, Want::CreateIn).unwrap();
    }
}
