//! The work of one slot: probe an input, or encode, verify and publish one
//! variation.
//!
//! An encode writes to a hidden temporary file in the output directory
//! (its path is in the store before the file exists, so recovery can remove
//! it), is verified with ffprobe because FFmpeg's exit status 0 is not
//! proof of a good file, and is then published under
//! `<input stem>_v<NN>.mp4` with a hard link, which never replaces an
//! existing file. A failed or stopped encode leaves no file behind.

use crate::access::{self, Peer, Want};
use crate::ffmpeg::{argv, probe};
use crate::process::RunAs;
use crate::proto::JobId;
use crate::scheduler::{Scheduler, describe_io};
use crate::store::{EncodeWork, Outcome};
use crate::supervisor::{self, End};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// Largest relative difference between input and output duration accepted.
pub const DURATION_TOLERANCE: f64 = 0.05;
/// Smallest absolute difference always accepted, microseconds: a few
/// frames, which frame-rate conversion of a very short clip may add.
pub const DURATION_SLACK_US: u64 = 150_000;

/// Probe one input; on success its variations become startable, on failure
/// the file fails with a reason a person can act on.
pub async fn probe(s: &Scheduler, job_id: JobId, file_id: i64, path: &Path, owner: &Peer) {
    let run_as = RunAs::for_owner(owner);
    let result = tokio::select! {
        r = check_and_probe(s, path, owner, run_as.as_ref()) => r,
        () = s.until_stopping() => return,
    };
    match result {
        Ok(info) => {
            log::info!(
                "job {job_id}: probed {}: {} video, {}, duration {}",
                path.display(),
                info.video_codec,
                if info.has_audio {
                    "with audio"
                } else {
                    "no audio"
                },
                info.duration_us
                    .map_or("unknown".into(), |d| format!("{:.3}s", d as f64 / 1e6))
            );
            record(s, job_id, |store| {
                store.finish_probe(file_id, info.duration_us)
            })
            .await;
        }
        Err(reason) => {
            log::warn!("job {job_id}: {} failed: {reason}", path.display());
            if let Some(state) = record(s, job_id, |store| store.fail_file(file_id, &reason)).await
            {
                log_if_final(job_id, state);
            }
        }
    }
}

/// Attempts at writing an outcome to the store before giving up.
const RECORD_ATTEMPTS: u32 = 8;

/// Write an outcome to the store, trying again with growing pauses (1, 2,
/// 4 ... 30 s) while it fails, e.g. on a full disk or a database locked by
/// another process, so that a job does not stay "running" for ever. Gives
/// up (logged) after [`RECORD_ATTEMPTS`] or at shutdown; startup recovery
/// then settles what was left.
async fn record<T>(
    s: &Scheduler,
    job_id: JobId,
    mut write: impl FnMut(&mut crate::store::Store) -> Result<T, crate::store::StoreError>,
) -> Option<T> {
    let mut pause = std::time::Duration::from_secs(1);
    for attempt in 1..=RECORD_ATTEMPTS {
        let result = write(&mut s.store());
        match result {
            Ok(value) => return Some(value),
            Err(err) => {
                log::error!("job {job_id}: cannot record an outcome (attempt {attempt}): {err}")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = s.until_stopping() => return None,
        }
        pause = (pause * 2).min(std::time::Duration::from_secs(30));
    }
    None
}

async fn check_and_probe(
    s: &Scheduler,
    path: &Path,
    owner: &Peer,
    run_as: Option<&RunAs>,
) -> Result<probe::ProbeInfo, String> {
    // On a blocking thread: a dead network mount may hang any file call.
    let checked = path.to_path_buf();
    let judge = s.acts_for(owner).then(|| owner.clone());
    blocking(move || check_input(&checked, judge.as_ref())).await?;
    probe::probe(&s.config.ffprobe, path, run_as)
        .await
        .map_err(|e| e.to_string())
}

/// Whether `path` is a non-empty regular file that can be read: by `owner`
/// when given (who may have lost access since submitting), else by the
/// daemon. Never opens anything but a regular file, so a FIFO cannot block.
fn check_input(path: &Path, owner: Option<&Peer>) -> Result<(), String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read input: {}", describe_io(&e)))?;
    if meta.is_dir() {
        return Err("input is a directory, not a video file".into());
    }
    if !meta.is_file() {
        // A FIFO or device cannot be read once per variation.
        return Err("input is not a regular file (a pipe or device?)".into());
    }
    if meta.len() == 0 {
        return Err("input is an empty file, not a video".into());
    }
    match owner {
        Some(owner) => access::check(owner, path, Want::Read)
            .map_err(|reason| format!("cannot read input: {reason}")),
        None => std::fs::File::open(path)
            .map(drop)
            .map_err(|e| format!("cannot read input: {}", describe_io(&e))),
    }
}

