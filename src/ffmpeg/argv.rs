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

use super::samples::Samples;
use super::{EncodeSettings, RateControl};
use crate::effects::Effects;
use crate::job::FrameRate;
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

/// The `file:` URL of the inherited descriptor `fd`: `file:/dev/fd/N`.
pub fn fd_url(fd: RawFd) -> OsString {
    format!("file:/dev/fd/{fd}").into()
}

/// The effects of one variation as a filter chain (see
/// [`crate::effects`]): rotate, then eq for brightness, contrast and
/// saturation.
pub fn effects_chain(effects: &Effects) -> String {
    format!(
        "rotate={:.6}:fillcolor=black@0,eq=brightness={:.6}:contrast={:.6}:saturation={:.6}",
        effects.rotation, effects.brightness, effects.contrast, effects.saturation
    )
}

/// The output's picture from frames at the output rate: the effects
/// ([`effects_chain`]), then [`EVEN_YUV420P`].
pub fn picture_chain(effects: &Effects) -> String {
    format!("{},{EVEN_YUV420P}", effects_chain(effects))
}

/// Even dimensions of at least 2x2 (libx264 refuses odd ones; `trunc`
/// alone would turn a 1-pixel side into 0, which `scale` reads as "keep")
/// and `yuv420p`, which players need. [`even_size`] computes the same.
pub const EVEN_YUV420P: &str = "scale='max(2,trunc(iw/2)*2)':'max(2,trunc(ih/2)*2)',format=yuv420p";

/// The size in pixels [`EVEN_YUV420P`] gives a `width` x `height` picture.
pub fn even_size((width, height): (u32, u32)) -> (u32, u32) {
    let even = |side: u32| (side / 2 * 2).max(2);
    (even(width), even(height))
}

/// The output frame rate from time 0 (FFmpeg's `fps` filter with
/// `start_time=0`): a video that starts after the audio begins with its
/// first frame repeated, so the two stay in sync, and frame times are the
/// output's.
pub fn rate_filter(rate: FrameRate) -> String {
    format!("fps={rate}:start_time=0")
}

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

/// Width and height every sampled frame is scaled to before the check
/// compares it (see [`super::check`]).
pub const CHECK_SIZE: (u32, u32) = (320, 180);

/// Pixels a reference picture keeps while the effects are applied to it
/// (640x360 for 16:9): the input is shrunk to it keeping its shape, never
/// enlarged.
pub const REFERENCE_AREA: u32 = 640 * 360;

/// An FFmpeg `scale` expression for side `side` (`iw` or `ih`) shrunk by
/// one factor for both sides to at most [`REFERENCE_AREA`] pixels, even
/// and at least 2.
fn shrunk(side: &str) -> String {
    format!("max(2,trunc({side}*min(1,sqrt({REFERENCE_AREA}/(iw*ih)))/2)*2)")
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
    /// [`super::probe::parse`] for which).
    pub video_stream: usize,
    /// The frames the check samples.
    pub samples: &'a Samples,
}

/// The `-filter_complex` graph of one encode: the plan's video stream,
/// deinterlaced when asked, at the output frame rate from time 0
/// ([`rate_filter`]), split in two. `[out]` carries the output's picture
/// ([`picture_chain`]); `[ref]` carries only the sampled frames, with the same effects applied
/// at the input's shape, shrunk to about [`REFERENCE_AREA`] pixels (at
/// full size they cost 6% of a 720p encode; a rotation applied after
/// squashing to 16:9 would differ from the output's), then scaled to
/// [`CHECK_SIZE`]: the pictures the output must show there.
pub fn encode_graph(plan: &EncodePlan) -> String {
    format!(
        "{source}split[v][r];[v]{picture}[out];[r]{sampled}{reference}[ref]",
        source = source_chain(plan.video_stream, plan.deinterlace, plan.rate),
        picture = picture_chain(plan.effects),
        sampled = sampled_chain(plan.samples),
        reference = reference_chain(plan.effects),
    )
}

