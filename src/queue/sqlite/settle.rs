//! Settling in the SQLite queue: a variation's outcome, then its file's
//! and its job's state and progress by [`crate::job`]'s rules
//! ([`job::settled_file`], [`job::settled_job`], [`job::file_progress`]),
//! and the running files' progress. Every write that ends work settles
//! through here.

use super::error::Result;
use super::rows::{count, parse_job_state, text_of};
use super::store::Store;
use crate::history::RunFigures;
use crate::job::{self, FileCounts, JobId, JobState, VariationCounts};
use crate::queue::Outcome;
use rusqlite::params;

impl Store {
    /// Store the progress of running files in one transaction. For each
    /// `(file_id, running)`, `running` is the sum of the percents of its
    /// variations being encoded; the file's progress becomes
    /// `(verified * 100 + running) / variations`, never lower than before.
    ///
    /// Committed without an fsync of its own (`synchronous=NORMAL` for this
    /// transaction; in WAL mode the next outcome's commit makes it
    /// durable): a crash may lose the last figures, never an outcome.
    pub fn set_files_progress(&mut self, running: &[(i64, f64)]) -> Result<()> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let written = self.write_files_progress(running);
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        written
    }

    fn write_files_progress(&mut self, running: &[(i64, f64)]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for &(file_id, percent) in running {
            let counts = variation_counts(&tx, file_id)?;
            let progress = job::file_progress(counts.total, counts.succeeded, percent);
            raise_progress(&tx, file_id, progress)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Record how a running variation ended and its run in the history
    /// (see [`super::history::record_run`]), then settle its file and job.
    /// Returns the job's state afterwards.
    pub fn finish_variation(
        &mut self,
        variation_id: i64,
        outcome: &Outcome,
        run: &RunFigures,
    ) -> Result<JobState> {
        let tx = self.conn.transaction()?;
        let changed = match outcome {
            Outcome::Succeeded {
                output,
                size,
                quality,
            } => tx.execute(
                "UPDATE variations SET state = 'succeeded', output_path = ?2, size_bytes = ?3,
                        temp_path = NULL, pid = NULL, error = NULL,
                        check_samples = ?4, ssim_mean = ?5, ssim_min = ?6, luma_diff = ?7
                 WHERE id = ?1 AND state = 'running'",
                params![
                    variation_id,
                    text_of(output),
                    *size as i64,
                    quality.map(|q| q.samples),
                    quality.map(|q| q.ssim_mean),
                    quality.map(|q| q.ssim_min),
                    quality.map(|q| q.luma_diff)
                ],
            )?,
            Outcome::Failed { error } => tx.execute(
                "UPDATE variations SET state = 'failed', error = ?2, temp_path = NULL, pid = NULL
                 WHERE id = ?1 AND state = 'running'",
                params![variation_id, error],
            )?,
            Outcome::Cancelled => tx.execute(
                "UPDATE variations SET state = 'cancelled', temp_path = NULL, pid = NULL
                 WHERE id = ?1 AND state = 'running'",
                [variation_id],
            )?,
            Outcome::Requeued => tx.execute(
                "UPDATE variations SET temp_path = NULL, pid = NULL, temp_dev = NULL,
                     temp_ino = NULL,
                     state = CASE WHEN (SELECT j.state FROM jobs j JOIN files f ON f.job_id = j.id
                                        WHERE f.id = variations.file_id) IN ('queued', 'running')
                             THEN 'queued' ELSE 'cancelled' END
                 WHERE id = ?1 AND state = 'running'",
                [variation_id],
            )?,
        };
        if changed == 1 {
            let (ended, ssim_min) = outcome.run_outcome();
            super::history::record_run(&tx, variation_id, ended, ssim_min, run)?;
        }
        let file_id: i64 = tx.query_row(
            "SELECT file_id FROM variations WHERE id = ?1",
            [variation_id],
            |r| r.get(0),
        )?;
        settle_file(&tx, file_id)?;
        let state = settle_job_of_file(&tx, file_id)?;
        tx.commit()?;
        Ok(state)
    }
}

/// How many of a file's variations are in each state.
pub(super) fn variation_counts(
    tx: &rusqlite::Transaction<'_>,
    file_id: i64,
) -> Result<VariationCounts> {
    let counts = tx.query_row(
        "SELECT COUNT(*),
                COALESCE(SUM(state IN ('queued', 'running')), 0),
                COALESCE(SUM(state = 'succeeded'), 0),
                COALESCE(SUM(state = 'failed'), 0)
         FROM variations WHERE file_id = ?1",
        [file_id],
        |r| {
            Ok(VariationCounts {
                total: count(r, 0)?,
                open: count(r, 1)?,
                succeeded: count(r, 2)?,
                failed: count(r, 3)?,
            })
        },
    )?;
    Ok(counts)
}

/// Set a file's progress to `progress` unless it was higher already.
pub(super) fn raise_progress(
    tx: &rusqlite::Transaction<'_>,
    file_id: i64,
    progress: f64,
) -> Result<()> {
    tx.prepare_cached("UPDATE files SET progress = MAX(progress, ?2) WHERE id = ?1")?
        .execute(params![file_id, progress])?;
    Ok(())
}

/// Bring a file's progress up to its verified variations and, once none is
/// queued or running, give it its final state ([`job::settled_file`]); the
/// error of a failed file is its first failed variation's.
pub(super) fn settle_file(tx: &rusqlite::Transaction<'_>, file_id: i64) -> Result<()> {
    let counts = variation_counts(tx, file_id)?;
    raise_progress(
        tx,
        file_id,
        job::file_progress(counts.total, counts.succeeded, 0.0),
    )?;
    let Some(state) = job::settled_file(counts) else {
        return Ok(());
    };
    tx.execute(
        "UPDATE files SET state = ?2,
            error = CASE WHEN ?2 = 'failed' THEN COALESCE(error,
                (SELECT v.error FROM variations v
                 WHERE v.file_id = ?1 AND v.state = 'failed' ORDER BY v.idx LIMIT 1))
              ELSE NULL END
         WHERE id = ?1",
        params![file_id, state.as_str()],
    )?;
    Ok(())
}

pub(super) fn settle_job_of_file(tx: &rusqlite::Transaction<'_>, file_id: i64) -> Result<JobState> {
    let job_id: JobId = tx.query_row("SELECT job_id FROM files WHERE id = ?1", [file_id], |r| {
        r.get(0)
    })?;
    settle_job(tx, job_id)
}

/// Give a job its final state ([`job::settled_job`]) once none of its
/// files is queued or running. Returns the job's state.
pub(super) fn settle_job(tx: &rusqlite::Transaction<'_>, job_id: JobId) -> Result<JobState> {
    let (state, counts): (String, FileCounts) = tx.query_row(
        "SELECT j.state, COUNT(f.id),
                COALESCE(SUM(f.state IN ('queued', 'running')), 0),
                COALESCE(SUM(f.state = 'succeeded'), 0),
                (SELECT COUNT(*) FROM variations v JOIN files g ON g.id = v.file_id
                 WHERE g.job_id = j.id AND v.state = 'succeeded')
         FROM jobs j LEFT JOIN files f ON f.job_id = j.id WHERE j.id = ?1 GROUP BY j.id",
        [job_id],
        |r| {
            Ok((
                r.get(0)?,
                FileCounts {
                    total: count(r, 1)?,
                    open: count(r, 2)?,
                    succeeded: count(r, 3)?,
                    outputs: count(r, 4)?,
                },
            ))
        },
    )?;
    let state = parse_job_state(&state)?;
    let Some(settled) = job::settled_job(state, counts) else {
        return Ok(state);
    };
    tx.execute(
        "UPDATE jobs SET state = ?2, finished_at = strftime('%s', 'now') WHERE id = ?1",
        params![job_id, settled.as_str()],
    )?;
    Ok(settled)
}
