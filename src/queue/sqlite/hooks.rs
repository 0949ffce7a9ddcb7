//! Completion hooks owed in the SQLite queue: a row written by the
//! schema's triggers in the same write that ends a job (or dropped by the
//! one that reopens it), claimed to run, marked started just before its
//! spawn, its process recorded, removed once it ran (never on an error). Running the hook is the engine's.

use super::error::Result;
use super::rows::owner_of;
use super::store::Store;
use crate::job::JobId;
use crate::process::ProcessIdentity;
use crate::queue::HookRun;
use rusqlite::{OptionalExtension, params};

impl Store {
    /// Claim the due hook of the lowest job id, as started at `now` (Unix
    /// seconds).
    pub fn claim_hook(&mut self, now: i64) -> Result<Option<HookRun>> {
        let tx = self.conn.transaction()?;
        let claimed = tx
            .query_row(
                "SELECT h.job_id, j.owner_uid, j.owner_gid, j.owner_groups
                 FROM hooks h JOIN jobs j ON j.id = h.job_id
                 WHERE h.state = 'due' ORDER BY h.job_id LIMIT 1",
                [],
                |r| {
                    Ok(HookRun {
                        job_id: r.get(0)?,
                        owner: owner_of(r, 1)?,
                        started_at: now,
                        process: None,
                    })
                },
            )
            .optional()?;
        if let Some(run) = &claimed {
            tx.execute(
                "UPDATE hooks SET state = 'running', started_at = ?2 WHERE job_id = ?1",
                params![run.job_id, now],
            )?;
        }
        tx.commit()?;
        Ok(claimed)
    }

    /// Just before the claimed hook of `job_id` is spawned, at `now` (Unix
    /// seconds): whether it is still claimed and not spawned yet.
    pub fn starting_hook(&mut self, job_id: JobId, now: i64) -> Result<bool> {
        let held = self.conn.execute(
            "UPDATE hooks SET started_at = ?2
             WHERE job_id = ?1 AND state = 'running' AND pid IS NULL",
            params![job_id, now],
        )?;
        Ok(held == 1)
    }

    /// The process of a claimed hook runs.
    pub fn set_hook_process(&mut self, job_id: JobId, process: &ProcessIdentity) -> Result<()> {
        self.conn.execute(
            "UPDATE hooks SET pid = ?2, pid_start_time = ?3, boot_id = ?4
             WHERE job_id = ?1 AND state = 'running'",
            params![
                job_id,
                process.pid,
                process.start_time as i64,
                process.boot_id
            ],
        )?;
        Ok(())
    }

    /// A claimed hook has run: the job owes none any more (unless it was
    /// retried and ended again meanwhile: that end's hook stays due).
    pub fn finish_hook(&mut self, job_id: JobId) -> Result<()> {
        self.conn.execute(
            "DELETE FROM hooks WHERE job_id = ?1 AND state = 'running'",
            [job_id],
        )?;
        Ok(())
    }

    /// After a stop: hooks claimed but never spawned, or spawned before
    /// the boot `boot` (the kernel's boot id now), are due again; those
    /// spawned since are returned, with their processes.
    pub fn hooks_left_running(&mut self, boot: &str) -> Result<Vec<HookRun>> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE hooks SET state = 'due', started_at = NULL,
                    pid = NULL, pid_start_time = NULL, boot_id = NULL
             WHERE state = 'running' AND (pid IS NULL OR boot_id IS NOT ?1)",
            [boot],
        )?;
        let runs = tx
            .prepare(
                "SELECT h.job_id, j.owner_uid, j.owner_gid, j.owner_groups, h.started_at,
                        h.pid, h.pid_start_time, h.boot_id
                 FROM hooks h JOIN jobs j ON j.id = h.job_id
                 WHERE h.state = 'running' ORDER BY h.job_id",
            )?
            .query_map([], |r| {
                Ok(HookRun {
                    job_id: r.get(0)?,
                    owner: owner_of(r, 1)?,
                    started_at: r.get(4)?,
                    process: Some(ProcessIdentity {
                        pid: r.get(5)?,
                        start_time: r.get::<_, i64>(6)? as u64,
                        boot_id: r.get(7)?,
                    }),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(runs)
    }
}
