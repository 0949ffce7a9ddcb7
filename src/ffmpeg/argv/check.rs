//! The command that checks encoded outputs: decode each one's sampled frames
//! and, with its reference pictures, compare them (`ssim`, the absolute
//! difference); one output, or all the outputs of a pipeline in one FFmpeg.
//! Reading what it prints is `ffmpeg::check`'s; this module only builds the
//! argv.

use super::files::{INPUT_LIMITS, fd_url, raw_input};
use super::filters::CHECK_SIZE;
use crate::ffmpeg::samples::Samples;
use std::ffi::OsString;
use std::os::fd::RawFd;

/// The key of the metadata entry that the check adds to every sampled frame
/// of the `N`th output it checks (value `N`, from 0), printed with the
/// frame's record: how [`crate::ffmpeg::check::parse`] tells the outputs
/// apart.
pub const OUTPUT_TAG: &str = "vidvar.output";

/// ffmpeg arguments (without the program) that check the encoded outputs of
/// `outputs`, each `(output, refs)`: the output file open as descriptor
/// `output` and, when `refs` is given, the reference pictures
/// [`encode`](fn@super::encode) (or the pipeline's decoder) wrote to the
/// descriptor `refs`, rewound. `outputs` must not be empty; all are sampled
/// at `samples`. One FFmpeg, one thread (`-threads 1` per input,
/// `-filter_threads 1`), whatever the number of outputs.
///
/// Each output is an input of its own: with `keyframes_only` only its
/// keyframes are decoded (`-skip_frame nokey`), else all frames. Its chain
/// picks the sampled frames by their times from its only video stream
/// (`select`), scales them to [`CHECK_SIZE`](super::CHECK_SIZE) and, with
/// `refs` (raw `yuv420p` at that size, one picture per sampled frame, read
/// by FFmpeg's `pipe:` protocol), compares each with its reference picture:
/// `ssim`, then the absolute difference (`blend=all_mode=difference`), both
/// stopping at the shorter input (`shortest=1`: a missing sample must not
/// be hidden by repeating the last one) measured by `signalstats`. Every
/// frame of the `N`th output's chain is then tagged [`OUTPUT_TAG`]` = N`
/// (`metadata=mode=delete`, then `mode=add`); the chains meet in `interleave` (frames in order
/// of their times, every chain numbered from 0 by `setpts=N/TB`), renumbered
/// again for the muxer, and one `metadata=mode=print:file=-` prints one
/// record per sampled frame of every output to stdout (see
/// [`crate::ffmpeg::check::parse`]); a single print filter keeps the
/// records whole, which K print filters, each buffering its own writes to
/// stdout, would not.
pub fn check(
    outputs: &[(RawFd, Option<RawFd>)],
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
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let (w, h) = CHECK_SIZE;
    let select = samples.select_expr();
    let mut chains = Vec::with_capacity(outputs.len());
    let mut input = 0;
    for (n, &(output, refs)) in outputs.iter().enumerate() {
        args.extend(
            ["-threads", "1"]
                .iter()
                .chain(skip)
                .chain(&INPUT_LIMITS)
                .chain(&["-i"])
                .map(OsString::from),
        );
        args.push(fd_url(output));
        let picked =
            format!("[{input}:V:0]select='{select}',scale={w}:{h},format=yuv420p,setpts=N/TB");
        // A tag the decoded frame already carried (frame metadata from the
        // stream) is dropped first: only the chain's own counts.
        let tag = format!(
            "metadata=mode=delete:key={OUTPUT_TAG},metadata=mode=add:key={OUTPUT_TAG}:value={n}[c{n}]"
        );
        chains.push(match refs {
            Some(refs) => {
                args.extend(raw_input(refs, (w, h), "1"));
                let r = input + 1;
                input += 2;
                format!(
                    "{picked}[o{n}];[{r}:v]setpts=N/TB,split[r{n}][d{n}];\
                     [o{n}][r{n}]ssim=shortest=1[s{n}];\
                     [s{n}][d{n}]blend=all_mode=difference:shortest=1,signalstats,{tag}"
                )
            }
            None => {
                input += 1;
                format!("{picked},{tag}")
            }
        });
    }
    let labels: String = (0..outputs.len()).map(|n| format!("[c{n}]")).collect();
    let graph = format!(
        "{};{labels}interleave=nb_inputs={},setpts=N/TB,metadata=mode=print:file=-",
        chains.join(";"),
        outputs.len()
    );
    args.extend(
        ["-filter_complex", &graph, "-f", "null", "-"]
            .iter()
            .map(OsString::from),
    );
    args
}

