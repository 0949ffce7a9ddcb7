//! Conformance rules: the daemon's (node's) own settings in the queue.

use super::*;

/// The daemon's (node's) pause is stored in the queue and survives a
/// restart.
pub(super) async fn daemon_pause_survives_restart(mut bed: Bed) {
    assert!(!bed.queue.paused().await.unwrap());
    bed.queue.set_paused(true).await.unwrap();
    assert!(bed.queue.paused().await.unwrap());
    bed.reopen().await;
    assert!(bed.queue.paused().await.unwrap(), "still paused");
    bed.queue.set_paused(false).await.unwrap();
    bed.reopen().await;
    assert!(!bed.queue.paused().await.unwrap());
}
