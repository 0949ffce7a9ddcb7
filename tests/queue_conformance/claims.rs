//! Conformance rules: which work comes next and the claims on it: order
//! (priority, then jobs in turn, then inputs in order), turns that take a
//! probe or a batch of one file's variations, paused jobs, what a claim
//! carries, fencing, and an input that cannot be used.

use super::*;
use vidvar::history::RunFigures;

/// A probe claim names the input as given and as vetted, and the owner; an
/// encode claim carries the probe's findings, the variation's effects, the
/// output directory and its temporary file's recorded path.
pub(super) async fn claim_carries_what_the_work_needs(bed: Bed) {
    let q = &*bed.queue;
    let job = new_job(1, 2, 1000);
    let effects = job.inputs[0].2.clone();
    let a = submit_job(q, job).await;
    let Some(Work::Probe {
        job_id,
        lease,
        path,
        input,
        owner: who,
    }) = q.claim(0, 2).await.unwrap()
    else {
        panic!("a probe comes first");
    };
    assert_eq!((job_id, path.as_path()), (a, Path::new("/in/0.mp4")));
    let place = |path: &str, ino| Place {
        path: path.into(),
        identity: Some(FileIdentity { dev: 1, ino }),
    };
    assert_eq!(input, place("/in/0.mp4", 2));
    assert_eq!(who, owner(1000));
    assert_eq!(file_states(q, a).await, [FileState::Running]);
    assert_eq!(state(q, a).await, JobState::Running);
    assert!(q.finish_probe(lease, media(), 0.).await.unwrap());
    let work = single(q.claim(0, 1).await.unwrap());
    let file = &q.files(a).await.unwrap()[0];
    assert_eq!(file.duration_us, Some(1_000_000));
    assert_eq!((work.job_id, work.file_id), (a, file.id));
    assert_eq!((work.index, work.variations), (1, 2));
    assert_eq!(work.input, Path::new("/in/0.mp4"));
    assert_eq!(work.input_place, place("/in/0.mp4", 2));
    assert_eq!(work.output_dir, place("/out", 1));
    assert_eq!(work.media, media());
    assert_eq!(work.effects, effects[0]);
    assert_eq!(work.owner, owner(1000));
    assert_eq!(work.previous, None);
    let interrupted = q.interrupted().await.unwrap();
    let temp = vidvar::naming::temp_name(&work.input, 1, work.lease);
    assert_eq!(interrupted.len(), 1);
    assert_eq!(interrupted[0].lease, work.lease);
    assert_eq!(interrupted[0].temp_path, Some(Path::new("/out").join(temp)));
}

/// Claim one probe per turn, each after job `after` with `slots` free
/// slots and of input `input` of job `job`, then finish them all.
async fn probe_turns(q: &dyn Queue, slots: usize, turns: &[(JobId, JobId, usize)]) {
    let mut probes = Vec::new();
    for &(after, job, input) in turns {
        let work = q.claim(after, slots).await.unwrap();
        let probe = Some((job, format!("probe /in/{input}.mp4")));
        assert_eq!(
            work.as_ref().map(what),
            probe,
            "a probe is a turn of one slot"
        );
        let Some(Work::Probe { lease, .. }) = work else {
            unreachable!()
        };
        probes.push(lease);
    }
    for lease in probes {
        assert!(q.finish_probe(lease, media(), 0.).await.unwrap());
    }
}

/// Claim each turn `(after, slots, job, "encode ...", why)` in order.
async fn turns(q: &dyn Queue, turns: &[(JobId, usize, JobId, &str, &str)]) {
    for &(after, slots, job, said, why) in turns {
        let got = claim(q, after, slots).await;
        assert_eq!(got, Some((job, said.to_string())), "{why}");
    }
}

