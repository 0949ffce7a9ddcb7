//! The encode of one variation by one FFmpeg ([`encode`]): its plan, its
//! `-filter_complex` graph, the keyframes the check will decode, and the
//! codec and container options that the encoders of a pipeline share. It
//! does not choose the settings or run FFmpeg.

use super::files::{INPUT_LIMITS, fd_url, raw_output};
use super::filters::{picture_chain, reference_chain, sampled_chain, source_chain};
use crate::effects::Effects;
use crate::ffmpeg::samples::Samples;
use crate::ffmpeg::{EncodeSettings, RateControl};
use crate::job::FrameRate;
use std::ffi::OsString;
use std::os::fd::RawFd;

/// The options an encode opens with: no banner, no reading of stdin, no
/// statistics line, and warnings and errors only on stderr
/// (ffmpeg(1), "Generic options" and "Advanced options").
pub const QUIET_ENCODE: [&str; 5] = [
    "-hide_banner",
    "-nostdin",
    "-nostats",
    "-loglevel",
    "warning",
];

/// The output options of `settings`, last before an output URL: the video
/// encoder (`-c:v`, `-preset`, `-b:v` or `-crf`), the audio encoder
/// (`-c:a`, used when the input has audio) and the container (`-f mp4`).
pub fn codec_args(settings: &EncodeSettings) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-c:v".into(),
        settings.video_codec.clone(),
        "-preset".into(),
        settings.preset.clone(),
    ];
    args.extend(match settings.rate {
        RateControl::BitrateKbps(kbps) => ["-b:v".to_string(), format!("{kbps}k")],
        RateControl::Crf(crf) => ["-crf".to_string(), crf.to_string()],
    });
    args.extend(["-c:a", &settings.audio_codec, "-f", "mp4"].map(String::from));
    args
}

/// What one encode is made of besides its files.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodePlan<'a> {
    pub effects: &'a Effects,
    pub settings: &'a EncodeSettings,
    /// Frame rate of the output: the settings' own, else the input's.
    pub rate: FrameRate,
    /// Deinterlace first (FFmpeg's `bwdif`, one frame per frame).
    pub deinterlace: bool,
    /// Index of the input's video stream to encode (FFmpeg's `0:N`; see
    /// [`crate::ffmpeg::probe::parse`] for which).
    pub video_stream: usize,
    /// The frames the check samples.
    pub samples: &'a Samples,
}

/// The `-filter_complex` graph of one encode: the plan's video stream,
/// deinterlaced when asked, at the output frame rate from time 0
/// ([`rate_filter`](super::rate_filter)), split in two. `[out]` carries the
/// output's picture ([`picture_chain`]); `[ref]` carries only the sampled
/// frames, with the same effects applied at the input's shape, shrunk to about
/// [`REFERENCE_AREA`](super::REFERENCE_AREA) pixels (at full size they cost 6%
/// of a 720p encode; a rotation applied after squashing to 16:9 would differ
/// from the output's), then scaled to [`CHECK_SIZE`](super::CHECK_SIZE): the
/// pictures the output must show there.
pub fn encode_graph(plan: &EncodePlan) -> String {
    format!(
        "{source}split[v][r];[v]{picture}[out];[r]{sampled}{reference}[ref]",
        source = source_chain(plan.video_stream, plan.deinterlace, plan.rate),
        picture = picture_chain(plan.effects),
        sampled = sampled_chain(plan.samples),
        reference = reference_chain(plan.effects),
    )
}

/// The sampled frames as keyframes (`-force_key_frames` at their times),
/// IDR frames (libx264, libx265; other encoders ignore the option), so
/// that the keyframes are keyframes to a decoder too and the check
/// decodes only them.
pub(super) fn keyframe_args(samples: &Samples) -> [String; 4] {
    [
        "-force_key_frames".into(),
        samples.keyframe_times(),
        "-forced-idr".into(),
        "1".into(),
    ]
}

/// ffmpeg arguments (without the program) that encode one variation of the
/// input open as descriptor `input` into the output open as `output`, an MP4
/// file the caller created empty (so `-y` is given), and write the reference
/// pictures of the sampled frames, raw `yuv420p` at
/// [`CHECK_SIZE`](super::CHECK_SIZE), one after the other, to descriptor `refs`
/// (FFmpeg's `pipe:` protocol writes to the descriptor itself, at its offset).
///
/// Progress goes to stdout as `key=value` lines (`-progress pipe:1`);
/// stderr carries warnings and errors only. Streams: the plan's video
/// stream and the first audio stream when there is one (`0:a:0?`).
/// The sampled frames are keyframes (`-force_key_frames` at their times),
/// so the check decodes only them.
pub fn encode(input: RawFd, output: RawFd, refs: RawFd, plan: &EncodePlan) -> Vec<OsString> {
    let mut args: Vec<OsString> = QUIET_ENCODE
        .iter()
        .chain(&["-progress", "pipe:1", "-y"])
        .chain(&INPUT_LIMITS)
        .chain(&["-i"])
        .map(OsString::from)
        .collect();
    args.push(fd_url(input));
    let mut tail: Vec<String> = vec![
        "-filter_complex".into(),
        encode_graph(plan),
        "-map".into(),
        "[out]".into(),
        "-map".into(),
        "0:a:0?".into(),
    ];
    tail.extend(keyframe_args(plan.samples));
    tail.extend(codec_args(plan.settings));
    args.extend(tail.into_iter().map(OsString::from));
    args.push(fd_url(output));
    args.extend(raw_output("[ref]", refs));
    args
}

