//! The benchmark of issue 7: batch throughput, control-plane latency and
//! memory footprint of the real release binaries against real FFmpeg.
//!
//! ```sh
//! cargo bench --bench vidvar_bench                 # full run, several minutes
//! cargo bench --bench vidvar_bench -- --quick      # under a minute
//! cargo bench --bench vidvar_bench -- --help
//! ```
//!
//! Everything happens in a temporary directory: inputs generated with
//! FFmpeg's `testsrc2` and `sine` sources, one `vidvard --foreground` per
//! measurement with its own socket, database and pidfile, and an empty
//! configuration file so no user configuration leaks in. The output is a set
//! of Markdown tables; targets are printed PASS/FAIL, never asserted.
//!
//! 1. **Batch**: one job of M inputs x N variations through vidvard, against
//!    the same encodes as a person would run them (vidvard's effects chain,
//!    from `vidvar::effects::generate` for the job's seed, and encoding
//!    settings, without what vidvard adds for its check) by a plain loop
//!    one at a time and with vidvard's parallelism. CPU time is
//!    user+sys of the children (`getrusage(RUSAGE_CHILDREN)`) for the loops,
//!    and for vidvard its own plus its reaped children's times from
//!    `/proc/PID/stat`, read while it is a zombie after SIGTERM.
//! 2. **Control plane**: round trips on one protocol connection (no process
//!    spawn per call) with 0, 1,000 and 10,000 jobs stored. Stored jobs are
//!    pre-seeded into the database before the daemon starts.
//! 3. **Footprint**: VmRSS of the daemon.
//! 4. **Submit under load**: submit round trips while 8 encodes run and
//!    report progress (target: p99 at most 2 ms). `--vidvard PATH` measures
//!    another build, e.g. an older release, for a before/after figure.

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::{Pid, SysconfVar, sysconf};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vidvar::access::{Judge, Want};
use vidvar::effects;
use vidvar::ffmpeg::{EncodeSettings, RateControl, argv};
use vidvar::proto::codec;
use vidvar::proto::{JobId, JobState, Request, Response, SubmitRequest};

/// The daemon measured unless `--vidvard` names another.
const VIDVARD: &str = env!("CARGO_BIN_EXE_vidvard");
const VIDVARCTL: &str = env!("CARGO_BIN_EXE_vidvarctl");

/// Seed of the batch job; the loops draw the same effects from it.
const BATCH_SEED: u64 = 7;
/// Variations per seeded (pre-stored) job; each has one input.
const SEEDED_VARIATIONS: u32 = 3;
/// Requests sent before a latency series starts, not counted.
const WARMUP: usize = 5;
/// Bytes a submit's commit appends to the WAL: 9 pages of 4 KiB and their
/// frame headers (counted with strace: one fsync per submit).
const COMMIT_BYTES: usize = 9 * (4096 + 24);
/// Niceness of FFmpeg in the study row that lowers its priority.
const STUDY_NICE: i32 = 10;
/// Interval of the status requests sent while the batch is encoded.
const LOAD_POLL: Duration = Duration::from_millis(100);
/// `list` requests sent before the series starts, not counted.
const LIST_WARMUP: usize = 1;

// Issue 7's targets.
const TARGET_SPEEDUP: f64 = 1.25;
/// Issue 13: vidvard's whole overhead over the plain loop with the same
/// parallelism, its check included: 5% on clips shorter than 10 s, 3% on
/// longer ones.
const TARGET_OVERHEAD_PCT_SHORT: f64 = 5.0;
const TARGET_OVERHEAD_PCT: f64 = 3.0;
const TARGET_P50_MS: f64 = 2.0;
const TARGET_LIST_MS: f64 = 30.0;
const TARGET_LIST_JOBS: u32 = 1000;
const TARGET_RSS_MIB: f64 = 25.0;
const TARGET_RSS_JOBS: u32 = 10_000;
/// "Flat": the p50 at the largest store is at most this much above the p50
/// at the smallest, relatively or absolutely (whichever allows more).
const FLAT_REL: f64 = 0.25;
const FLAT_ABS_MS: f64 = 0.25;

/// Benchmark of vidvard (issue 7). Flags go after `--`:
/// `cargo bench --bench vidvar_bench -- --quick`.
#[derive(Parser, Debug)]
#[command(name = "vidvar_bench")]
struct Args {
    /// Small run, under a minute: 2 inputs x 2 variations of 3 s, stores of
    /// 0/100/1000 jobs, fewer samples, no FFmpeg threading study
    #[arg(long)]
    quick: bool,
    /// Input videos of the batch [default: 4, quick 2]
    #[arg(long)]
    inputs: Option<u32>,
    /// Variations per input [default: 5, quick 2]
    #[arg(long)]
    variations: Option<u32>,
    /// Length of each input, seconds [default: 10, quick 3]
    #[arg(long)]
    seconds: Option<f64>,
    /// Size of the inputs
    #[arg(long, default_value = "1280x720")]
    size: String,
    /// Parallelism of vidvard and of the parallel loop [default: vidvard's
    /// own default, the number of CPU cores]
    #[arg(long)]
    max_parallel: Option<usize>,
    /// Runs of each batch row; the median by wall time is reported
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Jobs stored for the control-plane and footprint series, comma
    /// separated [default: 0,1000,10000, quick 0,100,1000]
    #[arg(long, value_delimiter = ',')]
    stores: Option<Vec<u32>>,
    /// Status requests per store size [default: 1000, quick 200]
    #[arg(long)]
    status_samples: Option<usize>,
    /// Submits per store size, each on an idle daemon [default: 100, quick 10]
    #[arg(long)]
    submits: Option<usize>,
    /// Submits per store size sent back to back [default: 50, quick 10]
    #[arg(long)]
    burst: Option<usize>,
    /// List requests per store size [default: 50, quick 10]
    #[arg(long)]
    list_samples: Option<usize>,
    /// Skip the batch throughput runs
    #[arg(long)]
    skip_batch: bool,
    /// Skip the FFmpeg threading study (extra loops with `-threads 1`)
    #[arg(long)]
    skip_study: bool,
    /// Run the FFmpeg threading study even with --quick
    #[arg(long)]
    study: bool,
    /// Skip the control-plane latency series
    #[arg(long)]
    skip_control: bool,
    /// Skip the footprint (RSS) readings
    #[arg(long)]
    skip_footprint: bool,
    /// Skip the submit-under-load series
    #[arg(long)]
    skip_load: bool,
    /// Submits timed while 8 encodes run [default: 200, quick 50]
    #[arg(long)]
    load_submits: Option<usize>,
    /// The vidvard binary to measure [default: this build's]
    #[arg(long, value_name = "PATH")]
    vidvard: Option<PathBuf>,
    /// Parent of the temporary directory [default: $TMPDIR or /tmp]
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the temporary directory (inputs, outputs, databases, daemon logs)
    #[arg(long)]
    keep: bool,
    /// Passed by `cargo bench`; ignored
    #[arg(long, hide = true)]
    bench: bool,
}