/// The start of every graph that decodes: the input's video stream
/// `stream`, deinterlaced when asked (FFmpeg's `bwdif`, one frame per
/// frame), at the output frame rate from time 0 ([`rate_filter`]),
/// followed by a comma.
fn source_chain(stream: usize, deinterlace: bool, rate: FrameRate) -> String {
    let deinterlace = if deinterlace {
        "bwdif=mode=send_frame:parity=auto:deint=all,"
    } else {
        ""
    };
    format!("[0:{stream}]{deinterlace}{},", rate_filter(rate))
}

/// Only the sampled frames, shrunk to about [`REFERENCE_AREA`] pixels
/// keeping the input's shape; a filter chain ending in a comma.
fn sampled_chain(samples: &Samples) -> String {
    format!(
        "select='{}',scale='{}':'{}',",
        samples.select_expr(),
        shrunk("iw"),
        shrunk("ih")
    )
}

/// A reference picture from a sampled, shrunk frame: FFmpeg's own effects
/// ([`effects_chain`]), then [`CHECK_SIZE`] in `yuv420p`.
fn reference_chain(effects: &Effects) -> String {
    let (w, h) = CHECK_SIZE;
    format!("{},scale={w}:{h},format=yuv420p", effects_chain(effects))
}

/// What the decoder of a pipeline (see `engine::pipeline`) makes of its
/// input, for all variations of a batch alike.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodePlan<'a> {
    /// Frame rate of the outputs.
    pub rate: FrameRate,
    /// Deinterlace first.
    pub deinterlace: bool,
    /// Index of the input's video stream (FFmpeg's `0:N`).
    pub video_stream: usize,
    /// The frames the check samples.
    pub samples: &'a Samples,
}

/// ffmpeg arguments (without the program) that decode the input open as
/// descriptor `input` once for a batch of variations: its frames, as an
/// encode would take them ([`source_chain`]), go as raw `yuv420p` to
/// descriptor `raw` (a pipe to the stage), one after the other, every one
/// scaled to `size` (width, height: the input's probed size as
/// [`even_size`] makes it, which the stage reads; so a picture size that
/// changes mid-stream, or a file rewritten since its probe, still gives
/// frames of that size, where [`EVEN_YUV420P`] would follow it); and for
/// each `(descriptor,
/// effects)` of `references`, the reference pictures of that variation's
/// sampled frames, made by FFmpeg's own `rotate` and `eq` (never by the
/// stage), raw `yuv420p` at [`CHECK_SIZE`], as [`encode`] writes them.
/// Progress goes to stdout (`-progress pipe:1`). `references` must not be
/// empty.
pub fn decode(
    input: RawFd,
    raw: RawFd,
    references: &[(RawFd, &Effects)],
    size: (u32, u32),
    plan: &DecodePlan,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = QUIET_ENCODE
        .iter()
        .chain(&["-progress", "pipe:1"])
        .chain(&INPUT_LIMITS)
        .chain(&["-i"])
        .map(OsString::from)
        .collect();
    args.push(fd_url(input));
    let labels: String = (0..references.len()).map(|i| format!("[r{i}]")).collect();
    let mut graph = format!(
        "{source}split[v][r];[v]scale={w}:{h},format=yuv420p[raw];[r]{sampled}split={k}{labels}",
        source = source_chain(plan.video_stream, plan.deinterlace, plan.rate),
        w = size.0,
        h = size.1,
        sampled = sampled_chain(plan.samples),
        k = references.len(),
    );
    for (i, (_, effects)) in references.iter().enumerate() {
        graph.push_str(&format!(";[r{i}]{}[ref{i}]", reference_chain(effects)));
    }
    args.extend(["-filter_complex".into(), graph.into()]);
    let outputs = std::iter::once(("[raw]".to_string(), raw)).chain(
        references
            .iter()
            .enumerate()
            .map(|(i, (fd, _))| (format!("[ref{i}]"), *fd)),
    );
    for (label, fd) in outputs {
        args.extend(raw_output(&label, fd));
    }
    args
}

