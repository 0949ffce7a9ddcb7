//! The check of an encoded output, which FFmpeg's exit status 0 does not
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
//! Frames between the samples are not decoded.

use super::samples::Samples;
use crate::job::Quality;
use crate::process::RunAs;
use crate::rusage::{CpuMeter, output_metered};
use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::Path;
use std::time::Duration;

/// How long one check may take.
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
/// decoding its keyframes only when `keyframes_only`; FFmpeg's CPU time
/// (its rusage) is added to `cpu`.
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
    cpu: &CpuMeter,
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
    let out = tokio::time::timeout(CHECK_TIMEOUT, output_metered(child, cpu))
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
