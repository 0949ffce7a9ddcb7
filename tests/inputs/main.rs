//! Real-world inputs: every odd video either becomes correct variations or
//! fails clearly, without losing the other files of its job. Inputs are
//! made with FFmpeg's lavfi sources inside each test. This file: odd
//! sizes, rotations, stream layouts, lengths and names that become correct
//! variations; `failures`: inputs and runs that fail, alone.

#[path = "../common/mod.rs"]
mod common;
mod failures;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(180);

/// Submit `inputs` with N variations into the env's output dir, wait for the
/// end; returns the job's final detail.
fn run_job(env: &Env, n: &str, inputs: &[&Path]) -> Value {
    let out = env.out_dir();
    let mut args = vec!["-n", n, "-o", s(&out), "--"];
    args.extend(inputs.iter().map(|p| s(p)));
    let job = env.submit(&args);
    env.wait_job(job, LIMIT, |d| {
        !matches!(d["summary"]["state"].as_str(), Some("queued" | "running"))
    })
}

fn outputs_of(env: &Env, detail: &Value) -> Vec<Value> {
    let job = detail["summary"]["id"].to_string();
    env.json(&["outputs", &job]).as_array().unwrap().clone()
}

fn output_path(o: &Value) -> PathBuf {
    PathBuf::from(o["path"].as_str().unwrap())
}

fn fps(stream: &Value) -> f64 {
    let (n, d) = stream["avg_frame_rate"]
        .as_str()
        .unwrap()
        .split_once('/')
        .unwrap();
    n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap()
}

fn duration(probe: &Value) -> f64 {
    probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn odd_sizes_and_high_bit_depth_become_even_yuv420p_h264() {
    let env = Env::new();
    let _d = env.start(&[]);
    let odd444 = env.path("odd444.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=641x361:rate=25:duration=1",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv444p",
        s(&odd444),
    ]);
    let ten_bit = env.path("tenbit.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=1",
        "-c:v",
        "ffv1",
        "-pix_fmt",
        "yuv420p10le",
        s(&ten_bit),
    ]);
    let detail = run_job(&env, "1", &[&odd444, &ten_bit]);
    assert_eq!(detail["summary"]["state"], "succeeded", "{detail}");
    for o in outputs_of(&env, &detail) {
        let probe = probe_json(&output_path(&o));
        let v = streams(&probe, "video")[0];
        assert_eq!(v["codec_name"], "h264");
        assert_eq!(v["pix_fmt"], "yuv420p", "players need 4:2:0 8-bit");
        let (w, h) = (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap());
        assert!(w % 2 == 0 && h % 2 == 0, "{w}x{h} is not even");
        if o["input"].as_str().unwrap().ends_with("odd444.mp4") {
            assert_eq!((w, h), (640, 360));
        }
    }
}

#[test]
fn portrait_phone_clip_is_rotated_exactly_once() {
    let env = Env::new();
    let _d = env.start(&[]);
    let landscape = env.path("landscape.mp4");
    make_video(&landscape, 1.0, "320x240", true);
    // Stored 320x240 with a 90 degree display matrix: shown as 240x320.
    let portrait = env.path("portrait.mp4");
    ffmpeg(&[
        "-i",
        s(&landscape),
        "-c",
        "copy",
        "-metadata:s:v:0",
        "rotate=90",
        s(&portrait),
    ]);
    let before = probe_json(&portrait);
    assert!(
        before.to_string().contains("rotation"),
        "the test input carries a display matrix"
    );

    let detail = run_job(&env, "1", &[&portrait]);
    assert_eq!(detail["summary"]["state"], "succeeded", "{detail}");
    let probe = probe_json(&output_path(&outputs_of(&env, &detail)[0]));
    let v = streams(&probe, "video")[0];
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(240), Some(320))
    );
    assert!(
        !v.to_string().contains("rotation"),
        "the output must not carry a display matrix on top of rotated pixels: {v}"
    );
}

