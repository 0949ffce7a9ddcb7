//! What the engine shows of itself as a whole: the metrics' [`Snapshot`]
//! (the queue's counters and depth, this daemon's slots and running
//! encodes, the nodes: figures only, no path, label or user of a job, so
//! any socket user may read them; rendering is [`crate::metrics`]'s), and
//! the summary of the history for `vidvarctl stats` ([`summarize`]), of
//! the client's own runs unless it is root or the daemon's user.

use super::{ApiError, Engine};
use crate::history::{RunFilter, RunOutcome, RunRow, SSIM_BUCKETS};
use crate::job::Credentials;
use crate::metrics::Snapshot;
use crate::proto::{
    JobState, ListRequest, NodeTotals, ReasonCount, RunTotals, SsimSummary, StatsReport,
    Throughput, TopFailure, TopFinished, TopRunning, TopView,
};
use crate::queue::unix_now;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

impl Engine {
    /// The metrics as of now.
    ///
    /// Errors: [`ApiError`] when the queue cannot be read.
    pub async fn metrics(&self) -> Result<Snapshot, ApiError> {
        let (counters, census, nodes) = tokio::try_join!(
            self.queue.counters(),
            self.queue.census(),
            self.queue.nodes()
        )?;
        let (running, busy, fps) = {
            let live = self.live();
            let fps = live
                .running
                .values()
                .filter_map(|r| r.progress.fps)
                .collect();
            let busy = live.running.len() + live.probing.len() + live.claims.len();
            (live.running.len() as u32, busy as u32, fps)
        };
        Ok(Snapshot {
            version: env!("CARGO_PKG_VERSION").into(),
            counters,
            census,
            slots: self.tunables().max_parallel as u32,
            busy,
            running,
            paused: self.paused.load(Ordering::SeqCst),
            fps,
            nodes,
        })
    }

    /// The runs of the last `since_secs` seconds (of jobs labelled
    /// `label`), summarized: the client's own, everyone's for root and the
    /// daemon's user.
    ///
    /// Errors: [`ApiError`] when the queue cannot be read.
    pub async fn stats(
        &self,
        peer: &Credentials,
        since_secs: u64,
        label: Option<String>,
    ) -> Result<StatsReport, ApiError> {
        let everyone = self.is_admin(peer);
        let since = unix_now().saturating_sub(since_secs.min(i64::MAX as u64) as i64);
        let filter = RunFilter {
            since,
            owner: (!everyone).then_some(peer.uid),
            label: label.clone(),
        };
        let runs = self.queue.runs(filter).await?;
        Ok(StatsReport {
            since,
            label,
            everyone,
            ..summarize(&runs)
        })
    }
}

/// Jobs that ended lately shown in `top`, at most.
const TOP_RECENT: usize = 8;
/// Open jobs shown in `top`, at most.
const TOP_OPEN: u32 = 200;

impl Engine {
    /// One frame of `vidvarctl top` for `peer`.
    ///
    /// Errors: [`ApiError`] when the queue cannot be read.
    pub async fn top(&self, peer: &Credentials) -> Result<TopView, ApiError> {
        let daemon = self.pong().await?;
        let snapshot = self.metrics().await?;
        let now = unix_now();
        let hour = self
            .queue
            .runs(RunFilter {
                since: now - 3600,
                ..RunFilter::default()
            })
            .await?;
        let everyone = self.is_admin(peer);
        let mut open = Vec::new();
        for state in [JobState::Running, JobState::Queued] {
            let request = ListRequest {
                state: Some(state),
                label: None,
                after: 0,
                limit: TOP_OPEN,
            };
            open.extend(self.list(peer, request).await?.jobs);
        }
        open.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
        let mut running = Vec::new();
        for job in open.iter().filter(|j| j.state == JobState::Running) {
            // Other nodes' variations come below, from the queue.
            let Ok(detail) = self.detail_here(peer, job.id).await else {
                continue;
            };
            for file in &detail.files {
                running.extend(file.running.iter().map(|r| TopRunning {
                    job: job.id,
                    input: file.path.clone(),
                    index: r.index,
                    node: r.node.clone(),
                    percent: r.percent,
                    fps: r.fps,
                    speed: r.speed,
                    eta_secs: file.eta_secs,
                }));
            }
        }
        running.extend(
            self.queue
                .running_elsewhere(None)
                .await?
                .into_iter()
                .filter(|v| self.may_access(peer, v.owner_uid))
                .map(|v| TopRunning {
                    job: v.job_id,
                    input: v.input,
                    index: v.index,
                    node: Some(v.node),
                    percent: None,
                    fps: None,
                    speed: None,
                    eta_secs: None,
                }),
        );
        let (mut failures, mut finished) = (Vec::new(), Vec::new());
        let mut recent: Vec<i64> = Vec::new();
        for run in hour.iter().rev() {
            if (everyone || run.owner_uid == peer.uid) && !recent.contains(&run.job_id) {
                recent.push(run.job_id);
            }
        }
        for job in recent {
            if finished.len() == TOP_RECENT {
                break;
            }
            let Ok(detail) = self.detail_here(peer, job).await else {
                continue;
            };
            if !detail.summary.state.is_final() {
                continue;
            }
            failures.extend(detail.files.iter().filter_map(|f| {
                Some(TopFailure {
                    job,
                    input: f.path.clone(),
                    error: f.error.clone()?,
                })
            }));
            let outputs = self.outputs(peer, job).await.unwrap_or_default();
            let worst_ssim = outputs
                .iter()
                .filter_map(|o| o.quality.map(|q| q.ssim_min))
                .min_by(f64::total_cmp);
            finished.push(TopFinished {
                job,
                state: detail.summary.state,
                worst_ssim,
            });
        }
        failures.truncate(TOP_RECENT);
        Ok(TopView {
            daemon,
            slots: snapshot.slots,
            busy: snapshot.busy,
            nodes: snapshot
                .nodes
                .into_iter()
                .filter(|n| n.up)
                .map(super::requests::node_info)
                .collect(),
            jobs_by_state: snapshot.census.jobs,
            variations_queued: snapshot.census.variations_queued,
            last_minute: throughput(&hour, now - 60, 60.0),
            last_hour: throughput(&hour, now - 3600, 3600.0),
            everyone,
            running,
            open,
            failures,
            finished,
        })
    }
}

