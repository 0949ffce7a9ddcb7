//! Completion hooks owed in the shared queue: a row written by the
//! schema's trigger in the same write that ends a job through a node whose
//! hooks are on (or dropped by the one that reopens it), claimed by one
//! node to run, its process recorded, removed once it ran. Running the
//! hook is the engine's.

use super::rows::{credentials, exec, opt, rows};
use super::store::PgQueue;
use crate::job::JobId;
use crate::process::ProcessIdentity;
use crate::queue::{HookRun, Result};

impl PgQueue {
    pub(super) async fn claim_hook(&self) -> Result<Option<HookRun>> {
        let client = self.pool.get().await?;
        let row = opt(
            &client,
            "WITH due AS (SELECT job_id FROM hooks WHERE state = 'due'
                          ORDER BY job_id LIMIT 1 FOR UPDATE SKIP LOCKED)
             UPDATE hooks h SET state = 'running', node = $1,
                    started_at = extract(epoch FROM now())::bigint
             FROM due, jobs j WHERE h.job_id = due.job_id AND j.id = h.job_id
             RETURNING h.job_id, h.started_at, j.owner_uid, j.owner_gid, j.owner_groups",
            &[&self.node],
        )
        .await?;
        Ok(row.map(|r| HookRun {
            job_id: r.get(0),
            started_at: r.get(1),
            owner: credentials(&r, 2),
            process: None,
        }))
    }

    pub(super) async fn set_hook_process(
        &self,
        job: JobId,
        process: ProcessIdentity,
    ) -> Result<()> {
        let client = self.pool.get().await?;
        exec(
            &client,
            "UPDATE hooks SET pid = $3, pid_start_time = $4, boot_id = $5
             WHERE job_id = $1 AND node = $2 AND state = 'running'",
            &[
                &job,
                &self.node,
                &process.pid,
                &(process.start_time as i64),
                &process.boot_id,
            ],
        )
        .await?;
        Ok(())
    }

    pub(super) async fn finish_hook(&self, job: JobId) -> Result<()> {
        let client = self.pool.get().await?;
        exec(
            &client,
            "DELETE FROM hooks WHERE job_id = $1 AND node = $2 AND state = 'running'",
            &[&job, &self.node],
        )
        .await?;
        Ok(())
    }

    pub(super) async fn hooks_left_running(&self) -> Result<Vec<HookRun>> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        exec(
            &tx,
            "UPDATE hooks SET state = 'due', node = NULL, started_at = NULL
             WHERE state = 'running' AND node = $1 AND pid IS NULL",
            &[&self.node],
        )
        .await?;
        let runs = rows(
            &tx,
            "SELECT h.job_id, h.started_at, j.owner_uid, j.owner_gid, j.owner_groups,
                    h.pid, h.pid_start_time, h.boot_id
             FROM hooks h JOIN jobs j ON j.id = h.job_id
             WHERE h.state = 'running' AND h.node = $1 ORDER BY h.job_id",
            &[&self.node],
        )
        .await?
        .iter()
        .map(|r| HookRun {
            job_id: r.get(0),
            started_at: r.get(1),
            owner: credentials(r, 2),
            process: Some(ProcessIdentity {
                pid: r.get(5),
                start_time: r.get::<_, i64>(6) as u64,
                boot_id: r.get(7),
            }),
        })
        .collect();
        tx.commit().await?;
        Ok(runs)
    }
}
