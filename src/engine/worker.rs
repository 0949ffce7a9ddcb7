//! The work of one slot: probe an input, or encode, check and publish one
//! variation.
//!
//! Files are used only as they were vetted at submit (see
//! [`crate::access::vetted`]): the input is reopened, compared with its
//! recorded identity and judged again, then read by ffprobe and FFmpeg as
//! `/dev/fd/N`; the output directory is reopened the same way once per
//! variation and held as a descriptor. An encode writes to a hidden
//! temporary file created in it with `O_EXCL` (its path is in the store
//! before the file exists, so recovery can remove it), is checked by one
//! more FFmpeg run because FFmpeg's exit status 0 is not proof of a good
//! file (sampled frames over its whole length decode and look like the
//! input with the effects applied, see [`crate::ffmpeg::check`]), and is
//! then published under `<input stem>_v<NN>.mp4` with linkat(2), which
//! never replaces an existing file. Creating, publishing and removing are
//! all relative to the directory's descriptor, so a directory renamed or
//! swapped meanwhile can neither redirect an output nor keep a stray
//! temporary file. A failed or stopped encode leaves no file behind.

use super::failure::Failure;
use super::meter::Meter;
use crate::access::vetted::{self, AccessError, FileIdentity, Walked};
use crate::access::{Judge, Want};
use crate::config::{PixelPath, Settings, Tunables};
use crate::engine::supervisor::Progress;
use crate::engine::supervisor::{self, End};
use crate::escape::logged;
use crate::ffmpeg::DEFAULT_FRAME_RATE;
use crate::ffmpeg::argv::{self, DecodePlan, EncodePlan};
use crate::ffmpeg::check;
use crate::ffmpeg::probe;
use crate::ffmpeg::samples::{self, Samples};
use crate::history::RunFigures;
use crate::job::{Credentials, FrameRate, JobId, JobState, Media, Quality, VideoStream};
use crate::naming::{output_name, temp_name};
use crate::process::{ProcessIdentity, RunAs};
use crate::queue::Queue;
use crate::queue::{Interrupted, Lease, Outcome, Place, QueueError, VariationWork};
use crate::recovery::{self, Settled};
use crate::rusage::{self, CpuMeter};
use futures_util::future::join_all;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags, openat, renameat2};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, linkat, unlinkat};
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a worker needs from the engine that runs it, and nothing more.
pub trait Context: Send + Sync {
    /// The job queue, where outcomes are recorded.
    fn queue(&self) -> &dyn Queue;
    /// The FFmpeg programs and the encoding settings.
    fn settings(&self) -> &Settings;
    /// The settings in force now (SIGHUP may change them).
    fn tunables(&self) -> Tunables;
    /// Whose permissions decide what a job of `owner` may use.
    fn judge_for(&self, owner: &Credentials) -> Judge;
    /// A running variation's progress, for `status` and `watch`.
    fn report_progress(&self, variation: i64, progress: Progress);
    /// Fires when the daemon begins to stop: work is then left for the
    /// queue's interrupted-work marking.
    fn stopping(&self) -> &CancellationToken;
}

/// Probe one input; on success its variations become startable, on failure
/// the file fails with a reason a person can act on. `path` is the input
/// as given, for the log; `input` the file as vetted. ffprobe's CPU time is
/// recorded with the outcome: shared by the file's variations' runs (see
/// [`crate::queue::Queue::finish_probe`] and
/// [`crate::queue::Queue::fail_file`]).
pub async fn probe(
    s: &dyn Context,
    job_id: JobId,
    lease: Lease,
    path: &Path,
    input: &Place,
    owner: &Credentials,
) {
    let run_as = RunAs::for_owner(owner);
    let meter = Meter::start();
    let result = tokio::select! {
        r = open_and_probe(s, input, owner, run_as.as_ref(), &meter.cpu) => r,
        () = s.stopping().cancelled() => return,
    };
    match result {
        Ok(info) => {
            let media = info.media;
            log::info!(
                "job {job_id}: probed {}: {} video{}, {}, {} frames/s, duration {}",
                logged(path),
                info.video_codec,
                if media.interlaced {
                    " (interlaced)"
                } else {
                    ""
                },
                if info.has_audio {
                    "with audio"
                } else {
                    "no audio"
                },
                media.frame_rate.map_or("unknown".into(), |r| r.to_string()),
                media
                    .duration_us
                    .map_or("unknown".into(), |d| format!("{:.3}s", d as f64 / 1e6))
            );
            let cpu = meter.cpu.seconds();
            let recorded = record(s, job_id, || s.queue().finish_probe(lease, media, cpu)).await;
            if recorded == Some(false) {
                log::warn!("job {job_id}: the probe's claim was lost: not recorded");
            }
        }
        Err(reason) => {
            let run = meter.figures(Some(reason.class()));
            let reason = match on_node(s) {
                Some(on) => format!("{on}: {reason}"),
                None => reason.to_string(),
            };
            log::warn!("job {job_id}: {} failed: {reason}", logged(path));
            if let Some(state) = record(s, job_id, || {
                s.queue().fail_file(lease, reason.clone(), run.clone())
            })
            .await
            {
                log_recorded(job_id, state);
            }
        }
    }
}

