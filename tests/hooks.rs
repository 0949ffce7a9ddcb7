//! The completion hook (`on_job_end`): run once each time a job becomes
//! final, with the job in its environment and its outputs on stdin, as the
//! job's owner under a root daemon; its failure or hang never touches the
//! job; and across kill -9 of the daemon it is started exactly once.

mod common;

use common::users::{User, require_root};
use common::*;
use nix::sys::signal::Signal;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

fn final_state(env: &Env, job: i64) -> String {
    let detail = env.wait_job(job, LIMIT, |d| {
        !matches!(d["summary"]["state"].as_str(), Some("queued" | "running"))
    });
    detail["summary"]["state"].as_str().unwrap().to_string()
}

#[test]
fn the_hook_sees_the_job_in_its_environment_and_its_outputs_on_stdin() {
    let env = Env::new();
    let input = env.path("clip.mp4");
    make_video(&input, 1.0, "320x240", false);
    let out = env.out_dir();
    let submit = |extra: &[&str]| {
        let mut args = vec!["-n", "2", "-o", s(&out)];
        args.extend_from_slice(extra);
        env.submit(&args)
    };

    // A job that ends while no hook is configured owes none, even once
    // one is.
    let daemon = env.start(&[]);
    let before = submit(&[s(&input)]);
    assert_eq!(final_state(&env, before), "succeeded");
    drop(daemon);

    let hook = TestHook::new(&env, 30);
    let marker = std::path::Path::new("must-not-leak");
    let _daemon = env.start_with_env(
        &["--config", s(&hook.config)],
        &[("VIDVAR_TEST_MARKER", marker)],
    );
    let good = submit(&["-l", "nightly", s(&input)]);
    let corrupt = env.path("corrupt.mp4");
    std::fs::write(&corrupt, b"this is not a video at all, only bytes").unwrap();
    let bad = submit(&[s(&corrupt)]);
    assert_eq!(final_state(&env, good), "succeeded");
    assert_eq!(final_state(&env, bad), "failed");

    let (pid, vars) = hook.wait_done(good, LIMIT);
    let me = nix::unistd::getuid().as_raw().to_string();
    let name = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    for (key, want) in [
        ("VIDVAR_JOB", good.to_string()),
        ("VIDVAR_STATE", "succeeded".into()),
        ("VIDVAR_OWNER_UID", me.clone()),
        ("VIDVAR_OWNER", name.clone()),
        ("VIDVAR_OUTPUT_DIR", s(&out).into()),
        ("VIDVAR_INPUTS", "1".into()),
        ("VIDVAR_FAILED_INPUTS", "0".into()),
        ("VIDVAR_VARIATIONS", "2".into()),
        ("VIDVAR_OUTPUTS", "2".into()),
        ("VIDVAR_LABELS", "nightly".into()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
        ("USER", name.clone()),
    ] {
        assert_eq!(
            env_value(&vars, key),
            Some(want.as_str()),
            "{key} in {vars}"
        );
    }
    assert_eq!(
        env_value(&vars, "VIDVAR_TEST_MARKER"),
        None,
        "the daemon's environment is not passed on: {vars}"
    );
    // stdin: what `vidvarctl --json outputs` prints.
    let stdin: serde_json::Value = serde_json::from_str(&hook.stdin(good, pid)).unwrap();
    assert_eq!(stdin, env.json(&["outputs", &good.to_string()]));
    assert_eq!(stdin.as_array().unwrap().len(), 2);

    let (pid, vars) = hook.wait_done(bad, LIMIT);
    assert_eq!(env_value(&vars, "VIDVAR_STATE"), Some("failed"));
    assert_eq!(env_value(&vars, "VIDVAR_FAILED_INPUTS"), Some("1"));
    assert_eq!(env_value(&vars, "VIDVAR_OUTPUTS"), Some("0"));
    assert_eq!(hook.stdin(bad, pid).trim(), "[]");

    // A retry makes the job final again: one more run.
    env.ctl_ok(&["retry", &bad.to_string()]);
    assert_eq!(final_state(&env, bad), "failed");
    wait_for("a second run after the retry", LIMIT, || {
        let runs = hook.runs(bad);
        (runs.len() == 2 && runs.iter().all(|(p, _)| hook.done(bad, *p))).then_some(())
    });
    assert!(hook.runs(before).is_empty(), "no hook for a job of before");
    assert_eq!(hook.runs(good).len(), 1);
}

#[test]
fn a_failing_or_hanging_hook_is_logged_stopped_and_leaves_its_job_alone() {
    let env = Env::new();
    let hook = TestHook::new(&env, 2);
    let daemon = env.start(&["--config", s(&hook.config), "--grace-period", "1"]);
    let input = env.path("clip.mp4");
    make_video(&input, 1.0, "320x240", false);
    let out = env.out_dir();
    let submit = |label: &str| env.submit(&["-n", "1", "-l", label, "-o", s(&out), s(&input)]);
    let failing = submit("fail");
    let hanging = submit("hang");
    for job in [failing, hanging] {
        assert_eq!(final_state(&env, job), "succeeded");
    }

    wait_for("the failure in the log", LIMIT, || {
        daemon
            .log()
            .contains(&format!(
                "job {failing}: hook {} failed (exit status: 3): cannot upload: no route to host",
                s(&env.path("hook.sh"))
            ))
            .then_some(())
    });
    let (pid, _) = wait_for("the hanging hook to start", LIMIT, || {
        hook.runs(hanging).into_iter().next()
    });
    wait_for(
        "the hanging hook to be stopped",
        Duration::from_secs(20),
        || {
            let gone = !std::path::Path::new(&format!("/proc/{pid}")).exists();
            let line = format!(
                "job {hanging}: hook {} stopped after its timeout of 2s",
                s(&env.path("hook.sh"))
            );
            (gone && daemon.log().contains(&line)).then_some(())
        },
    );
    assert!(!hook.done(hanging, pid), "the hanging hook was cut short");

    // The jobs are as they were, and the next job's hook runs.
    for job in [failing, hanging] {
        assert_eq!(env.status(job)["summary"]["state"], "succeeded");
    }
    let next = submit("plain");
    assert_eq!(final_state(&env, next), "succeeded");
    hook.wait_done(next, LIMIT);
}

#[test]
fn what_a_hook_leaves_in_its_process_group_ends_with_it_and_its_last_words_are_logged() {
    let env = Env::new();
    let pids = env.path("pids");
    std::fs::create_dir_all(&pids).unwrap();
    // Children in the hook's group, one orphaned at once by a subshell,
    // that hold its stderr open; then the hook exits 3, or (labelled
    // "hang") outlives its timeout.
    let script = r#"dir=$1
(sleep 300 & echo $! > "$dir/$VIDVAR_JOB.a")
sleep 300 & echo $! > "$dir/$VIDVAR_JOB.b"
echo "cannot upload: no route to host" >&2
case "$VIDVAR_LABELS" in *hang*) sleep 300 ;; esac
exit 3"#;
    let config = env.path("vidvard.conf");
    std::fs::write(
        &config,
        format!(
            "on_job_end = [\"/bin/sh\", \"-c\", {script:?}, \"hook\", {:?}]\nhook_timeout = 5\n",
            s(&pids)
        ),
    )
    .unwrap();
    let daemon = env.start(&["--config", s(&config), "--grace-period", "1"]);
    let input = env.path("clip.mp4");
    make_video(&input, 1.0, "320x240", false);
    let out = env.out_dir();
    let exits = env.submit(&["-n", "1", "-o", s(&out), s(&input)]);
    let hangs = env.submit(&["-n", "1", "-l", "hang", "-o", s(&out), s(&input)]);
    for (job, line) in [
        (
            exits,
            "hook /bin/sh failed (exit status: 3): cannot upload: no route to host",
        ),
        (
            hangs,
            "hook /bin/sh stopped after its timeout of 5s: cannot upload: no route to host",
        ),
    ] {
        assert_eq!(final_state(&env, job), "succeeded");
        let line = format!("job {job}: {line}");
        wait_for(&line, LIMIT, || daemon.log().contains(&line).then_some(()));
        for child in ["a", "b"] {
            let pid: i32 = std::fs::read_to_string(pids.join(format!("{job}.{child}")))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            wait_for(
                &format!("job {job}'s hook child {pid} to be ended"),
                Duration::from_secs(10),
                || (!running(pid)).then_some(()),
            );
        }
    }
}

