//! Running ffprobe and reading what it says about a file.
//!
//! [`parse`] is pure and unit tested; [`probe`] and [`verify`] run ffprobe
//! (argv from [`super::argv`]) with a timeout on a file the caller opened,
//! started like every child (see [`crate::process::command`]).

use crate::process::RunAs;
use serde::Deserialize;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::time::Duration;

/// How long ffprobe may take on one file.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// What vidvar needs to know about a media file.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeInfo {
    /// Container duration in microseconds (`format.duration`); `None` when
    /// the container does not say.
    pub duration_us: Option<u64>,
    /// Codec name of the first video stream that is not cover art.
    pub video_codec: String,
    /// Whether the file has an audio stream.
    pub has_audio: bool,
    /// Frames decoded by ffprobe; `None` unless asked (see [`verify`]).
    pub decoded_frames: Option<u64>,
}

/// Why a file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("ffprobe took longer than {}s", PROBE_TIMEOUT.as_secs())]
    Timeout,
    #[error(
        "not a readable video file: damaged, incomplete or of an unknown format (ffprobe: {0})"
    )]
    Unreadable(String),
    #[error("the video stream does not decode")]
    Undecodable,
    #[error("cannot read the file: permission denied")]
    PermissionDenied,
    #[error(
        "a {0} file is not read: only containers that hold their media are (a playlist or \
         script that names other files is refused)"
    )]
    FormatNotAllowed(String),
    #[error("not a video: the file has no video stream")]
    NoVideo,
    #[error("ffprobe printed something unexpected: {0}")]
    BadOutput(#[source] serde_json::Error),
}

#[derive(Deserialize)]
struct Output {
    #[serde(default)]
    streams: Vec<Stream>,
    format: Option<Format>,
}

#[derive(Deserialize)]
struct Stream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    nb_read_frames: Option<String>,
    #[serde(default)]
    disposition: Disposition,
}

#[derive(Deserialize, Default)]
struct Disposition {
    #[serde(default)]
    attached_pic: u8,
}

#[derive(Deserialize)]
struct Format {
    duration: Option<String>,
}

/// Parse `ffprobe -print_format json -show_format -show_streams` output.
///
/// Errors: [`ProbeError::NoVideo`] when no stream is a video stream other
/// than attached cover art; [`ProbeError::BadOutput`] for malformed JSON.
pub fn parse(json: &str) -> Result<ProbeInfo, ProbeError> {
    let out: Output = serde_json::from_str(json).map_err(ProbeError::BadOutput)?;
    let video = out
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("video") && s.disposition.attached_pic == 0)
        .ok_or(ProbeError::NoVideo)?;
    let duration_us = out
        .format
        .and_then(|f| f.duration)
        .and_then(|d| d.parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d > 0.0)
        .map(|d| (d * 1e6).round() as u64);
    Ok(ProbeInfo {
        duration_us,
        video_codec: video.codec_name.clone().unwrap_or_default(),
        decoded_frames: video.nb_read_frames.as_deref().and_then(|n| n.parse().ok()),
        has_audio: out
            .streams
            .iter()
            .any(|s| s.codec_type.as_deref() == Some("audio")),
    })
}

/// Run `ffprobe` on the open file `file` (handed down as `/dev/fd/N`) and
/// parse its answer.
///
/// Errors: [`ProbeError::Spawn`] when the program cannot start,
/// [`ProbeError::Timeout`], [`ProbeError::Unreadable`] with ffprobe's own
/// message when it exits non-zero, and the errors of [`parse`].
///
/// `run_as`: the job owner's credentials when ffprobe must not run as the
/// daemon (see [`crate::process::command`]).
pub async fn probe(
    ffprobe: &Path,
    file: BorrowedFd<'_>,
    run_as: Option<&RunAs>,
) -> Result<ProbeInfo, ProbeError> {
    let fd = file.as_raw_fd();
    run(ffprobe, fd, super::argv::probe(fd), run_as).await
}

