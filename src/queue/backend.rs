//! Which backend holds the queue, and opening it: the one place that
//! chooses between [`sqlite`] and [`postgres`]. The caller says where the
//! queue is ([`Backend`], built from the daemon's settings); everything
//! after [`open`] talks to the [`Queue`] trait alone.

use super::Queue;
use super::postgres::{self, Database, NodeConfig, PgError, PgQueue};
use super::sqlite::{SqliteQueue, StoreError};
use std::path::PathBuf;
use std::sync::Arc;

/// Where the queue is.
#[derive(Debug, Clone)]
pub enum Backend {
    /// One SQLite file, owned by this daemon alone
    /// ([`super::Sharing::OneDaemon`]).
    Sqlite { path: PathBuf },
    /// A PostgreSQL database shared with other nodes, and this node in it
    /// ([`super::Sharing::Nodes`]).
    Postgres {
        /// Boxed: tokio-postgres's settings are large.
        database: Box<Database>,
        node: NodeConfig,
    },
}

/// Why the queue could not be opened: its backend's error, as it said it.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Sqlite(#[from] StoreError),
    #[error(transparent)]
    Postgres(#[from] PgError),
}

impl Backend {
    /// Where the queue is, for logs: the SQLite file's path, or the
    /// database's hosts and name (never its password) and this node's name.
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite { path } => path.display().to_string(),
            Backend::Postgres { database, node } => format!(
                "{} as node {:?}",
                postgres::describe(&database.config),
                node.name
            ),
        }
    }
}

/// Open the queue where `backend` says: the SQLite file, created and
/// upgraded if needed, on threads of its own (opened on a blocking thread,
/// so that no fsync runs on the caller's runtime thread); or the shared
/// database, its schema upgraded and this node registered. A queue shared
/// by several hosts also compares files by inode number alone
/// ([`crate::job::ignore_device_numbers`]: each host numbers the devices of
/// its network mounts its own way).
///
/// Errors: [`OpenError::Sqlite`] ([`SqliteQueue::open`]'s), or
/// [`OpenError::Postgres`] ([`PgQueue::connect`]'s).
pub async fn open(backend: &Backend) -> Result<Arc<dyn Queue>, OpenError> {
    Ok(match backend {
        Backend::Sqlite { path } => {
            let path = path.clone();
            let queue = tokio::task::spawn_blocking(move || SqliteQueue::open(&path))
                .await
                .map_err(|_| StoreError::ThreadDied)??;
            Arc::new(queue)
        }
        Backend::Postgres { database, node } => {
            crate::job::ignore_device_numbers();
            Arc::new(PgQueue::connect((**database).clone(), node).await?)
        }
    })
}
