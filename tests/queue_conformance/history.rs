//! Rules of the history: runs recorded with their outcome, counters that
//! never go down (not by prune, not by a restart), the runs a filter
//! selects, old runs deleted, the queue's depth.

use super::*;
use vidvar::history::{Count, Counter, HISTORY_DAYS, HookResult, RunFilter, RunOutcome, RunRow};

/// The value of one counter's series, summed over nodes (0 when absent).
async fn counter(q: &dyn Queue, counter: Counter, key: &str) -> f64 {
    let all = q.counters().await.unwrap();
    all.iter()
        .filter(|c| c.counter == counter && c.key == key)
        .map(|c| c.value)
        .sum()
}

fn figures(ended_at: i64, cpu: f64, reason: Option<&str>) -> RunFigures {
    RunFigures {
        started_at: ended_at - 3,
        ended_at,
        wall_seconds: 3.5,
        cpu_seconds: cpu,
        media_seconds: 1.0,
        reason: reason.map(String::from),
    }
}

/// A run's end writes its record (owner, labels, node, outcome, reason,
/// figures, lowest SSIM) and its counts; pruning the job and opening the
/// queue again keep both.
pub(super) async fn runs_and_counters_outlive_their_jobs(mut bed: Bed) {
    let now = unix_now();
    let q = &*bed.queue;
    let job = submit_job(
        q,
        NewJob {
            labels: vec!["blue".into(), "red".into()],
            ..new_job(1, 2, 1000)
        },
    )
    .await;
    let leases = leases_of_next_file(q).await;
    let quality = Quality {
        samples: 5,
        ssim_mean: 0.97,
        ssim_min: 0.93,
        luma_diff: 1.0,
    };
    let outcome = Outcome::Succeeded {
        output: "/out/a.mp4".into(),
        size: 1,
        quality: Some(quality),
    };
    q.finish_variation(leases[0], outcome, figures(now, 2.5, None))
        .await
        .unwrap();
    let outcome = Outcome::Failed { error: "x".into() };
    let ended = q
        .finish_variation(leases[1], outcome, figures(now, 0.5, Some("ffmpeg")))
        .await
        .unwrap();
    assert_eq!(ended, Some(JobState::Partial));
    q.add_counts(vec![Count::new(
        Counter::HookRuns,
        HookResult::Succeeded.as_str(),
        1.,
    )])
    .await
    .unwrap();

    assert_eq!(q.prune(None, now + 10).await.unwrap(), 1);
    assert!(q.job(job).await.unwrap().is_none(), "pruned");
    bed.reopen().await;
    let q = &*bed.queue;

    let runs = q.runs(RunFilter::default()).await.unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let node = match q.sharing() {
        Sharing::OneDaemon => None,
        Sharing::Nodes => Some(NODE.to_string()),
    };
    let (a, b) = (&runs[0], &runs[1]);
    assert_eq!((a.job_id, a.index, a.owner_uid), (job, 1, 1000));
    assert_eq!(a.labels, ["blue", "red"]);
    assert_eq!(a.node, node);
    assert_eq!(a.outcome, RunOutcome::Succeeded);
    assert_eq!(a.ssim_min, Some(0.93));
    assert_eq!((a.started_at, a.ended_at), (now - 3, now));
    assert_eq!(
        (a.wall_seconds, a.cpu_seconds, a.media_seconds),
        (3.5, 2.5, 1.0)
    );
    assert_eq!(a.reason, None);
    assert_eq!((b.index, b.outcome), (2, RunOutcome::Failed));
    assert_eq!(b.reason.as_deref(), Some("ffmpeg"));
    assert_eq!(b.ssim_min, None);

    assert_eq!(counter(q, Counter::Variations, "succeeded").await, 1.);
    assert_eq!(counter(q, Counter::Variations, "failed").await, 1.);
    assert_eq!(
        counter(q, Counter::Claims, "").await,
        3.,
        "a probe, two variations"
    );
    assert_eq!(counter(q, Counter::Takeovers, "").await, 0.);
    assert_eq!(counter(q, Counter::CpuSeconds, "").await, 3.);
    assert_eq!(counter(q, Counter::WallSeconds, "5").await, 2.);
    assert_eq!(counter(q, Counter::WallSecondsSum, "").await, 7.);
    assert_eq!(
        counter(q, Counter::EncodedSeconds, "1").await,
        1.,
        "succeeded only"
    );
    assert_eq!(counter(q, Counter::SsimMin, "0.95").await, 1.);
    assert_eq!(counter(q, Counter::HookRuns, "succeeded").await, 1.);
    let rows = q.counters().await.unwrap();
    assert!(rows.iter().all(|c| c.node == node), "{rows:?}");
}

