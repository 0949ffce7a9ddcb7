//! The shared queue as one node holds it: where the database is
//! ([`Database`]), who this node is ([`NodeConfig`]), the connection pool,
//! the schema's upgrade and one transaction at a time
//! ([`PgQueue::in_tx`]).

use super::error::PgError;
use super::{listen, schema};
use crate::queue::Result;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction};
use std::time::Duration;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Longest wait for a new connection to the database.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections a node keeps at most.
const POOL_SIZE: usize = 8;

/// Where and how to connect to the database: tokio-postgres's settings and
/// the TLS connector that `sslmode` asks for.
#[derive(Clone)]
pub struct Database {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
}

impl std::fmt::Debug for Database {
    /// The settings' own `Debug`, which hides the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.config.fmt(f)
    }
}

/// Who this node is in the shared queue.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Unique among live nodes.
    pub name: String,
    /// `max_parallel`, shown by `vidvarctl nodes`.
    pub slots: u32,
    /// How long a claim stays this node's without a heartbeat.
    pub lease_timeout: Duration,
}

/// The queue in a PostgreSQL database, as one node sees it.
pub struct PgQueue {
    pub(super) pool: Pool,
    /// Bumped by every change a node announces ([`listen`]).
    pub(super) changes: tokio::sync::watch::Receiver<u64>,
    pub(super) node: String,
    /// The lease time in seconds, as SQL `make_interval` takes it.
    pub(super) lease_secs: f64,
    /// Database errors not yet written to this node's counters.
    pub(super) errors: crate::history::ErrorTally,
}

impl PgQueue {
    /// Connect with `config`, create or upgrade the schema, and register
    /// this node.
    ///
    /// Errors: the database cannot be reached ([`PgError::Pool`]), its
    /// schema is newer than this binary's ([`PgError::NewerSchema`]), or
    /// another live node has this name ([`PgError::DuplicateNode`]).
    pub async fn connect(
        database: Database,
        node: &NodeConfig,
    ) -> std::result::Result<PgQueue, PgError> {
        let Database { mut config, tls } = database;
        config.application_name(format!("vidvard {}", node.name));
        // A node frozen or gone inside a transaction must not hold its
        // locks (and the cluster) for longer than a lease; a statement
        // waits for a lock at most that long too.
        let lease_ms = node.lease_timeout.as_millis();
        // The node's name, for the trigger that records owed hooks; the
        // server splits options at blanks, and a backslash escapes one.
        let node_setting: String = node
            .name
            .chars()
            .flat_map(|c| match c {
                ' ' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        let options = format!(
            "{} -c idle_in_transaction_session_timeout={lease_ms} -c lock_timeout={lease_ms} \
             -c vidvar.node={node_setting}",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim_start());
        let changes = listen::spawn(config.clone(), tls.clone());
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .build()?;
        let queue = PgQueue {
            pool,
            changes,
            node: node.name.clone(),
            lease_secs: node.lease_timeout.as_secs_f64(),
            errors: crate::history::ErrorTally::default(),
        };
        queue.migrate().await?;
        queue.register(node).await?;
        Ok(queue)
    }

    /// Bring the schema up to date under an advisory lock; a newer schema
    /// is refused and left as it is.
    async fn migrate(&self) -> std::result::Result<(), PgError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&schema::MIGRATION_LOCK],
        )
        .await?;
        // "already exists, skipping" notices are no news.
        tx.batch_execute("SET LOCAL client_min_messages = warning")
            .await?;
        tx.batch_execute(schema::VERSION_TABLE).await?;
        let found: i32 = tx
            .query_one("SELECT version FROM vidvar_schema", &[])
            .await?
            .get(0);
        let known = schema::STEPS.len();
        if found as usize > known {
            return Err(PgError::NewerSchema { found, known });
        }
        for step in &schema::STEPS[found as usize..] {
            tx.batch_execute(step).await?;
        }
        tx.execute("UPDATE vidvar_schema SET version = $1", &[&(known as i32)])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Run `f` in one transaction on a pooled connection and commit.
    pub(super) async fn in_tx<T>(
        &self,
        f: impl for<'a> FnOnce(&'a Transaction<'a>) -> futures_util::future::BoxFuture<'a, Result<T>>,
    ) -> Result<T> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let value = f(&tx).await?;
        tx.commit().await?;
        Ok(value)
    }
}
