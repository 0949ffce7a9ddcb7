//! Reading and writing the SQLite queue's rows: columns to domain values
//! (places, owners, states, quality figures) and back, and a job's row
//! with its inputs and progress counted from its files. No rule of the
//! queue lives here, only how its values are spelled in SQLite.

use super::error::{Result, StoreError};
use super::store::Store;
use crate::effects::Effects;
use crate::job::{self, Credentials, FileIdentity, FileState, JobId, JobState, Lease, Quality};
use crate::queue::{JobRow, Place};
use rusqlite::{Connection, OptionalExtension};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A [`Place`] from three columns from `first` on: real path, device and
/// inode, with `given` (a column index) when no real path is stored.
pub(super) fn place_of(
    r: &rusqlite::Row<'_>,
    given: usize,
    first: usize,
) -> rusqlite::Result<Place> {
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

pub(super) fn parse_job_state(s: &str) -> Result<JobState> {
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

pub(super) fn parse_file_state(s: &str) -> Result<FileState> {
    Ok(match s {
        "queued" => FileState::Queued,
        "running" => FileState::Running,
        "succeeded" => FileState::Succeeded,
        "failed" => FileState::Failed,
        "cancelled" => FileState::Cancelled,
        other => return Err(StoreError::BadState(other.into())),
    })
}

pub(super) fn path_of(text: String) -> PathBuf {
    PathBuf::from(text)
}

pub(super) fn text_of(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

pub(super) fn groups_text(groups: &[u32]) -> String {
    groups
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A variation's effects stored in four columns from `first` on: rotation,
/// brightness, contrast, saturation.
pub(super) fn effects_of(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Effects> {
    Ok(Effects {
        rotation: r.get(first)?,
        brightness: r.get(first + 1)?,
        contrast: r.get(first + 2)?,
        saturation: r.get(first + 3)?,
    })
}

/// The owner stored in three columns from `first` on: uid, gid, groups.
pub(super) fn owner_of(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Credentials> {
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
pub(super) fn quality_of(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Option<Quality>> {
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

/// Separates a job's labels in one column (labels have no control
/// characters).
pub(super) const LABEL_SEPARATOR: char = '\u{1f}';

/// A job's state, or `None` if there is no such job.
pub(super) fn job_state(conn: &Connection, job_id: JobId) -> Result<Option<JobState>> {
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
pub(super) fn count(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    Ok(r.get::<_, i64>(i)?.max(0) as u64)
}

impl Store {
    /// The columns of a [`JobRow`] but its inputs and progress, which
    /// [`Store::with_files`] adds.
    pub(super) const JOB_COLUMNS: &'static str =
        "j.id, j.state, j.variations, j.seed, j.output_dir,
        j.created_at, j.owner_uid, j.priority, j.paused,
        (SELECT group_concat(l.label, char(31)) FROM
            (SELECT label FROM labels WHERE job_id = j.id ORDER BY label) l)";

    pub(super) fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(JobRow, String)> {
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
                inputs: 0,
                progress: 0.0,
                priority: r.get(7)?,
                paused: r.get(8)?,
                labels: r.get::<_, Option<String>>(9)?.map_or_else(Vec::new, |l| {
                    l.split(LABEL_SEPARATOR).map(String::from).collect()
                }),
            },
            state,
        ))
    }

    /// `rows` with their states parsed, and their inputs and progress
    /// counted from their files ([`job::job_progress`], the one formula of
    /// a job's progress), read in one query for all of them.
    pub(super) fn with_files(&self, rows: Vec<(JobRow, String)>) -> Result<Vec<JobRow>> {
        let ids: Vec<String> = rows.iter().map(|(row, _)| row.id.to_string()).collect();
        let mut files: HashMap<JobId, Vec<f64>> = HashMap::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT job_id, progress FROM files
             WHERE job_id IN (SELECT value FROM json_each(?1)) ORDER BY job_id, idx",
        )?;
        let found = stmt.query_map([format!("[{}]", ids.join(","))], |r| {
            Ok((r.get::<_, JobId>(0)?, r.get::<_, f64>(1)?))
        })?;
        for file in found {
            let (job, progress) = file?;
            files.entry(job).or_default().push(progress);
        }
        rows.into_iter()
            .map(|(mut row, state)| {
                row.state = parse_job_state(&state)?;
                let progress = files.remove(&row.id).unwrap_or_default();
                row.inputs = progress.len() as u32;
                row.progress = job::job_progress(progress);
                Ok(row)
            })
            .collect()
    }
}
