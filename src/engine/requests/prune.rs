//! Finished job records removed: on a client's request (its own, or
//! everyone's for an administrator), and by the retention period until
//! shutdown. Outputs stay on disk.

use super::ApiError;
use crate::engine::Engine;
use crate::job::Credentials;
use crate::queue::unix_now;
use std::sync::Arc;
use std::time::Duration;

/// How often finished job records are checked against the retention period.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

impl Engine {
    /// Remove records of final jobs of `peer` (of everyone for root) that
    /// finished at least `older_than_secs` ago. Outputs stay on disk.
    pub async fn prune(&self, peer: &Credentials, older_than_secs: u64) -> Result<u64, ApiError> {
        let owner = (!self.is_admin(peer)).then_some(peer.uid);
        let cutoff = unix_now().saturating_sub(older_than_secs.min(i64::MAX as u64) as i64);
        let removed = self.queue.prune(owner, cutoff).await?;
        if removed > 0 {
            log::info!(
                "pruned {removed} finished job record(s) for uid {}",
                peer.uid
            );
            self.notify_change();
        }
        Ok(removed)
    }

    /// Prune finished job records older than the retention period, now and
    /// then every [`RETENTION_INTERVAL`], until shutdown.
    pub async fn enforce_retention(self: Arc<Self>) {
        loop {
            if let Some(keep) = self.tunables().retention {
                let cutoff = unix_now().saturating_sub(keep.as_secs() as i64);
                match self.queue.prune(None, cutoff).await {
                    Ok(0) => {}
                    Ok(n) => log::info!("retention: pruned {n} finished job record(s)"),
                    Err(err) => log::error!("retention: cannot prune: {err}"),
                }
            }
            tokio::select! {
                () = tokio::time::sleep(RETENTION_INTERVAL) => {}
                () = self.stopping.cancelled() => return,
            }
        }
    }
}
