//! A completion hook for tests: a shell script that records each run
//! (what it read, its environment, that it ended) in files, and reading
//! those records back.

use super::daemon::Env;
use super::{names, s, wait_for};
use std::path::PathBuf;
use std::time::Duration;

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
