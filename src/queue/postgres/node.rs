//! This node in the shared queue: its row in `nodes` (registered at
//! start, refused while a live node has its name, marked stopped when it
//! leaves), its pause and hook flags, the list of nodes, and what the
//! other nodes run.

use super::error::PgError;
use super::rows::{exec, opt, rows};
use super::schema;
use super::store::{NodeConfig, PgQueue};
use crate::job::JobId;
use crate::process::ProcessIdentity;
use crate::queue::{ElsewhereRow, NodeRow, Result};
use std::path::PathBuf;

impl PgQueue {
    /// Enter this node in `nodes`. A live node of the same name (heartbeat
    /// within the lease time, not stopped) refuses it, unless it is this
    /// node's own earlier process, dead, on this very machine.
    pub(super) async fn register(&self, node: &NodeConfig) -> std::result::Result<(), PgError> {
        let me = ProcessIdentity::of(std::process::id() as i32).map_err(PgError::Identity)?;
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Two starts under one new name: the second waits here, then sees
        // the first.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&(schema::MIGRATION_LOCK as i32), &node.name],
        )
        .await?;
        let existing = tx
            .query_opt(
                "SELECT host, pid, pid_start_time, boot_id, stopped,
                        extract(epoch FROM now() - heartbeat_at)::float8
                 FROM nodes WHERE name = $1 FOR UPDATE",
                &[&node.name],
            )
            .await?;
        if let Some(row) = existing {
            let (other_host, pid, start, boot, stopped, age): (
                String,
                i32,
                i64,
                String,
                bool,
                f64,
            ) = (
                row.get(0),
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
                row.get(5),
            );
            let earlier = ProcessIdentity {
                pid,
                start_time: start as u64,
                boot_id: boot,
            };
            // Only this machine can tell whether that process still runs.
            let dead_here =
                other_host == host && earlier.boot_id == me.boot_id && !earlier.is_alive();
            if !stopped && age < self.lease_secs && !dead_here {
                return Err(PgError::DuplicateNode {
                    name: node.name.clone(),
                    host: other_host,
                    pid,
                    age,
                });
            }
        }
        tx.execute(
            "INSERT INTO nodes (name, host, pid, pid_start_time, boot_id, slots)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET host = $2, pid = $3, pid_start_time = $4,
                 boot_id = $5, slots = $6, started_at = now(), heartbeat_at = now(),
                 stopped = false",
            &[
                &node.name,
                &host,
                &me.pid,
                &(me.start_time as i64),
                &me.boot_id,
                &(node.slots as i32),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Set the flag `column` of this node's row (a name of ours, never a
    /// client's).
    async fn set_node_flag(&self, column: &str, on: bool) -> Result<()> {
        let client = self.pool.get().await?;
        let sql = format!("UPDATE nodes SET {column} = $2 WHERE name = $1");
        exec(&client, &sql, &[&self.node, &on]).await?;
        Ok(())
    }

    pub(super) async fn paused(&self) -> Result<bool> {
        let client = self.pool.get().await?;
        Ok(opt(
            &client,
            "SELECT paused FROM nodes WHERE name = $1",
            &[&self.node],
        )
        .await?
        .is_some_and(|r| r.get(0)))
    }

    pub(super) async fn set_paused(&self, paused: bool) -> Result<()> {
        self.set_node_flag("paused", paused).await
    }

    pub(super) async fn set_hooks(&self, on: bool) -> Result<()> {
        self.set_node_flag("hooks", on).await
    }

    pub(super) async fn nodes(&self) -> Result<Vec<NodeRow>> {
        let client = self.pool.get().await?;
        let rows = rows(
            &client,
            "SELECT n.name, n.host, n.slots, n.stopped,
                        extract(epoch FROM now() - n.heartbeat_at)::float8,
                        extract(epoch FROM n.heartbeat_at)::bigint,
                        (SELECT COUNT(*) FROM variations v
                         WHERE v.node = n.name AND v.state = 'running')
                 FROM nodes n ORDER BY n.name",
            &[],
        )
        .await?;
        Ok(rows
            .iter()
            .map(|r| NodeRow {
                name: r.get(0),
                host: r.get(1),
                slots: r.get::<_, i32>(2) as u32,
                up: !r.get::<_, bool>(3) && r.get::<_, f64>(4) < self.lease_secs,
                stopped: r.get(3),
                last_heartbeat: r.get(5),
                running: r.get::<_, i64>(6) as u32,
            })
            .collect())
    }

    /// The variations other nodes hold claimed as running, of `job` (of
    /// every job for `None`), by job, input (and its file row) and index.
    pub(super) async fn running_elsewhere(&self, job: Option<JobId>) -> Result<Vec<ElsewhereRow>> {
        let client = self.pool.get().await?;
        let rows = rows(
            &client,
            "SELECT f.job_id, j.owner_uid, f.path, v.idx, v.node, f.id
                 FROM variations v JOIN files f ON f.id = v.file_id
                      JOIN jobs j ON j.id = f.job_id
                 WHERE v.state = 'running' AND v.node <> $1
                       AND ($2::bigint IS NULL OR f.job_id = $2)
                 ORDER BY f.job_id, f.idx, v.idx",
            &[&self.node, &job],
        )
        .await?;
        Ok(rows
            .iter()
            .map(|r| ElsewhereRow {
                job_id: r.get(0),
                owner_uid: r.get::<_, i64>(1) as u32,
                input: PathBuf::from(r.get::<_, String>(2)),
                index: r.get::<_, i32>(3) as u32,
                node: r.get(4),
                file_id: r.get(5),
            })
            .collect())
    }

    /// Mark this node stopped: its name is free at once.
    pub(super) async fn leave(&self) -> Result<()> {
        let client = self.pool.get().await?;
        exec(
            &client,
            "UPDATE nodes SET stopped = true WHERE name = $1",
            &[&self.node],
        )
        .await?;
        Ok(())
    }
}
