//! The daemon harness: a real `vidvard --foreground` on the socket, state
//! dir and pidfile of a temp directory ([`Env`]), killed when its guard
//! ([`Daemon`]) drops, the real `vidvarctl` against it, and readings of
//! what the daemon recorded in its log. It starts nothing but these two
//! programs and FFmpeg's lavfi inputs.

use super::{media::make_video, s, users, wait_for};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const VIDVARD: &str = env!("CARGO_BIN_EXE_vidvard");
pub const VIDVARCTL: &str = env!("CARGO_BIN_EXE_vidvarctl");

/// A temp directory with a daemon's socket, state dir and pidfile paths.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// The user the daemon runs as, when not the test's own: clients are
    /// told to trust it (`VIDVAR_SERVICE_USER`).
    pub service_user: Option<users::User>,
    /// The daemon program: this build's `vidvard` unless a benchmark
    /// measures another.
    pub program: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        Env::new_in(&std::env::temp_dir())
    }

    /// An environment in a new directory below `parent`.
    pub fn new_in(parent: &Path) -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("vidvar-test")
                .tempdir_in(parent)
                .unwrap(),
            service_user: None,
            program: VIDVARD.into(),
        }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn socket(&self) -> PathBuf {
        self.path("run/vidvard.sock")
    }
    pub fn pidfile(&self) -> PathBuf {
        self.path("run/vidvard.pid")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }
    pub fn out_dir(&self) -> PathBuf {
        let dir = self.path("out");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Run `vidvard --foreground` with this socket, state dir and pidfile
    /// to its end (for starts that must fail).
    pub fn run_vidvard(
        &self,
        socket: &Path,
        state_dir: &Path,
        pidfile: &Path,
        extra: &[&str],
    ) -> Output {
        Command::new(VIDVARD)
            .arg("--foreground")
            .arg("--socket")
            .arg(socket)
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--pidfile")
            .arg(pidfile)
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `--foreground` and this environment's socket, state dir and pidfile.
    pub fn foreground_args(&self) -> Vec<std::ffi::OsString> {
        vec![
            "--foreground".into(),
            "--socket".into(),
            self.socket().into(),
            "--state-dir".into(),
            self.state_dir().into(),
            "--pidfile".into(),
            self.pidfile().into(),
        ]
    }

    /// Start `vidvard --foreground` with extra flags and wait until it answers.
    pub fn start(&self, extra: &[&str]) -> Daemon {
        self.start_with_env(extra, &[])
    }

    /// [`Env::start`] with extra environment variables.
    pub fn start_with_env(&self, extra: &[&str], vars: &[(&str, &Path)]) -> Daemon {
        let mut cmd = match &self.service_user {
            Some(user) => user.command(&self.program),
            None => Command::new(&self.program),
        };
        let log = std::fs::File::create(self.path("vidvard.log")).unwrap();
        let child = cmd
            .envs(vars.iter().copied())
            .args(self.foreground_args())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut daemon = Daemon {
            child: Some(child),
            log: self.path("vidvard.log"),
        };
        wait_for("vidvard to answer ping", Duration::from_secs(20), || {
            if let Some(status) = daemon.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("vidvard exited with {status}: {}", daemon.log());
            }
            self.ctl(&["ping"]).status.success().then_some(())
        });
        daemon
    }

    /// vidvarctl with `args` against this environment's socket, not run yet.
    fn ctl_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(VIDVARCTL);
        if let Some(user) = &self.service_user {
            cmd.env("VIDVAR_SERVICE_USER", &user.name);
        }
        cmd.env("VIDVAR_SOCKET", self.socket())
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Run vidvarctl against this environment's socket.
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_command(args).output().unwrap()
    }

    /// vidvarctl started and not waited for (its output dropped): a
    /// request that waits while the test does something else.
    pub fn ctl_started(&self, args: &[&str]) -> std::process::Child {
        self.ctl_command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Run vidvarctl and expect success; returns stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "vidvarctl {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `vidvarctl --json ARGS` parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ctl(&all);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "vidvarctl {all:?} printed no JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// Submit and return the job id.
    pub fn submit(&self, args: &[&str]) -> i64 {
        self.ctl_ok(&[&["submit"], args].concat())
            .trim()
            .parse()
            .expect("submit prints the job id")
    }

    /// Submit `input` (`variations` of it) into [`Env::out_dir`] and wait
    /// until FFmpeg reports progress, to catch the job mid-encode. Returns
    /// the job id.
    pub fn submit_and_wait_for_progress(&self, input: &Path, variations: &str) -> i64 {
        let out = self.out_dir();
        let job = self.submit(&["-n", variations, "-o", s(&out), s(input)]);
        self.wait_job(job, Duration::from_secs(120), |d| {
            d["files"][0]["progress"].as_f64().unwrap() > 0.0
        });
        job
    }

    /// Hooks owed or running in the daemon's SQLite queue (rows of its
    /// `hooks` table, read-only): 0 once every completion hook owed has run
    /// to its end, so none can start again.
    pub fn hooks_owed(&self) -> i64 {
        let db = self.state_dir().join(vidvar::paths::DATABASE_NAME);
        let conn =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap_or_else(|e| panic!("cannot open {}: {e}", db.display()));
        conn.query_row("SELECT count(*) FROM hooks", [], |r| r.get(0))
            .unwrap()
    }

    /// The job's detail as JSON.
    pub fn status(&self, job: i64) -> serde_json::Value {
        self.json(&["status", &job.to_string()])
    }

    /// Wait until the job's state satisfies `pred`; returns the detail.
    pub fn wait_job(
        &self,
        job: i64,
        limit: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        wait_for(&format!("job {job}"), limit, || {
            let detail = self.status(job);
            pred(&detail).then_some(detail)
        })
    }
}

