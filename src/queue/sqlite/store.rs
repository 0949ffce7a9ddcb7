//! The SQLite store: one file in WAL mode with `synchronous=FULL`, so
//! every state change is on disk when a method returns, before anyone is
//! told about it. This file opens it (creating and upgrading the schema);
//! its errors are [`super::error`]'s, and the store's methods are split by concern into the
//! sibling modules (jobs, claims, settle, hooks, history, recovery, node, folders), with how
//! values are spelled in SQLite in [`super::rows`]. Methods are synchronous
//! and short; the actor in [`super`] owns each connection on a thread of
//! its own. The store knows nothing of sockets or processes.

use super::error::{Result, StoreError};
use super::schema;
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

/// How long a writer waits for a lock held by another connection.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The job queue in one SQLite file.
pub struct Store {
    pub(super) conn: Connection,
}

impl Store {
    /// Open (creating if needed) and upgrade the database at `path`.
    ///
    /// Errors: [`StoreError::Open`] when the file cannot be opened or is not
    /// a database, [`StoreError::TooNew`] for a schema from a newer vidvard.
    pub fn open(path: &Path) -> Result<Store> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        let mut store = Store { conn };
        store.migrate(path)?;
        Ok(store)
    }

    /// Open the database at `path` for reading only, as [`Store::open`]
    /// left it (it must exist, with a schema this version understands).
    ///
    /// Errors: as for [`Store::open`].
    pub fn open_read_only(path: &Path) -> Result<Store> {
        use rusqlite::OpenFlags;
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        let store = Store { conn };
        store.check_version(path)?;
        Ok(store)
    }

    /// The schema version, refused when newer than this binary knows.
    fn check_version(&self, path: &Path) -> Result<usize> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        if version as usize > schema::STEPS.len() {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found: version,
                known: schema::STEPS.len(),
            });
        }
        Ok(version as usize)
    }

    fn migrate(&mut self, path: &Path) -> Result<()> {
        let version = self.check_version(path)?;
        for (i, step) in schema::STEPS.iter().enumerate().skip(version) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(step)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The schema's upgrades, which only SQLite's own files have; the
    //! queue's rules are checked on every backend by
    //! `tests/queue_conformance/`.
    use super::*;
    use crate::job::Media;
    use crate::queue::{Place, Work};

    fn media(duration_us: u64) -> Media {
        Media {
            duration_us: Some(duration_us),
            ..Media::default()
        }
    }

    #[test]
    fn a_database_of_the_previous_schema_opens_and_keeps_its_queued_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            // What the previous release made: schema version 2, one job.
            let conn = Connection::open(&path).unwrap();
            for step in &schema::STEPS[..2] {
                conn.execute_batch(step).unwrap();
            }
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute_batch(
                "INSERT INTO jobs (id, state, variations, seed, output_dir, created_at, owner_uid)
                 VALUES (1, 'queued', 1, 5, '/out', 0, 1000);
                 INSERT INTO files (id, job_id, idx, path, state) VALUES (1, 1, 0, '/in/a.mp4', 'queued');
                 INSERT INTO variations (file_id, idx, rotation, brightness, contrast, saturation, state)
                 VALUES (1, 1, 0.005, 0, 1, 1, 'queued');",
            )
            .unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        let Some(Work::Probe { input, .. }) = store.claim(0, 1).unwrap() else {
            panic!("the queued job's probe");
        };
        // No identity was recorded: the file is vetted again when used.
        assert_eq!(
            input,
            Place {
                path: "/in/a.mp4".into(),
                identity: None
            }
        );
        store.finish_probe(1, media(1_000_000), 0.).unwrap();
        let Some(Work::Encode(batch)) = store.claim(0, 1).unwrap() else {
            panic!("then its variation");
        };
        let work = &batch[0];
        assert_eq!(work.output_dir.path, Path::new("/out"));
        assert_eq!(work.output_dir.identity, None);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }
}
