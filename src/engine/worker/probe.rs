//! The probe of one input: ffprobe on the vetted file, and its outcome
//! (the input's media, or the failure of the file) recorded; and the video
//! stream to encode, asked of ffprobe again for an input probed by an
//! older vidvard.

use super::context::{Context, log_recorded, on_node, record};
use super::files::{as_owner, blocking, open_input};
use crate::engine::failure::Failure;
use crate::engine::meter::Meter;
use crate::escape::logged;
use crate::ffmpeg::probe;
use crate::job::{Credentials, JobId, Media, VideoStream};
use crate::process::RunAs;
use crate::queue::{Lease, Place};
use crate::rusage::CpuMeter;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

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

/// The video stream to encode (see [`probe::parse`]) as the input's probe
/// stored it; for a file probed by an older vidvard, which did not store
/// it, ffprobe is asked again (its CPU time going to `cpu`).
pub(super) async fn video_stream(
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
