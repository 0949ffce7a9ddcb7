//! Where the shared queue is: a libpq URL (or key=value string) parsed
//! into tokio-postgres's settings, with the TLS that `sslmode` asks for and
//! the password file's password, and described for logs without secrets.

use super::error::PgError;
use super::store::{CONNECT_TIMEOUT, Database};
use super::{pgpass, tls};

/// Whether `url` itself holds a password (not the password file).
pub fn url_has_password(url: &str) -> bool {
    tls::take_tls(url)
        .ok()
        .and_then(|(url, _, _)| url.parse::<tokio_postgres::Config>().ok())
        .is_some_and(|c| c.get_password().is_some())
}

/// The connection settings in `url` (libpq's URL or key=value form; a
/// unix-socket directory as `host=`; `sslmode` and `sslrootcert` as in
/// [`tls`]), with the password from the password file (`PGPASSFILE`, else
/// `~/.pgpass`) when the URL has none.
///
/// Errors: [`PgError::Url`], [`PgError::Tls`].
pub fn parse_url(url: &str) -> std::result::Result<Database, PgError> {
    let (url, verify, root) = tls::take_tls(url)?;
    let tls = tls::connector(verify, root)?;
    let mut config: tokio_postgres::Config = url.parse().map_err(PgError::Url)?;
    if config.get_password().is_none()
        && let Some(password) = pgpass::lookup(&config)
    {
        config.password(password);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(Database { config, tls })
}

/// Where `config` connects, for logs: hosts, port and database, never the
/// user's password.
pub fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(dir) => dir.display().to_string(),
        })
        .collect();
    format!(
        "postgresql database {} on {}",
        config.get_dbname().unwrap_or("(default)"),
        hosts.join(",")
    )
}
