//! Owner of FFmpeg child processes: spawn, watch, stop.
//!
//! Each child is started by [`process::command`]: no shell, stdin closed, a
//! process group of its own (so a signal reaches anything it starts) and
//! `PR_SET_PDEATHSIG(SIGKILL)`, so it dies with the daemon's spawning
//! thread. Callers spawn from tokio's worker threads, which live as long as
//! the runtime, never from `spawn_blocking` threads. stdout
//! carries `-progress` lines; stderr is always drained and only a bounded
//! tail is kept. Stopping is SIGTERM to the group, then SIGKILL after the
//! grace period.

use crate::ffmpeg::progress::{PercentTracker, ProgressParser};
use crate::process::{self, ProcessIdentity, RunAs};
use crate::rusage::{self, CpuMeter, ExitWatch};
use futures_util::StreamExt;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncRead;
use tokio_util::codec::{AnyDelimiterCodec, FramedRead};
use tokio_util::sync::CancellationToken;

/// Lines of stderr kept for error messages.
pub const STDERR_TAIL_LINES: usize = 12;
/// Longest line kept, in bytes; longer lines are cut (and the rest skipped).
pub const MAX_LINE_LEN: usize = 1024;

/// How a supervised process ended.
#[derive(Debug)]
pub enum End {
    /// It exited (or was killed by a signal nobody here sent).
    Exited {
        status: ExitStatus,
        /// The last [`STDERR_TAIL_LINES`] non-empty stderr lines.
        stderr_tail: String,
        /// Media time FFmpeg reported encoded when it ended (its last
        /// `out_time_us`), microseconds; `None` if it reported none.
        encoded_us: Option<u64>,
    },
    /// The cancellation token fired and the process group was stopped.
    Stopped,
    /// No progress for the stall timeout; the process group was stopped.
    Stalled,
}

/// Why a process could not be supervised.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("cannot start {}: {source}", program.display())]
    Spawn {
        program: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("waiting for FFmpeg failed: {0}")]
    Wait(#[source] std::io::Error),
}

/// What to run and how to report on it.
pub struct FfmpegRun<'a> {
    pub program: &'a Path,
    pub args: Vec<OsString>,
    /// Input duration in microseconds, for the percent; `None` if unknown.
    pub duration_us: Option<u64>,
    /// Time between SIGTERM and SIGKILL when stopping.
    pub grace: Duration,
    /// Longest time without progress (encoded media time not advancing)
    /// before the process is stopped as stalled; `None` for a process that
    /// reports no progress (the stage).
    pub stall_timeout: Option<Duration>,
    /// The job owner's credentials, when FFmpeg must not run as the daemon.
    pub run_as: Option<&'a RunAs>,
    /// Descriptors the child inherits: the files `args` name as
    /// `/dev/fd/N`.
    pub inherit: &'a [RawFd],
    /// The child's standard input; `None`: /dev/null.
    pub stdin: Option<OwnedFd>,
    /// Which process group it runs in, and so what stopping it signals.
    pub group: Group,
    /// Where its CPU time goes when it exits (its rusage, split evenly
    /// over them: see [`rusage::share`]); empty: not counted.
    pub cpu: &'a [Arc<CpuMeter>],
}

/// The process group of a supervised process (setpgid(2)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// A group of its own: stopping it signals the whole group.
    Own,
    /// It starts a group that the other processes of its pipeline join:
    /// stopping it signals it alone (the pipeline's owner stops the group).
    Lead,
    /// It joins the group of that pid (a [`Group::Lead`]); stopping it
    /// signals it alone.
    Join(i32),
}

/// Progress of a running encode.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Progress {
    /// Percent of the input encoded, 0..=99 (see [`PercentTracker`]); 0
    /// while the duration is unknown.
    pub percent: f64,
    /// Media time written so far, microseconds (`out_time_us`).
    pub out_time_us: u64,
    /// Encoding speed, a multiple of real time (`speed`); `None` until
    /// FFmpeg reports one.
    pub speed: Option<f64>,
    /// Frames encoded per second (`fps`); `None` until reported.
    pub fps: Option<f64>,
}

