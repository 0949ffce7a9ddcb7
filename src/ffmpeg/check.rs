//! The check of encoded outputs, which FFmpeg's exit status 0 does not
//! replace: running the check ([`run`]) on the frames
//! [`super::samples::Samples`] picked and reading its figures ([`parse`]).
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
//! Frames between the samples are not decoded. One run may check several
//! outputs (a pipeline's, all sampled alike), each judged on its own
//! figures; what to do with them is the caller's.

use super::argv::OUTPUT_TAG;
use super::samples::Samples;
use crate::job::Quality;
use crate::process::RunAs;
use crate::rusage::{CpuMeter, output_metered};
use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::Path;
use std::time::Duration;

/// How long the check of one output may take; a run that checks K
/// outputs gets K times as long.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

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
    /// It ran longer than it may ([`CHECK_TIMEOUT`] per output).
    #[error("the check took longer than {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("it does not decode (FFmpeg: {0})")]
    Undecodable(String),
}

/// Read the records of `metadata=mode=print` that the check of `outputs`
/// outputs prints ([`super::argv::check`]), one per sampled frame of each
/// output: a `frame:N pts:... pts_time:...` line, then `key=value` lines, of
/// which [`OUTPUT_TAG`] (the output's index, from 0), `lavfi.ssim.All` and
/// `lavfi.signalstats.YAVG` (of the difference picture) are the figures.
/// Returns one [`Checked`] per output, in order. A frame without both
/// figures counts as decoded but not compared; a record without a tag
/// naming one of the outputs counts for none, so that what cannot be read
/// is never a sample that passed.
pub fn parse(text: &str, outputs: usize) -> Vec<Checked> {
    let mut found: Vec<Found> = (0..outputs).map(|_| Found::default()).collect();
    // The record being read, and the output its tag names.
    let mut record: Option<(Found, Option<usize>)> = None;
    let mut file = |record: Option<(Found, Option<usize>)>| {
        if let Some((done, Some(n))) = record
            && let Some(output) = found.get_mut(n)
        {
            output.add(done);
        }
    };
    let tag = format!("{OUTPUT_TAG}=");
    for line in text.lines() {
        if line.starts_with("frame:") {
            let first = Found {
                decoded: 1,
                ..Found::default()
            };
            file(record.replace((first, None)));
        } else if let Some((r, output)) = record.as_mut() {
            if let Some(v) = line.strip_prefix("lavfi.ssim.All=") {
                r.ssim.extend(v.trim().parse::<f64>().ok());
            } else if let Some(v) = line.strip_prefix("lavfi.signalstats.YAVG=") {
                r.diff.extend(v.trim().parse::<f64>().ok());
            } else if let Some(v) = line.strip_prefix(tag.as_str()) {
                *output = v.trim().parse().ok();
            }
        }
    }
    file(record);
    found.into_iter().map(Found::checked).collect()
}

/// What the records of one output hold, added up.
#[derive(Debug, Default)]
struct Found {
    decoded: u32,
    ssim: Vec<f64>,
    diff: Vec<f64>,
}

impl Found {
    fn add(&mut self, record: Found) {
        self.decoded += record.decoded;
        self.ssim.extend(record.ssim);
        self.diff.extend(record.diff);
    }

    /// The figures: a mean and lowest SSIM and a mean luma difference
    /// when every compared frame has both.
    fn checked(self) -> Checked {
        let Found {
            decoded,
            ssim,
            diff,
        } = self;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let quality = (!ssim.is_empty() && ssim.len() == diff.len()).then(|| Quality {
            samples: ssim.len() as u32,
            ssim_mean: mean(&ssim),
            ssim_min: ssim.iter().copied().fold(f64::INFINITY, f64::min),
            luma_diff: mean(&diff),
        });
        Checked { decoded, quality }
    }
}

