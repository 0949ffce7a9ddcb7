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
    assert!(q.starting_hook(a).await.unwrap(), "claimed, not spawned");
    q.set_hook_process(a, this_process()).await.unwrap();
    assert!(!q.starting_hook(a).await.unwrap(), "spawned once only");
    // A stop after the spawn: handed back with its process, not owed.
    let left = q.hooks_left_running().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].process, Some(this_process()));
    assert_eq!(q.claim_hook().await.unwrap(), None);
    q.finish_hook(a).await.unwrap();
    assert_eq!(q.hooks_left_running().await.unwrap(), []);
    assert_eq!(q.claim_hook().await.unwrap(), None);

    // Spawned before the machine's last boot: cut short, owed again.
    let b = submit(q, 1, 1, 1000).await;
    let lease = leases_of_next_file(q).await[0];
    ok(q, lease).await;
    assert_eq!(q.claim_hook().await.unwrap().map(|r| r.job_id), Some(b));
    assert!(q.starting_hook(b).await.unwrap());
    q.set_hook_process(b, process(44)).await.unwrap();
    assert_eq!(q.hooks_left_running().await.unwrap(), []);
    assert_eq!(q.claim_hook().await.unwrap().map(|r| r.job_id), Some(b));
    q.finish_hook(b).await.unwrap();
    assert_eq!(q.claim_hook().await.unwrap(), None);
}

/// The hooks of a lost node (no heartbeat for the lease time) pass to a
/// node that takes them over, as its claims do: one never spawned, or
/// spawned on another machine or boot, is owed again to any node; one
/// whose process runs on this machine is handed over with it, to be
/// waited for. A live node's hooks stay its own, and the lost node can
/// neither start nor end what was taken over. One daemon has no other
/// node: there is nothing to take over.
pub(super) async fn lost_node_hooks(bed: Bed) {
    let q = &*bed.queue;
    q.set_hooks(true).await.unwrap();
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let job = submit(q, 1, 1, 1000).await;
        let lease = leases_of_next_file(q).await[0];
        failed(q, lease, "boom").await;
        assert_eq!(q.claim_hook().await.unwrap().map(|r| r.job_id), Some(job));
        jobs.push(job);
    }
    let [unspawned, elsewhere, here] = jobs[..] else {
        unreachable!()
    };
    q.set_hook_process(elsewhere, process(42)).await.unwrap();
    assert!(q.starting_hook(here).await.unwrap());
    q.set_hook_process(here, this_process()).await.unwrap();
    match q.sharing() {
        Sharing::OneDaemon => assert_eq!(q.adopt_hooks().await.unwrap(), []),
        Sharing::Nodes => {
            let lease = Duration::from_secs(2);
            let b = bed.other_node("b", lease).await;
            q.heartbeat(Beat::default()).await.unwrap();
            assert_eq!(b.adopt_hooks().await.unwrap(), [], "a is live");
            assert_eq!(b.claim_hook().await.unwrap(), None);
            let deadline = Instant::now() + LIMIT;
            let taken = loop {
                let taken = b.adopt_hooks().await.unwrap();
                if !taken.is_empty() {
                    break taken;
                }
                assert!(Instant::now() < deadline, "a never found lost");
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            assert_eq!(taken.len(), 1, "{taken:?}");
            assert_eq!(
                (taken[0].job_id, taken[0].process.clone()),
                (here, Some(this_process()))
            );
            assert_eq!(b.adopt_hooks().await.unwrap(), [], "taken once");
            let mut owed = Vec::new();
            while let Some(run) = b.claim_hook().await.unwrap() {
                owed.push(run.job_id);
            }
            assert_eq!(owed, [unspawned, elsewhere]);
            assert!(!q.starting_hook(unspawned).await.unwrap(), "a lost it");
            q.finish_hook(here).await.unwrap();
            b.finish_hook(unspawned).await.unwrap();
            b.finish_hook(elsewhere).await.unwrap();
            let left = b.hooks_left_running().await.unwrap();
            assert_eq!(left.len(), 1, "still b's: {left:?}");
            assert_eq!(left[0].job_id, here);
            b.finish_hook(here).await.unwrap();
            assert_eq!(b.claim_hook().await.unwrap(), None);
            assert_eq!(b.hooks_left_running().await.unwrap(), []);
        }
    }
}