/// The temporary file of an encode: hidden, in the output directory (so
/// publishing is a link on one filesystem), named after the variation id.
pub fn temp_path(work: &EncodeWork) -> PathBuf {
    work.output_dir.join(format!(
        ".{}_v{:02}.vidvar-{}.part",
        stem(&work.input),
        work.index,
        work.variation_id
    ))
}

/// Longest stem kept in output names, in bytes, so that names stay within
/// NAME_MAX (255 bytes) with their suffixes.
const MAX_STEM_BYTES: usize = 200;

/// The input's name without extension, for output names: leading dots
/// dropped (outputs are never hidden), cut to [`MAX_STEM_BYTES`] on a
/// character boundary, `video` when nothing is left.
fn stem(input: &Path) -> String {
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let name = name.trim_start_matches('.');
    let stem = match name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => name,
    };
    let mut end = stem.len().min(MAX_STEM_BYTES);
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    match &stem[..end] {
        "" => "video".into(),
        cut => cut.into(),
    }
}

/// `<stem>_v<NN>.mp4` in the output directory.
fn output_name(work: &EncodeWork, n: u32) -> PathBuf {
    work.output_dir
        .join(format!("{}_v{n:02}.mp4", stem(&work.input)))
}

/// Encode, verify and publish one claimed variation, then record the outcome.
/// When stopped by shutdown, the outcome is left for the store's
/// interrupted-work marking.
pub async fn encode(s: &Scheduler, work: &EncodeWork, temp: &Path, cancel: &CancellationToken) {
    let run_as = RunAs::for_owner(&work.owner);
    let result = run_encode(s, work, temp, run_as.as_ref(), cancel).await;
    if !matches!(result, Ok(Some(_))) {
        remove_temp(temp, run_as.as_ref()).await;
    }
    let outcome = match result {
        Ok(Some(published)) => published,
        Ok(None) if s.is_stopping() => return,
        Ok(None) => Outcome::Cancelled,
        Err(error) => Outcome::Failed {
            error: format!("variation {}: {error}", work.index),
        },
    };
    match &outcome {
        Outcome::Succeeded { output, size } => log::info!(
            "job {}: {} variation {} -> {} ({size} bytes)",
            work.job_id,
            work.input.display(),
            work.index,
            output.display()
        ),
        Outcome::Failed { error } => {
            log::warn!("job {}: {}: {error}", work.job_id, work.input.display())
        }
        Outcome::Cancelled => {}
    }
    let recorded = record(s, work.job_id, |store| {
        store.finish_variation(work.variation_id, &outcome)
    });
    if let Some(state) = recorded.await {
        log_if_final(work.job_id, state);
    }
}

fn log_if_final(job_id: JobId, state: crate::proto::JobState) {
    if state.is_final() {
        log::info!("job {job_id}: finished, {}", state.as_str());
    }
}

/// Remove an encode's temporary file, as the job's owner.
async fn remove_temp(temp: &Path, run_as: Option<&RunAs>) {
    let (path, run_as) = (temp.to_path_buf(), run_as.cloned());
    let removed = blocking(move || {
        as_owner(run_as.as_ref(), || match std::fs::remove_file(&path) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        })
        .map_err(|e| e.to_string())
    })
    .await;
    if let Err(err) = removed {
        log::warn!("cannot remove {}: {err}", temp.display());
    }
}

/// Run `f` with the job owner's filesystem credentials when the daemon
/// acts for another user (see [`RunAs::with_fs_creds`]); on a blocking
/// thread only.
fn as_owner<R>(run_as: Option<&RunAs>, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
    match run_as {
        Some(run_as) => run_as.with_fs_creds(f),
        None => f(),
    }
}

