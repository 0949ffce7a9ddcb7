//! Harness for the integration tests: a real `vidvard` on a temp socket and
//! state dir, the real `vidvarctl`, inputs made by FFmpeg's lavfi sources.
//! Waits poll with a deadline; the daemon is killed when its guard drops.

#![allow(dead_code)] // each test binary uses its own subset

pub mod invariants;
pub mod postgres;
pub mod users;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const VIDVARD: &str = env!("CARGO_BIN_EXE_vidvard");
pub const VIDVARCTL: &str = env!("CARGO_BIN_EXE_vidvarctl");

/// A test path as text (test paths are UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Poll `check` every 50 ms until it returns `Some`, or panic after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A temp directory with a daemon's socket, state dir and pidfile paths.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// The user the daemon runs as, when not the test's own: clients are
    /// told to trust it (`VIDVAR_SERVICE_USER`).
    pub service_user: Option<users::User>,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("vidvar-test")
                .tempdir()
                .unwrap(),
            service_user: None,
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
            Some(user) => user.command(VIDVARD),
            None => Command::new(VIDVARD),
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

    /// Run vidvarctl against this environment's socket.
    pub fn ctl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(VIDVARCTL);
        if let Some(user) = &self.service_user {
            cmd.env("VIDVAR_SERVICE_USER", &user.name);
        }
        cmd.env("VIDVAR_SOCKET", self.socket())
            .args(args)
            .stdin(Stdio::null())
            .output()
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

/// Make a test video with FFmpeg's lavfi sources: `testsrc2` picture of
/// `size` (WxH) for `seconds`, plus a `sine` audio track when `audio`.
pub fn make_video(path: &Path, seconds: f64, size: &str, audio: bool) {
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-y",
        "-f",
        "lavfi",
        "-i",
    ])
    .arg(format!("testsrc2=size={size}:rate=25:duration={seconds}"));
    if audio {
        cmd.args(["-f", "lavfi", "-i"])
            .arg(format!(
                "sine=frequency=440:sample_rate=44100:duration={seconds}"
            ))
            .args(["-c:a", "aac"]);
    }
    cmd.args([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
    ])
    .arg(path);
    let out = cmd.output().expect("ffmpeg is installed");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// A Matroska file whose first video stream is a one-frame 64x64 PNG, not
/// marked default, before the real video (`testsrc2`, 320x240, default)
/// and a `sine` audio track, both `seconds` long (issue 22: players show
/// the second stream).
pub fn make_picture_before_video(path: &Path, seconds: f64) {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=red:size=64x64:rate=15:duration=0.06",
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size=320x240:rate=25:duration={seconds}"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:duration={seconds}"),
        "-map",
        "0:v",
        "-map",
        "1:v",
        "-map",
        "2:a",
        "-c:v:0",
        "png",
        "-c:v:1",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        "-disposition:v:0",
        "0",
        "-disposition:v:1",
        "default",
        s(path),
    ]);
}

/// ffprobe facts of a file: (has a video stream, has audio, duration in s).
pub fn probe(path: &Path) -> (bool, bool, f64) {
    let v = probe_json(path);
    let has = |kind: &str| !streams(&v, kind).is_empty();
    let duration = v["format"]["duration"].as_str().unwrap().parse().unwrap();
    (has("video"), has("audio"), duration)
}

/// Pids of live (non-zombie) FFmpeg processes whose command line or open
/// files mention `needle` (vidvard hands FFmpeg descriptors, `/dev/fd/N`,
/// so the output directory shows in the files it has open).
pub fn ffmpeg_using(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let state = stat[stat.rfind(')')? + 2..].chars().next()?;
            if comm.trim() != "ffmpeg" || state == 'Z' {
                return None;
            }
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let mentions = String::from_utf8_lossy(&cmdline).contains(needle)
                || std::fs::read_dir(e.path().join("fd"))
                    .into_iter()
                    .flatten()
                    .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                    .any(|target| target.to_string_lossy().contains(needle));
            mentions.then_some(pid)
        })
        .collect()
}

