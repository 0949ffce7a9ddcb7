//! The history's figures for real jobs of real FFmpeg (issue 26): a
//! variation's recorded CPU seconds hold everything it cost (its encode,
//! the check of its output and its share of its input's probe, each
//! measured here on its own by a wrapper around the real program), and an
//! input that fails its probe (a corrupt file) is recorded as its
//! variations' failed runs, so that `vidvarctl stats` counts it by reason
//! and `vidvarctl top` lists it among recent failures, on SQLite and on
//! PostgreSQL.

mod common;

use common::postgres::Cluster;
use common::tty::Pane;
use common::wrappers::{metering_wrapper, wrapped_runs};
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// CPU seconds the wrappers logged, by what ran (`ffmpeg check`, `ffmpeg
/// work`, `ffprobe work`), and how many processes that is.
fn logged_cpu(logs: &Path) -> (BTreeMap<String, f64>, usize) {
    let runs = wrapped_runs(logs);
    let mut by_kind = BTreeMap::new();
    for run in &runs {
        *by_kind.entry(run.kind.clone()).or_insert(0.0) += run.cpu;
    }
    (by_kind, runs.len())
}

#[test]
fn a_variations_cpu_seconds_hold_its_encode_its_check_and_its_share_of_the_probe() {
    let env = Env::new();
    let logs = env.path("cpu");
    std::fs::create_dir(&logs).unwrap();
    let (ffmpeg, ffprobe) = (env.path("ffmpeg"), env.path("ffprobe"));
    metering_wrapper("ffmpeg", &ffmpeg, &logs);
    metering_wrapper("ffprobe", &ffprobe, &logs);
    let config = env.path("vidvard.conf");
    std::fs::write(
        &config,
        format!(
            "ffmpeg = {:?}\nffprobe = {:?}\npixel_path = \"ffmpeg\"\n",
            s(&ffmpeg),
            s(&ffprobe)
        ),
    )
    .unwrap();
    let input = env.path("in.mp4");
    make_video(&input, 2.0, "640x360", false);
    let _daemon = env.start(&["--config", s(&config), "--max-parallel", "2"]);
    let out = env.out_dir();
    let job = env.submit(&["-n", "2", "-l", "cost", "-o", s(&out), s(&input)]);
    env.wait_job(job, Duration::from_secs(120), |d| {
        d["summary"]["state"] == "succeeded"
    });

    let (logged, processes) = logged_cpu(&logs);
    for kind in ["ffmpeg check", "ffmpeg work", "ffprobe work"] {
        assert!(logged.get(kind).is_some_and(|&t| t > 0.0), "{logged:?}");
    }
    let stats = env.json(&["stats", "--label", "cost"]);
    assert_eq!(stats["total"]["succeeded"], 2, "{stats}");
    let recorded = stats["total"]["cpu_secs"].as_f64().unwrap();
    // What the wrappers ran is part of what was recorded (the wrappers'
    // own shells add a little to it); `times` rounds to ms. With
    // `pixel_path = "ffmpeg"` FFmpeg alone encodes: no process unlogged.
    let ran: f64 = logged.values().sum();
    assert!(
        recorded + 0.001 * processes as f64 >= ran,
        "recorded {recorded} s, but its processes used {ran} s: {logged:?}"
    );
}

/// Bytes that no demuxer takes for a video.
fn corrupt_file(path: &Path) {
    let noise: Vec<u8> = (0u32..64 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(path, noise).unwrap();
}

/// A corrupt input of 2 variations fails at its probe; `stats` counts its
/// variations' failed runs under the reason `probe` (with the probe's CPU
/// time), and `top` shows it among recent failures.
fn a_corrupt_input_counts_among_failures(env: &Env) {
    let input = env.path("corrupt.mp4");
    corrupt_file(&input);
    let out = env.out_dir();
    let job = env.submit(&["-n", "2", "-l", "broken", "-o", s(&out), s(&input)]);
    env.wait_job(job, Duration::from_secs(60), |d| {
        d["summary"]["state"] == "failed"
    });
    let stats = env.json(&["stats", "--label", "broken"]);
    assert_eq!(stats["total"]["failed"], 2, "{stats}");
    assert_eq!(
        stats["failures"],
        serde_json::json!([{"reason": "probe", "count": 2}]),
        "{stats}"
    );
    assert!(
        stats["total"]["cpu_secs"].as_f64().unwrap() > 0.0,
        "{stats}"
    );
    let text = env.ctl_ok(&["stats"]);
    assert!(text.contains("probe"), "{text}");

    let command = format!("{VIDVARCTL} --socket {} top", s(&env.socket()));
    let pane = Pane::start("vidvar-history-top", &command, &[]);
    let screen = pane.shows(&["recent failures", "corrupt.mp4:"]);
    let line = screen.lines().find(|l| l.contains("corrupt.mp4:")).unwrap();
    assert!(line.contains(&job.to_string()), "{screen}");
}

#[test]
fn a_corrupt_input_is_recorded_on_sqlite() {
    let env = Env::new();
    let _daemon = env.start(&[]);
    a_corrupt_input_counts_among_failures(&env);
}

#[test]
fn a_corrupt_input_is_recorded_on_postgresql() {
    let pg = Cluster::start();
    let env = Env::new();
    let url = pg.url();
    let _daemon = env.start(&["--database-url", &url, "--node-name", "node-a"]);
    a_corrupt_input_counts_among_failures(&env);
    let stats = env.json(&["stats", "--label", "broken"]);
    assert_eq!(stats["nodes"][0]["node"], "node-a", "{stats}");
    assert_eq!(stats["nodes"][0]["totals"]["failed"], 2, "{stats}");
}
