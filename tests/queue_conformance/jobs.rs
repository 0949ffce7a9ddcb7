//! Conformance rules: jobs as their owners see and change them: submit limits, cancel,
//! retry, prune, labels and paging.

use super::*;
use vidvar::history::RunFigures;

/// A job is inserted only within the limits, counted in the same step:
/// jobs queued or running, and the owner's variations queued or running.
pub(super) async fn submit_limits(bed: Bed) {
    let q = &*bed.queue;
    let first = submit(q, 1, 3, 1000).await;
    let limits = |jobs, owner| Limits {
        max_jobs: jobs,
        max_owner_variations: owner,
    };
    let full = q.submit(new_job(1, 2, 1000), limits(1, None)).await;
    assert_eq!(full.unwrap(), Err(Full::Jobs { pending: 1 }));
    let full = q.submit(new_job(1, 2, 1000), limits(9, Some(4))).await;
    let over = Full::Owner {
        pending: 3,
        asked: 2,
    };
    assert_eq!(full.unwrap(), Err(over));
    // Another owner, and the same one within its limit, pass.
    let other = q.submit(new_job(1, 2, 1001), limits(9, Some(4))).await;
    other.unwrap().unwrap();
    let id = q.submit(new_job(1, 2, 1000), limits(9, Some(5))).await;
    assert!(id.unwrap().unwrap() > first);
    assert_eq!(q.queue_depth().await.unwrap(), 3);
    // A final job counts no more.
    q.cancel(first).await.unwrap();
    assert_eq!(q.queue_depth().await.unwrap(), 2);
    let id = q.submit(new_job(1, 2, 1000), limits(3, Some(4))).await;
    id.unwrap().unwrap();
}

/// A cancel ends a job at once and its queued work with it; running
/// variations go on until their outcome is recorded (on a shared queue the
/// heartbeat tells their node to stop them). A final job stays as it is.
pub(super) async fn cancel(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 1, 2, 0).await;
    let leases = leases_of_next_file(q).await;
    ok(q, leases[0]).await;
    let b = submit(q, 1, 1, 0).await;
    assert_eq!(q.cancel(a).await.unwrap(), Some(JobState::Running));
    assert_eq!(state(q, a).await, JobState::Cancelled);
    assert_eq!(file_states(q, a).await, [FileState::Running]);
    let beat = Beat {
        variations: vec![leases[1]],
        ..Beat::default()
    };
    let stop = q.heartbeat(beat).await.unwrap();
    match q.sharing() {
        Sharing::OneDaemon => assert_eq!(stop, []),
        Sharing::Nodes => assert_eq!(stop, [leases[1]]),
    }
    let ended = q
        .finish_variation(leases[1], Outcome::Cancelled, RunFigures::default())
        .await;
    assert_eq!(ended.unwrap(), Some(JobState::Cancelled));
    assert_eq!(file_states(q, a).await, [FileState::Cancelled]);
    assert_eq!(
        q.outputs(a).await.unwrap().len(),
        1,
        "verified outputs stay"
    );
    assert_eq!(q.cancel(a).await.unwrap(), Some(JobState::Cancelled));
    assert_eq!(q.cancel(999).await.unwrap(), None);

    assert_eq!(q.cancel(b).await.unwrap(), Some(JobState::Queued));
    assert_eq!(file_states(q, b).await, [FileState::Cancelled]);
    assert_eq!(claim(q, 0, 2).await, None, "nothing left to claim");
    assert_eq!(q.queue_depth().await.unwrap(), 0);
    // Its variations were cancelled with it: a retry queues them again.
    assert_eq!(q.retry(b).await.unwrap(), Some((JobState::Cancelled, 1)));
    assert_eq!(claim(q, 0, 2).await, Some((b, "probe /in/0.mp4".into())));
}

