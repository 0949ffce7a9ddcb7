//! Startup recovery: clean up after a previous run that did not stop
//! cleanly, before any new work runs.
//!
//! For every variation the store still has running: its FFmpeg process
//! group is killed (SIGKILL) only when the stored pid, start time and boot
//! id still name the same process, so a reused pid is never hit. Its
//! temporary file is dealt with through the job's output directory
//! reopened as vetted (see [`crate::access::vetted`]), so a directory
//! renamed or swapped since is never searched or changed: when the file
//! was already published under its output name (the daemon died between
//! publishing and recording, and a published file was verified and synced
//! first), the output is recorded as the variation's; otherwise the
//! temporary file is removed. Then the store marks the rest interrupted.

use crate::access::vetted::{self, FileIdentity, Walked};
use crate::access::{Judge, Want};
use crate::process::ProcessIdentity;
use crate::proto::JobId;
use crate::queue::{Interrupted, Outcome, Queue, QueueError};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::signal::{Signal, killpg};
use nix::sys::stat::{Mode, SFlag, fstatat};
use nix::unistd::{Pid, UnlinkatFlags, unlinkat};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// What recovery did.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    /// Orphaned FFmpeg processes killed.
    pub killed: usize,
    /// Temporary files removed.
    pub removed: usize,
    /// Outputs published but not recorded before the stop, now recorded.
    pub adopted: usize,
    /// Jobs marked interrupted.
    pub jobs: Vec<JobId>,
}

/// Kill orphans, remove temporary files, mark interrupted work.
///
/// Errors: only queue errors; a process or file that cannot be handled is
/// logged and skipped.
pub async fn recover(queue: &dyn Queue) -> Result<Report, QueueError> {
    let mut report = Report::default();
    for orphan in queue.orphaned_processes().await? {
        kill_orphan(&orphan, &mut report);
    }
    for leftover in queue.interrupted().await? {
        if let Some(process) = &leftover.process {
            kill_orphan(process, &mut report);
        }
        match settle_temp(&leftover) {
            Ok(Settled::Published { output, size }) => {
                log::warn!(
                    "variation {} was published as {} before the stop: recorded now",
                    leftover.lease.id,
                    output.display()
                );
                let outcome = Outcome::Succeeded {
                    output,
                    size,
                    quality: None,
                };
                // What the run used died with it: its figures are unknown.
                let now = crate::queue::unix_now();
                let run = crate::history::RunFigures {
                    started_at: now,
                    ended_at: now,
                    ..Default::default()
                };
                queue.finish_variation(leftover.lease, outcome, run).await?;
                report.adopted += 1;
            }
            Ok(Settled::Removed) => report.removed += 1,
            Ok(Settled::Nothing) => {}
            Err(err) => log::warn!(
                "variation {}: cannot clean up its temporary file: {err}",
                leftover.lease.id
            ),
        }
    }
    report.jobs = queue.mark_interrupted().await?;
    if report != Report::default() {
        log::warn!(
            "recovered from an unclean stop: jobs {:?} interrupted, {} FFmpeg process(es) \
             killed, {} temporary file(s) removed, {} published output(s) recorded",
            report.jobs,
            report.killed,
            report.removed,
            report.adopted
        );
    }
    Ok(report)
}

/// Kill the process group of an orphaned FFmpeg (a lone encode's own, or
/// the whole pipeline an encoder of the pixel path is part of) if
/// `process` still names the same, live process.
fn kill_orphan(process: &ProcessIdentity, report: &mut Report) {
    if !process.is_alive() {
        return;
    }
    let group = process.group().unwrap_or(process.pid);
    match killpg(Pid::from_raw(group), Signal::SIGKILL) {
        Ok(()) => {
            log::warn!("killed orphaned FFmpeg process group {group}");
            report.killed += 1;
        }
        Err(err) => log::warn!("cannot kill orphan {}: {err}", process.pid),
    }
}

/// What became of an interrupted variation's temporary file.
pub enum Settled {
    /// It had been published: the output and its size in bytes.
    Published { output: PathBuf, size: u64 },
    /// It was removed.
    Removed,
    /// There was none.
    Nothing,
}

