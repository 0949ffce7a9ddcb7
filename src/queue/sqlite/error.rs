//! Why the SQLite queue failed: [`StoreError`], with the path or the
//! action it was about and the underlying error kept.

use std::path::PathBuf;

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
    #[error("cannot read the kernel's boot id: {0}")]
    BootId(#[source] std::io::Error),
}

/// The result of a store operation.
pub type Result<T> = std::result::Result<T, StoreError>;