#[cfg(test)]
mod tests {
    use super::super::filters::effects_chain;
    use super::super::testing::{effects, is_file_url, joined};
    use super::*;

    /// The argv of an encode of a 3 s input with `settings`.
    fn encode_with(settings: &EncodeSettings, deinterlace: bool) -> Vec<OsString> {
        let rate = settings.frame_rate.unwrap_or(FrameRate { num: 25, den: 1 });
        let samples = Samples::plan(Some(3_000_000), rate);
        let plan = EncodePlan {
            effects: &effects(),
            settings,
            rate,
            deinterlace,
            video_stream: 2,
            samples: &samples,
        };
        encode(7, 9, 11, &plan)
    }

    #[test]
    fn the_graph_splits_the_picture_into_output_and_references() {
        let settings = EncodeSettings::default();
        let args = encode_with(&settings, false);
        let graph = args[args.iter().position(|a| a == "-filter_complex").unwrap() + 1]
            .to_str()
            .unwrap()
            .to_string();
        let effects = effects_chain(&effects());
        assert!(
            graph.starts_with("[0:2]fps=30000/1001:start_time=0,split[v][r];"),
            "{graph}"
        );
        // Even sizes of at least 2x2: a 1x1 input must not become 0x0.
        assert!(
            graph.contains(&format!(
                "[v]{effects},scale='max(2,trunc(iw/2)*2)':'max(2,trunc(ih/2)*2)',format=yuv420p[out]"
            )),
            "{graph}"
        );
        // The references carry the same effects, for the sampled frames.
        assert!(
            graph.contains("[r]select='lt(abs(t-0.000000)\\,0.016683)+"),
            "{graph}"
        );
        assert!(
            graph.ends_with(&format!("{effects},scale=320:180,format=yuv420p[ref]")),
            "{graph}"
        );
        assert!(!graph.contains("bwdif"));
        let interlaced = joined(&encode_with(&settings, true));
        assert!(
            interlaced.contains("[0:2]bwdif=mode=send_frame:parity=auto:deint=all,fps="),
            "{interlaced}"
        );
    }

    #[test]
    fn files_are_descriptors_never_paths() {
        let args = encode_with(&EncodeSettings::default(), false);
        let urls: Vec<_> = args.iter().filter(is_file_url).collect();
        assert_eq!(urls, ["file:/dev/fd/7", "file:/dev/fd/9"]);
        // The input follows -i; the references go to the inherited
        // descriptor itself, last.
        let i = args.iter().position(|a| a == "-i").unwrap();
        assert_eq!(args[i + 1], "file:/dev/fd/7");
        assert_eq!(args.last().unwrap(), "pipe:11");
    }

    #[test]
    fn encode_carries_the_defaults_and_safety_flags() {
        let joined = joined(&encode_with(&EncodeSettings::default(), false));
        for needle in [
            "-nostdin",
            "-progress pipe:1",
            "-nostats",
            "-map [out] -map 0:a:0?",
            "-protocol_whitelist file -format_whitelist mov,matroska,",
            "-c:v libx264",
            "-preset ultrafast",
            "-b:v 2000k",
            "-force_key_frames 0.000000,0.433767,",
            "-forced-idr 1",
            "-c:a aac",
            "-f mp4 file:/dev/fd/9",
            "-map [ref] -fps_mode:v passthrough -c:v rawvideo -f rawvideo pipe:11",
        ] {
            assert!(joined.contains(needle), "{needle:?} missing from {joined}");
        }
    }

    #[test]
    fn crf_and_source_frame_rate_replace_bitrate_and_rate() {
        let settings = EncodeSettings {
            rate: RateControl::Crf(23),
            frame_rate: None,
            ..EncodeSettings::default()
        };
        let joined = joined(&encode_with(&settings, false));
        assert!(joined.contains("-crf 23"), "{joined}");
        assert!(joined.contains("fps=25/1:start_time=0,"), "{joined}");
        assert!(
            !joined.contains("-b:v") && !joined.contains(" -r "),
            "{joined}"
        );
    }
}