#[cfg(test)]
mod tests {
    use super::super::testing::joined;
    use super::*;
    use crate::job::FrameRate;

    #[test]
    fn the_check_decodes_keyframes_and_compares_with_the_references() {
        let samples = Samples::plan(Some(400_000), FrameRate { num: 5, den: 1 });
        let args = joined(&check(&[(4, Some(6))], &samples, true));
        for needle in [
            "-threads 1 -skip_frame nokey -protocol_whitelist file",
            "-i file:/dev/fd/4",
            "-protocol_whitelist pipe -format_whitelist rawvideo -f rawvideo \
             -pixel_format yuv420p -video_size 320x180 -framerate 1 -i pipe:6",
            "[0:V:0]select='lt(abs(t-0.000000)\\,0.100000)+lt(abs(t-0.200000)\\,0.100000)',\
             scale=320:180,format=yuv420p,setpts=N/TB[o0]",
            "[1:v]setpts=N/TB,split[r0][d0];[o0][r0]ssim=shortest=1[s0];",
            "[s0][d0]blend=all_mode=difference:shortest=1,signalstats,\
             metadata=mode=delete:key=vidvar.output,\
             metadata=mode=add:key=vidvar.output:value=0[c0];",
            "[c0]interleave=nb_inputs=1,setpts=N/TB,metadata=mode=print:file=- -f null -",
        ] {
            assert!(args.contains(needle), "{needle:?} missing from {args}");
        }
        let bare = joined(&check(&[(4, None)], &samples, false));
        assert!(!bare.contains("-skip_frame"), "{bare}");
        assert!(!bare.contains("pipe:") && !bare.contains("ssim"), "{bare}");
        // A frame without metadata would print nothing: the tag is some.
        assert!(
            bare.contains(
                "setpts=N/TB,metadata=mode=delete:key=vidvar.output,\
                 metadata=mode=add:key=vidvar.output:value=0[c0];\
                 [c0]interleave=nb_inputs=1,"
            ),
            "{bare}"
        );
    }

    #[test]
    fn one_check_compares_each_output_with_its_own_references() {
        let samples = Samples::plan(Some(400_000), FrameRate { num: 5, den: 1 });
        let args = check(&[(4, Some(5)), (7, Some(8)), (9, Some(3))], &samples, true);
        let text = joined(&args);
        // Inputs in order: output, its references, the next output...
        let inputs: Vec<_> = args
            .windows(2)
            .filter(|w| w[0] == "-i")
            .map(|w| w[1].to_str().unwrap())
            .collect();
        assert_eq!(
            inputs,
            [
                "file:/dev/fd/4",
                "pipe:5",
                "file:/dev/fd/7",
                "pipe:8",
                "file:/dev/fd/9",
                "pipe:3"
            ]
        );
        // Every output is decoded by keyframes, by one thread.
        assert_eq!(text.matches("-threads 1 -skip_frame nokey").count(), 3);
        for (n, (output, refs)) in [(0, 1), (2, 3), (4, 5)].iter().enumerate() {
            for needle in [
                format!("[{output}:V:0]select="),
                format!("setpts=N/TB[o{n}];[{refs}:v]setpts=N/TB,split[r{n}][d{n}];"),
                format!("[o{n}][r{n}]ssim=shortest=1[s{n}];[s{n}][d{n}]blend="),
                format!(
                    "signalstats,metadata=mode=delete:key=vidvar.output,\
                     metadata=mode=add:key=vidvar.output:value={n}[c{n}]"
                ),
            ] {
                assert!(text.contains(&needle), "{needle:?} missing from {text}");
            }
        }
        assert!(
            text.contains(
                "[c0][c1][c2]interleave=nb_inputs=3,setpts=N/TB,metadata=mode=print:file=-"
            ),
            "{text}"
        );
        assert_eq!(text.matches("mode=print").count(), 1, "{text}");

        // Without comparing: one input per output.
        let bare = check(&[(4, None), (7, None)], &samples, false);
        let text = joined(&bare);
        assert!(text.contains("[0:V:0]select=") && text.contains("[1:V:0]select="));
        assert!(text.contains("key=vidvar.output:value=1[c1];[c0][c1]interleave=nb_inputs=2"));
        assert!(!text.contains("pipe:"), "{text}");
    }
}
