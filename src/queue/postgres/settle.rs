//! Settling in the shared queue: a variation's outcome (fenced by its
//! lease), then its file's and its job's state and progress by
//! [`crate::job`]'s rules ([`job::settled_file`], [`job::settled_job`],
//! [`job::file_progress`]), and the running files' progress. Whatever
//! settles a job's files locks the job first ([`lock_job`]).

use super::rows::{announce, exec, job_state, one, opt, text};
use super::store::PgQueue;
use crate::history::RunFigures;
use crate::job::{self, FileCounts, JobId, JobState, Lease, VariationCounts};
use crate::queue::{Outcome, Result};
use deadpool_postgres::Transaction;

/// How many of a file's variations are in each state.
pub(super) async fn variation_counts(
    tx: &Transaction<'_>,
    file_id: i64,
) -> Result<VariationCounts> {
    let r = one(
        tx,
        "SELECT COUNT(*),
                    COUNT(*) FILTER (WHERE state IN ('queued', 'running')),
                    COUNT(*) FILTER (WHERE state = 'succeeded'),
                    COUNT(*) FILTER (WHERE state = 'failed')
             FROM variations WHERE file_id = $1",
        &[&file_id],
    )
    .await?;
    let n = |i| r.get::<_, i64>(i).max(0) as u64;
    Ok(VariationCounts {
        total: n(0),
        open: n(1),
        succeeded: n(2),
        failed: n(3),
    })
}

pub(super) async fn raise_progress(
    tx: &Transaction<'_>,
    file_id: i64,
    progress: f64,
) -> Result<()> {
    exec(
        tx,
        "UPDATE files SET progress = GREATEST(progress, $2) WHERE id = $1",
        &[&file_id, &progress],
    )
    .await?;
    Ok(())
}

/// Store the progress of running files: for each `(file, running)`,
/// `running` the sum of the percents of its variations being encoded
/// ([`job::file_progress`]), never lower than before. Progress is news,
/// not a record: a file another transaction holds is skipped this beat,
/// never waited for.
pub(super) async fn raise_running_progress(
    tx: &Transaction<'_>,
    running: &[(i64, f64)],
) -> Result<()> {
    for &(file_id, percent) in running {
        let counts = variation_counts(tx, file_id).await?;
        let progress = job::file_progress(counts.total, counts.succeeded, percent);
        exec(
            tx,
            "UPDATE files SET progress = GREATEST(progress, $2)
             WHERE id = (SELECT id FROM files WHERE id = $1 FOR UPDATE SKIP LOCKED)",
            &[&file_id, &progress],
        )
        .await?;
    }
    Ok(())
}

/// Bring a file's progress up to its verified variations and settle it
/// ([`job::settled_file`]) once none is queued or running.
pub(super) async fn settle_file(tx: &Transaction<'_>, file_id: i64) -> Result<()> {
    let counts = variation_counts(tx, file_id).await?;
    raise_progress(
        tx,
        file_id,
        job::file_progress(counts.total, counts.succeeded, 0.0),
    )
    .await?;
    let Some(state) = job::settled_file(counts) else {
        return Ok(());
    };
    exec(
        tx,
        "UPDATE files SET state = $2, lease_until = NULL,
             error = CASE WHEN $2 = 'failed' THEN COALESCE(error,
                 (SELECT v.error FROM variations v
                  WHERE v.file_id = $1 AND v.state = 'failed' ORDER BY v.idx LIMIT 1))
               ELSE NULL END
         WHERE id = $1",
        &[&file_id, &state.as_str()],
    )
    .await?;
    Ok(())
}

/// Settle a job ([`job::settled_job`]) once none of its files is open.
pub(super) async fn settle_job(tx: &Transaction<'_>, job_id: JobId) -> Result<JobState> {
    let r = one(
        tx,
        "SELECT j.state, COUNT(f.id),
                    COUNT(f.id) FILTER (WHERE f.state IN ('queued', 'running')),
                    COUNT(f.id) FILTER (WHERE f.state = 'succeeded'),
                    (SELECT COUNT(*) FROM variations v JOIN files g ON g.id = v.file_id
                     WHERE g.job_id = j.id AND v.state = 'succeeded')
             FROM jobs j LEFT JOIN files f ON f.job_id = j.id WHERE j.id = $1 GROUP BY j.id",
        &[&job_id],
    )
    .await?;
    let state = job_state(r.get(0))?;
    let n = |i| r.get::<_, i64>(i).max(0) as u64;
    let counts = FileCounts {
        total: n(1),
        open: n(2),
        succeeded: n(3),
        outputs: n(4),
    };
    let Some(settled) = job::settled_job(state, counts) else {
        return Ok(state);
    };
    exec(
        tx,
        "UPDATE jobs SET state = $2, finished_at = extract(epoch FROM now())::bigint
         WHERE id = $1",
        &[&job_id, &settled.as_str()],
    )
    .await?;
    announce(tx).await?;
    Ok(settled)
}

