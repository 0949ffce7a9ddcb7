//! Valid clips that players open and vidvar once failed (issue 13): every
//! one becomes checked variations. Inputs are made with FFmpeg's lavfi
//! sources; the real daemon encodes them with real FFmpeg.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(240);

/// Run one job of `inputs` with `n` variations; returns its final detail
/// and its outputs by input path.
fn run(env: &Env, n: &str, inputs: &[&Path]) -> (Value, Vec<Value>) {
    let out = env.out_dir();
    let mut args = vec!["-n", n, "-o", s(&out), "--"];
    args.extend(inputs.iter().map(|p| s(p)));
    let job = env.submit(&args);
    let detail = env.wait_job(job, LIMIT, |d| {
        !matches!(d["summary"]["state"].as_str(), Some("queued" | "running"))
    });
    let outputs = env.json(&["outputs", &job.to_string()]);
    (detail, outputs.as_array().unwrap().clone())
}

fn outputs_of<'a>(outputs: &'a [Value], input: &Path) -> Vec<&'a Value> {
    outputs
        .iter()
        .filter(|o| o["input"].as_str() == Some(s(input)))
        .collect()
}

fn lavfi_video(source: &str) -> [String; 4] {
    ["-f".into(), "lavfi".into(), "-i".into(), source.into()]
}

/// Encode `inputs` (argument groups) into `path` with `tail` options.
fn make(path: &Path, inputs: &[[String; 4]], tail: &[&str]) {
    let mut args: Vec<&str> = inputs.iter().flatten().map(String::as_str).collect();
    args.extend(tail);
    args.push(s(path));
    ffmpeg(&args);
}

