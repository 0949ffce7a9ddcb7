//! What a client sees of jobs: one job with its files (`status`), a page
//! of jobs (`list`), a job's outputs (`outputs`); a running job with its
//! live progress and ETA, so that `list` and `status` agree.

use super::ApiError;
use crate::engine::Engine;
use crate::job::{self, Credentials, JobState};
use crate::proto::{
    FileStatus, JobDetail, JobId, JobPage, JobSummary, ListRequest, MAX_PAGE, OutputInfo,
    RunningVariation,
};
use crate::queue::{FileRow, JobFilter, JobRow};
use std::sync::atomic::Ordering;

impl Engine {
    /// A job's summary and its files, with live progress and ETA.
    fn live_view(&self, row: &JobRow, files: &[FileRow]) -> (JobSummary, Vec<FileStatus>) {
        let live = self.live();
        let statuses: Vec<FileStatus> = files
            .iter()
            .map(|f| live.file_status(f, row.variations, self.node_name()))
            .collect();
        let eta_secs = live.job_eta_secs(row, files);
        let progress = job::job_progress(statuses.iter().map(|f| f.progress));
        (summary(row, progress, eta_secs), statuses)
    }

    /// One job with live progress, if `peer` may see it; on a shared queue
    /// with the running variations of every node
    /// ([`Self::add_running_elsewhere`]).
    pub async fn detail(&self, peer: &Credentials, job: JobId) -> Result<JobDetail, ApiError> {
        let (mut detail, files) = self.view(peer, job).await?;
        if !detail.summary.state.is_final() {
            self.add_running_elsewhere(job, &files, &mut detail.files)
                .await?;
        }
        Ok(detail)
    }

    /// [`Self::detail`] with this node's running variations only, without
    /// asking the queue for the others' (`top` asks for those of every
    /// job at once).
    pub(crate) async fn detail_here(
        &self,
        peer: &Credentials,
        job: JobId,
    ) -> Result<JobDetail, ApiError> {
        Ok(self.view(peer, job).await?.0)
    }

    /// One job with live progress, if `peer` may see it, and its file rows
    /// (in the order of its files).
    async fn view(
        &self,
        peer: &Credentials,
        job: JobId,
    ) -> Result<(JobDetail, Vec<FileRow>), ApiError> {
        let row = self.visible_job(peer, job).await?;
        let files = self.queue.files(job).await?;
        let (summary, statuses) = self.live_view(&row, &files);
        let detail = JobDetail {
            summary,
            seed: row.seed,
            output_dir: row.output_dir.clone(),
            files: statuses,
            daemon_paused: self.paused.load(Ordering::SeqCst),
        };
        Ok((detail, files))
    }

    /// Add to the running variations of `job`'s `files` (their `statuses`,
    /// in the same order) those other nodes of a shared queue hold claimed
    /// ([`crate::queue::Queue::running_elsewhere`]), with their node and
    /// their figures unknown: only the node that runs one hears its
    /// progress. Nothing on a queue of one machine.
    async fn add_running_elsewhere(
        &self,
        job: JobId,
        files: &[FileRow],
        statuses: &mut [FileStatus],
    ) -> Result<(), ApiError> {
        for v in self.queue.running_elsewhere(Some(job)).await? {
            let Some(at) = files.iter().position(|f| f.id == v.file_id) else {
                continue;
            };
            statuses[at].running.push(RunningVariation {
                index: v.index,
                percent: None,
                encoded_secs: None,
                speed: None,
                fps: None,
                node: Some(v.node),
            });
        }
        for status in statuses {
            status.running.sort_by_key(|r| r.index);
        }
        Ok(())
    }

    /// One page of the jobs `peer` may see (all for an administrator),
    /// selected by `req`, by id. A running job's progress is live, as
    /// [`Self::detail`] gives it, so that `list` and `status` agree.
    pub async fn list(&self, peer: &Credentials, req: ListRequest) -> Result<JobPage, ApiError> {
        let limit = req.limit.clamp(1, MAX_PAGE);
        let filter = JobFilter {
            owner: (!self.is_admin(peer)).then_some(peer.uid),
            state: req.state,
            label: req.label,
            after: req.after,
            limit: limit + 1,
        };
        let mut rows = self.queue.jobs(filter).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            jobs.push(if row.state == JobState::Running {
                let files = self.queue.files(row.id).await?;
                self.live_view(row, &files).0
            } else {
                let eta = row.state.is_final().then_some(0.0);
                summary(row, row.progress, eta)
            });
        }
        Ok(JobPage {
            jobs,
            more,
            daemon_paused: self.paused.load(Ordering::SeqCst),
        })
    }

    /// Verified outputs of a job.
    pub async fn outputs(
        &self,
        peer: &Credentials,
        job: JobId,
    ) -> Result<Vec<OutputInfo>, ApiError> {
        self.visible_job(peer, job).await?;
        Ok(self
            .queue
            .outputs(job)
            .await?
            .into_iter()
            .map(OutputInfo::from)
            .collect())
    }
}

