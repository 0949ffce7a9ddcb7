//! What a claim costs the single-machine queue as the store grows: the
//! time of `Store::claim` (pick the next work by priority and turn, record
//! the claim) with 1 to 10,000 open jobs, half of them at a higher
//! priority, some paused. Prints a Markdown table; nothing is asserted.
//!
//! ```sh
//! cargo bench --bench claim_bench
//! ```
//!
//! The store is a real SQLite file in a temporary directory (WAL,
//! synchronous FULL, as the daemon opens it); jobs are inserted with
//! `Store::create_job`, each of one input and 3 variations, and no file is
//! read: a claim of a probe records the claim only.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{seed, stats::percentile};
use std::time::{Duration, Instant};
use vidvar::queue::Work;
use vidvar::queue::sqlite::Store;

/// Claims timed per store size.
const CLAIMS: usize = 200;

/// Job `i` of the store: one input, 3 variations; every other job at
/// priority 5, the jobs in 10 label groups.
fn new_job(i: u64) -> vidvar::queue::NewJob {
    let mut job = seed::new_job(i, 1, 3);
    job.priority = if i.is_multiple_of(2) { 5 } else { 0 };
    job.labels = vec![format!("batch-{}", i % 10)];
    job
}

fn main() -> anyhow::Result<()> {
    println!("| open jobs | claim p50 | claim p99 |");
    println!("| ---: | ---: | ---: |");
    for open in [1u64, 1_000, 10_000] {
        let dir = tempfile::tempdir()?;
        let mut store = Store::open(&dir.path().join("bench.db"))?;
        for i in 0..open {
            let id = store.create_job(&new_job(i))?;
            if i % 7 == 3 {
                store.set_job_paused(id, true)?;
            }
        }
        let mut samples: Vec<Duration> = Vec::with_capacity(CLAIMS);
        let mut after = 0;
        for _ in 0..CLAIMS {
            let started = Instant::now();
            let work = store.claim(after, 1)?;
            samples.push(started.elapsed());
            after = match work {
                Some(Work::Probe { job_id, .. }) => job_id,
                Some(Work::Encode(batch)) => batch[0].job_id,
                None => break,
            };
        }
        println!(
            "| {open} | {:.3} ms | {:.3} ms |",
            percentile(&samples, 50.0),
            percentile(&samples, 99.0)
        );
    }
    Ok(())
}