#[test]
fn odd_but_valid_clips_all_become_checked_variations() {
    let env = Env::new();
    let daemon = env.start(&[]);
    let dir = env.path("in");
    std::fs::create_dir_all(&dir).unwrap();
    let at = |name: &str| -> PathBuf { dir.join(name) };
    let picture = |rate: u32| lavfi_video(&format!("testsrc2=size=320x240:rate={rate}"));
    let sine = |secs: f64| lavfi_video(&format!("sine=frequency=440:duration={secs}"));

    // 1. Streams that outlast the video: a subtitle track a second longer
    //    (Matroska), a second audio track a second longer (MP4).
    let srt = at("long.srt");
    std::fs::write(&srt, "1\n00:00:00,000 --> 00:00:03,000\nstill talking\n").unwrap();
    let subtitled = at("subtitled.mkv");
    let with_srt = ["-i".to_string(), s(&srt).into(), "-map".into(), "2".into()];
    make(
        &subtitled,
        &[picture(25), sine(2.0), with_srt],
        &[
            "-map", "0", "-map", "1", "-t", "2", "-c:v", "libx264", "-c:a", "aac", "-c:s", "srt",
        ],
    );
    let two_audio = at("two_audio.mp4");
    make(
        &two_audio,
        &[
            lavfi_video("testsrc2=size=320x240:rate=25:duration=2"),
            sine(2.0),
            lavfi_video("sine=frequency=880:duration=3"),
        ],
        &[
            "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-c:a", "aac",
        ],
    );
    // 2. Low frame rates and very short clips.
    let mut short = Vec::new();
    for (name, rate, frames) in [
        ("one_frame_1fps.mp4", 1, "1"),
        ("two_frames_1fps.mp4", 1, "2"),
        ("two_frames_5fps.mp4", 5, "2"),
    ] {
        let path = at(name);
        make(
            &path,
            &[picture(rate)],
            &["-frames:v", frames, "-c:v", "libx264"],
        );
        short.push(path);
    }
    // 3. A 1x1 video.
    let tiny = at("one_pixel.mp4");
    make(
        &tiny,
        &[lavfi_video("testsrc2=size=16x16:rate=25:duration=1")],
        &["-vf", "scale=1:1,format=yuv444p", "-c:v", "libx264"],
    );
    // 4. Interlaced: 50 pictures a second woven into 25 frames of two
    //    fields each, flagged top field first.
    let interlaced = at("interlaced.mpg");
    make(
        &interlaced,
        &[lavfi_video("testsrc2=size=720x576:rate=50:duration=2")],
        &[
            "-vf",
            "tinterlace=mode=interleave_top,setfield=tff",
            "-c:v",
            "mpeg2video",
            "-flags",
            "+ilme+ildct",
            "-top",
            "1",
            "-b:v",
            "5M",
        ],
    );
    // And a video that starts half a second after its audio.
    let late = at("late_video.mkv");
    make(
        &late,
        &[picture(25), sine(3.0)],
        &[
            "-t",
            "3",
            "-filter_complex",
            "[0:v]setpts=PTS+0.5/TB[v]",
            "-map",
            "[v]",
            "-map",
            "1",
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
        ],
    );

    let mut inputs: Vec<&Path> = vec![&subtitled, &two_audio, &tiny, &interlaced, &late];
    inputs.extend(short.iter().map(PathBuf::as_path));
    let (detail, outputs) = run(&env, "1", &inputs);
    assert_eq!(
        detail["summary"]["state"],
        "succeeded",
        "{detail:#}\n{}",
        daemon.log()
    );
    for input in &inputs {
        let made = outputs_of(&outputs, input);
        assert_eq!(made.len(), 1, "{}: {outputs:#?}", input.display());
        let q = &made[0]["quality"];
        assert!(q["samples"].as_u64().unwrap() >= 1, "{q}");
        assert!(
            q["ssim_min"].as_f64().unwrap() >= vidvar::config::DEFAULT_MIN_SSIM,
            "{}: {q}",
            input.display()
        );
    }
    let only =
        |input: &Path| PathBuf::from(outputs_of(&outputs, input)[0]["path"].as_str().unwrap());

    // Even dimensions of at least 2x2.
    let v = probe_json(&only(&tiny));
    let video = streams(&v, "video")[0];
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(2), Some(2))
    );

    // Deinterlaced: FFmpeg's idet finds (almost) no combed frames.
    let idet = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-i"])
        .arg(only(&interlaced))
        .args(["-vf", "idet", "-f", "null", "-"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&idet.stderr);
    let line = log
        .lines()
        .find(|l| l.contains("Multi frame detection"))
        .expect("idet reports");
    let count = |key: &str| -> u64 {
        let rest = &line[line.find(key).unwrap() + key.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let (tff, bff, progressive) = (count("TFF:"), count("BFF:"), count("Progressive:"));
    assert!(
        tff + bff < progressive / 4,
        "combing left in the output: {line}"
    );

    // The late video (0.5 s to 3 s) keeps its place against the audio: it
    // starts with its first frame repeated, so it lasts 3 s, not 2.5.
    let v = probe_json(&only(&late));
    let video = streams(&v, "video")[0];
    let secs = |x: &Value| x.as_str().unwrap().parse::<f64>().unwrap();
    assert_eq!(secs(&video["start_time"]), 0.0, "{video}");
    assert!(secs(&video["duration"]) > 2.9, "{video}");
}

#[test]
fn output_numbers_are_padded_to_the_width_of_the_count() {
    let env = Env::new();
    let _d = env.start(&[]);
    let input = env.path("tiny.mp4");
    make_video(&input, 0.2, "64x48", false);
    let (detail, outputs) = run(&env, "100", &[&input]);
    assert_eq!(detail["summary"]["state"], "succeeded", "{detail:#}");
    let mut names: Vec<String> = outputs
        .iter()
        .map(|o| {
            Path::new(o["path"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names.len(), 100);
    assert_eq!(names[0], "tiny_v001.mp4");
    assert_eq!(names[99], "tiny_v100.mp4");
    let by_index = names.clone();
    names.sort();
    assert_eq!(names, by_index, "names sort in the order of their numbers");
}

#[test]
fn with_the_quality_check_off_outputs_carry_no_figures() {
    let env = Env::new();
    let conf = env.path("vidvard.conf");
    std::fs::write(&conf, "quality_check = false\n").unwrap();
    let _d = env.start(&["--config", s(&conf)]);
    let input = env.path("clip.mp4");
    make_video(&input, 1.0, "160x120", true);
    let (detail, outputs) = run(&env, "1", &[&input]);
    assert_eq!(detail["summary"]["state"], "succeeded", "{detail:#}");
    assert_eq!(outputs[0]["quality"], Value::Null, "{outputs:#?}");
    let text = env.ctl_ok(&["outputs", &detail["summary"]["id"].to_string()]);
    assert_eq!(
        text.trim_end().split('\t').nth(5),
        Some("unchecked"),
        "{text}"
    );
}

#[test]
fn an_hevc_encoder_from_the_configuration_passes_the_check() {
    let env = Env::new();
    let conf = env.path("vidvard.conf");
    std::fs::write(
        &conf,
        "[encode]\nvideo_codec = \"libx265\"\npreset = \"ultrafast\"\n",
    )
    .unwrap();
    let daemon = env.start(&["--config", s(&conf)]);
    let input = env.path("clip.mp4");
    make_video(&input, 2.0, "320x240", false);
    let (detail, outputs) = run(&env, "1", &[&input]);
    assert_eq!(
        detail["summary"]["state"],
        "succeeded",
        "{detail:#}\n{}",
        daemon.log()
    );
    let q = &outputs[0]["quality"];
    assert_eq!(q["samples"], 8, "{q}");
    let v = probe_json(Path::new(outputs[0]["path"].as_str().unwrap()));
    assert_eq!(streams(&v, "video")[0]["codec_name"], "hevc");
}