/// Names in `dir`.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Run ffmpeg with `args` (after `-hide_banner -loglevel error -nostdin -y`)
/// to make a test input; panics with FFmpeg's message on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg is installed");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ffprobe's JSON (format and streams) of a file.
pub fn probe_json(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The streams of `kind` ("video", "audio") in ffprobe's JSON.
pub fn streams<'a>(probe: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["codec_type"] == kind)
        .collect()
}

/// A tmpfs of `size` mounted on `dir`, unmounted on drop.
pub struct Mount(PathBuf);

impl Mount {
    /// Mount it, or fail the test saying why (mounting needs root).
    pub fn tmpfs(dir: &Path, size: &str) -> Mount {
        users::require_root("it mounts a small tmpfs");
        Self::try_tmpfs(dir, size).expect("root can mount a tmpfs")
    }

    fn try_tmpfs(dir: &Path, size: &str) -> Option<Mount> {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .ok()?;
        status.success().then(|| Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A completion hook for tests, and where it records its runs.
pub struct TestHook {
    /// A configuration file that sets the hook as `on_job_end`.
    pub config: PathBuf,
    /// One set of files per run: `job-N.PID.stdin` (what it read),
    /// `job-N.PID.env` (its environment, written once it started) and
    /// `job-N.PID.done` (it ran to its end).
    pub records: PathBuf,
}

impl TestHook {
    /// Write the hook (a shell script) and its configuration into `env`:
    /// a job labelled `hang` makes it sleep a minute, `fail` exit 3 after a
    /// line on stderr, `slow` take 3 s.
    pub fn new(env: &Env, timeout_secs: u32) -> TestHook {
        use std::os::unix::fs::PermissionsExt;
        let records = env.path("hook-records");
        std::fs::create_dir_all(&records).unwrap();
        let script = env.path("hook.sh");
        std::fs::write(
            &script,
            r#"#!/bin/sh
run="$1/job-$VIDVAR_JOB.$$"
cat > "$run.stdin"
env > "$run.env.part" && mv "$run.env.part" "$run.env"
case "$VIDVAR_LABELS" in
  *hang*) sleep 60 ;;
  *fail*) echo "cannot upload: no route to host" >&2; exit 3 ;;
  *slow*) sleep 3 ;;
esac
: > "$run.done"
"#,
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = env.path("vidvard.conf");
        std::fs::write(
            &config,
            format!(
                "on_job_end = [{:?}, {:?}]\nhook_timeout = {timeout_secs}\n",
                s(&script),
                s(&records)
            ),
        )
        .unwrap();
        TestHook { config, records }
    }

    /// The runs of job `job`'s hook so far: (pid, environment), in pid
    /// order. The environment of a run is `KEY=VALUE` lines.
    pub fn runs(&self, job: i64) -> Vec<(i32, String)> {
        let prefix = format!("job-{job}.");
        let mut runs: Vec<(i32, String)> = names(&self.records)
            .into_iter()
            .filter_map(|name| {
                let pid = name.strip_prefix(&prefix)?.strip_suffix(".env")?;
                let env = std::fs::read_to_string(self.records.join(&name)).unwrap();
                Some((pid.parse().unwrap(), env))
            })
            .collect();
        runs.sort();
        runs
    }

    /// Whether the run `pid` of job `job`'s hook reached its end.
    pub fn done(&self, job: i64, pid: i32) -> bool {
        self.records.join(format!("job-{job}.{pid}.done")).exists()
    }

    /// What run `pid` of job `job`'s hook read on its stdin.
    pub fn stdin(&self, job: i64, pid: i32) -> String {
        std::fs::read_to_string(self.records.join(format!("job-{job}.{pid}.stdin"))).unwrap()
    }

    /// Wait until job `job`'s hook has run to its end once; returns that
    /// run's pid and environment.
    pub fn wait_done(&self, job: i64, limit: Duration) -> (i32, String) {
        wait_for(&format!("the hook of job {job}"), limit, || {
            self.runs(job)
                .into_iter()
                .find(|(pid, _)| self.done(job, *pid))
        })
    }
}

/// The value of `key` in `KEY=VALUE` lines.
pub fn env_value<'a>(env: &'a str, key: &str) -> Option<&'a str> {
    env.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
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