/// Lock the row of the job that `find` (a query of one job id, given `id`)
/// names, until the transaction ends. Whatever settles a job's files or the
/// job takes this lock first: two variations ending at once then settle in
/// turn, the second seeing the first (READ COMMITTED reads what committed
/// before each statement), and locks are always taken job first.
pub(super) async fn lock_job(tx: &Transaction<'_>, find: &str, id: i64) -> Result<()> {
    let sql = format!("SELECT id FROM jobs WHERE id = ({find}) FOR UPDATE");
    opt(tx, &sql, &[&id]).await?;
    Ok(())
}

/// A job's state, its row locked until the transaction ends; `None` for
/// no such job.
pub(super) async fn locked_job_state(tx: &Transaction<'_>, job: JobId) -> Result<Option<JobState>> {
    opt(
        tx,
        "SELECT state FROM jobs WHERE id = $1 FOR UPDATE",
        &[&job],
    )
    .await?
    .map(|row| job_state(row.get(0)))
    .transpose()
}

pub(super) async fn job_of_file(tx: &Transaction<'_>, file_id: i64) -> Result<JobId> {
    Ok(
        one(tx, "SELECT job_id FROM files WHERE id = $1", &[&file_id])
            .await?
            .get(0),
    )
}

impl PgQueue {
    pub(super) async fn finish_variation(
        &self,
        lease: Lease,
        outcome: Outcome,
        run: RunFigures,
    ) -> Result<Option<JobState>> {
        let node = self.node.clone();
        self.in_tx(move |tx| {
            Box::pin(async move {
                lock_job(
                    tx,
                    "SELECT f.job_id FROM variations v JOIN files f ON f.id = v.file_id
                     WHERE v.id = $1",
                    lease.id,
                )
                .await?;
                let fence = "WHERE id = $1 AND node = $2 AND attempt = $3 AND state = 'running'";
                let changed = match &outcome {
                    Outcome::Succeeded {
                        output,
                        size,
                        quality,
                    } => {
                        exec(
                            tx,
                            &format!(
                                "UPDATE variations SET state = 'succeeded', output_path = $4,
                                     size_bytes = $5, temp_path = NULL, pid = NULL,
                                     error = NULL, lease_until = NULL, check_samples = $6,
                                     ssim_mean = $7, ssim_min = $8, luma_diff = $9 {fence}"
                            ),
                            &[
                                &lease.id,
                                &node,
                                &lease.attempt,
                                &text(output),
                                &(*size as i64),
                                &quality.map(|q| q.samples as i32),
                                &quality.map(|q| q.ssim_mean),
                                &quality.map(|q| q.ssim_min),
                                &quality.map(|q| q.luma_diff),
                            ],
                        )
                        .await?
                    }
                    Outcome::Failed { error } => {
                        exec(
                            tx,
                            &format!(
                                "UPDATE variations SET state = 'failed', error = $4,
                                     temp_path = NULL, pid = NULL, lease_until = NULL {fence}"
                            ),
                            &[&lease.id, &node, &lease.attempt, error],
                        )
                        .await?
                    }
                    Outcome::Cancelled => {
                        exec(
                            tx,
                            &format!(
                                "UPDATE variations SET state = 'cancelled', temp_path = NULL,
                                     pid = NULL, lease_until = NULL {fence}"
                            ),
                            &[&lease.id, &node, &lease.attempt],
                        )
                        .await?
                    }
                    // The job is locked: its state cannot change meanwhile.
                    Outcome::Requeued => {
                        exec(
                            tx,
                            &format!(
                                "UPDATE variations SET temp_path = NULL, temp_dev = NULL,
                                     temp_ino = NULL, pid = NULL, lease_until = NULL,
                                     state = CASE WHEN (SELECT j.state FROM jobs j
                                                        JOIN files f ON f.job_id = j.id
                                                        WHERE f.id = variations.file_id)
                                                       IN ('queued', 'running')
                                             THEN 'queued' ELSE 'cancelled' END {fence}"
                            ),
                            &[&lease.id, &node, &lease.attempt],
                        )
                        .await?
                    }
                };
                if changed != 1 {
                    return Ok(None);
                }
                let ended = outcome.run_outcome();
                super::history::record_run(tx, &node, lease.id, ended, &run).await?;
                let file_id: i64 = one(
                    tx,
                    "SELECT file_id FROM variations WHERE id = $1",
                    &[&lease.id],
                )
                .await?
                .get(0);
                settle_file(tx, file_id).await?;
                let job = job_of_file(tx, file_id).await?;
                settle_job(tx, job).await.map(Some)
            })
        })
        .await
    }
}
