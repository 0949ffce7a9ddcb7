//! The benchmark of the shared queue (issue 12): several vidvard nodes on
//! one PostgreSQL database, measured against a private cluster that the
//! benchmark starts in a temporary directory with the test kit's
//! `Cluster` (tests/common/postgres.rs; fsync on; it must run as root,
//! the cluster as the `postgres` user). Stored jobs are seeded through the queue's own
//! API (`vidvar::queue::open`), as a node would have left them.
//!
//! ```sh
//! cargo bench --bench shared_queue_bench              # about a minute
//! cargo bench --bench shared_queue_bench -- --quick   # a smaller run
//! ```
//!
//! 1. **Queue overhead per variation**: 4 nodes x 4 slots (16 claim loops,
//!    4 connection pools: the queue `vidvar::queue::open` gives vidvard)
//!    drain 2,000 variations, each a claim and a recorded
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

#[path = "../tests/common/mod.rs"]
mod common;

use anyhow::{Result, bail, ensure};
use clap::Parser;
use common::postgres::Cluster;
use common::stats::percentile;
use common::{Daemon, Env, make_video, seed};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vidvar::proto::{Request, Response, SubmitRequest};
use vidvar::queue::postgres::{NodeConfig, parse_url};
use vidvar::queue::{Backend, Queue};

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

/// The queue on `pg` as node `name` with `slots` slots and a 30 s lease,
/// opened as vidvard opens it.
async fn open_queue(pg: &Cluster, name: &str, slots: u32) -> Result<Arc<dyn Queue>> {
    let backend = Backend::Postgres {
        database: Box::new(parse_url(&pg.url())?),
        node: NodeConfig {
            name: name.into(),
            slots,
            lease_timeout: Duration::from_secs(30),
        },
    };
    Ok(vidvar::queue::open(&backend).await?)
}

/// A plain client of the cluster's database, for reading what nodes do.
async fn sql_client(pg: &Cluster) -> Result<tokio_postgres::Client> {
    let database = parse_url(&pg.url())?;
    let (client, connection) = database.config.connect(database.tls).await?;
    tokio::spawn(connection);
    Ok(client)
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let pg = Cluster::start_durable();
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

async fn claims(pg: &Cluster, nodes: usize, slots: usize, variations: u32) -> Result<()> {
    let mut queues = Vec::new();
    for n in 0..nodes {
        queues.push(open_queue(pg, &format!("bench-{n}"), slots as u32).await?);
    }
    let (inputs, per_input) = (variations / 100, 100);
    queues[0]
        .submit(seed::new_job(1, inputs, per_input), seed::NO_LIMITS)
        .await?
        .expect("no limits");
    let started = Instant::now();
    let mut loops = Vec::new();
    for queue in &queues {
        for _ in 0..slots {
            let queue = Arc::clone(queue);
            loops.push(tokio::spawn(async move { seed::drain(&*queue).await }));
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

// ---------------------------------------------------------------------------
// 2. Control plane
// ---------------------------------------------------------------------------

/// A vidvard node on the cluster: the kit's daemon harness with an empty
/// configuration, killed when dropped.
struct Node {
    env: Env,
    daemon: Daemon,
}

impl Node {
    fn start(pg: &Cluster, root: &Path, name: &str, lease: u64, slots: u32) -> Node {
        let env = Env::new_in(root);
        let config = env.path("empty.conf");
        std::fs::write(&config, "").expect("write the empty configuration");
        let (url, lease, slots) = (pg.url(), lease.to_string(), slots.to_string());
        let daemon = env.start(&[
            "--config",
            common::s(&config),
            "--database-url",
            &url,
            "--node-name",
            name,
            "--lease-timeout",
            &lease,
            "--max-parallel",
            &slots,
        ]);
        Node { env, daemon }
    }

    async fn client(&self) -> Result<vidvar::client::Client> {
        let trusted = vidvar::client::Trusted::new(vidvar::paths::SERVICE_USER);
        let socket = self.env.socket();
        Ok(vidvar::client::Client::connect(&socket, &trusted, "shared_queue_bench").await?)
    }
}

async fn control_plane(pg: &Cluster, root: &Path, stored: u32, args: &Args) -> Result<()> {
    let input = root.join("tiny.mp4");
    make_video(&input, 1.0, "64x64", false);
    let out = root.join("out");
    std::fs::create_dir_all(&out)?;
    // A draining node (max_parallel 0): the jobs submitted are not
    // probed or encoded, so nothing but the requests runs.
    let node = Node::start(pg, root, "control", 30, 0);
    let samples = if args.quick { 100 } else { 500 };
    println!("**Control plane**: round trips on one connection to a vidvard node.\n");
    println!("| jobs stored | request | p50 ms | p99 ms | target p50 | |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for level in [0, stored] {
        if level > 0 {
            let seeder = open_queue(pg, "bench-seed", 1).await?;
            seed::finished_jobs(&*seeder, level, 1).await?;
            seeder.leave().await?;
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
    make_video(&input, 60.0, "640x360", false);
    let out = root.join("takeover");
    std::fs::create_dir_all(&out)?;
    let db = sql_client(pg).await?;
    let mut a = Node::start(pg, root, "takeover-a", lease, 2);
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
    let _b = Node::start(pg, root, "takeover-b", lease, 2);
    a.daemon
        .signal_and_wait(nix::sys::signal::Signal::SIGKILL, Duration::from_secs(10));
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
