//! Watch folders in the SQLite queue: the folders themselves (added within
//! the per-owner cap, listed, paused, removed) and their ledger of taken
//! files, whose entry is written in the same transaction as the file's
//! job. One daemon owns the file, so it scans every unpaused folder.

use super::error::{Result, StoreError};
use super::rows::{
    LABEL_SEPARATOR, count, groups_text, owner_of, parse_job_state, path_of, text_of,
};
use super::store::Store;
use crate::folder::{AfterAction, FailedAction, FileKey, FolderId, FolderSpec};
use crate::job::JobId;
use crate::queue::{EndedFile, FolderRow, Full, Limits, NewFolder, NewJob, TakenFile};
use rusqlite::{OptionalExtension, params};

/// The columns [`folder_row`] reads, of `folders f`.
const FOLDER_COLUMNS: &str = "f.id, f.owner_uid, f.owner_gid, f.owner_groups, f.dir, f.output_dir,
    f.variations, f.priority, f.labels, f.settle_secs, f.poll_secs, f.poll_only, f.recursive,
    f.after, f.failed, f.paused, f.created_at,
    (SELECT COUNT(*) FROM folder_files t WHERE t.folder_id = f.id AND t.job_id IS NOT NULL)";

fn folder_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(FolderRow, String, String)> {
    let labels: String = r.get(8)?;
    Ok((
        FolderRow {
            id: r.get(0)?,
            owner: owner_of(r, 1)?,
            spec: FolderSpec {
                dir: path_of(r.get(4)?),
                output_dir: path_of(r.get(5)?),
                variations: r.get(6)?,
                priority: r.get(7)?,
                labels: labels
                    .split(LABEL_SEPARATOR)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect(),
                settle_secs: r.get(9)?,
                poll_secs: r.get(10)?,
                poll_only: r.get(11)?,
                recursive: r.get(12)?,
                after: AfterAction::Keep,
                failed: FailedAction::Keep,
            },
            paused: r.get(15)?,
            created_at: r.get(16)?,
            node: None,
            taken: count(r, 17)?,
        },
        r.get(13)?,
        r.get(14)?,
    ))
}

/// A row of [`folder_row`] with its actions read.
fn with_actions((mut row, after, failed): (FolderRow, String, String)) -> Result<FolderRow> {
    row.spec.after = AfterAction::parse(&after).map_err(|_| StoreError::BadState(after.clone()))?;
    row.spec.failed =
        FailedAction::parse(&failed).map_err(|_| StoreError::BadState(failed.clone()))?;
    Ok(row)
}

