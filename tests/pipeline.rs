//! The pixel path in the daemon (issue 24): the quality check's reference
//! pictures come from FFmpeg's own `rotate` and `eq`, never from the
//! warp, so a grossly wrong warp is refused; and `pixel_path = "ffmpeg"`
//! takes the stage out of the encode. The broken warp is the real
//! `vidvar-stage` followed by FFmpeg shifting every frame down 16 rows,
//! installed beside a link to this build's vidvard, where the daemon
//! looks for its stage.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(240);

/// An environment whose daemon finds a stage beside it that shifts the
/// pictures down by 16 rows.
fn env_with_broken_stage() -> Env {
    let mut env = Env::new_in(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let bin = env.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let daemon = bin.join("vidvard");
    std::fs::hard_link(VIDVARD, &daemon)
        .or_else(|_| std::fs::copy(VIDVARD, &daemon).map(drop))
        .unwrap();
    let stage = bin.join("vidvar-stage");
    // vidvard starts the stage as: --size WxH --output FD:EFFECTS (one
    // output per variation of a batch; one slot here makes batches of one).
    let script = format!(
        "#!/bin/sh\nset -e\nsize=$2\nspec=$4\nfd=${{spec%%:*}}\n\
         {real} --size \"$size\" --output \"1:${{spec#*:}}\" | \
         ffmpeg -nostats -loglevel error -f rawvideo -pixel_format yuv420p \
         -video_size \"$size\" -i - -vf 'crop=iw:ih-16:0:0,pad=iw:ih+16:0:16' \
         -f rawvideo \"pipe:$fd\"\n",
        real = env!("CARGO_BIN_EXE_vidvar-stage"),
    );
    std::fs::write(&stage, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&stage, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.program = daemon;
    env
}

/// Run a 2-variation job of a 2 s clip under `pixel_path`, with the
/// broken stage beside the daemon; returns the job's final detail and
/// the daemon's log.
fn run_with_broken_stage(pixel_path: &str) -> (Env, serde_json::Value, String) {
    let env = env_with_broken_stage();
    let input = env.path("in.mp4");
    make_video(&input, 2.0, "320x240", true);
    let conf = env.path("vidvard.conf");
    std::fs::write(&conf, format!("pixel_path = {pixel_path:?}\n")).unwrap();
    let daemon = env.start(&["--config", s(&conf), "--max-parallel", "1"]);
    let out = env.out_dir();
    let job = env.submit(&["-n", "2", "-o", s(&out), "--", s(&input)]);
    let detail = env.wait_job(job, LIMIT, |d| {
        !matches!(d["summary"]["state"].as_str(), Some("queued" | "running"))
    });
    let log = daemon.log();
    (env, detail, log)
}

#[test]
fn a_warp_that_shifts_rows_is_refused_by_the_quality_check() {
    let (env, detail, log) = run_with_broken_stage("vidvar");
    assert_eq!(detail["summary"]["state"], "failed", "{detail:#}\n{log}");
    assert_eq!(
        log.matches("does not look like the input with its effects")
            .count(),
        2,
        "{log}"
    );
    let left: Vec<_> = std::fs::read_dir(env.out_dir()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn pixel_path_ffmpeg_leaves_the_stage_out() {
    let (_env, detail, log) = run_with_broken_stage("ffmpeg");
    assert_eq!(detail["summary"]["state"], "succeeded", "{detail:#}\n{log}");
}

/// The `vidvar-stage` children of `daemon` alive now: pid and the number
/// of variations each serves (its `--output`s). A process that is exiting
/// (or still in exec) shows an empty argv: it is left out.
fn stages_of(daemon: i32) -> Vec<(i32, usize)> {
    children_named(daemon, &["vidvar-stage"])
        .into_iter()
        .filter_map(|(pid, _)| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let outputs = cmdline
                .split(|&b| b == 0)
                .filter(|a| *a == b"--output")
                .count();
            (outputs > 0).then_some((pid, outputs))
        })
        .collect()
}

/// The scheduling rule of README "Scheduling" that makes the pixel path
/// pay: while other work runs, a turn waits for half of `max_parallel`
/// free slots, so that the variations of one input share one pipeline
/// (one decode) instead of taking single slots as they free up. With 4
/// slots, job A's 3 variations run as one pipeline, leaving 1 free slot:
/// job B waits for A (its probe too), then its 4 variations run as one
/// pipeline of 4. A turn on every free slot would have run B's probe and
/// then its first variation beside A, and the rest as a pipeline of 3.
#[test]
fn a_files_variations_wait_for_half_the_slots_and_share_one_pipeline() {
    let env = Env::new_in(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let (long, short) = (env.path("long.mp4"), env.path("short.mp4"));
    make_video(&long, 8.0, "640x360", false);
    make_video(&short, 1.0, "320x240", false);
    let daemon = env.start(&["--max-parallel", "4"]);
    let pid = daemon.pid();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut seen = std::collections::BTreeMap::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                seen.extend(stages_of(pid));
                std::thread::sleep(Duration::from_millis(2));
            }
            seen
        })
    };
    let out = env.out_dir();
    let a = env.submit(&["-n", "3", "-o", s(&out), "--", s(&long)]);
    wait_for("job A's pipeline", LIMIT, || {
        stages_of(pid).iter().any(|&(_, n)| n == 3).then_some(())
    });
    let b = env.submit(&["-n", "4", "-o", s(&out), "--", s(&short)]);
    for job in [a, b] {
        let detail = env.wait_job(job, LIMIT, |d| {
            !matches!(d["summary"]["state"].as_str(), Some("queued" | "running"))
        });
        assert_eq!(
            detail["summary"]["state"],
            "succeeded",
            "{detail:#}\n{}",
            daemon.log()
        );
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut batches: Vec<usize> = sampler.join().unwrap().into_values().collect();
    batches.sort_unstable();
    assert_eq!(batches, [3, 4], "variations per pipeline");
}
