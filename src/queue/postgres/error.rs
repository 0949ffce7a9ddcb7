//! Why the shared queue failed: [`PgError`], and which of its failures
//! are an outage ([`QueueError::Unavailable`], the database cannot be
//! reached now) rather than a fault of the request.

use super::tls;
use crate::queue::QueueError;

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
