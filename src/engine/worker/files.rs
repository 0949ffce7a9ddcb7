//! The files of a slot's work, as vetted at submit: the input reopened
//! for reading, the output directory for creating in and its free space
//! checked, the hidden temporary file created in it (and removed again
//! when the encode does not publish), the check's reference pictures in
//! memory. Filesystem calls run on a blocking thread ([`blocking`]) as the
//! job's owner ([`as_owner`]). Naming the output is `publish`'s.

use super::context::Context;
use crate::access::vetted::{self, AccessError, Walked};
use crate::access::{Judge, Want};
use crate::engine::failure::Failure;
use crate::escape::logged;
use crate::naming::temp_name;
use crate::process::RunAs;
use crate::queue::{Place, VariationWork};
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, unlinkat};
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

/// Open a vetted input for reading: still the file vetted at submit (see
/// [`vetted::reopen`]), still readable by `judge`, a non-empty regular
/// file. Never opens anything else, so a FIFO cannot block.
pub(super) fn open_input(input: &Place, judge: &Judge) -> Result<File, Failure> {
    let unusable = |err: AccessError| match err {
        AccessError::Changed { path } => Failure::InputChanged(path),
        AccessError::Denied { .. } => Failure::InputDenied,
        AccessError::Io { source, .. } => Failure::InputIo(source),
        other => Failure::InputUnusable(other),
    };
    let walked =
        vetted::reopen(&input.path, input.identity, judge, Want::Read).map_err(unusable)?;
    if walked.is_dir() {
        return Err(Failure::InputIsDirectory);
    }
    if !walked.is_regular_file() {
        return Err(Failure::InputNotRegular);
    }
    if walked.is_empty() {
        return Err(Failure::InputEmpty);
    }
    walked.open_read().map_err(unusable)
}

/// Open a job's vetted output directory for creating files in it: still
/// the directory vetted at submit, still writable for `judge`.
fn open_output_dir(dir: &Place, judge: &Judge) -> Result<Walked, Failure> {
    vetted::reopen(&dir.path, dir.identity, judge, Want::CreateIn).map_err(|err| match err {
        AccessError::Changed { path } => Failure::OutputDirChanged(path),
        AccessError::Denied { path } => Failure::OutputDirDenied(path),
        other => Failure::OutputDirUnusable(other),
    })
}

/// The output directory of one encode, open, and the temporary file
/// created in it.
pub(super) struct Target {
    /// The vetted output directory (`O_PATH`).
    pub(super) dir: OwnedFd,
    /// Its real path, for records and messages.
    pub(super) dir_path: PathBuf,
    pub(super) temp_name: OsString,
    /// The temporary file, open for reading and writing.
    pub(super) temp: File,
    /// The reference pictures of the check, written by the encode: an
    /// anonymous file in memory (memfd_create(2)), a few hundred KiB.
    pub(super) refs: File,
}

/// Open the input and the output directory as vetted, check the free
/// space, and create the temporary file: everything an encode needs
/// before FFmpeg starts. Returns the open input and the target.
pub(super) async fn prepare(
    s: &dyn Context,
    work: &VariationWork,
    run_as: Option<&RunAs>,
) -> Result<(File, Target), Failure> {
    let judge = s.judge_for(&work.owner);
    let min_free = s.tunables().min_free_bytes;
    let (work, run_as) = (work.clone(), run_as.cloned());
    blocking(move || {
        as_owner(run_as.as_ref(), || {
            // The input first: a changed input fails before any file exists.
            let input = open_input(&work.input_place, &judge)?;
            let dir = open_output_dir(&work.output_dir, &judge)?;
            check_free_space(&dir, min_free)?;
            let temp_name = temp_name(&work.input, work.index, work.lease);
            let temp = create_temp(&dir, &temp_name).map_err(|source| Failure::CreateTemp {
                dir: dir.real_path().to_path_buf(),
                source,
            })?;
            let refs = nix::sys::memfd::memfd_create(
                c"vidvar-check",
                nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
            )
            .map_err(|errno| Failure::CheckFile(errno.into()))?;
            let target = Target {
                dir_path: dir.real_path().to_path_buf(),
                dir: dir.into_fd(),
                temp_name,
                temp,
                refs: File::from(refs),
            };
            Ok((input, target))
        })
    })
    .await
}

/// Create the temporary file `name` in `dir` (`O_CREAT | O_EXCL`, never
/// through a symlink), replacing a leftover of an earlier run of the same
/// variation.
fn create_temp(dir: &Walked, name: &OsString) -> io::Result<File> {
    let open = || {
        openat(
            dir.fd(),
            name.as_os_str(),
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
    };
    let fd = match open() {
        Err(Errno::EEXIST) => {
            unlinkat(dir.fd(), name.as_os_str(), UnlinkatFlags::NoRemoveDir)?;
            open()?
        }
        other => other?,
    };
    Ok(File::from(fd))
}

/// Refuse to start when the output filesystem has less than `min_free`
/// bytes available to unprivileged users (fstatvfs(3)).
fn check_free_space(dir: &Walked, min_free: u64) -> Result<(), Failure> {
    let stat =
        nix::sys::statvfs::fstatvfs(dir.fd()).map_err(|source| Failure::FreeSpaceUnknown {
            dir: dir.real_path().to_path_buf(),
            source,
        })?;
    let free = (stat.blocks_available() as u64).saturating_mul(stat.fragment_size() as u64);
    if free < min_free {
        return Err(Failure::NoSpace {
            dir: dir.real_path().to_path_buf(),
            free,
            needed: min_free,
        });
    }
    Ok(())
}

/// Remove an encode's temporary file through its directory's descriptor,
/// as the job's owner.
pub(super) async fn remove_temp(target: Arc<Target>, run_as: Option<&RunAs>) {
    let run_as = run_as.cloned();
    let shown = target.dir_path.join(&target.temp_name);
    let removed = blocking(move || {
        as_owner(run_as.as_ref(), || {
            match unlinkat(
                &target.dir,
                target.temp_name.as_os_str(),
                UnlinkatFlags::NoRemoveDir,
            ) {
                Ok(()) | Err(Errno::ENOENT) => Ok(()),
                Err(errno) => Err(Failure::RemoveTemp(errno.into())),
            }
        })
    })
    .await;
    if let Err(err) = removed {
        log::warn!("cannot remove {}: {err}", logged(shown));
    }
}

/// Run `f` with the job owner's filesystem credentials when the daemon
/// acts for another user (see [`RunAs::with_fs_creds`]); on a blocking
/// thread only.
pub(super) fn as_owner<R>(
    run_as: Option<&RunAs>,
    f: impl FnOnce() -> Result<R, Failure>,
) -> Result<R, Failure> {
    match run_as {
        Some(run_as) => run_as
            .with_fs_creds(|| Ok(f()))
            .map_err(Failure::Credentials)?,
        None => f(),
    }
}

/// Run filesystem work on a blocking thread: a dead network mount may hang
/// any file call, and must not hang the runtime's workers with it.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(Failure::Blocking)?
}
