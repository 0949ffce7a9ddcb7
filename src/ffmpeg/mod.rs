//! Everything vidvar knows about the FFmpeg command-line tools.
//!
//! [`argv`] builds every argument vector (the only place that does),
//! [`progress`] parses `-progress` output, [`probe`] runs and parses
//! ffprobe. Processes are owned by the `supervisor`, not here.

pub mod argv;
pub mod probe;
pub mod progress;

/// Encoding defaults (DESIGN.md): H.264 by libx264, preset `ultrafast`,
/// 2000 kb/s video, 29.97 frames/s, AAC audio, MP4 container.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeSettings {
    /// FFmpeg `-c:v`.
    pub video_codec: String,
    /// libx264 `-preset`.
    pub preset: String,
    /// `-b:v`, kilobits per second.
    pub video_bitrate_kbps: u32,
    /// `-r`, as FFmpeg takes it (`30000/1001`).
    pub frame_rate: String,
    /// `-c:a`, used only when the input has audio.
    pub audio_codec: String,
}

impl Default for EncodeSettings {
    fn default() -> Self {
        EncodeSettings {
            video_codec: "libx264".into(),
            preset: "ultrafast".into(),
            video_bitrate_kbps: 2000,
            frame_rate: "30000/1001".into(),
            audio_codec: "aac".into(),
        }
    }
}