/// Among jobs of one priority, each turn goes to the next job after the
/// one served last, wrapping around to the oldest; a turn takes the job's
/// first input still to be probed or with queued variations: its probe
/// (one slot), or up to the free slots of its variations, by index
/// (README, "Scheduling").
pub(super) async fn round_robin(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 3, 3, 0).await;
    let b = submit(q, 1, 2, 0).await;
    let c = submit(q, 1, 1, 0).await;
    let wraps = (c, a, 1);
    probe_turns(q, 2, &[(0, a, 0), (a, b, 0), (b, c, 0), wraps]).await;
    turns(
        q,
        &[
            (a, 2, b, "encode /in/0.mp4 #1 #2", "the next job"),
            (b, 2, c, "encode /in/0.mp4 #1", "what its file has"),
            (c, 2, a, "encode /in/0.mp4 #1 #2", "wraps around"),
            // b and c have nothing claimable: a's turn again, and again.
            (a, 2, a, "encode /in/0.mp4 #3", "a turn takes one file"),
            (a, 2, a, "encode /in/1.mp4 #1 #2", "inputs in order"),
            (a, 2, a, "encode /in/1.mp4 #3", "the rest of it"),
            (a, 2, a, "probe /in/2.mp4", "its probed inputs first"),
        ],
    )
    .await;
    assert_eq!(claim(q, a, 2).await, None);
}

/// Turns go to the jobs of the highest priority first, in turn among
/// them; a lower one waits until they have nothing claimable.
pub(super) async fn priority_first(bed: Bed) {
    let q = &*bed.queue;
    let (low, high_a, high_b) = (
        submit(q, 1, 3, 0).await,
        submit(q, 1, 3, 0).await,
        submit(q, 1, 3, 0).await,
    );
    q.set_priority(low, -1).await.unwrap();
    q.set_priority(high_a, 5).await.unwrap();
    let set = q.set_priority(high_b, 5).await.unwrap();
    assert_eq!(set, Some(JobState::Queued));
    assert_eq!(q.set_priority(999, 5).await.unwrap(), None);
    assert_eq!(q.job(high_a).await.unwrap().unwrap().priority, 5);
    // The top has nothing claimable while its files are probed.
    probe_turns(
        q,
        2,
        &[(0, high_a, 0), (high_a, high_b, 0), (high_b, low, 0)],
    )
    .await;
    let top = "the top first, in turn";
    turns(
        q,
        &[
            (low, 2, high_a, "encode /in/0.mp4 #1 #2", top),
            (high_a, 2, high_b, "encode /in/0.mp4 #1 #2", top),
            (high_b, 2, high_a, "encode /in/0.mp4 #3", top),
            (high_a, 2, high_b, "encode /in/0.mp4 #3", top),
            (high_b, 2, low, "encode /in/0.mp4 #1 #2", "the top is done"),
        ],
    )
    .await;
    // A job submitted with a higher priority goes first at once.
    let urgent = submit_job(
        q,
        NewJob {
            priority: 9,
            ..new_job(1, 1, 0)
        },
    )
    .await;
    let first = "the new top first";
    turns(q, &[(low, 2, urgent, "probe /in/0.mp4", first)]).await;
}

