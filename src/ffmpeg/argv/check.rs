//! The command that checks an encoded output: decode its sampled frames and,
//! with the reference pictures, compare them (`ssim`, the absolute
//! difference). Reading what it prints is `ffmpeg::check`'s; this module
//! only builds the argv.

use super::files::{INPUT_LIMITS, fd_url, raw_input};
use super::filters::CHECK_SIZE;
use crate::ffmpeg::samples::Samples;
use std::ffi::OsString;
use std::os::fd::RawFd;

/// ffmpeg arguments (without the program) that check the encoded output open as
/// descriptor `output`: with `keyframes_only` only its keyframes are decoded
/// (`-skip_frame nokey`), else all frames; one thread; the sampled ones are
/// picked by their times from its only video stream and scaled to
/// [`CHECK_SIZE`](super::CHECK_SIZE). With `refs` (the descriptor
/// [`encode`](fn@super::encode) wrote, rewound), each is compared with its
/// reference picture: `ssim`, then the absolute difference
/// (`blend=all_mode=difference`), both stopping at the shorter input
/// (`shortest=1`: a missing sample must not be hidden by repeating the last
/// one) measured by `signalstats`. Either way one `metadata=mode=print` record
/// per sampled frame goes to stdout (see [`crate::ffmpeg::check::parse`]).
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

#[cfg(test)]
mod tests {
    use super::super::testing::joined;
    use super::*;
    use crate::job::FrameRate;

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
}