/// The settings in force after `--quick` and the explicit flags.
struct Plan {
    inputs: u32,
    variations: u32,
    seconds: f64,
    size: String,
    parallel: usize,
    parallel_is_default: bool,
    repeat: usize,
    stores: Vec<u32>,
    status_samples: usize,
    submits: usize,
    burst: usize,
    list_samples: usize,
    batch: bool,
    study: bool,
    control: bool,
    footprint: bool,
    /// Submits timed under load; `None` skips the series.
    load_submits: Option<usize>,
}

impl Plan {
    fn from(args: &Args) -> Plan {
        let q = args.quick;
        Plan {
            inputs: args.inputs.unwrap_or(if q { 2 } else { 4 }),
            variations: args.variations.unwrap_or(if q { 2 } else { 5 }),
            seconds: args.seconds.unwrap_or(if q { 3.0 } else { 10.0 }),
            size: args.size.clone(),
            parallel: args
                .max_parallel
                .unwrap_or_else(vidvar::config::default_parallelism),
            parallel_is_default: args.max_parallel.is_none(),
            repeat: args.repeat.max(1),
            stores: args.stores.clone().unwrap_or_else(|| {
                if q {
                    vec![0, 100, 1000]
                } else {
                    vec![0, 1000, 10_000]
                }
            }),
            status_samples: args.status_samples.unwrap_or(if q { 200 } else { 1000 }),
            submits: args.submits.unwrap_or(if q { 10 } else { 100 }),
            burst: args.burst.unwrap_or(if q { 10 } else { 50 }),
            list_samples: args.list_samples.unwrap_or(if q { 10 } else { 50 }),
            batch: !args.skip_batch,
            study: !args.skip_batch && !args.skip_study && (!q || args.study),
            control: !args.skip_control,
            footprint: !args.skip_footprint,
            load_submits: (!args.skip_load)
                .then(|| args.load_submits.unwrap_or(if q { 50 } else { 200 })),
        }
    }
}

/// The binary `--vidvard` named, else this build's.
static DAEMON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

fn daemon_binary() -> &'static Path {
    DAEMON.get_or_init(|| PathBuf::from(VIDVARD))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(path) = &args.vidvard {
        DAEMON
            .set(path.clone())
            .expect("set once, before any daemon starts");
    }
    let plan = Plan::from(&args);
    let mut builder = tempfile::Builder::new();
    builder.prefix("vidvar-bench");
    let tmp = match &args.dir {
        Some(dir) => builder.tempdir_in(dir),
        None => builder.tempdir(),
    }
    .context("cannot create the temporary directory")?;
    let root = tmp.path().to_path_buf();
    let mut report = Report::default();

    describe_machine(&root)?;
    if plan.batch {
        batch(&root, &plan, &mut report)?;
    }
    if plan.control || plan.footprint {
        control_and_footprint(&root, &plan, &mut report)?;
    }
    if let Some(submits) = plan.load_submits {
        submit_under_load(&root, submits, &mut report)?;
    }
    report.print_targets();
    if args.keep {
        let kept = tmp.keep();
        println!("\nTemporary directory kept: {}", kept.display());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Machine, clocks, CPU accounting
// ---------------------------------------------------------------------------

fn describe_machine(root: &Path) -> Result<()> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".to_string(), |(_, m)| m.trim().to_string());
    let ffmpeg = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .context("ffmpeg is not on PATH")?;
    let ffmpeg = String::from_utf8_lossy(&ffmpeg.stdout);
    let ffmpeg = ffmpeg.lines().next().unwrap_or("unknown");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("# vidvar benchmark (issue 7)\n");
    println!(
        "- nproc: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("- CPU: {model}");
    println!("- {ffmpeg}");
    println!("- kernel: {}", kernel.trim());
    println!(
        "- temporary directory: {} ({})",
        root.display(),
        filesystem_of(root)
    );
    println!(
        "- load average at start: {}",
        loadavg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}

/// Type and device of the filesystem holding `path`, from /proc/mounts.
fn filesystem_of(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && path.starts_with(f[1]))
                .then(|| (f[1].len(), format!("{} {}", f[2], f[0])))
        })
        .max()
        .map_or("unknown filesystem".into(), |(_, fs)| fs)
}

fn clock_ticks() -> f64 {
    sysconf(SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

/// user + sys seconds of this process's reaped children (and theirs).
fn children_cpu() -> f64 {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    secs(usage.user_time()) + secs(usage.system_time())
}

/// CPU seconds the whole machine spent busy (all but idle and iowait).
fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user)
    let busy: f64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum();
    busy / clock_ticks()
}

/// Fields of `/proc/PID/stat` after the command name, so that index 0 is
/// field 3 (state).
fn proc_stat_fields(pid: i32) -> Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/PID/stat")?;
    Ok(rest.split_whitespace().map(String::from).collect())
}

/// Resident set size (VmRSS) and its peak (VmHWM) of `pid`, MiB.
fn rss_mib(pid: i32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> Result<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("no {key} in /proc/{pid}/status"))
    };
    Ok((kib("VmRSS:")? / 1024.0, kib("VmHWM:")? / 1024.0))
}

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------

