//! The same pictures (issue 24, item 3): raw frames warped by the real
//! `vidvar-stage` binary against FFmpeg's own
//! `rotate=A:fillcolor=black@0,eq=brightness=B:contrast=C:saturation=S`
//! on the same raw frames, judged by FFmpeg's `ssim` and `psnr` filters:
//! SSIM >= 0.999 and PSNR >= 45 dB on each of Y, U and V, on lavfi testsrc2, smptehdbars,
//! mandelbrot, a portrait clip and a clip the stage warps in two bands
//! (its Y plane above 256 KiB), at 0.001, 0.01, -0.001 and -0.01 rad
//! with the extreme eq values of the v1 ranges, at the ends of what the
//! configuration allows (one turn each way, eq's own limits), at two
//! large angles with middling eq values, and at FFmpeg's shortcuts (quarter
//! turns of a square clip, half turns). Beyond those floors the stage
//! must match FFmpeg byte for byte (it does FFmpeg 5.1's integer
//! arithmetic): a rounding slip of one level keeps SSIM at 0.99997 and
//! PSNR at 66 dB, so only the byte count sees it.

mod common;

use common::*;
use std::f64::consts::{FRAC_PI_2, PI, TAU};
use std::path::Path;
use std::process::{Command, Stdio};

const STAGE: &str = env!("CARGO_BIN_EXE_vidvar-stage");
const FRAMES: &str = "3";

/// (name, lavfi source, size): small sizes, as the machine is shared, and
/// one large enough for two bands.
const SOURCES: [(&str, &str, &str); 6] = [
    ("testsrc2", "testsrc2=r=25", "320x240"),
    // A Y plane above the stage's band of 256 KiB: warped in two bands.
    ("bands", "testsrc2=r=25", "720x480"),
    ("smptehdbars", "smptehdbars=r=25", "320x180"),
    ("mandelbrot", "mandelbrot=r=25", "256x192"),
    ("portrait", "testsrc2=r=25", "180x320"),
    ("square", "testsrc2=r=25", "192x192"),
];

/// (angle, brightness, contrast, saturation).
const CASES: [[f64; 4]; 12] = [
    [0.001, -0.05, 0.95, 1.05],
    [0.01, 0.05, 1.05, 0.95],
    [-0.001, 0.05, 1.05, 1.05],
    [-0.01, -0.05, 0.95, 0.95],
    [0.0, 0.0, 1.0, 1.0],
    [TAU, 1.0, 1000.0, 3.0],
    [-TAU, -1.0, -1000.0, 0.0],
    [0.7, 0.2, 1.5, 2.0],
    [-2.5, -0.3, 0.5, 0.2],
    // FFmpeg's shortcuts: quarter turns of square frames, half turns.
    [FRAC_PI_2, 0.0, 1.0, 1.0],
    [PI, 0.01, 1.02, 0.9],
    [3.0 * FRAC_PI_2, 0.0, 1.0, 1.0],
];

/// FFmpeg's rawvideo input options for `size`.
fn raw_input(size: &str) -> Vec<String> {
    ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", size]
        .map(String::from)
        .to_vec()
}

/// SSIM and PSNR (dB, infinite for equal frames) of `a` against `b`,
/// each for Y, U and V.
fn compare(a: &Path, b: &Path, size: &str) -> ([f64; 3], [f64; 3]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin"])
        .args(raw_input(size))
        .arg("-i")
        .arg(a)
        .args(raw_input(size))
        .arg("-i")
        .arg(b)
        .args([
            "-lavfi",
            "[0:v]split[a0][a1];[1:v]split[b0][b1];[a0][b0]ssim;[a1][b1]psnr",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg is installed");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg ssim/psnr: {log}");
    // The summary lines: "SSIM Y:0.99 (20.1) U:... V:... All:..." and
    // "PSNR y:45.1 u:... v:... average:...".
    let values = |filter: &str, keys: [&str; 3]| {
        let line = log
            .lines()
            .find(|l| l.contains(filter))
            .unwrap_or_else(|| panic!("no {filter:?} in {log}"));
        keys.map(|key| {
            let text = line
                .split(key)
                .nth(1)
                .unwrap_or_else(|| panic!("{key} in {line}"));
            let number: String = text
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
                .collect();
            if number == "inf" {
                f64::INFINITY
            } else {
                number.parse::<f64>().unwrap()
            }
        })
    };
    (
        values("] SSIM ", ["SSIM Y:", " U:", " V:"]),
        values("] PSNR ", ["PSNR y:", " u:", " v:"]),
    )
}

#[test]
fn the_stage_gives_ffmpegs_rotate_and_eq_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (name, source, size) in SOURCES {
        let input = dir.path().join(format!("{name}.yuv"));
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &format!("{source}:s={size}"),
            "-frames:v",
            FRAMES,
            "-pix_fmt",
            "yuv420p",
            "-f",
            "rawvideo",
            input.to_str().unwrap(),
        ]);
        for [angle, b, c, s] in CASES {
            let ours = dir.path().join(format!("{name}.ours.yuv"));
            let reference = dir.path().join(format!("{name}.ffmpeg.yuv"));
            let status = Command::new(STAGE)
                .args([
                    "--size",
                    size,
                    "--output",
                    &format!("1:{angle}:{b}:{c}:{s}"),
                ])
                .stdin(std::fs::File::open(&input).unwrap())
                .stdout(std::fs::File::create(&ours).unwrap())
                .stderr(Stdio::inherit())
                .status()
                .unwrap();
            assert!(status.success(), "vidvar-stage {name} {angle}");
            let filters = format!(
                "rotate={angle}:fillcolor=black@0,eq=brightness={b}:contrast={c}:saturation={s}"
            );
            let mut args: Vec<String> = raw_input(size);
            args.extend(["-i".into(), s_(&input), "-vf".into(), filters]);
            args.extend(["-f", "rawvideo", "-pix_fmt", "yuv420p"].map(String::from));
            args.push(s_(&reference));
            ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
            let (ssim, psnr) = compare(&ours, &reference, size);
            let (a, r) = (
                std::fs::read(&ours).unwrap(),
                std::fs::read(&reference).unwrap(),
            );
            let differing = a.iter().zip(&r).filter(|(x, y)| x != y).count();
            let case = format!(
                "{name} angle {angle} eq {b}/{c}/{s}: SSIM Y/U/V {ssim:?}, \
                 PSNR Y/U/V {psnr:?} dB, {differing} of {} bytes differ",
                r.len()
            );
            eprintln!("{case}");
            let low = ssim.iter().any(|&v| v < 0.999) || psnr.iter().any(|&v| v < 45.0);
            if low || differing > 0 || a.len() != r.len() {
                failures.push(case);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "a plane below SSIM 0.999 or PSNR 45 dB, or a byte off FFmpeg's:\n{}",
        failures.join("\n")
    );
}

fn s_(p: &Path) -> String {
    s(p).to_string()
}