#[test]
fn each_hook_starts_exactly_once_across_kill_9() {
    let env = Env::new();
    let hook = TestHook::new(&env, 60);
    let start = || env.start(&["--config", s(&hook.config), "--max-parallel", "1"]);
    let mut daemon = start();
    let out = env.out_dir();
    let short = env.path("short.mp4");
    make_video(&short, 1.0, "320x240", false);

    // (a) Killed while the hook runs: the restarted daemon waits for that
    // run and does not start another.
    let slow = env.submit(&["-n", "1", "-l", "slow", "-o", s(&out), s(&short)]);
    let (pid, _) = wait_for("the slow hook to start", LIMIT, || {
        hook.runs(slow).into_iter().next()
    });
    daemon.signal_and_wait(Signal::SIGKILL, LIMIT);
    assert!(!hook.done(slow, pid), "killed while its hook ran");
    let mut daemon = start();
    wait_for("the slow hook to end", LIMIT, || {
        hook.done(slow, pid).then_some(())
    });
    wait_for("the restarted daemon to see it end", LIMIT, || {
        daemon
            .log()
            .contains(&format!("job {slow}: its hook ended"))
            .then_some(())
    });
    assert!(
        daemon.log().contains("still runs from before the restart"),
        "{}",
        daemon.log()
    );

    // (b) Killed mid-encode: the job ends (interrupted) at the restart,
    // and its hook runs then, once.
    let long = env.path("long.mp4");
    make_video(&long, 8.0, "640x480", false);
    let cut = env.submit_and_wait_for_progress(&long, "2");
    daemon.signal_and_wait(Signal::SIGKILL, LIMIT);
    let mut daemon = start();
    assert_eq!(final_state(&env, cut), "failed");
    let (_, vars) = hook.wait_done(cut, LIMIT);
    assert_eq!(env_value(&vars, "VIDVAR_STATE"), Some("failed"));

    // Once more, cleanly: nothing owed is left, nothing runs again.
    daemon.signal_and_wait(Signal::SIGTERM, LIMIT);
    let daemon = start();
    let last = env.submit(&["-n", "1", "-o", s(&out), s(&short)]);
    hook.wait_done(last, LIMIT);
    // Every hook owed or running has ended: none can run again.
    wait_for("no hook owed or running", LIMIT, || {
        (env.hooks_owed() == 0).then_some(())
    });
    for job in [slow, cut, last] {
        assert_eq!(hook.runs(job).len(), 1, "job {job}: {}", daemon.log());
    }
}

