//! Issue 7, part 2: the control plane. Round trips on one protocol
//! connection (submit idle and busy, status, list) with stores of
//! finished jobs of several sizes, seeded through the queue's own API
//! ([`seed_store`]), beside the disk's floor for one durable commit and
//! the store's `create_job` alone; part 3's memory readings are taken on
//! the same daemons and printed by [`crate::footprint`].

use crate::common::stats::percentile;
use crate::common::{self, make_video};
use crate::daemon::{Client, Daemon, runtime};
use crate::report::{Report, Table};
use crate::{
    COMMIT_BYTES, FLAT_ABS_MS, FLAT_REL, LIST_WARMUP, Plan, SEEDED_VARIATIONS, TARGET_LIST_JOBS,
    TARGET_LIST_MS, TARGET_P50_MS, WARMUP,
};
use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vidvar::access::{Judge, Want};
use vidvar::effects;
use vidvar::proto::codec;
use vidvar::proto::{JobState, Request, Response, SubmitRequest};
use vidvar::queue::Backend;

/// Store `jobs` finished jobs (one input, [`SEEDED_VARIATIONS`] verified
/// outputs each) in a new SQLite queue at `db`, through the queue's own
/// API (the kit's [`common::seed`]), as a daemon would have left them. The
/// daemon is not running yet.
pub fn seed_store(db: &Path, jobs: u32) -> Result<()> {
    std::fs::create_dir_all(db.parent().context("a database in a directory")?)?;
    runtime()?.block_on(async {
        let queue = vidvar::queue::open(&Backend::Sqlite {
            path: db.to_path_buf(),
        })
        .await?;
        common::seed::finished_jobs(&*queue, jobs, SEEDED_VARIATIONS).await?;
        anyhow::Ok(())
    })
}

/// Figures for one store size.
#[derive(Default)]
pub struct Level {
    pub jobs: u32,
    pub submit: Vec<Duration>,
    pub burst: Vec<Duration>,
    pub status: Vec<Duration>,
    /// What the status requests asked for.
    pub status_of: &'static str,
    pub list: Vec<Duration>,
    pub list_bytes: usize,
    pub failed_jobs: usize,
    pub rss_idle: Option<(f64, f64)>,
    pub rss_after_list: Option<(f64, f64)>,
    pub rss_end: Option<(f64, f64)>,
    pub db_bytes: u64,
    /// The disk's floor for one durable commit, measured beside the database.
    pub fsync: Vec<Duration>,
    /// The store's `create_job` alone, in this process, on a scratch database.
    pub create_job: Vec<Duration>,
}

pub fn control_and_footprint(root: &Path, plan: &Plan, report: &mut Report) -> Result<()> {
    let dir = root.join("control");
    std::fs::create_dir_all(&dir)?;
    let tiny = dir.join("tiny.mp4");
    make_video(&tiny, 0.2, "64x64", false);
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir)?;
    let rt = runtime()?;
    let mut levels = Vec::new();
    for &jobs in &plan.stores {
        eprintln!("[control] {jobs} jobs stored ...");
        let env = Daemon::prepare(&dir.join(format!("store-{jobs}")))?;
        seed_store(&Daemon::database(&env), jobs)?;
        let daemon = Daemon::start(env, "", None)?;
        let level = rt.block_on(measure_level(&daemon, jobs, plan, &tiny, &out_dir))?;
        daemon.stop()?;
        levels.push(level);
    }
    if plan.control {
        print_control(plan, &levels, report);
    }
    if plan.footprint {
        crate::footprint::print(&levels, report);
    }
    Ok(())
}

async fn measure_level(
    daemon: &Daemon,
    jobs: u32,
    plan: &Plan,
    tiny: &Path,
    out_dir: &Path,
) -> Result<Level> {
    let mut level = Level {
        jobs,
        ..Level::default()
    };
    // Let the runtime settle before the idle reading.
    tokio::time::sleep(Duration::from_millis(200)).await;
    level.rss_idle = Some(daemon.rss()?);
    let mut client = Client::connect(&daemon.socket()).await?;

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
    let mut floor = FsyncFloor::new(&daemon.state_dir())?;
    let mut scratch = ScratchStore::new(&daemon.state_dir(), tiny, out_dir)?;
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
    level.db_bytes =
        std::fs::metadata(daemon.state_dir().join(vidvar::paths::DATABASE_NAME))?.len();
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
         {SEEDED_VARIATIONS} verified outputs, stored through the queue's own API \
         (`vidvar::queue::open`: each submitted, probed and its variations finished, as a daemon \
         leaves them). Submits send a real 0.2 s 64x64 clip with -n 1: \"idle\" waits for each job to \
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
