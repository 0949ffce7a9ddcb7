//! Media for tests and benchmarks: inputs made with FFmpeg's lavfi
//! sources (`testsrc2`, `sine`, `color`), and ffprobe's view of a file.
//! Every helper panics with FFmpeg's own message when it fails.

use super::s;
use std::path::Path;
use std::process::Command;

/// Make a test video with FFmpeg's lavfi sources: `testsrc2` picture of
/// `size` (WxH) for `seconds`, plus a `sine` audio track when `audio`.
pub fn make_video(path: &Path, seconds: f64, size: &str, audio: bool) {
    let picture = format!("testsrc2=size={size}:rate=25:duration={seconds}");
    let sound = format!("sine=frequency=440:sample_rate=44100:duration={seconds}");
    let mut args = vec!["-f", "lavfi", "-i", &picture];
    if audio {
        args.extend(["-f", "lavfi", "-i", &sound, "-c:a", "aac"]);
    }
    args.extend([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
    ]);
    args.push(s(path));
    ffmpeg(&args);
}

/// A Matroska file whose first video stream is a one-frame 64x64 PNG, not
/// marked default, before the real video (`testsrc2`, 320x240, default)
/// and a `sine` audio track, both `seconds` long (issue 22: players show
/// the second stream).
pub fn make_picture_before_video(path: &Path, seconds: f64) {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=red:size=64x64:rate=15:duration=0.06",
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size=320x240:rate=25:duration={seconds}"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:duration={seconds}"),
        "-map",
        "0:v",
        "-map",
        "1:v",
        "-map",
        "2:a",
        "-c:v:0",
        "png",
        "-c:v:1",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        "-disposition:v:0",
        "0",
        "-disposition:v:1",
        "default",
        s(path),
    ]);
}

/// ffprobe facts of a file: (has a video stream, has audio, duration in s).
pub fn probe(path: &Path) -> (bool, bool, f64) {
    let v = probe_json(path);
    let has = |kind: &str| !streams(&v, kind).is_empty();
    let duration = v["format"]["duration"].as_str().unwrap().parse().unwrap();
    (has("video"), has("audio"), duration)
}

/// Run ffmpeg with `args` (after `-hide_banner -loglevel error -nostdin -y`)
/// to make a test input; panics with FFmpeg's message on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg is installed");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ffprobe's JSON (format and streams) of a file.
pub fn probe_json(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The streams of `kind` ("video", "audio") in ffprobe's JSON.
pub fn streams<'a>(probe: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["codec_type"] == kind)
        .collect()
}
