//! The benchmark of issues 7 and 24: batch throughput, control-plane
//! latency and memory footprint of the real release binaries against real
//! FFmpeg; and, with `--pixel-path`, the pixel path against the plain loop.
//!
//! ```sh
//! cargo bench --bench vidvar_bench                 # full run, several minutes
//! cargo bench --bench vidvar_bench -- --quick      # under a minute
//! cargo bench --bench vidvar_bench -- --pixel-path # issue 24, about 20 minutes, root
//! cargo bench --bench vidvar_bench -- --help
//! ```
//!
//! Everything happens in a temporary directory: inputs generated with
//! FFmpeg's `testsrc2` and `sine` sources, one `vidvard --foreground` per
//! measurement with its own socket, database and pidfile, and an empty
//! configuration file so no user configuration leaks in. Inputs, daemons
//! and stored jobs come from the test kit (tests/common); the modules
//! here: [`batch`] and [`loops`] (1), [`control`] (2), [`footprint`] (3),
//! [`load`] (4), [`pixel`] (issue 24, with [`stages`] and [`accounting`]
//! for the CPU by stage), [`machine`] (clocks, CPU and memory readings),
//! [`daemon`] (a measured daemon and its protocol client), [`report`]
//! (tables and targets). The output is a set
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
//!    seeded through the queue's own API before the daemon starts.
//! 3. **Footprint**: VmRSS of the daemon.
//! 4. **Submit under load**: submit round trips while 8 encodes run and
//!    report progress (target: p99 at most 2 ms). `--vidvard PATH` measures
//!    another build, e.g. an older release, for a before/after figure.

#[path = "../../tests/common/mod.rs"]
mod common;

mod accounting;
mod batch;
mod control;
mod daemon;
mod footprint;
mod load;
mod loops;
mod machine;
mod pixel;
mod report;
mod stages;

use anyhow::{Context, Result};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Parallelism of vidvard and of the parallel loop [default: the number
    /// of CPU cores]; with --pixel-path, vidvard's only [default: vidvard's
    /// own]
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
    /// Run issue 24's benchmark of the pixel path instead (root: it uses
    /// process accounting for the CPU by stage): vidvard against the plain
    /// loop 2 at a time on each of --shapes, --rounds times
    #[arg(long)]
    pixel_path: bool,
    /// --pixel-path: the shapes of input, comma separated: 720p (4 x 10 s
    /// 1280x720, 5 variations each), 1080p (4 x 10 s 1920x1080, 5), short
    /// (4 x 3 s 1280x720, 5), camera (3 x 5 s 1280x720, 4) [default: all]
    #[arg(long, value_delimiter = ',')]
    shapes: Option<Vec<String>>,
    /// --pixel-path: rounds per shape; the median is reported
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// --pixel-path: time vidvard once at each of these max_parallel values
    /// (comma separated) instead of the rounds
    #[arg(long, value_delimiter = ',')]
    sweep: Option<Vec<usize>>,
    /// --pixel-path: also run 3 copies of this real clip x 4 variations
    #[arg(long, value_name = "FILE")]
    clip: Option<PathBuf>,
    /// --pixel-path: also run vidvard with pixel_path = "ffmpeg" (as it was
    /// before the pixel path) in the first round
    #[arg(long)]
    ffmpeg_path: bool,
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
            parallel: args.max_parallel.unwrap_or_else(|| {
                vidvar::config::default_parallelism(vidvar::config::PixelPath::Ffmpeg)
            }),
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

/// What `--pixel-path` runs, from the flags.
fn pixel_plan(args: &Args) -> Result<pixel::PixelPlan> {
    let shapes = match &args.shapes {
        None => pixel::SHAPES.iter().collect(),
        Some(keys) => keys
            .iter()
            .map(|k| {
                pixel::SHAPES
                    .iter()
                    .find(|s| s.key == k)
                    .with_context(|| format!("no shape {k:?}: 720p, 1080p, short or camera"))
            })
            .collect::<Result<_>>()?,
    };
    Ok(pixel::PixelPlan {
        shapes,
        rounds: args.rounds.max(1),
        sweep: args.sweep.clone().unwrap_or_default(),
        clip: args.clip.clone(),
        ffmpeg_path: args.ffmpeg_path,
        max_parallel: args.max_parallel,
    })
}

/// The binary `--vidvard` named, else this build's.
static DAEMON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
/// `--keep`: the daemons' directories stay too.
static KEEP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn daemon_binary() -> &'static Path {
    DAEMON.get_or_init(|| PathBuf::from(common::VIDVARD))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(path) = &args.vidvard {
        DAEMON
            .set(path.clone())
            .expect("set once, before any daemon starts");
    }
    KEEP.store(args.keep, std::sync::atomic::Ordering::Relaxed);
    let plan = Plan::from(&args);
    let mut builder = tempfile::Builder::new();
    builder.prefix("vidvar-bench");
    let tmp = match &args.dir {
        Some(dir) => builder.tempdir_in(dir),
        None => builder.tempdir(),
    }
    .context("cannot create the temporary directory")?;
    let root = tmp.path().to_path_buf();
    let mut report = report::Report::default();

    machine::describe(&root)?;
    if args.pixel_path {
        pixel::pixel_path(&root, &pixel_plan(&args)?, &mut report)?;
    } else {
        if plan.batch {
            batch::batch(&root, &plan, &mut report)?;
        }
        if plan.control || plan.footprint {
            control::control_and_footprint(&root, &plan, &mut report)?;
        }
        if let Some(submits) = plan.load_submits {
            load::submit_under_load(&root, submits, &mut report)?;
        }
    }
    report.print_targets();
    if args.keep {
        let kept = tmp.keep();
        println!("\nTemporary directory kept: {}", kept.display());
    }
    Ok(())
}
