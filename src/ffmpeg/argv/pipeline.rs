//! The commands of a pipeline (see `engine::pipeline`): one FFmpeg that decodes
//! an input once for a batch of variations and makes their reference pictures,
//! `vidvar-stage` that applies their effects, and one FFmpeg per variation that
//! encodes the stage's raw frames as [`encode`](fn@super::encode) would. It
//! does not start or connect the processes.

use super::encode::{EncodePlan, QUIET_ENCODE, codec_args, keyframe_args};
use super::files::{INPUT_LIMITS, fd_url, raw_input, raw_output};
use super::filters::{reference_chain, sampled_chain, source_chain};
use crate::effects::Effects;
use crate::ffmpeg::samples::Samples;
use crate::job::FrameRate;
use std::ffi::OsString;
use std::os::fd::RawFd;

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
/// descriptor `input` once for a batch of variations: its frames, as an encode
/// would take them ([`source_chain`]), go as raw `yuv420p` to descriptor `raw`
/// (a pipe to the stage), one after the other, every one scaled to `size`
/// (width, height: the input's probed size as [`even_size`](super::even_size)
/// makes it, which the stage reads; so a picture size that changes mid-stream,
/// or a file rewritten since its probe, still gives frames of that size, where
/// [`EVEN_YUV420P`](super::EVEN_YUV420P) would follow it); and for each
/// `(descriptor, effects)` of `references`, the reference pictures of that
/// variation's sampled frames, made by FFmpeg's own `rotate` and `eq` (never by
/// the stage), raw `yuv420p` at [`CHECK_SIZE`](super::CHECK_SIZE), as
/// [`encode`](fn@super::encode) writes them. Progress goes to stdout
/// (`-progress pipe:1`). `references` must not be empty.
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

/// ffmpeg arguments (without the program) that encode one variation of a
/// pipeline: its pictures, raw `yuv420p` frames of `size` (width, height) at
/// the plan's rate from descriptor `raw` (the stage's pipe), and the first
/// audio stream, if any, of the input open as descriptor `input` (its times as
/// [`encode`](fn@super::encode) keeps them), into the output open as `output`,
/// as [`encode`](fn@super::encode) does: the same keyframes, codecs and
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

/// `vidvar-stage` arguments (without the program; see its `--help`): frames of
/// `size` (width, height) on its stdin, and for each `(descriptor, effects)` of
/// `outputs` one `--output`, the effects rounded as
/// [`effects_chain`](super::effects_chain) hands them to FFmpeg, so that the
/// stage and the check's reference pictures apply the same values.
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

#[cfg(test)]
mod tests {
    use super::super::filters::effects_chain;
    use super::super::testing::{effects, is_file_url, joined};
    use super::*;
    use crate::ffmpeg::EncodeSettings;

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
}