/// `Ok(None)`: stopped by cancellation. `Err`: the reason it failed.
async fn run_encode(
    s: &Scheduler,
    work: &EncodeWork,
    temp: &Path,
    run_as: Option<&RunAs>,
    cancel: &CancellationToken,
) -> Result<Option<Outcome>, String> {
    let tunables = s.tunables();
    {
        let (dir, temp, run_as) = (work.output_dir.clone(), temp.to_path_buf(), run_as.cloned());
        // A daemon that cannot take the owner's credentials checks again:
        // the directory may have changed since the job was submitted.
        let judge = (s.acts_for(&work.owner) && run_as.is_none()).then(|| work.owner.clone());
        blocking(move || {
            if let Some(owner) = &judge {
                access::check(owner, &dir, Want::CreateIn)?;
            }
            check_free_space(&dir, tunables.min_free_bytes)?;
            as_owner(run_as.as_ref(), || create_temp(&temp)).map_err(|e| {
                format!(
                    "cannot create a file in {}: {}",
                    dir.display(),
                    describe_io(&e)
                )
            })
        })
        .await?;
    }
    let end = supervisor::run(
        supervisor::Encode {
            program: &s.config.ffmpeg,
            args: argv::encode(&work.input, temp, &work.effects, &s.config.encode),
            duration_us: work.duration_us,
            grace: tunables.grace,
            stall_timeout: tunables.stall_timeout,
            run_as,
        },
        cancel,
        |identity| {
            log::debug!(
                "job {}: ffmpeg pid {} for variation {}",
                work.job_id,
                identity.pid,
                work.index
            );
            if let Err(err) = s.store().set_process(work.variation_id, identity) {
                log::error!("job {}: cannot record ffmpeg pid: {err}", work.job_id);
            }
        },
        |progress| s.report_progress(work.variation_id, progress),
    )
    .await
    .map_err(|e| e.to_string())?;
    match end {
        End::Stopped => Ok(None),
        End::Stalled => Err(format!(
            "stalled: FFmpeg made no progress for {} s and was stopped",
            tunables.stall_timeout.as_secs_f64()
        )),
        End::Exited {
            status,
            stderr_tail,
        } if !status.success() => Err(format!(
            "FFmpeg failed ({status}){}",
            if stderr_tail.is_empty() {
                String::new()
            } else {
                format!(": {stderr_tail}")
            }
        )),
        End::Exited { .. } => {
            verify(s, work, temp, run_as).await?;
            let (temp, work, run_as) = (temp.to_path_buf(), work.clone(), run_as.cloned());
            let (output, size) = blocking(move || {
                as_owner(run_as.as_ref(), || publish(&temp, &work))
                    .map_err(|e| format!("cannot publish output: {}", describe_io(&e)))
            })
            .await?;
            Ok(Some(Outcome::Succeeded { output, size }))
        }
    }
}

/// Run filesystem work on a blocking thread: a dead network mount may hang
/// any file call, and must not hang the runtime's workers with it.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("file operation failed: {e}"))?
}

/// Create the temporary file, replacing a leftover of an earlier run of the
/// same variation. `create_new` never follows a symlink placed there.
fn create_temp(temp: &Path) -> io::Result<()> {
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(temp)
    };
    match open() {
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(temp)?;
            open().map(drop)
        }
        other => other.map(drop),
    }
}

/// Refuse to start when the output filesystem has less than `min_free`
/// bytes available to unprivileged users (statvfs(3)).
fn check_free_space(dir: &Path, min_free: u64) -> Result<(), String> {
    let stat = nix::sys::statvfs::statvfs(dir)
        .map_err(|e| format!("cannot check free space in {}: {e}", dir.display()))?;
    let free = (stat.blocks_available() as u64).saturating_mul(stat.fragment_size() as u64);
    if free < min_free {
        return Err(format!(
            "not enough free space in {}: {} MiB free, {} MiB required (min_free_space_mib)",
            dir.display(),
            free >> 20,
            min_free >> 20
        ));
    }
    Ok(())
}

/// Whether an output of `actual` µs is a whole encode of an input of
/// `expected` µs: within [`DURATION_TOLERANCE`], or [`DURATION_SLACK_US`].
fn duration_matches(expected: u64, actual: u64) -> Result<(), String> {
    let allowed = ((expected as f64 * DURATION_TOLERANCE) as u64).max(DURATION_SLACK_US);
    let secs = |us: u64| us as f64 / 1e6;
    if actual + allowed < expected {
        return Err(format!(
            "output lasts {:.3} s but the input claims {:.3} s: the input is truncated or \
             damaged, or the disk filled up",
            secs(actual),
            secs(expected)
        ));
    }
    if actual > expected + allowed {
        return Err(format!(
            "output lasts {:.3} s, longer than the input's {:.3} s: FFmpeg misread the input",
            secs(actual),
            secs(expected)
        ));
    }
    Ok(())
}

/// Check an encode's output before it becomes visible, since FFmpeg's exit
/// status 0 proves nothing: a video stream whose first frames decode, and a
/// duration matching the input's when known (see [`duration_matches`]).
async fn verify(
    s: &Scheduler,
    work: &EncodeWork,
    temp: &Path,
    run_as: Option<&RunAs>,
) -> Result<(), String> {
    let info = probe::verify(&s.config.ffprobe, temp, run_as)
        .await
        .map_err(|e| format!("FFmpeg exited 0 but its output is broken: {e}"))?;
    if let (Some(expected), Some(actual)) = (work.duration_us, info.duration_us) {
        duration_matches(expected, actual)?;
    } else if work.duration_us.is_some() {
        return Err("output has no duration: the encode is incomplete".into());
    }
    Ok(())
}

