//! Argument vectors for ffmpeg and ffprobe. Pure.
//!
//! FFmpeg never gets a user's path: every file it reads or writes is one
//! the daemon has opened and vetted (see `access::vetted`), handed down as
//! an inherited descriptor and named `file:/dev/fd/N` ([`fd_url`]). A
//! `file:` URL is never read as an option or another protocol
//! (ffmpeg-protocols(1), "file"), and opening `/dev/fd/N` gives FFmpeg a
//! fresh, seekable open file of that very inode (proc(5),
//! `/proc/PID/fd`), which the mp4 demuxer and muxer need. Processes are
//! started without a shell.
//!
//! What FFmpeg may open on its own is restricted too ([`INPUT_LIMITS`]):
//! only the `file` protocol, and only container formats that hold their
//! media, so that a "video" which is really a playlist (HLS, DASH) or a
//! concat script cannot make FFmpeg read further files, by path, with
//! the daemon's access.

use super::{EncodeSettings, RateControl};
use crate::proto::Effects;
use std::ffi::OsString;
use std::os::fd::RawFd;

/// Demuxers an input may be read with (ffmpeg-formats(1)): containers and
/// raw streams that carry their media themselves. Left out on purpose:
/// `hls`, `dash`, `concat`, `image2` and every other format that opens
/// further files or URLs named inside the input.
pub const INPUT_FORMATS: &str = "mov,matroska,avi,flv,mpegts,mpeg,asf,ogg,mxf,nut,dv,gif,ivf,\
                                 h264,hevc,m4v,mpegvideo,mjpeg,obu,av1,vc1,rm,wtv,yuv4mpegpipe";

/// Input options that keep FFmpeg to the one file it is given: the `file`
/// protocol only (`-protocol_whitelist`) and [`INPUT_FORMATS`]
/// (`-format_whitelist`; ffmpeg-formats(1), "Format Options").
pub const INPUT_LIMITS: [&str; 4] = [
    "-protocol_whitelist",
    "file",
    "-format_whitelist",
    INPUT_FORMATS,
];

/// The `file:` URL of the inherited descriptor `fd`: `file:/dev/fd/N`.
pub fn fd_url(fd: RawFd) -> OsString {
    format!("file:/dev/fd/{fd}").into()
}

/// The video filter chain of one variation: the effects (see
/// [`crate::effects`]: rotate, then eq for brightness, contrast, saturation),
/// then even dimensions and `yuv420p`, which libx264 needs for players.
pub fn filter_chain(effects: &Effects) -> String {
    format!(
        "rotate={:.6}:fillcolor=black@0,eq=brightness={:.6}:contrast={:.6}:saturation={:.6},\
         scale=trunc(iw/2)*2:trunc(ih/2)*2,format=yuv420p",
        effects.rotation, effects.brightness, effects.contrast, effects.saturation
    )
}

/// ffmpeg arguments (without the program) that encode one variation of
/// the input open as descriptor `input` into the output open as `output`,
/// an MP4 file the caller created empty (so `-y` is given).
///
/// Progress goes to stdout as `key=value` lines (`-progress pipe:1`);
/// stderr carries warnings and errors only. Streams: the first real video
/// stream and the first audio stream when there is one (`0:V:0`, `0:a:0?`).
pub fn encode(
    input: RawFd,
    output: RawFd,
    effects: &Effects,
    settings: &EncodeSettings,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "warning",
        "-progress",
        "pipe:1",
        "-y",
    ]
    .iter()
    .chain(&INPUT_LIMITS)
    .chain(&["-i"])
    .map(OsString::from)
    .collect();
    args.push(fd_url(input));
    let mut tail: Vec<String> = vec![
        "-map".into(),
        "0:V:0".into(),
        "-map".into(),
        "0:a:0?".into(),
        "-vf".into(),
        filter_chain(effects),
        "-c:v".into(),
        settings.video_codec.clone(),
        "-preset".into(),
        settings.preset.clone(),
    ];
    tail.extend(match settings.rate {
        RateControl::BitrateKbps(kbps) => ["-b:v".to_string(), format!("{kbps}k")],
        RateControl::Crf(crf) => ["-crf".to_string(), crf.to_string()],
    });
    if let Some(rate) = &settings.frame_rate {
        tail.extend(["-r".to_string(), rate.clone()]);
    }
    tail.extend(["-c:a", &settings.audio_codec, "-f", "mp4"].map(String::from));
    args.extend(tail.into_iter().map(OsString::from));
    args.push(fd_url(output));
    args
}