#[test]
fn under_a_root_daemon_the_hook_runs_as_the_jobs_owner() {
    require_root("the daemon must be root to run the hook as another user");
    let client = User::create("vvh", &[]);
    let env = Env::new();
    std::fs::set_permissions(
        env.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let hook = TestHook::new(&env, 30);
    client.own(&hook.records, 0o755);
    let input = env.path("clip.mp4");
    make_video(&input, 1.0, "320x240", false);
    let out = env.out_dir();
    client.own(&out, 0o755);
    let group = client.gid.to_string();
    let _daemon = env.start(&["--config", s(&hook.config), "--socket-group", &group]);
    let submitted = client
        .command(VIDVARCTL)
        .env("VIDVAR_SOCKET", env.socket())
        .args(["submit", "-n", "1", "-o", s(&out), s(&input)])
        .output()
        .unwrap();
    assert!(submitted.status.success(), "{}", users::said(&submitted));
    let job: i64 = String::from_utf8_lossy(&submitted.stdout)
        .trim()
        .parse()
        .unwrap();
    let (pid, vars) = hook.wait_done(job, LIMIT);
    assert_eq!(env_value(&vars, "VIDVAR_OWNER"), Some(client.name.as_str()));
    assert_eq!(env_value(&vars, "USER"), Some(client.name.as_str()));
    let record = hook.records.join(format!("job-{job}.{pid}.env"));
    assert_eq!(
        std::fs::metadata(&record).unwrap().uid(),
        client.uid,
        "the hook wrote as the job's owner"
    );
}

#[test]
fn bad_hook_settings_stop_the_start_with_the_key_and_the_reason() {
    let env = Env::new();
    let not_executable = env.path("not-executable.sh");
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    for (settings, says) in [
        (
            "on_job_end = []".to_string(),
            "on_job_end: give the program",
        ),
        (
            r#"on_job_end = ["hook.sh"]"#.into(),
            "is not an absolute path",
        ),
        (
            format!("on_job_end = [{:?}]", s(&env.path("missing"))),
            "is not an executable file",
        ),
        (
            format!("on_job_end = [{:?}]", s(env.dir.path())),
            "is not an executable file",
        ),
        (
            format!("on_job_end = [{:?}]", s(&not_executable)),
            "is not an executable file",
        ),
        (
            "hook_timeout = 0".into(),
            "hook_timeout: 0 is not between 1 and 86400",
        ),
    ] {
        let config = env.path("vidvard.conf");
        std::fs::write(&config, format!("{settings}\n")).unwrap();
        let out = env.run_vidvard(
            &env.socket(),
            &env.state_dir(),
            &env.pidfile(),
            &["--config", s(&config)],
        );
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{settings}: {said}");
        assert!(said.contains(says), "{settings}: {said}");
    }
}
