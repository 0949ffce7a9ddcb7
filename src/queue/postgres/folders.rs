//! Watch folders in the shared queue: the folders (added within the
//! per-owner cap, one addition at a time), the scan lease that lets one
//! node at a time scan a folder (taken over when its node is silent, as
//! claims are), and the ledger of taken files, whose entry and the file's
//! job are written in one transaction by whichever node takes it first.

use super::error::PgError;
use super::jobs::insert_job_within;
use super::rows::{announce, credentials, exec, job_state, one, opt, rows, text};
use super::schema;
use super::store::PgQueue;
use crate::folder::{AfterAction, FailedAction, FileKey, FolderId, FolderSpec};
use crate::job::JobId;
use crate::queue::{EndedFile, FolderRow, Full, Limits, NewFolder, NewJob, Result, TakenFile};
use std::path::PathBuf;
use tokio_postgres::Row;

/// The columns [`folder_row`] reads, of `folders f`.
const FOLDER_COLUMNS: &str = "f.id, f.owner_uid, f.owner_gid, f.owner_groups, f.dir, f.output_dir,
    f.variations, f.priority, f.labels, f.settle_secs, f.poll_secs, f.poll_only, f.recursive,
    f.after, f.failed, f.paused, f.created_at, f.node,
    (SELECT COUNT(*) FROM folder_files t WHERE t.folder_id = f.id AND t.job_id IS NOT NULL)";

fn folder_row(r: &Row) -> Result<FolderRow> {
    let bad = |what, value: String| PgError::BadValue { what, value };
    let (after, failed): (String, String) = (r.get(13), r.get(14));
    Ok(FolderRow {
        id: r.get(0),
        owner: credentials(r, 1),
        spec: FolderSpec {
            dir: PathBuf::from(r.get::<_, String>(4)),
            output_dir: PathBuf::from(r.get::<_, String>(5)),
            variations: r.get::<_, i32>(6) as u32,
            priority: r.get(7),
            labels: r.get(8),
            settle_secs: r.get::<_, i32>(9) as u32,
            poll_secs: r.get::<_, i32>(10) as u32,
            poll_only: r.get(11),
            recursive: r.get(12),
            after: AfterAction::parse(&after).map_err(|_| bad("after action", after.clone()))?,
            failed: FailedAction::parse(&failed)
                .map_err(|_| bad("failed action", failed.clone()))?,
        },
        paused: r.get(15),
        created_at: r.get(16),
        node: r.get(17),
        taken: r.get::<_, i64>(18).max(0) as u64,
    })
}

/// The ledger key's four columns as SQL parameters.
fn key_params(key: &FileKey) -> [i64; 4] {
    [
        key.dev as i64,
        key.ino as i64,
        key.size as i64,
        key.mtime_ns,
    ]
}

