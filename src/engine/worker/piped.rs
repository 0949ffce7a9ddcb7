//! A batch of variations of one input encoded by one pipeline of the
//! pixel path (`pixel_path = "vidvar"`): one decoding FFmpeg,
//! `vidvar-stage` and an encoding FFmpeg per variation, run by
//! [`crate::engine::pipeline`]; the whole outputs then checked together
//! by one FFmpeg (`shared_check`), each that it does not pass checked
//! alone, and each that passed published (`verify`).

use super::context::{Context, output_rate, samples_of};
use super::lone::run_each;
use super::probe::video_stream;
use super::shared_check::{Verdict, check_together};
use super::variation::{Ready, remember_process};
use super::verify::{check_and_publish, encoded_whole, publish_checked};
use crate::engine::failure::Failure;
use crate::engine::pipeline;
use crate::escape::logged;
use crate::ffmpeg::argv::{self, DecodePlan, EncodePlan};
use crate::queue::Outcome;
use crate::rusage::{self, CpuMeter};
use futures_util::future::join_all;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

/// Encode a batch of variations of one input with the pixel path (see
/// [`pipeline`]), check (together, then alone those not passed: see
/// [`check_together`]) and publish each: one result per member of
/// `ready`, in order. A member stopped before it is published is not. An
/// input whose picture size ffprobe does not state is encoded by FFmpeg
/// alone, with a log line.
pub(super) async fn run_pipeline(
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
    let stage = pipeline::stage_program();
    let members = ready
        .iter()
        .map(|r| pipeline::Member {
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
    let ends = pipeline::run(
        pipeline::Pipeline {
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
    let whole: Vec<Result<bool, Failure>> = ready
        .iter()
        .zip(ends)
        .map(|(r, end)| encoded_whole(s, r, end?))
        .collect();
    let verdicts = check_together(s, ready, &whole, &samples).await;
    let samples = &samples;
    join_all(
        ready
            .iter()
            .zip(whole)
            .zip(verdicts)
            .map(|((r, whole), verdict)| async move {
                if !whole? || r.stop.token().is_cancelled() {
                    return Ok(None);
                }
                match verdict {
                    Verdict::Passed(quality) => publish_checked(s, r, quality).await,
                    Verdict::Alone => check_and_publish(s, r, samples).await,
                }
            }),
    )
    .await
}
