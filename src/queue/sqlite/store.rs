//! The job queue in one SQLite file: the only module that imports
//! rusqlite. Synchronous; the actor in [`super`] owns it on a thread of
//! its own.
//!
//! One SQLite file in WAL mode with `synchronous=FULL`, so every state
//! change is on disk when a method returns, before anyone is told about it.
//! The store knows jobs, input files and variations and the rules that
//! settle a file's and a job's state from its parts; it knows nothing of
//! sockets or processes. Methods are synchronous and short: callers hold
//! the store behind a mutex and never across an `.await`.

use super::schema;
use crate::effects::Effects;
use crate::job::{
    self, Credentials, FileCounts, FileIdentity, FileState, FrameRate, JobId, JobState, Media,
    Quality, VariationCounts,
};
use crate::process::ProcessIdentity;
use crate::queue::{
    FileRow, Full, HookRun, Interrupted, JobFilter, JobRow, Lease, Limits, NewJob, Outcome,
    OutputRow, Place, VariationWork, Work,
};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a writer waits for a lock held by another connection.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "database {} has schema version {found}, newer than this vidvard understands ({known})",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: usize,
    },
    #[error("database query failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database holds an unknown state {0:?}")]
    BadState(String),
    #[error("cannot start the database thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the database thread ended while opening the database")]
    ThreadDied,
}

type Result<T> = std::result::Result<T, StoreError>;

/// A [`Place`] from three columns from `first` on: real path, device and
/// inode, with `given` (a column index) when no real path is stored.
fn place_of(r: &rusqlite::Row<'_>, given: usize, first: usize) -> rusqlite::Result<Place> {
    let real: Option<String> = r.get(first)?;
    let dev: Option<i64> = r.get(first + 1)?;
    let ino: Option<i64> = r.get(first + 2)?;
    Ok(match (real, dev, ino) {
        (Some(real), Some(dev), Some(ino)) => Place {
            path: path_of(real),
            identity: Some(FileIdentity {
                dev: dev as u64,
                ino: ino as u64,
            }),
        },
        _ => Place {
            path: path_of(r.get(given)?),
            identity: None,
        },
    })
}

fn parse_job_state(s: &str) -> Result<JobState> {
    Ok(match s {
        "queued" => JobState::Queued,
        "running" => JobState::Running,
        "succeeded" => JobState::Succeeded,
        "partial" => JobState::Partial,
        "failed" => JobState::Failed,
        "cancelled" => JobState::Cancelled,
        other => return Err(StoreError::BadState(other.into())),
    })
}

fn parse_file_state(s: &str) -> Result<FileState> {
    Ok(match s {
        "queued" => FileState::Queued,
        "running" => FileState::Running,
        "succeeded" => FileState::Succeeded,
        "failed" => FileState::Failed,
        "cancelled" => FileState::Cancelled,
        other => return Err(StoreError::BadState(other.into())),
    })
}

fn path_of(text: String) -> PathBuf {
    PathBuf::from(text)
}