/// Probe an encoded output and decode its first frames.
///
/// Errors: those of [`probe`], and [`ProbeError::Undecodable`] when no
/// frame of the video stream decodes.
pub async fn verify(
    ffprobe: &Path,
    file: BorrowedFd<'_>,
    run_as: Option<&RunAs>,
) -> Result<ProbeInfo, ProbeError> {
    let fd = file.as_raw_fd();
    let info = run(ffprobe, fd, super::argv::verify(fd), run_as).await?;
    if info.decoded_frames.unwrap_or(0) == 0 {
        return Err(ProbeError::Undecodable);
    }
    Ok(info)
}

/// Run ffprobe with `args`, which name the inherited descriptor `fd`.
async fn run(
    ffprobe: &Path,
    fd: RawFd,
    args: Vec<std::ffi::OsString>,
    run_as: Option<&RunAs>,
) -> Result<ProbeInfo, ProbeError> {
    let child = crate::process::command(ffprobe, run_as, &[fd])
        .args(args)
        .spawn()
        .map_err(|source| ProbeError::Spawn {
            program: ffprobe.display().to_string(),
            source,
        })?;
    let output = tokio::time::timeout(PROBE_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| ProbeError::Timeout)?
        .map_err(|source| ProbeError::Spawn {
            program: ffprobe.display().to_string(),
            source,
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed without a message")
            .trim();
        // ffprobe prefixes the URL it was given, which means nothing to
        // the user.
        let url = super::argv::fd_url(fd);
        let reason = last
            .strip_prefix(&*url.to_string_lossy())
            .map_or(last, |rest| rest.trim_start_matches(':').trim())
            .to_string();
        if reason.contains("Permission denied") {
            return Err(ProbeError::PermissionDenied);
        }
        if let Some(format) = refused_format(&stderr) {
            return Err(ProbeError::FormatNotAllowed(format));
        }
        return Err(ProbeError::Unreadable(reason));
    }
    parse(&String::from_utf8_lossy(&output.stdout))
}

/// The demuxer FFmpeg refused for not being on `-format_whitelist`: its
/// log line reads `[NAME @ 0x...] Format not on whitelist '...'`.
fn refused_format(stderr: &str) -> Option<String> {
    let line = stderr
        .lines()
        .find(|l| l.contains("Format not on whitelist"))?;
    let name = line.strip_prefix('[')?.split(" @ ").next()?;
    Some(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_with_audio() {
        let info = parse(
            r#"{"streams":[{"codec_type":"video","codec_name":"h264"},
                {"codec_type":"audio","codec_name":"aac"}],
               "format":{"duration":"10.000000"}}"#,
        )
        .unwrap();
        assert_eq!(
            info,
            ProbeInfo {
                duration_us: Some(10_000_000),
                video_codec: "h264".into(),
                has_audio: true,
                decoded_frames: None,
            }
        );
    }

    #[test]
    fn decoded_frames_are_read_when_counted() {
        let json = r#"{"streams":[{"codec_type":"video","nb_read_frames":"5"}]}"#;
        assert_eq!(parse(json).unwrap().decoded_frames, Some(5));
    }

    #[test]
    fn cover_art_alone_is_not_a_video() {
        let err = parse(
            r#"{"streams":[{"codec_type":"audio"},
                {"codec_type":"video","codec_name":"mjpeg","disposition":{"attached_pic":1}}],
               "format":{"duration":"3.5"}}"#,
        )
        .unwrap_err();
        assert!(matches!(err, ProbeError::NoVideo));
    }

    #[test]
    fn unknown_duration_is_none() {
        for format in [r#"{}"#, r#"{"duration":"N/A"}"#, r#"{"duration":"0.000"}"#] {
            let json = format!(r#"{{"streams":[{{"codec_type":"video"}}],"format":{format}}}"#);
            assert_eq!(parse(&json).unwrap().duration_us, None, "{format}");
        }
    }

    #[test]
    fn a_refused_format_is_named() {
        let stderr = "[hls @ 0x5555f9526280] Format not on whitelist 'mov,matroska'\n\
                      file:/dev/fd/7: Invalid argument\n";
        assert_eq!(refused_format(stderr).as_deref(), Some("hls"));
        assert_eq!(refused_format("file:/dev/fd/7: Invalid data"), None);
    }

    #[test]
    fn empty_output_means_no_video() {
        assert!(matches!(parse("{}"), Err(ProbeError::NoVideo)));
        assert!(matches!(parse("not json"), Err(ProbeError::BadOutput(_))));
    }
}
