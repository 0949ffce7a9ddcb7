//! Conformance rules: how outcomes settle files and jobs, their progress and outputs, and a
//! variation stopped to be claimed again.

use super::*;
use vidvar::history::RunFigures;

/// A file settles once none of its variations is open (succeeded if all
/// did, failed if any failed, with the first failure's error); a job once
/// none of its files is (succeeded, partial or failed).
pub(super) async fn settle_succeeded_partial_failed(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 2, 2, 0).await;
    for lease in leases_of_next_file(q).await {
        assert_eq!(ok(q, lease).await, Some(JobState::Running));
    }
    let second = leases_of_next_file(q).await;
    assert_eq!(failed(q, second[0], "boom").await, Some(JobState::Running));
    assert_eq!(ok(q, second[1]).await, Some(JobState::Partial));
    let files = q.files(a).await.unwrap();
    assert_eq!(
        files.iter().map(|f| f.state).collect::<Vec<_>>(),
        [FileState::Succeeded, FileState::Failed]
    );
    assert_eq!(files[1].error.as_deref(), Some("boom"));
    assert_eq!(files[1].done_variations, 1);
    assert_eq!(state(q, a).await, JobState::Partial);

    let b = submit(q, 1, 1, 0).await;
    let lease = leases_of_next_file(q).await[0];
    assert_eq!(failed(q, lease, "bad").await, Some(JobState::Failed));
    let c = submit(q, 1, 2, 0).await;
    let leases = leases_of_next_file(q).await;
    assert_eq!(ok(q, leases[1]).await, Some(JobState::Running));
    assert_eq!(ok(q, leases[0]).await, Some(JobState::Succeeded));
    assert_eq!(state(q, b).await, JobState::Failed);
    assert_eq!(state(q, c).await, JobState::Succeeded);
}

/// A file's progress counts its verified variations whole and its running
/// ones by their reported percents, never goes back, and a job's is the
/// mean of its files'.
pub(super) async fn progress(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 2, 4, 0).await;
    let leases = leases_of_next_file(q).await;
    let file = q.files(a).await.unwrap()[0].id;
    let beat = |leases: &[Lease], running: f64| Beat {
        variations: leases.to_vec(),
        probes: Vec::new(),
        progress: vec![(file, running)],
        slots: 2,
    };
    let progress = async |expected_file: f64, expected_job: f64| {
        let files = q.files(a).await.unwrap();
        assert_eq!((files[0].progress, files[1].progress), (expected_file, 0.0));
        assert_eq!(q.job(a).await.unwrap().unwrap().progress, expected_job);
    };
    progress(0.0, 0.0).await;
    assert_eq!(q.heartbeat(beat(&leases, 100.0)).await.unwrap(), []);
    progress(25.0, 12.5).await;
    ok(q, leases[0]).await;
    progress(25.0, 12.5).await;
    q.heartbeat(beat(&leases[1..], 150.0)).await.unwrap();
    progress(62.5, 31.25).await;
    q.heartbeat(beat(&leases[1..], 10.0)).await.unwrap();
    progress(62.5, 31.25).await;
    for &lease in &leases[1..] {
        ok(q, lease).await;
    }
    progress(100.0, 50.0).await;
}

/// Outputs are listed by input, then variation index, with the effects
/// they were made with, their size, the quality check's figures and (on a
/// shared queue) the node that made them.
pub(super) async fn outputs_in_order(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 2, 2, 0).await;
    let mut made = Vec::new();
    for _ in 0..2 {
        let mut works = start_next_file(q).await;
        works.reverse();
        for work in works {
            let quality = (work.index == 2).then_some(Quality {
                samples: 5,
                ssim_mean: 0.98,
                ssim_min: 0.95,
                luma_diff: 1.5,
            });
            let output = PathBuf::from(format!("/out/{}_{}.mp4", work.file_id, work.index));
            let outcome = Outcome::Succeeded {
                output: output.clone(),
                size: 100 + work.index as u64,
                quality,
            };
            q.finish_variation(work.lease, outcome, RunFigures::default())
                .await
                .unwrap();
            made.push((work.input, work.index, output, work.effects, quality));
        }
    }
    made.sort_by(|x, y| (&x.0, x.1).cmp(&(&y.0, y.1)));
    let outputs = q.outputs(a).await.unwrap();
    let listed: Vec<_> = outputs
        .iter()
        .map(|o| {
            (
                o.input.clone(),
                o.index,
                o.path.clone(),
                o.effects,
                o.quality,
            )
        })
        .collect();
    assert_eq!(listed, made);
    assert_eq!(outputs[1].size, 102);
    let node = match q.sharing() {
        Sharing::OneDaemon => None,
        Sharing::Nodes => Some(NODE.to_string()),
    };
    assert!(outputs.iter().all(|o| o.node == node));
    let files = q.files(a).await.unwrap();
    assert!(
        files
            .iter()
            .all(|f| f.nodes == Vec::from_iter(node.clone()))
    );
    assert_eq!(state(q, a).await, JobState::Succeeded);
}

/// A variation stopped to be claimed later is queued again, unless its job
/// was cancelled meanwhile; where claims are leases, the new claim is the
/// next attempt and the old one is refused.
pub(super) async fn requeue(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 1, 2, 0).await;
    let leases = leases_of_next_file(q).await;
    let requeued = q
        .finish_variation(leases[0], Outcome::Requeued, RunFigures::default())
        .await;
    assert_eq!(requeued.unwrap(), Some(JobState::Running));
    let again = single(q.claim(0, 2).await.unwrap());
    assert_eq!(again.lease.id, leases[0].id);
    match q.sharing() {
        Sharing::OneDaemon => assert_eq!(again.lease, leases[0]),
        Sharing::Nodes => {
            assert_eq!(again.lease.attempt, leases[0].attempt + 1);
            assert_eq!(ok(q, leases[0]).await, None, "the old claim is refused");
        }
    }
    assert_eq!(file_states(q, a).await, [FileState::Running]);
    // Cancelled while being stopped: it does not come back.
    q.cancel(a).await.unwrap();
    q.finish_variation(leases[1], Outcome::Requeued, RunFigures::default())
        .await
        .unwrap();
    assert_eq!(claim(q, 0, 2).await, None);
    let ended = q
        .finish_variation(again.lease, Outcome::Cancelled, RunFigures::default())
        .await;
    assert_eq!(ended.unwrap(), Some(JobState::Cancelled));
    assert_eq!(file_states(q, a).await, [FileState::Cancelled]);
}