/// Variations per minute and media seconds per second of the runs that
/// ended from `since` on, over a window of `secs` seconds.
fn throughput(runs: &[RunRow], since: i64, secs: f64) -> Throughput {
    let ended: Vec<&RunRow> = runs.iter().filter(|r| r.ended_at >= since).collect();
    // `0.0 +`: an empty sum of f64 is -0.0.
    let encoded: f64 = 0.0 + ended.iter().map(|r| r.media_seconds).sum::<f64>();
    Throughput {
        variations_per_min: ended.len() as f64 * 60.0 / secs,
        encoded_per_sec: encoded / secs,
    }
}

/// The figures of `runs`: totals, by node, failures by class, the SSIM
/// distribution. `since`, `label` and `everyone` are left empty.
pub fn summarize(runs: &[RunRow]) -> StatsReport {
    let mut total = RunTotals::default();
    let mut nodes: BTreeMap<&str, RunTotals> = BTreeMap::new();
    let mut failures: BTreeMap<&str, u64> = BTreeMap::new();
    let mut ssim: Vec<f64> = Vec::new();
    for run in runs {
        add(&mut total, run);
        if let Some(node) = &run.node {
            add(nodes.entry(node).or_default(), run);
        }
        if run.outcome == RunOutcome::Failed {
            *failures
                .entry(run.reason.as_deref().unwrap_or("unknown"))
                .or_default() += 1;
        }
        ssim.extend(run.ssim_min);
    }
    let mut failures: Vec<ReasonCount> = failures
        .into_iter()
        .map(|(reason, count)| ReasonCount {
            reason: reason.into(),
            count,
        })
        .collect();
    failures.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
    StatsReport {
        since: 0,
        label: None,
        everyone: false,
        total: with_speed(total),
        nodes: nodes
            .into_iter()
            .map(|(node, totals)| NodeTotals {
                node: node.into(),
                totals: with_speed(totals),
            })
            .collect(),
        failures,
        ssim: ssim_summary(ssim),
    }
}

fn add(totals: &mut RunTotals, run: &RunRow) {
    match run.outcome {
        RunOutcome::Succeeded => totals.succeeded += 1,
        RunOutcome::Failed => totals.failed += 1,
        RunOutcome::Cancelled => totals.cancelled += 1,
        RunOutcome::Requeued => totals.requeued += 1,
    }
    totals.encoded_secs += run.media_seconds;
    totals.cpu_secs += run.cpu_seconds;
    totals.wall_secs += run.wall_seconds;
}

fn with_speed(totals: RunTotals) -> RunTotals {
    RunTotals {
        mean_speed: (totals.wall_secs > 0.0).then(|| totals.encoded_secs / totals.wall_secs),
        ..totals
    }
}

fn ssim_summary(mut values: Vec<f64>) -> SsimSummary {
    values.sort_by(f64::total_cmp);
    let mut buckets: Vec<(f64, u64)> = SSIM_BUCKETS.iter().map(|b| (*b, 0)).collect();
    for v in &values {
        if let Some(bucket) = buckets.iter_mut().find(|(bound, _)| v <= bound) {
            bucket.1 += 1;
        }
    }
    SsimSummary {
        checked: values.len() as u64,
        lowest: values.first().copied(),
        median: values.get(values.len() / 2).copied(),
        buckets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(outcome: RunOutcome, node: &str, reason: Option<&str>, ssim: Option<f64>) -> RunRow {
        RunRow {
            job_id: 1,
            index: 1,
            owner_uid: 0,
            labels: Vec::new(),
            node: Some(node.into()),
            outcome,
            reason: reason.map(String::from),
            started_at: 0,
            ended_at: 10,
            wall_seconds: 4.0,
            cpu_seconds: 2.0,
            media_seconds: 8.0,
            ssim_min: ssim,
        }
    }

    #[test]
    fn runs_are_summed_by_node_failures_by_class_and_ssim_by_bucket() {
        let runs = [
            run(RunOutcome::Succeeded, "a", None, Some(0.97)),
            run(RunOutcome::Succeeded, "b", None, Some(0.999)),
            run(RunOutcome::Failed, "a", Some("stalled"), None),
            run(RunOutcome::Failed, "b", Some("ffmpeg"), None),
            run(RunOutcome::Failed, "b", Some("ffmpeg"), None),
        ];
        let report = summarize(&runs);
        assert_eq!((report.total.succeeded, report.total.failed), (2, 3));
        assert_eq!(report.total.cpu_secs, 10.0);
        assert_eq!(report.total.mean_speed, Some(2.0));
        assert_eq!(report.nodes.len(), 2);
        assert_eq!(report.nodes[1].node, "b");
        assert_eq!(report.nodes[1].totals.failed, 2);
        assert_eq!(report.failures[0].reason, "ffmpeg");
        assert_eq!(report.failures[0].count, 2);
        assert_eq!(report.ssim.checked, 2);
        assert_eq!(report.ssim.lowest, Some(0.97));
        assert!(report.ssim.buckets.contains(&(0.98, 1)));
        assert!(report.ssim.buckets.contains(&(1.0, 1)));
    }
}
