//! The benchmark of the shared queue (issue 12): several vidvard nodes on
//! one PostgreSQL database, measured against a private cluster that the
//! benchmark starts with `packaging/private-postgres.sh` in a temporary
//! directory (as root it runs as the `postgres` user).
//!
//! ```sh
//! cargo bench --bench shared_queue_bench              # about a minute
//! cargo bench --bench shared_queue_bench -- --quick   # a smaller run
//! ```
//!
//! 1. **Queue overhead per variation**: 4 nodes x 4 slots (16 claim loops,
//!    4 connection pools: `vidvar::queue::postgres::PgQueue` as vidvard
//!    uses it) drain 2,000 variations, each a claim and a recorded
//!    outcome, no FFmpeg: claims per second (target: over 200/s).
//! 2. **Control plane**: `submit` and `status` round trips to a real vidvard
//!    node on the shared queue with 0 and 10,000 finished jobs stored
//!    (target: p50 under 3 ms).
//! 3. **Takeover**: a node killed with SIGKILL while it encodes; the time
//!    until another node's FFmpeg runs its work again (target: lease
//!    timeout + 2 s).
//!
//! Figures are printed, with PASS/FAIL against the targets; nothing is
//! asserted.

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vidvar::effects::Effects;
use vidvar::job::{Credentials, FileIdentity, Media, Vetted};
use vidvar::proto::{Request, Response, SubmitRequest};
use vidvar::queue::postgres::{NodeConfig, PgQueue, parse_url};
use vidvar::queue::{Limits, NewJob, Outcome, Queue, Work, unix_now};

const VIDVARD: &str = env!("CARGO_BIN_EXE_vidvard");

const TARGET_CLAIMS_PER_SEC: f64 = 200.0;
const TARGET_P50_MS: f64 = 3.0;
/// Allowed on top of the lease timeout for work to run again.
const TARGET_TAKEOVER_SLACK_SECS: f64 = 2.0;

/// Benchmark of the shared queue. Flags go after `--`.
#[derive(Parser, Debug)]
struct Args {
    /// Smaller run: 400 variations, 2,000 stored jobs, fewer samples
    #[arg(long)]
    quick: bool,
    /// Lease timeout of the takeover series, seconds
    #[arg(long, default_value_t = 5)]
    lease: u64,
    /// Passed by `cargo bench`; ignored
    #[arg(long, hide = true)]
    bench: bool,
}

/// A private PostgreSQL cluster, stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    url: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/private-postgres.sh")
}

impl Cluster {
    fn start() -> Result<Cluster> {
        let dir = tempfile::Builder::new().prefix("vvbench-pg").tempdir()?;
        let out = Command::new(script())
            .arg(dir.path())
            .stderr(Stdio::inherit())
            .output()
            .context("run packaging/private-postgres.sh")?;
        ensure!(out.status.success(), "private-postgres.sh failed");
        let url = String::from_utf8(out.stdout)?.trim().to_string();
        Ok(Cluster { dir, url })
    }

