//! Running ffprobe and reading what it says about a file.
//!
//! [`parse`] is pure and unit tested; [`probe`] runs ffprobe
//! (argv from [`super::argv`]) with a timeout on a file the caller opened,
//! started like every child (see [`crate::process::command`]).

use crate::job::{FrameRate, Media, VideoStream};
use crate::process::RunAs;
use crate::rusage::{CpuMeter, output_metered};
use serde::Deserialize;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::time::Duration;

/// How long ffprobe may take on one file.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// What vidvar needs to know about an input.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeInfo {
    /// Codec name of the video stream that is encoded.
    pub video_codec: String,
    /// Whether the file has an audio stream.
    pub has_audio: bool,
    /// Duration, frame rate, field order and the video stream (always
    /// `Some` here) of what is encoded.
    pub media: Media,
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
    index: Option<usize>,
    codec_type: Option<String>,
    codec_name: Option<String>,
    start_time: Option<String>,
    duration: Option<String>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    field_order: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    #[serde(default)]
    side_data_list: Vec<SideData>,
    #[serde(default)]
    disposition: Disposition,
    #[serde(default)]
    tags: Tags,
}

/// A stream's side data; only the display matrix's `rotation` (degrees)
/// matters here.
#[derive(Deserialize)]
struct SideData {
    rotation: Option<f64>,
}

#[derive(Deserialize, Default)]
struct Disposition {
    #[serde(default)]
    attached_pic: u8,
    #[serde(default)]
    default: u8,
}

/// Stream tags; Matroska keeps a stream's duration in `DURATION` (or, as
/// older mkvmerge writes it, `DURATION-eng` and the like).
#[derive(Deserialize, Default)]
struct Tags(std::collections::BTreeMap<String, serde_json::Value>);

impl Tags {
    fn duration(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.starts_with("DURATION"))
            .and_then(|(_, v)| v.as_str())
    }
}

#[derive(Deserialize)]
struct Format {
    start_time: Option<String>,
    duration: Option<String>,
}

/// Fastest frame rate taken as a stream's own, frames per second: faster
/// "rates" are timebases of variable-rate streams (`r_frame_rate` of
/// 90000/1), not rates to encode at.
const MAX_FRAME_RATE: u32 = 240;

/// Parse `ffprobe -print_format json -show_format -show_streams` output.
///
/// The video stream encoded is the one a player shows, as FFmpeg's own
/// choice does without `-map` (ffmpeg(1), "Automatic stream selection"):
/// never attached cover art (`attached_pic`), a stream marked `default`
/// before others, then the longest, then the first. A one-frame picture
/// stored as a non-default first video stream is thus passed over.
///
/// The duration is where the streams an encode maps (that video stream and
/// the first audio stream) end, counted from the file's start (FFmpeg's
/// time 0 for an input), so that a longer subtitle or second audio track
/// does not count; the container's duration only when neither stream
/// states one.
///
/// Errors: [`ProbeError::NoVideo`] when no stream is a video stream other
/// than attached cover art; [`ProbeError::BadOutput`] for malformed JSON.
pub fn parse(json: &str) -> Result<ProbeInfo, ProbeError> {
    use std::cmp::Reverse;
    let out: Output = serde_json::from_str(json).map_err(ProbeError::BadOutput)?;
    let format = out.format.unwrap_or(Format {
        start_time: None,
        duration: None,
    });
    let file_start = format.start_time.as_deref().and_then(seconds_us);
    let end = |s: &Stream| stream_end_us(s, file_start.unwrap_or(0));
    let (position, video) = out
        .streams
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s.codec_type.as_deref() == Some("video") && s.disposition.attached_pic == 0
        })
        // The first of the best: min_by_key keeps the first of equals.
        .min_by_key(|(_, s)| (Reverse(s.disposition.default), Reverse(end(s))))
        .ok_or(ProbeError::NoVideo)?;
    let audio = out
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("audio"));
    let video_us = end(video);
    let encoded = video_us.max(audio.and_then(end));
    let duration_us = encoded.or_else(|| format.duration.as_deref().and_then(seconds_us));
    let frame_rate = [&video.avg_frame_rate, &video.r_frame_rate]
        .into_iter()
        .filter_map(|r| FrameRate::parse(r.as_deref()?))
        .find(|r| r.num <= MAX_FRAME_RATE * r.den);
    let quarter_turned = video
        .side_data_list
        .iter()
        .filter_map(|d| d.rotation)
        .any(|degrees| (degrees.abs() / 90.0).round() as i64 % 2 == 1);
    let picture = video
        .width
        .zip(video.height)
        .map(|(w, h)| match quarter_turned {
            true => (h, w),
            false => (w, h),
        });
    Ok(ProbeInfo {
        video_codec: video.codec_name.clone().unwrap_or_default(),
        has_audio: audio.is_some(),
        media: Media {
            duration_us,
            video_us,
            frame_rate,
            interlaced: matches!(
                video.field_order.as_deref(),
                Some("tt" | "bb" | "tb" | "bt")
            ),
            stream: Some(VideoStream {
                index: video.index.map_or(position as u32, |i| i as u32),
                picture,
            }),
        },
    })
}

