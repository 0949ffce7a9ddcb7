//! Requests that meet a stop still under way: a cancel or a `pause --stop`
//! waits, within its grace period, for FFmpeg to end, and meanwhile a
//! retry, a second stop, a resume or a SIGTERM of the daemon comes. The
//! FFmpeg processes are held stopped (SIGSTOP) so that the stop waits for
//! as long as the test needs; each test checks the job ends as the first
//! request left it, and that no stop reaches work it was not asked to stop.

mod common;

use common::held::Held;
use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(240);

/// A daemon with 2 slots and a grace period longer than any test, and a
/// clip long enough that its encodes are still running when held.
fn setup() -> (Env, Daemon, PathBuf, PathBuf) {
    let env = Env::new();
    let daemon = env.start(&["--max-parallel", "2", "--grace-period", "120"]);
    let clip = env.path("clip.mp4");
    make_video(&clip, 30.0, "640x480", false);
    let out = env.out_dir();
    (env, daemon, clip, out)
}

/// Submit `-n n` of `clip` and wait until 2 of its variations run, both
/// past their start (FFmpeg reported progress: every process of the
/// pipeline is up, none is still being started).
fn submit_running(env: &Env, clip: &std::path::Path, out: &std::path::Path, n: &str) -> i64 {
    let job = env.submit(&["-n", n, "-o", s(out), s(clip)]);
    env.wait_job(job, LIMIT, |d| both_encoding(&d["files"][0]));
    job
}

fn exit_code(child: Child) -> Option<i32> {
    child.wait_with_output().unwrap().status.code()
}

/// A retry that comes while a cancel is still stopping the job's FFmpeg
/// processes is refused (exit status 5) and leaves the job cancelled: it
/// neither queues it again nor lets the cancel's stop end the retried job.
#[test]
fn a_retry_while_a_cancel_is_still_stopping_the_job_leaves_it_cancelled() {
    let (env, daemon, clip, out) = setup();
    // Two variations run, the third waits: the cancel cancels it at once.
    let job = submit_running(&env, &clip, &out, "3");
    let held = Held::all_of(&daemon);
    let cancel = env.ctl_started(&["cancel", &job.to_string()]);
    held.wait_signalled();
    assert_eq!(env.status(job)["summary"]["state"], "cancelled");
    let retry = env.ctl(&["retry", &job.to_string()]);
    drop(held);
    let said = common::users::said(&retry);
    assert_eq!(retry.status.code(), Some(5), "{said}");
    assert!(said.contains("still being stopped"), "{said}");
    assert_eq!(exit_code(cancel), Some(0));
    let after = env.status(job);
    assert_eq!(after["summary"]["state"], "cancelled", "{after}");
    let retried = env.json(&["retry", &job.to_string()]);
    assert_eq!(retried["summary"]["state"], "queued", "{retried}");
    env.ctl_ok(&["cancel", &job.to_string()]);
}

/// A `pause --stop` still waiting for FFmpeg when the daemon gets SIGTERM
/// has its variations queued again, as it said: after the restart the job
/// waits in the queue (the daemon still paused), not failed as
/// interrupted.
#[test]
fn sigterm_during_pause_stop_leaves_the_work_queued_not_interrupted() {
    let (env, mut daemon, clip, out) = setup();
    let job = submit_running(&env, &clip, &out, "2");
    let held = Held::all_of(&daemon);
    let pause = env.ctl_started(&["pause", "--stop"]);
    held.wait_signalled();
    kill(Pid::from_raw(daemon.pid()), Signal::SIGTERM).unwrap();
    drop(held);
    let (status, _) = daemon.signal_and_wait(Signal::SIGTERM, LIMIT);
    assert!(status.success(), "{}", daemon.log());
    drop(pause);
    let log = daemon.log();
    assert_eq!(
        log.matches("stopped by pause --stop, queued again").count(),
        2,
        "{log}"
    );

    let _daemon = env.start(&["--max-parallel", "2"]);
    let detail = env.status(job);
    assert_eq!(detail["summary"]["state"], "queued", "{detail}");
    assert_eq!(detail["files"][0]["state"], "queued", "{detail}");
    assert_eq!(detail["files"][0]["error"], serde_json::Value::Null);
    env.ctl_ok(&["cancel", &job.to_string()]);
}

/// A `pause --stop` after a cancel of the same job leaves the cancel's
/// outcome: the variations are recorded cancelled, never "queued again".
#[test]
fn pause_stop_after_a_cancel_keeps_the_variations_cancelled() {
    let (env, daemon, clip, out) = setup();
    let job = submit_running(&env, &clip, &out, "2");
    let held = Held::all_of(&daemon);
    let cancel = env.ctl_started(&["cancel", &job.to_string()]);
    held.wait_signalled();
    assert_eq!(env.status(job)["summary"]["state"], "cancelled");
    let pause = env.ctl_started(&["pause", "--stop"]);
    wait_for("the daemon paused", LIMIT, || {
        (env.json(&["ping"])["paused"] == true).then_some(())
    });
    drop(held);
    assert_eq!(exit_code(cancel), Some(0));
    assert_eq!(exit_code(pause), Some(0));
    let log = daemon.log();
    assert!(!log.contains("queued again"), "{log}");
    assert_eq!(env.status(job)["summary"]["state"], "cancelled");
    env.ctl_ok(&["resume"]);
}

/// A `pause --stop` followed by a `resume` before its FFmpeg ended stops
/// only what ran when it was asked: the work claimed again after the
/// resume runs on, and the pause answers.
#[test]
fn pause_stop_then_resume_leaves_the_work_claimed_again_running() {
    let (env, daemon, clip, out) = setup();
    let job = submit_running(&env, &clip, &out, "2");
    let held = Held::all_of(&daemon);
    let pause = env.ctl_started(&["pause", "--stop"]);
    held.wait_signalled();
    env.ctl_ok(&["resume"]);
    drop(held);
    assert_eq!(exit_code(pause), Some(0));
    // Claimed again after the resume, and left running.
    env.wait_job(job, LIMIT, |d| {
        d["files"][0]["running"]
            .as_array()
            .is_some_and(|r| r.len() == 2)
    });
    let log = daemon.log();
    assert_eq!(
        log.matches("stopped by pause --stop, queued again").count(),
        2,
        "{log}"
    );
    env.ctl_ok(&["cancel", &job.to_string()]);
}
