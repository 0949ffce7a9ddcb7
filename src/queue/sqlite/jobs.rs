//! Jobs in the SQLite queue as their owners see and change them: submit
//! (within the limits), the views (a job, a page of jobs, its files and
//! outputs, counts), priority and a job's pause, cancel, retry and prune.
//! Claims, outcomes and recovery are elsewhere ([`super::claims`],
//! [`super::settle`], [`super::recovery`]).

use super::error::Result;
use super::rows::{
    effects_of, groups_text, job_state, parse_file_state, path_of, quality_of, text_of,
};
use super::settle::{settle_file, variation_counts};
use super::store::Store;
use crate::job::{self, FileState, JobId, JobState};
use crate::queue::{FileRow, Full, JobFilter, JobRow, Limits, NewJob, OutputRow};
use rusqlite::{Connection, OptionalExtension, params};

impl Store {
    /// Insert a job as [`Store::create_job`] does if it fits in `limits`
    /// (counted on this, the writing, connection: no other write comes
    /// between the count and the insert).
    pub fn create_job_within(
        &mut self,
        job: &NewJob,
        limits: Limits,
    ) -> Result<std::result::Result<JobId, Full>> {
        let tx = self.conn.transaction()?;
        let id = Store::insert_job_within(&tx, job, limits)?;
        tx.commit()?;
        Ok(id)
    }

    /// Insert a job with its files and variations, all queued.
    pub fn create_job(&mut self, job: &NewJob) -> Result<JobId> {
        let tx = self.conn.transaction()?;
        let id = insert_job(&tx, job)?;
        tx.commit()?;
        Ok(id)
    }

    /// [`Store::create_job_within`] inside the caller's transaction `tx`.
    pub(super) fn insert_job_within(
        tx: &Connection,
        job: &NewJob,
        limits: Limits,
    ) -> Result<std::result::Result<JobId, Full>> {
        let pending = queue_depth(tx)?;
        if pending >= limits.max_jobs {
            return Ok(Err(Full::Jobs { pending }));
        }
        if let Some(max) = limits.max_owner_variations {
            let pending = pending_variations(tx, job.owner.uid)?;
            let asked = job.inputs.iter().map(|(_, _, e)| e.len() as u64).sum();
            if pending + asked > max {
                return Ok(Err(Full::Owner { pending, asked }));
            }
        }
        insert_job(tx, job).map(Ok)
    }

    /// One job, or `None` if there is no such job.
    pub fn job(&self, id: JobId) -> Result<Option<JobRow>> {
        let sql = format!("SELECT {} FROM jobs j WHERE j.id = ?1", Self::JOB_COLUMNS);
        let row = self.conn.query_row(&sql, [id], Self::job_row).optional()?;
        Ok(self.with_files(Vec::from_iter(row))?.pop())
    }

    /// The jobs `filter` selects, by id ascending.
    pub fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRow>> {
        let sql = format!(
            "SELECT {} FROM jobs j
             WHERE j.id > ?1 AND (?2 IS NULL OR j.owner_uid = ?2) AND (?3 IS NULL OR j.state = ?3)
               AND (?4 IS NULL OR j.id IN (SELECT job_id FROM labels WHERE label = ?4))
             ORDER BY j.id LIMIT ?5",
            Self::JOB_COLUMNS
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![
                filter.after,
                filter.owner,
                filter.state.map(JobState::as_str),
                filter.label,
                filter.limit
            ],
            Self::job_row,
        )?;
        let rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        self.with_files(rows)
    }

    /// Set a job's priority; returns its state, `None` for no such job.
    pub fn set_priority(&mut self, job_id: JobId, priority: i32) -> Result<Option<JobState>> {
        self.set_job_column(job_id, "priority", &priority)
    }

    /// Pause or resume a job; returns its state, `None` for no such job.
    pub fn set_job_paused(&mut self, job_id: JobId, paused: bool) -> Result<Option<JobState>> {
        self.set_job_column(job_id, "paused", &paused)
    }

    /// Set `column` (a name of ours, never a client's) of job `job_id` to
    /// `value`; returns its state, `None` for no such job.
    fn set_job_column(
        &mut self,
        job_id: JobId,
        column: &'static str,
        value: &dyn rusqlite::ToSql,
    ) -> Result<Option<JobState>> {
        let sql = format!("UPDATE jobs SET {column} = ?2 WHERE id = ?1");
        self.conn.execute(&sql, params![job_id, value])?;
        job_state(&self.conn, job_id)
    }

