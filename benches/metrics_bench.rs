//! What a scrape costs with 10,000 jobs stored (issue 26: under 5 ms): a
//! real `vidvard` on a seeded SQLite store, its metrics read by
//! `GET /metrics` on its `metrics_socket`, timed from connect to the last
//! byte. Prints a Markdown table and exits 1 when the median scrape takes
//! 5 ms or more.
//!
//! ```sh
//! cargo bench --bench metrics_bench
//! ```
//!
//! The store holds 200 jobs finished through the queue's own API (each a
//! probe and 3 succeeded variations, so the history and the counters hold
//! 600 runs) and 9,800 queued jobs of one input and 3 variations each;
//! the daemon is paused first, so that nothing runs while it is measured.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Env, s, seed, stats::percentile};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};
use vidvar::queue::sqlite::Store;

/// Jobs stored.
const JOBS: u64 = 10_000;
/// Of them, finished through the queue's API.
const FINISHED: u32 = 200;
/// Scrapes timed.
const SCRAPES: usize = 300;
/// The budget of a median scrape.
const BUDGET_MS: f64 = 5.0;

/// One `GET /metrics` on `socket`: the body's length in bytes.
fn scrape(socket: &Path) -> anyhow::Result<usize> {
    let mut stream = UnixStream::connect(socket)?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let mut reply = Vec::with_capacity(16 * 1024);
    stream.read_to_end(&mut reply)?;
    anyhow::ensure!(reply.starts_with(b"HTTP/1.1 200 OK"), "not a 200 answer");
    Ok(reply.len())
}

fn main() -> anyhow::Result<()> {
    let env = Env::new();
    let db = env.state_dir().join(vidvar::paths::DATABASE_NAME);
    std::fs::create_dir_all(env.state_dir())?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let queue =
            vidvar::queue::open(&vidvar::queue::Backend::Sqlite { path: db.clone() }).await?;
        seed::finished_jobs(&*queue, FINISHED, 3).await?;
        anyhow::Ok(())
    })?;
    let mut store = Store::open(&db)?;
    for i in u64::from(FINISHED)..JOBS {
        store.create_job(&seed::new_job(i, 1, 3))?;
    }
    drop(store);

    let socket = env.path("metrics.sock");
    let config = env.path("vidvard.conf");
    std::fs::write(&config, format!("metrics_socket = {:?}\n", s(&socket)))?;
    // Paused before anything runs: no slot is free for a claim.
    let _daemon = env.start(&["--config", s(&config), "--max-parallel", "1"]);
    env.ctl_ok(&["pause"]);

    let mut bytes = 0;
    let mut samples: Vec<Duration> = Vec::with_capacity(SCRAPES);
    for _ in 0..SCRAPES {
        let started = Instant::now();
        bytes = scrape(&socket)?;
        samples.push(started.elapsed());
    }
    let (p50, p99) = (percentile(&samples, 50.0), percentile(&samples, 99.0));
    println!("| jobs stored | runs | scrape p50 | scrape p99 | answer |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {JOBS} | {} | {p50:.3} ms | {p99:.3} ms | {bytes} bytes |",
        FINISHED * 3
    );
    anyhow::ensure!(
        p50 < BUDGET_MS,
        "the median scrape took {p50:.3} ms, over the budget of {BUDGET_MS} ms"
    );
    Ok(())
}
