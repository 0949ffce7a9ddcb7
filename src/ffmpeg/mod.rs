//! Everything vidvar knows about the FFmpeg command-line tools.
//!
//! [`argv`] builds every argument vector (the only place that does),
//! [`progress`] parses `-progress` output, [`probe`] runs and parses
//! ffprobe, [`samples`] picks the frames the check of an encoded output
//! compares, [`check`] runs and reads that check.
//! Encodes are owned by the `supervisor`, not here.

pub mod argv;
pub mod check;
pub mod probe;
pub mod progress;
pub mod samples;

use crate::job::FrameRate;
use std::os::fd::RawFd;

/// The output frame rate of the defaults, and of "keep the source's" when
/// the source states none: 30000/1001 (29.97) frames/s.
pub const DEFAULT_FRAME_RATE: FrameRate = FrameRate {
    num: 30000,
    den: 1001,
};

/// The last message FFmpeg or ffprobe printed on `stderr`, without the
/// `file:/dev/fd/N:` prefix it puts before errors about the file it was
/// handed as descriptor `fd` (which means nothing to a user).
pub fn last_message(stderr: &str, fd: RawFd) -> String {
    let last = stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("failed without a message");
    let url = argv::fd_url(fd);
    last.strip_prefix(&*url.to_string_lossy())
        .map_or(last, |rest| rest.trim_start_matches(':').trim())
        .to_string()
}

/// How the video bitrate is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateControl {
    /// `-b:v Nk`: average bitrate, kilobits per second.
    BitrateKbps(u32),
    /// `-crf N`: constant quality (x264/x265 scale, 0..=51; lower is better).
    Crf(u8),
}

/// Encoding settings. Defaults: H.264 by libx264, preset
/// `ultrafast`, 2000 kb/s video, 29.97 frames/s, AAC audio, MP4 container.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeSettings {
    /// FFmpeg `-c:v`.
    pub video_codec: String,
    /// `-preset` of the video encoder.
    pub preset: String,
    pub rate: RateControl,
    /// Output frame rate (FFmpeg's `fps` filter); `None` keeps the
    /// source's.
    pub frame_rate: Option<FrameRate>,
    /// `-c:a`, used only when the input has audio.
    pub audio_codec: String,
}

impl Default for EncodeSettings {
    fn default() -> Self {
        EncodeSettings {
            video_codec: "libx264".into(),
            preset: "ultrafast".into(),
            rate: RateControl::BitrateKbps(2000),
            frame_rate: Some(DEFAULT_FRAME_RATE),
            audio_codec: "aac".into(),
        }
    }
}