/// Move the verified temporary file, synced to disk, to the first free
/// `<stem>_v<NN>.mp4` (the directory synced after),
/// NN counting up from the variation's index, never replacing a file: a
/// hard link then unlink, or on filesystems without hard links (vfat,
/// exFAT, some network mounts) renameat2(2) with `RENAME_NOREPLACE`.
/// Returns the final path and its size in bytes.
fn publish(temp: &Path, work: &EncodeWork) -> io::Result<(PathBuf, u64)> {
    // On disk before it is named and recorded: after a power loss the
    // database must not list a truncated output.
    std::fs::File::open(temp)?.sync_all()?;
    let size = std::fs::metadata(temp)?.len();
    for n in work.index.. {
        let target = output_name(work, n);
        let placed = match std::fs::hard_link(temp, &target) {
            Err(err) if links_unsupported(&err) => rename_no_replace(temp, &target),
            Ok(()) => {
                if let Err(err) = std::fs::remove_file(temp) {
                    // Published all the same; only the second name stays.
                    log::warn!("cannot remove {}: {err}", temp.display());
                }
                Ok(())
            }
            Err(err) => Err(err),
        };
        match placed {
            Ok(()) => {
                // The new name itself is durable once the directory is; a
                // directory the owner may write but not read cannot be
                // synced, which must not undo a good output.
                if let Err(err) = std::fs::File::open(&work.output_dir).and_then(|d| d.sync_all()) {
                    log::debug!("cannot sync {}: {err}", work.output_dir.display());
                }
                return Ok((target, size));
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        }
    }
    Err(io::Error::other("no free output name"))
}

fn links_unsupported(err: &io::Error) -> bool {
    use nix::libc::{EMLINK, EOPNOTSUPP, EPERM};
    matches!(err.raw_os_error(), Some(EPERM | EOPNOTSUPP | EMLINK))
}

fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_match_within_five_percent_or_a_few_frames() {
        assert!(duration_matches(10_000_000, 9_600_000).is_ok());
        assert!(duration_matches(10_000_000, 10_400_000).is_ok());
        let short = duration_matches(10_000_000, 5_000_000).unwrap_err();
        assert!(short.contains("truncated"), "{short}");
        let long = duration_matches(10_000_000, 12_000_000).unwrap_err();
        assert!(long.contains("longer than the input"), "{long}");
        // A 0.2 s clip re-timed to 29.97 frames/s.
        assert!(duration_matches(200_000, 267_000).is_ok());
    }

    fn work(input: &str, index: u32) -> EncodeWork {
        EncodeWork {
            job_id: 1,
            file_id: 1,
            variation_id: 77,
            index,
            input: input.into(),
            output_dir: "/out".into(),
            duration_us: None,
            effects: crate::proto::Effects {
                rotation: 0.0,
                brightness: 0.0,
                contrast: 1.0,
                saturation: 1.0,
            },
            owner: Peer {
                uid: 0,
                gid: 0,
                groups: vec![],
            },
        }
    }

    #[test]
    fn the_rename_fallback_never_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        std::fs::write(&a, "new").unwrap();
        std::fs::write(&b, "old").unwrap();
        let err = rename_no_replace(&a, &b).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "old");
        rename_no_replace(&a, &c).unwrap();
        assert_eq!(std::fs::read_to_string(&c).unwrap(), "new");
    }

    #[test]
    fn names_fit_the_filesystem_and_are_never_hidden() {
        use std::os::unix::ffi::OsStrExt;
        let long = format!("/in/{}.mp4", "é".repeat(200));
        for path in [
            temp_path(&work(&long, 1000)),
            output_name(&work(&long, 1), 1000),
        ] {
            let name = path.file_name().unwrap();
            assert!(name.len() <= 255, "{} bytes", name.len());
            assert!(
                std::str::from_utf8(name.as_bytes()).is_ok(),
                "cut on a char boundary"
            );
        }
        assert_eq!(
            output_name(&work("/in/.mp4", 1), 1),
            Path::new("/out/mp4_v01.mp4")
        );
        assert_eq!(
            output_name(&work("/in/...", 2), 2),
            Path::new("/out/video_v02.mp4")
        );
        assert_eq!(
            output_name(&work("/in/a b.mov", 3), 12),
            Path::new("/out/a b_v12.mp4")
        );
    }
}
