//! What is done with a folder's input once its job ended (blocking: run it
//! on a blocking thread). A job that succeeded gets the folder's `--after`
//! action, one that failed or was partial its `--failed` action (which never
//! deletes), a cancelled one nothing. The input is touched only if it is
//! still the very file that was taken (same name, inode, size and mtime,
//! not a symlink), and only through directories vetted anew for the
//! folder's owner ([`crate::access::vetted`]): removing needs write
//! permission on the folder, moving on both directories. A move is a
//! rename on one file system, else a copy (fsynced, owned like the input)
//! under a hidden name, renamed into place, then the input removed.

use crate::access::vetted::{self, AccessError};
use crate::access::{Judge, Want};
use crate::folder::{AfterAction, FailedAction, FileKey, FolderSpec};
use crate::job::JobState;
use crate::queue::EndedFile;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags, openat, renameat2};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat};
use nix::unistd::UnlinkatFlags;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Most names tried in the target directory (`name`, `name-1`, ...) before
/// a move gives up.
const MAX_NAME_TRIES: u32 = 100;

/// What was done with the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    Kept,
    Deleted,
    /// Moved to this path.
    Moved(PathBuf),
}

/// Why the action could not be done (the input is left where it is).
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("{} is no longer the file that was taken: left alone", path.display())]
    Changed { path: PathBuf },
    /// Its directory is sticky and the folder's owner owns neither it nor
    /// the file: they could not remove it themselves.
    #[error("{} is another user's in a sticky directory: left alone", path.display())]
    Sticky { path: PathBuf },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(Errno) -> ActionError {
    let path = path.to_path_buf();
    move |errno| ActionError::Io {
        action,
        path,
        source: errno.into(),
    }
}

/// The action `spec` owes `ended`: `None` to keep it, else whether to move
/// it (and where) or delete it.
fn owed(ended: &EndedFile, spec: &FolderSpec) -> Option<AfterAction> {
    match ended.state? {
        JobState::Succeeded => Some(spec.after.clone()),
        JobState::Failed | JobState::Partial => match &spec.failed {
            FailedAction::Keep => None,
            FailedAction::Move(dir) => Some(AfterAction::Move(dir.clone())),
        },
        JobState::Cancelled | JobState::Queued | JobState::Running => None,
    }
    .filter(|action| *action != AfterAction::Keep)
}

fn key_of(stat: &FileStat) -> FileKey {
    FileKey {
        dev: stat.st_dev,
        ino: stat.st_ino,
        size: stat.st_size.max(0) as u64,
        mtime_ns: stat.st_mtime * 1_000_000_000 + stat.st_mtime_nsec,
    }
}

/// Whether `judge` may remove `file` from `dir`, a directory it may
/// write: from a sticky one (`S_ISVTX`, as /tmp) only the owner of the
/// file or of the directory may (and root), as unlink(2) says.
fn may_unlink(judge: &Judge, dir: &FileStat, file: &FileStat) -> bool {
    match judge {
        Judge::Daemon => true,
        Judge::User(peer) => {
            peer.is_root()
                || dir.st_mode & Mode::S_ISVTX.bits() == 0
                || peer.uid == file.st_uid
                || peer.uid == dir.st_uid
        }
    }
}

/// Do what `spec` says with the input of `ended`, judged for `judge` (the
/// folder's owner).
///
/// Errors: [`ActionError`]; nothing is removed then.
pub fn settle_input(
    ended: &EndedFile,
    spec: &FolderSpec,
    judge: &Judge,
) -> Result<Done, ActionError> {
    let Some(action) = owed(ended, spec) else {
        return Ok(Done::Kept);
    };
    let path = &ended.file.path;
    let changed = || ActionError::Changed { path: path.clone() };
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(changed());
    };
    let dir = vetted::vet(parent, judge, Want::CreateIn)?;
    let stat = match fstatat(dir.fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::ENOENT) => return Err(changed()),
        Err(errno) => return Err(io("look at", path)(errno)),
    };
    let regular = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG;
    if !regular || key_of(&stat) != ended.file.key {
        return Err(changed());
    }
    let dir_stat = nix::sys::stat::fstat(dir.fd()).map_err(io("look at", parent))?;
    if !may_unlink(judge, &dir_stat, &stat) {
        return Err(ActionError::Sticky { path: path.clone() });
    }
    match action {
        AfterAction::Keep => Ok(Done::Kept),
        AfterAction::Delete => {
            nix::unistd::unlinkat(dir.fd(), name, UnlinkatFlags::NoRemoveDir)
                .map_err(io("remove", path))?;
            Ok(Done::Deleted)
        }
        AfterAction::Move(target) => {
            let to = vetted::vet(&target, judge, Want::CreateIn)?;
            let moved = move_into(dir.fd(), name, &stat, to.fd(), &target)
                .map_err(|(action, errno)| io(action, path)(errno))?;
            Ok(Done::Moved(moved))
        }
    }
}

/// `name` as the `n`th try: `clip.mp4`, `clip-1.mp4`, `clip-2.mp4`...
fn try_name(name: &OsStr, n: u32) -> OsString {
    if n == 0 {
        return name.to_os_string();
    }
    let path = Path::new(name);
    match (path.file_stem(), path.extension()) {
        (Some(stem), Some(ext)) => {
            let mut s = stem.to_os_string();
            s.push(format!("-{n}."));
            s.push(ext);
            s
        }
        _ => {
            let mut s = name.to_os_string();
            s.push(format!("-{n}"));
            s
        }
    }
}

