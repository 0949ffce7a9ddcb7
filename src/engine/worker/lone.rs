//! Variations encoded by one FFmpeg each (`pixel_path = "ffmpeg"`, and
//! inputs whose picture size ffprobe does not state): the encode's argv,
//! its process supervised, then the check and publishing (`verify`).

use super::context::{Context, output_rate, samples_of};
use super::probe::video_stream;
use super::variation::{Ready, remember_process};
use super::verify::verify_and_publish;
use crate::engine::failure::Failure;
use crate::engine::supervisor;
use crate::ffmpeg::argv::{self, EncodePlan};
use crate::queue::Outcome;
use futures_util::future::join_all;
use std::fs::File;
use std::os::fd::AsRawFd;
use tokio_util::sync::CancellationToken;

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

/// Encode each variation of a batch by one FFmpeg of its own
/// ([`run_encode`]), all at once: one result per member, in order.
pub(super) async fn run_each(
    s: &dyn Context,
    ready: &[Ready<'_>],
) -> Vec<Result<Option<Outcome>, Failure>> {
    join_all(
        ready
            .iter()
            .map(|r| run_encode(s, r, &r.input, r.stop.token())),
    )
    .await
}
