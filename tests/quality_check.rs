//! The checker itself, with real FFmpeg on lavfi inputs: an honest
//! variation at the worst corner of the v1 effect ranges passes the
//! default floor, and a black, frozen, green or other video in its place
//! does not; nor does an output cut short or one that is not a video.
//! Bad outputs are made by vidvard's own encode argv with a deliberately
//! wrong filter in place of the effects of the output's branch (the
//! reference pictures keep the right ones), or by swapping in the encode of
//! another input; the checker then runs as the daemon runs it, on one
//! output or on several at once (a pipeline's outputs checked together).

mod common;

use common::*;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use vidvar::config::DEFAULT_MIN_SSIM;
use vidvar::effects::Effects;
use vidvar::ffmpeg::EncodeSettings;
use vidvar::ffmpeg::argv::{self, EncodePlan};
use vidvar::ffmpeg::check::{self, Checked};
use vidvar::ffmpeg::samples::{self as sampling, Samples};
use vidvar::job::{FrameRate, Quality};
use vidvar::rusage::CpuMeter;

const SECONDS: f64 = 3.0;

/// The worst corner of the v1 ranges: most rotation, brightness and
/// contrast, least saturation.
fn worst_case() -> Effects {
    Effects {
        rotation: 0.01,
        brightness: -0.05,
        contrast: 1.05,
        saturation: 0.95,
    }
}

struct Encoded {
    output: PathBuf,
    refs: File,
}

/// The samples of a [`SECONDS`] long input at the default output rate.
fn samples() -> Samples {
    let rate = EncodeSettings::default().frame_rate.unwrap();
    Samples::plan(Some((SECONDS * 1e6) as u64), rate)
}

/// Encode `input` as vidvard does, with `wrong` in place of the effects in
/// the output's branch when given.
fn encode(dir: &Path, input: &Path, name: &str, wrong: Option<&str>) -> Encoded {
    encode_stream(dir, input, name, wrong, 0, &samples())
}

/// [`encode`] of the input's video stream `video_stream` (index in the
/// file) sampled at `samples`.
fn encode_stream(
    dir: &Path,
    input: &Path,
    name: &str,
    wrong: Option<&str>,
    video_stream: usize,
    samples: &Samples,
) -> Encoded {
    let settings = EncodeSettings::default();
    let rate = settings.frame_rate.unwrap();
    let effects = worst_case();
    let plan = EncodePlan {
        effects: &effects,
        settings: &settings,
        rate,
        deinterlace: false,
        video_stream,
        samples,
    };
    let output = dir.join(format!("{name}.mp4"));
    let (inp, out) = (File::open(input).unwrap(), File::create(&output).unwrap());
    let refs = tempfile::tempfile().unwrap();
    let fds = [inp.as_raw_fd(), out.as_raw_fd(), refs.as_raw_fd()];
    let mut args = argv::encode(fds[0], fds[1], fds[2], &plan);
    if let Some(wrong) = wrong {
        let at = args.iter().position(|a| a == "-filter_complex").unwrap() + 1;
        let graph = args[at].to_str().unwrap();
        // The first occurrence is the output's branch, the second the
        // references'.
        args[at] = graph
            .replacen(&argv::effects_chain(&effects), wrong, 1)
            .into();
    }
    let result = runtime().block_on(async {
        vidvar::process::command(Path::new("ffmpeg"), None, &fds)
            .args(&args)
            .output()
            .await
            .unwrap()
    });
    assert!(
        result.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    Encoded { output, refs }
}

/// Run the check of `output` against the references of `refs`.
fn check(output: &Path, refs: &File) -> (u64, Checked) {
    check_samples(output, refs, &samples(), Some((SECONDS * 1e6) as u64))
}

/// Run the check of `output` at `samples` against the references of
/// `refs`, as the daemon does for an input whose video stream lasts
/// `video_us`; returns how many samples must decode
/// ([`Samples::required`]) and what the check found.
fn check_samples(
    output: &Path,
    refs: &File,
    samples: &Samples,
    video_us: Option<u64>,
) -> (u64, Checked) {
    use std::io::Seek;
    let references = refs.metadata().unwrap().len() / check::reference_bytes();
    let expected = samples.required(references, video_us);
    (&*refs).rewind().unwrap();
    let out = File::open(output).unwrap();
    let cpu = CpuMeter::default();
    let mut checked = runtime()
        .block_on(check::run(
            Path::new("ffmpeg"),
            &[(out.as_raw_fd(), Some(refs.as_raw_fd()))],
            samples,
            true,
            None,
            &cpu,
        ))
        .unwrap();
    assert!(cpu.seconds() > 0.0, "the check's CPU time is counted");
    assert_eq!(checked.len(), 1);
    (expected, checked.remove(0))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn figures(output: &Path, refs: &File) -> Quality {
    let (expected, checked) = check(output, refs);
    assert_eq!(expected, sampling::SAMPLES, "a reference per sample");
    assert_eq!(checked.decoded as u64, expected, "every sample decodes");
    checked.quality.expect("compared")
}

fn lavfi(dir: &Path, name: &str, source: &str) -> PathBuf {
    lavfi_sized(dir, name, source, "640x360")
}

fn lavfi_sized(dir: &Path, name: &str, source: &str, size: &str) -> PathBuf {
    let path = dir.join(format!("{name}.mp4"));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("{source}=size={size}:rate=30"),
        "-t",
        &SECONDS.to_string(),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        "yuv420p",
        s(&path),
    ]);
    path
}