/// Run one FFmpeg encode to its end.
///
/// `on_spawn` receives the child's identity once it runs, and is awaited
/// before anything else (the identity is stored for recovery);
/// `on_progress` receives the [`Progress`] (never lower than
/// before) after every `-progress` block. When `cancel` fires, the process
/// group is stopped and [`End::Stopped`] returned; when the encoded media
/// time has not advanced for the stall timeout, [`End::Stalled`].
pub async fn run<F: std::future::Future<Output = ()>>(
    encode: FfmpegRun<'_>,
    cancel: &CancellationToken,
    on_spawn: impl FnOnce(ProcessIdentity) -> F,
    on_progress: impl FnMut(Progress),
) -> Result<End, SupervisorError> {
    let started = start(encode)?;
    if let Some(identity) = started.identity() {
        on_spawn(identity).await;
    }
    started.watch(cancel, on_progress).await
}

/// A process started by [`start`], not yet watched.
pub struct Started<'a> {
    run: FfmpegRun<'a>,
    child: Child,
    pid: Option<i32>,
}

/// A child and what it used: reaped only through [`Child::reap`], which
/// first reads its CPU time.
struct Child {
    process: tokio::process::Child,
    /// `None` once its CPU time was read, or if it could not be watched.
    exit: Option<ExitWatch>,
}

impl Child {
    /// Wait for the process to exit, add its CPU time to `cpu`, reap it.
    /// Cancel-safe: dropped before the end, nothing is lost.
    async fn reap(&mut self, cpu: &[Arc<CpuMeter>]) -> std::io::Result<ExitStatus> {
        if let Some(exit) = &self.exit {
            match exit.exited().await {
                Ok(time) => rusage::share(cpu, time),
                Err(err) => log::debug!("cannot read a child's CPU time: {err}"),
            }
            self.exit = None;
        }
        self.process.wait().await
    }
}

