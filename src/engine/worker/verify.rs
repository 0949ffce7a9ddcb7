//! What follows an encode: its length held against the input's, its
//! output checked (see [`crate::ffmpeg::check`]), the claim confirmed,
//! then publishing (`publish`). Nothing unchecked is published, nor
//! anything by a node that lost its claim.

use super::context::{Context, output_rate, record};
use super::files::{Target, as_owner, blocking};
use super::publish::publish;
use super::variation::Ready;
use crate::engine::failure::Failure;
use crate::engine::supervisor::End;
use crate::ffmpeg::check;
use crate::ffmpeg::samples::{self, Samples};
use crate::job::Quality;
use crate::process::RunAs;
use crate::queue::Outcome;
use crate::rusage::CpuMeter;
use std::os::fd::AsRawFd;
use std::sync::Arc;

/// What follows an encode that ended as `end`: its duration and the
/// quality check, then, with the claim confirmed, publishing.
/// `Ok(None)`: stopped by cancellation.
pub(super) async fn verify_and_publish(
    s: &dyn Context,
    ready: &Ready<'_>,
    end: End,
    samples: &Samples,
) -> Result<Option<Outcome>, Failure> {
    if !encoded_whole(s, ready, end)? {
        return Ok(None);
    }
    check_and_publish(s, ready, samples).await
}

/// Whether an encode that ended as `end` made a whole output: FFmpeg
/// exited 0 and its length matches the input's. `Ok(false)`: stopped by
/// cancellation; `Err`: why it failed.
pub(super) fn encoded_whole(s: &dyn Context, ready: &Ready<'_>, end: End) -> Result<bool, Failure> {
    match end {
        End::Stopped => Ok(false),
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
            if let Some(expected) = ready.work.media.duration_us {
                let encoded = encoded_us.ok_or(Failure::NothingEncoded)?;
                let rate = output_rate(s, ready.work);
                duration_matches(expected, encoded, rate.frame_us())?;
            }
            Ok(true)
        }
    }
}

/// The quality check of a whole output on its own ([`check_output`]), then
/// publishing ([`publish_checked`]). `Ok(None)`: stopped by cancellation.
pub(super) async fn check_and_publish(
    s: &dyn Context,
    ready: &Ready<'_>,
    samples: &Samples,
) -> Result<Option<Outcome>, Failure> {
    let (work, run_as) = (ready.work, ready.run_as.as_ref());
    let quality = tokio::select! {
        checked = check_output(s, &ready.target, samples, work.media.video_us, run_as, &ready.meter.cpu) => checked?,
        // Dropping the check kills it (kill_on_drop).
        () = ready.stop.token().cancelled() => return Ok(None),
    };
    publish_checked(s, ready, quality).await
}

/// Publish an output that passed the check with the figures `quality`,
/// once the claim is confirmed.
pub(super) async fn publish_checked(
    s: &dyn Context,
    ready: &Ready<'_>,
    quality: Option<Quality>,
) -> Result<Option<Outcome>, Failure> {
    let work = ready.work;
    // A node that lost its claim must not publish: the work may run
    // on another node already.
    let held = record(s, work.job_id, || s.queue().confirm(work.lease)).await;
    if held != Some(true) {
        return Err(Failure::ClaimLost);
    }
    let (target, work, run_as) = (
        Arc::clone(&ready.target),
        work.clone(),
        ready.run_as.clone(),
    );
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
/// video stream at least ([`required_samples`]), and, unless the check is
/// off, none is less like its reference than `min_ssim` allows
/// ([`judge`]). Its keyframes are decoded first, every frame if some
/// sampled frames are missing. Returns the figures. The check's CPU time
/// goes to `cpu`, the variation's.
async fn check_output(
    s: &dyn Context,
    target: &Target,
    samples: &Samples,
    video_us: Option<u64>,
    run_as: Option<&RunAs>,
    cpu: &CpuMeter,
) -> Result<Option<Quality>, Failure> {
    let expected = required_samples(target, samples, video_us)?;
    let floor = s.tunables().min_ssim;
    let compare = floor.is_some().then(|| target.refs.as_raw_fd());
    let run = |keyframes_only| async move {
        let mut checked = check::run(
            &s.settings().ffmpeg,
            &[(target.temp.as_raw_fd(), compare)],
            samples,
            keyframes_only,
            run_as,
            cpu,
        )
        .await
        .map_err(Failure::Check)?;
        Ok::<_, Failure>(checked.swap_remove(0))
    };
    let mut checked = run(true).await?;
    if checked.decoded < expected {
        // An encoder may not have made the sampled frames keyframes (or
        // its decoder skips nothing): decode every frame before judging.
        rewind(&target.refs)?;
        checked = run(false).await?;
    }
    judge(&checked, expected, floor)
}

/// How many sampled frames the output of `target` must show
/// ([`Samples::required`]) for the reference pictures the encode wrote,
/// whose file is left rewound for the check to read; `video_us` is the
/// length of the input's video stream. Errors: [`Failure::NoFrame`] when
/// the encode wrote none, [`Failure::CheckFile`] when the file cannot be
/// read.
pub(super) fn required_samples(
    target: &Target,
    samples: &Samples,
    video_us: Option<u64>,
) -> Result<u32, Failure> {
    let written = target.refs.metadata().map_err(Failure::CheckFile)?.len();
    rewind(&target.refs)?;
    let references = written / check::reference_bytes();
    if references == 0 {
        return Err(Failure::NoFrame);
    }
    Ok(samples.required(references, video_us) as u32)
}

fn rewind(mut refs: &std::fs::File) -> Result<(), Failure> {
    use std::io::Seek;
    refs.rewind().map_err(Failure::CheckFile)
}

/// The verdict on what a check of one output found: `expected` sampled
/// frames decoded ([`Failure::SamplesMissing`]), and, when compared with a
/// `floor` (`min_ssim`), figures ([`Failure::NoFigures`]) whose lowest
/// SSIM is at least the floor ([`Failure::LooksWrong`]). Returns the
/// figures to publish with (`None` when not compared).
pub(super) fn judge(
    checked: &check::Checked,
    expected: u32,
    floor: Option<f64>,
) -> Result<Option<Quality>, Failure> {
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
}
