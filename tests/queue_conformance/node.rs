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

/// What other nodes run, as the queue stores it: on a shared queue
/// ([`Sharing::Nodes`]) the variations another node holds claimed, each
/// with its job, owner, input, index and node, none of this node's own,
/// only the asked job's when one is named, each gone once it is settled. One daemon owns an SQLite queue: nothing
/// runs elsewhere.
pub(super) async fn running_elsewhere(bed: Bed) {
    let q = &*bed.queue;
    let job = submit(q, 2, 2, 1000).await;
    let own = leases_of_next_file(q).await;
    assert_eq!(own.len(), 2);
    let of = |q: Arc<dyn Queue>, job| async move {
        let rows = q.running_elsewhere(job).await.unwrap();
        rows.into_iter()
            .map(|r| (r.job_id, r.owner_uid, r.input, r.index, r.node))
            .collect::<Vec<_>>()
    };
    let elsewhere = |q| of(q, None);
    assert_eq!(
        elsewhere(bed.queue.clone()).await,
        [],
        "not this node's own"
    );
    if q.sharing() == Sharing::OneDaemon {
        return;
    }
    let b = bed.other_node("b", LONG_LEASE).await;
    let theirs = start_next_file(&*b).await;
    let input = PathBuf::from("/in/1.mp4");
    assert_eq!(
        elsewhere(bed.queue.clone()).await,
        [
            (job, 1000, input.clone(), 1, "b".to_string()),
            (job, 1000, input.clone(), 2, "b".to_string()),
        ]
    );
    assert_eq!(elsewhere(b.clone()).await.len(), 2, "b sees a's");
    let idle = submit(q, 1, 1, 1000).await;
    assert_eq!(of(bed.queue.clone(), Some(idle)).await, [], "another job's");
    assert_eq!(of(bed.queue.clone(), Some(job)).await.len(), 2);
    ok(&*b, theirs[0].lease).await;
    assert_eq!(
        elsewhere(bed.queue.clone()).await,
        [(job, 1000, input, 2, "b".to_string())]
    );
}
