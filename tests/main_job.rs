//! The main job end to end: real vidvard, vidvarctl, FFmpeg and SQLite.

mod common;

use common::*;
use std::collections::HashSet;
use std::time::Duration;

const JOB_LIMIT: Duration = Duration::from_secs(120);

fn str_of(v: &serde_json::Value) -> &str {
    v.as_str().unwrap()
}

#[test]
fn submit_watch_outputs_gives_verified_distinct_variations() {
    let env = Env::new();
    let _daemon = env.start(&[]);
    let with_audio = env.path("with audio.mp4");
    let silent = env.path("silent.mp4");
    make_video(&with_audio, 2.0, "320x240", true);
    make_video(&silent, 2.0, "321x241", false);
    let out_dir = env.out_dir();

    let out = env.ctl(&[
        "submit",
        "-n",
        "3",
        "-o",
        out_dir.to_str().unwrap(),
        "--watch",
        with_audio.to_str().unwrap(),
        silent.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "watch failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("succeeded"), "{stdout}");

    let outputs = env.json(&["outputs", "1"]);
    let outputs = outputs.as_array().unwrap();
    assert_eq!(outputs.len(), 6);
    let mut contents = HashSet::new();
    let mut effects = HashSet::new();
    for o in outputs {
        let path = std::path::Path::new(str_of(&o["path"]));
        let input = str_of(&o["input"]);
        let index = o["index"].as_u64().unwrap();
        let stem = if input.ends_with("with audio.mp4") {
            "with audio"
        } else {
            "silent"
        };
        assert_eq!(path, out_dir.join(format!("{stem}_v{index:02}.mp4")));
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(bytes.len() as u64, o["size"].as_u64().unwrap());
        assert!(
            contents.insert(bytes),
            "{} duplicates another output",
            path.display()
        );
        let (video, audio, duration) = probe(path);
        assert!(video);
        assert_eq!(
            audio,
            stem == "with audio",
            "audio kept only when the input has it"
        );
        assert!(
            (duration - 2.0).abs() <= 0.1,
            "{} lasts {duration}s",
            path.display()
        );
        let e = &o["effects"];
        let r = e["rotation"].as_f64().unwrap();
        let b = e["brightness"].as_f64().unwrap();
        let c = e["contrast"].as_f64().unwrap();
        let s = e["saturation"].as_f64().unwrap();
        assert!((0.001..=0.01).contains(&r), "rotation {r}");
        assert!((-0.05..=0.05).contains(&b), "brightness {b}");
        assert!((0.95..=1.05).contains(&c), "contrast {c}");
        assert!((0.95..=1.05).contains(&s), "saturation {s}");
        effects.insert((
            input.to_string(),
            r.to_bits(),
            b.to_bits(),
            c.to_bits(),
            s.to_bits(),
        ));
    }
    assert_eq!(effects.len(), 6, "effect sets are distinct per input");
    // Nothing but the six outputs: no temporary files left behind.
    assert_eq!(names(&out_dir).len(), 6, "{:?}", names(&out_dir));

    let detail = env.status(1);
    assert_eq!(detail["summary"]["state"], "succeeded");
    assert_eq!(detail["summary"]["progress"].as_f64(), Some(100.0));
    for f in detail["files"].as_array().unwrap() {
        assert_eq!(f["state"], "succeeded");
        assert_eq!(f["done_variations"], 3);
        assert_eq!(f["progress"].as_f64(), Some(100.0));
    }

    // The text output lists one line per output: path, size, input, index.
    let text = env.ctl_ok(&["outputs", "1"]);
    assert_eq!(text.lines().count(), 6);
    let first: Vec<&str> = text.lines().next().unwrap().split('\t').collect();
    assert_eq!(first[0], str_of(&outputs[0]["path"]));
    assert_eq!(first[1], outputs[0]["size"].to_string());
}

#[test]
fn bad_input_beside_a_good_one_makes_the_job_partial() {
    let env = Env::new();
    let _daemon = env.start(&[]);
    let good = env.path("good.mp4");
    make_video(&good, 1.0, "160x120", false);
    let bad = env.path("notes.mp4");
    std::fs::write(&bad, "this is a text file, not a video\n").unwrap();
    let out_dir = env.out_dir();

    let job = env.submit(&[
        "-n",
        "2",
        "-o",
        out_dir.to_str().unwrap(),
        bad.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    let watch = env.ctl(&["watch", &job.to_string()]);
    assert!(!watch.status.success(), "watch of a partial job must fail");

    let detail = env.status(job);
    assert_eq!(detail["summary"]["state"], "partial");
    let files = detail["files"].as_array().unwrap();
    assert_eq!(files[0]["state"], "failed");
    let error = str_of(&files[0]["error"]);
    assert!(error.contains("not a readable video"), "{error}");
    assert_eq!(files[1]["state"], "succeeded");
    assert_eq!(files[1]["done_variations"], 2);
    assert_eq!(names(&out_dir), ["good_v01.mp4", "good_v02.mp4"]);
}

#[test]
fn missing_input_is_refused_at_submit() {
    let env = Env::new();
    let _daemon = env.start(&[]);
    let missing = env.path("nope.mp4");
    let out = env.ctl(&["submit", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nope.mp4") && stderr.contains("no such file"),
        "{stderr}"
    );
    assert_eq!(env.json(&["list"]), serde_json::json!([]));

    // A directory is refused as soon, not accepted to fail later.
    let dir = env.path("clips");
    std::fs::create_dir(&dir).unwrap();
    let out = env.ctl(&["submit", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("clips is a directory"), "{stderr}");
    assert_eq!(env.json(&["list"]), serde_json::json!([]));

    let out = env.ctl(&["submit", "-n", "0", "/etc/hostname"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "zero variations are a usage error"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1..=1000"));
}

#[test]
fn cancel_mid_encode_stops_ffmpeg_and_removes_temp_files() {
    let env = Env::new();
    let _daemon = env.start(&["--max-parallel", "2"]);
    let long = env.path("long.mp4");
    make_video(&long, 40.0, "640x360", true);
    let out_dir = env.out_dir();
    let job = env.submit_and_wait_for_progress(&long, "3");
    assert!(
        !ffmpeg_using(out_dir.to_str().unwrap()).is_empty(),
        "FFmpeg runs"
    );

    let cancelled = env.json(&["cancel", &job.to_string()]);
    assert_eq!(cancelled["summary"]["state"], "cancelled");
    assert_eq!(cancelled["files"][0]["state"], "cancelled");
    // cancel answers once the processes are gone and their files removed.
    assert_eq!(ffmpeg_using(out_dir.to_str().unwrap()), Vec::<i32>::new());
    assert_eq!(names(&out_dir), Vec::<String>::new());
    assert_eq!(
        env.json(&["outputs", &job.to_string()]),
        serde_json::json!([])
    );
    // Cancelling again changes nothing; an unknown job is "not found".
    assert_eq!(env.status(job)["summary"]["state"], "cancelled");
    assert_eq!(env.ctl(&["cancel", "999"]).status.code(), Some(4));
}

#[test]
fn same_seed_reproduces_effects_and_never_overwrites() {
    let env = Env::new();
    let _daemon = env.start(&[]);
    let input = env.path("clip.mp4");
    make_video(&input, 1.0, "160x120", false);
    let out_dir = env.out_dir();
    let args = [
        "-n",
        "2",
        "--seed",
        "42",
        "-o",
        out_dir.to_str().unwrap(),
        input.to_str().unwrap(),
    ];
    let first = env.submit(&args);
    env.ctl_ok(&["watch", &first.to_string()]);
    let before: Vec<_> = names(&out_dir)
        .iter()
        .map(|n| {
            std::fs::metadata(out_dir.join(n))
                .unwrap()
                .modified()
                .unwrap()
        })
        .collect();
    let second = env.submit(&args);
    env.ctl_ok(&["watch", &second.to_string()]);
    assert!(second > first, "job ids increase");

    let a = env.json(&["outputs", &first.to_string()]);
    let b = env.json(&["outputs", &second.to_string()]);
    for i in 0..2 {
        assert_eq!(a[i]["effects"], b[i]["effects"], "same seed, same effects");
    }
    assert_eq!(
        names(&out_dir),
        [
            "clip_v01.mp4",
            "clip_v02.mp4",
            "clip_v03.mp4",
            "clip_v04.mp4"
        ]
    );
    let after: Vec<_> = ["clip_v01.mp4", "clip_v02.mp4"]
        .iter()
        .map(|n| {
            std::fs::metadata(out_dir.join(n))
                .unwrap()
                .modified()
                .unwrap()
        })
        .collect();
    assert_eq!(before, after, "existing outputs untouched");
    assert_eq!(env.status(second)["seed"], 42);
}

#[test]
fn json_documents_parse_and_ping_reports_the_daemon() {
    let env = Env::new();
    let _daemon = env.start(&[]);
    let pong = env.json(&["ping"]);
    assert_eq!(pong["daemon_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(pong["queue_depth"], 0);
    assert_eq!(env.json(&["list"]), serde_json::json!([]));
    let input = env.path("a.mp4");
    make_video(&input, 1.0, "160x120", false);
    let submitted = env.json(&[
        "submit",
        "-n",
        "1",
        "-o",
        env.out_dir().to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert_eq!(submitted["job"], 1);
    let done = env.wait_job(1, JOB_LIMIT, |d| {
        d["summary"]["state"] != "running" && d["summary"]["state"] != "queued"
    });
    assert_eq!(done["summary"]["state"], "succeeded");
    let list = env.json(&["list"]);
    assert_eq!(list[0]["id"], 1);
    assert_eq!(list[0]["state"], "succeeded");
    let not_found = env.ctl(&["--json", "status", "7"]);
    assert_eq!(not_found.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&not_found.stderr).contains("no such job: 7"));
}

#[test]
fn client_without_a_daemon_explains_how_to_start_it() {
    let env = Env::new();
    let out = env.ctl(&["ping"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not running") && stderr.contains("vidvard"),
        "{stderr}"
    );
}

#[test]
fn watch_shows_bars_on_a_terminal_lines_in_a_pipe_and_json_objects_with_json() {
    let env = Env::new();
    let _daemon = env.start(&["--max-parallel", "1"]);
    let input = env.path("clip.mp4");
    make_video(&input, 6.0, "320x240", false);
    let out = env.out_dir();
    let submit = |n: &str| {
        env.submit(&[
            "-n",
            n,
            "-o",
            out.to_str().unwrap(),
            input.to_str().unwrap(),
        ])
    };

    // --json: one JSON object per line, the last one final.
    let job = submit("2");
    let stream = env.ctl(&["--json", "watch", &job.to_string()]);
    assert!(stream.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&stream.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    assert!(lines.len() >= 2, "updates, then the end: {lines:?}");
    assert_eq!(lines.last().unwrap()["summary"]["state"], "succeeded");
    let progress: Vec<f64> = lines
        .iter()
        .map(|l| l["summary"]["progress"].as_f64().unwrap())
        .collect();
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress never goes back: {progress:?}"
    );

    // A pipe: plain lines.
    let job = submit("1");
    let plain = env.ctl_ok(&["watch", &job.to_string()]);
    assert!(
        plain.contains(&format!("job {job}: ")) && !plain.contains('\x1b'),
        "{plain}"
    );

    // A terminal (script(1) gives one): progress bars with an ETA.
    let job = submit("2");
    let tty = std::process::Command::new("script")
        .args(["-qec", &format!("{VIDVARCTL} watch {job}"), "/dev/null"])
        .env("VIDVAR_SOCKET", env.socket())
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{screen}");
    assert!(
        screen.contains("eta ") && screen.contains("clip.mp4") && !screen.contains("-0.00x"),
        "{screen}"
    );
}

#[test]
fn prune_removes_finished_records_but_never_outputs() {
    let env = Env::new();
    let _daemon = env.start(&[]);
    let input = env.path("a.mp4");
    make_video(&input, 1.0, "160x120", false);
    let out = env.out_dir();
    let job = env.submit(&[
        "-n",
        "1",
        "-o",
        out.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    env.ctl_ok(&["watch", &job.to_string()]);

    assert_eq!(
        env.json(&["prune", "--older-than", "1h"])["pruned"],
        0,
        "too recent"
    );
    assert_eq!(env.json(&["prune"])["pruned"], 1);
    assert_eq!(
        env.ctl(&["status", &job.to_string()]).status.code(),
        Some(4)
    );
    assert_eq!(names(&out), ["a_v01.mp4"], "outputs stay");
    assert_eq!(
        env.ctl(&["prune", "--older-than", "soon"]).status.code(),
        Some(2)
    );
}

#[test]
fn a_job_whose_only_file_lost_a_variation_but_has_an_output_is_partial() {
    let env = Env::new();
    let small = env.path("small-disk");
    let _mount = Mount::tmpfs(&small, "3m");
    let _daemon = env.start(&LOSES_A_VARIATION);
    let job = submit_losing_a_variation(&env, &small);
    let watch = env.ctl(&["watch", &job.to_string()]);
    assert_eq!(
        watch.status.code(),
        Some(1),
        "watch of a partial job exits 1"
    );
    let detail = env.status(job);
    assert_eq!(detail["files"][0]["state"], "failed", "{detail}");
    assert_eq!(detail["files"][0]["done_variations"], 1, "{detail}");
    let error = str_of(&detail["files"][0]["error"]);
    assert!(error.contains("not enough free space"), "{error}");
    assert_eq!(names(&small), ["clip_v01.mp4"]);
    // An output exists: partial, wherever the state is shown.
    assert_eq!(detail["summary"]["state"], "partial", "{detail}");
    let listed = env.json(&["list"]);
    assert_eq!(listed[0]["state"], "partial", "{listed}");
    let text = env.ctl_ok(&["status", &job.to_string()]);
    assert!(text.lines().next().unwrap().contains("partial"), "{text}");
    let row = env.ctl_ok(&["list"]);
    assert!(row.contains("partial"), "{row}");
}

#[test]
fn help_lists_one_short_line_per_subcommand_and_details_come_with_the_subcommand() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(VIDVARCTL)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let help = run(&["--help"]);
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(commands.len() > 10, "{help}");
    for line in &commands {
        let summary = line
            .trim_start()
            .split_once(' ')
            .map_or("", |(_, s)| s.trim());
        // One short phrase: a line of an 80-column terminal, one sentence.
        assert!(
            line.chars().count() <= 80 && !summary.trim_end_matches('.').contains(". "),
            "not one short line: {line:?}"
        );
    }
    // The details are where a user looks for one subcommand.
    for (command, detail) in [
        ("status", "estimated time left"),
        ("outputs", "mean luma difference"),
        ("list", "queued*"),
        ("pause", "Survives a restart"),
    ] {
        for asked in [run(&["help", command]), run(&[command, "--help"])] {
            assert!(asked.contains(detail), "{command}: {asked}");
        }
        let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/vidvarctl.1"))
            .unwrap();
        let plain = page.replace("\\-", "-").replace("\\(dq", "\"");
        assert!(plain.contains(detail), "vidvarctl.1 lacks {detail:?}");
    }
}

#[test]
fn completions_are_printed_for_common_shells() {
    for shell in ["bash", "zsh", "fish"] {
        let out = std::process::Command::new(VIDVARCTL)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("vidvarctl") && script.contains("submit"),
            "{shell}"
        );
    }
}

#[test]
fn scripts_get_json_errors_clean_pipes_and_utf8_refusals() {
    let env = Env::new();
    let _daemon = env.start(&[]);
    let out = env.ctl(&["--json", "status", "999"]);
    assert_eq!(out.status.code(), Some(4));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON document");
    assert_eq!(doc["error"]["exit_status"], 4);
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no such job")
    );

    // A reader that goes away early: no panic, no trace.
    let piped = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{VIDVARCTL} completions bash | head -c 10 >/dev/null"
        ))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("panicked"));

    use std::os::unix::ffi::OsStrExt;
    let raw = std::ffi::OsStr::from_bytes(b"lat\xe9.mp4");
    let out = std::process::Command::new(VIDVARCTL)
        .env("VIDVAR_SOCKET", env.socket())
        .arg("submit")
        .arg(env.dir.path().join(raw))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid UTF-8"));
}

#[test]
fn a_big_job_shares_the_slots_with_a_later_small_one() {
    let env = Env::new();
    let _daemon = env.start(&["--max-parallel", "1"]);
    let out = env.out_dir();
    let inputs: Vec<std::path::PathBuf> =
        (0..4).map(|i| env.path(&format!("big{i}.mp4"))).collect();
    for input in &inputs {
        make_video(input, 2.0, "320x240", false);
    }
    let small = env.path("small.mp4");
    make_video(&small, 1.0, "160x120", false);
    let mut args = vec!["-n", "1", "-o", out.to_str().unwrap()];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    let big = env.submit(&args);
    let later = env.submit(&[
        "-n",
        "1",
        "-o",
        out.to_str().unwrap(),
        small.to_str().unwrap(),
    ]);
    env.wait_job(later, JOB_LIMIT, |d| d["summary"]["state"] == "succeeded");
    let big_now = env.status(big);
    assert_eq!(
        big_now["summary"]["state"], "running",
        "the small job did not wait for the big one"
    );
    let done = big_now["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["state"] == "succeeded")
        .count();
    assert!(done < 4, "{big_now}");
    assert!(env.ctl(&["watch", &big.to_string()]).status.success());
}