/// Where a stream ends, microseconds after `file_start`: its `start_time`
/// plus its `duration`, else Matroska's `DURATION` tag
/// (`HH:MM:SS.nnnnnnnnn`, written as the stream's end time).
fn stream_end_us(stream: &Stream, file_start: u64) -> Option<u64> {
    if let Some(us) = stream.duration.as_deref().and_then(seconds_us) {
        let start = stream.start_time.as_deref().and_then(seconds_us);
        return Some((start.unwrap_or(file_start) + us).saturating_sub(file_start));
    }
    let tag = stream.tags.duration()?;
    let mut parts = tag.rsplitn(3, ':');
    let (secs, mins, hours) = (parts.next()?, parts.next()?, parts.next()?);
    let total = hours.parse::<f64>().ok()? * 3600.0
        + mins.parse::<f64>().ok()? * 60.0
        + secs.parse::<f64>().ok()?;
    seconds_us(&total.to_string())
}

/// Seconds as FFmpeg prints them (`12.345000`) in microseconds; `None` for
/// `N/A`, zero, negative or non-finite values.
fn seconds_us(text: &str) -> Option<u64> {
    let secs = text.trim().parse::<f64>().ok()?;
    (secs.is_finite() && secs > 0.0).then(|| (secs * 1e6).round() as u64)
}

/// Run `ffprobe` on the open file `file` (handed down as `/dev/fd/N`) and
/// parse its answer.
///
/// Errors: [`ProbeError::Spawn`] when the program cannot start,
/// [`ProbeError::Timeout`], [`ProbeError::Unreadable`] with ffprobe's own
/// message when it exits non-zero, and the errors of [`parse`].
///
/// `run_as`: the job owner's credentials when ffprobe must not run as the
/// daemon (see [`crate::process::command`]). ffprobe's CPU time (its
/// rusage) is added to `cpu`.
pub async fn probe(
    ffprobe: &Path,
    file: BorrowedFd<'_>,
    run_as: Option<&RunAs>,
    cpu: &CpuMeter,
) -> Result<ProbeInfo, ProbeError> {
    let fd = file.as_raw_fd();
    run(ffprobe, fd, super::argv::probe(fd), run_as, cpu).await
}

