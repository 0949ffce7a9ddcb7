//! Issue 13's part of the benchmark: submit round trips while
//! [`LOAD_ENCODES`] encodes of a long clip run and report progress, and
//! their p99 target; `--vidvard` measures another build for a before and
//! after figure.

use crate::common::make_video;
use crate::common::stats::percentile;
use crate::daemon::{Client, Daemon, runtime};
use crate::report::Report;
use crate::{WARMUP, daemon_binary};
use anyhow::{Result, bail, ensure};
use std::path::Path;
use std::time::{Duration, Instant};
use vidvar::proto::{Request, Response, SubmitRequest};

/// Encodes running while submits are timed in [`submit_under_load`].
const LOAD_ENCODES: usize = 8;
/// The submit p99 target under load, milliseconds.
const LOAD_P99_TARGET_MS: f64 = 2.0;

/// Submit round trips (a 1-input, 1-variation job each, on one protocol
/// connection) while [`LOAD_ENCODES`] encodes of a long clip run and
/// report progress every second.
pub fn submit_under_load(root: &Path, submits: usize, report: &mut Report) -> Result<()> {
    let daemon = Daemon::start(Daemon::prepare(&root.join("load"))?, "", Some(LOAD_ENCODES))?;
    let dir = daemon.dir();
    let (long, tiny, out) = (dir.join("long.mp4"), dir.join("tiny.mp4"), dir.join("out"));
    make_video(&long, 120.0, "640x360", true);
    make_video(&tiny, 0.2, "64x64", false);
    std::fs::create_dir_all(&out)?;
    let samples = runtime()?.block_on(async {
        let mut client = Client::connect(&daemon.socket()).await?;
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