impl PgQueue {
    pub(super) async fn add_folder(
        &self,
        folder: NewFolder,
        max: Option<u64>,
    ) -> Result<std::result::Result<FolderId, u64>> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // One addition at a time, so that two cannot pass the cap together.
        exec(
            &tx,
            "SELECT pg_advisory_xact_lock($1)",
            &[&schema::SUBMIT_LOCK],
        )
        .await?;
        let owner = i64::from(folder.owner.uid);
        let owned: i64 = one(
            &tx,
            "SELECT COUNT(*) FROM folders WHERE owner_uid = $1",
            &[&owner],
        )
        .await?
        .get(0);
        if max.is_some_and(|max| owned as u64 >= max) {
            return Ok(Err(owned as u64));
        }
        let spec = &folder.spec;
        let groups: Vec<i64> = folder.owner.groups.iter().map(|&g| i64::from(g)).collect();
        let id: i64 = one(
            &tx,
            "INSERT INTO folders (owner_uid, owner_gid, owner_groups, dir, output_dir, variations,
                                  priority, labels, settle_secs, poll_secs, poll_only, recursive,
                                  after, failed, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             RETURNING id",
            &[
                &owner,
                &i64::from(folder.owner.gid),
                &groups,
                &text(&spec.dir),
                &text(&spec.output_dir),
                &(spec.variations as i32),
                &spec.priority,
                &spec.labels,
                &(spec.settle_secs as i32),
                &(spec.poll_secs as i32),
                &spec.poll_only,
                &spec.recursive,
                &spec.after.to_string(),
                &spec.failed.to_string(),
                &folder.created_at,
            ],
        )
        .await?
        .get(0);
        announce(&tx).await?;
        tx.commit().await?;
        Ok(Ok(id))
    }

    pub(super) async fn folder(&self, id: FolderId) -> Result<Option<FolderRow>> {
        let client = self.pool.get().await?;
        let sql = format!("SELECT {FOLDER_COLUMNS} FROM folders f WHERE f.id = $1");
        opt(&client, &sql, &[&id])
            .await?
            .map(|r| folder_row(&r))
            .transpose()
    }

    pub(super) async fn folders(&self, owner: Option<u32>) -> Result<Vec<FolderRow>> {
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT {FOLDER_COLUMNS} FROM folders f
             WHERE $1::bigint IS NULL OR f.owner_uid = $1 ORDER BY f.id"
        );
        let owner = owner.map(i64::from);
        rows(&client, &sql, &[&owner])
            .await?
            .iter()
            .map(folder_row)
            .collect()
    }

    pub(super) async fn remove_folder(&self, id: FolderId) -> Result<bool> {
        let client = self.pool.get().await?;
        Ok(exec(&client, "DELETE FROM folders WHERE id = $1", &[&id]).await? > 0)
    }

    pub(super) async fn set_folder_paused(&self, id: FolderId, paused: bool) -> Result<bool> {
        let client = self.pool.get().await?;
        let sql = "UPDATE folders SET paused = $2 WHERE id = $1";
        Ok(exec(&client, sql, &[&id, &paused]).await? > 0)
    }

    /// Take or renew the scan lease of every unpaused folder that is free,
    /// this node's, or held by a node silent for a lease time; returns them.
    /// Concurrent callers serialize on the rows: the second sees the
    /// first's lease and leaves the folder to it.
    pub(super) async fn watched_folders(&self) -> Result<Vec<FolderRow>> {
        let client = self.pool.get().await?;
        let sql = format!(
            "WITH mine AS (
                 UPDATE folders SET node = $1,
                        lease_until = now() + make_interval(secs => $2)
                 WHERE NOT paused AND (node IS NULL OR node = $1
                       OR (lease_until < now() AND owner_silent(node, $2)))
                 RETURNING id)
             SELECT {FOLDER_COLUMNS}
             FROM folders f JOIN mine ON mine.id = f.id ORDER BY f.id"
        );
        let found = rows(&client, &sql, &[&self.node, &self.lease_secs]).await?;
        // The CTE's update is not visible to the outer SELECT: it sees the
        // rows as they were, so the node is set here.
        found
            .iter()
            .map(|r| {
                folder_row(r).map(|mut f| {
                    f.node = Some(self.node.clone());
                    f
                })
            })
            .collect()
    }

    /// Let go of this node's scan leases (a clean stop): another node may
    /// scan its folders at once.
    pub(super) async fn release_folders(&self) -> Result<()> {
        let client = self.pool.get().await?;
        let sql = "UPDATE folders SET node = NULL, lease_until = NULL WHERE node = $1";
        exec(&client, sql, &[&self.node]).await?;
        Ok(())
    }

    pub(super) async fn take_file(
        &self,
        file: TakenFile,
        job: NewJob,
        limits: Limits,
    ) -> Result<std::result::Result<Option<JobId>, Full>> {
        let [dev, ino, size, mtime] = key_params(&file.key);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // The entry first: a node taking the same file at the same time
        // waits here for this transaction, then finds it taken.
        let entered = opt(
            &tx,
            "INSERT INTO folder_files (folder_id, dev, ino, size, mtime_ns, path, taken_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING 1",
            &[
                &file.folder,
                &dev,
                &ino,
                &size,
                &mtime,
                &text(&file.path),
                &job.created_at,
            ],
        )
        .await?;
        if entered.is_none() {
            return Ok(Ok(None));
        }
        let output = opt(
            &tx,
            "SELECT 1 FROM variations WHERE temp_dev = $1 AND temp_ino = $2 LIMIT 1",
            &[&dev, &ino],
        )
        .await?;
        let job_id = if output.is_some() {
            None
        } else {
            match insert_job_within(&tx, &job, limits).await? {
                Ok(id) => Some(id),
                Err(full) => return Ok(Err(full)),
            }
        };
        exec(
            &tx,
            "UPDATE folder_files SET job_id = $6, done = $7
             WHERE folder_id = $1 AND dev = $2 AND ino = $3 AND size = $4 AND mtime_ns = $5",
            &[
                &file.folder,
                &dev,
                &ino,
                &size,
                &mtime,
                &job_id,
                &job_id.is_none(),
            ],
        )
        .await?;
        announce(&tx).await?;
        tx.commit().await?;
        Ok(Ok(job_id))
    }

    pub(super) async fn ended_files(&self, folder: FolderId) -> Result<Vec<EndedFile>> {
        let client = self.pool.get().await?;
        let found = rows(
            &client,
            "SELECT t.dev, t.ino, t.size, t.mtime_ns, t.path, j.state
             FROM folder_files t LEFT JOIN jobs j ON j.id = t.job_id
             WHERE t.folder_id = $1 AND NOT t.done
               AND (j.id IS NULL OR j.state NOT IN ('queued', 'running'))",
            &[&folder],
        )
        .await?;
        found
            .iter()
            .map(|r| {
                let state = r
                    .get::<_, Option<String>>(5)
                    .map(|s| job_state(&s))
                    .transpose()?;
                Ok(EndedFile {
                    file: TakenFile {
                        folder,
                        key: FileKey {
                            dev: r.get::<_, i64>(0) as u64,
                            ino: r.get::<_, i64>(1) as u64,
                            size: r.get::<_, i64>(2) as u64,
                            mtime_ns: r.get(3),
                        },
                        path: PathBuf::from(r.get::<_, String>(4)),
                    },
                    state,
                })
            })
            .collect()
    }

    pub(super) async fn file_done(&self, folder: FolderId, key: FileKey) -> Result<()> {
        let [dev, ino, size, mtime] = key_params(&key);
        let client = self.pool.get().await?;
        exec(
            &client,
            "UPDATE folder_files SET done = true
             WHERE folder_id = $1 AND dev = $2 AND ino = $3 AND size = $4 AND mtime_ns = $5",
            &[&folder, &dev, &ino, &size, &mtime],
        )
        .await?;
        Ok(())
    }
}