/// `on node NAME` in a shared queue, so that a reason says which node
/// could not read or write a file; `None` on one machine.
fn on_node(s: &dyn Context) -> Option<String> {
    let shared = s.settings().shared.as_ref()?;
    Some(format!("on node {}", shared.node.name))
}

/// Longest pause between two attempts at writing to the queue.
const RECORD_PAUSE_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// Write an outcome to the queue, trying again with growing pauses (1, 2,
/// 4 ... 30 s) while it fails, e.g. on a full disk or a database locked by
/// another process, until it is written or the daemon stops (`None`;
/// startup recovery then settles what was left). The worker's slot stays
/// taken meanwhile: a slot is free only once the work that held it is
/// recorded, so no other work (of a lower priority, say) starts before
/// the queue shows this work ended.
async fn record<T, F>(s: &dyn Context, job_id: JobId, mut write: impl FnMut() -> F) -> Option<T>
where
    F: std::future::Future<Output = Result<T, QueueError>>,
{
    let mut pause = std::time::Duration::from_secs(1);
    let mut attempt: u64 = 1;
    loop {
        match write().await {
            Ok(value) => return Some(value),
            Err(err) => {
                log::error!("job {job_id}: cannot record an outcome (attempt {attempt}): {err}")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = s.stopping().cancelled() => return None,
        }
        pause = (pause * 2).min(RECORD_PAUSE_MAX);
        attempt += 1;
    }
}

async fn open_and_probe(
    s: &dyn Context,
    input: &Place,
    owner: &Credentials,
    run_as: Option<&RunAs>,
    cpu: &CpuMeter,
) -> Result<probe::ProbeInfo, Failure> {
    let (input, judge, run_as_owned) = (input.clone(), s.judge_for(owner), run_as.cloned());
    let file =
        blocking(move || as_owner(run_as_owned.as_ref(), || open_input(&input, &judge))).await?;
    probe::probe(&s.settings().ffprobe, file.as_fd(), run_as, cpu)
        .await
        .map_err(Failure::Probe)
}

/// Open a vetted input for reading: still the file vetted at submit (see
/// [`vetted::reopen`]), still readable by `judge`, a non-empty regular
/// file. Never opens anything else, so a FIFO cannot block.
fn open_input(input: &Place, judge: &Judge) -> Result<File, Failure> {
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
struct Target {
    /// The vetted output directory (`O_PATH`).
    dir: OwnedFd,
    /// Its real path, for records and messages.
    dir_path: PathBuf,
    temp_name: OsString,
    /// The temporary file, open for reading and writing.
    temp: File,
    /// The reference pictures of the check, written by the encode: an
    /// anonymous file in memory (memfd_create(2)), a few hundred KiB.
    refs: File,
}

/// One variation of a batch, ready to encode: its input open, its
/// temporary file created and remembered.
struct Ready<'a> {
    work: &'a VariationWork,
    stop: &'a super::Stop,
    run_as: Option<RunAs>,
    input: File,
    target: Arc<Target>,
    meter: Meter,
}

/// Encode, check and publish a batch of claimed variations of one input
/// file (each holding a slot and its own lease), then record each
/// outcome. With `pixel_path = "vidvar"` the batch is one pipeline (see
/// [`super::pipeline`]), else one FFmpeg per variation. When stopped by
/// shutdown, an outcome is left for the store's interrupted-work marking.
pub async fn encode(s: &dyn Context, batch: &[(VariationWork, super::Stop)]) {
    let ready: Vec<Ready> = join_all(batch.iter().map(|(work, stop)| get_ready(s, work, stop)))
        .await
        .into_iter()
        .flatten()
        .collect();
    if ready.is_empty() {
        return;
    }
    let results = match s.tunables().pixel_path {
        PixelPath::Vidvar => run_pipeline(s, &ready).await,
        PixelPath::Ffmpeg => run_each(s, &ready).await,
    };
    join_all(
        ready
            .into_iter()
            .zip(results)
            .map(|(r, result)| conclude(s, r, result)),
    )
    .await;
}

/// Settle an earlier claim's leftovers, open the files and create the
/// temporary file of one variation; `None` when its outcome is recorded
/// already (settled, or failed before it could start).
async fn get_ready<'a>(
    s: &dyn Context,
    work: &'a VariationWork,
    stop: &'a super::Stop,
) -> Option<Ready<'a>> {
    let run_as = RunAs::for_owner(&work.owner);
    let meter = Meter::start();
    if let Some(previous) = &work.previous
        && let Some(settled) = settle_previous(work, previous, run_as.as_ref()).await
    {
        let reason = matches!(settled, Outcome::Failed { .. }).then_some("claim_lost");
        finish(s, work, settled, meter.figures(reason)).await;
        return None;
    }
    match prepare(s, work, run_as.as_ref()).await {
        Ok((input, target)) => {
            remember_temp(s, work, &target.temp).await;
            Some(Ready {
                work,
                stop,
                run_as,
                input,
                target: Arc::new(target),
                meter,
            })
        }
        Err(error) => {
            conclude_failed(s, work, error, &meter).await;
            None
        }
    }
}

