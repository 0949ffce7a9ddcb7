//! Where a running daemon's log goes: the journal's stream (priorities,
//! no timestamps), a file when syslog is missing (and its launcher says
//! so), syslog again once it comes back.

use super::*;

#[test]
fn on_the_journals_stream_records_carry_priorities_and_no_timestamps() {
    use std::os::unix::fs::MetadataExt;
    for journal in [true, false] {
        let env = Env::new();
        let log = env.path("vidvard.log");
        // start() truncates this very file and makes it vidvard's stderr.
        std::fs::write(&log, "").unwrap();
        let meta = std::fs::metadata(&log).unwrap();
        let stream = if journal {
            format!("{}:{}", meta.dev(), meta.ino())
        } else {
            format!("{}:{}", meta.dev(), meta.ino() + 1)
        };
        let mut daemon = env.start_with_env(&[], &[("JOURNAL_STREAM", stream.as_ref())]);
        // A warning: a submission of a missing file is logged as refused.
        env.ctl(&["submit", s(&env.path("missing.mp4"))]);
        daemon.signal_and_wait(Signal::SIGTERM, Duration::from_secs(20));
        let text = daemon.log();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() >= 2, "{text}");
        if journal {
            for line in &lines {
                let prefixed = ["<3>", "<4>", "<6>", "<7>"]
                    .iter()
                    .any(|p| line.starts_with(p));
                assert!(prefixed && !line.contains("[20"), "{line:?} in\n{text}");
            }
            assert!(lines.iter().any(|l| l.starts_with("<6>")), "{text}");
        } else {
            assert!(lines.iter().all(|l| l.starts_with("[20")), "{text}");
        }
    }
}

#[test]
fn without_syslog_a_daemon_logs_to_a_file_and_its_launcher_says_so() {
    let env = Env::new();
    let _guard = PidfileGuard(env.pidfile());
    // No syslog: where this machine has /dev/log, hide it from vidvard in
    // a mount namespace of its own.
    let mut cmd = if std::path::Path::new("/dev/log").exists() {
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind /dev/null /dev/log && exec \"$0\" \"$@\"")
            .arg(VIDVARD);
        c
    } else {
        Command::new(VIDVARD)
    };
    let out = cmd
        .args(daemon_args(&env, &env.socket()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    let file = env.state_dir().join("vidvard.log");
    assert!(
        said.contains("syslog is not reachable") && said.contains(s(&file)),
        "the launcher names the log file: {said:?}"
    );
    env.ctl_ok(&["ping"]);
    let pid = pid_in(&env);
    stop_daemonized(&env, pid);
    let log = std::fs::read_to_string(&file).unwrap();
    assert!(log.contains("syslog is not reachable"), "{log}");
    assert!(
        log.contains("listening on"),
        "startup lines are kept: {log}"
    );
    assert!(log.contains("stopped"), "{log}");
}

/// A datagram socket standing in for syslog's /dev/log.
struct FakeSyslog(std::os::unix::net::UnixDatagram);

impl FakeSyslog {
    fn bind(path: &std::path::Path) -> FakeSyslog {
        let _ = std::fs::remove_file(path);
        let socket = std::os::unix::net::UnixDatagram::bind(path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        FakeSyslog(socket)
    }

    /// Wait for a record holding `needle`; returns it.
    fn expect(&self, needle: &str) -> String {
        wait_for(&format!("syslog to get {needle:?}"), LIMIT, || {
            self.try_get(needle)
        })
    }

    /// The first record holding `needle` among those received by now
    /// (waiting at most the read timeout for one), discarding the others.
    fn try_get(&self, needle: &str) -> Option<String> {
        let mut buf = [0u8; 8192];
        while let Ok(n) = self.0.recv(&mut buf) {
            let record = String::from_utf8_lossy(&buf[..n]).into_owned();
            if record.contains(needle) {
                return Some(record);
            }
        }
        None
    }
}

#[test]
fn a_running_daemon_logs_to_syslog_again_once_syslog_comes_back() {
    common::users::require_root("it gives vidvard a /dev/log of its own in a mount namespace");
    let env = Env::new();
    let _guard = PidfileGuard(env.pidfile());
    let log_socket = env.path("log.sock");
    // vidvard's /dev is a tmpfs of its own with the usual nodes, and
    // /dev/log a link to the socket of this test.
    let setup = "mount -t tmpfs -o mode=755 tmpfs /dev \
        && mknod -m 666 /dev/null c 1 3 && mknod -m 666 /dev/zero c 1 5 \
        && mknod -m 666 /dev/random c 1 8 && mknod -m 666 /dev/urandom c 1 9 \
        && ln -s /proc/self/fd /dev/fd && ln -s \"$VIDVAR_TEST_LOG\" /dev/log \
        && exec \"$0\" \"$@\"";
    let start = || {
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", setup])
            .arg(VIDVARD)
            .args(daemon_args(&env, &env.socket()))
            .env("VIDVAR_TEST_LOG", &log_socket)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // Each pause or resume of the daemon logs a line.
    let control = |what: &str| {
        env.ctl_ok(&[what]);
    };

    // Syslog is there at start: the startup lines go to it.
    let syslog = FakeSyslog::bind(&log_socket);
    let out = start();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = pid_in(&env);
    let line = syslog.expect("listening on");
    assert!(
        line.starts_with("<30>"),
        "facility daemon, severity info: {line}"
    );
    // Syslog restarts: its socket is a new one. The next record reaches it.
    drop(syslog);
    let syslog = FakeSyslog::bind(&log_socket);
    control("pause");
    syslog.expect("paused by uid");
    // Syslog gone for a while: records go to the file meanwhile, and to
    // syslog again once it is back.
    drop(syslog);
    std::fs::remove_file(&log_socket).unwrap();
    control("resume");
    let file = env.state_dir().join("vidvard.log");
    wait_for("the fallback file", LIMIT, || {
        std::fs::read_to_string(&file)
            .ok()?
            .contains("resumed by uid")
            .then_some(())
    });
    // Syslog back: records reach it again once the daemon reconnects (at
    // most once a second); until then they go to the file. Pause and resume
    // in turn until one arrives.
    let syslog = FakeSyslog::bind(&log_socket);
    let mut paused = false;
    wait_for("a record to reach syslog again", LIMIT, || {
        paused = !paused;
        control(if paused { "pause" } else { "resume" });
        syslog.try_get("by uid")
    });
    stop_daemonized(&env, pid);
}