/// ffprobe arguments (without the program) that print the format and
/// streams of the file open as descriptor `fd` as JSON on stdout.
pub fn probe(fd: RawFd) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
    ]
    .iter()
    .chain(&INPUT_LIMITS)
    .map(OsString::from)
    .collect();
    args.push(fd_url(fd));
    args
}

/// ffprobe arguments that, beyond [`probe`], decode the first frames of the
/// first video stream (`-count_frames` within `-read_intervals %+#5`), so
/// the JSON's `nb_read_frames` tells whether the video decodes at all.
pub fn verify(fd: RawFd) -> Vec<OsString> {
    let mut args = probe(fd);
    let url = args.pop().expect("probe args end with the path");
    args.extend(
        [
            "-select_streams",
            "V:0",
            "-count_frames",
            "-read_intervals",
            "%+#5",
        ]
        .iter()
        .map(OsString::from),
    );
    args.push(url);
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn is_file_url(arg: &&OsString) -> bool {
        arg.as_bytes().starts_with(b"file:/")
    }

    fn effects() -> Effects {
        Effects {
            rotation: 0.004321,
            brightness: -0.012,
            contrast: 1.03,
            saturation: 0.96,
        }
    }

    #[test]
    fn filter_chain_follows_the_recipe() {
        assert_eq!(
            filter_chain(&effects()),
            "rotate=0.004321:fillcolor=black@0,\
             eq=brightness=-0.012000:contrast=1.030000:saturation=0.960000,\
             scale=trunc(iw/2)*2:trunc(ih/2)*2,format=yuv420p"
        );
    }

    #[test]
    fn files_are_descriptors_never_paths() {
        let args = encode(7, 9, &effects(), &EncodeSettings::default());
        let urls: Vec<_> = args.iter().filter(is_file_url).collect();
        assert_eq!(urls, ["file:/dev/fd/7", "file:/dev/fd/9"]);
        // The input follows -i; the output is last.
        let i = args.iter().position(|a| a == "-i").unwrap();
        assert_eq!(args[i + 1], "file:/dev/fd/7");
        assert_eq!(args.last().unwrap(), "file:/dev/fd/9");
    }

    #[test]
    fn encode_carries_the_defaults_and_safety_flags() {
        let args = encode(3, 4, &effects(), &EncodeSettings::default());
        let joined: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        let joined = joined.join(" ");
        for needle in [
            "-nostdin",
            "-progress pipe:1",
            "-nostats",
            "-map 0:V:0 -map 0:a:0?",
            "-protocol_whitelist file -format_whitelist mov,matroska,",
            "-c:v libx264",
            "-preset ultrafast",
            "-b:v 2000k",
            "-r 30000/1001",
            "-c:a aac",
            "-f mp4",
        ] {
            assert!(joined.contains(needle), "{needle:?} missing from {joined}");
        }
    }

    #[test]
    fn crf_and_source_frame_rate_replace_bitrate_and_r() {
        let settings = EncodeSettings {
            rate: RateControl::Crf(23),
            frame_rate: None,
            ..EncodeSettings::default()
        };
        let args = encode(3, 4, &effects(), &settings);
        let joined = args
            .iter()
            .map(|a| a.to_str().unwrap())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(joined.contains("-crf 23"), "{joined}");
        assert!(
            !joined.contains("-b:v") && !joined.contains(" -r "),
            "{joined}"
        );
    }

    #[test]
    fn probe_asks_for_json() {
        let args = probe(5);
        assert!(args.iter().any(|a| a == "json"));
        assert_eq!(args.last().unwrap(), "file:/dev/fd/5");
    }
}