#[test]
fn honest_variations_pass_and_black_frozen_green_or_another_video_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let input = lavfi(dir.path(), "testsrc2", "testsrc2");
    let honest = encode(dir.path(), &input, "honest", None);
    let good = figures(&honest.output, &honest.refs);
    assert!(
        good.ssim_min >= DEFAULT_MIN_SSIM,
        "an honest worst-case variation scores {good:?}"
    );
    assert!(good.luma_diff < 2.0, "{good:?}");

    let frame = "30000/1001";
    for (what, wrong) in [
        ("black", "lutyuv=y=16:u=128:v=128".to_string()),
        ("green", "lutyuv=y=0:u=0:v=0".to_string()),
        (
            "frozen",
            format!(
                "select=eq(n\\,0),loop=loop=-1:size=1,setpts=N/({frame})/TB,trim=duration={SECONDS}"
            ),
        ),
    ] {
        let bad = encode(dir.path(), &input, what, Some(&wrong));
        let q = figures(&bad.output, &honest.refs);
        assert!(
            q.ssim_min < DEFAULT_MIN_SSIM,
            "a {what} output passes the floor: {q:?}"
        );
    }

    // Another input's honest variation swapped in for this one's.
    let other = lavfi(dir.path(), "mandelbrot", "mandelbrot");
    let swapped = encode(dir.path(), &other, "swapped", None);
    let q = figures(&swapped.output, &honest.refs);
    assert!(q.ssim_min < DEFAULT_MIN_SSIM, "another video passes: {q:?}");
}

/// The first half of `output` only, stream-copied beside it (`half.mp4`):
/// it still decodes.
fn first_half(output: &Path) -> PathBuf {
    let half = output.with_file_name("half.mp4");
    ffmpeg(&[
        "-i",
        s(output),
        "-t",
        &(SECONDS / 2.0).to_string(),
        "-c",
        "copy",
        s(&half),
    ]);
    half
}

#[test]
fn a_cut_short_output_is_missing_samples() {
    let dir = tempfile::tempdir().unwrap();
    let input = lavfi(dir.path(), "testsrc2", "testsrc2");
    let honest = encode(dir.path(), &input, "honest", None);
    let half = first_half(&honest.output);
    let (expected, checked) = check(&half, &honest.refs);
    assert!(
        (checked.decoded as u64) < expected,
        "{} of {expected} samples decode from half an output",
        checked.decoded
    );
}

#[test]
fn an_output_shorter_than_the_input_video_stream_fails() {
    // Encoded from the one-frame picture before the real 8 s video (what
    // vidvard once did): every frame it has matches its reference, but it
    // is 8 s short of the stream the probe measured.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("picture-first.mkv");
    make_picture_before_video(&input, 8.0);
    let info = vidvar::ffmpeg::probe::parse(&probe_json(&input).to_string()).unwrap();
    assert_eq!(
        info.media.stream.unwrap().index,
        1,
        "the default, longer stream"
    );
    let rate = EncodeSettings::default().frame_rate.unwrap();
    let samples = Samples::plan(info.media.video_us, rate);
    let picture = encode_stream(dir.path(), &input, "picture", None, 0, &samples);
    let video_us = info.media.video_us;
    let (expected, checked) = check_samples(&picture.output, &picture.refs, &samples, video_us);
    assert!(
        (checked.decoded as u64) < expected,
        "{} of {expected} samples: an output of the picture passes",
        checked.decoded
    );
    let real = encode_stream(dir.path(), &input, "real", None, 1, &samples);
    let (expected, checked) = check_samples(&real.output, &real.refs, &samples, video_us);
    assert_eq!(expected, sampling::SAMPLES);
    assert_eq!(checked.decoded as u64, expected, "the real stream passes");
}

/// A copy of the reference pictures of `refs`, for a second output.
fn copy_refs(refs: &File) -> File {
    use std::io::Seek;
    (&*refs).rewind().unwrap();
    let mut copy = tempfile::tempfile().unwrap();
    std::io::copy(&mut &*refs, &mut copy).unwrap();
    copy
}