/// Why a temporary file could not be dealt with (logged; the variation is
/// marked interrupted all the same).
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("{0} is not a file name")]
    NotAName(PathBuf),
    #[error(transparent)]
    Directory(#[from] vetted::AccessError),
    #[error("cannot list the output directory: {0}")]
    List(#[source] Errno),
    #[error("cannot remove it: {0}")]
    Remove(#[source] Errno),
}

/// Find where the temporary file of `leftover` went: published under
/// another name in the vetted output directory (same inode), or still
/// there and then removed. The temporary name is removed first, then the
/// directory searched: a node that lost its claim publishes by that name,
/// so once it is gone such a node can no longer publish, and whatever it
/// published before is found. Blocking: call on a blocking thread.
///
/// Errors: the directory cannot be reopened as vetted, listed, or the file
/// removed.
pub fn settle_temp(leftover: &Interrupted) -> Result<Settled, CleanupError> {
    let Some(temp) = &leftover.temp_path else {
        return Ok(Settled::Nothing);
    };
    let name = temp
        .file_name()
        .ok_or_else(|| CleanupError::NotAName(temp.clone()))?;
    let dir = &leftover.output_dir;
    let dir = vetted::reopen(&dir.path, dir.identity, &Judge::Daemon, Want::CreateIn)?;
    let removed = match unlinkat(dir.fd(), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) => true,
        Err(Errno::ENOENT) => false,
        Err(errno) => return Err(CleanupError::Remove(errno)),
    };
    let published = match leftover.temp_identity {
        Some(identity) => published_name(&dir, name, identity)?,
        None => None,
    };
    Ok(match published {
        Some((output, size)) => Settled::Published {
            output: dir.real_path().join(output),
            size,
        },
        None if removed => Settled::Removed,
        None => Settled::Nothing,
    })
}

/// The name in `dir`, other than `temp`, of the regular file `identity`,
/// and its size in bytes.
fn published_name(
    dir: &Walked,
    temp: &OsStr,
    identity: FileIdentity,
) -> Result<Option<(OsString, u64)>, CleanupError> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut entries =
        nix::dir::Dir::openat(dir.fd(), ".", flags, Mode::empty()).map_err(CleanupError::List)?;
    for entry in entries.iter() {
        let Ok(entry) = entry else { continue };
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if entry.ino() != identity.ino || name == temp || name == "." || name == ".." {
            continue;
        }
        let Ok(stat) = fstatat(dir.fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        let regular = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG;
        let found = FileIdentity {
            dev: stat.st_dev,
            ino: stat.st_ino,
        };
        if regular && found.same_file(&identity) {
            return Ok(Some((name.to_os_string(), stat.st_size.max(0) as u64)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Credentials;
    use crate::queue::sqlite::{SqliteQueue, Store};
    use crate::queue::{NewJob, Work};
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    /// A job of one input with `n` variations, every variation claimed
    /// (running) with its temporary file created in `out`, as a daemon
    /// killed mid-encode leaves them. Returns the queue and the temp paths.
    fn crashed(dir: &Path, n: u32) -> (SqliteQueue, Vec<(i64, PathBuf)>) {
        let mut store = Store::open(&dir.join("t.db")).unwrap();
        let out = dir.join("out");
        std::fs::create_dir(&out).unwrap();
        let input = dir.join("a.mp4");
        std::fs::write(&input, "video").unwrap();
        let vet = |p: &Path, want| vetted::vet(p, &Judge::Daemon, want).unwrap().vetted();
        let effects = crate::effects::generate(&Default::default(), 1, 0, n).unwrap();
        store
            .create_job(&NewJob {
                seed: 1,
                output_dir: (out.clone(), vet(&out, Want::CreateIn)),
                variations: n,
                inputs: vec![(input.clone(), vet(&input, Want::Read), effects)],
                created_at: 0,
                priority: 0,
                labels: Vec::new(),
                owner: Credentials {
                    uid: 0,
                    gid: 0,
                    groups: vec![],
                },
            })
            .unwrap();
        let Some(Work::Probe { lease, .. }) = store.next_work(0, 1).unwrap() else {
            panic!("a probe comes first")
        };
        store.start_probe(lease.id).unwrap();
        store
            .finish_probe(
                lease.id,
                crate::job::Media {
                    duration_us: Some(1_000_000),
                    ..Default::default()
                },
                0.,
            )
            .unwrap();
        let mut temps = Vec::new();
        while let Some(Work::Encode(batch)) = store.next_work(0, 1).unwrap() {
            let work = &batch[0];
            let temp = out.join(format!(".a_v{:02}.part", work.index));
            assert!(store.start_variation(work.lease.id, &temp).unwrap());
            std::fs::write(&temp, "encoded").unwrap();
            let meta = std::fs::metadata(&temp).unwrap();
            let identity = FileIdentity {
                dev: meta.dev(),
                ino: meta.ino(),
            };
            store.set_temp(work.lease.id, identity).unwrap();
            temps.push((work.lease.id, temp));
        }
        drop(store);
        (SqliteQueue::open(&dir.join("t.db")).unwrap(), temps)
    }

    #[tokio::test]
    async fn an_output_published_but_not_recorded_is_recorded_and_the_rest_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().canonicalize().unwrap();
        let (queue, temps) = crashed(&dir, 3);
        let out = dir.join("out");
        // Variation 1 was linked and its temporary name removed; variation
        // 2 linked only; variation 3 still encoding.
        std::fs::hard_link(&temps[0].1, out.join("a_v01.mp4")).unwrap();
        std::fs::remove_file(&temps[0].1).unwrap();
        std::fs::hard_link(&temps[1].1, out.join("a_v02.mp4")).unwrap();

        let report = recover(&queue).await.unwrap();
        assert_eq!((report.adopted, report.removed), (2, 1));
        let job = report.jobs[0];
        let outputs: Vec<PathBuf> = queue
            .outputs(job)
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.path)
            .collect();
        assert_eq!(outputs, [out.join("a_v01.mp4"), out.join("a_v02.mp4")]);
        let mut names: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["a_v01.mp4", "a_v02.mp4"]);
        assert_eq!(
            queue.job(job).await.unwrap().unwrap().state,
            crate::proto::JobState::Partial,
            "one variation of the only input was interrupted, two outputs exist"
        );
    }

    #[tokio::test]
    async fn a_directory_swapped_since_is_neither_searched_nor_changed() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().canonicalize().unwrap();
        let (queue, temps) = crashed(&dir, 1);
        let out = dir.join("out");
        std::fs::rename(&out, dir.join("moved")).unwrap();
        std::fs::create_dir(&out).unwrap();
        let decoy = out.join(temps[0].1.file_name().unwrap());
        std::fs::write(&decoy, "not ours").unwrap();

        let report = recover(&queue).await.unwrap();
        assert_eq!((report.adopted, report.removed), (0, 0));
        assert_eq!(std::fs::read_to_string(&decoy).unwrap(), "not ours");
    }
}
