//! Everything vidvar knows about the FFmpeg command-line tools.
//!
//! [`argv`] builds every argument vector (the only place that does),
//! [`progress`] parses `-progress` output, [`probe`] runs and parses
//! ffprobe, [`check`] runs and reads the check of an encoded output.
//! Encodes are owned by the `supervisor`, not here.

pub mod argv;
pub mod check;
pub mod probe;
pub mod progress;

use crate::job::FrameRate;

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
            frame_rate: Some(FrameRate {
                num: 30000,
                den: 1001,
            }),
            audio_codec: "aac".into(),
        }
    }
}
