//! Daemon lifecycle: daemonizing start, pidfile, crash recovery, SIGTERM,
//! retry. Real vidvard, vidvarctl, FFmpeg and SQLite. This file: start,
//! stop, crashes, recovery and the directories a daemon refuses;
//! `configuration`: the file and SIGHUP; `logs`: where the log goes.

#[path = "../common/mod.rs"]
mod common;
mod configuration;
mod logs;

use common::*;
use nix::sys::signal::Signal;
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// Submit a job long enough to be caught mid-encode and wait until FFmpeg
/// reports progress. Returns the job id.
fn start_long_job(env: &Env, variations: &str) -> i64 {
    let input = env.path("long.mp4");
    make_video(&input, 40.0, "640x360", true);
    env.submit_and_wait_for_progress(&input, variations)
}

fn assert_interrupted(env: &Env, job: i64) {
    let detail = env.status(job);
    // Partial when a variation was published before the stop, else failed.
    let expected = if detail["files"][0]["done_variations"].as_u64() > Some(0) {
        "partial"
    } else {
        "failed"
    };
    assert_eq!(detail["summary"]["state"], expected, "{detail}");
    let error = detail["files"][0]["error"].as_str().unwrap();
    assert!(error.contains("interrupted: daemon restarted"), "{error}");
}

fn temp_files(env: &Env) -> Vec<String> {
    names(&env.out_dir())
        .into_iter()
        .filter(|n| n.ends_with(".part"))
        .collect()
}

/// kill -9 of the daemon mid-pipeline (the pixel path: a decoder, the
/// stage and two encoders, one process group): once the daemon is back,
/// no process of the pipeline runs (the death signal ends them with the
/// daemon; recovery kills the group of any that survived, see
/// `recovery_kills_a_matching_orphan_group_and_spares_a_reused_pid`),
/// the job is marked interrupted, the temporary files are gone, and a
/// retry finishes the job.
#[test]
fn kill_9_mid_encode_then_restart_recovers_and_retry_finishes() {
    let env = Env::new();
    let mut daemon = env.start(&["--max-parallel", "2"]);
    let job = start_long_job(&env, "2");
    let out = env.out_dir();
    assert!(
        !temp_files(&env).is_empty(),
        "encodes write temporary files"
    );
    let pipeline = wait_for("the decoder, the stage and 2 encoders", LIMIT, || {
        let found = children_named(daemon.pid(), &["ffmpeg", "vidvar-stage"]);
        (found.len() == 4).then_some(found)
    });
    daemon.signal_and_wait(Signal::SIGKILL, LIMIT);
    assert!(
        env.pidfile().exists() && env.socket().exists(),
        "a crash leaves both behind"
    );

    let _daemon = env.start(&["--max-parallel", "2"]);
    assert_interrupted(&env, job);
    wait_for("no process of the pipeline left", LIMIT, || {
        (!pipeline.iter().any(|&p| still_running(p))).then_some(())
    });
    assert_eq!(ffmpeg_using(out.to_str().unwrap()), Vec::<i32>::new());
    assert_eq!(temp_files(&env), Vec::<String>::new());

    let retried = env.json(&["retry", &job.to_string()]);
    assert_eq!(retried["summary"]["state"], "queued");
    let watch = env.ctl(&["watch", &job.to_string()]);
    assert!(
        watch.status.success(),
        "{}",
        String::from_utf8_lossy(&watch.stdout)
    );
    let outputs = env.json(&["outputs", &job.to_string()]);
    assert_eq!(outputs.as_array().unwrap().len(), 2);
    assert_eq!(names(&out), ["long_v01.mp4", "long_v02.mp4"]);
    // A succeeded job has nothing to retry: said so, exit status 6.
    let again = env.ctl(&["retry", &job.to_string()]);
    assert_eq!(again.status.code(), Some(6), "{again:?}");
    assert_eq!(
        String::from_utf8_lossy(&again.stderr).trim(),
        format!("vidvarctl: job {job} had already succeeded: nothing to retry")
    );
}

#[test]
fn sigterm_mid_encode_stops_within_the_grace_bound() {
    let env = Env::new();
    let mut daemon = env.start(&["--max-parallel", "2", "--grace-period", "2"]);
    let job = start_long_job(&env, "3");
    let (status, took) = daemon.signal_and_wait(Signal::SIGTERM, LIMIT);
    assert_eq!(status.code(), Some(0));
    assert!(took < Duration::from_secs(4), "stopping took {took:?}");
    assert_eq!(
        ffmpeg_using(env.out_dir().to_str().unwrap()),
        Vec::<i32>::new()
    );
    assert_eq!(temp_files(&env), Vec::<String>::new());
    assert!(!env.socket().exists(), "socket removed");
    assert!(!env.pidfile().exists(), "pidfile removed");
    assert!(daemon.log().contains("SIGTERM"), "{}", daemon.log());

    let _daemon = env.start(&[]);
    assert_interrupted(&env, job);
}

