//! The queue shared with other nodes in PostgreSQL ([`SharedQueue`]) and
//! this node's defaults in it (its name, the lease timeout). Connecting is
//! the queue's (`queue::postgres`); this module only holds the settings.

use crate::queue::postgres::NodeConfig;
use std::time::Duration;

/// A queue shared by several nodes in PostgreSQL, and this node in it.
#[derive(Debug, Clone)]
pub struct SharedQueue {
    /// Connection settings from `database_url` (their `Debug` form hides
    /// the password).
    pub database: crate::queue::postgres::Database,
    pub node: NodeConfig,
}

/// Default `lease_timeout`.
pub const DEFAULT_LEASE_TIMEOUT: Duration = Duration::from_secs(30);

/// This machine's host name: the default node name.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into())
}
