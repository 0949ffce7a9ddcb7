//! What must hold after any history of crashes and restarts, checked
//! against the daemon's real database and output directories once the
//! daemon has stopped: every variation ended with exactly one verified
//! output that is recorded and on disk, or with a reason; no hidden
//! temporary file is left; no FFmpeg process lives on; an SQLite database
//! passes `PRAGMA integrity_check`; the files on disk are the outputs
//! listed. The records come from SQLite ([`sqlite_records`]) or from
//! PostgreSQL ([`postgres_records`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A variation as the queue recorded it: id, state, output path, error.
pub type Record = (i64, String, Option<String>, Option<String>);

/// The variations of the SQLite queue `db`, once it passed
/// `PRAGMA integrity_check`.
pub fn sqlite_records(db: &Path) -> Vec<Record> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "database integrity");
    let mut stmt = conn
        .prepare("SELECT id, state, output_path, error FROM variations ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The variations of the shared queue in `cluster`.
pub fn postgres_records(cluster: &super::postgres::Cluster) -> Vec<Record> {
    let text = cluster.psql(
        "SELECT id || chr(31) || state || chr(31) || coalesce(output_path, '') || chr(31)
                || coalesce(error, '')
         FROM variations ORDER BY id",
    );
    let some = |f: &str| (!f.is_empty()).then(|| f.to_string());
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\u{1f}').collect();
            (f[0].parse().unwrap(), f[1].into(), some(f[2]), some(f[3]))
        })
        .collect()
}

/// Panic, saying what is wrong, unless the recorded variations `rows` and
/// the output directories `out_dirs` satisfy the invariants of the module
/// docs. Queued variations are allowed (work not started yet); running
/// ones are not (the daemons have stopped).
pub fn assert_consistent(rows: &[Record], out_dirs: &[&Path]) {
    let mut listed = BTreeSet::new();
    for (id, state, output, error) in rows {
        match state.as_str() {
            "succeeded" => {
                let output = PathBuf::from(
                    output
                        .as_deref()
                        .unwrap_or_else(|| panic!("variation {id} succeeded without an output")),
                );
                let meta = std::fs::symlink_metadata(&output)
                    .unwrap_or_else(|e| panic!("variation {id}: {}: {e}", output.display()));
                assert!(
                    meta.is_file(),
                    "variation {id}: {} is not a file",
                    output.display()
                );
                let probe = super::probe_json(&output);
                assert!(
                    !super::streams(&probe, "video").is_empty(),
                    "variation {id}: {} has no video",
                    output.display()
                );
                assert!(
                    listed.insert(output.clone()),
                    "two variations list {}",
                    output.display()
                );
            }
            "failed" => assert!(
                error.as_deref().is_some_and(|e| !e.is_empty()),
                "variation {id} failed without a reason"
            ),
            "cancelled" | "queued" => {}
            other => panic!("variation {id} is {other} after the daemon stopped"),
        }
    }
    let mut on_disk = BTreeSet::new();
    for dir in out_dirs {
        for name in super::names(dir) {
            assert!(
                !name.starts_with('.'),
                "hidden temporary file {name} left in {}",
                dir.display()
            );
            on_disk.insert(dir.join(name));
        }
        assert_eq!(
            super::ffmpeg_using(dir.to_str().unwrap()),
            Vec::<i32>::new(),
            "FFmpeg still running on {}",
            dir.display()
        );
    }
    let unlisted: Vec<_> = on_disk.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&on_disk).collect();
    assert!(
        unlisted.is_empty() && missing.is_empty(),
        "files on disk and outputs listed differ: on disk only {unlisted:?}, listed only {missing:?}"
    );
}