/// A turn takes up to the free slots of queued variations of one file of
/// the job in turn, by index: never more than the slots, never two files,
/// a single free slot takes one; the next turn goes to the next job. Each
/// variation of a batch is claimed on its own: its own lease and
/// temporary file, finished or requeued alone; where a lease can go stale
/// ([`Sharing::Nodes`]), a stale one is refused while its siblings' writes
/// succeed.
pub(super) async fn batch_claims(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 2, 3, 0).await;
    let b = submit(q, 1, 2, 0).await;
    probe_turns(q, 4, &[(0, a, 0), (a, b, 0), (b, a, 1)]).await;
    let Some(Work::Encode(first)) = q.claim(b, 2).await.unwrap() else {
        panic!("a's variations");
    };
    let temp = |w: &VariationWork| {
        let name = vidvar::naming::temp_name(&w.input, w.index, w.lease);
        (w.lease, Some(Path::new("/out").join(name)))
    };
    let claimed: Vec<_> = first.iter().map(temp).collect();
    let mut left = q.interrupted().await.unwrap();
    left.sort_by_key(|i| i.lease.id);
    let recorded: Vec<_> = left
        .iter()
        .map(|i| (i.lease, i.temp_path.clone()))
        .collect();
    assert_eq!(recorded, claimed, "a lease and temporary file each");
    let indexes: Vec<_> = first.iter().map(|w| (w.file_id, w.index)).collect();
    let file = q.files(a).await.unwrap()[0].id;
    assert_eq!(indexes, [(file, 1), (file, 2)], "up to the slots");
    turns(
        q,
        &[
            (a, 8, b, "encode /in/0.mp4 #1 #2", "the next job's turn"),
            (b, 8, a, "encode /in/0.mp4 #3", "never two files"),
            (a, 1, a, "encode /in/1.mp4 #1", "one slot, one variation"),
            (a, 8, a, "encode /in/1.mp4 #2 #3", "the rest of that file"),
        ],
    )
    .await;
    assert_eq!(claim(q, a, 8).await, None);

    // The first of the first batch is stopped to be claimed again.
    let (one, two) = (first[0].lease, first[1].lease);
    let requeued = q
        .finish_variation(one, Outcome::Requeued, RunFigures::default())
        .await
        .unwrap();
    assert_eq!(requeued, Some(JobState::Running));
    let again = single(q.claim(0, 8).await.unwrap());
    assert_eq!(again.lease.id, one.id);
    match q.sharing() {
        Sharing::OneDaemon => assert_eq!(again.lease, one, "never lost, never stale"),
        Sharing::Nodes => {
            assert_eq!(again.lease.attempt, one.attempt + 1);
            let beat = Beat {
                variations: vec![one, two],
                ..Beat::default()
            };
            let stop = q.heartbeat(beat).await.unwrap();
            assert_eq!(stop, [one], "only the stale one stops");
            // The new claim's temporary file exists: the stale claim can
            // neither replace it nor publish.
            let new = FileIdentity { dev: 1, ino: 62 };
            q.set_temp(again.lease, new).await.unwrap();
            q.set_temp(one, FileIdentity { dev: 1, ino: 60 })
                .await
                .unwrap();
            assert!(!q.confirm(one).await.unwrap(), "the stale lease is refused");
            assert_eq!(ok(q, one).await, None);
            let left = q.interrupted().await.unwrap();
            let of_one = left.iter().find(|i| i.lease.id == one.id);
            let held = of_one.map(|i| (i.lease, i.temp_identity));
            assert_eq!(held, Some((again.lease, Some(new))));
        }
    }
    // Its sibling's writes go on under its own lease, and so do its own.
    for (lease, ino) in [(two, 61), (again.lease, 62)] {
        q.set_temp(lease, FileIdentity { dev: 1, ino })
            .await
            .unwrap();
        q.set_process(lease, process(4000 + ino as i32))
            .await
            .unwrap();
        assert!(q.confirm(lease).await.unwrap());
        assert_eq!(ok(q, lease).await, Some(JobState::Running));
    }
    let outputs = q.outputs(a).await.unwrap();
    let made: Vec<_> = outputs.iter().map(|o| (o.input.clone(), o.index)).collect();
    assert_eq!(made, [("/in/0.mp4".into(), 1), ("/in/0.mp4".into(), 2)]);
}

/// None of a paused job's work is claimed, probes nor variations, until
/// it is resumed.
pub(super) async fn paused_jobs_wait(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 1, 1, 0).await;
    let b = submit(q, 1, 1, 0).await;
    assert_eq!(
        q.set_job_paused(a, true).await.unwrap(),
        Some(JobState::Queued)
    );
    assert_eq!(q.set_job_paused(999, true).await.unwrap(), None);
    assert!(q.job(a).await.unwrap().unwrap().paused);
    let Some(Work::Probe { job_id, lease, .. }) = q.claim(0, 2).await.unwrap() else {
        panic!("b's probe");
    };
    assert_eq!(job_id, b);
    // Paused once probed: its queued variation waits too.
    q.set_job_paused(b, true).await.unwrap();
    assert!(q.finish_probe(lease, media(), 0.).await.unwrap());
    assert_eq!(claim(q, 0, 2).await, None, "all paused");
    q.set_job_paused(b, false).await.unwrap();
    assert_eq!(
        claim(q, 0, 2).await,
        Some((b, "encode /in/0.mp4 #1".into()))
    );
    q.set_job_paused(a, false).await.unwrap();
    assert!(!q.job(a).await.unwrap().unwrap().paused);
    assert_eq!(claim(q, b, 2).await, Some((a, "probe /in/0.mp4".into())));
}

