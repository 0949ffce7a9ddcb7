//! The batch's runs (issue 7, part 1): the encodes of one job as a plain
//! loop would run them by hand ([`run_loop`]), the same job through
//! vidvard ([`run_vidvard`]), and what vidvard runs besides
//! ([`probe_cost`]); each run's wall time, CPU time and the control
//! plane's latency meanwhile. Printing is [`crate::batch`]'s.

use crate::accounting::Accounting;
use crate::common;
use crate::daemon::{Client, Daemon, runtime};
use crate::machine::{children_cpu, machine_busy};
use crate::stages::{Observer, Stages};
use crate::{BATCH_SEED, LOAD_POLL};
use anyhow::{Result, ensure};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use vidvar::effects;
use vidvar::ffmpeg::{EncodeSettings, argv};
use vidvar::proto::{JobId, Request};

/// One FFmpeg encode of the batch, as vidvard would run it.
pub struct Encode {
    pub input: PathBuf,
    /// 1-based, as in vidvard's output names.
    pub index: u32,
    pub effects: vidvar::proto::Effects,
}

/// One run of the batch.
#[derive(Clone)]
pub struct BatchRun {
    pub wall: f64,
    pub cpu: f64,
    /// Cores used by other processes on the machine meanwhile.
    pub other: f64,
    pub note: String,
    /// vidvard only: status round trips sampled while it encodes.
    pub status_under_load: Vec<Duration>,
    /// vidvard with [`DaemonSpec::stages`] only: its children's CPU by
    /// stage.
    pub stages: Option<Stages>,
}

impl BatchRun {
    pub fn cores(&self) -> f64 {
        self.cpu / self.wall
    }
}

pub fn encodes(inputs: &[PathBuf], variations: u32) -> Vec<Encode> {
    let mut all = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        for (v, effects) in effects::generate(
            &effects::Ranges::default(),
            BATCH_SEED,
            i as u32,
            variations,
        )
        .expect("the v1 ranges hold enough distinct sets")
        .into_iter()
        .enumerate()
        {
            all.push(Encode {
                input: input.clone(),
                index: v as u32 + 1,
                effects,
            });
        }
    }
    all
}

/// `file:` URL of a path, as a plain loop names its files.
fn path_url(path: &Path) -> OsString {
    let mut url = OsString::from("file:");
    url.push(path);
    url
}

/// The encode of `e` as a person would run it by hand, writing into
/// `out_dir`, with `extra` output options inserted before the output URL:
/// vidvard's pieces of an encode from the library's argv builder (its
/// opening options, `argv::QUIET_ENCODE`; its frame rate, `argv::rate_filter`; its picture, `argv::picture_chain`:
/// the effects, even size, pixel format; its encoders and container,
/// `argv::codec_args`), but none of what vidvard adds for its check
/// (reference pictures, keyframes at the sampled frames), so that the
/// comparison counts the check's whole cost.
fn loop_argv(e: &Encode, out_dir: &Path, extra: &[&str]) -> Vec<OsString> {
    let stem = e.input.file_stem().unwrap_or_default().to_string_lossy();
    let output = out_dir.join(format!("{stem}_v{:02}.mp4", e.index));
    let settings = EncodeSettings::default();
    let rate = settings.frame_rate.expect("the default sets a frame rate");
    let filters = format!(
        "{},{}",
        argv::rate_filter(rate),
        argv::picture_chain(&e.effects)
    );
    let mut args: Vec<OsString> = argv::QUIET_ENCODE
        .iter()
        .chain(&["-y", "-i"])
        .map(OsString::from)
        .collect();
    args.push(path_url(&e.input));
    args.extend(["-map", "0:V:0", "-map", "0:a:0?", "-vf", &filters].map(OsString::from));
    args.extend(argv::codec_args(&settings).into_iter().map(OsString::from));
    args.extend(extra.iter().map(OsString::from));
    args.push(path_url(&output));
    args
}

/// How a plain loop runs the encodes.
#[derive(Clone, Copy)]
pub struct LoopSpec<'a> {
    /// FFmpeg processes at once.
    pub parallel: usize,
    /// Output options inserted before the output URL.
    pub extra: &'a [&'a str],
    /// Run FFmpeg under `nice -n N`.
    pub nice: Option<i32>,
}

/// Run every encode with a plain loop, `spec.parallel` at a time; meanwhile,
/// with `poll`, time a `status` of its job on an idle daemon every
/// [`LOAD_POLL`].
pub fn run_loop(
    all: &[Encode],
    spec: LoopSpec<'_>,
    out_dir: &Path,
    poll: Option<(&Path, JobId)>,
) -> Result<BatchRun> {
    if out_dir.exists() {
        std::fs::remove_dir_all(out_dir)?;
    }
    std::fs::create_dir_all(out_dir)?;
    let argvs: Vec<Vec<OsString>> = all
        .iter()
        .map(|e| loop_argv(e, out_dir, spec.extra))
        .collect();
    let command = |args: &[OsString]| match spec.nice {
        Some(n) => {
            let mut c = Command::new("nice");
            c.arg("-n").arg(n.to_string()).arg("ffmpeg").args(args);
            c
        }
        None => {
            let mut c = Command::new("ffmpeg");
            c.args(args);
            c
        }
    };
    let next = AtomicUsize::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let cpu0 = children_cpu();
    let busy0 = machine_busy();
    let start = Instant::now();
    let (results, polled): (Vec<Result<()>>, _) = std::thread::scope(|scope| {
        let poller = scope.spawn(|| match poll {
            Some((socket, job)) => poll_status(socket, job, &stop),
            None => Ok(Vec::new()),
        });
        let workers: Vec<_> = (0..spec.parallel.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(args) = argvs.get(i) else {
                            return Ok(());
                        };
                        let out = command(args)
                            .stdin(Stdio::null())
                            .stdout(Stdio::null())
                            .stderr(Stdio::piped())
                            .output()?;
                        ensure!(
                            out.status.success(),
                            "ffmpeg failed ({}): {}",
                            out.status,
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                })
            })
            .collect();
        let results = workers.into_iter().map(|w| w.join().unwrap()).collect();
        stop.store(true, Ordering::Relaxed);
        (results, poller.join().expect("status poller"))
    });
    let wall = start.elapsed().as_secs_f64();
    let busy = machine_busy() - busy0;
    let cpu = children_cpu() - cpu0;
    for r in results {
        r?;
    }
    Ok(BatchRun {
        wall,
        cpu,
        other: ((busy - cpu) / wall).max(0.0),
        note: String::new(),
        status_under_load: polled?,
        stages: None,
    })
}