#[test]
fn stream_layouts_keep_one_real_video_and_at_most_one_audio() {
    let env = Env::new();
    let _d = env.start(&[]);
    let two_audio = env.path("two-audio.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=25:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=880:duration=2",
        "-map",
        "0",
        "-map",
        "1",
        "-map",
        "2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        s(&two_audio),
    ]);
    // Cover art first, the real video second.
    let plain = env.path("plain.mp4");
    make_video(&plain, 2.0, "160x120", true);
    let cover = env.path("cover.png");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=red:size=64x64",
        "-frames:v",
        "1",
        s(&cover),
    ]);
    let with_cover = env.path("with-cover.mp4");
    ffmpeg(&[
        "-i",
        s(&cover),
        "-i",
        s(&plain),
        "-map",
        "0",
        "-map",
        "1",
        "-c:v:0",
        "png",
        "-c:v:1",
        "copy",
        "-c:a",
        "copy",
        "-disposition:v:0",
        "attached_pic",
        s(&with_cover),
    ]);
    let vfr = env.path("vfr.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=30:duration=2",
        "-vf",
        "select='not(mod(n\\,3))+gt(mod(n\\,7)\\,4)'",
        "-fps_mode",
        "vfr",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        s(&vfr),
    ]);
    let fast = env.path("60fps.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=60:duration=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        s(&fast),
    ]);
    let slow = env.path("12fps.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=12:duration=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        s(&slow),
    ]);

    let detail = run_job(&env, "1", &[&two_audio, &with_cover, &vfr, &fast, &slow]);
    assert_eq!(detail["summary"]["state"], "succeeded", "{detail}");
    for o in outputs_of(&env, &detail) {
        let input = o["input"].as_str().unwrap().to_string();
        let probe = probe_json(&output_path(&o));
        let video = streams(&probe, "video");
        assert_eq!(video.len(), 1, "{input}: one video stream");
        assert_eq!(
            (video[0]["width"].as_u64(), video[0]["height"].as_u64()),
            (Some(160), Some(120)),
            "{input}: the real video, not the cover"
        );
        assert!(
            (fps(video[0]) - 29.97).abs() < 0.05,
            "{input}: {} fps",
            fps(video[0])
        );
        let audio = streams(&probe, "audio").len();
        let expect_audio = !input.ends_with("vfr.mkv") && !input.ends_with("fps.mp4");
        assert_eq!(audio, usize::from(expect_audio), "{input}: audio streams");
        assert!(
            (duration(&probe) - 2.0).abs() < 0.15,
            "{input}: {}s",
            duration(&probe)
        );
    }
}

#[test]
fn the_video_stream_players_show_is_encoded_not_a_picture_before_it() {
    let env = Env::new();
    let _d = env.start(&[]);
    let input = env.path("picture-first.mkv");
    make_picture_before_video(&input, 8.0);
    let detail = run_job(&env, "1", &[&input]);
    assert_eq!(detail["summary"]["state"], "succeeded", "{detail}");
    let outputs = outputs_of(&env, &detail);
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    let probe = probe_json(&output_path(&outputs[0]));
    let video = streams(&probe, "video");
    assert_eq!(
        (video[0]["width"].as_u64(), video[0]["height"].as_u64()),
        (Some(320), Some(240)),
        "the default stream, not the 64x64 picture"
    );
    let secs: f64 = video[0]["duration"].as_str().unwrap().parse().unwrap();
    assert!(
        (secs - 8.0).abs() < 0.2,
        "the picture lasts {secs}s, not 8s"
    );
}

#[test]
fn audio_and_video_of_different_lengths_verify_against_the_longer() {
    let env = Env::new();
    let _d = env.start(&[]);
    let long_audio = env.path("long-audio.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=25:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=4",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        s(&long_audio),
    ]);
    let long_video = env.path("long-video.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=25:duration=4",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        s(&long_video),
    ]);
    let detail = run_job(&env, "2", &[&long_audio, &long_video]);
    assert_eq!(detail["summary"]["state"], "succeeded", "{detail}");
    assert_eq!(detail["summary"]["progress"].as_f64(), Some(100.0));
    for o in outputs_of(&env, &detail) {
        let probe = probe_json(&output_path(&o));
        assert!(
            (duration(&probe) - 4.0).abs() < 0.2,
            "{}: {}s",
            o["input"],
            duration(&probe)
        );
    }
}

