//! Jobs in the shared queue as their owners see and change them: submit
//! (within the limits, one submission at a time), the views (a job, a page
//! of jobs, its files and outputs, counts), priority and a job's pause,
//! cancel, retry and prune. Every change that makes work claimable tells
//! the other nodes.

use super::rows::{
    JOB_COLUMNS, announce, effects, exec, file_state, job_row, job_state, one, opt, rows, text,
};
use super::schema;
use super::settle::{locked_job_state, settle_file, variation_counts};
use super::store::PgQueue;
use crate::job::{self, JobId, JobState, Quality};
use crate::queue::{FileRow, Full, JobFilter, JobRow, Limits, NewJob, OutputRow, Result};
use deadpool_postgres::Transaction;
use std::path::PathBuf;
use tokio_postgres::types::ToSql;

impl PgQueue {
    pub(super) async fn submit(
        &self,
        job: NewJob,
        limits: Limits,
    ) -> Result<std::result::Result<JobId, Full>> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let id = match insert_job_within(&tx, &job, limits).await? {
            Ok(id) => id,
            Err(full) => return Ok(Err(full)),
        };
        announce(&tx).await?;
        tx.commit().await?;
        Ok(Ok(id))
    }

    pub(super) async fn job(&self, id: JobId) -> Result<Option<JobRow>> {
        let client = self.pool.get().await?;
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs j WHERE j.id = $1");
        opt(&client, &sql, &[&id])
            .await?
            .map(|r| job_row(&r))
            .transpose()
    }

    pub(super) async fn jobs(&self, filter: JobFilter) -> Result<Vec<JobRow>> {
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs j
             WHERE j.id > $1 AND ($2::bigint IS NULL OR j.owner_uid = $2)
               AND ($3::text IS NULL OR j.state = $3)
               AND ($4::text IS NULL
                    OR EXISTS (SELECT 1 FROM labels l WHERE l.job_id = j.id AND l.label = $4))
             ORDER BY j.id LIMIT $5"
        );
        let owner = filter.owner.map(i64::from);
        let state = filter.state.map(JobState::as_str);
        let limit = i64::from(filter.limit);
        rows(
            &client,
            &sql,
            &[&filter.after, &owner, &state, &filter.label, &limit],
        )
        .await?
        .iter()
        .map(job_row)
        .collect()
    }

    pub(super) async fn files(&self, job: JobId) -> Result<Vec<FileRow>> {
        let client = self.pool.get().await?;
        let rows = rows(
            &client,
            "SELECT f.id, f.job_id, f.idx, f.path, f.state, f.duration_us, f.progress,
                        f.error,
                        (SELECT COUNT(*) FROM variations v
                         WHERE v.file_id = f.id AND v.state = 'succeeded'),
                        ARRAY(SELECT DISTINCT v.node FROM variations v
                              WHERE v.file_id = f.id AND v.node IS NOT NULL
                                AND v.state IN ('running', 'succeeded') ORDER BY 1)
                 FROM files f WHERE f.job_id = $1 ORDER BY f.idx",
            &[&job],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FileRow {
                    id: r.get(0),
                    job_id: r.get(1),
                    idx: r.get::<_, i32>(2) as u32,
                    path: PathBuf::from(r.get::<_, String>(3)),
                    state: file_state(r.get(4))?,
                    duration_us: r.get::<_, Option<i64>>(5).map(|d| d as u64),
                    progress: r.get(6),
                    error: r.get(7),
                    done_variations: r.get::<_, i64>(8) as u32,
                    nodes: r.get(9),
                })
            })
            .collect()
    }

    pub(super) async fn outputs(&self, job: JobId) -> Result<Vec<OutputRow>> {
        let client = self.pool.get().await?;
        let rows = rows(
            &client,
            "SELECT v.output_path, v.size_bytes, f.path, v.idx,
                        v.rotation, v.brightness, v.contrast, v.saturation, v.node,
                        v.check_samples, v.ssim_mean, v.ssim_min, v.luma_diff
                 FROM variations v JOIN files f ON f.id = v.file_id
                 WHERE f.job_id = $1 AND v.state = 'succeeded'
                 ORDER BY f.idx, v.idx",
            &[&job],
        )
        .await?;
        Ok(rows
            .iter()
            .map(|r| OutputRow {
                path: PathBuf::from(r.get::<_, String>(0)),
                size: r.get::<_, i64>(1) as u64,
                input: PathBuf::from(r.get::<_, String>(2)),
                index: r.get::<_, i32>(3) as u32,
                effects: effects(r, 4),
                node: r.get(8),
                quality: r.get::<_, Option<i32>>(9).map(|samples| Quality {
                    samples: samples as u32,
                    ssim_mean: r.get(10),
                    ssim_min: r.get(11),
                    luma_diff: r.get(12),
                }),
            })
            .collect())
    }

    pub(super) async fn queue_depth(&self) -> Result<u64> {
        let client = self.pool.get().await?;
        let n: i64 = one(
            &client,
            "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')",
            &[],
        )
        .await?
        .get(0);
        Ok(n as u64)
    }

    pub(super) async fn cancel(&self, job: JobId) -> Result<Option<JobState>> {
        self.in_tx(|tx| {
            Box::pin(async move {
                let Some(before) = locked_job_state(tx, job).await? else {
                    return Ok(None);
                };
                if before.is_final() {
                    return Ok(Some(before));
                }
                exec(
                    tx,
                    "UPDATE variations SET state = 'cancelled'
                     WHERE state = 'queued'
                       AND file_id IN (SELECT id FROM files WHERE job_id = $1)",
                    &[&job],
                )
                .await?;
                exec(
                    tx,
                    "UPDATE files SET state = 'cancelled' WHERE job_id = $1 AND state = 'queued'",
                    &[&job],
                )
                .await?;
                exec(
                    tx,
                    "UPDATE jobs SET state = 'cancelled',
                         finished_at = extract(epoch FROM now())::bigint
                     WHERE id = $1",
                    &[&job],
                )
                .await?;
                announce(tx).await?;
                let running = rows(
                    tx,
                    "SELECT id FROM files WHERE job_id = $1 AND state = 'running' ORDER BY id",
                    &[&job],
                )
                .await?;
                for r in running {
                    settle_file(tx, r.get(0)).await?;
                }
                Ok(Some(before))
            })
        })
        .await
    }

    pub(super) async fn retry(&self, job: JobId) -> Result<Option<(JobState, u64)>> {
        self.in_tx(|tx| {
            Box::pin(async move {
                let Some(before) = locked_job_state(tx, job).await? else {
                    return Ok(None);
                };
                if !before.is_final() || before == JobState::Succeeded {
                    return Ok(Some((before, 0)));
                }
                let stopping: bool = one(
                    tx,
                    "SELECT EXISTS (SELECT 1 FROM variations v JOIN files f ON f.id = v.file_id
                                    WHERE f.job_id = $1 AND v.state = 'running')",
                    &[&job],
                )
                .await?
                .get(0);
                if stopping {
                    // A cancel is still stopping its variations: the job
                    // is left as it is.
                    return Ok(Some((before, 0)));
                }
                let requeued = exec(
                    tx,
                    "UPDATE variations SET state = 'queued', error = NULL
                         WHERE state IN ('failed', 'cancelled')
                           AND file_id IN (SELECT id FROM files WHERE job_id = $1)",
                    &[&job],
                )
                .await?;
                if requeued == 0 {
                    return Ok(Some((before, 0)));
                }
                let files = rows(
                    tx,
                    "SELECT DISTINCT f.id FROM files f JOIN variations v ON v.file_id = f.id
                         WHERE f.job_id = $1 AND v.state = 'queued'",
                    &[&job],
                )
                .await?;
                for r in files {
                    let file_id: i64 = r.get(0);
                    let counts = variation_counts(tx, file_id).await?;
                    let progress = job::file_progress(counts.total, counts.succeeded, 0.0);
                    exec(
                        tx,
                        "UPDATE files SET state = 'queued', probed = false, error = NULL,
                             progress = $2, node = NULL, lease_until = NULL
                         WHERE id = $1",
                        &[&file_id, &progress],
                    )
                    .await?;
                }
                exec(
                    tx,
                    "UPDATE jobs SET state = 'queued', finished_at = NULL WHERE id = $1",
                    &[&job],
                )
                .await?;
                announce(tx).await?;
                Ok(Some((before, requeued)))
            })
        })
        .await
    }

    pub(super) async fn prune(&self, owner: Option<u32>, finished_before: i64) -> Result<u64> {
        let client = self.pool.get().await?;
        let owner = owner.map(i64::from);
        exec(
            &client,
            "DELETE FROM jobs
                 WHERE state IN ('succeeded', 'partial', 'failed', 'cancelled')
                   AND finished_at <= $1 AND ($2::bigint IS NULL OR owner_uid = $2)
                   AND NOT EXISTS (SELECT 1 FROM files f JOIN variations v ON v.file_id = f.id
                                   WHERE f.job_id = jobs.id AND v.state = 'running')
                   AND NOT EXISTS (SELECT 1 FROM hooks h WHERE h.job_id = jobs.id)",
            &[&finished_before, &owner],
        )
        .await
    }

    pub(super) async fn set_priority(&self, job: JobId, priority: i32) -> Result<Option<JobState>> {
        self.set_job_column(job, "priority", &priority).await
    }

    pub(super) async fn set_job_paused(
        &self,
        job: JobId,
        paused: bool,
    ) -> Result<Option<JobState>> {
        self.set_job_column(job, "paused", &paused).await
    }

    /// Set `column` of job `job` to `value` and tell every node (work may
    /// have become claimable). Returns the job's state, `None` for no such
    /// job.
    async fn set_job_column(
        &self,
        job: JobId,
        column: &'static str,
        value: &(dyn ToSql + Sync),
    ) -> Result<Option<JobState>> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let sql = format!("UPDATE jobs SET {column} = $2 WHERE id = $1 RETURNING state");
        let state = opt(&tx, &sql, &[&job, value]).await?;
        announce(&tx).await?;
        tx.commit().await?;
        state.map(|r| job_state(r.get(0))).transpose()
    }
}