/// Run ffprobe with `args`, which name the inherited descriptor `fd`.
async fn run(
    ffprobe: &Path,
    fd: RawFd,
    args: Vec<std::ffi::OsString>,
    run_as: Option<&RunAs>,
    cpu: &CpuMeter,
) -> Result<ProbeInfo, ProbeError> {
    let child = crate::process::command(ffprobe, run_as, &[fd])
        .args(args)
        .spawn()
        .map_err(|source| ProbeError::Spawn {
            program: ffprobe.display().to_string(),
            source,
        })?;
    let output = tokio::time::timeout(PROBE_TIMEOUT, output_metered(child, cpu))
        .await
        .map_err(|_| ProbeError::Timeout)?
        .map_err(|source| ProbeError::Spawn {
            program: ffprobe.display().to_string(),
            source,
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = super::last_message(&stderr, fd);
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
            r#"{"streams":[{"codec_type":"video","codec_name":"h264","duration":"10.000000",
                  "avg_frame_rate":"30000/1001","field_order":"progressive",
                  "width":1280,"height":720},
                {"codec_type":"audio","codec_name":"aac","duration":"9.980000"}],
               "format":{"duration":"10.000000"}}"#,
        )
        .unwrap();
        assert_eq!(
            info,
            ProbeInfo {
                video_codec: "h264".into(),
                has_audio: true,
                media: Media {
                    duration_us: Some(10_000_000),
                    video_us: Some(10_000_000),
                    frame_rate: FrameRate::parse("30000/1001"),
                    interlaced: false,
                    stream: Some(VideoStream {
                        index: 0,
                        picture: Some((1280, 720)),
                    }),
                },
            }
        );
    }

    #[test]
    fn a_display_matrix_of_a_quarter_turn_swaps_the_picture_size() {
        let turned = |rotation: &str| {
            let json = format!(
                r#"{{"streams":[{{"codec_type":"video","width":1280,"height":720,
                    "side_data_list":[{{"side_data_type":"Display Matrix","rotation":{rotation}}}]}}]}}"#
            );
            parse(&json).unwrap().media.stream.unwrap().picture
        };
        assert_eq!(turned("-90"), Some((720, 1280)));
        assert_eq!(turned("270"), Some((720, 1280)));
        assert_eq!(turned("180"), Some((1280, 720)));
    }

    #[test]
    fn streams_that_are_not_encoded_do_not_count_towards_the_duration() {
        // An MP4 whose second audio track outlasts the video and the first.
        let two_audio = r#"{"streams":[{"codec_type":"video","duration":"2.000000"},
            {"codec_type":"audio","duration":"2.000000"},
            {"codec_type":"audio","duration":"3.000000"}],
            "format":{"duration":"3.000000"}}"#;
        assert_eq!(parse(two_audio).unwrap().media.duration_us, Some(2_000_000));
        // Matroska states stream durations only as tags; a subtitle track
        // runs a second longer.
        let mkv = r#"{"streams":[
            {"codec_type":"video","tags":{"DURATION":"00:00:02.023000000"}},
            {"codec_type":"audio","tags":{"DURATION":"00:00:02.023000000"}},
            {"codec_type":"subtitle","tags":{"DURATION":"00:00:03.023000000"}}],
            "format":{"duration":"3.023000"}}"#;
        assert_eq!(parse(mkv).unwrap().media.duration_us, Some(2_023_000));
        let long =
            r#"{"streams":[{"codec_type":"video","tags":{"DURATION":"01:02:00.500000000"}}]}"#;
        assert_eq!(parse(long).unwrap().media.duration_us, Some(3_720_500_000));
        // Audio longer than the video: both are encoded.
        let audio_longer = r#"{"streams":[{"codec_type":"video","duration":"2.0"},
            {"codec_type":"audio","duration":"2.5"}]}"#;
        let media = parse(audio_longer).unwrap().media;
        assert_eq!(media.duration_us, Some(2_500_000));
        assert_eq!(
            media.video_us,
            Some(2_000_000),
            "the check samples the video"
        );
        // Older mkvmerge names the tag after the language.
        let tagged = r#"{"streams":[{"codec_type":"video","tags":{"DURATION-eng":"00:00:04.000000000"}}],
            "format":{"duration":"9.0"}}"#;
        assert_eq!(parse(tagged).unwrap().media.duration_us, Some(4_000_000));
    }

    #[test]
    fn frame_rate_and_field_order_are_read() {
        let vfr = r#"{"streams":[{"codec_type":"video","avg_frame_rate":"0/0",
            "r_frame_rate":"25/1","field_order":"tt"}]}"#;
        let media = parse(vfr).unwrap().media;
        assert_eq!(media.frame_rate, FrameRate::parse("25"));
        assert!(media.interlaced);
        // A timebase is not a frame rate.
        let timebase = r#"{"streams":[{"codec_type":"video","avg_frame_rate":"0/0",
            "r_frame_rate":"90000/1","field_order":"unknown"}]}"#;
        let media = parse(timebase).unwrap().media;
        assert_eq!(media.frame_rate, None);
        assert!(!media.interlaced);
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
    fn the_video_stream_is_the_one_ffmpeg_would_choose() {
        // A one-frame picture, not default, before the real video (issue
        // 22): the real one, and its length.
        let picture_first = r#"{"streams":[
            {"index":0,"codec_type":"video","codec_name":"png","disposition":{"default":0},
             "tags":{"DURATION":"00:00:00.090000000"}},
            {"index":1,"codec_type":"video","codec_name":"h264","disposition":{"default":1},
             "tags":{"DURATION":"00:00:08.023000000"}},
            {"index":2,"codec_type":"audio","tags":{"DURATION":"00:00:08.023000000"}}]}"#;
        let info = parse(picture_first).unwrap();
        let index = |info: ProbeInfo| info.media.stream.unwrap().index;
        assert_eq!(info.video_codec, "h264");
        assert_eq!(info.media.video_us, Some(8_023_000));
        assert_eq!(index(info), 1);
        // Default before longer; cover art never, however long or default.
        let default_first = r#"{"streams":[
            {"index":0,"codec_type":"video","disposition":{"attached_pic":1,"default":1},"duration":"9"},
            {"index":1,"codec_type":"video","disposition":{"default":0},"duration":"5"},
            {"index":2,"codec_type":"video","disposition":{"default":1},"duration":"2"}]}"#;
        assert_eq!(index(parse(default_first).unwrap()), 2);
        // None default: the longest; of equals, the first.
        let longest = r#"{"streams":[
            {"index":0,"codec_type":"audio","duration":"9"},
            {"index":1,"codec_type":"video","duration":"2"},
            {"index":2,"codec_type":"video","duration":"5"},
            {"index":3,"codec_type":"video","duration":"5"}]}"#;
        assert_eq!(index(parse(longest).unwrap()), 2);
    }

    #[test]
    fn unknown_duration_is_none() {
        for format in [r#"{}"#, r#"{"duration":"N/A"}"#, r#"{"duration":"0.000"}"#] {
            let json = format!(r#"{{"streams":[{{"codec_type":"video"}}],"format":{format}}}"#);
            assert_eq!(parse(&json).unwrap().media.duration_us, None, "{format}");
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