/// Whether a file of a job's detail (`status --json`) has two variations
/// running that both reported progress: their FFmpeg processes are all up.
pub fn both_encoding(file: &serde_json::Value) -> bool {
    file["running"].as_array().is_some_and(|r| {
        r.len() == 2
            && r.iter()
                .all(|v| v["percent"].as_f64().is_some_and(|p| p > 0.0))
    })
}

pub struct Daemon {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the daemon's log, past its first `from` bytes, holds a
    /// record containing `what` (a daemon started with `--log-level trace`
    /// records each pass of its claim loop while paused: "paused: no work
    /// claimed", the proof that it looked and started nothing). Returns the
    /// log's length then, for the next wait.
    pub fn wait_record(&self, what: &str, from: usize, limit: Duration) -> usize {
        wait_for(&format!("the record {what:?} in the log"), limit, || {
            let log = self.log();
            log.get(from..)?.contains(what).then_some(log.len())
        })
    }
    /// Send a signal and wait for the exit; returns the status and the time
    /// the exit took.
    pub fn signal_and_wait(
        &mut self,
        signal: nix::sys::signal::Signal,
        limit: Duration,
    ) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).unwrap();
        let mut child = self.child.take().unwrap();
        let status = wait_for("vidvard to exit", limit, || child.try_wait().unwrap());
        (status, started.elapsed())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The lines of a daemon's `log` holding `what` that come before its first
/// line holding `marker` (all of them when there is none): what the daemon
/// did before an event, by the order of its own records, without a clock.
pub fn records_before<'a>(log: &'a str, marker: &str, what: &str) -> Vec<&'a str> {
    log.lines()
        .take_while(|l| !l.contains(marker))
        .filter(|l| l.contains(what))
        .collect()
}

/// Job ids in the order their first output was published, from the
/// daemon's log ("job N: INPUT variation I -> OUTPUT").
pub fn publish_order(log: &str) -> Vec<i64> {
    let mut order = Vec::new();
    for line in log.lines().filter(|l| l.contains(" -> ")) {
        let Some(rest) = line.split("job ").nth(1) else {
            continue;
        };
        let id: i64 = rest.split(':').next().unwrap().parse().unwrap();
        if !order.contains(&id) {
            order.push(id);
        }
    }
    order
}

/// Daemon flags under which [`submit_losing_a_variation`] loses one: one
/// slot, 2 MiB to be kept free.
pub const LOSES_A_VARIATION: [&str; 4] = ["--max-parallel", "1", "--min-free-space", "2"];

/// Submit, to a daemon started with [`LOSES_A_VARIATION`], a job of one
/// 6 s input and 2 variations into `disk`, a 3 MiB tmpfs
/// ([`Mount::tmpfs`]): the first output (about 1.5 MB) fits, and leaves
/// too little free for the second to start. Returns the job id.
pub fn submit_losing_a_variation(env: &Env, disk: &Path) -> i64 {
    let input = env.path("clip.mp4");
    make_video(&input, 6.0, "640x360", false);
    env.submit(&["-n", "2", "-o", s(disk), s(&input)])
}

/// The top-level keys of vidvard.conf that the daemon itself accepts,
/// from the message it gives for an unknown key ("unknown field `x`, expected one of `socket`, ...").
pub fn config_keys() -> std::collections::BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("vidvard.conf");
    std::fs::write(&conf, "no_such_key = 1\n").unwrap();
    let out = Command::new(VIDVARD)
        .arg("--config")
        .arg(&conf)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = stderr
        .split_once("expected one of")
        .unwrap_or_else(|| panic!("no list of keys in: {stderr}"))
        .1;
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}
