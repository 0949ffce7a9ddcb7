//! Watch folders at work: [`Engine::watch_folders`] keeps one task per
//! folder this daemon (node) is to scan ([`crate::queue::Queue::watched_folders`]:
//! on a shared queue, one node at a time per folder), started and stopped
//! as folders are added, removed, paused, resumed or taken over. Each task
//! ([`task`]) finds files ([`scan`], with [`notify`] waking it early),
//! settles them ([`tracker`]), takes each settled one as a job of the
//! folder's owner through the same judged path as a client's submission,
//! and does the after-action ([`after`]) once that job ended. Nothing here
//! speaks to clients; the folder requests are [`super::folders`]'.

pub mod after;
pub mod notify;
pub mod scan;
pub mod task;
pub mod tracker;

use super::Engine;
use crate::folder::FolderId;
use crate::queue::Sharing;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Longest time between two reads of the folders to watch on a shared
/// queue (at most a third of the lease time, so that scan leases are
/// renewed in time, and folders of lost nodes taken over soon).
pub const REFRESH: Duration = Duration::from_secs(2);
/// The same on a queue of one daemon, whose folders change only through
/// its own requests (which wake it at once): a safety net.
pub const LOCAL_REFRESH: Duration = Duration::from_secs(60);

impl Engine {
    /// Until shutdown: keep one watching task per folder to scan, reading
    /// the list every [`REFRESH`] ([`LOCAL_REFRESH`] on a queue of one
    /// daemon), and at once when a folder request changed it.
    pub async fn watch_folders(self: Arc<Self>) {
        let refresh = match (&self.settings.shared, self.queue.sharing()) {
            (_, Sharing::OneDaemon) => LOCAL_REFRESH,
            (Some(shared), Sharing::Nodes) => REFRESH.min(shared.node.lease_timeout / 3),
            (None, Sharing::Nodes) => REFRESH,
        };
        let mut running: HashMap<FolderId, CancellationToken> = HashMap::new();
        let mut failing = false;
        loop {
            match self.queue.watched_folders().await {
                Ok(rows) => {
                    failing = false;
                    running.retain(|id, stop| {
                        let kept = rows.iter().any(|row| row.id == *id);
                        if !kept {
                            stop.cancel();
                        }
                        kept
                    });
                    for row in rows {
                        if let Entry::Vacant(slot) = running.entry(row.id) {
                            let stop = slot.insert(self.stopping.child_token()).clone();
                            tokio::spawn(task::watch(Arc::clone(&self), row, stop));
                        }
                    }
                }
                Err(err) if !failing => {
                    failing = true;
                    log::warn!("cannot read the watch folders: {err}");
                }
                Err(_) => {}
            }
            tokio::select! {
                () = tokio::time::sleep(refresh) => {}
                () = self.folders_changed.notified() => {}
                () = self.stopping.cancelled() => return,
            }
        }
    }
}