/// Move `name` (as `stat` describes it) from `from` to a free name in `to`
/// (the directory `target`); returns its new path. The failing step and its
/// error otherwise.
fn move_into(
    from: BorrowedFd<'_>,
    name: &OsStr,
    stat: &FileStat,
    to: BorrowedFd<'_>,
    target: &Path,
) -> Result<PathBuf, (&'static str, Errno)> {
    let mut copied: Option<OsString> = None;
    let mut n = 0;
    while n < MAX_NAME_TRIES {
        let new = try_name(name, n);
        let renamed = match &copied {
            None => renameat2(
                from,
                name,
                to,
                new.as_os_str(),
                RenameFlags::RENAME_NOREPLACE,
            ),
            Some(temp) => renameat2(
                to,
                temp.as_os_str(),
                to,
                new.as_os_str(),
                RenameFlags::RENAME_NOREPLACE,
            ),
        };
        match renamed {
            Ok(()) => {
                if copied.is_some() {
                    // The copy's name is on disk before the input goes
                    // (`to` is an O_PATH descriptor: fsync needs an open
                    // directory).
                    sync_dir(to).map_err(|e| ("sync the target directory", e))?;
                    // Only while the name is still the file that was
                    // copied: a new upload under it stays.
                    let now = fstatat(from, name, AtFlags::AT_SYMLINK_NOFOLLOW);
                    if now.is_ok_and(|now| key_of(&now) == key_of(stat)) {
                        nix::unistd::unlinkat(from, name, UnlinkatFlags::NoRemoveDir)
                            .map_err(|e| ("remove the moved", e))?;
                    }
                }
                return Ok(target.join(new));
            }
            Err(Errno::EEXIST) => n += 1,
            // Another file system: copy, then try the same name again.
            Err(Errno::EXDEV) if copied.is_none() => {
                copied = Some(copy_over(from, name, stat, to).map_err(|e| ("copy", e))?);
            }
            Err(errno) => return Err(("move", errno)),
        }
    }
    if let Some(temp) = copied {
        let _ = nix::unistd::unlinkat(to, temp.as_os_str(), UnlinkatFlags::NoRemoveDir);
    }
    Err(("find a free name to move", Errno::EEXIST))
}

/// fsync(2) the directory `dir` names (an `O_PATH` descriptor).
fn sync_dir(dir: BorrowedFd<'_>) -> Result<(), Errno> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let open = openat(dir, ".", flags, Mode::empty())?;
    nix::unistd::fsync(&open)
}

/// Copy `name` in `from` (the file `stat` describes) into a new hidden
/// file in `to`, with its mode and owner, and fsync it; returns its name.
fn copy_over(
    from: BorrowedFd<'_>,
    name: &OsStr,
    stat: &FileStat,
    to: BorrowedFd<'_>,
) -> Result<OsString, Errno> {
    let source = openat(
        from,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut source = File::from(source);
    if key_of(&nix::sys::stat::fstat(&source)?) != key_of(stat) {
        return Err(Errno::ESTALE);
    }
    let mut temp = OsString::from(".");
    temp.push(name);
    temp.push(".vidvar-move.part");
    // Private until it has its owner; then the input's permission bits,
    // never set-id ones.
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let target = openat(to, temp.as_os_str(), flags, Mode::from_bits_truncate(0o600))?;
    let mut target = File::from(target);
    let copied = std::io::copy(&mut source, &mut target).and_then(|_| {
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::fchown(&target, Some(stat.st_uid), Some(stat.st_gid))?;
        }
        target.set_permissions(std::fs::Permissions::from_mode(stat.st_mode & 0o777))?;
        target.sync_all()
    });
    if let Err(err) = copied {
        let _ = nix::unistd::unlinkat(to, temp.as_os_str(), UnlinkatFlags::NoRemoveDir);
        return Err(err.raw_os_error().map_or(Errno::EIO, Errno::from_raw));
    }
    Ok(temp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_owner_removes_from_a_sticky_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.mp4");
        std::fs::write(&file, "x").unwrap();
        let stat_of = |p: &Path| nix::sys::stat::stat(p).unwrap();
        let (mut sticky, file) = (stat_of(dir.path()), stat_of(&file));
        let user = |uid| {
            Judge::User(crate::job::Credentials {
                uid,
                gid: uid,
                groups: vec![],
            })
        };
        let stranger = user(file.st_uid.wrapping_add(4_000_001));
        assert!(may_unlink(&stranger, &sticky, &file), "not sticky");
        sticky.st_mode |= Mode::S_ISVTX.bits();
        assert!(!may_unlink(&stranger, &sticky, &file));
        assert!(may_unlink(&user(file.st_uid), &sticky, &file));
        assert!(may_unlink(&Judge::Daemon, &sticky, &file));
    }

    #[test]
    fn names_are_tried_with_a_number_before_the_extension() {
        let name = OsStr::new("clip.mp4");
        assert_eq!(try_name(name, 0), "clip.mp4");
        assert_eq!(try_name(name, 2), "clip-2.mp4");
        assert_eq!(try_name(OsStr::new("clip"), 1), "clip-1");
    }
}
