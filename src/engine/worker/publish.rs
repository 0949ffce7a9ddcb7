//! A checked temporary file given its final name, the first free
//! `<input stem>_v<NN>.mp4` (see [`crate::naming`]), without ever
//! replacing a file: linkat(2), or renameat2(2) with `RENAME_NOREPLACE`
//! where hard links are not supported, relative to the output directory's
//! descriptor; the file and the directory synced to disk.

use super::files::Target;
use crate::escape::logged;
use crate::naming::output_name;
use crate::queue::VariationWork;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags, openat, renameat2};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, linkat, unlinkat};
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// Give the checked temporary file, synced to disk, the first free name
/// `<stem>_v<NN>.mp4` (the directory synced after), NN counting up from
/// the variation's index, never replacing a file: linkat(2) then unlink,
/// or on filesystems without hard links (vfat, exFAT, some network
/// mounts) renameat2(2) with `RENAME_NOREPLACE`; both relative to the
/// directory's descriptor. Returns the final path and its size in bytes.
pub(super) fn publish(target: &Target, work: &VariationWork) -> io::Result<(PathBuf, u64)> {
    // On disk before it is named and recorded: after a power loss the
    // database must not list a truncated output.
    target.temp.sync_all()?;
    let size = target.temp.metadata()?.len();
    let (dir, temp) = (&target.dir, target.temp_name.as_os_str());
    for n in work.index.. {
        let name = output_name(&work.input, n, work.variations);
        let placed = match linkat(dir, temp, dir, name.as_os_str(), AtFlags::empty()) {
            Err(errno) if links_unsupported(errno) => rename_no_replace(dir, temp, &name),
            Ok(()) => {
                if let Err(err) = unlinkat(dir, temp, UnlinkatFlags::NoRemoveDir) {
                    // Published all the same; only the second name stays.
                    log::warn!(
                        "cannot remove {}: {err}",
                        logged(target.dir_path.join(temp))
                    );
                }
                Ok(())
            }
            Err(errno) => Err(errno),
        };
        match placed {
            Ok(()) => {
                // The new name itself is durable once the directory is; a
                // directory the owner may write but not read cannot be
                // synced, which must not undo a good output.
                if let Err(err) = sync_dir(dir) {
                    log::debug!("cannot sync {}: {err}", logged(&target.dir_path));
                }
                return Ok((target.dir_path.join(name), size));
            }
            Err(Errno::EEXIST) => continue,
            Err(errno) => return Err(errno.into()),
        }
    }
    Err(io::Error::other("no free output name"))
}

/// fsync(2) the directory `dir` (an `O_PATH` descriptor cannot be synced:
/// it is opened for reading first).
fn sync_dir(dir: &OwnedFd) -> io::Result<()> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    File::from(openat(dir, ".", flags, Mode::empty())?).sync_all()
}

fn links_unsupported(errno: Errno) -> bool {
    matches!(errno, Errno::EPERM | Errno::EOPNOTSUPP | Errno::EMLINK)
}

fn rename_no_replace(dir: &OwnedFd, from: &std::ffi::OsStr, to: &OsString) -> nix::Result<()> {
    renameat2(
        dir,
        from,
        dir,
        to.as_os_str(),
        RenameFlags::RENAME_NOREPLACE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rename_fallback_never_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "new").unwrap();
        std::fs::write(dir.path().join("b"), "old").unwrap();
        let fd = OwnedFd::from(File::open(dir.path()).unwrap());
        let err = rename_no_replace(&fd, "a".as_ref(), &"b".into()).unwrap_err();
        assert_eq!(err, Errno::EEXIST);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("b")).unwrap(),
            "old"
        );
        rename_no_replace(&fd, "a".as_ref(), &"c".into()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("c")).unwrap(),
            "new"
        );
    }
}