/// Remove what a variation that did not publish left, and record its
/// outcome.
async fn conclude(s: &dyn Context, ready: Ready<'_>, result: Result<Option<Outcome>, Failure>) {
    let Ready {
        work,
        stop,
        run_as,
        input,
        target,
        meter,
    } = ready;
    drop(input);
    if !matches!(result, Ok(Some(_))) {
        remove_temp(target, run_as.as_ref()).await;
    }
    let outcome = match result {
        Ok(Some(published)) => published,
        Ok(None) if s.stopping().is_cancelled() => return,
        Ok(None) if stop.requeued() => Outcome::Requeued,
        Ok(None) => Outcome::Cancelled,
        Err(error) => return conclude_failed(s, work, error, &meter).await,
    };
    finish(s, work, outcome, meter.figures(None)).await;
}

/// Record a variation's failure, naming the node in a shared queue.
async fn conclude_failed(s: &dyn Context, work: &VariationWork, error: Failure, meter: &Meter) {
    let run = meter.figures(Some(error.class()));
    let error = match on_node(s) {
        Some(on) => format!("variation {} {on}: {error}", work.index),
        None => format!("variation {}: {error}", work.index),
    };
    finish(s, work, Outcome::Failed { error }, run).await;
}

/// Log how a variation ended and record it with its run's figures
/// (`run`, for the history), fenced by its lease.
async fn finish(s: &dyn Context, work: &VariationWork, outcome: Outcome, run: RunFigures) {
    match &outcome {
        Outcome::Succeeded {
            output,
            size,
            quality,
        } => log::info!(
            "job {}: {} variation {} -> {} ({size} bytes{})",
            work.job_id,
            logged(&work.input),
            work.index,
            logged(output),
            quality.map_or(String::new(), |q| format!(
                ", SSIM {:.4} (lowest {:.4}), luma difference {:.2}",
                q.ssim_mean, q.ssim_min, q.luma_diff
            ))
        ),
        Outcome::Failed { error } => {
            log::warn!("job {}: {}: {error}", work.job_id, logged(&work.input))
        }
        Outcome::Cancelled => {}
        Outcome::Requeued => log::info!(
            "job {}: {} variation {} stopped by pause --stop, queued again",
            work.job_id,
            logged(&work.input),
            work.index
        ),
    }
    let recorded = record(s, work.job_id, || {
        s.queue()
            .finish_variation(work.lease, outcome.clone(), run.clone())
    });
    if let Some(state) = recorded.await {
        log_recorded(work.job_id, state);
    }
}

