//! The outputs of one pipeline checked together by one FFmpeg (or one per
//! group of at most [`CHECK_GROUP`]; [`check_together`]) before each is
//! checked alone: an FFmpeg costs about 0.05 CPU-s just to start, a large
//! part of checking a short clip.
//!
//! This check only ever passes an output, on the same rule as the check of
//! one output (`verify::judge`); it never fails one. Whatever it does not
//! clearly pass (too few sampled frames decoded, an SSIM below the floor,
//! FFmpeg failing, timing out or killed, output it cannot read) is left to
//! `verify`'s check of that output alone, which decides as it always has,
//! so that a broken output cannot fail its neighbours and nothing unchecked
//! is published. Must not publish, record or judge a variation's failure.

use super::context::Context;
use super::variation::Ready;
use super::verify::{judge, required_samples};
use crate::engine::failure::Failure;
use crate::escape::logged;
use crate::ffmpeg::check;
use crate::ffmpeg::samples::Samples;
use crate::job::Quality;
use crate::rusage::{self, CpuMeter};
use futures_util::future::join_all;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

/// What the check together says of one member of a batch.
#[derive(Debug)]
pub(super) enum Verdict {
    /// It passed, with these figures (`None`: not compared, the check being
    /// off); it goes on to publishing.
    Passed(Option<Quality>),
    /// Not checked together, or not clearly passed: its own check decides.
    Alone,
}

/// Most outputs one FFmpeg checks together: a pipeline of more is checked
/// in groups of at most this many, as even as they come, run at the same
/// time (one FFmpeg decodes its outputs one after another on one thread, so
/// one for all the outputs of a large pipeline would keep the slots of
/// those checked first waiting on the others, and its one `-filter_complex`
/// argument grows about half a kilobyte an output).
pub(super) const CHECK_GROUP: usize = 8;

/// Check together the outputs of the members of `ready` whose encodes made
/// whole outputs (`whole[i]` is `Ok(true)`; see `verify::encoded_whole`)
/// and that are not stopped, all sampled at `samples`, when there are at
/// least two: one FFmpeg per group of at most [`CHECK_GROUP`] of them
/// ([`check::run`] with every such output and its reference pictures;
/// keyframes only, `-skip_frame nokey`), as the job's owner, at nice 10, at
/// most [`check::CHECK_TIMEOUT`] per output. Returns one [`Verdict`] per
/// member of `ready`, in order: [`Verdict::Passed`] for an output of which
/// every required sampled frame decoded (`verify::required_samples`) and,
/// unless the check is off, whose lowest SSIM is at least `min_ssim`;
/// [`Verdict::Alone`] for every other.
///
/// Each FFmpeg's CPU time is split evenly over the meters of the members it
/// checked ([`rusage::share`]). Once all of those are stopped (their stop
/// tokens), it is killed (dropped: `kill_on_drop`) and their verdicts are
/// [`Verdict::Alone`].
pub(super) async fn check_together(
    s: &dyn Context,
    ready: &[Ready<'_>],
    whole: &[Result<bool, Failure>],
    samples: &Samples,
) -> Vec<Verdict> {
    let mut verdicts: Vec<Verdict> = ready.iter().map(|_| Verdict::Alone).collect();
    // (member, sampled frames it must show)
    let members: Vec<(usize, u32)> = ready
        .iter()
        .zip(whole)
        .enumerate()
        .filter(|(_, (r, whole))| matches!(whole, Ok(true)) && !r.stop.token().is_cancelled())
        .filter_map(|(i, (r, _))| {
            let required = required_samples(&r.target, samples, r.work.media.video_us);
            Some((i, required.ok()?))
        })
        .collect();
    if members.len() < 2 {
        return verdicts;
    }
    let size = members.len().div_ceil(members.len().div_ceil(CHECK_GROUP));
    let groups = members
        .chunks(size)
        .map(|group| check_group(s, ready, group, samples));
    for (i, verdict) in join_all(groups).await.into_iter().flatten() {
        verdicts[i] = verdict;
    }
    verdicts
}

/// One FFmpeg checking the outputs of `members` (member, sampled frames it
/// must show) together: see [`check_together`]. Returns a verdict for each
/// member it passed, by the member's index in `ready`.
async fn check_group(
    s: &dyn Context,
    ready: &[Ready<'_>],
    members: &[(usize, u32)],
    samples: &Samples,
) -> Vec<(usize, Verdict)> {
    let mut passed = Vec::with_capacity(members.len());
    let floor = s.tunables().min_ssim;
    let outputs: Vec<(RawFd, Option<RawFd>)> = members
        .iter()
        .map(|&(i, _)| {
            let target = &ready[i].target;
            let refs = floor.is_some().then(|| target.refs.as_raw_fd());
            (target.temp.as_raw_fd(), refs)
        })
        .collect();
    let first = &ready[members[0].0];
    let cpu = CpuMeter::default();
    let all_stopped = join_all(
        members
            .iter()
            .map(|&(i, _)| ready[i].stop.token().cancelled()),
    );
    let checked = tokio::select! {
        checked = check::run(
            &s.settings().ffmpeg,
            &outputs,
            samples,
            true,
            first.run_as.as_ref(),
            &cpu,
        ) => checked,
        _ = all_stopped => return passed,
    };
    let meters: Vec<Arc<CpuMeter>> = members
        .iter()
        .map(|&(i, _)| Arc::clone(&ready[i].meter.cpu))
        .collect();
    rusage::share(&meters, Duration::from_secs_f64(cpu.seconds()));
    let (job, input) = (first.work.job_id, logged(&first.work.input));
    let checked = match checked {
        Ok(checked) => checked,
        Err(err) => {
            log::info!(
                "job {job}: {input}: the check of {} outputs together failed ({}): \
                 each is checked alone",
                members.len(),
                logged(err.to_string())
            );
            return passed;
        }
    };
    for (&(i, expected), found) in members.iter().zip(&checked) {
        match judge(found, expected, floor) {
            Ok(quality) => passed.push((i, Verdict::Passed(quality))),
            Err(why) => log::debug!(
                "job {job}: {input} variation {}: not passed by the check together ({why}): \
                 checked alone",
                ready[i].work.index
            ),
        }
    }
    passed
}