/// Every write about claimed work is fenced by its lease. Where claims
/// expire ([`Sharing::Nodes`]), a node that lost its claim to another
/// (its lease expired and another node claimed the work with the next
/// attempt) can record nothing: not a probe, not a temporary file, not an
/// outcome, and its heartbeat tells it to stop; the new claim gets what
/// the lost one left. Where one daemon owns the queue, a claim is never
/// lost: it stays held however long the work takes.
pub(super) async fn fencing(bed: Bed) {
    let q = &*bed.queue;
    let job = submit(q, 1, 1, 0).await;
    match q.sharing() {
        Sharing::OneDaemon => {
            let Some(Work::Probe { lease, .. }) = q.claim(0, 1).await.unwrap() else {
                panic!("a probe");
            };
            assert_eq!(lease.attempt, 1);
            assert!(q.finish_probe(lease, media(), 0.).await.unwrap());
            let work = single(q.claim(0, 1).await.unwrap());
            let identity = FileIdentity { dev: 1, ino: 50 };
            q.set_temp(work.lease, identity).await.unwrap();
            let beat = Beat {
                variations: vec![work.lease],
                ..Beat::default()
            };
            assert_eq!(q.heartbeat(beat).await.unwrap(), []);
            assert!(q.confirm(work.lease).await.unwrap());
            assert_eq!(ok(q, work.lease).await, Some(JobState::Succeeded));
        }
        Sharing::Nodes => {
            let short = Duration::from_secs(1);
            let lost = bed.other_node("lost", short).await;
            let taker = bed.other_node("taker", short).await;
            let Some(Work::Probe { lease: old, .. }) = lost.claim(0, 1).await.unwrap() else {
                panic!("a probe");
            };
            let Work::Probe { lease: new, .. } = claim_when_free(&*taker).await else {
                panic!("the same probe, taken over");
            };
            assert_eq!((new.id, new.attempt), (old.id, old.attempt + 1));
            assert!(!lost.finish_probe(old, media(), 0.).await.unwrap());
            assert_eq!(
                lost.fail_file(old, "x".into(), RunFigures::default())
                    .await
                    .unwrap(),
                None
            );
            assert!(taker.finish_probe(new, media(), 0.).await.unwrap());

            let old = single(lost.claim(0, 1).await.unwrap());
            let identity = FileIdentity { dev: 1, ino: 50 };
            lost.set_temp(old.lease, identity).await.unwrap();
            lost.set_process(old.lease, process(4242)).await.unwrap();
            let new = single(Some(claim_when_free(&*taker).await));
            assert_eq!(new.lease.id, old.lease.id);
            assert_eq!(new.lease.attempt, old.lease.attempt + 1);
            let previous = new.previous.expect("what the lost claim left");
            assert_eq!(previous.lease, old.lease);
            assert_eq!(previous.temp_identity, Some(identity));
            assert_eq!(previous.process, Some(process(4242)));
            let old_temp = vidvar::naming::temp_name(&old.input, 1, old.lease);
            assert_eq!(previous.temp_path, Some(Path::new("/out").join(old_temp)));

            // The lost claim writes nothing more.
            assert!(!lost.confirm(old.lease).await.unwrap());
            let beat = Beat {
                variations: vec![old.lease],
                ..Beat::default()
            };
            assert_eq!(lost.heartbeat(beat).await.unwrap(), [old.lease]);
            lost.set_temp(old.lease, identity).await.unwrap();
            assert!(
                !taker.confirm(new.lease).await.unwrap(),
                "no temporary file recorded under the new claim"
            );
            assert_eq!(ok(&*lost, old.lease).await, None);
            taker.set_temp(new.lease, identity).await.unwrap();
            assert!(taker.confirm(new.lease).await.unwrap());
            assert_eq!(ok(&*taker, new.lease).await, Some(JobState::Succeeded));
            let outputs = q.outputs(job).await.unwrap();
            assert_eq!(outputs.len(), 1);
            assert_eq!(outputs[0].node.as_deref(), Some("taker"));
            // The lost claim's FFmpeg is its own node's to judge, once.
            assert_eq!(lost.orphaned_processes().await.unwrap(), [process(4242)]);
            assert_eq!(lost.orphaned_processes().await.unwrap(), []);
        }
    }
    assert_eq!(state(q, job).await, JobState::Succeeded);
}