/// How the batch runs through vidvard.
#[derive(Clone, Copy)]
pub struct DaemonSpec<'a> {
    /// `--max-parallel`; `None`: the configuration's, else vidvard's default.
    pub max_parallel: Option<usize>,
    /// The daemon's whole configuration file.
    pub config: &'a str,
    /// Split its children's CPU by stage ([`crate::stages`]; needs root,
    /// for process accounting).
    pub stages: bool,
}

/// Run the batch as one vidvard job: `vidvarctl submit`, `vidvarctl watch`.
pub fn run_vidvard(
    dir: &Path,
    inputs: &[PathBuf],
    variations: u32,
    spec: DaemonSpec<'_>,
) -> Result<BatchRun> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir)?;
    let cpu0 = children_cpu();
    let accounting = spec.stages.then(|| Accounting::start(dir)).transpose()?;
    let daemon = Daemon::start(Daemon::prepare(dir)?, spec.config, spec.max_parallel)?;
    let pid = daemon.pid();
    let observer = spec.stages.then(|| Observer::start(pid));
    let socket = daemon.socket();
    let (n, seed) = (variations.to_string(), BATCH_SEED.to_string());
    let mut submit = vec!["-n", &n, "--seed", &seed, "-o", common::s(&out_dir)];
    submit.extend(inputs.iter().map(|p| common::s(p)));

    let cpu_ctl0 = children_cpu();
    let busy0 = machine_busy();
    let start = Instant::now();
    let job = daemon.env().submit(&submit);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (watch, status_under_load) = std::thread::scope(|scope| {
        let poller = scope.spawn(|| poll_status(&socket, job, &stop));
        let watch = daemon.env().ctl(&["watch", &job.to_string()]);
        stop.store(true, Ordering::Relaxed);
        (watch, poller.join().expect("status poller"))
    });
    let wall = start.elapsed().as_secs_f64();
    let busy = machine_busy() - busy0;
    ensure!(
        watch.status.success(),
        "job {job} did not succeed: {}{}",
        String::from_utf8_lossy(&watch.stdout),
        daemon.log()
    );
    let ctl_cpu = children_cpu() - cpu_ctl0;
    let cpu = daemon.stop()?;
    let stages = match (accounting, observer) {
        (Some(accounting), Some(observer)) => {
            Some(observer.finish(pid, &accounting.finish()?, &cpu))
        }
        _ => None,
    };
    let rusage_daemon = children_cpu() - cpu0 - ctl_cpu;
    let total = cpu.own + cpu.children;
    let outputs = std::fs::read_dir(&out_dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "mp4"))
        .count();
    ensure!(
        outputs == inputs.len() * variations as usize,
        "{outputs} outputs in {}",
        out_dir.display()
    );
    Ok(BatchRun {
        wall,
        cpu: total,
        other: ((busy - total - ctl_cpu) / wall).max(0.0),
        note: format!(
            "daemon {:.2} s + children {:.2} s (/proc); rusage cross-check {:.2} s; vidvarctl {:.2} s",
            cpu.own, cpu.children, rusage_daemon, ctl_cpu
        ),
        status_under_load: status_under_load?,
        stages,
    })
}

/// Time a `status` of `job` every [`LOAD_POLL`] on one connection until
/// `stop` is set: the control plane while FFmpeg keeps the cores busy.
fn poll_status(
    socket: &Path,
    job: JobId,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<Vec<Duration>> {
    runtime()?.block_on(async {
        let mut client = Client::connect(socket).await?;
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            samples.push(client.timed(&Request::Status { job }).await?.0);
            tokio::time::sleep(LOAD_POLL).await;
        }
        Ok(samples)
    })
}

/// What the daemon runs besides the encodes and their checks: one ffprobe
/// per input. Timed sequentially.
pub fn probe_cost(files: &[PathBuf]) -> Result<BatchRun> {
    let cpu0 = children_cpu();
    let start = Instant::now();
    for f in files {
        let mut args = argv::probe(0);
        *args.last_mut().expect("argv ends with the file") = path_url(f);
        let out = Command::new("ffprobe")
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        ensure!(out.status.success(), "ffprobe {} failed", f.display());
    }
    Ok(BatchRun {
        wall: start.elapsed().as_secs_f64(),
        cpu: children_cpu() - cpu0,
        other: 0.0,
        note: String::new(),
        status_under_load: Vec::new(),
        stages: None,
    })
}

pub fn median(mut runs: Vec<BatchRun>) -> BatchRun {
    runs.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    let mid = runs.len() / 2;
    let spread = if runs.len() > 1 {
        format!(
            " (median of {}: {:.1}..{:.1} s)",
            runs.len(),
            runs[0].wall,
            runs[runs.len() - 1].wall
        )
    } else {
        String::new()
    };
    let mut m = runs.swap_remove(mid);
    m.note.push_str(&spread);
    m
}