/// An output of the filter graph's `label`, frame for frame as the graph
/// timed them (`-fps_mode passthrough`), raw, to the descriptor `fd`
/// itself (FFmpeg's `pipe:` protocol).
fn raw_output(label: &str, fd: RawFd) -> Vec<OsString> {
    [
        "-map",
        label,
        "-fps_mode:v",
        "passthrough",
        "-c:v",
        "rawvideo",
        "-f",
        "rawvideo",
        &format!("pipe:{fd}"),
    ]
    .iter()
    .map(OsString::from)
    .collect()
}

/// ffmpeg arguments (without the program) that encode one variation of a
/// pipeline: its pictures, raw `yuv420p` frames of `size` (width, height)
/// at the plan's rate from descriptor `raw` (the stage's pipe), and the
/// first audio stream, if any, of the input open as descriptor `input`
/// (its times as [`encode`] keeps them), into the output open as
/// `output`, as [`encode`] does: the same keyframes, codecs and
/// container, progress on stdout.
pub fn encode_raw(
    raw: RawFd,
    size: (u32, u32),
    input: RawFd,
    output: RawFd,
    plan: &EncodePlan,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = QUIET_ENCODE
        .iter()
        .chain(&["-progress", "pipe:1", "-y"])
        .map(OsString::from)
        .collect();
    args.extend(raw_input(raw, size, &plan.rate.to_string()));
    args.extend(INPUT_LIMITS.iter().chain(&["-i"]).map(OsString::from));
    args.push(fd_url(input));
    let mut tail: Vec<String> = vec!["-map".into(), "0:v".into(), "-map".into(), "1:a:0?".into()];
    tail.extend(keyframe_args(plan.samples));
    tail.extend(codec_args(plan.settings));
    args.extend(tail.into_iter().map(OsString::from));
    args.push(fd_url(output));
    args
}

/// `vidvar-stage` arguments (without the program; see its `--help`):
/// frames of `size` (width, height) on its stdin, and for each
/// `(descriptor, effects)` of `outputs` one `--output`, the effects
/// rounded as [`effects_chain`] hands them to FFmpeg, so that the stage
/// and the check's reference pictures apply the same values.
pub fn stage(size: (u32, u32), outputs: &[(RawFd, &Effects)]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--size".into(), format!("{}x{}", size.0, size.1).into()];
    for (fd, e) in outputs {
        args.push("--output".into());
        args.push(
            format!(
                "{fd}:{:.6}:{:.6}:{:.6}:{:.6}",
                e.rotation, e.brightness, e.contrast, e.saturation
            )
            .into(),
        );
    }
    args
}

/// An input of raw `yuv420p` frames of `size` (width, height) at `rate`
/// frames/s read from the descriptor `fd` itself (`pipe:`), with nothing
/// else allowed (`-protocol_whitelist pipe -format_whitelist rawvideo`).
fn raw_input(fd: RawFd, size: (u32, u32), rate: &str) -> Vec<OsString> {
    [
        "-protocol_whitelist",
        "pipe",
        "-format_whitelist",
        "rawvideo",
        "-f",
        "rawvideo",
        "-pixel_format",
        "yuv420p",
        "-video_size",
        &format!("{}x{}", size.0, size.1),
        "-framerate",
        rate,
        "-i",
        &format!("pipe:{fd}"),
    ]
    .iter()
    .map(OsString::from)
    .collect()
}

/// The sampled frames as keyframes (`-force_key_frames` at their times),
/// IDR frames (libx264, libx265; other encoders ignore the option), so
/// that the keyframes are keyframes to a decoder too and the check
/// decodes only them.
fn keyframe_args(samples: &Samples) -> [String; 4] {
    [
        "-force_key_frames".into(),
        samples.keyframe_times(),
        "-forced-idr".into(),
        "1".into(),
    ]
}