    /// The input files of a job, in submission order.
    pub fn files(&self, job_id: JobId) -> Result<Vec<FileRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT f.id, f.job_id, f.idx, f.path, f.state, f.duration_us, f.progress, f.error,
                    (SELECT COUNT(*) FROM variations v
                     WHERE v.file_id = f.id AND v.state = 'succeeded')
             FROM files f WHERE f.job_id = ?1 ORDER BY f.idx",
        )?;
        let rows = stmt.query_map([job_id], |r| {
            Ok((
                FileRow {
                    id: r.get(0)?,
                    job_id: r.get(1)?,
                    idx: r.get(2)?,
                    path: path_of(r.get(3)?),
                    state: FileState::Queued,
                    duration_us: r.get::<_, Option<i64>>(5)?.map(|d| d as u64),
                    progress: r.get(6)?,
                    error: r.get(7)?,
                    done_variations: r.get(8)?,
                    nodes: Vec::new(),
                },
                r.get::<_, String>(4)?,
            ))
        })?;
        rows.map(|r| {
            let (mut row, state) = r?;
            row.state = parse_file_state(&state)?;
            Ok(row)
        })
        .collect()
    }

    /// Verified outputs of a job, by input then variation index.
    pub fn outputs(&self, job_id: JobId) -> Result<Vec<OutputRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT v.output_path, v.size_bytes, f.path, v.idx,
                    v.rotation, v.brightness, v.contrast, v.saturation,
                    v.check_samples, v.ssim_mean, v.ssim_min, v.luma_diff
             FROM variations v JOIN files f ON f.id = v.file_id
             WHERE f.job_id = ?1 AND v.state = 'succeeded'
             ORDER BY f.idx, v.idx",
        )?;
        let rows = stmt.query_map([job_id], |r| {
            Ok(OutputRow {
                path: path_of(r.get(0)?),
                size: r.get::<_, i64>(1)? as u64,
                input: path_of(r.get(2)?),
                index: r.get(3)?,
                effects: effects_of(r, 4)?,
                node: None,
                quality: quality_of(r, 8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Number of variations queued or running in the open jobs of `owner`.
    pub fn pending_variations(&self, owner: u32) -> Result<u64> {
        pending_variations(&self.conn, owner)
    }

    /// Number of jobs queued or running.
    pub fn queue_depth(&self) -> Result<u64> {
        queue_depth(&self.conn)
    }

    /// Cancel a job: it becomes cancelled, its queued files and variations
    /// too. Running variations keep running until the caller stops them and
    /// reports [`Outcome::Cancelled`]. Returns the job's state before, or
    /// `None` if there is no such job; a job already final is left as is.
    pub fn cancel_job(&mut self, job_id: JobId) -> Result<Option<JobState>> {
        let tx = self.conn.transaction()?;
        let Some(before) = job_state(&tx, job_id)? else {
            return Ok(None);
        };
        if !before.is_final() {
            tx.execute(
                "UPDATE variations SET state = 'cancelled'
                 WHERE state = 'queued' AND file_id IN (SELECT id FROM files WHERE job_id = ?1)",
                [job_id],
            )?;
            tx.execute(
                "UPDATE files SET state = 'cancelled' WHERE job_id = ?1 AND state = 'queued'",
                [job_id],
            )?;
            tx.execute(
                "UPDATE jobs SET state = 'cancelled', finished_at = strftime('%s', 'now')
                 WHERE id = ?1",
                [job_id],
            )?;
            let running: Vec<i64> = tx
                .prepare("SELECT id FROM files WHERE job_id = ?1 AND state = 'running'")?
                .query_map([job_id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for file_id in running {
                settle_file(&tx, file_id)?;
            }
        }
        tx.commit()?;
        Ok(Some(before))
    }

    /// Re-queue what did not succeed in a final job: its failed and
    /// cancelled variations become queued again with their stored effects,
    /// their files are probed anew, verified outputs are kept. Returns the
    /// job's state before and the number of variations re-queued, or `None`
    /// if there is no such job. Jobs not final, or succeeded, or with a
    /// variation still running (a cancel still stopping it), or with nothing
    /// failed or cancelled, are left as is (0 re-queued).
    pub fn retry_job(&mut self, job_id: JobId) -> Result<Option<(JobState, u64)>> {
        let tx = self.conn.transaction()?;
        let Some(before) = job_state(&tx, job_id)? else {
            return Ok(None);
        };
        if !before.is_final() || before == JobState::Succeeded {
            return Ok(Some((before, 0)));
        }
        let stopping: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM variations v JOIN files f ON f.id = v.file_id
                            WHERE f.job_id = ?1 AND v.state = 'running')",
            [job_id],
            |r| r.get(0),
        )?;
        if stopping {
            // A cancel is still stopping its variations: the job is left
            // as it is.
            return Ok(Some((before, 0)));
        }
        let requeued = tx.execute(
            "UPDATE variations SET state = 'queued', error = NULL
             WHERE state IN ('failed', 'cancelled')
               AND file_id IN (SELECT id FROM files WHERE job_id = ?1)",
            [job_id],
        )?;
        if requeued == 0 {
            return Ok(Some((before, 0)));
        }
        // Progress restarts from what is verified: the rest is redone.
        let files: Vec<i64> = tx
            .prepare(
                "SELECT DISTINCT f.id FROM files f JOIN variations v ON v.file_id = f.id
                 WHERE f.job_id = ?1 AND v.state = 'queued'",
            )?
            .query_map([job_id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for file_id in files {
            let counts = variation_counts(&tx, file_id)?;
            tx.execute(
                "UPDATE files SET state = 'queued', probed = 0, error = NULL, progress = ?2
                 WHERE id = ?1",
                params![
                    file_id,
                    job::file_progress(counts.total, counts.succeeded, 0.0)
                ],
            )?;
        }
        tx.execute(
            "UPDATE jobs SET state = 'queued', finished_at = NULL WHERE id = ?1",
            [job_id],
        )?;
        tx.commit()?;
        Ok(Some((before, requeued as u64)))
    }

    /// Delete the records (job, files, variations) of final jobs of `owner`
    /// (of everyone for `None`) that finished at or before `finished_before`
    /// (unix seconds), but not while a variation of it is still running or
    /// its completion hook is still owed. Returns the number of jobs
    /// removed.
    pub fn prune(&mut self, owner: Option<u32>, finished_before: i64) -> Result<u64> {
        let removed = self.conn.execute(
            "DELETE FROM jobs
             WHERE state IN ('succeeded', 'partial', 'failed', 'cancelled')
               AND finished_at <= ?1 AND (?2 IS NULL OR owner_uid = ?2)
               AND NOT EXISTS (SELECT 1 FROM files f JOIN variations v ON v.file_id = f.id
                               WHERE f.job_id = jobs.id AND v.state = 'running')
               AND NOT EXISTS (SELECT 1 FROM hooks h WHERE h.job_id = jobs.id)",
            params![finished_before, owner],
        )?;
        Ok(removed as u64)
    }
}

/// Variations queued or running of `owner`'s open jobs.
fn pending_variations(conn: &Connection, owner: u32) -> Result<u64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM variations v
         JOIN files f ON f.id = v.file_id JOIN jobs j ON j.id = f.job_id
         WHERE j.state IN ('queued', 'running') AND j.owner_uid = ?1
           AND v.state IN ('queued', 'running')",
        [owner],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// Number of jobs queued or running.
fn queue_depth(conn: &Connection) -> Result<u64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// Insert a job with its files and variations, all queued, on `tx`.
fn insert_job(tx: &Connection, job: &NewJob) -> Result<JobId> {
    tx.execute(
        "INSERT INTO jobs (state, variations, seed, output_dir, created_at,
                           owner_uid, owner_gid, owner_groups,
                           output_real, output_dev, output_ino, priority, label_list)
         VALUES ('queued', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            job.variations,
            job.seed as i64,
            text_of(&job.output_dir.0),
            job.created_at,
            job.owner.uid,
            job.owner.gid,
            groups_text(&job.owner.groups),
            text_of(&job.output_dir.1.real),
            job.output_dir.1.identity.dev as i64,
            job.output_dir.1.identity.ino as i64,
            job.priority,
            job.labels.join("\n")
        ],
    )?;
    let job_id = tx.last_insert_rowid();
    let mut label_stmt =
        tx.prepare_cached("INSERT OR IGNORE INTO labels (label, job_id) VALUES (?1, ?2)")?;
    for label in &job.labels {
        label_stmt.execute(params![label, job_id])?;
    }
    let mut file_stmt = tx.prepare_cached(
        "INSERT INTO files (job_id, idx, path, state, real_path, dev, ino)
         VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6)",
    )?;
    let mut var_stmt = tx.prepare_cached(
        "INSERT INTO variations
         (file_id, idx, rotation, brightness, contrast, saturation, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued')",
    )?;
    for (idx, (path, vetted, effects)) in job.inputs.iter().enumerate() {
        file_stmt.execute(params![
            job_id,
            idx as i64,
            text_of(path),
            text_of(&vetted.real),
            vetted.identity.dev as i64,
            vetted.identity.ino as i64
        ])?;
        let file_id = tx.last_insert_rowid();
        for (v, e) in effects.iter().enumerate() {
            var_stmt.execute(params![
                file_id,
                v as i64 + 1,
                e.rotation,
                e.brightness,
                e.contrast,
                e.saturation
            ])?;
        }
    }
    Ok(job_id)
}