/// Runs are selected by end, owner and label; a run older than
/// [`HISTORY_DAYS`] is deleted when a newer one is written.
pub(super) async fn runs_by_filter_and_age(bed: Bed) {
    let now = unix_now();
    let q = &*bed.queue;
    let old = now - (HISTORY_DAYS + 1) * 86_400;
    submit_job(
        q,
        NewJob {
            labels: vec!["blue".into()],
            ..new_job(1, 3, 1000)
        },
    )
    .await;
    let mine = leases_of_next_file(q).await;
    submit(q, 1, 1, 2000).await;
    let theirs = leases_of_next_file(q).await;
    let done = |lease| q.finish_variation(lease, succeeded(lease), figures(now, 1., None));
    let aged = q.finish_variation(mine[0], succeeded(mine[0]), figures(old, 1., None));
    aged.await.unwrap();
    let all = q.runs(RunFilter::default()).await.unwrap();
    assert_eq!(all.len(), 1, "kept until a newer run is written");
    done(mine[1]).await.unwrap();
    done(theirs[0]).await.unwrap();
    let all = q.runs(RunFilter::default()).await.unwrap();
    let indexes: Vec<u32> = all.iter().map(|r| r.index).collect();
    assert_eq!(indexes, [2, 1], "the aged run is gone");

    let filtered = |f: RunFilter| async move { q.runs(f).await.unwrap().len() };
    let owner = RunFilter {
        owner: Some(2000),
        ..RunFilter::default()
    };
    assert_eq!(filtered(owner).await, 1);
    let label = RunFilter {
        label: Some("blue".into()),
        ..RunFilter::default()
    };
    assert_eq!(filtered(label).await, 1);
    let other_label = RunFilter {
        label: Some("blu".into()),
        ..RunFilter::default()
    };
    assert_eq!(filtered(other_label).await, 0);
    let later = RunFilter {
        since: now + 1,
        ..RunFilter::default()
    };
    assert_eq!(filtered(later).await, 0);
    assert_eq!(
        counter(q, Counter::Variations, "succeeded").await,
        3.,
        "counters keep what the history deleted"
    );
}

/// The census counts jobs by state and the variations queued and running.
pub(super) async fn census(bed: Bed) {
    let q = &*bed.queue;
    submit(q, 1, 3, 0).await;
    let running = start_next_file(q).await;
    submit(q, 1, 2, 0).await;
    let cancelled = submit(q, 1, 1, 0).await;
    q.cancel(cancelled).await.unwrap();
    ok(q, running[0].lease).await;
    let census = q.census().await.unwrap();
    assert_eq!(
        census.jobs,
        [
            (JobState::Cancelled, 1),
            (JobState::Queued, 1),
            (JobState::Running, 1)
        ]
    );
    assert_eq!(census.variations_running, 2);
    assert_eq!(census.variations_queued, 2);
}

