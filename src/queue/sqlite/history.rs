//! The history in the SQLite queue: a run's record and counts written in
//! the transaction that records its outcome, counters added to and read
//! (node `''`: one machine), the runs a filter selects, and the queue's
//! depth. The rules (which counts, how long a run is kept) are
//! [`crate::history`]'s; nothing here deletes a counter.

use super::error::{Result, StoreError};
use super::rows::{count, parse_job_state};
use super::store::Store;
use crate::history::{self, Count, Counter, CounterRow, RunFigures, RunFilter, RunOutcome, RunRow};
use crate::queue::Census;
use rusqlite::{Transaction, params};

/// Add `counts` to the counters of this machine.
pub(super) fn add_counts(tx: &Transaction<'_>, counts: &[Count]) -> Result<()> {
    let mut add = tx.prepare_cached(
        "INSERT INTO counters (node, name, key, value) VALUES ('', ?1, ?2, ?3)
         ON CONFLICT (node, name, key) DO UPDATE SET value = value + excluded.value",
    )?;
    for c in counts {
        add.execute(params![c.counter.as_str(), c.key, c.by.max(0.)])?;
    }
    Ok(())
}

/// Write the run of variation `variation_id` that ended as `outcome` to
/// the history, with its job's owner and labels and the variation's share
/// of its input's probe added to its CPU seconds (the share is taken: 0
/// afterwards), add its counts, and delete runs older than
/// [`history::HISTORY_DAYS`].
pub(super) fn record_run(
    tx: &Transaction<'_>,
    variation_id: i64,
    outcome: RunOutcome,
    ssim_min: Option<f64>,
    run: &RunFigures,
) -> Result<()> {
    let probe_share: f64 = tx
        .prepare_cached("SELECT probe_cpu_seconds FROM variations WHERE id = ?1")?
        .query_row([variation_id], |r| r.get(0))?;
    tx.prepare_cached("UPDATE variations SET probe_cpu_seconds = 0 WHERE id = ?1")?
        .execute([variation_id])?;
    let run = &RunFigures {
        cpu_seconds: run.cpu_seconds + probe_share,
        ..run.clone()
    };
    tx.prepare_cached(
        "INSERT INTO runs (job_id, idx, owner_uid, labels, node, outcome, reason, started_at,
                           ended_at, wall_seconds, cpu_seconds, media_seconds, ssim_min)
         SELECT j.id, v.idx, j.owner_uid, j.label_list, NULL, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9
         FROM variations v JOIN files f ON f.id = v.file_id JOIN jobs j ON j.id = f.job_id
         WHERE v.id = ?1",
    )?
    .execute(params![
        variation_id,
        outcome.as_str(),
        run.reason,
        run.started_at,
        run.ended_at,
        run.wall_seconds,
        run.cpu_seconds,
        run.media_seconds,
        ssim_min
    ])?;
    tx.prepare_cached("DELETE FROM runs WHERE ended_at < ?1")?
        .execute([run.ended_at - history::HISTORY_DAYS * 86_400])?;
    add_counts(tx, &history::counts_of_run(outcome, run, ssim_min))
}

impl Store {
    /// Add `counts` to the counters, in one transaction.
    pub fn add_counts(&mut self, counts: &[Count]) -> Result<()> {
        if counts.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        add_counts(&tx, counts)?;
        tx.commit()?;
        Ok(())
    }

    /// Every counter, by name and key; names of a newer version are left
    /// out.
    pub fn counters(&self) -> Result<Vec<CounterRow>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, key, value FROM counters ORDER BY name, key")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))?;
        let mut counters = Vec::new();
        for row in rows {
            let (name, key, value) = row?;
            if let Some(counter) = Counter::parse(&name) {
                counters.push(CounterRow {
                    node: None,
                    counter,
                    key,
                    value,
                });
            }
        }
        Ok(counters)
    }

    /// The runs `filter` selects, oldest end first.
    pub fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT job_id, idx, owner_uid, labels, outcome, reason, started_at, ended_at,
                    wall_seconds, cpu_seconds, media_seconds, ssim_min
             FROM runs
             WHERE ended_at >= ?1 AND (?2 IS NULL OR owner_uid = ?2)
               AND (?3 IS NULL
                    OR instr(char(10) || labels || char(10), char(10) || ?3 || char(10)) > 0)
             ORDER BY ended_at, id",
        )?;
        let rows = stmt.query_map(params![filter.since, filter.owner, filter.label], |r| {
            let labels: String = r.get(3)?;
            Ok((
                RunRow {
                    job_id: r.get(0)?,
                    index: r.get(1)?,
                    owner_uid: r.get(2)?,
                    labels: labels
                        .split('\n')
                        .filter(|l| !l.is_empty())
                        .map(String::from)
                        .collect(),
                    node: None,
                    outcome: RunOutcome::Succeeded,
                    reason: r.get(5)?,
                    started_at: r.get(6)?,
                    ended_at: r.get(7)?,
                    wall_seconds: r.get(8)?,
                    cpu_seconds: r.get(9)?,
                    media_seconds: r.get(10)?,
                    ssim_min: r.get(11)?,
                },
                r.get::<_, String>(4)?,
            ))
        })?;
        rows.map(|row| {
            let (mut run, outcome) = row?;
            run.outcome = RunOutcome::parse(&outcome).ok_or(StoreError::BadState(outcome))?;
            Ok(run)
        })
        .collect()
    }

    /// Jobs by state, and variations queued and running.
    pub fn census(&self) -> Result<Census> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state")?;
        let jobs = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, count(r, 1)?)))?
            .map(|row| {
                let (state, n) = row?;
                Ok((parse_job_state(&state)?, n))
            })
            .collect::<Result<Vec<_>>>()?;
        let (variations_queued, variations_running) = self.conn.query_row(
            "SELECT (SELECT COUNT(*) FROM variations WHERE state = 'queued'),
                    (SELECT COUNT(*) FROM variations WHERE state = 'running')",
            [],
            |r| Ok((count(r, 0)?, count(r, 1)?)),
        )?;
        Ok(Census {
            jobs,
            variations_queued,
            variations_running,
        })
    }
}
