//! Startup recovery: clean up after a previous run that did not stop
//! cleanly, before any new work runs.
//!
//! For every variation the store still has running: its FFmpeg process
//! group is killed (SIGKILL) only when the stored pid, start time and boot
//! id still name the same process, so a reused pid is never hit; its
//! temporary file is removed through the job's output directory reopened
//! as vetted (see [`crate::access::vetted`]), so a directory renamed or
//! swapped since is never searched for a file to delete. Then the store
//! marks the work interrupted.

use crate::access::vetted;
use crate::access::{Judge, Want};
use crate::proto::JobId;
use crate::store::{Place, Store, StoreError};
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, UnlinkatFlags, unlinkat};
use std::path::Path;

/// What recovery did.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    /// Orphaned FFmpeg processes killed.
    pub killed: usize,
    /// Temporary files removed.
    pub removed: usize,
    /// Jobs marked interrupted.
    pub jobs: Vec<JobId>,
}

/// Kill orphans, remove temporary files, mark interrupted work.
///
/// Errors: only store errors; a process or file that cannot be handled is
/// logged and skipped.
pub fn recover(store: &mut Store) -> Result<Report, StoreError> {
    let mut report = Report::default();
    for leftover in store.interrupted()? {
        if let Some(process) = leftover.process.filter(|p| p.is_alive()) {
            match killpg(Pid::from_raw(process.pid), Signal::SIGKILL) {
                Ok(()) => {
                    log::warn!("killed orphaned FFmpeg process group {}", process.pid);
                    report.killed += 1;
                }
                Err(err) => log::warn!("cannot kill orphan {}: {err}", process.pid),
            }
        }
        if let Some(temp) = leftover.temp_path {
            match remove_temp(&leftover.output_dir, &temp) {
                Ok(true) => report.removed += 1,
                Ok(false) => {}
                Err(err) => log::warn!("cannot remove {}: {err}", temp.display()),
            }
        }
    }
    report.jobs = store.mark_interrupted()?;
    if report != Report::default() {
        log::warn!(
            "recovered from an unclean stop: jobs {:?} interrupted, {} FFmpeg process(es) killed, {} temporary file(s) removed",
            report.jobs,
            report.killed,
            report.removed
        );
    }
    Ok(report)
}

/// Remove the temporary file `temp` (only its name is used) from the
/// vetted directory `dir`. Returns whether a file was removed.
fn remove_temp(dir: &Place, temp: &Path) -> Result<bool, String> {
    let name = temp.file_name().ok_or("not a file name")?;
    let dir = vetted::reopen(&dir.path, dir.identity, &Judge::Daemon, Want::CreateIn)
        .map_err(|e| e.to_string())?;
    match unlinkat(dir.fd(), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) => Ok(true),
        Err(Errno::ENOENT) => Ok(false),
        Err(errno) => Err(errno.desc().into()),
    }
}