impl Store {
    /// Insert a folder unless its owner has `max` already; returns its id,
    /// or the owner's count.
    pub fn add_folder(
        &mut self,
        folder: &NewFolder,
        max: Option<u64>,
    ) -> Result<std::result::Result<FolderId, u64>> {
        let owned: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM folders WHERE owner_uid = ?1",
            [folder.owner.uid],
            |r| r.get(0),
        )?;
        if max.is_some_and(|max| owned as u64 >= max) {
            return Ok(Err(owned as u64));
        }
        let spec = &folder.spec;
        self.conn.execute(
            "INSERT INTO folders (owner_uid, owner_gid, owner_groups, dir, output_dir, variations,
                                  priority, labels, settle_secs, poll_secs, poll_only, recursive,
                                  after, failed, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            params![
                folder.owner.uid,
                folder.owner.gid,
                groups_text(&folder.owner.groups),
                text_of(&spec.dir),
                text_of(&spec.output_dir),
                spec.variations,
                spec.priority,
                spec.labels.join(&LABEL_SEPARATOR.to_string()),
                spec.settle_secs,
                spec.poll_secs,
                spec.poll_only,
                spec.recursive,
                spec.after.to_string(),
                spec.failed.to_string(),
                folder.created_at,
            ],
        )?;
        Ok(Ok(self.conn.last_insert_rowid()))
    }

    /// The folders `WHERE` selects (`?1` is `param`), by id.
    fn select_folders(&self, filter: &str, param: Option<i64>) -> Result<Vec<FolderRow>> {
        let sql = format!("SELECT {FOLDER_COLUMNS} FROM folders f WHERE {filter} ORDER BY f.id");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([param], folder_row)?;
        rows.map(|r| with_actions(r?)).collect()
    }

    pub fn folder(&self, id: FolderId) -> Result<Option<FolderRow>> {
        Ok(self.select_folders("f.id = ?1", Some(id))?.pop())
    }

    pub fn folders(&self, owner: Option<u32>) -> Result<Vec<FolderRow>> {
        self.select_folders("?1 IS NULL OR f.owner_uid = ?1", owner.map(i64::from))
    }

    /// Every unpaused folder: one daemon scans them all.
    pub fn watched_folders(&self) -> Result<Vec<FolderRow>> {
        self.select_folders("?1 IS NULL AND NOT f.paused", None)
    }

    pub fn remove_folder(&mut self, id: FolderId) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM folders WHERE id = ?1", [id])?
            > 0)
    }

    pub fn set_folder_paused(&mut self, id: FolderId, paused: bool) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE folders SET paused = ?2 WHERE id = ?1",
            params![id, paused],
        )? > 0)
    }

    /// Enter `file` in its folder's ledger and insert `job` for it, in one
    /// transaction, as [`crate::queue::Queue::take_file`] says.
    pub fn take_file(
        &mut self,
        file: &TakenFile,
        job: &NewJob,
        limits: Limits,
    ) -> Result<std::result::Result<Option<JobId>, Full>> {
        let key = &file.key;
        let tx = self.conn.transaction()?;
        let known: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM folder_files
                 WHERE folder_id = ?1 AND dev = ?2 AND ino = ?3 AND size = ?4 AND mtime_ns = ?5",
                params![
                    file.folder,
                    key.dev as i64,
                    key.ino as i64,
                    key.size as i64,
                    key.mtime_ns
                ],
                |r| r.get(0),
            )
            .optional()?;
        if known.is_some() {
            return Ok(Ok(None));
        }
        let output: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM variations WHERE temp_dev = ?1 AND temp_ino = ?2 LIMIT 1",
                params![key.dev as i64, key.ino as i64],
                |r| r.get(0),
            )
            .optional()?;
        let job_id = if output.is_some() {
            None
        } else {
            match Store::insert_job_within(&tx, job, limits)? {
                Ok(id) => Some(id),
                Err(full) => return Ok(Err(full)),
            }
        };
        tx.execute(
            "INSERT INTO folder_files (folder_id, dev, ino, size, mtime_ns, path, job_id,
                                       taken_at, done)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                file.folder,
                key.dev as i64,
                key.ino as i64,
                key.size as i64,
                key.mtime_ns,
                text_of(&file.path),
                job_id,
                job.created_at,
                job_id.is_none(),
            ],
        )?;
        tx.commit()?;
        Ok(Ok(job_id))
    }

    pub fn ended_files(&self, folder: FolderId) -> Result<Vec<EndedFile>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT t.dev, t.ino, t.size, t.mtime_ns, t.path, j.state
             FROM folder_files t LEFT JOIN jobs j ON j.id = t.job_id
             WHERE t.folder_id = ?1 AND NOT t.done
               AND (j.id IS NULL OR j.state NOT IN ('queued', 'running'))",
        )?;
        let rows = stmt.query_map([folder], |r| {
            Ok((
                TakenFile {
                    folder,
                    key: FileKey {
                        dev: r.get::<_, i64>(0)? as u64,
                        ino: r.get::<_, i64>(1)? as u64,
                        size: r.get::<_, i64>(2)? as u64,
                        mtime_ns: r.get(3)?,
                    },
                    path: path_of(r.get(4)?),
                },
                r.get::<_, Option<String>>(5)?,
            ))
        })?;
        rows.map(|r| {
            let (file, state) = r?;
            let state = state.map(|s| parse_job_state(&s)).transpose()?;
            Ok(EndedFile { file, state })
        })
        .collect()
    }

    pub fn file_done(&mut self, folder: FolderId, key: FileKey) -> Result<()> {
        self.conn.execute(
            "UPDATE folder_files SET done = 1
             WHERE folder_id = ?1 AND dev = ?2 AND ino = ?3 AND size = ?4 AND mtime_ns = ?5",
            params![
                folder,
                key.dev as i64,
                key.ino as i64,
                key.size as i64,
                key.mtime_ns
            ],
        )?;
        Ok(())
    }
}
