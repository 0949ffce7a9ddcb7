//! Recovery in the SQLite queue: what a stop of the daemon left. The
//! variations it left running (for the cleanup of their files and
//! processes), the idle jobs a clean stop queues again, and the rest,
//! which fails as interrupted ([`crate::queue::Sharing::OneDaemon`]).

use super::error::Result;
use super::rows::{path_of, place_of, sole_lease};
use super::settle::{settle_file, settle_job};
use super::store::Store;
use crate::job::{FileIdentity, JobId};
use crate::process::ProcessIdentity;
use crate::queue::Interrupted;

/// The reason given to work cut short by a daemon stop or crash.
pub const INTERRUPTED: &str = "interrupted: daemon restarted";

impl Store {
    /// Variations left running by a previous daemon run.
    pub fn interrupted(&self) -> Result<Vec<Interrupted>> {
        let mut stmt = self.conn.prepare(
            "SELECT v.id, v.temp_path, v.pid, v.pid_start_time, v.boot_id,
                    j.output_dir, j.output_real, j.output_dev, j.output_ino,
                    v.temp_dev, v.temp_ino
             FROM variations v JOIN files f ON f.id = v.file_id JOIN jobs j ON j.id = f.job_id
             WHERE v.state = 'running'",
        )?;
        let rows = stmt.query_map([], |r| {
            let pid: Option<i32> = r.get(2)?;
            let start: Option<i64> = r.get(3)?;
            let boot: Option<String> = r.get(4)?;
            Ok(Interrupted {
                lease: sole_lease(r.get(0)?),
                temp_path: r.get::<_, Option<String>>(1)?.map(path_of),
                output_dir: place_of(r, 5, 6)?,
                temp_identity: match (r.get::<_, Option<i64>>(9)?, r.get::<_, Option<i64>>(10)?) {
                    (Some(dev), Some(ino)) => Some(FileIdentity {
                        dev: dev as u64,
                        ino: ino as u64,
                    }),
                    _ => None,
                },
                process: match (pid, start, boot) {
                    (Some(pid), Some(start), Some(boot_id)) => Some(ProcessIdentity {
                        pid,
                        start_time: start as u64,
                        boot_id,
                    }),
                    _ => None,
                },
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// At a clean stop, before [`Store::mark_interrupted`]: put back in the
    /// queue every running job of which no variation is being encoded (its
    /// inputs were probed, or some variations done, but no FFmpeg runs for
    /// it now), so that it simply goes on after the restart instead of
    /// failing as interrupted. Returns those jobs.
    pub fn requeue_idle_jobs(&mut self) -> Result<Vec<JobId>> {
        let tx = self.conn.transaction()?;
        let jobs: Vec<JobId> = tx
            .prepare(
                "SELECT j.id FROM jobs j WHERE j.state = 'running' AND NOT EXISTS
                    (SELECT 1 FROM files f JOIN variations v ON v.file_id = f.id
                     WHERE f.job_id = j.id AND v.state = 'running')
                 ORDER BY j.id",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for &job_id in &jobs {
            tx.execute(
                "UPDATE files SET state = 'queued', probed = 0
                 WHERE job_id = ?1 AND state = 'running'",
                [job_id],
            )?;
            tx.execute("UPDATE jobs SET state = 'queued' WHERE id = ?1", [job_id])?;
        }
        tx.commit()?;
        Ok(jobs)
    }

    /// Settle everything a previous run left unfinished: in every job left
    /// running, the files and variations not yet final fail with
    /// [`INTERRUPTED`] and the job settles (partial when it has any
    /// verified output, else failed); verified outputs stay listed. Variations still
    /// running in a job already cancelled become cancelled. Queued jobs stay
    /// queued. Returns the ids of the jobs marked interrupted.
    ///
    /// Call after [`Store::interrupted`] has been used to clean up.
    pub fn mark_interrupted(&mut self) -> Result<Vec<JobId>> {
        let tx = self.conn.transaction()?;
        let jobs: Vec<JobId> = tx
            .prepare("SELECT id FROM jobs WHERE state = 'running' ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        tx.execute(
            "UPDATE variations SET state = 'failed', error = ?1, temp_path = NULL, pid = NULL
             WHERE state IN ('queued', 'running') AND file_id IN
                (SELECT f.id FROM files f JOIN jobs j ON j.id = f.job_id
                 WHERE j.state = 'running')",
            [INTERRUPTED],
        )?;
        tx.execute(
            "UPDATE files SET state = 'failed', error = ?1
             WHERE state IN ('queued', 'running')
               AND job_id IN (SELECT id FROM jobs WHERE state = 'running')",
            [INTERRUPTED],
        )?;
        for &job_id in &jobs {
            settle_job(&tx, job_id)?;
        }
        let files: Vec<i64> = tx
            .prepare("SELECT DISTINCT file_id FROM variations WHERE state = 'running'")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        tx.execute(
            "UPDATE variations SET state = 'cancelled', temp_path = NULL, pid = NULL
             WHERE state = 'running'",
            [],
        )?;
        for file_id in files {
            settle_file(&tx, file_id)?;
        }
        tx.commit()?;
        Ok(jobs)
    }
}
