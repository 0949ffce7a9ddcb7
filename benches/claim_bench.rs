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

use std::path::PathBuf;
use std::time::{Duration, Instant};
use vidvar::effects::Effects;
use vidvar::job::{Credentials, FileIdentity, Vetted};
use vidvar::queue::sqlite::Store;
use vidvar::queue::{NewJob, Work};

/// Claims timed per store size.
const CLAIMS: usize = 200;

fn vetted(path: &str, ino: u64) -> Vetted {
    Vetted {
        real: path.into(),
        identity: FileIdentity { dev: 1, ino },
    }
}

fn new_job(i: u64) -> NewJob {
    let input = format!("/bench/in/{i}.mp4");
    NewJob {
        seed: i,
        output_dir: (PathBuf::from("/bench/out"), vetted("/bench/out", 1)),
        variations: 3,
        inputs: vec![(
            PathBuf::from(&input),
            vetted(&input, 2 + i),
            vec![
                Effects {
                    rotation: 0.0,
                    brightness: 0.0,
                    contrast: 1.0,
                    saturation: 1.0,
                };
                3
            ],
        )],
        created_at: 0,
        owner: Credentials {
            uid: 1000,
            gid: 1000,
            groups: vec![],
        },
        priority: if i.is_multiple_of(2) { 5 } else { 0 },
        labels: vec![format!("batch-{}", i % 10)],
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
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
        let mut samples = Vec::with_capacity(CLAIMS);
        let mut after = 0;
        for _ in 0..CLAIMS {
            let started = Instant::now();
            let work = store.claim(after)?;
            samples.push(started.elapsed());
            after = match work {
                Some(Work::Probe { job_id, .. }) => job_id,
                Some(Work::Encode(e)) => e.job_id,
                None => break,
            };
        }
        println!(
            "| {open} | {:.3} ms | {:.3} ms |",
            percentile(&mut samples, 0.5).as_secs_f64() * 1e3,
            percentile(&mut samples, 0.99).as_secs_f64() * 1e3
        );
    }
    Ok(())
}
