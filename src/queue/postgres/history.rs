//! The history in the shared queue: a run's record and counts written in
//! the transaction that records its outcome (fenced by its lease), each
//! node's counters added to (one statement, rows in
//! [`crate::history::sorted`] order, so that two writers of one node lock
//! them in the same order) and read, the runs a filter selects, and the
//! queue's depth. The rules are [`crate::history`]'s; nothing here deletes
//! a counter.

use super::rows::{exec, job_state, one, rows};
use super::store::PgQueue;
use crate::history::{self, Count, Counter, CounterRow, RunFigures, RunFilter, RunOutcome, RunRow};
use crate::queue::{Census, Result};
use deadpool_postgres::GenericClient;

/// Add `counts` (sorted by [`history::sorted`]) to `node`'s counters.
pub(super) async fn add_counts<C: GenericClient>(
    c: &C,
    node: &str,
    counts: &[Count],
) -> Result<()> {
    if counts.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = counts.iter().map(|c| c.counter.as_str()).collect();
    let keys: Vec<&str> = counts.iter().map(|c| c.key.as_str()).collect();
    let by: Vec<f64> = counts.iter().map(|c| c.by.max(0.)).collect();
    exec(
        c,
        "INSERT INTO counters (node, name, key, value)
         SELECT $1, n, k, v FROM unnest($2::text[], $3::text[], $4::float8[])
                WITH ORDINALITY AS c(n, k, v, i)
         ORDER BY i
         ON CONFLICT (node, name, key) DO UPDATE SET value = counters.value + excluded.value",
        &[&node, &names, &keys, &by],
    )
    .await?;
    Ok(())
}

/// Write the run of variation `variation_id` that ended as `outcome` on
/// `node` to the history, with its job's owner and labels and the
/// variation's share of its input's probe added to its CPU seconds (the
/// share is taken: 0 afterwards), add its counts, and delete runs older
/// than [`history::HISTORY_DAYS`].
pub(super) async fn record_run<C: GenericClient>(
    c: &C,
    node: &str,
    variation_id: i64,
    (outcome, ssim_min): (RunOutcome, Option<f64>),
    run: &RunFigures,
) -> Result<()> {
    // The row is locked (its outcome was just written in this transaction):
    // the share is read and taken once.
    let probe_share: f64 = one(
        c,
        "UPDATE variations v SET probe_cpu_seconds = 0 FROM variations old
         WHERE v.id = $1 AND old.id = v.id RETURNING old.probe_cpu_seconds",
        &[&variation_id],
    )
    .await?
    .get(0);
    let run = &RunFigures {
        cpu_seconds: run.cpu_seconds + probe_share,
        ..run.clone()
    };
    exec(
        c,
        "INSERT INTO runs (job_id, idx, owner_uid, labels, node, outcome, reason, started_at,
                           ended_at, wall_seconds, cpu_seconds, media_seconds, ssim_min)
         SELECT j.id, v.idx, j.owner_uid, j.label_list, $2, $3, $4, $5, $6, $7, $8, $9, $10
         FROM variations v JOIN files f ON f.id = v.file_id JOIN jobs j ON j.id = f.job_id
         WHERE v.id = $1",
        &[
            &variation_id,
            &node,
            &outcome.as_str(),
            &run.reason,
            &run.started_at,
            &run.ended_at,
            &run.wall_seconds,
            &run.cpu_seconds,
            &run.media_seconds,
            &ssim_min,
        ],
    )
    .await?;
    exec(
        c,
        "DELETE FROM runs WHERE ended_at < $1",
        &[&(run.ended_at - history::HISTORY_DAYS * 86_400)],
    )
    .await?;
    add_counts(c, node, &history::counts_of_run(outcome, run, ssim_min)).await
}

impl PgQueue {
    /// Add `counts` and the database errors counted so far to this
    /// node's counters.
    pub(super) async fn add_counts(&self, counts: Vec<Count>) -> Result<()> {
        let (counts, taken) = self.errors.take_into(counts);
        if counts.is_empty() {
            return Ok(());
        }
        let written = async {
            let client = self.pool.get().await?;
            add_counts(&client, &self.node, &counts).await
        }
        .await;
        if written.is_err() {
            self.errors.give_back(taken);
        }
        written
    }

    /// Every node's counters, by node, name and key; names of a newer
    /// version are left out.
    pub(super) async fn counters(&self) -> Result<Vec<CounterRow>> {
        let client = self.pool.get().await?;
        let found = rows(
            &client,
            "SELECT node, name, key, value FROM counters ORDER BY node, name, key",
            &[],
        )
        .await?;
        Ok(found
            .iter()
            .filter_map(|r| {
                Some(CounterRow {
                    node: Some(r.get(0)),
                    counter: Counter::parse(r.get(1))?,
                    key: r.get(2),
                    value: r.get(3),
                })
            })
            .collect())
    }

    /// The runs `filter` selects, oldest end first.
    pub(super) async fn runs(&self, filter: RunFilter) -> Result<Vec<RunRow>> {
        let client = self.pool.get().await?;
        let owner = filter.owner.map(i64::from);
        let found = rows(
            &client,
            "SELECT job_id, idx, owner_uid, labels, node, outcome, reason, started_at,
                    ended_at, wall_seconds, cpu_seconds, media_seconds, ssim_min
             FROM runs
             WHERE ended_at >= $1 AND ($2::bigint IS NULL OR owner_uid = $2)
               AND ($3::text IS NULL OR $3 = ANY (labels))
             ORDER BY ended_at, id",
            &[&filter.since, &owner, &filter.label],
        )
        .await?;
        found
            .iter()
            .map(|r| {
                let outcome: &str = r.get(5);
                Ok(RunRow {
                    job_id: r.get(0),
                    index: r.get::<_, i32>(1) as u32,
                    owner_uid: r.get::<_, i64>(2) as u32,
                    labels: r.get(3),
                    node: r.get(4),
                    outcome: RunOutcome::parse(outcome).ok_or_else(|| {
                        super::PgError::BadValue {
                            what: "run outcome",
                            value: outcome.into(),
                        }
                    })?,
                    reason: r.get(6),
                    started_at: r.get(7),
                    ended_at: r.get(8),
                    wall_seconds: r.get(9),
                    cpu_seconds: r.get(10),
                    media_seconds: r.get(11),
                    ssim_min: r.get(12),
                })
            })
            .collect()
    }

    /// Jobs by state, and variations queued and running on every node.
    pub(super) async fn census(&self) -> Result<Census> {
        let client = self.pool.get().await?;
        let jobs = rows(
            &client,
            "SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state",
            &[],
        )
        .await?
        .iter()
        .map(|r| Ok((job_state(r.get(0))?, r.get::<_, i64>(1).max(0) as u64)))
        .collect::<Result<Vec<_>>>()?;
        let open = rows(
            &client,
            "SELECT COUNT(*) FILTER (WHERE state = 'queued'),
                    COUNT(*) FILTER (WHERE state = 'running')
             FROM variations WHERE state IN ('queued', 'running')",
            &[],
        )
        .await?;
        let n = |i| open[0].get::<_, i64>(i).max(0) as u64;
        Ok(Census {
            jobs,
            variations_queued: n(0),
            variations_running: n(1),
        })
    }
}
