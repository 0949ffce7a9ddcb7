//! The measured daemon: the test kit's `vidvard --foreground` harness
//! ([`common::Env`]) with an empty configuration (no user configuration
//! leaks in) and the binary `--vidvard` names, read for its memory and,
//! once stopped, its CPU time; and the library's protocol client with the
//! benchmark's conveniences (timed round trips, waiting for a job).

use crate::common::{self, Env};
use crate::machine::{clock_ticks, proc_stat_fields, rss_mib};
use anyhow::{Context, Result, bail, ensure};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vidvar::proto::{JobId, JobState, Request, Response, SubmitRequest};

/// A `vidvard --foreground` on its own socket, database and pidfile in a
/// directory below the one it is given. Killed on drop unless stopped.
pub struct Daemon {
    env: Env,
    daemon: common::Daemon,
}

/// CPU seconds of a stopped daemon, from `/proc/PID/stat` while a zombie.
pub struct DaemonCpu {
    pub own: f64,
    pub children: f64,
}

impl Daemon {
    /// Its environment below `parent`, before it starts (to seed its
    /// store); kept with `--keep`.
    pub fn prepare(parent: &Path) -> Result<Env> {
        std::fs::create_dir_all(parent)?;
        let mut env = Env::new_in(parent);
        env.program = crate::daemon_binary().to_path_buf();
        env.dir
            .disable_cleanup(crate::KEEP.load(std::sync::atomic::Ordering::Relaxed));
        Ok(env)
    }

    /// Its database, for seeding before it starts.
    pub fn database(env: &Env) -> PathBuf {
        env.state_dir().join(vidvar::paths::DATABASE_NAME)
    }

    /// Start it in `env`, with `config` as its whole configuration file
    /// (empty: every default) and `max_parallel` slots (the configuration's
    /// or vidvard's default if `None`), and wait until it answers.
    pub fn start(env: Env, config: &str, max_parallel: Option<usize>) -> Result<Daemon> {
        let text = config;
        let config = env.path("vidvard.conf");
        std::fs::write(&config, text)?;
        let parallel = max_parallel.map(|n| n.to_string());
        let mut extra = vec!["--config", common::s(&config)];
        if let Some(n) = &parallel {
            extra.extend(["--max-parallel", n]);
        }
        let daemon = env.start(&extra);
        Ok(Daemon { env, daemon })
    }

    /// Its environment: `vidvarctl` against it (the kit's `Env::ctl`).
    pub fn env(&self) -> &Env {
        &self.env
    }

    pub fn socket(&self) -> PathBuf {
        self.env.socket()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.env.state_dir()
    }

    /// Its directory: where its outputs and database go.
    pub fn dir(&self) -> &Path {
        self.env.dir.path()
    }

    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// Its process id.
    pub fn pid(&self) -> i32 {
        self.daemon.pid()
    }

    /// Resident set size (VmRSS) and its peak (VmHWM), MiB.
    pub fn rss(&self) -> Result<(f64, f64)> {
        rss_mib(self.daemon.pid())
    }

    /// SIGTERM, wait until it has exited, read its CPU times while it is a
    /// zombie (its own, and its reaped children's: FFmpeg and ffprobe),
    /// then reap it.
    pub fn stop(mut self) -> Result<DaemonCpu> {
        // On an error below, the kit's guard kills and reaps the process.
        let raw = self.daemon.pid();
        let pid = Pid::from_raw(raw);
        kill(pid, Signal::SIGTERM)?;
        waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)?;
        let f = proc_stat_fields(raw)?;
        let field = |n: usize| -> Result<f64> {
            // n is the proc(5) field number; index 0 is field 3.
            Ok(f.get(n - 3).context("short stat")?.parse::<f64>()? / clock_ticks())
        };
        let cpu = DaemonCpu {
            own: field(14)? + field(15)?,
            children: field(16)? + field(17)?,
        };
        let status = self.daemon.child.take().expect("running").wait()?;
        ensure!(
            status.success(),
            "vidvard exited with {status}: {}",
            self.log()
        );
        Ok(cpu)
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The library's client, with the benchmark's conveniences.
pub struct Client {
    inner: vidvar::client::Client,
}

impl Client {
    pub async fn connect(socket: &Path) -> Result<Client> {
        let trusted = vidvar::client::Trusted::new(vidvar::paths::SERVICE_USER);
        let inner = vidvar::client::Client::connect(socket, &trusted, "vidvar_bench").await?;
        Ok(Client { inner })
    }

    pub async fn call(&mut self, request: &Request) -> Result<Response> {
        match self.inner.request(request).await? {
            Response::Error(err) => bail!("{request:?} failed: {err}"),
            response => Ok(response),
        }
    }

    /// `call`, timed from sending to having decoded the answer.
    pub async fn timed(&mut self, request: &Request) -> Result<(Duration, Response)> {
        let start = Instant::now();
        let response = self.call(request).await?;
        Ok((start.elapsed(), response))
    }

    pub async fn submit(&mut self, req: SubmitRequest) -> Result<(Duration, JobId)> {
        match self.timed(&Request::Submit(req)).await? {
            (t, Response::Submitted { job }) => Ok((t, job)),
            (_, other) => bail!("unexpected answer to submit: {other:?}"),
        }
    }

    pub async fn state(&mut self, job: JobId) -> Result<JobState> {
        match self.call(&Request::Status { job }).await? {
            Response::Job(detail) => Ok(detail.summary.state),
            other => bail!("unexpected answer to status: {other:?}"),
        }
    }

    /// Poll every 5 ms until the job is final; returns its state.
    pub async fn wait_final(&mut self, job: JobId) -> Result<JobState> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let state = self.state(job).await?;
            if state.is_final() {
                return Ok(state);
            }
            ensure!(Instant::now() < deadline, "job {job} did not finish");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