/// ffmpeg arguments (without the program) that encode one variation of
/// the input open as descriptor `input` into the output open as `output`,
/// an MP4 file the caller created empty (so `-y` is given), and write the
/// reference pictures of the sampled frames, raw `yuv420p` at
/// [`CHECK_SIZE`], one after the other, to descriptor `refs` (FFmpeg's
/// `pipe:` protocol writes to the descriptor itself, at its offset).
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

/// ffmpeg arguments (without the program) that check the encoded output
/// open as descriptor `output`: with `keyframes_only` only its keyframes
/// are decoded (`-skip_frame nokey`), else all frames; one thread; the
/// sampled ones are picked by their times from its only video stream and
/// scaled to [`CHECK_SIZE`]. With `refs` (the descriptor
/// [`encode`] wrote, rewound), each is compared with its reference picture:
/// `ssim`, then the absolute difference (`blend=all_mode=difference`),
/// both stopping at the shorter input (`shortest=1`: a missing sample must
/// not be hidden by repeating the last one)
/// measured by `signalstats`. Either way one `metadata=mode=print` record
/// per sampled frame goes to stdout (see [`super::check::parse`]).
pub fn check(
    output: RawFd,
    refs: Option<RawFd>,
    samples: &Samples,
    keyframes_only: bool,
) -> Vec<OsString> {
    let skip: &[&str] = if keyframes_only {
        &["-skip_frame", "nokey"]
    } else {
        &[]
    };
    let mut args: Vec<OsString> = [
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "error",
        "-filter_threads",
        "1",
        "-threads",
        "1",
    ]
    .iter()
    .chain(skip)
    .chain(&INPUT_LIMITS)
    .chain(&["-i"])
    .map(OsString::from)
    .collect();
    args.push(fd_url(output));
    let (w, h) = CHECK_SIZE;
    let picked = format!(
        "[0:V:0]select='{}',scale={w}:{h},format=yuv420p,setpts=N/TB",
        samples.select_expr()
    );
    let graph = match refs {
        Some(refs) => {
            args.extend(raw_input(refs, (w, h), "1"));
            format!(
                "{picked}[o];[1:v]setpts=N/TB,split[r1][r2];[o][r1]ssim=shortest=1[s];\
                 [s][r2]blend=all_mode=difference:shortest=1,signalstats,metadata=mode=print:file=-"
            )
        }
        // A frame without metadata prints nothing: tag each.
        None => format!("{picked},metadata=mode=add:key=sample:value=1,metadata=mode=print:file=-"),
    };
    args.extend(
        ["-filter_complex", &graph, "-f", "null", "-"]
            .iter()
            .map(OsString::from),
    );
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

    fn joined(args: &[OsString]) -> String {
        args.iter()
            .map(|a| a.to_str().unwrap())
            .collect::<Vec<_>>()
            .join(" ")
    }

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
    fn effects_follow_the_recipe() {
        assert_eq!(
            effects_chain(&effects()),
            "rotate=0.004321:fillcolor=black@0,\
             eq=brightness=-0.012000:contrast=1.030000:saturation=0.960000"
        );
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

    #[test]
    fn the_check_decodes_keyframes_and_compares_with_the_references() {
        let samples = Samples::plan(Some(400_000), FrameRate { num: 5, den: 1 });
        let args = joined(&check(4, Some(6), &samples, true));
        for needle in [
            "-threads 1 -skip_frame nokey -protocol_whitelist file",
            "-i file:/dev/fd/4",
            "-protocol_whitelist pipe -format_whitelist rawvideo -f rawvideo \
             -pixel_format yuv420p -video_size 320x180 -framerate 1 -i pipe:6",
            "[0:V:0]select='lt(abs(t-0.000000)\\,0.100000)+lt(abs(t-0.200000)\\,0.100000)',\
             scale=320:180,format=yuv420p,setpts=N/TB[o]",
            "[o][r1]ssim=shortest=1[s]",
            "blend=all_mode=difference:shortest=1,signalstats,metadata=mode=print:file=-",
            "-f null -",
        ] {
            assert!(args.contains(needle), "{needle:?} missing from {args}");
        }
        let bare = joined(&check(4, None, &samples, false));
        assert!(!bare.contains("-skip_frame"), "{bare}");
        assert!(!bare.contains("pipe:") && !bare.contains("ssim"), "{bare}");
        assert!(
            bare.contains(",metadata=mode=add:key=sample:value=1,metadata=mode=print:file=-"),
            "{bare}"
        );
    }

    #[test]
    fn a_pipeline_decodes_once_and_encodes_raw_frames_with_the_same_rules() {
        let settings = EncodeSettings::default();
        let rate = FrameRate { num: 25, den: 1 };
        let samples = Samples::plan(Some(3_000_000), rate);
        let other = Effects {
            rotation: -0.002,
            ..effects()
        };
        let decode_plan = DecodePlan {
            rate,
            deinterlace: true,
            video_stream: 1,
            samples: &samples,
        };
        let refs = [(5, &effects()), (6, &other)];
        let decode = joined(&decode(3, 4, &refs, (322, 2), &decode_plan));
        for needle in [
            "-progress pipe:1 -protocol_whitelist file",
            "-i file:/dev/fd/3",
            "[0:1]bwdif=mode=send_frame:parity=auto:deint=all,fps=25/1:start_time=0,split[v][r];",
            "[v]scale=322:2,format=yuv420p[raw];[r]select=",
            "split=2[r0][r1];",
            &format!("[r0]{},scale=320:180", effects_chain(&effects())),
            &format!("[r1]{},scale=320:180", effects_chain(&other)),
            "-map [raw] -fps_mode:v passthrough -c:v rawvideo -f rawvideo pipe:4",
            "-map [ref0] -fps_mode:v passthrough -c:v rawvideo -f rawvideo pipe:5",
            "-map [ref1] -fps_mode:v passthrough -c:v rawvideo -f rawvideo pipe:6",
        ] {
            assert!(decode.contains(needle), "{needle:?} missing from {decode}");
        }
        let plan = EncodePlan {
            effects: &effects(),
            settings: &settings,
            rate,
            deinterlace: true,
            video_stream: 1,
            samples: &samples,
        };
        let args = encode_raw(7, (322, 2), 3, 9, &plan);
        let urls: Vec<_> = args.iter().filter(is_file_url).collect();
        assert_eq!(urls, ["file:/dev/fd/3", "file:/dev/fd/9"]);
        let encode = joined(&args);
        for needle in [
            "-protocol_whitelist pipe -format_whitelist rawvideo -f rawvideo \
             -pixel_format yuv420p -video_size 322x2 -framerate 25/1 -i pipe:7",
            "-map 0:v -map 1:a:0? -force_key_frames 0.000000,",
            "-forced-idr 1 -c:v libx264",
            "-f mp4 file:/dev/fd/9",
        ] {
            assert!(encode.contains(needle), "{needle:?} missing from {encode}");
        }
        assert!(!encode.contains("rotate"), "{encode}");
        let stage = joined(&stage((322, 2), &[(8, &effects()), (10, &other)]));
        assert_eq!(
            stage,
            "--size 322x2 --output 8:0.004321:-0.012000:1.030000:0.960000 \
             --output 10:-0.002000:-0.012000:1.030000:0.960000"
        );
    }

    #[test]
    fn even_sizes_are_at_least_two() {
        assert_eq!(even_size((1, 1)), (2, 2));
        assert_eq!(even_size((321, 240)), (320, 240));
        assert_eq!(even_size((3, 1081)), (2, 1080));
    }

    #[test]
    fn probe_asks_for_json() {
        let args = probe(5);
        assert!(args.iter().any(|a| a == "json"));
        assert_eq!(args.last().unwrap(), "file:/dev/fd/5");
    }
}