/// Settle what an earlier, lost claim on this variation left (see
/// [`recovery::settle_temp`]), as the job's owner: its temporary file
/// removed (`None`: encode now), or, when it had been published already,
/// the outcome to record instead. Removing the old temporary name is what
/// keeps a node that lost the claim from publishing, so when that fails the
/// variation fails rather than risk a second output.
async fn settle_previous(
    work: &VariationWork,
    previous: &Interrupted,
    run_as: Option<&RunAs>,
) -> Option<Outcome> {
    let (previous, run_as) = (previous.clone(), run_as.cloned());
    let settled = blocking(move || {
        as_owner(run_as.as_ref(), || {
            recovery::settle_temp(&previous).map_err(Failure::LostClaimLeftovers)
        })
    })
    .await;
    match settled {
        Ok(Settled::Published { output, size }) => {
            log::warn!(
                "job {}: variation {} was published as {} under a lost claim: recorded now",
                work.job_id,
                work.index,
                logged(&output)
            );
            Some(Outcome::Succeeded {
                output,
                size,
                quality: None,
            })
        }
        Ok(Settled::Removed | Settled::Nothing) => None,
        Err(failure) => Some(Outcome::Failed {
            error: format!("variation {}: {failure}", work.index),
        }),
    }
}

/// Record which file the temporary file is, so that recovery can find it
/// under its published name should the daemon die between publishing and
/// recording (see [`crate::recovery`]).
/// Tried like an outcome ([`record`]); the output is not published without
/// it (see [`Queue::confirm`](crate::queue::Queue::confirm)).
async fn remember_temp(s: &dyn Context, work: &VariationWork, temp: &File) {
    use std::os::unix::fs::MetadataExt;
    match temp.metadata() {
        Ok(meta) => {
            let identity = FileIdentity {
                dev: meta.dev(),
                ino: meta.ino(),
            };
            record(s, work.job_id, || s.queue().set_temp(work.lease, identity)).await;
        }
        Err(err) => log::error!(
            "job {}: cannot read the temporary file's identity: {err}",
            work.job_id
        ),
    }
}

/// Log what recording an outcome did: the job's end, or a write refused
/// because the claim was lost to another node.
fn log_recorded(job_id: JobId, state: Option<JobState>) {
    match state {
        Some(state) if state.is_final() => {
            log::info!("job {job_id}: finished, {}", state.as_str())
        }
        Some(_) => {}
        None => log::warn!("job {job_id}: the claim was lost: outcome not recorded"),
    }
}

