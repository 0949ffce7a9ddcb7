//! Which frames of an output the check samples ([`Samples`]), and how
//! much an output's length may differ from its input's
//! ([`allowed_difference`]): plain arithmetic on frame rates and
//! microseconds, shared by the encode's argv (keyframes and reference
//! pictures at the samples, [`super::argv`]) and the check that reads
//! them ([`super::check`]). It runs nothing and builds no argv.

use crate::job::FrameRate;

/// Frames sampled per output, spread over its whole length.
pub const SAMPLES: u64 = 8;

/// Largest relative difference between an input's and its output's
/// length accepted.
pub const DURATION_TOLERANCE: f64 = 0.05;
/// Smallest absolute difference always accepted, microseconds: a few
/// frames, which frame-rate conversion of a very short clip may add.
pub const DURATION_SLACK_US: u64 = 150_000;

/// How much shorter or longer than `expected_us` an output may be,
/// microseconds: [`DURATION_TOLERANCE`] of it, at least
/// [`DURATION_SLACK_US`].
pub fn allowed_difference(expected_us: u64) -> u64 {
    ((expected_us as f64 * DURATION_TOLERANCE) as u64).max(DURATION_SLACK_US)
}

/// The frames of an output that the check samples: indices on the output's
/// frame grid (frame `n` starts at `n / rate` seconds, as FFmpeg's `fps`
/// filter places them).
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    rate: FrameRate,
    frames: Vec<u64>,
}

impl Samples {
    /// [`SAMPLES`] frames spread evenly from the first frame to the last
    /// whole frame of a video of `duration_us` at `rate` (fewer when it has
    /// fewer frames). Of a video of unknown duration, frames at 0, 1, 2, 4,
    /// 8 ... 64 s, so that any length is sampled to within half of its end;
    /// those past its end are simply not there.
    pub fn plan(duration_us: Option<u64>, rate: FrameRate) -> Samples {
        let frames_in = |us: u64| us as u128 * rate.num as u128 / (rate.den as u128 * 1_000_000);
        let frames: Vec<u64> = match duration_us {
            Some(us) => {
                let last = (frames_in(us) as u64).saturating_sub(1);
                let mut frames: Vec<u64> = (0..SAMPLES)
                    .map(|k| (k * last + (SAMPLES - 1) / 2) / (SAMPLES - 1))
                    .collect();
                frames.dedup();
                frames
            }
            None => (0..SAMPLES)
                .map(|k| frames_in((1u64 << k) / 2 * 1_000_000) as u64)
                .collect(),
        };
        Samples { rate, frames }
    }

    /// How many sampled frames the output must show when the encode wrote
    /// `references` reference pictures: those, and at least every sample
    /// that starts a whole frame and [`allowed_difference`] before the end
    /// of the input's video stream, `video_us` microseconds long (ffprobe's
    /// figure for that stream; `None` when it states none, and a
    /// container's duration is no substitute: its audio may run longer).
    /// So an output whose picture is shorter than the input's video stream
    /// (a stream that ends early, or the wrong stream encoded) fails even
    /// where each of its frames is right.
    pub fn required(&self, references: u64, video_us: Option<u64>) -> u64 {
        let Some(length) = video_us else {
            return references;
        };
        let frame = self.rate.frame_us() as f64;
        let last_start = length.saturating_sub(allowed_difference(length)) as f64 - frame;
        let within = self.times().filter(|t| t * 1e6 <= last_start).count() as u64;
        references.max(within)
    }

    /// The sampled frames' start times, seconds.
    pub fn times(&self) -> impl Iterator<Item = f64> + '_ {
        self.frames
            .iter()
            .map(|&n| n as f64 * self.rate.den as f64 / self.rate.num as f64)
    }

    /// An expression for FFmpeg's `select` filter that is true for the
    /// sampled frames alone: within half a frame of a sampled time. Commas
    /// are escaped (`\,`) for use inside a filter graph.
    pub fn select_expr(&self) -> String {
        let half = 0.5 * self.rate.den as f64 / self.rate.num as f64;
        self.times()
            .map(|t| format!("lt(abs(t-{t:.6})\\,{half:.6})"))
            .collect::<Vec<_>>()
            .join("+")
    }

    /// The sampled times for `-force_key_frames` (comma-separated seconds).
    pub fn keyframe_times(&self) -> String {
        self.times()
            .map(|t| format!("{t:.6}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ntsc() -> FrameRate {
        FrameRate::parse("30000/1001").unwrap()
    }

    #[test]
    fn samples_span_the_whole_output() {
        let s = Samples::plan(Some(3_000_000), ntsc());
        assert_eq!(s.frames, [0, 13, 25, 38, 50, 63, 75, 88]);
        let times: Vec<f64> = s.times().collect();
        assert_eq!(times[0], 0.0);
        assert!((times[7] - 88.0 * 1001.0 / 30000.0).abs() < 1e-9);
        assert_eq!(
            s.keyframe_times().split(',').nth(1),
            Some("0.433767"),
            "13 frames of 1001/30000 s"
        );
    }

    #[test]
    fn short_clips_sample_the_frames_they_have() {
        // One frame at 1 fps lasts 1 s: 29 frames at 29.97.
        assert_eq!(
            Samples::plan(Some(1_000_000), ntsc()).frames.len(),
            SAMPLES as usize
        );
        // 2 frames at 5 fps, kept at the source's rate.
        let s = Samples::plan(Some(400_000), FrameRate::parse("5").unwrap());
        assert_eq!(s.frames, [0, 1]);
        // Less than a frame still samples the first.
        assert_eq!(Samples::plan(Some(10_000), ntsc()).frames, [0]);
        // Unknown duration: 0, 1, 2, 4 ... 64 s.
        let s = Samples::plan(None, FrameRate::parse("25").unwrap());
        assert_eq!(s.frames, [0, 25, 50, 100, 200, 400, 800, 1600]);
    }

    #[test]
    fn the_output_must_reach_the_end_of_the_video_stream() {
        // 8 s: the samples up to 5% before the end must all be there, even
        // when the encode wrote a single reference picture.
        let eight = Some(8_000_000);
        let s = Samples::plan(eight, ntsc());
        assert_eq!(s.required(1, eight), 7);
        assert_eq!(s.required(8, eight), 8);
        // A short clip: the slack, not 5%.
        let one = Some(1_000_000);
        assert_eq!(Samples::plan(one, ntsc()).required(0, one), 7);
        // Less than a frame and the slack: nothing is demanded beyond the
        // references; nor when the stream's length is unknown.
        let tenth = Some(100_000);
        assert_eq!(Samples::plan(tenth, ntsc()).required(1, tenth), 1);
        assert_eq!(Samples::plan(eight, ntsc()).required(3, None), 3);
    }

    #[test]
    fn the_select_expression_picks_frames_within_half_a_frame() {
        let s = Samples::plan(Some(400_000), FrameRate::parse("5").unwrap());
        assert_eq!(
            s.select_expr(),
            "lt(abs(t-0.000000)\\,0.100000)+lt(abs(t-0.200000)\\,0.100000)"
        );
    }
}