/// A clip made by FFmpeg's `testsrc2` (and `sine` when `audio_hz` is set),
/// H.264 (libx264 `veryfast`) in MP4.
fn make_video(path: &Path, seconds: f64, size: &str, audio_hz: Option<u32>) -> Result<()> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=30:duration={seconds}"));
    if let Some(hz) = audio_hz {
        cmd.args(["-f", "lavfi", "-i"])
            .arg(format!("sine=frequency={hz}:duration={seconds}"))
            .args(["-c:a", "aac", "-shortest"]);
    }
    cmd.args([
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
    ])
    .arg(path);
    let out = cmd.output().context("cannot run ffmpeg")?;
    ensure!(
        out.status.success(),
        "ffmpeg could not make {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// The daemon
// ---------------------------------------------------------------------------

/// A `vidvard --foreground` on its own socket, database and pidfile below
/// `dir`. Killed on drop unless stopped.
struct Daemon {
    child: Option<Child>,
    pid: i32,
    dir: PathBuf,
}

/// CPU seconds of a stopped daemon, from `/proc/PID/stat` while a zombie.
struct DaemonCpu {
    own: f64,
    children: f64,
}

impl Daemon {
    fn socket(dir: &Path) -> PathBuf {
        dir.join("run/vidvard.sock")
    }

    fn state_dir(dir: &Path) -> PathBuf {
        dir.join("state")
    }

    fn database(dir: &Path) -> PathBuf {
        Daemon::state_dir(dir).join(vidvar::paths::DATABASE_NAME)
    }

    /// Start it and wait until a protocol handshake succeeds.
    fn start(dir: &Path, max_parallel: Option<usize>) -> Result<Daemon> {
        std::fs::create_dir_all(dir)?;
        let config = dir.join("vidvard.conf");
        std::fs::write(&config, "")?;
        let log = std::fs::File::create(dir.join("vidvard.log"))?;
        let mut cmd = Command::new(daemon_binary());
        cmd.arg("--foreground")
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(Daemon::socket(dir))
            .arg("--state-dir")
            .arg(Daemon::state_dir(dir))
            .arg("--pidfile")
            .arg(dir.join("run/vidvard.pid"));
        if let Some(n) = max_parallel {
            cmd.arg("--max-parallel").arg(n.to_string());
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start vidvard")?;
        let mut daemon = Daemon {
            pid: child.id() as i32,
            child: Some(child),
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let rt = runtime()?;
        loop {
            if let Some(status) = daemon.child.as_mut().unwrap().try_wait()? {
                bail!("vidvard exited at start ({status}): {}", daemon.log());
            }
            if rt.block_on(Client::connect(&Daemon::socket(dir))).is_ok() {
                return Ok(daemon);
            }
            ensure!(
                Instant::now() < deadline,
                "vidvard did not answer: {}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("vidvard.log")).unwrap_or_default()
    }

    fn rss(&self) -> Result<(f64, f64)> {
        rss_mib(self.pid)
    }

    /// SIGTERM, wait until it has exited, read its CPU times while it is a
    /// zombie (its own, and its reaped children's: FFmpeg and ffprobe),
    /// then reap it.
    fn stop(mut self) -> Result<DaemonCpu> {
        // On an error below, Drop kills and reaps the process.
        let pid = Pid::from_raw(self.pid);
        kill(pid, Signal::SIGTERM)?;
        waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)?;
        let f = proc_stat_fields(self.pid)?;
        let field = |n: usize| -> Result<f64> {
            // n is the proc(5) field number; index 0 is field 3.
            Ok(f.get(n - 3).context("short stat")?.parse::<f64>()? / clock_ticks())
        };
        let cpu = DaemonCpu {
            own: field(14)? + field(15)?,
            children: field(16)? + field(17)?,
        };
        let status = self.child.take().expect("running").wait()?;
        ensure!(
            status.success(),
            "vidvard exited with {status}: {}",
            self.log()
        );
        Ok(cpu)
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

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// One protocol connection, built from the library's codec.
/// The library's client, with the benchmark's conveniences.
struct Client {
    inner: vidvar::client::Client,
}

impl Client {
    async fn connect(socket: &Path) -> Result<Client> {
        let trusted = vidvar::client::Trusted::new(vidvar::paths::SERVICE_USER);
        let inner = vidvar::client::Client::connect(socket, &trusted, "vidvar_bench").await?;
        Ok(Client { inner })
    }

    async fn call(&mut self, request: &Request) -> Result<Response> {
        match self.inner.request(request).await? {
            Response::Error(err) => bail!("{request:?} failed: {err}"),
            response => Ok(response),
        }
    }

    /// `call`, timed from sending to having decoded the answer.
    async fn timed(&mut self, request: &Request) -> Result<(Duration, Response)> {
        let start = Instant::now();
        let response = self.call(request).await?;
        Ok((start.elapsed(), response))
    }

    async fn submit(&mut self, req: SubmitRequest) -> Result<(Duration, JobId)> {
        match self.timed(&Request::Submit(req)).await? {
            (t, Response::Submitted { job }) => Ok((t, job)),
            (_, other) => bail!("unexpected answer to submit: {other:?}"),
        }
    }

    async fn state(&mut self, job: JobId) -> Result<JobState> {
        match self.call(&Request::Status { job }).await? {
            Response::Job(detail) => Ok(detail.summary.state),
            other => bail!("unexpected answer to status: {other:?}"),
        }
    }

    /// Poll every 5 ms until the job is final; returns its state.
    async fn wait_final(&mut self, job: JobId) -> Result<JobState> {
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

// ---------------------------------------------------------------------------
// 1. Batch throughput
// ---------------------------------------------------------------------------

/// One FFmpeg encode of the batch, as vidvard would run it.
struct Encode {
    input: PathBuf,
    /// 1-based, as in vidvard's output names.
    index: u32,
    effects: vidvar::proto::Effects,
}

/// One run of the batch.
#[derive(Clone)]
struct BatchRun {
    wall: f64,
    cpu: f64,
    /// Cores used by other processes on the machine meanwhile.
    other: f64,
    note: String,
    /// vidvard only: status round trips sampled while it encodes.
    status_under_load: Vec<Duration>,
}

impl BatchRun {
    fn cores(&self) -> f64 {
        self.cpu / self.wall
    }
}

fn encodes(inputs: &[PathBuf], variations: u32) -> Vec<Encode> {
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
/// vidvard's effects (`argv::effects_chain`) and encoding settings, the
/// same frame rate, even size and pixel format, but none of what vidvard
/// adds for its check (reference pictures, keyframes at the sampled
/// frames), so that the comparison counts the check's whole cost.
fn loop_argv(e: &Encode, out_dir: &Path, extra: &[&str]) -> Vec<OsString> {
    let stem = e.input.file_stem().unwrap_or_default().to_string_lossy();
    let output = out_dir.join(format!("{stem}_v{:02}.mp4", e.index));
    let settings = EncodeSettings::default();
    let RateControl::BitrateKbps(kbps) = settings.rate else {
        unreachable!("the default rate control is a bitrate")
    };
    let rate = settings.frame_rate.expect("the default sets a frame rate");
    let filters = format!(
        "fps={rate}:start_time=0,{},scale='max(2,trunc(iw/2)*2)':'max(2,trunc(ih/2)*2)',\
         format=yuv420p",
        argv::effects_chain(&e.effects)
    );
    let mut args: Vec<OsString> = ["-hide_banner", "-nostdin", "-nostats", "-loglevel"]
        .iter()
        .map(OsString::from)
        .collect();
    args.extend(["warning", "-y", "-i"].iter().map(OsString::from));
    args.push(path_url(&e.input));
    args.extend(
        [
            "-map",
            "0:V:0",
            "-map",
            "0:a:0?",
            "-vf",
            &filters,
            "-c:v",
            &settings.video_codec,
            "-preset",
            &settings.preset,
            "-b:v",
            &format!("{kbps}k"),
            "-c:a",
            &settings.audio_codec,
            "-f",
            "mp4",
        ]
        .iter()
        .map(OsString::from),
    );
    args.extend(extra.iter().map(OsString::from));
    args.push(path_url(&output));
    args
}

/// How a plain loop runs the encodes.
#[derive(Clone, Copy)]
struct LoopSpec<'a> {
    /// FFmpeg processes at once.
    parallel: usize,
    /// Output options inserted before the output URL.
    extra: &'a [&'a str],
    /// Run FFmpeg under `nice -n N`.
    nice: Option<i32>,
}

/// Run every encode with a plain loop, `spec.parallel` at a time; meanwhile
/// time a `status` of `poll`'s job on an idle daemon every [`LOAD_POLL`].
fn run_loop(
    all: &[Encode],
    spec: LoopSpec<'_>,
    out_dir: &Path,
    poll: (&Path, JobId),
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
        let poller = scope.spawn(|| poll_status(poll.0, poll.1, &stop));
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
    })
}

/// Run the batch as one vidvard job: `vidvarctl submit`, `vidvarctl watch`.
fn run_vidvard(
    dir: &Path,
    inputs: &[PathBuf],
    variations: u32,
    max_parallel: Option<usize>,
) -> Result<BatchRun> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir)?;
    let cpu0 = children_cpu();
    let daemon = Daemon::start(dir, max_parallel)?;
    let socket = Daemon::socket(dir);
    let ctl = |args: &[OsString]| -> Result<std::process::Output> {
        Ok(Command::new(VIDVARCTL)
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .stdin(Stdio::null())
            .output()?)
    };
    let mut submit: Vec<OsString> = vec![
        "submit".into(),
        "-n".into(),
        variations.to_string().into(),
        "--seed".into(),
        BATCH_SEED.to_string().into(),
        "-o".into(),
        out_dir.clone().into(),
    ];
    submit.extend(inputs.iter().map(OsString::from));

    let cpu_ctl0 = children_cpu();
    let busy0 = machine_busy();
    let start = Instant::now();
    let out = ctl(&submit)?;
    ensure!(
        out.status.success(),
        "submit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let job_id: JobId = job.parse().context("submit printed no job id")?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (watch, status_under_load) = std::thread::scope(|scope| {
        let poller = scope.spawn(|| poll_status(&socket, job_id, &stop));
        let watch = ctl(&["watch".into(), job.clone().into()]);
        stop.store(true, Ordering::Relaxed);
        (watch, poller.join().expect("status poller"))
    });
    let watch = watch?;
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
fn probe_cost(files: &[PathBuf]) -> Result<BatchRun> {
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
    })
}

fn median(mut runs: Vec<BatchRun>) -> BatchRun {
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

fn batch(root: &Path, plan: &Plan, report: &mut Report) -> Result<()> {
    let dir = root.join("batch");
    let input_dir = dir.join("inputs");
    std::fs::create_dir_all(&input_dir)?;
    let inputs: Vec<PathBuf> = (1..=plan.inputs)
        .map(|i| input_dir.join(format!("in{i}.mp4")))
        .collect();
    eprintln!(
        "[batch] making {} input(s) of {} s {} ...",
        plan.inputs, plan.seconds, plan.size
    );
    for (i, input) in inputs.iter().enumerate() {
        make_video(input, plan.seconds, &plan.size, Some(440 + 110 * i as u32))?;
    }
    let all = encodes(&inputs, plan.variations);
    let p = plan.parallel;
    let daemon_parallel = (!plan.parallel_is_default).then_some(p);
    const THREADS_1: &[&str] = &["-threads", "1", "-filter_threads", "1"];
    let plain = |parallel| LoopSpec {
        parallel,
        extra: &[],
        nice: None,
    };
    // An idle daemon with one finished job, asked for its status while the
    // loops run: what FFmpeg's CPU load alone does to the control plane.
    let idle_dir = dir.join("idle-daemon");
    seed_store(&Daemon::database(&idle_dir), 1)?;
    let idle = Daemon::start(&idle_dir, None)?;
    let idle_socket = Daemon::socket(&idle_dir);
    let poll = (idle_socket.as_path(), 1);

    struct Row {
        label: String,
        parallel: usize,
        runs: Vec<BatchRun>,
    }
    type RunFn<'a> = Box<dyn Fn() -> Result<BatchRun> + 'a>;
    let mut kinds: Vec<(String, usize, RunFn)> = vec![
        (
            "plain loop, one at a time".into(),
            1,
            Box::new(|| run_loop(&all, plain(1), &dir.join("loop-1"), poll)),
        ),
        (
            format!("plain loop, {p} at a time"),
            p,
            Box::new(|| run_loop(&all, plain(p), &dir.join("loop-p"), poll)),
        ),
        (
            "vidvard (one job, submit + watch)".into(),
            p,
            Box::new(|| {
                run_vidvard(
                    &dir.join("vidvard"),
                    &inputs,
                    plan.variations,
                    daemon_parallel,
                )
            }),
        ),
    ];
    if plan.study {
        kinds.push((
            "study: loop, one at a time, -threads 1 -filter_threads 1".into(),
            1,
            Box::new(|| {
                let spec = LoopSpec {
                    extra: THREADS_1,
                    ..plain(1)
                };
                run_loop(&all, spec, &dir.join("study-1"), poll)
            }),
        ));
        kinds.push((
            format!("study: loop, {p} at a time, -threads 1 -filter_threads 1"),
            p,
            Box::new(|| {
                let spec = LoopSpec {
                    extra: THREADS_1,
                    ..plain(p)
                };
                run_loop(&all, spec, &dir.join("study-p"), poll)
            }),
        ));
        kinds.push((
            format!("study: loop, {p} at a time, FFmpeg under nice -n {STUDY_NICE}"),
            p,
            Box::new(|| {
                let spec = LoopSpec {
                    nice: Some(STUDY_NICE),
                    ..plain(p)
                };
                run_loop(&all, spec, &dir.join("study-nice"), poll)
            }),
        ));
    }
    let mut rows: Vec<Row> = kinds
        .iter()
        .map(|(label, parallel, _)| Row {
            label: label.clone(),
            parallel: *parallel,
            runs: Vec::new(),
        })
        .collect();
    for round in 0..plan.repeat {
        for (i, (label, _, run)) in kinds.iter().enumerate() {
            eprintln!(
                "[batch] round {} of {}: {label} ...",
                round + 1,
                plan.repeat
            );
            let r = run()?;
            eprintln!(
                "[batch]   wall {:.2} s, CPU {:.2} s, other load {:.2} cores",
                r.wall, r.cpu, r.other
            );
            rows[i].runs.push(r);
        }
    }
    drop(kinds);
    idle.stop()?;
    // Ratios within each round (the rows of one round ran minutes apart, not
    // hours), then their median: less exposed to a machine whose load drifts.
    let paired = |f: &dyn Fn(&BatchRun, &BatchRun, &BatchRun) -> f64| -> (f64, Vec<f64>) {
        let mut per_round: Vec<f64> = (0..plan.repeat)
            .map(|i| f(&rows[0].runs[i], &rows[1].runs[i], &rows[2].runs[i]))
            .collect();
        let listed = per_round.clone();
        per_round.sort_by(f64::total_cmp);
        (per_round[per_round.len() / 2], listed)
    };
    let (speedup, speedups) = paired(&|seq, _, vid| seq.wall / vid.wall);
    let (overhead, overheads) = paired(&|_, par, vid| (vid.wall / par.wall - 1.0) * 100.0);
    let (cpu_overhead, _) = paired(&|_, par, vid| (vid.cpu / par.cpu - 1.0) * 100.0);
    let results: Vec<(String, usize, BatchRun)> = rows
        .into_iter()
        .map(|r| (r.label, r.parallel, median(r.runs)))
        .collect();
    let seq = results[0].2.clone();
    let par = results[1].2.clone();

    let files = &inputs;
    let probes = probe_cost(files)?;

    println!(
        "\n## Batch throughput\n\n{} input(s) x {} variation(s) = {} encodes; inputs {} s {} \
         testsrc2 + sine (AAC), H.264 veryfast; vidvard's argv (libx264 ultrafast 2000k, \
         29.97 fps, AAC). Parallelism {p}{}. CPU = user+sys of the FFmpeg processes (and of \
         vidvard). \"Other load\" = cores used meanwhile by processes outside this benchmark \
         (from /proc/stat); anything above ~0.05 means a noisy machine.\n",
        plan.inputs,
        plan.variations,
        all.len(),
        plan.seconds,
        plan.size,
        if plan.parallel_is_default {
            " (vidvard's default: CPU cores)"
        } else {
            " (--max-parallel)"
        }
    );
    let mut table = Table::new(&[
        "run",
        "parallel",
        "wall s",
        "CPU s",
        "cores busy",
        "other load",
        "speedup vs one at a time",
    ]);
    for (label, parallel, r) in &results {
        table.row(vec![
            label.clone(),
            parallel.to_string(),
            format!("{:.2}", r.wall),
            format!("{:.2}", r.cpu),
            format!("{:.2}", r.cores()),
            format!("{:.2}", r.other),
            format!("{:.2}x", seq.wall / r.wall),
        ]);
    }
    table.print();
    for (label, _, r) in &results {
        if !r.note.is_empty() {
            println!("- {label}: {}", r.note);
        }
    }
    if plan.repeat > 1 {
        let list = |v: &[f64], unit: &str| {
            v.iter()
                .map(|x| format!("{x:.2}{unit}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "- per round: vidvard vs one at a time {}; vidvard vs {p} at a time {} (the \
             ratios below and the targets take the median of these paired ratios)",
            list(&speedups, "x"),
            list(&overheads, "%")
        );
    }
    println!(
        "- vidvard vs one at a time: {speedup:.2}x; vidvard vs {p} at a time: {overhead:+.1}% \
         wall, {cpu_overhead:+.1}% CPU"
    );
    println!(
        "- FFmpeg alone: one encode at a time keeps {:.2} cores busy; {p} at a time {:.2} \
         ({:.2}x the throughput of one at a time)",
        seq.cores(),
        par.cores(),
        seq.wall / par.wall
    );
    println!(
        "- vidvard's extra processes: {} ffprobe runs (one per input) take {:.2} s wall / \
         {:.2} s CPU one after another ({:.1}% of the {p}-at-a-time loop's wall if spread over \
         {p} slots); besides, one check (an FFmpeg run) per output, and the encodes write \
         reference pictures of their sampled frames and make those frames keyframes",
        files.len(),
        probes.wall,
        probes.cpu,
        probes.wall / p as f64 / par.wall * 100.0
    );
    println!(
        "- vidvard's wall time ends when `vidvarctl watch` returns: the server sends a job's \
         final state as soon as it is recorded."
    );
    println!(
        "\nControl plane under load: a `status` round trip every {} ms on one protocol \
         connection during each run; for the loops to an idle vidvard holding one finished job \
         (so only FFmpeg's CPU load acts on it), for vidvard to the daemon doing the work. ms:\n",
        LOAD_POLL.as_millis()
    );
    let mut table = Table::new(&["during", "status p50", "p99", "max", "requests"]);
    for (label, _, r) in &results {
        let s = &r.status_under_load;
        table.row(vec![
            label.clone(),
            format!("{:.2}", percentile(s, 50.0)),
            format!("{:.2}", percentile(s, 99.0)),
            format!("{:.2}", percentile(s, 100.0)),
            s.len().to_string(),
        ]);
    }
    table.print();
    report.target(
        format!("batch throughput >= {TARGET_SPEEDUP}x the one-at-a-time loop"),
        format!("{speedup:.2}x"),
        speedup >= TARGET_SPEEDUP,
    );
    let allowed = if plan.seconds < 10.0 {
        TARGET_OVERHEAD_PCT_SHORT
    } else {
        TARGET_OVERHEAD_PCT
    };
    report.target(
        format!(
            "batch ({} s clips, check included) within {allowed}% of the {p}-at-a-time loop",
            plan.seconds
        ),
        format!("{overhead:+.1}%"),
        overhead <= allowed,
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 2 and 3. Control plane and footprint
// ---------------------------------------------------------------------------

/// Insert `jobs` finished jobs (one input, [`SEEDED_VARIATIONS`] verified
/// outputs each) into a new database with the schema of this build, the way
/// the store would have left them. The daemon is not running yet.
fn seed_store(db: &Path, jobs: u32) -> Result<()> {
    std::fs::create_dir_all(db.parent().unwrap())?;
    drop(vidvar::queue::sqlite::Store::open(db)?); // creates the schema
    if jobs == 0 {
        return Ok(());
    }
    let mut conn = rusqlite::Connection::open(db)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let tx = conn.transaction()?;
    {
        let mut job = tx.prepare(
            "INSERT INTO jobs (state, variations, seed, output_dir, created_at, finished_at)
             VALUES ('succeeded', ?1, ?2, '/bench/out', ?3, ?4)",
        )?;
        let mut file = tx.prepare(
            "INSERT INTO files (job_id, idx, path, state, probed, duration_us, progress)
             VALUES (?1, 0, ?2, 'succeeded', 1, 10000000, 100)",
        )?;
        let mut variation = tx.prepare(
            "INSERT INTO variations (file_id, idx, rotation, brightness, contrast, saturation,
                                     state, output_path, size_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'succeeded', ?7, 2500000)",
        )?;
        for j in 0..jobs {
            let created = now - i64::from(jobs - j) * 60;
            job.execute(rusqlite::params![
                SEEDED_VARIATIONS,
                i64::from(j),
                created,
                created + 30
            ])?;
            let job_id = tx.last_insert_rowid();
            file.execute(rusqlite::params![job_id, format!("/bench/in/clip{j}.mp4")])?;
            let file_id = tx.last_insert_rowid();
            for (v, e) in effects::generate(
                &effects::Ranges::default(),
                u64::from(j),
                0,
                SEEDED_VARIATIONS,
            )
            .expect("the v1 ranges hold enough distinct sets")
            .iter()
            .enumerate()
            {
                variation.execute(rusqlite::params![
                    file_id,
                    v as i64 + 1,
                    e.rotation,
                    e.brightness,
                    e.contrast,
                    e.saturation,
                    format!("/bench/out/clip{j}_v{:02}.mp4", v + 1)
                ])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// What one durable SQLite commit cannot beat on this disk: write
/// [`COMMIT_BYTES`] (about what a submit appends to the WAL) into a reused
/// 4 MiB file beside the database and `fsync` it.
struct FsyncFloor {
    file: std::fs::File,
    path: PathBuf,
    block: Vec<u8>,
    next: usize,
}

impl FsyncFloor {
    const REGION: usize = 4 << 20;

    fn new(dir: &Path) -> Result<FsyncFloor> {
        use std::os::unix::fs::FileExt;
        let path = dir.join("fsync-floor.bin");
        let file = std::fs::File::create(&path)?;
        file.write_all_at(&vec![0u8; FsyncFloor::REGION], 0)?;
        file.sync_all()?;
        Ok(FsyncFloor {
            file,
            path,
            block: vec![0x5a; COMMIT_BYTES],
            next: 0,
        })
    }

    /// One write and the time its fsync takes.
    fn sample(&mut self) -> Result<Duration> {
        use std::os::unix::fs::FileExt;
        self.file.write_all_at(&self.block, self.next as u64)?;
        self.next = (self.next + COMMIT_BYTES) % (FsyncFloor::REGION - COMMIT_BYTES);
        let start = Instant::now();
        self.file.sync_all()?;
        Ok(start.elapsed())
    }
}

impl Drop for FsyncFloor {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `path` vetted as the daemon vets a submission of its own user's.
fn vet(path: &Path, want: Want) -> Result<vidvar::access::vetted::Vetted> {
    Ok(vidvar::access::vetted::vet(path, &Judge::Daemon, want)?.vetted())
}

/// The library's own store on a scratch database beside the daemon's: what
/// a submit's `Store::create_job` costs without socket, runtime or daemon.
struct ScratchStore {
    store: vidvar::queue::sqlite::Store,
    dir: PathBuf,
    job: vidvar::queue::NewJob,
}

impl ScratchStore {
    fn new(state_dir: &Path, input: &Path, out_dir: &Path) -> Result<ScratchStore> {
        let dir = state_dir.join("scratch");
        std::fs::create_dir_all(&dir)?;
        Ok(ScratchStore {
            store: vidvar::queue::sqlite::Store::open(&dir.join("scratch.db"))?,
            dir,
            job: vidvar::queue::NewJob {
                seed: 1,
                output_dir: (out_dir.to_path_buf(), vet(out_dir, Want::CreateIn)?),
                variations: 1,
                inputs: vec![(
                    input.to_path_buf(),
                    vet(input, Want::Read)?,
                    effects::generate(&effects::Ranges::default(), 1, 0, 1)
                        .expect("one set always fits"),
                )],
                created_at: 0,
                priority: 0,
                labels: Vec::new(),
                owner: vidvar::job::Credentials {
                    uid: 0,
                    gid: 0,
                    groups: vec![],
                },
            },
        })
    }

    fn sample(&mut self) -> Result<Duration> {
        let start = Instant::now();
        self.store.create_job(&self.job)?;
        Ok(start.elapsed())
    }
}

impl Drop for ScratchStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Encodes running while submits are timed in [`submit_under_load`].
const LOAD_ENCODES: usize = 8;
/// The submit p99 target under load, milliseconds.
const LOAD_P99_TARGET_MS: f64 = 2.0;

/// Submit round trips (a 1-input, 1-variation job each, on one protocol
/// connection) while [`LOAD_ENCODES`] encodes of a long clip run and
/// report progress every second.
fn submit_under_load(root: &Path, submits: usize, report: &mut Report) -> Result<()> {
    let dir = root.join("load");
    let daemon = Daemon::start(&dir, Some(LOAD_ENCODES))?;
    let (long, tiny, out) = (dir.join("long.mp4"), dir.join("tiny.mp4"), dir.join("out"));
    make_video(&long, 120.0, "640x360", Some(440))?;
    make_video(&tiny, 0.2, "64x64", None)?;
    std::fs::create_dir_all(&out)?;
    let samples = runtime()?.block_on(async {
        let mut client = Client::connect(&Daemon::socket(&dir)).await?;
        let job = |input: &Path, variations| SubmitRequest {
            priority: 0,
            labels: Vec::new(),
            inputs: vec![input.to_path_buf()],
            variations,
            seed: None,
            output_dir: out.clone(),
        };
        let (_, busy) = client.submit(job(&long, LOAD_ENCODES as u32)).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let Response::Pong(pong) = client.call(&Request::Ping).await? else {
                bail!("unexpected answer to ping");
            };
            if pong.running_processes as usize >= LOAD_ENCODES {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{LOAD_ENCODES} encodes did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut samples = Vec::with_capacity(submits);
        for _ in 0..WARMUP + submits {
            samples.push(client.submit(job(&tiny, 1)).await?.0);
        }
        client.call(&Request::Cancel { job: busy }).await?;
        Ok(samples.split_off(WARMUP))
    })?;
    drop(daemon);
    let (p50, p99) = (percentile(&samples, 50.0), percentile(&samples, 99.0));
    println!(
        "\n## Submit under load\n\n{} submits while {LOAD_ENCODES} encodes run and report \
         progress ({}): p50 {p50:.3} ms, p99 {p99:.3} ms, max {:.3} ms.",
        samples.len(),
        daemon_binary().display(),
        percentile(&samples, 100.0)
    );
    report.target(
        format!("submit p99 while {LOAD_ENCODES} encodes run <= {LOAD_P99_TARGET_MS} ms"),
        format!("p50 {p50:.3} ms, p99 {p99:.3} ms"),
        p99 <= LOAD_P99_TARGET_MS,
    );
    Ok(())
}

/// Nearest-rank percentile `p` (0..=100) of `samples`, milliseconds.
fn percentile(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted: Vec<f64> = samples.iter().copied().map(ms).collect();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Figures for one store size.
#[derive(Default)]
struct Level {
    jobs: u32,
    submit: Vec<Duration>,
    burst: Vec<Duration>,
    status: Vec<Duration>,
    /// What the status requests asked for.
    status_of: &'static str,
    list: Vec<Duration>,
    list_bytes: usize,
    failed_jobs: usize,
    rss_idle: Option<(f64, f64)>,
    rss_after_list: Option<(f64, f64)>,
    rss_end: Option<(f64, f64)>,
    db_bytes: u64,
    /// The disk's floor for one durable commit, measured beside the database.
    fsync: Vec<Duration>,
    /// The store's `create_job` alone, in this process, on a scratch database.
    create_job: Vec<Duration>,
}

fn control_and_footprint(root: &Path, plan: &Plan, report: &mut Report) -> Result<()> {
    let dir = root.join("control");
    std::fs::create_dir_all(&dir)?;
    let tiny = dir.join("tiny.mp4");
    make_video(&tiny, 0.2, "64x64", None)?;
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir)?;
    let rt = runtime()?;
    let mut levels = Vec::new();
    for &jobs in &plan.stores {
        eprintln!("[control] {jobs} jobs stored ...");
        let ddir = dir.join(format!("store-{jobs}"));
        seed_store(&Daemon::database(&ddir), jobs)?;
        let daemon = Daemon::start(&ddir, None)?;
        let level = rt.block_on(measure_level(
            &daemon,
            jobs,
            plan,
            &tiny,
            &out_dir,
            &Daemon::socket(&ddir),
        ))?;
        daemon.stop()?;
        levels.push(level);
    }
    if plan.control {
        print_control(plan, &levels, report);
    }
    if plan.footprint {
        print_footprint(&levels, report);
    }
    Ok(())
}

async fn measure_level(
    daemon: &Daemon,
    jobs: u32,
    plan: &Plan,
    tiny: &Path,
    out_dir: &Path,
    socket: &Path,
) -> Result<Level> {
    let mut level = Level {
        jobs,
        ..Level::default()
    };
    // Let the runtime settle before the idle reading.
    tokio::time::sleep(Duration::from_millis(200)).await;
    level.rss_idle = Some(daemon.rss()?);
    let mut client = Client::connect(socket).await?;

    if jobs > 0 {
        for i in 0..LIST_WARMUP + plan.list_samples {
            let first_page = Request::List(vidvar::proto::ListRequest {
                state: None,
                label: None,
                after: 0,
                limit: vidvar::proto::MAX_PAGE,
            });
            let (t, response) = client.timed(&first_page).await?;
            let Response::Jobs(page) = &response else {
                bail!("unexpected answer to list");
            };
            let expected = (jobs as usize).min(vidvar::proto::MAX_PAGE as usize);
            ensure!(
                page.jobs.len() == expected,
                "list gave {} jobs",
                page.jobs.len()
            );
            if i >= LIST_WARMUP {
                level.list.push(t);
            }
            level.list_bytes = codec::encode(&response)?.len();
        }
        level.rss_after_list = Some(daemon.rss()?);
        if plan.control {
            level.status_of = "seeded jobs, spread over the store";
            for i in 0..WARMUP + plan.status_samples {
                // A stride through all ids, so the reads are not all cached
                // neighbours.
                let job = 1 + (i as i64 * 7919) % i64::from(jobs);
                let (t, _) = client.timed(&Request::Status { job }).await?;
                if i >= WARMUP {
                    level.status.push(t);
                }
            }
        }
    }
    if !plan.control {
        return Ok(level);
    }
    let mut floor = FsyncFloor::new(&Daemon::state_dir(&daemon.dir))?;
    let mut scratch = ScratchStore::new(&Daemon::state_dir(&daemon.dir), tiny, out_dir)?;
    let request = || SubmitRequest {
        priority: 0,
        labels: Vec::new(),
        inputs: vec![tiny.to_path_buf()],
        variations: 1,
        seed: None,
        output_dir: out_dir.to_path_buf(),
    };
    // Submits on an idle daemon: each job (probe, encode, verify of a 0.2 s
    // 64x64 clip) finishes before the next submit.
    let mut submitted = Vec::new();
    for i in 0..WARMUP + plan.submits {
        // The disk floor, sampled just before each submit, so both see the
        // same disk.
        let fsync = floor.sample()?;
        let commit = scratch.sample()?;
        let (t, job) = client.submit(request()).await?;
        if client.wait_final(job).await? != JobState::Succeeded {
            level.failed_jobs += 1;
        }
        if i >= WARMUP {
            level.submit.push(t);
            level.fsync.push(fsync);
            level.create_job.push(commit);
        }
        submitted.push(job);
    }
    if jobs == 0 {
        level.status_of = "the submitted jobs";
        for i in 0..WARMUP + plan.status_samples {
            let job = submitted[i % submitted.len()];
            let (t, _) = client.timed(&Request::Status { job }).await?;
            if i >= WARMUP {
                level.status.push(t);
            }
        }
    }
    // Submits back to back while the daemon works on the earlier ones.
    let mut burst = Vec::new();
    for _ in 0..plan.burst {
        let (t, job) = client.submit(request()).await?;
        level.burst.push(t);
        burst.push(job);
    }
    for job in burst {
        if client.wait_final(job).await? != JobState::Succeeded {
            level.failed_jobs += 1;
        }
    }
    level.rss_end = Some(daemon.rss()?);
    level.db_bytes = std::fs::metadata(Daemon::database(&daemon.dir))?.len();
    Ok(level)
}

fn flat(p50s: &[f64]) -> bool {
    let (Some(first), Some(last)) = (p50s.first(), p50s.last()) else {
        return false;
    };
    *last <= first + (first * FLAT_REL).max(FLAT_ABS_MS)
}

fn print_control(plan: &Plan, levels: &[Level], report: &mut Report) {
    println!(
        "\n## Control plane\n\nRound trips on one protocol connection (library codec over the \
         Unix socket, no process per call), from sending the request to having decoded the \
         answer; {WARMUP} warm-up requests per series not counted. Stored jobs are pre-seeded \
         into the database before the daemon starts: finished jobs of 1 input x \
         {SEEDED_VARIATIONS} verified outputs, inserted with rusqlite into the schema this build \
         creates. Submits send a real 0.2 s 64x64 clip with -n 1: \"idle\" waits for each job to \
         finish (probe, encode, verify) before the next submit, so no FFmpeg runs during the \
         measured round trip; \"busy\" sends {} submits back to back while the daemon works on \
         them. Status asks for one job. \"create_job alone\" is the library's \
         `Store::create_job` for the same job on a scratch database beside the daemon's, in \
         this process; \"disk fsync\" is the floor of one durable commit on \
         this disk: a write of {COMMIT_BYTES} bytes and its fsync; both are sampled just before \
         each idle submit (a submit is one SQLite transaction with \
         synchronous=FULL: one fsync). \
         All figures in ms.\n",
        plan.burst
    );
    let mut table = Table::new(&[
        "jobs stored",
        "submit idle p50",
        "p99",
        "submit busy p50",
        "p99",
        "status p50",
        "p99",
        "status of",
        "list p50",
        "p99",
        "list bytes",
        "create_job alone p50",
        "p99",
        "disk fsync p50",
        "p99",
    ]);
    let f = |v: f64| {
        if v.is_nan() {
            "-".to_string()
        } else {
            format!("{v:.2}")
        }
    };
    for l in levels {
        table.row(vec![
            l.jobs.to_string(),
            f(percentile(&l.submit, 50.0)),
            f(percentile(&l.submit, 99.0)),
            f(percentile(&l.burst, 50.0)),
            f(percentile(&l.burst, 99.0)),
            f(percentile(&l.status, 50.0)),
            f(percentile(&l.status, 99.0)),
            l.status_of.to_string(),
            f(percentile(&l.list, 50.0)),
            f(percentile(&l.list, 99.0)),
            if l.list.is_empty() {
                "-".into()
            } else {
                l.list_bytes.to_string()
            },
            f(percentile(&l.create_job, 50.0)),
            f(percentile(&l.create_job, 99.0)),
            f(percentile(&l.fsync, 50.0)),
            f(percentile(&l.fsync, 99.0)),
        ]);
    }
    table.print();
    println!(
        "- samples per store size: {} idle submits, {} busy submits, {} status, {} list",
        plan.submits, plan.burst, plan.status_samples, plan.list_samples
    );
    let failed: usize = levels.iter().map(|l| l.failed_jobs).sum();
    if failed > 0 {
        println!("- {failed} submitted job(s) did not succeed (see the daemon logs)");
    }
    if let Some(l) = levels.iter().rev().find(|l| !l.list.is_empty()) {
        let per_job = l.list_bytes as f64 / f64::from(l.jobs);
        println!(
            "- a `list` answer costs {per_job:.1} bytes per job: the {} MiB frame cap is \
             reached at about {:.0} jobs",
            codec::MAX_RESPONSE_LEN >> 20,
            codec::MAX_RESPONSE_LEN as f64 / per_job
        );
    }
    let range = format!(
        "{}..{} jobs",
        levels.first().map_or(0, |l| l.jobs),
        levels.last().map_or(0, |l| l.jobs)
    );
    for (name, pick) in [
        (
            "submit",
            (|l: &Level| &l.submit) as fn(&Level) -> &Vec<Duration>,
        ),
        ("status", |l: &Level| &l.status),
    ] {
        let p50s: Vec<f64> = levels.iter().map(|l| percentile(pick(l), 50.0)).collect();
        let worst = p50s.iter().copied().fold(0.0, f64::max);
        report.target(
            format!("{name} p50 < {TARGET_P50_MS} ms"),
            format!(
                "{} ms",
                p50s.iter()
                    .map(|v| format!("{v:.2}"))
                    .collect::<Vec<_>>()
                    .join(" / ")
            ),
            worst < TARGET_P50_MS,
        );
        report.target(
            format!(
                "{name} p50 flat over {range} (last <= first + max({:.0}%, {FLAT_ABS_MS} ms))",
                FLAT_REL * 100.0
            ),
            format!(
                "{:.2} -> {:.2} ms",
                p50s.first().copied().unwrap_or(f64::NAN),
                p50s.last().copied().unwrap_or(f64::NAN)
            ),
            flat(&p50s),
        );
    }
    match levels.iter().find(|l| l.jobs == TARGET_LIST_JOBS) {
        Some(l) => {
            let p50 = percentile(&l.list, 50.0);
            report.target(
                format!("list of {TARGET_LIST_JOBS} jobs < {TARGET_LIST_MS} ms"),
                format!("p50 {p50:.2} ms, p99 {:.2} ms", percentile(&l.list, 99.0)),
                percentile(&l.list, 99.0) < TARGET_LIST_MS,
            );
        }
        None => report.skipped(format!(
            "list of {TARGET_LIST_JOBS} jobs < {TARGET_LIST_MS} ms (no store of that size)"
        )),
    }
}

fn print_footprint(levels: &[Level], report: &mut Report) {
    println!(
        "\n## Footprint\n\nvidvard's VmRSS (and VmHWM, its peak so far) from /proc/PID/status, \
         MiB: 200 ms after it answers; after the `list` requests; after the submits.\n"
    );
    let mut table = Table::new(&[
        "jobs stored",
        "idle RSS",
        "after list RSS",
        "HWM",
        "after submits RSS",
        "HWM",
        "database bytes",
    ]);
    let f = |r: Option<(f64, f64)>, hwm: bool| {
        r.map_or("-".to_string(), |(rss, peak)| {
            format!("{:.1}", if hwm { peak } else { rss })
        })
    };
    for l in levels {
        table.row(vec![
            l.jobs.to_string(),
            f(l.rss_idle, false),
            f(l.rss_after_list, false),
            f(l.rss_after_list, true),
            f(l.rss_end, false),
            f(l.rss_end, true),
            if l.db_bytes == 0 {
                "-".into()
            } else {
                l.db_bytes.to_string()
            },
        ]);
    }
    table.print();
    if let Some(l) = levels.iter().find(|l| l.jobs == 0)
        && let Some((rss, _)) = l.rss_idle
    {
        println!("- idle with an empty store: {rss:.1} MiB");
    }
    match levels.iter().find(|l| l.jobs == TARGET_RSS_JOBS) {
        Some(l) => {
            let (rss, _) = l.rss_after_list.unwrap_or((f64::NAN, f64::NAN));
            report.target(
                format!("RSS < {TARGET_RSS_MIB} MiB with {TARGET_RSS_JOBS} jobs (after a list)"),
                format!("{rss:.1} MiB"),
                rss < TARGET_RSS_MIB,
            );
        }
        None => report.skipped(format!(
            "RSS < {TARGET_RSS_MIB} MiB with {TARGET_RSS_JOBS} jobs (no store of that size)"
        )),
    }
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

/// A Markdown table with aligned columns.
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: &[&str]) -> Table {
        Table {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn print(&self) {
        let columns = self.rows[0].len();
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for (c, w) in widths.iter().enumerate() {
                let cell = cells.get(c).map_or("", String::as_str);
                let _ = write!(s, " {cell:<w$} |");
            }
            s
        };
        println!("{}", line(&self.rows[0]));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        println!("{}", line(&rule));
        for r in &self.rows[1..] {
            println!("{}", line(r));
        }
    }
}

/// Targets of the issue, printed at the end.
#[derive(Default)]
struct Report {
    targets: Vec<(String, String, Option<bool>)>,
}

impl Report {
    fn target(&mut self, what: String, measured: String, pass: bool) {
        self.targets.push((what, measured, Some(pass)));
    }

    fn skipped(&mut self, what: String) {
        self.targets.push((what, "not measured".into(), None));
    }

    fn print_targets(&self) {
        if self.targets.is_empty() {
            return;
        }
        println!("\n## Targets\n");
        let mut table = Table::new(&["target", "measured", "result"]);
        for (what, measured, pass) in &self.targets {
            let result = match pass {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "-",
            };
            table.row(vec![what.clone(), measured.clone(), result.into()]);
        }
        table.print();
    }
}