fn summary(row: &JobRow, progress: f64, eta_secs: Option<f64>) -> JobSummary {
    JobSummary {
        id: row.id,
        state: row.state,
        progress,
        inputs: row.inputs,
        variations: row.variations,
        created_at: row.created_at,
        owner_uid: row.owner_uid,
        priority: row.priority,
        paused: row.paused,
        labels: row.labels.clone(),
        eta_secs,
    }
}

/// An output as the wire shows it (`vidvarctl outputs`, the hook's stdin).
impl From<crate::queue::OutputRow> for OutputInfo {
    fn from(o: crate::queue::OutputRow) -> OutputInfo {
        OutputInfo {
            path: o.path,
            size: o.size,
            input: o.input,
            index: o.index,
            effects: o.effects,
            node: o.node,
            quality: o.quality,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fixture, listed, request, user};
    use super::*;
    use crate::engine::supervisor::Progress;
    use crate::engine::{Running, Stop};
    use crate::proto::FileState;
    use crate::queue::Work;
    use std::sync::Arc;

    #[tokio::test]
    async fn list_pages_by_id_and_filters_by_label_and_state() {
        let f = fixture();
        let alice = user(4_000_001);
        let mut ids = Vec::new();
        for i in 0..5 {
            let mut req = request(&f, &[&f.clip], 1);
            req.labels = if i % 2 == 0 {
                vec!["even".into(), "all".into()]
            } else {
                vec!["all".into()]
            };
            ids.push(f.engine.submit(&alice, req).await.unwrap());
        }
        f.engine.cancel(&alice, ids[1]).await.unwrap();
        let page = |after, limit, label: Option<&str>, state| ListRequest {
            state,
            label: label.map(String::from),
            after,
            limit,
        };
        let first = f.engine.list(&alice, page(0, 2, None, None)).await.unwrap();
        assert_eq!(
            first.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
            ids[..2]
        );
        assert!(first.more);
        let rest = f
            .engine
            .list(&alice, page(ids[1], 10, None, None))
            .await
            .unwrap();
        assert_eq!(rest.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), ids[2..]);
        assert!(!rest.more);
        let even = f
            .engine
            .list(&alice, page(0, 10, Some("even"), None))
            .await
            .unwrap();
        assert_eq!(
            even.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
            [ids[0], ids[2], ids[4]]
        );
        assert_eq!(even.jobs[0].labels, ["all", "even"], "sorted");
        let cancelled = f
            .engine
            .list(&alice, page(0, 10, None, Some(JobState::Cancelled)))
            .await
            .unwrap();
        assert_eq!(
            cancelled.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
            [ids[1]]
        );
        assert_eq!(cancelled.jobs[0].eta_secs, Some(0.0));
        assert!(listed(&f, &user(4_000_002)).await.is_empty());
    }

    #[tokio::test]
    async fn status_shows_live_progress_of_running_variations() {
        let f = fixture();
        let alice = user(4_000_001);
        let job = f
            .engine
            .submit(&alice, request(&f, &[&f.clip], 4))
            .await
            .unwrap();
        let queue = Arc::clone(&f.engine.queue);
        let Some(Work::Probe { lease, .. }) = queue.claim(0, 1).await.unwrap() else {
            panic!("a probe comes first");
        };
        let file_id = lease.id;
        queue
            .finish_probe(
                lease,
                crate::job::Media {
                    duration_us: Some(2_000_000),
                    ..Default::default()
                },
                0.,
            )
            .await
            .unwrap();
        let Some(Work::Encode(mut batch)) = queue.claim(0, 1).await.unwrap() else {
            panic!("then a variation");
        };
        let first = batch.remove(0);
        f.engine.live().running.insert(
            first.lease.id,
            Running {
                lease: first.lease,
                job_id: job,
                file_id,
                index: first.index,
                progress: Progress {
                    percent: 50.0,
                    out_time_us: 1_000_000,
                    speed: Some(2.0),
                    fps: Some(50.0),
                },
                stop: Stop::default(),
                claim: 1,
            },
        );
        let detail = f.engine.detail(&alice, job).await.unwrap();
        assert_eq!(detail.files[0].state, FileState::Running);
        assert_eq!(detail.files[0].progress, 12.5, "(0 * 100 + 50) / 4");
        assert_eq!(detail.summary.progress, 12.5);
        assert_eq!(detail.files[0].running.len(), 1);
        assert_eq!(detail.files[0].running[0].index, 1);
        assert_eq!(detail.files[0].running[0].speed, Some(2.0));
        // 3 variations of 2 s waiting, 1 s left of the running one, at 2x.
        assert_eq!(detail.files[0].eta_secs, Some(3.5));
        assert_eq!(detail.summary.eta_secs, Some(3.5));
        let pong = f.engine.pong().await.unwrap();
        assert_eq!((pong.queue_depth, pong.running_processes), (1, 1));
    }
}