/// A retry queues again what did not succeed in a final job (verified
/// outputs are kept and its progress restarts from them); a succeeded or
/// open job, or a cancelled one whose variations are still stopping, has
/// nothing to retry and is left as it is.
pub(super) async fn retry(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 1, 2, 0).await;
    let leases = leases_of_next_file(q).await;
    ok(q, leases[0]).await;
    let file = q.files(a).await.unwrap()[0].id;
    let beat = Beat {
        variations: vec![leases[1]],
        progress: vec![(file, 80.0)],
        ..Beat::default()
    };
    q.heartbeat(beat).await.unwrap();
    q.cancel(a).await.unwrap();
    assert_eq!(q.retry(a).await.unwrap(), Some((JobState::Cancelled, 0)));
    assert_eq!(state(q, a).await, JobState::Cancelled, "left as it is");
    q.finish_variation(leases[1], Outcome::Cancelled, RunFigures::default())
        .await
        .unwrap();
    assert_eq!(q.retry(a).await.unwrap(), Some((JobState::Cancelled, 1)));
    assert_eq!(state(q, a).await, JobState::Queued);
    let file = &q.files(a).await.unwrap()[0];
    assert_eq!(file.state, FileState::Queued);
    assert_eq!(
        file.progress, 50.0,
        "progress restarts from what is verified"
    );
    assert_eq!(file.error, None);
    // Probed anew; only the cancelled variation runs again.
    let again = leases_of_next_file(q).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, leases[1].id);
    assert_eq!(ok(q, again[0]).await, Some(JobState::Succeeded));
    assert_eq!(q.outputs(a).await.unwrap().len(), 2);
    assert_eq!(q.retry(a).await.unwrap(), Some((JobState::Succeeded, 0)));
    assert_eq!(q.retry(999).await.unwrap(), None);

    // A cancel still stopping a running variation: nothing to retry yet,
    // though its queued variations were cancelled at once.
    let c = submit(q, 1, 3, 0).await;
    let Some(Work::Probe { lease, .. }) = q.claim(0, 1).await.unwrap() else {
        panic!("a probe comes first");
    };
    assert!(q.finish_probe(lease, media(), 0.).await.unwrap());
    let running = single(q.claim(0, 1).await.unwrap());
    q.cancel(c).await.unwrap();
    assert_eq!(q.retry(c).await.unwrap(), Some((JobState::Cancelled, 0)));
    assert_eq!(state(q, c).await, JobState::Cancelled, "left as it is");
    q.finish_variation(running.lease, Outcome::Cancelled, RunFigures::default())
        .await
        .unwrap();
    assert_eq!(q.retry(c).await.unwrap(), Some((JobState::Cancelled, 3)));

    let open = submit(q, 1, 1, 0).await;
    assert_eq!(q.retry(open).await.unwrap(), Some((JobState::Queued, 0)));
}

/// Prune forgets final jobs of an owner (everyone's for `None`) finished
/// before a time; open jobs and jobs whose FFmpeg is still being stopped
/// stay.
pub(super) async fn prune(bed: Bed) {
    let q = &*bed.queue;
    let mine = submit(q, 1, 1, 1000).await;
    let theirs = submit(q, 1, 1, 2000).await;
    for _ in 0..2 {
        let lease = leases_of_next_file(q).await[0];
        ok(q, lease).await;
    }
    let open = submit(q, 1, 1, 1000).await;
    let soon = || unix_now() + 1;
    assert_eq!(q.prune(Some(1000), 0).await.unwrap(), 0, "none before 1970");
    assert_eq!(q.prune(Some(1000), soon()).await.unwrap(), 1);
    assert!(q.job(mine).await.unwrap().is_none());
    assert!(q.files(mine).await.unwrap().is_empty());
    assert!(q.job(theirs).await.unwrap().is_some());
    let owned = |uid| filter(|f| f.owner = Some(uid));
    assert_eq!(ids(q, owned(2000)).await, [theirs]);
    assert_eq!(ids(q, owned(1000)).await, [open]);

    // Cancelled, but FFmpeg is still being stopped: the record stays, so
    // that its temporary file is not lost to recovery.
    let lease = leases_of_next_file(q).await[0];
    q.cancel(open).await.unwrap();
    assert_eq!(q.prune(None, soon()).await.unwrap(), 1, "theirs only");
    assert!(q.job(open).await.unwrap().is_some());
    q.finish_variation(lease, Outcome::Cancelled, RunFigures::default())
        .await
        .unwrap();
    assert_eq!(q.prune(None, soon()).await.unwrap(), 1);
    assert!(ids(q, filter(|_| {})).await.is_empty());
}