/// An input that cannot be used fails with its queued variations; the job
/// goes on with its other inputs.
pub(super) async fn unusable_input_fails_its_file(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 2, 2, 0).await;
    let Some(Work::Probe { lease, .. }) = q.claim(0, 1).await.unwrap() else {
        panic!("a probe");
    };
    let failed = q
        .fail_file(lease, "not a video".into(), RunFigures::default())
        .await
        .unwrap();
    assert_eq!(failed, Some(JobState::Running));
    let file = &q.files(a).await.unwrap()[0];
    assert_eq!(file.state, FileState::Failed);
    assert_eq!(file.error.as_deref(), Some("not a video"));
    for lease in leases_of_next_file(q).await {
        ok(q, lease).await;
    }
    assert_eq!(state(q, a).await, JobState::Partial);
    let b = submit(q, 1, 1, 0).await;
    let Some(Work::Probe { lease, .. }) = q.claim(0, 1).await.unwrap() else {
        panic!("a probe");
    };
    let failed = q
        .fail_file(lease, "gone".into(), RunFigures::default())
        .await
        .unwrap();
    assert_eq!(failed, Some(JobState::Failed));
    assert_eq!(state(q, b).await, JobState::Failed);
    // Its variation failed with it: a retry queues it again.
    assert_eq!(q.retry(b).await.unwrap(), Some((JobState::Failed, 1)));
}

/// A cancel does not take a claim away: the probe of a job cancelled while
/// it ran is still acknowledged (the claim was held), but revives nothing:
/// the job stays cancelled, with nothing to claim.
pub(super) async fn cancel_while_probing(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 1, 1, 0).await;
    let Some(Work::Probe { lease, .. }) = q.claim(0, 1).await.unwrap() else {
        panic!("a probe");
    };
    assert_eq!(q.cancel(a).await.unwrap(), Some(JobState::Running));
    assert!(
        q.finish_probe(lease, media(), 0.).await.unwrap(),
        "still held"
    );
    assert_eq!(state(q, a).await, JobState::Cancelled);
    assert_eq!(file_states(q, a).await, [FileState::Cancelled]);
    assert_eq!(claim(q, 0, 2).await, None);

    let b = submit(q, 1, 1, 0).await;
    let Some(Work::Probe { lease, .. }) = q.claim(0, 1).await.unwrap() else {
        panic!("a probe");
    };
    q.cancel(b).await.unwrap();
    let failed = q
        .fail_file(lease, "not a video".into(), RunFigures::default())
        .await
        .unwrap();
    assert_eq!(failed, Some(JobState::Cancelled), "still held");
    let file = &q.files(b).await.unwrap()[0];
    assert_eq!(
        (file.state, file.error.as_deref()),
        (FileState::Cancelled, None)
    );
    assert_eq!(claim(q, 0, 2).await, None);
}

/// A lost claim of a job cancelled meanwhile is taken over (even while
/// the job is paused) only to settle what it left: the work says so
/// (`cancelled`), and it is recorded cancelled, never encoded; an open
/// job's taken-over work is not marked. One daemon owns an SQLite queue:
/// nothing is taken over there.
pub(super) async fn lost_claims_of_cancelled_jobs(bed: Bed) {
    let q = &*bed.queue;
    let job = submit(q, 1, 2, 0).await;
    let Sharing::Nodes = q.sharing() else {
        let work = start_next_file(q).await;
        assert!(work.iter().all(|w| !w.cancelled));
        return;
    };
    let short = Duration::from_secs(1);
    let lost = bed.other_node("lost", short).await;
    let taker = bed.other_node("taker", short).await;
    let Some(Work::Probe { lease, .. }) = lost.claim(0, 2).await.unwrap() else {
        panic!("a probe");
    };
    assert!(lost.finish_probe(lease, media(), 0.).await.unwrap());
    let Some(Work::Encode(old)) = lost.claim(0, 2).await.unwrap() else {
        panic!("its variations");
    };
    assert_eq!(old.len(), 2);
    q.cancel(job).await.unwrap();
    q.set_job_paused(job, true).await.unwrap();
    let Work::Encode(taken) = claim_when_free(&*taker).await else {
        panic!("the lost claims, taken over");
    };
    assert_eq!(taken.len(), 1, "one free slot");
    assert!(taken[0].cancelled, "taken over to settle only");
    assert!(taken[0].previous.is_some());
    assert_eq!(
        taker
            .finish_variation(taken[0].lease, Outcome::Cancelled, RunFigures::default())
            .await
            .unwrap(),
        Some(JobState::Cancelled)
    );
    let Work::Encode(rest) = claim_when_free(&*taker).await else {
        panic!("the other lost claim");
    };
    assert!(rest[0].cancelled);
    taker
        .finish_variation(rest[0].lease, Outcome::Cancelled, RunFigures::default())
        .await
        .unwrap();
    assert_eq!(taker.claim(0, 2).await.unwrap().map(|w| what(&w)), None);
    assert_eq!(q.retry(job).await.unwrap(), Some((JobState::Cancelled, 2)));
}