#[test]
fn hostile_file_names_are_plain_files() {
    let env = Env::new();
    let _d = env.start(&[]);
    let hostile = [
        "it's a \"quoted\" clip.mp4",
        "ünïcødé 動画.mp4",
        "-i.mp4",
        "a:b.mp4",
    ];
    let paths: Vec<PathBuf> = hostile.iter().map(|n| env.path(n)).collect();
    make_video(&paths[0], 1.0, "160x120", false);
    for p in &paths[1..] {
        std::fs::copy(&paths[0], p).unwrap();
    }
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let detail = run_job(&env, "1", &refs);
    assert_eq!(detail["summary"]["state"], "succeeded", "{detail}");
    let mut got = names(&env.out_dir());
    got.sort();
    let mut want: Vec<String> = hostile
        .iter()
        .map(|n| format!("{}_v01.mp4", n.trim_end_matches(".mp4")))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn unknown_duration_shows_media_time_and_still_completes() {
    let env = Env::new();
    let _d = env.start(&["--max-parallel", "1"]);
    let piped = env.path("piped.webm");
    // A WebM written to a pipe has no duration in its header.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ffmpeg -hide_banner -loglevel error -nostdin -f lavfi \
             -i testsrc2=size=320x240:rate=25:duration=30 -c:v libvpx -deadline realtime \
             -cpu-used 8 -b:v 300k -f webm pipe:1 > '{}'",
            s(&piped)
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        probe_json(&piped)["format"]["duration"].is_null(),
        "no duration in the input"
    );

    let job = env.submit(&["-n", "1", "-o", s(&env.out_dir()), s(&piped)]);
    let running = env.wait_job(job, LIMIT, |d| {
        d["files"][0]["encoded_secs"].as_f64() > Some(0.0)
    });
    assert_eq!(
        running["files"][0]["progress"].as_f64(),
        Some(0.0),
        "no percent is invented"
    );
    let text = env.ctl_ok(&["status", &job.to_string()]);
    assert!(
        text.lines()
            .any(|l| l.contains("piped.webm") && l.contains('s') && !l.contains('%')),
        "{text}"
    );
    let done = env.wait_job(job, LIMIT, |d| d["summary"]["state"] != "running");
    assert_eq!(done["summary"]["state"], "succeeded", "{done}");
    assert_eq!(done["files"][0]["progress"].as_f64(), Some(100.0));
}

#[test]
fn names_from_symlinks_dots_and_very_long_names_and_very_short_clips() {
    let env = Env::new();
    let _d = env.start(&[]);
    let clip = env.path("clip.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x64:rate=60:duration=0.2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        s(&clip),
    ]);
    let link = env.path("holiday.mp4");
    std::os::unix::fs::symlink(&clip, &link).unwrap();
    let dotted = env.path(".mp4");
    std::fs::copy(&clip, &dotted).unwrap();
    let long = env.path(&format!("{}.mp4", "l".repeat(245)));
    std::fs::copy(&clip, &long).unwrap();

    let detail = run_job(&env, "1", &[&link, &dotted, &long]);
    assert_eq!(detail["summary"]["state"], "succeeded", "{detail}");
    let got = names(&env.out_dir());
    assert!(
        got.contains(&"holiday_v01.mp4".to_string()),
        "a symlink names its outputs: {got:?}"
    );
    assert!(
        got.contains(&"mp4_v01.mp4".to_string()),
        "never a hidden output: {got:?}"
    );
    assert!(
        got.iter().any(|n| n.starts_with("llll") && n.len() <= 255),
        "{got:?}"
    );
}
