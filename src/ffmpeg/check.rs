//! The check of an encoded output, which FFmpeg's exit status 0 does not
//! replace: which frames are sampled ([`Samples`]), running the check
//! ([`run`]) and reading its figures ([`parse`]).
//!
//! The encode itself writes, beside the output, the picture each sampled
//! frame must show: the input's frame, deinterlaced and at the output rate
//! like the output's, with the variation's effects applied (see
//! [`super::argv::encode_graph`]); the sampled frames are keyframes of the
//! output. The check is one more FFmpeg run that decodes only those
//! keyframes of the output file (all its frames if the encoder did not
//! make the sampled ones keyframes), so it proves that the file decodes at
//! every sampled frame, from its first to its last, and compares each with
//! its reference picture: SSIM and the mean absolute luma difference.
//! Frames between the samples are not decoded.

use crate::job::{FrameRate, Quality};
use crate::process::RunAs;
use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::Path;
use std::time::Duration;

/// Frames sampled per output, spread over its whole length.
pub const SAMPLES: u64 = 8;

/// How long one check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

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

/// Bytes of one reference picture: `yuv420p` at
/// [`super::argv::CHECK_SIZE`].
pub fn reference_bytes() -> u64 {
    let (w, h) = super::argv::CHECK_SIZE;
    w as u64 * h as u64 * 3 / 2
}

/// What the check found.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// Sampled frames that decoded (when compared: that decoded and had a
    /// reference picture, whichever are fewer).
    pub decoded: u32,
    /// Their figures, when they were compared with reference pictures.
    pub quality: Option<Quality>,
}

/// Why an output could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the check took longer than {} s", CHECK_TIMEOUT.as_secs())]
    Timeout,
    #[error("it does not decode (FFmpeg: {0})")]
    Undecodable(String),
}

/// Read the records of `metadata=mode=print` that the check prints, one
/// per sampled frame: a `frame:N pts:... pts_time:...` line, then
/// `key=value` lines, of which `lavfi.ssim.All` and
/// `lavfi.signalstats.YAVG` (of the difference picture) are the figures.
/// Frames without both figures count as decoded but not compared.
pub fn parse(text: &str) -> Checked {
    let (mut decoded, mut ssim, mut diff) = (0u32, Vec::new(), Vec::new());
    for line in text.lines() {
        if line.starts_with("frame:") {
            decoded += 1;
        } else if let Some(v) = line.strip_prefix("lavfi.ssim.All=") {
            ssim.extend(v.trim().parse::<f64>().ok());
        } else if let Some(v) = line.strip_prefix("lavfi.signalstats.YAVG=") {
            diff.extend(v.trim().parse::<f64>().ok());
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let quality = (!ssim.is_empty() && ssim.len() == diff.len()).then(|| Quality {
        samples: ssim.len() as u32,
        ssim_mean: mean(&ssim),
        ssim_min: ssim.iter().copied().fold(f64::INFINITY, f64::min),
        luma_diff: mean(&diff),
    });
    Checked { decoded, quality }
}

/// Run the check ([`super::argv::check`]) on the output open as `output`,
/// against the reference pictures open as `refs` (rewound) when given,
/// decoding its keyframes only when `keyframes_only`.
///
/// Errors: [`CheckError::Spawn`], [`CheckError::Timeout`], and
/// [`CheckError::Undecodable`] with FFmpeg's last message when it exits
/// non-zero.
pub async fn run(
    ffmpeg: &Path,
    output: RawFd,
    refs: Option<RawFd>,
    samples: &Samples,
    keyframes_only: bool,
    run_as: Option<&RunAs>,
) -> Result<Checked, CheckError> {
    let spawn_error = |source| CheckError::Spawn {
        program: ffmpeg.display().to_string(),
        source,
    };
    let inherit: Vec<RawFd> = [Some(output), refs].into_iter().flatten().collect();
    let args: Vec<OsString> = super::argv::check(output, refs, samples, keyframes_only);
    let child = crate::process::command(ffmpeg, run_as, &inherit)
        .args(args)
        .spawn()
        .map_err(spawn_error)?;
    let out = tokio::time::timeout(CHECK_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| CheckError::Timeout)?
        .map_err(spawn_error)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(CheckError::Undecodable(super::last_message(
            &stderr, output,
        )));
    }
    Ok(parse(&String::from_utf8_lossy(&out.stdout)))
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

    #[test]
    fn figures_are_read_from_the_metadata_records() {
        let text = "frame:0    pts:0       pts_time:0\n\
                    lavfi.ssim.Y=0.99\nlavfi.ssim.All=0.98\nlavfi.ssim.dB=17\n\
                    lavfi.signalstats.YMIN=0\nlavfi.signalstats.YAVG=1.5\n\
                    frame:1    pts:1       pts_time:1\n\
                    lavfi.ssim.All=0.90\nlavfi.signalstats.YAVG=2.5\n";
        let checked = parse(text);
        assert_eq!(checked.decoded, 2);
        let q = checked.quality.unwrap();
        assert_eq!(q.samples, 2);
        assert!((q.ssim_mean - 0.94).abs() < 1e-9);
        assert_eq!(q.ssim_min, 0.90);
        assert_eq!(q.luma_diff, 2.0);
        // Decoded but not compared.
        let bare = parse("frame:0 pts:0 pts_time:0\nframe:1 pts:1 pts_time:1\n");
        assert_eq!(
            bare,
            Checked {
                decoded: 2,
                quality: None
            }
        );
    }
}