/// Insert `job`, all of it queued, in the caller's transaction `tx`, if
/// it fits in `limits` (one submission at a time: an advisory lock held to
/// the end of `tx`).
pub(super) async fn insert_job_within(
    tx: &Transaction<'_>,
    job: &NewJob,
    limits: Limits,
) -> Result<std::result::Result<JobId, Full>> {
    // One submission at a time, so that two cannot pass a limit together.
    exec(
        tx,
        "SELECT pg_advisory_xact_lock($1)",
        &[&schema::SUBMIT_LOCK],
    )
    .await?;
    let pending: i64 = one(
        tx,
        "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')",
        &[],
    )
    .await?
    .get(0);
    if pending as u64 >= limits.max_jobs {
        return Ok(Err(Full::Jobs {
            pending: pending as u64,
        }));
    }
    if let Some(max) = limits.max_owner_variations {
        let pending: i64 = one(
            tx,
            "SELECT COUNT(*) FROM variations v
                 JOIN files f ON f.id = v.file_id JOIN jobs j ON j.id = f.job_id
                 WHERE j.state IN ('queued', 'running') AND j.owner_uid = $1
                   AND v.state IN ('queued', 'running')",
            &[&(job.owner.uid as i64)],
        )
        .await?
        .get(0);
        let asked = job.inputs.iter().map(|(_, _, e)| e.len() as u64).sum();
        if pending as u64 + asked > max {
            return Ok(Err(Full::Owner {
                pending: pending as u64,
                asked,
            }));
        }
    }
    let groups: Vec<i64> = job.owner.groups.iter().map(|&g| g as i64).collect();
    let job_id: i64 = one(
        tx,
        "INSERT INTO jobs (state, variations, seed, output_dir, output_real, output_dev,
                               output_ino, created_at, owner_uid, owner_gid, owner_groups,
                               priority, label_list)
             VALUES ('queued', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        &[
            &(job.variations as i32),
            &(job.seed as i64),
            &text(&job.output_dir.0),
            &text(&job.output_dir.1.real),
            &(job.output_dir.1.identity.dev as i64),
            &(job.output_dir.1.identity.ino as i64),
            &job.created_at,
            &(job.owner.uid as i64),
            &(job.owner.gid as i64),
            &groups,
            &job.priority,
            &job.labels,
        ],
    )
    .await?
    .get(0);
    exec(
        tx,
        "INSERT INTO labels (label, job_id)
         SELECT DISTINCT l, $2::bigint FROM unnest($1::text[]) l",
        &[&job.labels, &job_id],
    )
    .await?;

    for (idx, (path, vetted, effects)) in job.inputs.iter().enumerate() {
        let file_id: i64 = one(
            tx,
            "INSERT INTO files (job_id, idx, path, real_path, dev, ino, state)
             VALUES ($1, $2, $3, $4, $5, $6, 'queued') RETURNING id",
            &[
                &job_id,
                &(idx as i32),
                &text(path),
                &text(&vetted.real),
                &(vetted.identity.dev as i64),
                &(vetted.identity.ino as i64),
            ],
        )
        .await?
        .get(0);
        let (rotation, brightness, contrast, saturation): (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) = (
            effects.iter().map(|e| e.rotation).collect(),
            effects.iter().map(|e| e.brightness).collect(),
            effects.iter().map(|e| e.contrast).collect(),
            effects.iter().map(|e| e.saturation).collect(),
        );
        exec(
            tx,
            "INSERT INTO variations
                 (file_id, idx, rotation, brightness, contrast, saturation, state)
             SELECT $1, n::integer, r, b, c, s, 'queued'
             FROM unnest($2::float8[], $3::float8[], $4::float8[], $5::float8[])
                  WITH ORDINALITY AS e(r, b, c, s, n)",
            &[&file_id, &rotation, &brightness, &contrast, &saturation],
        )
        .await?;
    }
    Ok(Ok(job_id))
}