fn text_of(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn groups_text(groups: &[u32]) -> String {
    groups
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The owner stored in three columns from `first` on: uid, gid, groups.
fn owner_of(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Credentials> {
    let groups: String = r.get(first + 2)?;
    Ok(Credentials {
        uid: r.get(first)?,
        gid: r.get(first + 1)?,
        groups: groups
            .split_whitespace()
            .filter_map(|g| g.parse().ok())
            .collect(),
    })
}

/// The quality figures stored in four columns from `first` on: samples,
/// SSIM mean and minimum, luma difference; `None` when not checked.
fn quality_of(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Option<Quality>> {
    let Some(samples) = r.get::<_, Option<u32>>(first)? else {
        return Ok(None);
    };
    Ok(Some(Quality {
        samples,
        ssim_mean: r.get(first + 1)?,
        ssim_min: r.get(first + 2)?,
        luma_diff: r.get(first + 3)?,
    }))
}

/// The condition on `jobs j` of a job with work to start: open, not
/// paused, with an input to probe or a queued variation of a probed one.
const STARTABLE: &str = "j.state IN ('queued', 'running') AND NOT j.paused
    AND EXISTS (SELECT 1 FROM files f WHERE f.job_id = j.id
        AND (f.state = 'queued'
             OR (f.state = 'running' AND f.probed = 1
                 AND EXISTS (SELECT 1 FROM variations v
                             WHERE v.file_id = f.id AND v.state = 'queued'))))";

/// Separates a job's labels in one column (labels have no control
/// characters).
const LABEL_SEPARATOR: char = '\u{1f}';

/// The reason given to work cut short by a daemon stop or crash.
pub const INTERRUPTED: &str = "interrupted: daemon restarted";

/// The job queue in one SQLite file.
pub struct Store {
    conn: Connection,
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

    /// Insert a job as [`Store::create_job`] does if it fits in `limits`
    /// (counted on this, the writing, connection: no other write comes
    /// between the count and the insert).
    pub fn create_job_within(
        &mut self,
        job: &NewJob,
        limits: Limits,
    ) -> Result<std::result::Result<JobId, Full>> {
        let pending = self.queue_depth()?;
        if pending >= limits.max_jobs {
            return Ok(Err(Full::Jobs { pending }));
        }
        if let Some(max) = limits.max_owner_variations {
            let pending = self.pending_variations(job.owner.uid)?;
            let asked = job.inputs.iter().map(|(_, _, e)| e.len() as u64).sum();
            if pending + asked > max {
                return Ok(Err(Full::Owner { pending, asked }));
            }
        }
        self.create_job(job).map(Ok)
    }

    /// Insert a job with its files and variations, all queued.
    pub fn create_job(&mut self, job: &NewJob) -> Result<JobId> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO jobs (state, variations, seed, output_dir, created_at,
                               owner_uid, owner_gid, owner_groups,
                               output_real, output_dev, output_ino, priority)
             VALUES ('queued', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                job.variations,
                job.seed as i64,
                text_of(&job.output_dir.0),
                job.created_at,
                job.owner.uid,
                job.owner.gid,
                groups_text(&job.owner.groups),
                text_of(&job.output_dir.1.real),
                job.output_dir.1.identity.dev as i64,
                job.output_dir.1.identity.ino as i64,
                job.priority
            ],
        )?;
        let job_id = tx.last_insert_rowid();
        {
            let mut label_stmt =
                tx.prepare("INSERT OR IGNORE INTO labels (label, job_id) VALUES (?1, ?2)")?;
            for label in &job.labels {
                label_stmt.execute(params![label, job_id])?;
            }
            let mut file_stmt = tx.prepare(
                "INSERT INTO files (job_id, idx, path, state, real_path, dev, ino)
                 VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6)",
            )?;
            let mut var_stmt = tx.prepare(
                "INSERT INTO variations
                 (file_id, idx, rotation, brightness, contrast, saturation, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued')",
            )?;
            for (idx, (path, vetted, effects)) in job.inputs.iter().enumerate() {
                file_stmt.execute(params![
                    job_id,
                    idx as i64,
                    text_of(path),
                    text_of(&vetted.real),
                    vetted.identity.dev as i64,
                    vetted.identity.ino as i64
                ])?;
                let file_id = tx.last_insert_rowid();
                for (v, e) in effects.iter().enumerate() {
                    var_stmt.execute(params![
                        file_id,
                        v as i64 + 1,
                        e.rotation,
                        e.brightness,
                        e.contrast,
                        e.saturation
                    ])?;
                }
            }
        }
        tx.commit()?;
        Ok(job_id)
    }

    const JOB_COLUMNS: &'static str = "j.id, j.state, j.variations, j.seed, j.output_dir,
        j.created_at, j.owner_uid,
        (SELECT COUNT(*) FROM files f WHERE f.job_id = j.id),
        (SELECT COALESCE(AVG(f.progress), 0) FROM files f WHERE f.job_id = j.id),
        j.priority, j.paused,
        (SELECT group_concat(l.label, char(31)) FROM
            (SELECT label FROM labels WHERE job_id = j.id ORDER BY label) l)";

    fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(JobRow, String)> {
        let state: String = r.get(1)?;
        Ok((
            JobRow {
                id: r.get(0)?,
                state: JobState::Queued,
                variations: r.get(2)?,
                seed: r.get::<_, i64>(3)? as u64,
                output_dir: path_of(r.get(4)?),
                created_at: r.get(5)?,
                owner_uid: r.get(6)?,
                inputs: r.get(7)?,
                progress: r.get(8)?,
                priority: r.get(9)?,
                paused: r.get(10)?,
                labels: r.get::<_, Option<String>>(11)?.map_or_else(Vec::new, |l| {
                    l.split(LABEL_SEPARATOR).map(String::from).collect()
                }),
            },
            state,
        ))
    }

    fn with_state((mut row, state): (JobRow, String)) -> Result<JobRow> {
        row.state = parse_job_state(&state)?;
        Ok(row)
    }

    /// One job, or `None` if there is no such job.
    pub fn job(&self, id: JobId) -> Result<Option<JobRow>> {
        let sql = format!("SELECT {} FROM jobs j WHERE j.id = ?1", Self::JOB_COLUMNS);
        self.conn
            .query_row(&sql, [id], Self::job_row)
            .optional()?
            .map(Self::with_state)
            .transpose()
    }

    /// The jobs `filter` selects, by id ascending.
    pub fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRow>> {
        let sql = format!(
            "SELECT {} FROM jobs j
             WHERE j.id > ?1 AND (?2 IS NULL OR j.owner_uid = ?2) AND (?3 IS NULL OR j.state = ?3)
               AND (?4 IS NULL OR j.id IN (SELECT job_id FROM labels WHERE label = ?4))
             ORDER BY j.id LIMIT ?5",
            Self::JOB_COLUMNS
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![
                filter.after,
                filter.owner,
                filter.state.map(JobState::as_str),
                filter.label,
                filter.limit
            ],
            Self::job_row,
        )?;
        rows.map(|r| Self::with_state(r?)).collect()
    }

    /// Set a job's priority; returns its state, `None` for no such job.
    pub fn set_priority(&mut self, job_id: JobId, priority: i32) -> Result<Option<JobState>> {
        self.conn.execute(
            "UPDATE jobs SET priority = ?2 WHERE id = ?1",
            params![job_id, priority],
        )?;
        job_state(&self.conn, job_id)
    }

    /// Pause or resume a job; returns its state, `None` for no such job.
    pub fn set_job_paused(&mut self, job_id: JobId, paused: bool) -> Result<Option<JobState>> {
        self.conn.execute(
            "UPDATE jobs SET paused = ?2 WHERE id = ?1",
            params![job_id, paused],
        )?;
        job_state(&self.conn, job_id)
    }

    /// Whether the daemon is paused.
    pub fn paused(&self) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM settings WHERE name = 'paused'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .is_some_and(|v| v == "1"))
    }

    /// Pause or resume the daemon.
    pub fn set_paused(&mut self, paused: bool) -> Result<()> {
        self.set_flag("paused", paused)
    }

    /// Whether jobs that become final from now on owe a completion hook.
    pub fn set_hooks(&mut self, on: bool) -> Result<()> {
        self.set_flag("on_job_end", on)
    }

    /// Store a setting that is on (`'1'`) or off (`'0'`).
    fn set_flag(&mut self, name: &str, on: bool) -> Result<()> {
        self.conn.execute(
            "INSERT INTO settings (name, value) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = ?2",
            [name, if on { "1" } else { "0" }],
        )?;
        Ok(())
    }

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

    /// After a stop: hooks claimed but never spawned are due again; those
    /// spawned are returned, with their processes.
    pub fn hooks_left_running(&mut self) -> Result<Vec<HookRun>> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE hooks SET state = 'due', started_at = NULL
             WHERE state = 'running' AND pid IS NULL",
            [],
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

    /// The input files of a job, in submission order.
    pub fn files(&self, job_id: JobId) -> Result<Vec<FileRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT f.id, f.job_id, f.idx, f.path, f.state, f.duration_us, f.progress, f.error,
                    (SELECT COUNT(*) FROM variations v
                     WHERE v.file_id = f.id AND v.state = 'succeeded')
             FROM files f WHERE f.job_id = ?1 ORDER BY f.idx",
        )?;
        let rows = stmt.query_map([job_id], |r| {
            Ok((
                FileRow {
                    id: r.get(0)?,
                    job_id: r.get(1)?,
                    idx: r.get(2)?,
                    path: path_of(r.get(3)?),
                    state: FileState::Queued,
                    duration_us: r.get::<_, Option<i64>>(5)?.map(|d| d as u64),
                    progress: r.get(6)?,
                    error: r.get(7)?,
                    done_variations: r.get(8)?,
                    nodes: Vec::new(),
                },
                r.get::<_, String>(4)?,
            ))
        })?;
        rows.map(|r| {
            let (mut row, state) = r?;
            row.state = parse_file_state(&state)?;
            Ok(row)
        })
        .collect()
    }

    /// Verified outputs of a job, by input then variation index.
    pub fn outputs(&self, job_id: JobId) -> Result<Vec<OutputRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT v.output_path, v.size_bytes, f.path, v.idx,
                    v.rotation, v.brightness, v.contrast, v.saturation,
                    v.check_samples, v.ssim_mean, v.ssim_min, v.luma_diff
             FROM variations v JOIN files f ON f.id = v.file_id
             WHERE f.job_id = ?1 AND v.state = 'succeeded'
             ORDER BY f.idx, v.idx",
        )?;
        let rows = stmt.query_map([job_id], |r| {
            Ok(OutputRow {
                path: path_of(r.get(0)?),
                size: r.get::<_, i64>(1)? as u64,
                input: path_of(r.get(2)?),
                index: r.get(3)?,
                effects: Effects {
                    rotation: r.get(4)?,
                    brightness: r.get(5)?,
                    contrast: r.get(6)?,
                    saturation: r.get(7)?,
                },
                node: None,
                quality: quality_of(r, 8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Number of variations queued or running in the open jobs of `owner`.
    pub fn pending_variations(&self, owner: u32) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM variations v
             JOIN files f ON f.id = v.file_id JOIN jobs j ON j.id = f.job_id
             WHERE j.state IN ('queued', 'running') AND j.owner_uid = ?1
               AND v.state IN ('queued', 'running')",
            [owner],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// Number of jobs queued or running.
    pub fn queue_depth(&self) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// The next piece of work: of the unpaused jobs that have any, those
    /// of the highest priority; among them, the first job after `after`
    /// (by id), wrapping around to the oldest: jobs of one priority take
    /// turns, and within a job inputs and variations go in order. `None`
    /// when nothing is startable. Does not claim it: call
    /// [`Store::start_probe`] or [`Store::start_variation`].
    pub fn next_work(&self, after: JobId) -> Result<Option<Work>> {
        // Two walks of the index jobs_open_by_priority that stop at the
        // first job with work: the first such job of the top priority,
        // then the next one after `after` of that priority, if any.
        let first = self
            .conn
            .prepare_cached(&format!(
                "SELECT j.id, j.priority FROM jobs j INDEXED BY jobs_open_by_priority
                 WHERE {STARTABLE} ORDER BY j.priority DESC, j.id LIMIT 1"
            ))?
            .query_row([], |r| Ok((r.get::<_, JobId>(0)?, r.get::<_, i32>(1)?)))
            .optional()?;
        let Some((first, top)) = first else {
            return Ok(None);
        };
        let next = self
            .conn
            .prepare_cached(&format!(
                "SELECT j.id FROM jobs j INDEXED BY jobs_open_by_priority
                 WHERE {STARTABLE} AND j.priority = ?1 AND j.id > ?2
                 ORDER BY j.priority DESC, j.id LIMIT 1"
            ))?
            .query_row(params![top, after], |r| r.get::<_, JobId>(0))
            .optional()?;
        self.next_work_of(next.unwrap_or(first))
    }

    /// The first piece of work of job `job`: its first input still to be
    /// probed or with a queued variation.
    fn next_work_of(&self, job: JobId) -> Result<Option<Work>> {
        let encode = self
            .conn
            .prepare_cached(
                "SELECT f.job_id, f.idx, f.id, v.id, v.idx, f.path, j.output_dir,
                        f.duration_us, v.rotation, v.brightness, v.contrast, v.saturation,
                        j.owner_uid, j.owner_gid, j.owner_groups,
                        f.real_path, f.dev, f.ino, j.output_real, j.output_dev, j.output_ino,
                        f.frame_rate, f.interlaced, j.variations, f.video_us
                 FROM variations v
                 JOIN files f ON f.id = v.file_id
                 JOIN jobs j ON j.id = f.job_id
                 WHERE v.state = 'queued' AND f.state = 'running' AND f.probed = 1
                   AND f.job_id = ?1
                 ORDER BY f.idx, v.idx LIMIT 1",
            )?
            .query_row([job], |r| {
                Ok((
                    (r.get::<_, i64>(0)?, r.get::<_, i64>(1)?),
                    VariationWork {
                        job_id: r.get(0)?,
                        file_id: r.get(2)?,
                        lease: sole_lease(r.get(3)?),
                        index: r.get(4)?,
                        input: path_of(r.get(5)?),
                        input_place: place_of(r, 5, 15)?,
                        output_dir: place_of(r, 6, 18)?,
                        media: Media {
                            duration_us: r.get::<_, Option<i64>>(7)?.map(|d| d as u64),
                            video_us: r.get::<_, Option<i64>>(24)?.map(|d| d as u64),
                            frame_rate: r
                                .get::<_, Option<String>>(21)?
                                .as_deref()
                                .and_then(FrameRate::parse),
                            interlaced: r.get(22)?,
                        },
                        variations: r.get(23)?,
                        effects: Effects {
                            rotation: r.get(8)?,
                            brightness: r.get(9)?,
                            contrast: r.get(10)?,
                            saturation: r.get(11)?,
                        },
                        owner: owner_of(r, 12)?,
                        previous: None,
                    },
                ))
            })
            .optional()?;
        let probe = self
            .conn
            .prepare_cached(
                "SELECT f.job_id, f.idx, f.id, f.path, j.owner_uid, j.owner_gid, j.owner_groups,
                        f.real_path, f.dev, f.ino
                 FROM files f JOIN jobs j ON j.id = f.job_id
                 WHERE f.state = 'queued' AND f.job_id = ?1
                 ORDER BY f.idx LIMIT 1",
            )?
            .query_row([job], |r| {
                Ok((
                    (r.get::<_, i64>(0)?, r.get::<_, i64>(1)?),
                    Work::Probe {
                        job_id: r.get(0)?,
                        lease: sole_lease(r.get(2)?),
                        path: path_of(r.get(3)?),
                        input: place_of(r, 3, 7)?,
                        owner: owner_of(r, 4)?,
                    },
                ))
            })
            .optional()?;
        Ok(match (encode, probe) {
            (Some((ek, e)), Some((pk, p))) => Some(if pk < ek { p } else { Work::Encode(e) }),
            (Some((_, e)), None) => Some(Work::Encode(e)),
            (None, Some((_, p))) => Some(p),
            (None, None) => None,
        })
    }

    /// Claim the next work after job `after` (see [`Store::next_work`]):
    /// a probe, or a variation with its temporary file's path (in the
    /// output directory, named by [`crate::naming::temp_name`]) recorded.
    pub fn claim(&mut self, after: JobId) -> Result<Option<Work>> {
        let work = self.next_work(after)?;
        match &work {
            Some(Work::Probe { lease, .. }) => self.start_probe(lease.id)?,
            Some(Work::Encode(e)) => {
                let name = crate::naming::temp_name(&e.input, e.index, e.lease);
                let temp = e.output_dir.path.join(name);
                if !self.start_variation(e.lease.id, &temp)? {
                    return Err(StoreError::BadState(format!(
                        "variation {} was claimed twice",
                        e.lease.id
                    )));
                }
            }
            None => {}
        }
        Ok(work)
    }

    /// Claim a file for probing: the file and its job become running.
    pub fn start_probe(&mut self, file_id: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE files SET state = 'running' WHERE id = ?1 AND state = 'queued'",
            [file_id],
        )?;
        tx.execute(
            "UPDATE jobs SET state = 'running'
             WHERE id = (SELECT job_id FROM files WHERE id = ?1) AND state = 'queued'",
            [file_id],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Record a successful probe; the file's variations become startable.
    pub fn finish_probe(&mut self, file_id: i64, media: Media) -> Result<()> {
        self.conn.execute(
            "UPDATE files SET probed = 1, duration_us = ?2, frame_rate = ?3, interlaced = ?4,
                    video_us = ?5
             WHERE id = ?1 AND state = 'running'",
            params![
                file_id,
                media.duration_us.map(|d| d as i64),
                media.frame_rate.map(|r| r.to_string()),
                media.interlaced,
                media.video_us.map(|d| d as i64)
            ],
        )?;
        Ok(())
    }

    /// Fail a file before any of its variations ran (it cannot be read as a
    /// video). Its queued variations fail with it; returns the job's state.
    pub fn fail_file(&mut self, file_id: i64, error: &str) -> Result<JobState> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE variations SET state = 'failed', error = ?2
             WHERE file_id = ?1 AND state = 'queued'",
            params![file_id, error],
        )?;
        tx.execute(
            "UPDATE files SET state = 'failed', error = ?2 WHERE id = ?1 AND state = 'running'",
            params![file_id, error],
        )?;
        let state = settle_job_of_file(&tx, file_id)?;
        tx.commit()?;
        Ok(state)
    }

    /// Claim a queued variation: it becomes running with `temp_path` as the
    /// file its encode may create. Returns false if it was not queued any
    /// more (cancelled in between).
    pub fn start_variation(&mut self, variation_id: i64, temp_path: &Path) -> Result<bool> {
        let changed = self.conn.execute(
            "UPDATE variations SET state = 'running', temp_path = ?2, error = NULL,
                    temp_dev = NULL, temp_ino = NULL
             WHERE id = ?1 AND state = 'queued'",
            params![variation_id, text_of(temp_path)],
        )?;
        Ok(changed == 1)
    }

    /// Record which file the temporary file of a running variation is, once
    /// created, so that recovery can find it under its published name.
    pub fn set_temp(&mut self, variation_id: i64, temp: FileIdentity) -> Result<()> {
        self.conn.execute(
            "UPDATE variations SET temp_dev = ?2, temp_ino = ?3 WHERE id = ?1",
            params![variation_id, temp.dev as i64, temp.ino as i64],
        )?;
        Ok(())
    }

    /// Record the FFmpeg process of a running variation.
    pub fn set_process(&mut self, variation_id: i64, process: &ProcessIdentity) -> Result<()> {
        self.conn.execute(
            "UPDATE variations SET pid = ?2, pid_start_time = ?3, boot_id = ?4 WHERE id = ?1",
            params![
                variation_id,
                process.pid,
                process.start_time as i64,
                process.boot_id
            ],
        )?;
        Ok(())
    }

    /// Store the progress of running files in one transaction. For each
    /// `(file_id, running)`, `running` is the sum of the percents of its
    /// variations being encoded; the file's progress becomes
    /// `(verified * 100 + running) / variations`, never lower than before.
    ///
    /// Committed without an fsync of its own (`synchronous=NORMAL` for this
    /// transaction; in WAL mode the next outcome's commit makes it
    /// durable): a crash may lose the last figures, never an outcome.
    pub fn set_files_progress(&mut self, running: &[(i64, f64)]) -> Result<()> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let written = self.write_files_progress(running);
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        written
    }

    fn write_files_progress(&mut self, running: &[(i64, f64)]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for &(file_id, percent) in running {
            let counts = variation_counts(&tx, file_id)?;
            let progress = job::file_progress(counts.total, counts.succeeded, percent);
            raise_progress(&tx, file_id, progress)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Record how a running variation ended, then settle its file and job.
    /// Returns the job's state afterwards.
    pub fn finish_variation(&mut self, variation_id: i64, outcome: &Outcome) -> Result<JobState> {
        let tx = self.conn.transaction()?;
        match outcome {
            Outcome::Succeeded {
                output,
                size,
                quality,
            } => tx.execute(
                "UPDATE variations SET state = 'succeeded', output_path = ?2, size_bytes = ?3,
                        temp_path = NULL, pid = NULL, error = NULL,
                        check_samples = ?4, ssim_mean = ?5, ssim_min = ?6, luma_diff = ?7
                 WHERE id = ?1 AND state = 'running'",
                params![
                    variation_id,
                    text_of(output),
                    *size as i64,
                    quality.map(|q| q.samples),
                    quality.map(|q| q.ssim_mean),
                    quality.map(|q| q.ssim_min),
                    quality.map(|q| q.luma_diff)
                ],
            )?,
            Outcome::Failed { error } => tx.execute(
                "UPDATE variations SET state = 'failed', error = ?2, temp_path = NULL, pid = NULL
                 WHERE id = ?1 AND state = 'running'",
                params![variation_id, error],
            )?,
            Outcome::Cancelled => tx.execute(
                "UPDATE variations SET state = 'cancelled', temp_path = NULL, pid = NULL
                 WHERE id = ?1 AND state = 'running'",
                [variation_id],
            )?,
            Outcome::Requeued => tx.execute(
                "UPDATE variations SET temp_path = NULL, pid = NULL, temp_dev = NULL,
                     temp_ino = NULL,
                     state = CASE WHEN (SELECT j.state FROM jobs j JOIN files f ON f.job_id = j.id
                                        WHERE f.id = variations.file_id) IN ('queued', 'running')
                             THEN 'queued' ELSE 'cancelled' END
                 WHERE id = ?1 AND state = 'running'",
                [variation_id],
            )?,
        };
        let file_id: i64 = tx.query_row(
            "SELECT file_id FROM variations WHERE id = ?1",
            [variation_id],
            |r| r.get(0),
        )?;
        settle_file(&tx, file_id)?;
        let state = settle_job_of_file(&tx, file_id)?;
        tx.commit()?;
        Ok(state)
    }

    /// Cancel a job: it becomes cancelled, its queued files and variations
    /// too. Running variations keep running until the caller stops them and
    /// reports [`Outcome::Cancelled`]. Returns the job's state before, or
    /// `None` if there is no such job; a job already final is left as is.
    pub fn cancel_job(&mut self, job_id: JobId) -> Result<Option<JobState>> {
        let tx = self.conn.transaction()?;
        let Some(before) = job_state(&tx, job_id)? else {
            return Ok(None);
        };
        if !before.is_final() {
            tx.execute(
                "UPDATE variations SET state = 'cancelled'
                 WHERE state = 'queued' AND file_id IN (SELECT id FROM files WHERE job_id = ?1)",
                [job_id],
            )?;
            tx.execute(
                "UPDATE files SET state = 'cancelled' WHERE job_id = ?1 AND state = 'queued'",
                [job_id],
            )?;
            tx.execute(
                "UPDATE jobs SET state = 'cancelled', finished_at = strftime('%s', 'now')
                 WHERE id = ?1",
                [job_id],
            )?;
            let running: Vec<i64> = tx
                .prepare("SELECT id FROM files WHERE job_id = ?1 AND state = 'running'")?
                .query_map([job_id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for file_id in running {
                settle_file(&tx, file_id)?;
            }
        }
        tx.commit()?;
        Ok(Some(before))
    }

    /// Re-queue what did not succeed in a final job: its failed and
    /// cancelled variations become queued again with their stored effects,
    /// their files are probed anew, verified outputs are kept. Returns the
    /// job's state before and the number of variations re-queued, or `None`
    /// if there is no such job. Jobs not final, or succeeded, are left as is
    /// (0 re-queued).
    pub fn retry_job(&mut self, job_id: JobId) -> Result<Option<(JobState, u64)>> {
        let tx = self.conn.transaction()?;
        let Some(before) = job_state(&tx, job_id)? else {
            return Ok(None);
        };
        if !before.is_final() || before == JobState::Succeeded {
            return Ok(Some((before, 0)));
        }
        let requeued = tx.execute(
            "UPDATE variations SET state = 'queued', error = NULL
             WHERE state IN ('failed', 'cancelled')
               AND file_id IN (SELECT id FROM files WHERE job_id = ?1)",
            [job_id],
        )?;
        // Progress restarts from what is verified: the rest is redone.
        let files: Vec<i64> = tx
            .prepare(
                "SELECT DISTINCT f.id FROM files f JOIN variations v ON v.file_id = f.id
                 WHERE f.job_id = ?1 AND v.state = 'queued'",
            )?
            .query_map([job_id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for file_id in files {
            let counts = variation_counts(&tx, file_id)?;
            tx.execute(
                "UPDATE files SET state = 'queued', probed = 0, error = NULL, progress = ?2
                 WHERE id = ?1",
                params![
                    file_id,
                    job::file_progress(counts.total, counts.succeeded, 0.0)
                ],
            )?;
        }
        tx.execute(
            "UPDATE jobs SET state = 'queued', finished_at = NULL WHERE id = ?1",
            [job_id],
        )?;
        tx.commit()?;
        Ok(Some((before, requeued as u64)))
    }

    /// Delete the records (job, files, variations) of final jobs of `owner`
    /// (of everyone for `None`) that finished at or before `finished_before`
    /// (unix seconds). Returns the number of jobs removed.
    pub fn prune(&mut self, owner: Option<u32>, finished_before: i64) -> Result<u64> {
        let removed = self.conn.execute(
            "DELETE FROM jobs
             WHERE state IN ('succeeded', 'partial', 'failed', 'cancelled')
               AND finished_at <= ?1 AND (?2 IS NULL OR owner_uid = ?2)
               AND NOT EXISTS (SELECT 1 FROM files f JOIN variations v ON v.file_id = f.id
                               WHERE f.job_id = jobs.id AND v.state = 'running')",
            params![finished_before, owner],
        )?;
        Ok(removed as u64)
    }

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
    /// [`INTERRUPTED`] and the job settles (failed, or partial when some
    /// input had succeeded); verified outputs stay listed. Variations still
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

/// A job's state, or `None` if there is no such job.
fn job_state(conn: &Connection, job_id: JobId) -> Result<Option<JobState>> {
    conn.query_row("SELECT state FROM jobs WHERE id = ?1", [job_id], |r| {
        r.get::<_, String>(0)
    })
    .optional()?
    .map(|state| parse_job_state(&state))
    .transpose()
}

/// The lease on work `id`. One daemon owns the database file, so a claim
/// is never lost to another: every claim is attempt 1, and fencing has
/// nothing to refuse.
pub fn sole_lease(id: i64) -> Lease {
    Lease { id, attempt: 1 }
}

/// Column `i` of `r`, a count.
fn count(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    Ok(r.get::<_, i64>(i)?.max(0) as u64)
}

/// How many of a file's variations are in each state.
fn variation_counts(tx: &rusqlite::Transaction<'_>, file_id: i64) -> Result<VariationCounts> {
    let counts = tx.query_row(
        "SELECT COUNT(*),
                COALESCE(SUM(state IN ('queued', 'running')), 0),
                COALESCE(SUM(state = 'succeeded'), 0),
                COALESCE(SUM(state = 'failed'), 0)
         FROM variations WHERE file_id = ?1",
        [file_id],
        |r| {
            Ok(VariationCounts {
                total: count(r, 0)?,
                open: count(r, 1)?,
                succeeded: count(r, 2)?,
                failed: count(r, 3)?,
            })
        },
    )?;
    Ok(counts)
}

/// Set a file's progress to `progress` unless it was higher already.
fn raise_progress(tx: &rusqlite::Transaction<'_>, file_id: i64, progress: f64) -> Result<()> {
    tx.prepare_cached("UPDATE files SET progress = MAX(progress, ?2) WHERE id = ?1")?
        .execute(params![file_id, progress])?;
    Ok(())
}

/// Bring a file's progress up to its verified variations and, once none is
/// queued or running, give it its final state ([`job::settled_file`]); the
/// error of a failed file is its first failed variation's.
fn settle_file(tx: &rusqlite::Transaction<'_>, file_id: i64) -> Result<()> {
    let counts = variation_counts(tx, file_id)?;
    raise_progress(
        tx,
        file_id,
        job::file_progress(counts.total, counts.succeeded, 0.0),
    )?;
    let Some(state) = job::settled_file(counts) else {
        return Ok(());
    };
    tx.execute(
        "UPDATE files SET state = ?2,
            error = CASE WHEN ?2 = 'failed' THEN COALESCE(error,
                (SELECT v.error FROM variations v
                 WHERE v.file_id = ?1 AND v.state = 'failed' ORDER BY v.idx LIMIT 1))
              ELSE NULL END
         WHERE id = ?1",
        params![file_id, state.as_str()],
    )?;
    Ok(())
}

fn settle_job_of_file(tx: &rusqlite::Transaction<'_>, file_id: i64) -> Result<JobState> {
    let job_id: JobId = tx.query_row("SELECT job_id FROM files WHERE id = ?1", [file_id], |r| {
        r.get(0)
    })?;
    settle_job(tx, job_id)
}

/// Give a job its final state ([`job::settled_job`]) once none of its
/// files is queued or running. Returns the job's state.
fn settle_job(tx: &rusqlite::Transaction<'_>, job_id: JobId) -> Result<JobState> {
    let (state, counts): (String, FileCounts) = tx.query_row(
        "SELECT j.state, COUNT(f.id),
                COALESCE(SUM(f.state IN ('queued', 'running')), 0),
                COALESCE(SUM(f.state = 'succeeded'), 0),
                (SELECT COUNT(*) FROM variations v JOIN files g ON g.id = v.file_id
                 WHERE g.job_id = j.id AND v.state = 'succeeded')
         FROM jobs j LEFT JOIN files f ON f.job_id = j.id WHERE j.id = ?1 GROUP BY j.id",
        [job_id],
        |r| {
            Ok((
                r.get(0)?,
                FileCounts {
                    total: count(r, 1)?,
                    open: count(r, 2)?,
                    succeeded: count(r, 3)?,
                    outputs: count(r, 4)?,
                },
            ))
        },
    )?;
    let state = parse_job_state(&state)?;
    let Some(settled) = job::settled_job(state, counts) else {
        return Ok(state);
    };
    tx.execute(
        "UPDATE jobs SET state = ?2, finished_at = strftime('%s', 'now') WHERE id = ?1",
        params![job_id, settled.as_str()],
    )?;
    Ok(settled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Vetted;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        (dir, store)
    }

    fn media(duration_us: u64) -> Media {
        Media {
            duration_us: Some(duration_us),
            ..Media::default()
        }
    }

    fn effects(n: u32) -> Vec<Effects> {
        crate::effects::generate(&crate::effects::Ranges::default(), 1, 0, n).unwrap()
    }

    fn vetted(path: &str, ino: u64) -> Vetted {
        Vetted {
            real: path.into(),
            identity: FileIdentity { dev: 1, ino },
        }
    }

    fn job(store: &mut Store, inputs: usize, variations: u32, owner: u32) -> JobId {
        store
            .create_job(&NewJob {
                seed: 1,
                output_dir: (PathBuf::from("/out"), vetted("/out", 1)),
                variations,
                inputs: (0..inputs)
                    .map(|i| {
                        let path = format!("/in/{i}.mp4");
                        (
                            PathBuf::from(&path),
                            vetted(&path, 2 + i as u64),
                            effects(variations),
                        )
                    })
                    .collect(),
                created_at: 0,
                priority: 0,
                labels: Vec::new(),
                owner: Credentials {
                    uid: owner,
                    gid: owner,
                    groups: vec![],
                },
            })
            .unwrap()
    }

    /// Probe and claim every variation of the job's next file; returns
    /// their ids.
    fn start_next_file(store: &mut Store) -> Vec<i64> {
        let Some(Work::Probe {
            lease: Lease { id: file_id, .. },
            ..
        }) = store.next_work(0).unwrap()
        else {
            panic!("a probe comes first");
        };
        store.start_probe(file_id).unwrap();
        store.finish_probe(file_id, media(1_000_000)).unwrap();
        let mut ids = Vec::new();
        while let Some(Work::Encode(w)) = store.next_work(0).unwrap() {
            if w.file_id != file_id {
                break;
            }
            assert!(
                store
                    .start_variation(w.lease.id, Path::new("/out/.t"))
                    .unwrap()
            );
            ids.push(w.lease.id);
        }
        ids
    }

    fn ok(store: &mut Store, id: i64) -> JobState {
        let output = Outcome::Succeeded {
            output: format!("/out/{id}.mp4").into(),
            size: 1,
            quality: None,
        };
        store.finish_variation(id, &output).unwrap()
    }

    #[test]
    fn jobs_settle_succeeded_partial_or_failed() {
        let (_d, mut s) = store();
        let a = job(&mut s, 2, 2, 0);
        for id in start_next_file(&mut s) {
            assert_eq!(ok(&mut s, id), JobState::Running);
        }
        let second = start_next_file(&mut s);
        ok(&mut s, second[0]);
        let failed = Outcome::Failed {
            error: "boom".into(),
        };
        assert_eq!(
            s.finish_variation(second[1], &failed).unwrap(),
            JobState::Partial
        );
        let files = s.files(a).unwrap();
        assert_eq!(files[0].state, FileState::Succeeded);
        assert_eq!(files[1].state, FileState::Failed);
        assert_eq!(files[1].error.as_deref(), Some("boom"));
        assert_eq!(files[1].done_variations, 1);
        assert_eq!(s.outputs(a).unwrap().len(), 3);
    }

    #[test]
    fn cancel_drops_queued_work_and_retry_requeues_with_honest_progress() {
        let (_d, mut s) = store();
        let a = job(&mut s, 1, 2, 0);
        let ids = start_next_file(&mut s);
        ok(&mut s, ids[0]);
        s.set_files_progress(&[(s.files(a).unwrap()[0].id, 90.0)])
            .unwrap();
        assert_eq!(s.cancel_job(a).unwrap(), Some(JobState::Running));
        assert_eq!(s.job(a).unwrap().unwrap().state, JobState::Cancelled);
        // The running variation reports back as cancelled.
        s.finish_variation(ids[1], &Outcome::Cancelled).unwrap();
        assert_eq!(s.files(a).unwrap()[0].state, FileState::Cancelled);
        assert_eq!(s.cancel_job(999).unwrap(), None);

        assert_eq!(s.retry_job(a).unwrap(), Some((JobState::Cancelled, 1)));
        let file = &s.files(a).unwrap()[0];
        assert_eq!(file.state, FileState::Queued);
        assert_eq!(
            file.progress, 50.0,
            "progress restarts from what is verified"
        );
        // Only the cancelled variation runs again.
        let again = start_next_file(&mut s);
        assert_eq!(again, [ids[1]]);
        assert_eq!(ok(&mut s, again[0]), JobState::Succeeded);
        assert_eq!(s.retry_job(a).unwrap(), Some((JobState::Succeeded, 0)));
    }

    #[test]
    fn a_hook_is_owed_once_per_end_of_a_job_while_hooks_are_on() {
        let (_d, mut s) = store();
        let before = job(&mut s, 1, 1, 0);
        let ids = start_next_file(&mut s);
        ok(&mut s, ids[0]);
        assert_eq!(s.job(before).unwrap().unwrap().state, JobState::Succeeded);
        assert_eq!(s.claim_hook(1).unwrap(), None, "no hook while off");

        s.set_hooks(true).unwrap();
        let a = job(&mut s, 1, 1, 0);
        let failed = Outcome::Failed {
            error: "boom".into(),
        };
        let ids = start_next_file(&mut s);
        s.finish_variation(ids[0], &failed).unwrap();
        let run = s.claim_hook(5).unwrap().unwrap();
        assert_eq!((run.job_id, run.started_at, run.process), (a, 5, None));
        assert_eq!(s.claim_hook(6).unwrap(), None, "claimed once");
        // A stop before the spawn: owed again.
        assert_eq!(s.hooks_left_running().unwrap(), []);
        assert_eq!(s.claim_hook(7).unwrap().map(|r| r.job_id), Some(a));
        let process = ProcessIdentity {
            pid: 42,
            start_time: 7,
            boot_id: "boot".into(),
        };
        s.set_hook_process(a, &process).unwrap();
        // Retried and ended again while its hook runs: that end owes one
        // more, which the end of the first run does not settle.
        assert_eq!(s.retry_job(a).unwrap().map(|r| r.1), Some(1));
        let ids = start_next_file(&mut s);
        ok(&mut s, ids[0]);
        s.finish_hook(a).unwrap();
        let second = s.claim_hook(8).unwrap().unwrap();
        assert_eq!(second.job_id, a);
        s.set_hook_process(a, &process).unwrap();
        // A stop after the spawn: handed back with its process, not owed.
        let left = s.hooks_left_running().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].process.as_ref(), Some(&process));
        assert_eq!(s.claim_hook(9).unwrap(), None);
        s.finish_hook(a).unwrap();
        assert_eq!(s.hooks_left_running().unwrap(), []);
    }

    #[test]
    fn interrupted_work_fails_and_queued_jobs_stay_queued() {
        let (_d, mut s) = store();
        let a = job(&mut s, 2, 1, 0);
        let b = job(&mut s, 1, 1, 0);
        start_next_file(&mut s);
        assert_eq!(s.interrupted().unwrap().len(), 1);
        assert_eq!(s.mark_interrupted().unwrap(), [a]);
        let files = s.files(a).unwrap();
        assert!(
            files
                .iter()
                .all(|f| f.error.as_deref() == Some(INTERRUPTED))
        );
        assert_eq!(s.job(a).unwrap().unwrap().state, JobState::Failed);
        assert_eq!(s.job(b).unwrap().unwrap().state, JobState::Queued);
        assert!(s.interrupted().unwrap().is_empty());
    }

    #[test]
    fn a_clean_stop_requeues_jobs_with_nothing_encoding() {
        let (_d, mut s) = store();
        let busy = job(&mut s, 1, 1, 0);
        let idle = job(&mut s, 1, 1, 0);
        start_next_file(&mut s);
        // The idle job's input is probed, but no slot was free for it.
        let Some(Work::Probe {
            lease: Lease { id: file_id, .. },
            ..
        }) = s.next_work(busy).unwrap()
        else {
            panic!("the second job's probe");
        };
        s.start_probe(file_id).unwrap();
        s.finish_probe(file_id, Media::default()).unwrap();
        assert_eq!(s.requeue_idle_jobs().unwrap(), [idle]);
        assert_eq!(s.mark_interrupted().unwrap(), [busy]);
        assert_eq!(s.job(idle).unwrap().unwrap().state, JobState::Queued);
        assert_eq!(s.files(idle).unwrap()[0].state, FileState::Queued);
        assert!(matches!(
            s.next_work(busy).unwrap(),
            Some(Work::Probe { .. })
        ));
    }

    #[test]
    fn jobs_take_turns_for_work() {
        let (_d, mut s) = store();
        let a = job(&mut s, 3, 1, 0);
        let b = job(&mut s, 1, 1, 0);
        let job_of = |w: Work| match w {
            Work::Probe { job_id, .. } => job_id,
            Work::Encode(e) => e.job_id,
        };
        assert_eq!(job_of(s.next_work(0).unwrap().unwrap()), a);
        assert_eq!(job_of(s.next_work(a).unwrap().unwrap()), b);
        assert_eq!(job_of(s.next_work(b).unwrap().unwrap()), a, "wraps around");
    }

    #[test]
    fn higher_priority_goes_first_and_paused_jobs_wait() {
        let (_d, mut s) = store();
        let job_of = |w: Option<Work>| match w {
            Some(Work::Probe { job_id, .. }) => Some(job_id),
            Some(Work::Encode(e)) => Some(e.job_id),
            None => None,
        };
        let (low, high_a, high_b) = (
            job(&mut s, 2, 1, 0),
            job(&mut s, 2, 1, 0),
            job(&mut s, 2, 1, 0),
        );
        s.set_priority(low, -1).unwrap();
        s.set_priority(high_a, 5).unwrap();
        assert_eq!(s.set_priority(high_b, 5).unwrap(), Some(JobState::Queued));
        assert_eq!(s.set_priority(999, 5).unwrap(), None);
        // Jobs of the top priority take turns; the lower one waits.
        assert_eq!(job_of(s.next_work(0).unwrap()), Some(high_a));
        assert_eq!(job_of(s.next_work(high_a).unwrap()), Some(high_b));
        assert_eq!(job_of(s.next_work(high_b).unwrap()), Some(high_a));
        s.set_job_paused(high_a, true).unwrap();
        s.set_job_paused(high_b, true).unwrap();
        assert_eq!(job_of(s.next_work(0).unwrap()), Some(low));
        s.set_job_paused(low, true).unwrap();
        assert_eq!(job_of(s.next_work(0).unwrap()), None, "all paused");
        assert!(
            s.jobs(&JobFilter {
                limit: 5,
                ..JobFilter::default()
            })
            .unwrap()
            .iter()
            .all(|j| j.paused)
        );
        s.set_job_paused(high_b, false).unwrap();
        assert_eq!(job_of(s.next_work(0).unwrap()), Some(high_b));

        assert!(!s.paused().unwrap());
        s.set_paused(true).unwrap();
        assert!(s.paused().unwrap());
        s.set_paused(false).unwrap();
        assert!(!s.paused().unwrap());
    }

    #[test]
    fn a_requeued_variation_is_claimed_again_unless_its_job_was_cancelled() {
        let (_d, mut s) = store();
        let a = job(&mut s, 1, 2, 0);
        let ids = start_next_file(&mut s);
        assert_eq!(
            s.finish_variation(ids[0], &Outcome::Requeued).unwrap(),
            JobState::Running
        );
        let Some(Work::Encode(again)) = s.next_work(0).unwrap() else {
            panic!("the requeued variation is claimable");
        };
        assert_eq!(again.lease.id, ids[0]);
        assert_eq!(s.files(a).unwrap()[0].state, FileState::Running);
        // Cancelled while being stopped: it does not come back.
        s.cancel_job(a).unwrap();
        s.finish_variation(ids[1], &Outcome::Requeued).unwrap();
        assert!(s.next_work(0).unwrap().is_none());
        assert_eq!(s.files(a).unwrap()[0].state, FileState::Cancelled);
    }

    #[test]
    fn prune_keeps_running_and_recent_jobs_and_respects_owners() {
        let (_d, mut s) = store();
        let mine = job(&mut s, 1, 1, 1000);
        let theirs = job(&mut s, 1, 1, 2000);
        for _ in 0..2 {
            let id = start_next_file(&mut s)[0];
            ok(&mut s, id);
        }
        assert_eq!(
            s.prune(Some(1000), 0).unwrap(),
            0,
            "nothing finished before 1970"
        );
        let now = crate::queue::unix_now();
        assert_eq!(s.prune(Some(1000), now + 1).unwrap(), 1);
        assert!(s.job(mine).unwrap().is_none());
        assert!(s.job(theirs).unwrap().is_some());
        let of = |owner| JobFilter {
            owner: Some(owner),
            limit: 10,
            ..JobFilter::default()
        };
        assert_eq!(s.jobs(&of(2000)).unwrap().len(), 1);
        assert_eq!(s.jobs(&of(1000)).unwrap().len(), 0);

        // Cancelled, but FFmpeg is still being stopped: the record stays,
        // so its temporary file is not lost to recovery.
        let stopping = job(&mut s, 1, 1, 1000);
        let id = start_next_file(&mut s)[0];
        s.cancel_job(stopping).unwrap();
        assert_eq!(
            s.prune(None, now + 1).unwrap(),
            1,
            "only the other finished job"
        );
        assert!(s.job(stopping).unwrap().is_some());
        s.finish_variation(id, &Outcome::Cancelled).unwrap();
        assert_eq!(s.prune(None, now + 1).unwrap(), 1);
    }

    #[test]
    fn a_job_is_inserted_only_within_the_limits() {
        let (_dir, mut store) = store();
        let first = job(&mut store, 1, 3, 1000);
        let new = |owner| NewJob {
            seed: 1,
            output_dir: (PathBuf::from("/out"), vetted("/out", 1)),
            variations: 2,
            inputs: vec![(
                PathBuf::from("/in/a.mp4"),
                vetted("/in/a.mp4", 9),
                effects(2),
            )],
            created_at: 0,
            priority: 0,
            labels: Vec::new(),
            owner: Credentials {
                uid: owner,
                gid: owner,
                groups: vec![],
            },
        };
        let limits = |jobs, owner| Limits {
            max_jobs: jobs,
            max_owner_variations: owner,
        };
        assert_eq!(
            store
                .create_job_within(&new(1000), limits(1, None))
                .unwrap(),
            Err(Full::Jobs { pending: 1 })
        );
        assert_eq!(
            store
                .create_job_within(&new(1000), limits(9, Some(4)))
                .unwrap(),
            Err(Full::Owner {
                pending: 3,
                asked: 2
            })
        );
        // Another owner, and the same one within its limit, pass.
        store
            .create_job_within(&new(1001), limits(9, Some(4)))
            .unwrap()
            .unwrap();
        let id = store
            .create_job_within(&new(1000), limits(9, Some(5)))
            .unwrap()
            .unwrap();
        assert!(id > first);
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
        let Some(Work::Probe { input, .. }) = store.claim(0).unwrap() else {
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
        store.finish_probe(1, media(1_000_000)).unwrap();
        let Some(Work::Encode(work)) = store.claim(0).unwrap() else {
            panic!("then its variation");
        };
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