/// Remove an encode's temporary file through its directory's descriptor,
/// as the job's owner.
async fn remove_temp(target: Arc<Target>, run_as: Option<&RunAs>) {
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
fn as_owner<R>(
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

/// Open the input and the output directory as vetted, check the free
/// space, and create the temporary file: everything an encode needs
/// before FFmpeg starts. Returns the open input and the target.
async fn prepare(
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

/// The output frame rate of a variation: the settings' own, else the
/// input's.
fn output_rate(s: &dyn Context, work: &VariationWork) -> FrameRate {
    s.settings()
        .encode
        .frame_rate
        .or(work.media.frame_rate)
        .unwrap_or(DEFAULT_FRAME_RATE)
}

/// The frames the check samples of a variation at `rate`.
fn samples_of(work: &VariationWork, rate: FrameRate) -> Samples {
    Samples::plan(work.media.video_us.or(work.media.duration_us), rate)
}

/// Record the encoder of a variation, for recovery.
async fn remember_process(s: &dyn Context, work: &VariationWork, identity: ProcessIdentity) {
    log::debug!(
        "job {}: ffmpeg pid {} for variation {}",
        work.job_id,
        identity.pid,
        work.index
    );
    if let Err(err) = s.queue().set_process(work.lease, identity).await {
        log::error!("job {}: cannot record ffmpeg pid: {err}", work.job_id);
    }
}

/// Encode the open `input` into the target's temporary file, check and
/// publish it. `Ok(None)`: stopped by cancellation. `Err`: the reason it
/// failed.
async fn run_encode(
    s: &dyn Context,
    ready: &Ready<'_>,
    input: &File,
    cancel: &CancellationToken,
) -> Result<Option<Outcome>, Failure> {
    let (work, target, run_as) = (ready.work, &ready.target, ready.run_as.as_ref());
    let tunables = s.tunables();
    let settings = &s.settings().encode;
    let rate = output_rate(s, work);
    let stream = tokio::select! {
        stream = video_stream(s, &work.media, input, run_as, &ready.meter.cpu) => stream,
        () = cancel.cancelled() => return Ok(None),
    };
    let samples = samples_of(work, rate);
    let plan = EncodePlan {
        effects: &work.effects,
        settings,
        rate,
        deinterlace: work.media.interlaced,
        video_stream: stream.map_err(Failure::Probe)?.index as usize,
        samples: &samples,
    };
    let fds = [
        input.as_raw_fd(),
        target.temp.as_raw_fd(),
        target.refs.as_raw_fd(),
    ];
    let end = supervisor::run(
        supervisor::FfmpegRun {
            program: &s.settings().ffmpeg,
            args: argv::encode(fds[0], fds[1], fds[2], &plan),
            duration_us: work.media.duration_us,
            grace: tunables.grace,
            stall_timeout: Some(tunables.stall_timeout),
            run_as,
            inherit: &fds,
            stdin: None,
            group: supervisor::Group::Own,
            cpu: std::slice::from_ref(&ready.meter.cpu),
        },
        cancel,
        |identity| remember_process(s, work, identity),
        |progress| {
            ready.meter.saw(&progress);
            s.report_progress(work.lease.id, progress)
        },
    )
    .await
    .map_err(Failure::Supervisor)?;
    verify_and_publish(s, ready, end, &samples).await
}

/// The video stream to encode (see [`probe::parse`]) as the input's probe
/// stored it; for a file probed by an older vidvard, which did not store
/// it, ffprobe is asked again (its CPU time going to `cpu`).
async fn video_stream(
    s: &dyn Context,
    media: &Media,
    input: &File,
    run_as: Option<&RunAs>,
    cpu: &CpuMeter,
) -> Result<VideoStream, probe::ProbeError> {
    if let Some(stream) = media.stream {
        return Ok(stream);
    }
    let info = probe::probe(&s.settings().ffprobe, input.as_fd(), run_as, cpu).await?;
    info.media.stream.ok_or(probe::ProbeError::NoVideo)
}

/// Encode each variation of a batch by one FFmpeg of its own
/// ([`run_encode`]), all at once: one result per member, in order.
async fn run_each(s: &dyn Context, ready: &[Ready<'_>]) -> Vec<Result<Option<Outcome>, Failure>> {
    join_all(
        ready
            .iter()
            .map(|r| run_encode(s, r, &r.input, r.stop.token())),
    )
    .await
}

/// Encode a batch of variations of one input with the pixel path (see
/// [`super::pipeline`]), check and publish each: one result per member of
/// `ready`, in order. An input whose picture size ffprobe does not state
/// is encoded by FFmpeg alone, with a log line.
async fn run_pipeline(
    s: &dyn Context,
    ready: &[Ready<'_>],
) -> Vec<Result<Option<Outcome>, Failure>> {
    let first = &ready[0];
    let (work, run_as) = (first.work, first.run_as.as_ref());
    let all_stopped = join_all(ready.iter().map(|r| r.stop.token().cancelled()));
    // A probe asked again is shared by the batch, as its decoder is.
    let probe_cpu = CpuMeter::default();
    let stream = tokio::select! {
        stream = video_stream(s, &work.media, &first.input, run_as, &probe_cpu) => stream,
        _ = all_stopped => return ready.iter().map(|_| Ok(None)).collect(),
    };
    let meters: Vec<Arc<CpuMeter>> = ready.iter().map(|r| Arc::clone(&r.meter.cpu)).collect();
    rusage::share(&meters, Duration::from_secs_f64(probe_cpu.seconds()));
    let stream = match stream {
        Ok(stream) => stream,
        Err(err) => {
            let why = err.to_string();
            return ready
                .iter()
                .map(|_| Err(Failure::Pipeline(why.clone())))
                .collect();
        }
    };
    let Some(picture) = stream.picture else {
        log::info!(
            "job {}: {}: no picture size known: FFmpeg applies the effects",
            work.job_id,
            logged(&work.input)
        );
        return run_each(s, ready).await;
    };
    let tunables = s.tunables();
    let rate = output_rate(s, work);
    let samples = samples_of(work, rate);
    let stage = super::pipeline::stage_program();
    let members = ready
        .iter()
        .map(|r| super::pipeline::Member {
            plan: EncodePlan {
                effects: &r.work.effects,
                settings: &s.settings().encode,
                rate,
                deinterlace: r.work.media.interlaced,
                video_stream: stream.index as usize,
                samples: &samples,
            },
            output: r.target.temp.as_raw_fd(),
            refs: r.target.refs.as_raw_fd(),
            duration_us: r.work.media.duration_us,
            cancel: r.stop.token(),
            cpu: &r.meter.cpu,
        })
        .collect();
    let ends = super::pipeline::run(
        super::pipeline::Pipeline {
            ffmpeg: &s.settings().ffmpeg,
            stage: &stage,
            input: first.input.as_raw_fd(),
            size: argv::even_size(picture),
            decode: DecodePlan {
                rate,
                deinterlace: work.media.interlaced,
                video_stream: stream.index as usize,
                samples: &samples,
            },
            grace: tunables.grace,
            stall_timeout: tunables.stall_timeout,
            run_as,
            members,
        },
        |i, identity| remember_process(s, ready[i].work, identity),
        |i, progress| {
            ready[i].meter.saw(&progress);
            s.report_progress(ready[i].work.lease.id, progress)
        },
    )
    .await;
    join_all(
        ready
            .iter()
            .zip(ends)
            .map(|(r, end)| async { verify_and_publish(s, r, end?, &samples).await }),
    )
    .await
}

/// What follows an encode that ended as `end`: its duration and the
/// quality check, then, with the claim confirmed, publishing.
/// `Ok(None)`: stopped by cancellation.
async fn verify_and_publish(
    s: &dyn Context,
    ready: &Ready<'_>,
    end: End,
    samples: &Samples,
) -> Result<Option<Outcome>, Failure> {
    let (work, target, run_as) = (ready.work, &ready.target, ready.run_as.as_ref());
    let cpu = &ready.meter.cpu;
    let rate = output_rate(s, work);
    match end {
        End::Stopped => Ok(None),
        End::Stalled => Err(Failure::Stalled(s.tunables().stall_timeout)),
        End::Exited {
            status,
            stderr_tail,
            ..
        } if !status.success() => Err(Failure::Ffmpeg {
            status,
            stderr_tail,
        }),
        End::Exited { encoded_us, .. } => {
            if let Some(expected) = work.media.duration_us {
                let encoded = encoded_us.ok_or(Failure::NothingEncoded)?;
                duration_matches(expected, encoded, rate.frame_us())?;
            }
            let quality = tokio::select! {
                checked = check_output(s, target, samples, work.media.video_us, run_as, cpu) => checked?,
                // Dropping the check kills it (kill_on_drop).
                () = ready.stop.token().cancelled() => return Ok(None),
            };
            // A node that lost its claim must not publish: the work may run
            // on another node already.
            let held = record(s, work.job_id, || s.queue().confirm(work.lease)).await;
            if held != Some(true) {
                return Err(Failure::ClaimLost);
            }
            let (target, work, run_as) = (Arc::clone(target), work.clone(), run_as.cloned());
            let (output, size) = blocking(move || {
                as_owner(run_as.as_ref(), || {
                    publish(&target, &work).map_err(Failure::Publish)
                })
            })
            .await?;
            Ok(Some(Outcome::Succeeded {
                output,
                size,
                quality,
            }))
        }
    }
}

/// Run filesystem work on a blocking thread: a dead network mount may hang
/// any file call, and must not hang the runtime's workers with it.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(Failure::Blocking)?
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

/// Whether `encoded` µs (FFmpeg's last `out_time_us`: where its last
/// frame or audio packet starts) is a whole encode of streams that last
/// `expected` µs: within [`samples::allowed_difference`], plus one output
/// frame of `frame_us` (the last one's own length).
fn duration_matches(expected: u64, encoded: u64, frame_us: u64) -> Result<(), Failure> {
    let allowed = samples::allowed_difference(expected);
    if encoded + allowed + frame_us < expected {
        return Err(Failure::TooShort { expected, encoded });
    }
    if encoded > expected + allowed {
        return Err(Failure::TooLong { expected, encoded });
    }
    Ok(())
}

/// Check an encode's output before it becomes visible (see
/// [`crate::ffmpeg::check`]): every sampled frame the encode wrote a
/// reference picture for decodes, and those up to the end of the input's
/// video stream at least ([`Samples::required`]), and, unless the check is off, none is
/// less like its reference than `min_ssim` allows. Returns the figures.
/// The check's CPU time goes to `cpu`, the variation's.
async fn check_output(
    s: &dyn Context,
    target: &Target,
    samples: &Samples,
    video_us: Option<u64>,
    run_as: Option<&RunAs>,
    cpu: &CpuMeter,
) -> Result<Option<Quality>, Failure> {
    use std::io::Seek;
    let mut refs = &target.refs;
    let written = refs.metadata().map_err(Failure::CheckFile)?.len();
    refs.rewind().map_err(Failure::CheckFile)?;
    let references = written / check::reference_bytes();
    if references == 0 {
        return Err(Failure::NoFrame);
    }
    let expected = samples.required(references, video_us) as u32;
    let floor = s.tunables().min_ssim;
    let compare = floor.is_some().then(|| refs.as_raw_fd());
    let run = |keyframes_only| {
        check::run(
            &s.settings().ffmpeg,
            target.temp.as_raw_fd(),
            compare,
            samples,
            keyframes_only,
            run_as,
            cpu,
        )
    };
    let mut checked = run(true).await.map_err(Failure::Check)?;
    if checked.decoded < expected {
        // An encoder may not have made the sampled frames keyframes (or
        // its decoder skips nothing): decode every frame before judging.
        refs.rewind().map_err(Failure::CheckFile)?;
        checked = run(false).await.map_err(Failure::Check)?;
    }
    if checked.decoded < expected {
        return Err(Failure::SamplesMissing {
            decoded: checked.decoded,
            expected,
        });
    }
    let Some(floor) = floor else {
        return Ok(None);
    };
    let quality = checked.quality.ok_or(Failure::NoFigures)?;
    if quality.ssim_min < floor {
        return Err(Failure::LooksWrong { quality, floor });
    }
    Ok(Some(quality))
}

/// Give the checked temporary file, synced to disk, the first free name
/// `<stem>_v<NN>.mp4` (the directory synced after), NN counting up from
/// the variation's index, never replacing a file: linkat(2) then unlink,
/// or on filesystems without hard links (vfat, exFAT, some network
/// mounts) renameat2(2) with `RENAME_NOREPLACE`; both relative to the
/// directory's descriptor. Returns the final path and its size in bytes.
fn publish(target: &Target, work: &VariationWork) -> io::Result<(PathBuf, u64)> {
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
    fn durations_match_within_five_percent_or_a_few_frames() {
        const NTSC_FRAME: u64 = 33_367;
        assert!(duration_matches(10_000_000, 9_600_000, NTSC_FRAME).is_ok());
        assert!(duration_matches(10_000_000, 10_400_000, NTSC_FRAME).is_ok());
        let short = duration_matches(10_000_000, 5_000_000, NTSC_FRAME)
            .unwrap_err()
            .to_string();
        assert!(short.contains("ends early"), "{short}");
        assert!(!short.contains("disk"), "{short}");
        let long = duration_matches(10_000_000, 12_000_000, NTSC_FRAME)
            .unwrap_err()
            .to_string();
        assert!(long.contains("longer than the input"), "{long}");
        // A 0.2 s clip re-timed to 29.97 frames/s.
        assert!(duration_matches(200_000, 267_000, NTSC_FRAME).is_ok());
        // One frame at 1 frame/s kept at its rate: it starts at 0 and
        // lasts the whole second.
        assert!(duration_matches(1_000_000, 0, 1_000_000).is_ok());
        // Two frames at 5 frames/s: the last starts at 0.2 s.
        assert!(duration_matches(400_000, 200_000, 200_000).is_ok());
    }

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
