//! The pixel path in the daemon (issue 24): the quality check's reference
//! pictures come from FFmpeg's own `rotate` and `eq`, never from the
//! warp, so a grossly wrong warp is refused; `pixel_path = "ffmpeg"`
//! takes the stage out of the encode; and a pipeline's outputs are
//! checked together by one FFmpeg, an output that check does not pass
//! being checked alone, so that a broken one fails alone with the reason
//! it always had. The broken warp is the real `vidvar-stage` with its
//! first output followed by FFmpeg shifting every frame down 16 rows,
//! installed beside a link to this build's vidvard, where the daemon
//! looks for its stage. The check FFmpegs are counted by a wrapper around
//! the real FFmpeg, named in the configuration; another wrapper holds the
//! check together back so that a cancel finds it running and kills it.

mod common;

use common::wrappers::{WrappedRun, metering_wrapper, which, wrapped_runs};
use common::*;
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(240);

/// An environment whose daemon finds a stage beside it that shifts the
/// pictures of the first variation of each pipeline down by 16 rows.
fn env_with_broken_stage() -> Env {
    let mut env = Env::new_in(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let bin = env.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let daemon = bin.join("vidvard");
    std::fs::hard_link(VIDVARD, &daemon)
        .or_else(|_| std::fs::copy(VIDVARD, &daemon).map(drop))
        .unwrap();
    let stage = bin.join("vidvar-stage");
    // vidvard starts the stage as: --size WxH --output FD:EFFECTS ...
    // (one output per variation of a batch): the first goes through
    // FFmpeg, the others are left as they are.
    let script = format!(
        "#!/bin/sh\nset -e\nsize=$2\nspec=$4\nfd=${{spec%%:*}}\nshift 4\n\
         {real} --size \"$size\" --output \"1:${{spec#*:}}\" \"$@\" | \
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

/// Run a job of 3 variations of a 2 s clip as one pipeline (3 slots), the
/// daemon's FFmpeg wrapped to record its runs, `conf` added to its
/// configuration; returns the job's final
/// detail, its outputs (`vidvarctl outputs --json`), the daemon's log and
/// the check FFmpegs that ran, each with the number of outputs it checked.
fn run_a_pipeline_of(
    n: usize,
    env: &Env,
    conf: &str,
) -> (serde_json::Value, serde_json::Value, String, Vec<usize>) {
    let logs = env.path("runs");
    std::fs::create_dir(&logs).unwrap();
    let ffmpeg = env.path("ffmpeg");
    metering_wrapper("ffmpeg", &ffmpeg, &logs);
    let input = env.path("in.mp4");
    make_video(&input, 2.0, "320x240", true);
    let settings = format!("ffmpeg = {:?}\n{conf}", s(&ffmpeg));
    let conf = env.path("vidvard.conf");
    std::fs::write(&conf, settings).unwrap();
    let n = n.to_string();
    let daemon = env.start(&["--config", s(&conf), "--max-parallel", &n]);
    let out = env.out_dir();
    let job = env.submit(&["-n", &n, "-o", s(&out), "--", s(&input)]);
    let detail = env.wait_job(job, LIMIT, |d| {
        !matches!(d["summary"]["state"].as_str(), Some("queued" | "running"))
    });
    let outputs = env.json(&["outputs", &job.to_string()]);
    let checks = wrapped_runs(&logs)
        .iter()
        .filter(|run: &&WrappedRun| run.kind == "ffmpeg check")
        .map(|run| run.args.matches(" -i file:/dev/fd/").count())
        .collect();
    (detail, outputs, daemon.log(), checks)
}

/// More outputs than one FFmpeg checks together (`CHECK_GROUP`, 8) go to
/// groups as even as they come, checked at the same time.
#[test]
fn a_large_pipelines_outputs_are_checked_in_even_groups() {
    let env = Env::new_in(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let (detail, outputs, log, mut checks) = run_a_pipeline_of(9, &env, "");
    assert_eq!(detail["summary"]["state"], "succeeded", "{detail:#}\n{log}");
    checks.sort_unstable();
    assert_eq!(
        checks,
        [4, 5],
        "two check FFmpegs, of 4 and 5 outputs\n{log}"
    );
    assert_eq!(outputs.as_array().unwrap().len(), 9, "{outputs:?}");
}

#[test]
fn a_pipelines_outputs_are_checked_by_one_ffmpeg() {
    let env = Env::new_in(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let (detail, outputs, log, checks) = run_a_pipeline_of(3, &env, "");
    assert_eq!(detail["summary"]["state"], "succeeded", "{detail:#}\n{log}");
    assert_eq!(checks, [3], "one check FFmpeg of the 3 outputs\n{log}");
    let outputs = outputs.as_array().unwrap();
    assert_eq!(outputs.len(), 3, "{outputs:?}");
    for output in outputs {
        let quality = &output["quality"];
        assert_eq!(quality["samples"], 8, "{output}");
        let ssim_min = quality["ssim_min"].as_f64().unwrap();
        assert!((0.83..=1.0).contains(&ssim_min), "{output}");
    }
    // Each its own figures: the variations' effects differ.
    let means: std::collections::BTreeSet<String> = outputs
        .iter()
        .map(|o| o["quality"]["ssim_mean"].to_string())
        .collect();
    assert_eq!(means.len(), 3, "{outputs:?}");
}

#[test]
fn with_the_quality_check_off_one_ffmpeg_decodes_a_pipelines_outputs() {
    let env = Env::new_in(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let (detail, outputs, log, checks) = run_a_pipeline_of(3, &env, "quality_check = false\n");
    assert_eq!(detail["summary"]["state"], "succeeded", "{detail:#}\n{log}");
    assert_eq!(checks, [3], "one check FFmpeg of the 3 outputs\n{log}");
    let outputs = outputs.as_array().unwrap();
    assert_eq!(outputs.len(), 3, "{outputs:?}");
    assert!(
        outputs.iter().all(|o| o["quality"].is_null()),
        "{outputs:?}"
    );
}

#[test]
fn a_broken_output_of_a_pipeline_fails_alone_on_its_own_check() {
    let env = env_with_broken_stage();
    let (detail, outputs, log, checks) = run_a_pipeline_of(3, &env, "");
    assert_eq!(detail["summary"]["state"], "partial", "{detail:#}\n{log}");
    assert_eq!(
        log.matches("does not look like the input with its effects")
            .count(),
        1,
        "{log}"
    );
    // The check of the 3 together, then the broken one's alone (its
    // keyframes all decode: no second run of every frame).
    assert_eq!(checks.len(), 2, "{log}");
    assert!(checks.contains(&3) && checks.contains(&1), "{checks:?}");
    assert_eq!(outputs.as_array().unwrap().len(), 2, "{outputs}");
    assert_eq!(names(&env.out_dir()).len(), 2);
}

/// Cancelling a job while its pipeline's outputs are checked together
/// kills that check at once. The check is slowed by a wrapper that, for
/// the check of 3 outputs together, writes its pid and sleeps before it
/// runs the real FFmpeg.
#[test]
fn a_cancelled_job_kills_its_check_together() {
    let env = Env::new_in(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let (ffmpeg, marker) = (env.path("ffmpeg"), env.path("check.pid"));
    let script = format!(
        "#!/bin/sh\ncase \"$*\" in\n  *interleave=nb_inputs=3*) echo $$ > {marker}; sleep 60 ;;\nesac\n\
         exec {real} \"$@\"\n",
        marker = s(&marker),
        real = which("ffmpeg"),
    );
    std::fs::write(&ffmpeg, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ffmpeg, std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = env.path("vidvard.conf");
    std::fs::write(&conf, format!("ffmpeg = {:?}\n", s(&ffmpeg))).unwrap();
    let input = env.path("in.mp4");
    make_video(&input, 2.0, "320x240", false);
    let daemon = env.start(&["--config", s(&conf), "--max-parallel", "3"]);
    let out = env.out_dir();
    let job = env.submit(&["-n", "3", "-o", s(&out), "--", s(&input)]);
    let pid: i32 = wait_for("the check together", LIMIT, || {
        std::fs::read_to_string(&marker).ok()?.trim().parse().ok()
    });
    env.ctl_ok(&["cancel", &job.to_string()]);
    wait_for("the check to be killed", Duration::from_secs(10), || {
        (!running(pid)).then_some(())
    });
    // Its sleep, left in its process group.
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    let detail = env.wait_job(job, LIMIT, |d| {
        !matches!(d["summary"]["state"].as_str(), Some("queued" | "running"))
    });
    assert_eq!(
        detail["summary"]["state"],
        "cancelled",
        "{detail:#}\n{}",
        daemon.log()
    );
    assert!(names(&out).is_empty(), "{:?}", names(&out));
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