#[test]
fn second_instance_is_refused_with_the_running_pid() {
    let env = Env::new();
    let daemon = env.start(&[]);
    let out = env.run_vidvard(
        &env.path("other.sock"),
        &env.path("other-state"),
        &env.pidfile(),
        &[],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("already running (pid {})", daemon.pid())),
        "{stderr}"
    );
    // The running daemon is untouched.
    env.ctl_ok(&["ping"]);
}

/// Kills the daemonized vidvard named in the pidfile when dropped.
struct PidfileGuard(std::path::PathBuf);

impl Drop for PidfileGuard {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0)
            && let Ok(pid) = pid.trim().parse()
        {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// vidvard's arguments for a daemonizing start in `env` on `socket`.
fn daemon_args(env: &Env, socket: &std::path::Path) -> Vec<std::ffi::OsString> {
    vec![
        "--socket".into(),
        socket.into(),
        "--state-dir".into(),
        env.state_dir().into(),
        "--pidfile".into(),
        env.pidfile().into(),
    ]
}

/// The pid in the pidfile of a daemonized start.
fn pid_in(env: &Env) -> i32 {
    std::fs::read_to_string(env.pidfile())
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// SIGTERM a daemonized vidvard and wait until its pidfile is gone.
fn stop_daemonized(env: &Env, pid: i32) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    wait_for("the daemon to stop", LIMIT, || {
        (!env.pidfile().exists()).then_some(())
    });
}

fn daemonized(env: &Env, socket: &std::path::Path) -> std::process::Output {
    Command::new(VIDVARD)
        .args(daemon_args(env, socket))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn daemonizing_start_returns_when_ready_and_reports_failures() {
    let env = Env::new();
    let _guard = PidfileGuard(env.pidfile());
    let out = daemonized(&env, &env.socket());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Ready means answering, with no waiting.
    env.ctl_ok(&["ping"]);
    let pid = pid_in(&env);
    assert_ne!(pid, 0);

    let again = daemonized(&env, &env.path("second.sock"));
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains(&format!("already running (pid {pid})")),
        "{stderr}"
    );

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    wait_for("the daemon to remove its pidfile", LIMIT, || {
        (!env.pidfile().exists()).then_some(())
    });

    // A socket path that cannot be bound (longer than sun_path) fails the
    // start with the reason, on the launcher's stderr.
    let long = env.path(&"s".repeat(120));
    let failed = daemonized(&env, &long);
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

#[test]
fn stale_pidfile_and_socket_from_a_crash_do_not_block_a_start() {
    let env = Env::new();
    let mut daemon = env.start(&[]);
    daemon.signal_and_wait(Signal::SIGKILL, LIMIT);
    assert!(env.pidfile().exists() && env.socket().exists());
    let daemon = env.start(&[]);
    let pid = pid_in(&env);
    assert_eq!(pid, daemon.pid());
}

/// Overwrite the stored FFmpeg process of every running variation.
fn store_process(env: &Env, pid: i32, start_time: i64, boot_id: &str) {
    let db = rusqlite::Connection::open(env.state_dir().join("vidvard.db")).unwrap();
    let n = db
        .execute(
            "UPDATE variations SET pid = ?1, pid_start_time = ?2, boot_id = ?3
             WHERE state = 'running'",
            rusqlite::params![pid, start_time, boot_id],
        )
        .unwrap();
    assert!(n > 0, "a variation was running");
}

fn spawn_sleeper() -> std::process::Child {
    use std::os::unix::process::CommandExt;
    Command::new("sleep")
        .arg("300")
        .process_group(0)
        .spawn()
        .unwrap()
}

/// A variation's recorded process is an encoder of a pipeline, in the
/// group its decoder leads (stand-ins here: a sleeping leader and a
/// sleeping member of its group). After a kill -9 of the daemon,
/// recovery kills the member's whole group when the recorded identity
/// matches, and nothing when the pid was reused.
#[test]
fn recovery_kills_a_matching_orphan_group_and_spares_a_reused_pid() {
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    for matching in [false, true] {
        let mut daemon = env.start(&["--max-parallel", "1"]);
        let job = start_long_job(&env, "1");
        daemon.signal_and_wait(Signal::SIGKILL, LIMIT);

        let mut leader = spawn_sleeper();
        let mut member = Command::new("sleep")
            .arg("300")
            .process_group(leader.id() as i32)
            .spawn()
            .unwrap();
        let identity = vidvar::process::ProcessIdentity::of(member.id() as i32).unwrap();
        // A reused pid: same number, different start time than recorded.
        let start_time = identity.start_time as i64 + if matching { 0 } else { 1 };
        store_process(&env, identity.pid, start_time, &identity.boot_id);

        let _daemon = env.start(&[]);
        assert_interrupted(&env, job);
        for sleeper in [&mut member, &mut leader] {
            let gone = wait_for("recovery's verdict", Duration::from_secs(5), || {
                sleeper
                    .try_wait()
                    .unwrap()
                    .map(|_| true)
                    .or((!matching).then_some(false))
            });
            assert_eq!(
                gone, matching,
                "only the group of a process whose identity matches is killed"
            );
        }
        for sleeper in [&mut member, &mut leader] {
            let _ = sleeper.kill();
            let _ = sleeper.wait();
        }
        std::fs::remove_dir_all(env.out_dir()).unwrap();
    }
}

#[test]
fn systemd_hears_ready_and_stopping_and_ffmpeg_never_sees_notify_socket() {
    let env = Env::new();
    let notify_path = env.path("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut daemon = env.start_with_env(&[], &[("NOTIFY_SOCKET", &notify_path)]);
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));

    let input = env.path("long.mp4");
    make_video(&input, 40.0, "320x240", false);
    let out = env.out_dir();
    let job = env.submit(&[
        "-n",
        "1",
        "-o",
        out.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    env.wait_job(job, LIMIT, |d| {
        d["files"][0]["progress"].as_f64().unwrap() > 0.0
    });
    let ffmpeg = ffmpeg_using(out.to_str().unwrap());
    assert_eq!(ffmpeg.len(), 1);
    let environ = std::fs::read(format!("/proc/{}/environ", ffmpeg[0])).unwrap();
    assert!(
        !String::from_utf8_lossy(&environ).contains("NOTIFY_SOCKET"),
        "FFmpeg must not inherit NOTIFY_SOCKET"
    );
    // Batch work yields to the control plane: nice 10 (proc(5) stat
    // field 19, the 17th after the command name).
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", ffmpeg[0])).unwrap();
    let nice = stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(16)
        .unwrap();
    assert_eq!(nice, "10", "{stat}");

    let (status, _) = daemon.signal_and_wait(Signal::SIGTERM, LIMIT);
    assert!(status.success());
    let n = notify.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
}

#[test]
fn a_second_daemon_on_the_same_state_directory_is_refused() {
    let env = Env::new();
    let daemon = env.start(&[]);
    let out = env.run_vidvard(
        &env.path("b.sock"),
        &env.state_dir(),
        &env.path("b.pid"),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("already running (pid {})", daemon.pid())),
        "{stderr}"
    );
    assert!(!env.path("b.sock").exists());
    env.ctl_ok(&["ping"]);
}

#[test]
fn a_runtime_directory_someone_else_controls_is_refused() {
    let env = Env::new();
    let shared = env.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let victim = env.path("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, shared.join("vidvard.pid")).unwrap();
    let out = env.run_vidvard(
        &shared.join("vidvard.sock"),
        &env.state_dir(),
        &shared.join("vidvard.pid"),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing to use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

/// Fill the filesystem holding `dir` with one file; returns its path.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let _ = f.write_all(&[0u8; 512]);
    let _ = f.sync_all();
    filler
}

/// A daemon of one slot in `env` whose database lives on a 2 MiB tmpfs,
/// and a job of one variation of a 12 s input caught mid-encode: the
/// mount (drop it after the daemon), the daemon, the input and the job.
fn encoding_over_a_small_disk(env: &Env) -> (Mount, Daemon, std::path::PathBuf, i64) {
    let mount = Mount::tmpfs(&env.state_dir(), "2m");
    // A tmpfs root is 1777; the state directory must be the daemon's own.
    std::fs::set_permissions(
        env.state_dir(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let daemon = env.start(&["--max-parallel", "1"]);
    let input = env.path("clip.mp4");
    make_video(&input, 12.0, "320x240", false);
    let job = env.submit_and_wait_for_progress(&input, "1");
    (mount, daemon, input, job)
}

#[test]
fn a_full_disk_under_the_database_loses_no_outcome() {
    let env = Env::new();
    let (_mount, daemon, input, job) = encoding_over_a_small_disk(&env);
    let out = env.out_dir();
    let filler = fill(&env.state_dir());

    // The encode ends while the database cannot grow: the outcome waits.
    wait_for("the failed write", LIMIT, || {
        daemon
            .log()
            .contains("cannot record an outcome")
            .then_some(())
    });
    assert_eq!(
        env.status(job)["summary"]["state"],
        "running",
        "reads still work"
    );
    let refused = env.ctl(&[
        "submit",
        "-n",
        "1",
        "-o",
        out.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert!(
        !refused.status.success(),
        "a submission that cannot be stored is refused"
    );

    std::fs::remove_file(filler).unwrap();
    let done = env.wait_job(job, LIMIT, |d| d["summary"]["state"] != "running");
    assert_eq!(done["summary"]["state"], "succeeded", "{done}");
    assert_eq!(
        env.json(&["outputs", &job.to_string()])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_clean_stop_keeps_waiting_jobs_queued() {
    let env = Env::new();
    let mut daemon = env.start(&["--max-parallel", "1"]);
    let busy = start_long_job(&env, "2");
    let small = env.path("small.mp4");
    make_video(&small, 1.0, "160x120", false);
    let out = env.out_dir();
    let waiting = env.submit(&[
        "-n",
        "1",
        "-o",
        out.to_str().unwrap(),
        small.to_str().unwrap(),
    ]);
    // Its input gets probed in turn, but no slot is free to encode it.
    env.wait_job(waiting, LIMIT, |d| {
        d["files"][0]["duration_secs"].is_number()
    });
    let (status, _) = daemon.signal_and_wait(Signal::SIGINT, LIMIT);
    assert!(status.success());

    let _daemon = env.start(&["--max-parallel", "1"]);
    assert_interrupted(&env, busy);
    let done = env.wait_job(waiting, LIMIT, |d| {
        d["summary"]["state"] != "queued" && d["summary"]["state"] != "running"
    });
    assert_eq!(done["summary"]["state"], "succeeded", "{done}");
}

#[test]
fn a_daemonized_start_closes_the_descriptors_it_inherited() {
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    let _guard = PidfileGuard(env.pidfile());
    let marker = env.path("inherited-marker");
    let file = std::fs::File::create(&marker).unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&file);
    let mut cmd = Command::new(VIDVARD);
    cmd.args(daemon_args(&env, &env.socket()))
        .stdin(Stdio::null());
    // SAFETY: between fork and exec only dup2(2), async-signal-safe, on a
    // descriptor opened before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // Descriptors 10 and 251, as a shell or a launcher leaves them.
            for target in [10, 251] {
                if libc_dup2(raw, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = pid_in(&env);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap();
    let held: Vec<String> = fds
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        !held.iter().any(|p| p.contains("inherited-marker")),
        "the daemon still holds what it inherited: {held:?}"
    );
    stop_daemonized(&env, pid);
}

/// dup2(2) that leaves the copy inheritable (nix's wrapper wants owned
/// descriptors, which a pre_exec closure must not drop).
fn libc_dup2(from: i32, to: i32) -> i32 {
    // SAFETY: plain system call on two descriptor numbers.
    unsafe { nix::libc::dup2(from, to) }
}

#[test]
fn sigterm_right_after_a_daemonized_start_stops_it_cleanly() {
    let env = Env::new();
    let _guard = PidfileGuard(env.pidfile());
    for _ in 0..5 {
        let out = daemonized(&env, &env.socket());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // At once: the handler must be in place when the launcher returns.
        stop_daemonized(&env, pid_in(&env));
        assert!(!env.socket().exists(), "the socket is removed too");
    }
}

#[test]
fn a_state_directory_of_another_user_is_refused_with_who_owns_it() {
    let env = Env::new();
    // As the package leaves /var/lib/vidvard: owned by its service user.
    let theirs = env.path("theirs");
    std::fs::create_dir(&theirs).unwrap();
    nix::unistd::chown(&theirs, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let out = env.run_vidvard(&env.socket(), &theirs, &env.pidfile(), &[]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!("refusing the state directory {}", s(&theirs))),
        "{said}"
    );
    assert!(
        said.contains("belongs to nobody") && said.contains("runuser -u nobody"),
        "{said}"
    );
}
