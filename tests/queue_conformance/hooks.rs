//! Conformance rules: the completion hooks owed to jobs that end.

use super::*;

/// A job that becomes final while hooks are on owes one hook, recorded
/// with its end: claimed once, owed again if a stop came before its
/// spawn, handed back with its process if after; a retry and a new end
/// while it runs owe one more.
pub(super) async fn hook_rows(bed: Bed) {
    let q = &*bed.queue;
    let before = submit(q, 1, 1, 1000).await;
    let lease = leases_of_next_file(q).await[0];
    ok(q, lease).await;
    assert_eq!(state(q, before).await, JobState::Succeeded);
    assert_eq!(q.claim_hook().await.unwrap(), None, "no hook while off");

    q.set_hooks(true).await.unwrap();
    let a = submit(q, 1, 1, 1000).await;
    let lease = leases_of_next_file(q).await[0];
    failed(q, lease, "boom").await;
    let t0 = unix_now();
    let run = q.claim_hook().await.unwrap().expect("a hook is owed");
    assert_eq!((run.job_id, run.process.as_ref()), (a, None));
    assert_eq!(run.owner, owner(1000));
    assert!((t0 - 1..=unix_now() + 1).contains(&run.started_at));
    assert_eq!(q.claim_hook().await.unwrap(), None, "claimed once");
    // A stop before the spawn: owed again.
    assert_eq!(q.hooks_left_running().await.unwrap(), []);
    let run = q.claim_hook().await.unwrap();
    assert_eq!(run.map(|r| r.job_id), Some(a));
    q.set_hook_process(a, process(42)).await.unwrap();
    // Retried and ended again while its hook runs: that end owes one
    // more, which the end of the first run does not settle.
    assert_eq!(q.retry(a).await.unwrap().map(|r| r.1), Some(1));
    let lease = leases_of_next_file(q).await[0];
    ok(q, lease).await;
    q.finish_hook(a).await.unwrap();
    let second = q.claim_hook().await.unwrap().expect("the second end's");
    assert_eq!(second.job_id, a);
    q.set_hook_process(a, process(43)).await.unwrap();
    // A stop after the spawn: handed back with its process, not owed.
    let left = q.hooks_left_running().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].process, Some(process(43)));
    assert_eq!(q.claim_hook().await.unwrap(), None);
    q.finish_hook(a).await.unwrap();
    assert_eq!(q.hooks_left_running().await.unwrap(), []);
    assert_eq!(q.claim_hook().await.unwrap(), None);
}
