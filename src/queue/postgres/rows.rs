//! How the shared queue runs statements and spells values: prepared
//! statements run on any client, columns read into domain values (places,
//! processes, owners, states) and a job's row, with its progress by
//! [`job::job_progress`]. No rule of the queue lives here.

use super::error::PgError;
use super::listen;
use crate::effects::Effects;
use crate::job::{self, Credentials, FileIdentity, FileState, JobState};
use crate::process::ProcessIdentity;
use crate::queue::{JobRow, Place, Result};
use deadpool_postgres::{GenericClient, Transaction};
use std::path::PathBuf;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// Run `sql` on `c` as a statement prepared once per connection (deadpool's
/// statement cache): one round trip instead of two (parse, then execute).
pub(super) async fn prepared<C: GenericClient>(
    c: &C,
    sql: &str,
) -> Result<tokio_postgres::Statement> {
    Ok(c.prepare_cached(sql).await?)
}

/// [`prepared`] `sql` executed; the rows it changed.
pub(super) async fn exec<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64> {
    Ok(c.execute(&prepared(c, sql).await?, params).await?)
}

/// [`prepared`] `sql`'s rows.
pub(super) async fn rows<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    Ok(c.query(&prepared(c, sql).await?, params).await?)
}

/// [`prepared`] `sql`'s one row.
pub(super) async fn one<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Row> {
    Ok(c.query_one(&prepared(c, sql).await?, params).await?)
}

/// [`prepared`] `sql`'s row, if any.
pub(super) async fn opt<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>> {
    Ok(c.query_opt(&prepared(c, sql).await?, params).await?)
}

/// Tell every node, when the transaction commits, that work became
/// claimable or a job changed state (a submission, a probe, a cancel, a
/// retry, released claims, a job's end). Claims and progress are not
/// announced: watchers see them within a second anyway, and each
/// notification serializes commits a little.
pub(super) async fn announce(tx: &Transaction<'_>) -> Result<()> {
    tx.batch_execute(listen::NOTIFY).await?;
    Ok(())
}

/// A [`Place`] from three columns from `first` on: real path, device, inode.
pub(super) fn place(r: &Row, first: usize) -> Place {
    Place {
        path: PathBuf::from(r.get::<_, String>(first)),
        identity: identity(r.get(first + 1), r.get(first + 2)),
    }
}

pub(super) fn identity(dev: Option<i64>, ino: Option<i64>) -> Option<FileIdentity> {
    match (dev, ino) {
        (Some(dev), Some(ino)) => Some(FileIdentity {
            dev: dev as u64,
            ino: ino as u64,
        }),
        _ => None,
    }
}

/// A [`ProcessIdentity`] from three columns: pid, start time, boot id.
pub(super) fn process(r: &Row, first: usize) -> Option<ProcessIdentity> {
    match (
        r.get::<_, Option<i32>>(first),
        r.get::<_, Option<i64>>(first + 1),
        r.get::<_, Option<String>>(first + 2),
    ) {
        (Some(pid), Some(start), Some(boot_id)) => Some(ProcessIdentity {
            pid,
            start_time: start as u64,
            boot_id,
        }),
        _ => None,
    }
}

/// A variation's effects from four columns from `first` on: rotation,
/// brightness, contrast, saturation.
pub(super) fn effects(r: &Row, first: usize) -> Effects {
    Effects {
        rotation: r.get(first),
        brightness: r.get(first + 1),
        contrast: r.get(first + 2),
        saturation: r.get(first + 3),
    }
}

/// [`Credentials`] from three columns: uid, gid, groups.
pub(super) fn credentials(r: &Row, first: usize) -> Credentials {
    Credentials {
        uid: r.get::<_, i64>(first) as u32,
        gid: r.get::<_, i64>(first + 1) as u32,
        groups: r
            .get::<_, Vec<i64>>(first + 2)
            .into_iter()
            .map(|g| g as u32)
            .collect(),
    }
}

/// The state named `text` (as [`JobState::as_str`] spells it).
pub(super) fn job_state(text: &str) -> Result<JobState> {
    let found = JobState::ALL.into_iter().find(|s| s.as_str() == text);
    found.ok_or_else(|| bad_value("job state", text))
}

/// The state named `text` (as [`FileState::as_str`] spells it).
pub(super) fn file_state(text: &str) -> Result<FileState> {
    let all = [
        FileState::Queued,
        FileState::Running,
        FileState::Succeeded,
        FileState::Failed,
        FileState::Cancelled,
    ];
    let found = all.into_iter().find(|s| s.as_str() == text);
    found.ok_or_else(|| bad_value("file state", text))
}

/// An `integer` column that holds a count or an index: `None` when NULL
/// (or, never written so, negative).
pub(super) fn column_u32(r: &Row, i: usize) -> Option<u32> {
    r.get::<_, Option<i32>>(i)
        .and_then(|v| u32::try_from(v).ok())
}

fn bad_value(what: &'static str, value: &str) -> crate::queue::QueueError {
    PgError::BadValue {
        what,
        value: value.into(),
    }
    .into()
}

pub(super) fn text(path: &std::path::Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The columns of a [`JobRow`]; its files' progress comes as an array, for
/// [`job::job_progress`] (the one formula of a job's progress).
pub(super) const JOB_COLUMNS: &str =
    "j.id, j.state, j.variations, j.seed, j.output_dir, j.created_at,
    j.owner_uid, ARRAY(SELECT f.progress FROM files f WHERE f.job_id = j.id ORDER BY f.idx),
    j.priority, j.paused,
    ARRAY(SELECT l.label FROM labels l WHERE l.job_id = j.id ORDER BY l.label)";

pub(super) fn job_row(r: &Row) -> Result<JobRow> {
    let files: Vec<f64> = r.get(7);
    Ok(JobRow {
        id: r.get(0),
        state: job_state(r.get(1))?,
        variations: r.get::<_, i32>(2) as u32,
        seed: r.get::<_, i64>(3) as u64,
        output_dir: PathBuf::from(r.get::<_, String>(4)),
        created_at: r.get(5),
        owner_uid: r.get::<_, i64>(6) as u32,
        inputs: files.len() as u32,
        progress: job::job_progress(files),
        priority: r.get(8),
        paused: r.get(9),
        labels: r.get(10),
    })
}