    async fn client(&self) -> Result<tokio_postgres::Client> {
        let database = parse_url(&self.url)?;
        let (client, connection) = database.config.connect(database.tls).await?;
        tokio::spawn(connection);
        Ok(client)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .stderr(Stdio::null())
            .status();
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `p`-th percentile (0..=100) of `samples`, in ms.
fn percentile(samples: &[Duration], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let i = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    ms(sorted[i])
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let pg = Cluster::start()?;
    println!("# Shared queue (PostgreSQL)\n");
    let variations = if args.quick { 400 } else { 2000 };
    runtime.block_on(claims(&pg, 4, 4, variations))?;
    let stored = if args.quick { 2_000 } else { 10_000 };
    let root = tempfile::Builder::new().prefix("vvbench").tempdir()?;
    runtime.block_on(control_plane(&pg, root.path(), stored, &args))?;
    runtime.block_on(takeover(&pg, root.path(), args.lease))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// 1. Queue overhead per variation
// ---------------------------------------------------------------------------

/// A vetted place that the queue stores but never opens here.
fn nowhere(path: &str) -> Vetted {
    Vetted {
        real: path.into(),
        identity: FileIdentity { dev: 1, ino: 1 },
    }
}

async fn claims(pg: &Cluster, nodes: usize, slots: usize, variations: u32) -> Result<()> {
    let mut queues = Vec::new();
    for n in 0..nodes {
        let node = NodeConfig {
            name: format!("bench-{n}"),
            slots: slots as u32,
            lease_timeout: Duration::from_secs(30),
        };
        queues.push(Arc::new(
            PgQueue::connect(parse_url(&pg.url)?, &node).await?,
        ));
    }
    let (inputs, per_input) = (variations / 100, 100);
    let effects = Effects {
        rotation: 0.0,
        brightness: 0.0,
        contrast: 1.0,
        saturation: 1.0,
    };
    let job = NewJob {
        seed: 1,
        output_dir: ("/bench/out".into(), nowhere("/bench/out")),
        variations: per_input,
        inputs: (0..inputs)
            .map(|i| {
                let path = format!("/bench/in{i}.mp4");
                (
                    path.clone().into(),
                    nowhere(&path),
                    vec![effects; per_input as usize],
                )
            })
            .collect(),
        created_at: unix_now(),
        priority: 0,
        labels: Vec::new(),
        owner: Credentials {
            uid: 0,
            gid: 0,
            groups: vec![],
        },
    };
    let limits = Limits {
        max_jobs: u64::MAX,
        max_owner_variations: None,
    };
    queues[0]
        .submit(job, limits)
        .await?
        .ok()
        .context("queue full")?;
    let started = Instant::now();
    let mut loops = Vec::new();
    for queue in &queues {
        for _ in 0..slots {
            let queue = Arc::clone(queue);
            loops.push(tokio::spawn(async move { drain(&*queue).await }));
        }
    }
    let mut latencies = Vec::new();
    for l in loops {
        latencies.extend(l.await??);
    }
    let wall = started.elapsed();
    let encodes = latencies.len() - inputs as usize;
    ensure!(
        encodes == variations as usize,
        "{encodes} of {variations} variations claimed"
    );
    let rate = encodes as f64 / wall.as_secs_f64();
    println!(
        "**Queue overhead**: {nodes} nodes x {slots} slots drain {variations} variations \
         ({inputs} probes first), each a claim and a recorded outcome, no FFmpeg.\n"
    );
    println!("| claims/s | wall s | claim+outcome p50 ms | p99 ms | target | |");
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| {rate:.0} | {:.2} | {:.2} | {:.2} | over {TARGET_CLAIMS_PER_SEC:.0}/s | {} |\n",
        wall.as_secs_f64(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        verdict(rate > TARGET_CLAIMS_PER_SEC)
    );
    for queue in &queues {
        queue.leave().await?;
    }
    Ok(())
}

/// Claim and finish work until none is left; the time of each round.
async fn drain(queue: &dyn Queue) -> Result<Vec<Duration>> {
    let mut times = Vec::new();
    let mut after = 0;
    loop {
        let start = Instant::now();
        match queue.claim(after).await? {
            Some(Work::Probe { job_id, lease, .. }) => {
                after = job_id;
                ensure!(
                    queue
                        .finish_probe(
                            lease,
                            Media {
                                duration_us: Some(1_000_000),
                                ..Media::default()
                            }
                        )
                        .await?
                );
            }
            Some(Work::Encode(work)) => {
                after = work.job_id;
                let output = format!("/bench/out/{}.mp4", work.lease.id).into();
                let outcome = Outcome::Succeeded {
                    output,
                    size: 1,
                    quality: None,
                };
                ensure!(queue.finish_variation(work.lease, outcome).await?.is_some());
            }
            // Probes of other loops may still make work claimable.
            None if queue.queue_depth().await? > 0 => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            None => return Ok(times),
        }
        times.push(start.elapsed());
    }
}

// ---------------------------------------------------------------------------
// 2. Control plane
// ---------------------------------------------------------------------------

/// A vidvard node on the cluster, killed when dropped.
struct Node {
    child: Child,
    socket: PathBuf,
}

impl Node {
    fn start(pg: &Cluster, root: &Path, name: &str, lease: u64, slots: u32) -> Result<Node> {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("empty.conf");
        std::fs::write(&config, "")?;
        let socket = dir.join("run/vidvard.sock");
        let child = Command::new(VIDVARD)
            .arg("--foreground")
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--pidfile")
            .arg(dir.join("run/vidvard.pid"))
            .args(["--database-url", &pg.url, "--node-name", name])
            .args(["--lease-timeout", &lease.to_string()])
            .args(["--max-parallel", &slots.to_string()])
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(dir.join("vidvard.log"))?)
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            ensure!(Instant::now() < deadline, "node {name} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Node { child, socket })
    }

    async fn client(&self) -> Result<vidvar::client::Client> {
        let trusted = vidvar::client::Trusted::new(vidvar::paths::SERVICE_USER);
        Ok(vidvar::client::Client::connect(&self.socket, &trusted, "shared_queue_bench").await?)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn make_video(path: &Path, seconds: f64, size: &str) -> Result<()> {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=25:duration={seconds}"))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(path)
        .status()
        .context("run ffmpeg")?;
    ensure!(status.success(), "ffmpeg failed");
    Ok(())
}

/// Store `jobs` finished jobs of one input and one variation each, as
/// earlier work would have left them.
async fn seed(pg: &Cluster, jobs: u32) -> Result<()> {
    pg.client()
        .await?
        .batch_execute(&format!(
            "INSERT INTO jobs (state, variations, seed, output_dir, output_real, output_dev,
                               output_ino, created_at, finished_at, owner_uid, owner_gid,
                               owner_groups)
             SELECT 'succeeded', 1, g, '/out', '/out', 1, 1, 0, 0, 0, 0, '{{}}'
             FROM generate_series(1, {jobs}) g;
             INSERT INTO files (job_id, idx, path, real_path, dev, ino, state, probed,
                                duration_us, progress)
             SELECT id, 0, '/in.mp4', '/in.mp4', 1, 1, 'succeeded', true, 1000000, 100
             FROM jobs j WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.job_id = j.id);
             INSERT INTO variations (file_id, idx, rotation, brightness, contrast,
                                     saturation, state, output_path, size_bytes)
             SELECT id, 1, 0, 0, 1, 1, 'succeeded', '/out/in_v01.mp4', 1
             FROM files f WHERE NOT EXISTS (SELECT 1 FROM variations v WHERE v.file_id = f.id);
             ANALYZE;"
        ))
        .await?;
    Ok(())
}

async fn control_plane(pg: &Cluster, root: &Path, stored: u32, args: &Args) -> Result<()> {
    let input = root.join("tiny.mp4");
    make_video(&input, 1.0, "64x64")?;
    let out = root.join("out");
    std::fs::create_dir_all(&out)?;
    // A draining node (max_parallel 0): the jobs submitted are not
    // probed or encoded, so nothing but the requests runs.
    let node = Node::start(pg, root, "control", 30, 0)?;
    let samples = if args.quick { 100 } else { 500 };
    println!("**Control plane**: round trips on one connection to a vidvard node.\n");
    println!("| jobs stored | request | p50 ms | p99 ms | target p50 | |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for level in [0, stored] {
        if level > 0 {
            seed(pg, level).await?;
        }
        let mut client = node.client().await?;
        let (mut submits, mut statuses) = (Vec::new(), Vec::new());
        for _ in 0..samples {
            let request = Request::Submit(SubmitRequest {
                priority: 0,
                labels: Vec::new(),
                inputs: vec![input.clone()],
                variations: 1,
                seed: Some(1),
                output_dir: out.clone(),
            });
            let start = Instant::now();
            let job = match client.request(&request).await? {
                Response::Submitted { job } => job,
                other => bail!("submit: {other:?}"),
            };
            submits.push(start.elapsed());
            let start = Instant::now();
            client.request(&Request::Status { job }).await?;
            statuses.push(start.elapsed());
            client.request(&Request::Cancel { job }).await?;
        }
        for (name, series) in [("submit", &submits), ("status", &statuses)] {
            let p50 = percentile(series, 50.0);
            println!(
                "| {level} | {name} | {p50:.2} | {:.2} | {TARGET_P50_MS:.0} | {} |",
                percentile(series, 99.0),
                verdict(p50 < TARGET_P50_MS)
            );
        }
    }
    println!();
    Ok(())
}

// ---------------------------------------------------------------------------
// 3. Takeover
// ---------------------------------------------------------------------------

async fn takeover(pg: &Cluster, root: &Path, lease: u64) -> Result<()> {
    let input = root.join("long.mp4");
    make_video(&input, 60.0, "640x360")?;
    let out = root.join("takeover");
    std::fs::create_dir_all(&out)?;
    let db = pg.client().await?;
    let mut a = Node::start(pg, root, "takeover-a", lease, 2)?;
    let job = match a
        .client()
        .await?
        .request(&Request::Submit(SubmitRequest {
            priority: 0,
            labels: Vec::new(),
            inputs: vec![input],
            variations: 1,
            seed: Some(1),
            output_dir: out,
        }))
        .await?
    {
        Response::Submitted { job } => job,
        other => bail!("submit: {other:?}"),
    };
    let running_on = |node: &'static str| {
        let db = &db;
        async move {
            let row = db
                .query_one(
                    "SELECT count(*) FROM variations v JOIN files f ON f.id = v.file_id
                     WHERE f.job_id = $1 AND v.node = $2 AND v.state = 'running'
                       AND v.pid IS NOT NULL",
                    &[&job, &node],
                )
                .await?;
            anyhow::Ok(row.get::<_, i64>(0) > 0)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !running_on("takeover-a").await? {
        ensure!(Instant::now() < deadline, "A never ran FFmpeg");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _b = Node::start(pg, root, "takeover-b", lease, 2)?;
    a.kill();
    let killed = Instant::now();
    while !running_on("takeover-b").await? {
        ensure!(
            killed.elapsed() < Duration::from_secs(120),
            "B never took over"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = killed.elapsed().as_secs_f64();
    let target = lease as f64 + TARGET_TAKEOVER_SLACK_SECS;
    println!(
        "**Takeover**: a node killed (SIGKILL) mid-encode; time until another node's FFmpeg runs the variation.\n"
    );
    println!("| lease timeout s | work running again after s | target s | |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| {lease} | {took:.2} | {target:.0} | {} |",
        verdict(took <= target)
    );
    Ok(())
}
