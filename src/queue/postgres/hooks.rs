//! Completion hooks owed in the shared queue: a row written by the
//! schema's trigger in the same write that ends a job through a node whose
//! hooks are on (or dropped by the one that reopens it), claimed by one
//! node to run, marked started just before its spawn, its process
//! recorded, removed once it ran (never on an error); every write is
//! fenced by the node that claimed it. The hooks of a node that is lost
//! are taken over by another, as claims are. Running the hook is the
//! engine's.

use super::error::PgError;
use super::rows::{announce, credentials, exec, opt, rows};
use super::store::PgQueue;
use crate::job::JobId;
use crate::process::ProcessIdentity;
use crate::queue::{HookRun, Result};
use tokio_postgres::Row;

/// The columns [`handed_back`] reads, of `hooks h JOIN jobs j`.
const HANDED_BACK: &str = "h.job_id, h.started_at, j.owner_uid, j.owner_gid, j.owner_groups,
     h.pid, h.pid_start_time, h.boot_id";

/// A running hook handed back with its process ([`HANDED_BACK`]'s columns).
fn handed_back(r: &Row) -> HookRun {
    HookRun {
        job_id: r.get(0),
        started_at: r.get(1),
        owner: credentials(r, 2),
        process: Some(ProcessIdentity {
            pid: r.get(5),
            start_time: r.get::<_, i64>(6) as u64,
            boot_id: r.get(7),
        }),
    }
}

/// The kernel's boot id: which of the processes recorded are this
/// machine's, since its boot.
fn this_boot() -> std::result::Result<String, PgError> {
    crate::process::boot_id().map_err(PgError::Identity)
}

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

    pub(super) async fn starting_hook(&self, job: JobId) -> Result<bool> {
        let client = self.pool.get().await?;
        let held = exec(
            &client,
            "UPDATE hooks SET started_at = extract(epoch FROM now())::bigint
             WHERE job_id = $1 AND node = $2 AND state = 'running' AND pid IS NULL",
            &[&job, &self.node],
        )
        .await?;
        Ok(held == 1)
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
        let boot = this_boot()?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        exec(
            &tx,
            "UPDATE hooks SET state = 'due', node = NULL, started_at = NULL,
                    pid = NULL, pid_start_time = NULL, boot_id = NULL
             WHERE state = 'running' AND node = $1
               AND (pid IS NULL OR boot_id IS DISTINCT FROM $2)",
            &[&self.node, &boot],
        )
        .await?;
        let sql = format!(
            "SELECT {HANDED_BACK} FROM hooks h JOIN jobs j ON j.id = h.job_id
             WHERE h.state = 'running' AND h.node = $1 ORDER BY h.job_id"
        );
        let runs = rows(&tx, &sql, &[&self.node]).await?;
        tx.commit().await?;
        Ok(runs.iter().map(handed_back).collect())
    }

    pub(super) async fn adopt_hooks(&self) -> Result<Vec<HookRun>> {
        let boot = this_boot()?;
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (node, lease_secs) = (self.node.clone(), self.lease_secs);
        self.in_tx(move |tx| {
            Box::pin(async move {
                // Lost: silent for the lease time while the server was up
                // (a restart of the database silences every node). The
                // lock makes a node that registers again meanwhile either
                // wait for this takeover or be seen live.
                let lost: Vec<String> = rows(
                    tx,
                    "SELECT n.name FROM nodes n
                     WHERE n.name <> $1
                       AND greatest(n.heartbeat_at, pg_postmaster_start_time())
                           < now() - make_interval(secs => $2)
                       AND EXISTS (SELECT 1 FROM hooks h
                                   WHERE h.node = n.name AND h.state = 'running')
                     ORDER BY n.name FOR UPDATE OF n",
                    &[&node, &lease_secs],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
                if lost.is_empty() {
                    return Ok(Vec::new());
                }
                let owed = exec(
                    tx,
                    "UPDATE hooks h SET state = 'due', node = NULL, started_at = NULL,
                            pid = NULL, pid_start_time = NULL, boot_id = NULL
                     FROM nodes n
                     WHERE n.name = h.node AND h.node = ANY($1) AND h.state = 'running'
                       AND (h.pid IS NULL OR h.boot_id IS DISTINCT FROM $2
                            OR n.host IS DISTINCT FROM $3)",
                    &[&lost, &boot, &host],
                )
                .await?;
                let sql = format!(
                    "UPDATE hooks h SET node = $1 FROM jobs j
                     WHERE j.id = h.job_id AND h.node = ANY($2) AND h.state = 'running'
                     RETURNING {HANDED_BACK}"
                );
                let mut runs: Vec<HookRun> = rows(tx, &sql, &[&node, &lost])
                    .await?
                    .iter()
                    .map(handed_back)
                    .collect();
                runs.sort_by_key(|r| r.job_id);
                if owed > 0 {
                    announce(tx).await?;
                }
                Ok(runs)
            })
        })
        .await
    }
}