/// Start the process `run` describes (see the module docs); [`Started::watch`]
/// then follows it to its end. The descriptors it inherits may be closed
/// once this returns.
///
/// Errors: [`SupervisorError::Spawn`] when it cannot be started.
pub fn start(mut run: FfmpegRun<'_>) -> Result<Started<'_>, SupervisorError> {
    let mut command = process::command(run.program, run.run_as, run.inherit);
    command.args(&run.args);
    if let Some(stdin) = run.stdin.take() {
        command.stdin(std::process::Stdio::from(stdin));
    }
    if let Group::Join(leader) = run.group {
        command.process_group(leader);
    }
    let process = command.spawn().map_err(|source| SupervisorError::Spawn {
        program: run.program.to_path_buf(),
        source,
    })?;
    let pid = process.id().map(|p| p as i32);
    let exit = pid.and_then(|pid| match ExitWatch::of(pid) {
        Ok(watch) => Some(watch),
        Err(err) => {
            log::debug!("cannot watch pid {pid} for its CPU time: {err}");
            None
        }
    });
    let child = Child { process, exit };
    Ok(Started { run, child, pid })
}

impl Started<'_> {
    /// The process's pid; `None` once it has been reaped.
    pub fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// The process's identity, for recovery; `None` when it is gone already.
    pub fn identity(&self) -> Option<ProcessIdentity> {
        self.pid.and_then(|p| ProcessIdentity::of(p).ok())
    }

    /// Follow the process to its end: `on_progress` receives the
    /// [`Progress`] (never lower than before) after every `-progress`
    /// block. When `cancel` fires, the process is stopped (its group, for
    /// [`Group::Own`]) and [`End::Stopped`] returned; when the encoded
    /// media time has not advanced for the stall timeout, [`End::Stalled`].
    pub async fn watch(
        self,
        cancel: &CancellationToken,
        mut on_progress: impl FnMut(Progress),
    ) -> Result<End, SupervisorError> {
        let Started {
            run: encode,
            mut child,
            pid,
        } = self;
        let stdout = child.process.stdout.take().expect("stdout is piped");
        let stderr = child.process.stderr.take().expect("stderr is piped");

        // When the encoded media time last advanced, in ms after `spawned`.
        let spawned = Instant::now();
        let last_advance_ms = AtomicU64::new(0);
        let progress = async {
            let mut parser = ProgressParser::default();
            let mut tracker = PercentTracker::new(encode.duration_us);
            let mut furthest = None;
            let mut lines = lines_of(stdout);
            while let Some(line) = lines.next().await {
                let Some(snapshot) = line.as_deref().and_then(|l| parser.feed(l)) else {
                    continue;
                };
                if snapshot.out_time_us > furthest || snapshot.end {
                    furthest = snapshot.out_time_us.max(furthest);
                    last_advance_ms.store(spawned.elapsed().as_millis() as u64, Ordering::Relaxed);
                }
                on_progress(Progress {
                    percent: tracker.update(&snapshot),
                    out_time_us: furthest.unwrap_or(0),
                    speed: snapshot.speed,
                    fps: snapshot.fps,
                });
            }
            furthest
        };
        let stalled = async {
            let Some(timeout) = encode.stall_timeout else {
                return std::future::pending().await;
            };
            loop {
                let last = Duration::from_millis(last_advance_ms.load(Ordering::Relaxed));
                let deadline = spawned + last + timeout;
                if Instant::now() >= deadline {
                    return;
                }
                tokio::time::sleep_until(deadline.into()).await;
            }
        };
        let stderr_tail = async {
            let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
            let mut lines = lines_of(stderr);
            while let Some(line) = lines.next().await {
                let Some(line) = line.filter(|l| !l.trim().is_empty()) else {
                    continue;
                };
                if tail.len() == STDERR_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            Vec::from(tail).join("\n")
        };
        let whole_group = encode.group == Group::Own;
        let cpu = encode.cpu;
        let wait = async {
            tokio::select! {
                status = child.reap(cpu) => status.map(Ok),
                () = cancel.cancelled() => {
                    stop(&mut child, pid, whole_group, encode.grace, cpu).await.map(|()| Err(End::Stopped))
                }
                () = stalled => {
                    stop(&mut child, pid, whole_group, encode.grace, cpu).await.map(|()| Err(End::Stalled))
                }
            }
        };
        let (encoded_us, stderr_tail, status) = tokio::join!(progress, stderr_tail, wait);
        match status.map_err(SupervisorError::Wait)? {
            Ok(status) => Ok(End::Exited {
                status,
                stderr_tail,
                encoded_us,
            }),
            Err(stopped) => Ok(stopped),
        }
    }
}

/// Stop a child: its whole group ([`stop_group`]) or, in a pipeline's
/// shared group, the child alone (SIGTERM, SIGKILL after `grace`); its
/// CPU time goes to `cpu`.
async fn stop(
    child: &mut Child,
    pid: Option<i32>,
    whole_group: bool,
    grace: Duration,
    cpu: &[Arc<CpuMeter>],
) -> std::io::Result<()> {
    if whole_group {
        return stop_group(child, pid, grace, cpu).await;
    }
    let Some(pid) = pid else {
        return Ok(());
    };
    let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
    if tokio::time::timeout(grace, child.reap(cpu)).await.is_err() {
        child.process.start_kill()?;
        child.reap(cpu).await?;
    }
    Ok(())
}

/// SIGTERM the child's process group, SIGKILL it after `grace`, reap it.
async fn stop_group(
    child: &mut Child,
    pid: Option<i32>,
    grace: Duration,
    cpu: &[Arc<CpuMeter>],
) -> std::io::Result<()> {
    let Some(pid) = pid else {
        return Ok(()); // already reaped
    };
    let group = Pid::from_raw(pid);
    let _ = killpg(group, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.reap(cpu)).await.is_err() {
        let _ = killpg(group, Signal::SIGKILL);
        child.reap(cpu).await?;
    }
    // Anything the child started in its group goes too.
    let _ = killpg(group, Signal::SIGKILL);
    Ok(())
}

/// Lines of a pipe, lossily decoded, each cut at [`MAX_LINE_LEN`] bytes.
/// `None` items stand for lines that were too long and skipped.
fn lines_of(
    pipe: impl AsyncRead + Unpin,
) -> impl futures_util::Stream<Item = Option<String>> + Unpin {
    let codec =
        AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), b"\n".to_vec(), MAX_LINE_LEN);
    FramedRead::new(pipe, codec)
        .take_while(|item| {
            // Read errors other than an over-long line end the stream.
            std::future::ready(!matches!(
                item,
                Err(tokio_util::codec::AnyDelimiterCodecError::Io(_))
            ))
        })
        .map(|item| item.ok().map(|b| String::from_utf8_lossy(&b).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> FfmpegRun<'static> {
        FfmpegRun {
            program: Path::new("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            duration_us: Some(2_000_000),
            grace: Duration::from_millis(300),
            stall_timeout: Some(Duration::from_secs(60)),
            run_as: None,
            inherit: &[],
            stdin: None,
            group: Group::Own,
            cpu: &[],
        }
    }

    #[tokio::test]
    async fn a_processs_cpu_time_goes_to_its_meters_split_evenly() {
        let meters: Vec<Arc<CpuMeter>> = (0..2).map(|_| Arc::default()).collect();
        let busy = "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done";
        let ended = run(
            FfmpegRun {
                cpu: &meters,
                ..sh(busy)
            },
            &CancellationToken::new(),
            |_| async {},
            |_| {},
        )
        .await
        .unwrap();
        assert!(matches!(ended, End::Exited { .. }), "{ended:?}");
        assert!(meters[0].seconds() > 0.02, "{meters:?}");
        assert_eq!(meters[0].seconds(), meters[1].seconds());
        // A stopped process's time is counted too.
        let stopped = Arc::new(CpuMeter::default());
        let cancel = CancellationToken::new();
        let spin = "trap '' TERM; while :; do :; done";
        let stopping = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            cancel.cancel();
        };
        let (end, ()) = tokio::join!(
            run(
                FfmpegRun {
                    cpu: std::slice::from_ref(&stopped),
                    ..sh(spin)
                },
                &cancel,
                |_| async {},
                |_| {}
            ),
            stopping
        );
        assert!(matches!(end.unwrap(), End::Stopped));
        assert!(stopped.seconds() > 0.1, "{stopped:?}");
    }

    #[tokio::test]
    async fn progress_and_a_bounded_stderr_tail_are_collected() {
        let mut seen = Vec::new();
        let script = "for i in $(seq 1 5000); do echo warning $i >&2; done; \
                      printf 'out_time_us=1000000\\nprogress=continue\\n'; \
                      printf 'out_time_us=N/A\\nprogress=end\\n'; exit 3";
        let end = run(
            sh(script),
            &CancellationToken::new(),
            |_| async {},
            |p| seen.push(p),
        )
        .await
        .unwrap();
        let at_one_second = Progress {
            percent: 50.0,
            out_time_us: 1_000_000,
            ..Progress::default()
        };
        assert_eq!(seen, [at_one_second, at_one_second]);
        let End::Exited {
            status,
            stderr_tail,
            encoded_us,
        } = end
        else {
            panic!("not stopped")
        };
        assert_eq!(status.code(), Some(3));
        assert_eq!(encoded_us, Some(1_000_000));
        assert_eq!(stderr_tail.lines().count(), STDERR_TAIL_LINES);
        assert!(stderr_tail.ends_with("warning 5000"));
    }

    #[tokio::test]
    async fn cancel_kills_a_process_that_ignores_sigterm() {
        let cancel = CancellationToken::new();
        let mut pid = None;
        let canceller = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            canceller.cancel();
        });
        let started = std::time::Instant::now();
        let end = run(
            sh("trap '' TERM; sleep 30 & wait; sleep 30"),
            &cancel,
            |id| {
                pid = Some(id);
                async {}
            },
            |_| {},
        )
        .await
        .unwrap();
        assert!(matches!(end, End::Stopped));
        assert!(started.elapsed() < Duration::from_secs(5));
        let identity = pid.expect("spawn reported");
        assert!(!identity.is_alive());
        // The whole group is gone, the background sleep included (a zombie
        // waiting for init to reap it does not count). SIGKILL is delivered
        // at once but a process takes a moment to finish dying: wait for
        // that, with a deadline.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while live_group_members(identity.pid) > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(live_group_members(identity.pid), 0);
    }

    fn live_group_members(pgid: i32) -> usize {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
            .filter(|stat| {
                let rest = &stat[stat.rfind(')').unwrap() + 2..];
                let fields: Vec<&str> = rest.split_whitespace().collect();
                fields[0] != "Z" && fields[2] == pgid.to_string()
            })
            .count()
    }

    #[tokio::test]
    async fn a_process_whose_media_time_stops_advancing_is_stopped_as_stalled() {
        // Reports the same out_time over and over, and ignores SIGTERM.
        let script = "trap '' TERM; while :; do \
                      printf 'out_time_us=5\\nprogress=continue\\n'; sleep 0.05; done";
        let encode = FfmpegRun {
            stall_timeout: Some(Duration::from_millis(400)),
            ..sh(script)
        };
        let started = std::time::Instant::now();
        let end = run(encode, &CancellationToken::new(), |_| async {}, |_| {})
            .await
            .unwrap();
        assert!(matches!(end, End::Stalled), "{end:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let encode = FfmpegRun {
            program: Path::new("/nonexistent/ffmpeg"),
            ..sh("")
        };
        let err = run(encode, &CancellationToken::new(), |_| async {}, |_| {})
            .await
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ffmpeg"), "{err}");
    }
}