/// A claim that takes over a lost one is counted as a takeover, on the
/// node that took it; one daemon never takes over.
pub(super) async fn takeovers(bed: Bed) {
    let q = &*bed.queue;
    submit(q, 1, 1, 0).await;
    let Sharing::Nodes = q.sharing() else {
        leases_of_next_file(q).await;
        assert_eq!(counter(q, Counter::Takeovers, "").await, 0.);
        return;
    };
    let short = Duration::from_secs(1);
    let lost = bed.other_node("lost", short).await;
    let taker = bed.other_node("taker", short).await;
    let Some(Work::Probe { lease, .. }) = lost.claim(0, 1).await.unwrap() else {
        panic!("a probe");
    };
    let Work::Probe { lease: new, .. } = claim_when_free(&*taker).await else {
        panic!("the probe, taken over");
    };
    assert_eq!(new.id, lease.id);
    assert!(taker.finish_probe(new, media(), 0.).await.unwrap());
    single(lost.claim(0, 1).await.unwrap());
    single(Some(claim_when_free(&*taker).await));
    let rows = q.counters().await.unwrap();
    let of = |node: &str, counter: Counter| {
        rows.iter()
            .filter(|c| c.node.as_deref() == Some(node) && c.counter == counter)
            .map(|c| c.value)
            .sum::<f64>()
    };
    assert_eq!(of("taker", Counter::Takeovers), 2., "{rows:?}");
    assert_eq!(of("taker", Counter::Claims), 2.);
    assert_eq!(of("lost", Counter::Claims), 2.);
    assert_eq!(of("lost", Counter::Takeovers), 0.);
}

/// A probe's CPU seconds are shared evenly by its file's variations, each
/// share taken by the variation's next run alone (a requeued run's retry
/// does not count it again); a probe that fails records each queued
/// variation as a failed run with an even share of its figures and reason.
pub(super) async fn probe_cost_is_shared_by_the_runs(bed: Bed) {
    let q = &*bed.queue;
    let now = unix_now();
    submit(q, 1, 2, 0).await;
    let Some(Work::Probe { lease, .. }) = q.claim(0, 2).await.unwrap() else {
        panic!("a probe comes first");
    };
    assert!(q.finish_probe(lease, media(), 0.5).await.unwrap());
    let Some(Work::Encode(batch)) = q.claim(0, 2).await.unwrap() else {
        panic!("its variations");
    };
    assert_eq!(batch.len(), 2);
    q.finish_variation(batch[0].lease, Outcome::Requeued, figures(now, 1.0, None))
        .await
        .unwrap();
    q.finish_variation(
        batch[1].lease,
        succeeded(batch[1].lease),
        figures(now, 1.0, None),
    )
    .await
    .unwrap();
    let Some(Work::Encode(again)) = q.claim(0, 2).await.unwrap() else {
        panic!("the requeued variation");
    };
    let retried = figures(now + 1, 1.0, None);
    q.finish_variation(again[0].lease, succeeded(again[0].lease), retried)
        .await
        .unwrap();
    let runs = q.runs(RunFilter::default()).await.unwrap();
    let cpu: Vec<f64> = runs.iter().map(|r| r.cpu_seconds).collect();
    assert_eq!(cpu, [1.25, 1.25, 1.0], "{runs:?}");
    assert_eq!(counter(q, Counter::CpuSeconds, "").await, 3.5);

    let failing = submit(q, 1, 2, 7).await;
    let Some(Work::Probe { lease, .. }) = q.claim(0, 2).await.unwrap() else {
        panic!("the second job's probe");
    };
    let probe = figures(now, 0.25, Some("probe"));
    let ended = q
        .fail_file(lease, "not a video".into(), probe)
        .await
        .unwrap();
    assert_eq!(ended, Some(JobState::Failed));
    let failed: Vec<RunRow> = q
        .runs(RunFilter {
            owner: Some(7),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 2, "{failed:?}");
    for (run, index) in failed.iter().zip([1, 2]) {
        assert_eq!((run.job_id, run.index), (failing, index));
        assert_eq!(run.outcome, RunOutcome::Failed);
        assert_eq!(run.reason.as_deref(), Some("probe"));
        assert_eq!((run.cpu_seconds, run.wall_seconds), (0.125, 1.75));
    }
    assert_eq!(counter(q, Counter::Variations, "failed").await, 2.);
}