/// Run the check ([`super::argv::check`]) of the outputs of `outputs`, each
/// `(output, refs)`: the output open as `output`, against the reference
/// pictures open as `refs` (rewound) when given, decoding its keyframes
/// only when `keyframes_only`; one FFmpeg for all, at most
/// [`CHECK_TIMEOUT`] per output. FFmpeg's CPU time (its rusage) is added
/// to `cpu`. Returns one [`Checked`] per output, in order ([`parse`]).
///
/// Errors, which say nothing of which output is at fault when there are
/// several: [`CheckError::Spawn`], [`CheckError::Timeout`], and
/// [`CheckError::Undecodable`] with FFmpeg's last message (without the
/// first output's `file:` URL) when it exits non-zero.
pub async fn run(
    ffmpeg: &Path,
    outputs: &[(RawFd, Option<RawFd>)],
    samples: &Samples,
    keyframes_only: bool,
    run_as: Option<&RunAs>,
    cpu: &CpuMeter,
) -> Result<Vec<Checked>, CheckError> {
    let spawn_error = |source| CheckError::Spawn {
        program: ffmpeg.display().to_string(),
        source,
    };
    let inherit: Vec<RawFd> = outputs
        .iter()
        .flat_map(|&(output, refs)| [Some(output), refs])
        .flatten()
        .collect();
    let args: Vec<OsString> = super::argv::check(outputs, samples, keyframes_only);
    let child = crate::process::command(ffmpeg, run_as, &inherit)
        .args(args)
        .spawn()
        .map_err(spawn_error)?;
    let limit = CHECK_TIMEOUT * outputs.len().max(1) as u32;
    let out = tokio::time::timeout(limit, output_metered(child, cpu))
        .await
        .map_err(|_| CheckError::Timeout(limit))?
        .map_err(spawn_error)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = outputs.first().map_or(-1, |&(output, _)| output);
        return Err(CheckError::Undecodable(super::last_message(&stderr, first)));
    }
    Ok(parse(&String::from_utf8_lossy(&out.stdout), outputs.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as `metadata=mode=print` prints it for the `output`th output.
    fn record(frame: u32, output: usize, ssim: f64, diff: f64) -> String {
        format!(
            "frame:{frame}    pts:{frame}       pts_time:{frame}\n\
             lavfi.ssim.Y=0.99\nlavfi.ssim.All={ssim}\nlavfi.ssim.dB=17\n\
             lavfi.signalstats.YMIN=0\nlavfi.signalstats.YAVG={diff}\n\
             {OUTPUT_TAG}={output}\n"
        )
    }

    #[test]
    fn figures_are_read_from_the_metadata_records() {
        let text = record(0, 0, 0.98, 1.5) + &record(1, 0, 0.90, 2.5);
        let checked = parse(&text, 1);
        assert_eq!(checked.len(), 1);
        assert_eq!(checked[0].decoded, 2);
        let q = checked[0].quality.unwrap();
        assert_eq!(q.samples, 2);
        assert!((q.ssim_mean - 0.94).abs() < 1e-9);
        assert_eq!(q.ssim_min, 0.90);
        assert_eq!(q.luma_diff, 2.0);
        // Decoded but not compared.
        let bare = parse(
            "frame:0 pts:0 pts_time:0\nvidvar.output=0\n\
             frame:1 pts:1 pts_time:1\nvidvar.output=0\n",
            1,
        );
        assert_eq!(
            bare,
            [Checked {
                decoded: 2,
                quality: None
            }]
        );
    }

    #[test]
    fn each_outputs_records_count_for_it_alone() {
        // Interleaved as FFmpeg's `interleave` gives them: output 1 is
        // black (low SSIM) and output 2 lost its last sample.
        let text = [
            record(0, 0, 0.99, 1.0),
            record(1, 1, 0.30, 90.0),
            record(2, 2, 0.97, 2.0),
            record(3, 0, 0.95, 3.0),
            record(4, 1, 0.20, 80.0),
        ]
        .concat();
        let checked = parse(&text, 3);
        let decoded: Vec<u32> = checked.iter().map(|c| c.decoded).collect();
        assert_eq!(decoded, [2, 2, 1]);
        let q: Vec<Quality> = checked.iter().map(|c| c.quality.unwrap()).collect();
        assert_eq!((q[0].ssim_min, q[0].luma_diff), (0.95, 2.0));
        assert_eq!((q[1].ssim_min, q[1].luma_diff), (0.20, 85.0));
        assert_eq!((q[2].ssim_min, q[2].samples), (0.97, 1));
    }

    #[test]
    fn a_record_without_a_known_tag_counts_for_no_output() {
        let text = [
            // No tag at all, then a tag beyond the outputs, then garbage.
            "frame:0 pts:0 pts_time:0\nlavfi.ssim.All=0.99\nlavfi.signalstats.YAVG=1\n",
            &record(1, 2, 0.99, 1.0),
            "frame:2 pts:2 pts_time:2\nvidvar.output=x\n",
            &record(3, 1, 0.99, 1.0),
        ]
        .concat();
        let checked = parse(&text, 2);
        assert_eq!(checked[0].decoded, 0);
        assert_eq!(checked[0].quality, None);
        assert_eq!(checked[1].decoded, 1);
        assert_eq!(parse("", 2).len(), 2, "one result per output, always");
    }
}
