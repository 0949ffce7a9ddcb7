//! Opening the shared queue: the connection pool, the schema's upgrade,
//! one transaction at a time ([`PgQueue::in_tx`]), and the errors of it
//! all, with which of them are an outage ([`QueueError::Unavailable`]).

use super::node::NodeConfig;
use super::url::Database;
use super::{PgQueue, listen, schema, tls};
use crate::queue::{QueueError, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction};
use std::time::Duration;

/// Longest wait for a new connection to the database.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections a node keeps at most.
const POOL_SIZE: usize = 8;

/// Why the shared queue cannot be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The URL does not parse; the message never repeats the URL, which may
    /// hold a password.
    #[error("invalid database URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    #[error("database: {}", chain(.0))]
    Sql(#[from] tokio_postgres::Error),
    #[error("cannot connect to the database: {}", chain(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("cannot set up the database connections: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
    #[error(
        "the database's schema is version {found}, newer than this vidvard understands \
         ({known}): upgrade vidvard; the database was left untouched"
    )]
    NewerSchema { found: i32, known: usize },
    #[error(
        "node name {name:?} is taken by a live node: pid {pid} on {host}, last heartbeat \
         {age:.0} s ago; give this node another --node-name"
    )]
    DuplicateNode {
        name: String,
        host: String,
        pid: i32,
        age: f64,
    },
    #[error("cannot read this process's identity: {0}")]
    Identity(#[source] std::io::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("invalid stored {what}: {value:?}")]
    BadValue { what: &'static str, value: String },
}

/// `err` and its sources, `: `-separated: tokio-postgres says "error
/// performing TLS handshake" and keeps the reason (a certificate that does
/// not name the host, say) in its source.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl From<PgError> for QueueError {
    fn from(err: PgError) -> Self {
        QueueError::Backend(Box::new(err))
    }
}

impl From<tokio_postgres::Error> for QueueError {
    fn from(err: tokio_postgres::Error) -> Self {
        // A closed connection, a failed connect or a server shutting down
        // or starting (SQLSTATE classes 08 and 57P) is an outage, not a
        // fault of the request.
        let outage = err.code().map_or_else(
            || {
                err.is_closed()
                    || std::error::Error::source(&err).is_some_and(|s| s.is::<std::io::Error>())
            },
            |code| code.code().starts_with("08") || code.code().starts_with("57P"),
        );
        if outage {
            QueueError::Unavailable(Box::new(PgError::Sql(err)))
        } else {
            PgError::Sql(err).into()
        }
    }
}

impl From<deadpool_postgres::PoolError> for QueueError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        QueueError::Unavailable(Box::new(PgError::Pool(err)))
    }
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