/// Run one check of all `outputs` (each with its references, when
/// `compare`), as the daemon checks a pipeline's outputs together.
fn check_together(
    outputs: &[(&Path, &File)],
    compare: bool,
) -> Result<Vec<Checked>, check::CheckError> {
    use std::io::Seek;
    let files: Vec<File> = outputs
        .iter()
        .map(|(o, _)| File::open(o).unwrap())
        .collect();
    let fds: Vec<_> = files
        .iter()
        .zip(outputs)
        .map(|(out, (_, refs))| {
            (&**refs).rewind().unwrap();
            (out.as_raw_fd(), compare.then(|| refs.as_raw_fd()))
        })
        .collect();
    runtime().block_on(check::run(
        Path::new("ffmpeg"),
        &fds,
        &samples(),
        true,
        None,
        &CpuMeter::default(),
    ))
}

#[test]
fn one_check_of_several_outputs_judges_each_as_its_own_check_does() {
    let dir = tempfile::tempdir().unwrap();
    let input = lavfi(dir.path(), "testsrc2", "testsrc2");
    let honest = encode(dir.path(), &input, "honest", None);
    let black = encode(dir.path(), &input, "black", Some("lutyuv=y=16:u=128:v=128"));
    let half = first_half(&honest.output);
    let half_refs = copy_refs(&honest.refs);
    let outputs = [
        (honest.output.as_path(), &honest.refs),
        (black.output.as_path(), &black.refs),
        (half.as_path(), &half_refs),
    ];
    let together = check_together(&outputs, true).unwrap();
    // Each output's figures are those of its own check, bit for bit.
    let alone: Vec<Checked> = outputs
        .iter()
        .map(|(output, refs)| check(output, refs).1)
        .collect();
    assert_eq!(together, alone);
    let expected = sampling::SAMPLES as u32;
    assert_eq!(together[0].decoded, expected);
    assert!(together[0].quality.unwrap().ssim_min >= DEFAULT_MIN_SSIM);
    assert_eq!(together[1].decoded, expected);
    assert!(together[1].quality.unwrap().ssim_min < DEFAULT_MIN_SSIM);
    assert!(together[2].decoded < expected, "{:?}", together[2]);

    // Not compared (quality_check = false): the decoded frames alone.
    let bare = check_together(&outputs, false).unwrap();
    let decoded: Vec<u32> = bare.iter().map(|c| c.decoded).collect();
    assert_eq!(decoded[..2], [expected, expected]);
    assert!(decoded[2] < expected, "{decoded:?}");
    assert!(bare.iter().all(|c| c.quality.is_none()), "{bare:?}");

    // An output that does not decode at all fails the whole run: the
    // daemon then checks each output alone.
    let garbage = dir.path().join("garbage.mp4");
    std::fs::write(&garbage, vec![0x5a; 4096]).unwrap();
    let garbage_refs = copy_refs(&honest.refs);
    let err = check_together(
        &[
            (honest.output.as_path(), &honest.refs),
            (garbage.as_path(), &garbage_refs),
        ],
        true,
    )
    .unwrap_err();
    assert!(matches!(err, check::CheckError::Undecodable(_)), "{err:?}");
}

#[test]
fn a_garbage_output_does_not_decode() {
    let dir = tempfile::tempdir().unwrap();
    let input = lavfi(dir.path(), "testsrc2", "testsrc2");
    let honest = encode(dir.path(), &input, "honest", None);
    let garbage = dir.path().join("garbage.mp4");
    std::fs::write(&garbage, vec![0x5a; 4096]).unwrap();
    let out = File::open(&garbage).unwrap();
    let rate = FrameRate::parse("30000/1001").unwrap();
    let err = runtime()
        .block_on(check::run(
            Path::new("ffmpeg"),
            &[(out.as_raw_fd(), Some(honest.refs.as_raw_fd()))],
            &Samples::plan(Some(3_000_000), rate),
            true,
            None,
            &CpuMeter::default(),
        ))
        .unwrap_err();
    assert!(matches!(err, check::CheckError::Undecodable(_)), "{err:?}");
}

#[test]
fn honest_variations_of_very_wide_tall_and_portrait_clips_pass() {
    let dir = tempfile::tempdir().unwrap();
    // The reference must be rotated at the input's shape: rotated after a
    // squash to 16:9, these scored 0.49 to 0.92.
    for (name, size) in [
        ("wide", "2000x2"),
        ("tall", "4x1000"),
        ("portrait", "360x640"),
    ] {
        let input = lavfi_sized(dir.path(), name, "testsrc2", size);
        let honest = encode(dir.path(), &input, &format!("{name}-out"), None);
        let q = figures(&honest.output, &honest.refs);
        assert!(q.ssim_min >= 0.95, "{name} ({size}): {q:?}");
    }
}