/// Prune leaves a job whose completion hook is still owed, due or
/// running (issue 22, item 7): its hook runs first, then it may go.
pub(super) async fn prune_keeps_owed_hooks(bed: Bed) {
    let q = &*bed.queue;
    q.set_hooks(true).await.unwrap();
    let a = submit(q, 1, 1, 1000).await;
    let lease = leases_of_next_file(q).await[0];
    assert_eq!(ok(q, lease).await, Some(JobState::Succeeded));
    let soon = || unix_now() + 1;
    assert_eq!(q.prune(None, soon()).await.unwrap(), 0, "its hook is due");
    assert!(q.job(a).await.unwrap().is_some());
    let run = q.claim_hook().await.unwrap().expect("the owed hook");
    assert_eq!(run.job_id, a);
    assert_eq!(q.prune(Some(1000), soon()).await.unwrap(), 0, "it runs");
    q.finish_hook(a).await.unwrap();
    assert_eq!(q.prune(None, soon()).await.unwrap(), 1);
    assert!(q.job(a).await.unwrap().is_none());
}

/// Jobs are listed by id, filtered by owner, state and label, a page at a
/// time after a given id; a job's row carries what it was submitted with.
pub(super) async fn labels_and_paging(bed: Bed) {
    let q = &*bed.queue;
    let labelled = |uid, labels: &[&str]| NewJob {
        labels: labels.iter().map(|l| l.to_string()).collect(),
        ..new_job(2, 3, uid)
    };
    let j1 = submit_job(q, labelled(1000, &["a", "b"])).await;
    let j2 = submit_job(q, labelled(2000, &["b"])).await;
    let j3 = submit_job(q, labelled(1000, &[])).await;
    let j4 = submit_job(q, labelled(1000, &["a"])).await;
    let row = q.job(j1).await.unwrap().unwrap();
    assert_eq!(row.labels, ["a", "b"]);
    assert_eq!((row.inputs, row.variations, row.seed), (2, 3, 1));
    assert_eq!((row.owner_uid, row.created_at), (1000, 1_700_000_000));
    assert_eq!(row.output_dir, Path::new("/out"));
    assert_eq!(
        (row.state, row.priority, row.paused),
        (JobState::Queued, 0, false)
    );
    assert!(q.job(j3).await.unwrap().unwrap().labels.is_empty());
    assert!(q.job(999).await.unwrap().is_none());

    assert_eq!(ids(q, filter(|_| {})).await, [j1, j2, j3, j4]);
    let label = |l: &str| Some(l.to_string());
    assert_eq!(ids(q, filter(|f| f.label = label("a"))).await, [j1, j4]);
    let b_of_1000 = filter(|f| {
        f.label = label("b");
        f.owner = Some(1000);
    });
    assert_eq!(ids(q, b_of_1000).await, [j1]);
    assert!(ids(q, filter(|f| f.label = label("c"))).await.is_empty());
    // Pages.
    assert_eq!(ids(q, filter(|f| f.limit = 2)).await, [j1, j2]);
    let next = filter(|f| {
        f.limit = 2;
        f.after = j2;
    });
    assert_eq!(ids(q, next).await, [j3, j4]);
    assert!(ids(q, filter(|f| f.after = j4)).await.is_empty());
    // By state.
    q.cancel(j3).await.unwrap();
    let cancelled = filter(|f| f.state = Some(JobState::Cancelled));
    assert_eq!(ids(q, cancelled).await, [j3]);
    let queued = filter(|f| f.state = Some(JobState::Queued));
    assert_eq!(ids(q, queued).await, [j1, j2, j4]);
}
