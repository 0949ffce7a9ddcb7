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
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// Largest relative difference between input and output duration accepted.
pub const DURATION_TOLERANCE: f64 = 0.05;

/// Probe one input; on success its variations become startable, on failure
/// the file fails with a reason a person can act on.
pub async fn probe(s: &Scheduler, job_id: JobId, file_id: i64, path: &Path, owner: &Peer) {
    let run_as = RunAs::for_owner(owner);
    let result = tokio::select! {
        r = check_and_probe(s, path, owner, run_as.as_ref()) => r,
        () = s.until_stopping() => return,
    };
    let store_result = match result {
        Ok(info) => {
            log::info!(
                "job {job_id}: probed {}: {} video, duration {}",
                path.display(),
                info.video_codec,
                info.duration_us
                    .map_or("unknown".into(), |d| format!("{:.3}s", d as f64 / 1e6))
            );
            s.store()
                .finish_probe(file_id, info.duration_us)
                .map(|_| ())
        }
        Err(reason) => {
            log::warn!("job {job_id}: {} failed: {reason}", path.display());
            let state = s.store().fail_file(file_id, &reason);
            state.map(|state| log_if_final(job_id, state))
        }
    };
    if let Err(err) = store_result {
        log::error!(
            "job {job_id}: cannot record probe of {}: {err}",
            path.display()
        );
    }
}

async fn check_and_probe(
    s: &Scheduler,
    path: &Path,
    owner: &Peer,
    run_as: Option<&RunAs>,
) -> Result<probe::ProbeInfo, String> {
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
    match run_as {
        // Judged as the owner, who may have lost access since submitting.
        Some(_) => access::check(owner, path, Want::Read)
            .map_err(|reason| format!("cannot read input: {reason}"))?,
        None => drop(
            std::fs::File::open(path)
                .map_err(|e| format!("cannot read input: {}", describe_io(&e)))?,
        ),
    }
    probe::probe(&s.config.ffprobe, path, run_as)
        .await
        .map_err(|e| e.to_string())
}

/// The temporary file of an encode: hidden, in the output directory (so
/// publishing is a link on one filesystem), named after the variation id.
pub fn temp_path(work: &EncodeWork) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(stem(&work.input));
    name.push(format!(
        "_v{:02}.vidvar-{}.part",
        work.index, work.variation_id
    ));
    work.output_dir.join(name)
}

fn stem(input: &Path) -> OsString {
    input
        .file_stem()
        .map_or_else(|| OsString::from("video"), |s| s.to_os_string())
}

/// Encode, verify and publish one claimed variation, then record the outcome.
/// When stopped by shutdown, the outcome is left for the store's
/// interrupted-work marking.
pub async fn encode(s: &Scheduler, work: &EncodeWork, temp: &Path, cancel: &CancellationToken) {
    let outcome = match run_encode(s, work, temp, cancel).await {
        Ok(Some(published)) => published,
        Ok(None) if s.is_stopping() => {
            remove_temp(temp);
            return;
        }
        Ok(None) => {
            remove_temp(temp);
            Outcome::Cancelled
        }
        Err(error) => {
            remove_temp(temp);
            Outcome::Failed {
                error: format!("variation {}: {error}", work.index),
            }
        }
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
    let result = s.store().finish_variation(work.variation_id, &outcome);
    match result {
        Ok(state) => log_if_final(work.job_id, state),
        Err(err) => log::error!("job {}: cannot record outcome: {err}", work.job_id),
    }
}

fn log_if_final(job_id: JobId, state: crate::proto::JobState) {
    if state.is_final() {
        log::info!("job {job_id}: finished, {}", state.as_str());
    }
}

fn remove_temp(temp: &Path) {
    match std::fs::remove_file(temp) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => log::warn!("cannot remove {}: {err}", temp.display()),
    }
}

/// `Ok(None)`: stopped by cancellation. `Err`: the reason it failed.
async fn run_encode(
    s: &Scheduler,
    work: &EncodeWork,
    temp: &Path,
    cancel: &CancellationToken,
) -> Result<Option<Outcome>, String> {
    let tunables = s.tunables();
    let run_as = RunAs::for_owner(&work.owner);
    check_free_space(&work.output_dir, tunables.min_free_bytes)?;
    create_temp(temp, run_as.as_ref()).map_err(|e| {
        format!(
            "cannot create a file in {}: {}",
            work.output_dir.display(),
            describe_io(&e)
        )
    })?;
    let end = supervisor::run(
        supervisor::Encode {
            program: &s.config.ffmpeg,
            args: argv::encode(&work.input, temp, &work.effects, &s.config.encode),
            duration_us: work.duration_us,
            grace: tunables.grace,
            stall_timeout: tunables.stall_timeout,
            run_as: run_as.as_ref(),
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
            verify(s, work, temp, run_as.as_ref()).await?;
            let (output, size) = publish(temp, work)
                .map_err(|e| format!("cannot publish output: {}", describe_io(&e)))?;
            Ok(Some(Outcome::Succeeded { output, size }))
        }
    }
}

/// Create the temporary file, replacing a leftover of an earlier run of the
/// same variation, owned by the user FFmpeg runs as. `create_new` never
/// follows a symlink placed there.
fn create_temp(temp: &Path, run_as: Option<&RunAs>) -> io::Result<()> {
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(temp)
    };
    let file = match open() {
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(temp)?;
            open()?
        }
        other => other?,
    };
    if let Some(run_as) = run_as {
        let (uid, gid) = run_as.ids();
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
    }
    Ok(())
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

/// Check an encode's output before it becomes visible, since FFmpeg's exit
/// status 0 proves nothing: a video stream whose first frames decode, and a
/// duration within [`DURATION_TOLERANCE`] of the input's when known.
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
        let off = (actual as f64 - expected as f64).abs() / expected as f64;
        if off > DURATION_TOLERANCE {
            return Err(format!(
                "output lasts {:.3} s but the input claims {:.3} s: the input is truncated \
                 or damaged, or the disk filled up",
                actual as f64 / 1e6,
                expected as f64 / 1e6
            ));
        }
    } else if work.duration_us.is_some() {
        return Err("output has no duration: the encode is incomplete".into());
    }
    Ok(())
}

/// Link the verified temporary file to the first free
/// `<stem>_v<NN>.mp4`, NN counting up from the variation's index, then
/// remove the temporary name. Returns the final path and its size in bytes.
fn publish(temp: &Path, work: &EncodeWork) -> io::Result<(PathBuf, u64)> {
    let size = std::fs::metadata(temp)?.len();
    let stem = stem(&work.input);
    for n in work.index.. {
        let mut name = stem.clone();
        name.push(format!("_v{n:02}.mp4"));
        let target = work.output_dir.join(name);
        match std::fs::hard_link(temp, &target) {
            Ok(()) => {
                std::fs::remove_file(temp)?;
                return Ok((target, size));
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        }
    }
    Err(io::Error::other("no free output name"))
}
