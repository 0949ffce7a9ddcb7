//! Recovery in the shared queue: what a stop of this node left. The
//! variations it left running (for the cleanup of their files and
//! processes), the FFmpeg processes of its claims that other nodes took
//! over, and its claims released for any node to take
//! ([`crate::queue::Sharing::Nodes`]).

use super::rows::{announce, identity, place, process, rows};
use super::settle::{settle_file, settle_job};
use super::store::PgQueue;
use crate::job::{JobId, Lease};
use crate::process::ProcessIdentity;
use crate::queue::{Interrupted, Result};
use std::path::PathBuf;

/// Reason of work interrupted when its job was cancelled while its node
/// was gone.
const CANCELLED: &str = "cancelled";

impl PgQueue {
    pub(super) async fn interrupted(&self) -> Result<Vec<Interrupted>> {
        let client = self.pool.get().await?;
        let rows = rows(
            &client,
            "SELECT v.id, v.attempt, v.temp_path, v.temp_dev, v.temp_ino,
                        j.output_real, j.output_dev, j.output_ino,
                        v.pid, v.pid_start_time, v.boot_id
                 FROM variations v JOIN files f ON f.id = v.file_id
                 JOIN jobs j ON j.id = f.job_id
                 WHERE v.node = $1 AND v.state = 'running'",
            &[&self.node],
        )
        .await?;
        Ok(rows
            .iter()
            .map(|r| Interrupted {
                lease: Lease {
                    id: r.get(0),
                    attempt: r.get(1),
                },
                temp_path: r.get::<_, Option<String>>(2).map(PathBuf::from),
                temp_identity: identity(r.get(3), r.get(4)),
                output_dir: place(r, 5),
                process: process(r, 8),
            })
            .collect())
    }

    pub(super) async fn orphaned_processes(&self) -> Result<Vec<ProcessIdentity>> {
        let client = self.pool.get().await?;
        let rows = rows(
            &client,
            "DELETE FROM orphans WHERE node = $1
                 RETURNING pid, pid_start_time, boot_id",
            &[&self.node],
        )
        .await?;
        Ok(rows.iter().filter_map(|r| process(r, 0)).collect())
    }

    /// Nothing to do on a shared queue: [`Queue::mark_interrupted`] queues
    /// this node's unfinished work again rather than failing it.
    pub(super) async fn requeue_idle_jobs(&self) -> Result<Vec<JobId>> {
        Ok(Vec::new())
    }

    /// Release this node's claims: its running variations and probes are
    /// queued again for any node (cancelled, in a cancelled job).
    pub(super) async fn mark_interrupted(&self) -> Result<Vec<JobId>> {
        let node = self.node.clone();
        self.in_tx(move |tx| {
            Box::pin(async move {
                rows(
                    tx,
                    "SELECT id FROM jobs WHERE id IN
                         (SELECT f.job_id FROM files f
                          LEFT JOIN variations v ON v.file_id = f.id
                          WHERE v.node = $1 AND v.state = 'running'
                             OR f.node = $1 AND f.state = 'running' AND NOT f.probed)
                     ORDER BY id FOR UPDATE",
                    &[&node],
                )
                .await?;
                let cancelled = rows(
                    tx,
                    "UPDATE variations v SET state = 'cancelled', error = $2,
                             temp_path = NULL, pid = NULL, lease_until = NULL
                         FROM files f, jobs j
                         WHERE f.id = v.file_id AND j.id = f.job_id AND j.state = 'cancelled'
                           AND v.node = $1 AND v.state = 'running'
                         RETURNING v.file_id",
                    &[&node, &CANCELLED],
                )
                .await?;
                for r in cancelled {
                    settle_file(tx, r.get(0)).await?;
                }
                let released = rows(
                    tx,
                    "UPDATE variations v SET state = 'queued', temp_path = NULL,
                             pid = NULL, lease_until = NULL
                         FROM files f
                         WHERE f.id = v.file_id AND v.node = $1 AND v.state = 'running'
                         RETURNING f.job_id",
                    &[&node],
                )
                .await?;
                let probes = rows(
                    tx,
                    "UPDATE files SET state = 'queued', lease_until = NULL
                         WHERE node = $1 AND state = 'running' AND NOT probed
                         RETURNING job_id",
                    &[&node],
                )
                .await?;
                let mut jobs: Vec<JobId> =
                    released.iter().chain(&probes).map(|r| r.get(0)).collect();
                jobs.sort_unstable();
                jobs.dedup();
                for &job in &jobs {
                    settle_job(tx, job).await?;
                }
                if !jobs.is_empty() {
                    announce(tx).await?;
                }
                Ok(jobs)
            })
        })
        .await
    }
}
