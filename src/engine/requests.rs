//! The request API: one method per client request, over the queue and a
//! snapshot of live progress, with the access rules (who sees which job,
//! whose permissions judge a submission) and the limits on pending work.
//! [`ApiError`] is the one place that maps internal errors to the wire.

use super::{Engine, admission};
use crate::effects;
use crate::job::{self, Credentials, JobState};
use crate::proto::{
    ErrorKind, FileStatus, JobDetail, JobId, JobPage, JobSummary, ListRequest, MAX_PAGE, NodeInfo,
    NodeState, OutputInfo, Pong, SubmitRequest, WireError,
};
use crate::queue::{
    FileRow, Full, JobFilter, JobRow, Limits, NewJob, NodeRow, QueueError, unix_now,
};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Most jobs queued or running at once; submissions beyond are refused.
pub const MAX_PENDING_JOBS: u64 = 10_000;
/// Most variations queued or running for one user other than root and the
/// daemon's user, so that one user cannot fill the queue (and the
/// database) for everyone.
pub const MAX_PENDING_VARIATIONS_PER_USER: u64 = 100_000;
/// How often finished job records are checked against the retention period.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// Why a request could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no such job: {0}")]
    NotFound(JobId),
    #[error("no such folder: {0}")]
    NoFolder(crate::folder::FolderId),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    BadInput(String),
    #[error("daemon is shutting down")]
    ShuttingDown,
    /// The client may not do this (pause the daemon, say).
    #[error("{0}")]
    Forbidden(String),
    /// The queue is full, for everyone or for this user.
    #[error("{0}")]
    Busy(String),
    /// The daemon is at fault (its configuration, a bug); logged.
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl From<admission::Rejection> for ApiError {
    fn from(rejection: admission::Rejection) -> Self {
        if rejection.is_bad_input() {
            ApiError::BadInput(rejection.to_string())
        } else {
            ApiError::Invalid(rejection.to_string())
        }
    }
}

impl ApiError {
    /// The error as a client sees it: the one mapping from internal errors
    /// to the wire. Store failures are logged here and not detailed.
    pub fn to_wire(&self) -> WireError {
        let kind = match self {
            ApiError::NotFound(_) | ApiError::NoFolder(_) => ErrorKind::NotFound,
            ApiError::Invalid(_) => ErrorKind::InvalidRequest,
            ApiError::BadInput(_) => ErrorKind::BadInput,
            ApiError::ShuttingDown => ErrorKind::ShuttingDown,
            ApiError::Forbidden(_) => ErrorKind::PermissionDenied,
            ApiError::Busy(_) => ErrorKind::Busy,
            ApiError::Internal(message) => {
                log::error!("{message}");
                ErrorKind::Internal
            }
            ApiError::Queue(err @ QueueError::Unavailable(_)) => {
                log::warn!("{err}");
                return WireError {
                    kind: ErrorKind::Unavailable,
                    message: format!("vidvard: {err}; try again later"),
                };
            }
            ApiError::Queue(err) => {
                log::error!("{err}");
                return WireError {
                    kind: ErrorKind::Internal,
                    message: "internal error in the daemon's database; see its log".into(),
                };
            }
        };
        WireError {
            kind,
            message: self.to_string(),
        }
    }
}

impl Engine {
    /// A job row visible to `peer`; others' jobs are "no such job".
    pub(crate) async fn visible_job(
        &self,
        peer: &Credentials,
        job: JobId,
    ) -> Result<JobRow, ApiError> {
        match self.queue.job(job).await? {
            Some(row) if self.may_access(peer, row.owner_uid) => Ok(row),
            _ => Err(ApiError::NotFound(job)),
        }
    }

    /// Validate (see [`admission::check`]) and queue a job for `peer`; at
    /// most [`MAX_PENDING_JOBS`] jobs may be pending.
    pub async fn submit(&self, peer: &Credentials, req: SubmitRequest) -> Result<JobId, ApiError> {
        let job = self.admit(peer, req).await?;
        let (inputs, variations, seed) = (job.inputs.len(), job.variations, job.seed);
        let id = self
            .queue
            .submit(job, self.limits_for(peer))
            .await?
            .map_err(refusal)?;
        self.queued(id, peer, inputs, variations, seed);
        Ok(id)
    }

    /// The job `req` asks for on behalf of `owner`, judged as a submission
    /// of theirs ([`admission::check`], on a blocking thread), with its
    /// seed and effects drawn: the one path every job takes into the queue,
    /// a client's or a watch folder's.
    pub(crate) async fn admit(
        &self,
        owner: &Credentials,
        req: SubmitRequest,
    ) -> Result<NewJob, ApiError> {
        if self.is_stopping() {
            return Err(ApiError::ShuttingDown);
        }
        let judge = self.judge_for(owner);
        let (req, admitted) = tokio::task::spawn_blocking(move || {
            admission::check(&req, &judge).map(|admitted| (req, admitted))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("the submission check failed: {e}")))??;
        let seed = req.seed.unwrap_or_else(effects::random_seed);
        let mut inputs = Vec::with_capacity(admitted.inputs.len());
        for (i, (path, vetted)) in admitted.inputs.into_iter().enumerate() {
            let sets = effects::generate(&self.settings.effects, seed, i as u32, req.variations)
                .map_err(|e| ApiError::Internal(format!("the daemon's effect ranges: {e}")))?;
            inputs.push((path, vetted, sets));
        }
        let mut labels = req.labels;
        labels.sort_unstable();
        labels.dedup();
        Ok(NewJob {
            seed,
            output_dir: (req.output_dir, admitted.output_dir),
            variations: req.variations,
            inputs,
            created_at: unix_now(),
            owner: owner.clone(),
            priority: req.priority,
            labels,
        })
    }

    /// The limits a new job of `owner` must fit in.
    pub(crate) fn limits_for(&self, owner: &Credentials) -> Limits {
        Limits {
            max_jobs: MAX_PENDING_JOBS,
            max_owner_variations: (!self.is_admin(owner))
                .then_some(MAX_PENDING_VARIATIONS_PER_USER),
        }
    }

    /// A job was stored: log it and wake the dispatch loop and watchers.
    pub(crate) fn queued(
        &self,
        id: JobId,
        owner: &Credentials,
        inputs: usize,
        variations: u32,
        seed: u64,
    ) {
        log::info!(
            "job {id}: queued {inputs} input(s) x {variations} variation(s), seed {seed}, \
             for uid {}",
            owner.uid
        );
        self.wake.notify_one();
        self.notify_change();
    }

    /// A job's summary and its files, with live progress and ETA.
    fn live_view(&self, row: &JobRow, files: &[FileRow]) -> (JobSummary, Vec<FileStatus>) {
        let live = self.live();
        let statuses: Vec<FileStatus> = files
            .iter()
            .map(|f| live.file_status(f, row.variations))
            .collect();
        let eta_secs = live.job_eta_secs(row, files);
        let progress = job::job_progress(statuses.iter().map(|f| f.progress));
        (summary(row, progress, eta_secs), statuses)
    }

    /// One job with live progress, if `peer` may see it.
    pub async fn detail(&self, peer: &Credentials, job: JobId) -> Result<JobDetail, ApiError> {
        let row = self.visible_job(peer, job).await?;
        let files = self.queue.files(job).await?;
        let (summary, files) = self.live_view(&row, &files);
        Ok(JobDetail {
            summary,
            seed: row.seed,
            output_dir: row.output_dir.clone(),
            files,
            daemon_paused: self.paused.load(Ordering::SeqCst),
        })
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

    /// Remove records of final jobs of `peer` (of everyone for root) that
    /// finished at least `older_than_secs` ago. Outputs stay on disk.
    pub async fn prune(&self, peer: &Credentials, older_than_secs: u64) -> Result<u64, ApiError> {
        let owner = (!self.is_admin(peer)).then_some(peer.uid);
        let cutoff = unix_now().saturating_sub(older_than_secs.min(i64::MAX as u64) as i64);
        let removed = self.queue.prune(owner, cutoff).await?;
        if removed > 0 {
            log::info!(
                "pruned {removed} finished job record(s) for uid {}",
                peer.uid
            );
            self.notify_change();
        }
        Ok(removed)
    }

    /// Prune finished job records older than the retention period, now and
    /// then every [`RETENTION_INTERVAL`], until shutdown.
    pub async fn enforce_retention(self: Arc<Self>) {
        loop {
            if let Some(keep) = self.tunables().retention {
                let cutoff = unix_now().saturating_sub(keep.as_secs() as i64);
                match self.queue.prune(None, cutoff).await {
                    Ok(0) => {}
                    Ok(n) => log::info!("retention: pruned {n} finished job record(s)"),
                    Err(err) => log::error!("retention: cannot prune: {err}"),
                }
            }
            tokio::select! {
                () = tokio::time::sleep(RETENTION_INTERVAL) => {}
                () = self.stopping.cancelled() => return,
            }
        }
    }

    /// Liveness and load.
    pub async fn pong(&self) -> Result<Pong, ApiError> {
        let queue_depth = self.queue.queue_depth().await?;
        Ok(Pong {
            daemon_version: env!("CARGO_PKG_VERSION").into(),
            protocol: crate::proto::PROTOCOL_VERSION,
            uptime_secs: self.started.elapsed().as_secs(),
            queue_depth,
            running_processes: self.live().running.len() as u64,
            node: self.node_name().map(String::from),
            paused: self.paused.load(Ordering::SeqCst),
        })
    }

    /// The nodes sharing the queue, or this daemon alone on one machine.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ApiError> {
        let rows = self.queue.nodes().await?;
        if rows.is_empty() {
            return Ok(vec![NodeInfo {
                name: crate::config::host_name(),
                host: crate::config::host_name(),
                state: NodeState::Up,
                slots: self.tunables().max_parallel as u32,
                running: self.live().running.len() as u32,
                last_heartbeat: unix_now(),
            }]);
        }
        Ok(rows.into_iter().map(node_info).collect())
    }

    /// Cancel a job and wait until its FFmpeg processes are gone and their
    /// temporary files removed. A job already final is returned unchanged.
    pub async fn cancel(&self, peer: &Credentials, job: JobId) -> Result<JobDetail, ApiError> {
        self.visible_job(peer, job).await?;
        let before = self
            .queue
            .cancel(job)
            .await?
            .ok_or(ApiError::NotFound(job))?;
        if !before.is_final() {
            log::info!("job {job}: cancelled");
            self.stop_running(Some(job), false).await;
            self.notify_change();
        }
        self.detail(peer, job).await
    }

    /// Stop the running variations of `job` (of every job for `None`), to
    /// be queued again when `requeue`, else cancelled, and wait until their
    /// FFmpeg processes are gone and their outcomes recorded. A claim in
    /// flight may be of the job: it is waited for and stopped too.
    pub(crate) async fn stop_running(&self, job: Option<JobId>, requeue: bool) {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let any_left = {
                let live = self.live();
                let mut any = live.claiming > 0;
                for run in live
                    .running
                    .values()
                    .filter(|r| job.is_none_or(|j| r.job_id == j))
                {
                    if requeue {
                        run.stop.requeue();
                    } else {
                        run.stop.cancel();
                    }
                    any = true;
                }
                any
            };
            if !any_left {
                return;
            }
            ended.await;
        }
    }

    /// Re-queue what did not succeed in a failed, partial or cancelled job.
    ///
    /// Errors: [`ApiError::NotFound`]; [`ApiError::Invalid`] for a job that
    /// is still queued or running, or that succeeded.
    pub async fn retry(&self, peer: &Credentials, job: JobId) -> Result<JobDetail, ApiError> {
        if self.is_stopping() {
            return Err(ApiError::ShuttingDown);
        }
        self.visible_job(peer, job).await?;
        let (before, requeued) = self
            .queue
            .retry(job)
            .await?
            .ok_or(ApiError::NotFound(job))?;
        if requeued == 0 {
            return Err(ApiError::Invalid(format!(
                "job {job} is {}: nothing to retry",
                before.as_str()
            )));
        }
        log::info!("job {job}: retrying {requeued} variation(s)");
        // The answer shows the job as retried, before any of it starts.
        let detail = self.detail(peer, job).await;
        self.wake.notify_one();
        self.notify_change();
        detail
    }
}

/// Why a job that passed its checks does not fit in the queue now.
pub(crate) fn refusal(full: Full) -> ApiError {
    match full {
        Full::Jobs { pending } => ApiError::Busy(format!(
            "the queue is full ({pending} jobs pending); try again when some have finished"
        )),
        Full::Owner { pending, asked } => ApiError::Busy(format!(
            "you have {pending} variations pending and ask for {asked} more; at most \
             {MAX_PENDING_VARIATIONS_PER_USER} may be pending per user: try again when some \
             have finished"
        )),
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

/// A node of the shared queue as `nodes` and `top` show it.
pub(super) fn node_info(n: NodeRow) -> NodeInfo {
    NodeInfo {
        state: match (n.up, n.stopped) {
            (true, _) => NodeState::Up,
            (false, true) => NodeState::Stopped,
            (false, false) => NodeState::Lost,
        },
        name: n.name,
        host: n.host,
        slots: n.slots,
        running: n.running,
        last_heartbeat: n.last_heartbeat,
    }
}

#[cfg(test)]
mod tests {
    //! The request API on a real SQLite queue in a temp dir, with no
    //! dispatch loop: nothing runs FFmpeg.

    use super::*;
    use crate::config::Config;
    use crate::engine::supervisor::Progress;
    use crate::engine::{Running, Stop};
    use crate::proto::{FileState, JobState};
    use crate::queue::Work;
    use crate::queue::sqlite::SqliteQueue;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    /// An engine on a fresh queue, and a directory with a readable clip
    /// and a directory anyone may write.
    struct Fixture {
        engine: Arc<Engine>,
        _dir: tempfile::TempDir,
        clip: PathBuf,
        out: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let mode = |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
        mode(&base, 0o755).unwrap();
        let clip = base.join("clip.mp4");
        std::fs::write(&clip, "not decoded here").unwrap();
        mode(&clip, 0o644).unwrap();
        let out = base.join("out");
        std::fs::create_dir(&out).unwrap();
        mode(&out, 0o777).unwrap();
        let config = Config::new(base.join("s.sock"), base.clone(), base.join("p.pid"));
        let queue = SqliteQueue::open(&base.join("q.db")).unwrap();
        Fixture {
            engine: Engine::new(config, Arc::new(queue)),
            _dir: dir,
            clip,
            out,
        }
    }

    /// A user who is neither root nor the daemon's user.
    fn user(uid: u32) -> Credentials {
        assert_ne!(uid, nix::unistd::geteuid().as_raw());
        Credentials {
            uid,
            gid: uid,
            groups: vec![],
        }
    }

    fn root() -> Credentials {
        Credentials {
            uid: 0,
            gid: 0,
            groups: vec![],
        }
    }

    fn request(f: &Fixture, inputs: &[&Path], variations: u32) -> SubmitRequest {
        SubmitRequest {
            priority: 0,
            labels: Vec::new(),
            inputs: inputs.iter().map(|p| p.to_path_buf()).collect(),
            variations,
            seed: Some(7),
            output_dir: f.out.clone(),
        }
    }

    fn kind(err: ApiError) -> ErrorKind {
        err.to_wire().kind
    }

    /// Every job `peer` sees, in one page.
    async fn listed(f: &Fixture, peer: &Credentials) -> Vec<JobSummary> {
        let every = ListRequest {
            state: None,
            label: None,
            after: 0,
            limit: MAX_PAGE,
        };
        f.engine.list(peer, every).await.unwrap().jobs
    }

    #[tokio::test]
    async fn only_administrators_pause_the_daemon_and_owners_their_jobs() {
        let f = fixture();
        let (alice, bob) = (user(4_000_001), user(4_000_002));
        let job = f
            .engine
            .submit(&alice, request(&f, &[&f.clip], 1))
            .await
            .unwrap();
        let err = f
            .engine
            .pause_daemon(&alice, true, false)
            .await
            .unwrap_err();
        assert_eq!(kind(err), ErrorKind::PermissionDenied);
        assert!(!f.engine.pong().await.unwrap().paused);
        assert!(
            f.engine
                .pause_daemon(&root(), true, false)
                .await
                .unwrap()
                .paused
        );
        assert!(
            f.engine.queue.paused().await.unwrap(),
            "stored, for the restart"
        );

        let err = f
            .engine
            .pause_job(&bob, job, true, false)
            .await
            .unwrap_err();
        assert_eq!(kind(err), ErrorKind::NotFound);
        let paused = f.engine.pause_job(&alice, job, true, false).await.unwrap();
        assert!(paused.summary.paused && paused.daemon_paused);
        assert!(listed(&f, &alice).await[0].paused);

        let err = f.engine.set_priority(&alice, job, 1001).await.unwrap_err();
        assert_eq!(kind(err), ErrorKind::InvalidRequest);
        let raised = f.engine.set_priority(&alice, job, -5).await.unwrap();
        assert_eq!(raised.summary.priority, -5);

        f.engine.cancel(&alice, job).await.unwrap();
        let err = f
            .engine
            .pause_job(&alice, job, false, false)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("is cancelled: nothing to resume"),
            "{err}"
        );
    }

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
    async fn others_jobs_are_invisible_and_root_sees_all() {
        let f = fixture();
        let (alice, bob) = (user(4_000_001), user(4_000_002));
        let job = f
            .engine
            .submit(&alice, request(&f, &[&f.clip], 2))
            .await
            .unwrap();
        let detail = f.engine.detail(&alice, job).await.unwrap();
        assert_eq!(detail.summary.state, JobState::Queued);
        assert_eq!(detail.files[0].path, f.clip);

        assert_eq!(listed(&f, &bob).await.len(), 0);
        assert!(matches!(f.engine.detail(&bob, job).await, Err(ApiError::NotFound(j)) if j == job));
        assert!(matches!(
            f.engine.outputs(&bob, job).await,
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            f.engine.cancel(&bob, job).await,
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            f.engine.retry(&bob, job).await,
            Err(ApiError::NotFound(_))
        ));
        assert_eq!(listed(&f, &root()).await.len(), 1);
        assert_eq!(listed(&f, &alice).await[0].id, job);
    }

    #[tokio::test]
    async fn submissions_are_judged_for_the_client_with_the_right_error_kind() {
        let f = fixture();
        let alice = user(4_000_001);
        let missing = f.out.join("missing.mp4");
        let err = f
            .engine
            .submit(&alice, request(&f, &[&missing], 1))
            .await
            .unwrap_err();
        assert_eq!(kind(err), ErrorKind::BadInput);
        std::fs::set_permissions(&f.clip, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = f
            .engine
            .submit(&alice, request(&f, &[&f.clip], 1))
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("permission denied"), "{err}");
        let err = f
            .engine
            .submit(&alice, request(&f, &[&f.clip], 0))
            .await
            .unwrap_err();
        assert_eq!(kind(err), ErrorKind::InvalidRequest);
        // Root is not judged by mode bits.
        f.engine
            .submit(&root(), request(&f, &[&f.clip], 1))
            .await
            .unwrap();
        // Nor is anyone once the daemon stops.
        f.engine.stopping.cancel();
        let err = f
            .engine
            .submit(&root(), request(&f, &[&f.clip], 1))
            .await
            .unwrap_err();
        assert_eq!(kind(err), ErrorKind::ShuttingDown);
    }

    #[tokio::test]
    async fn cancel_and_retry_follow_the_job_state() {
        let f = fixture();
        let alice = user(4_000_001);
        let job = f
            .engine
            .submit(&alice, request(&f, &[&f.clip], 2))
            .await
            .unwrap();
        let err = f.engine.retry(&alice, job).await.unwrap_err();
        assert!(
            err.to_string().contains("is queued: nothing to retry"),
            "{err}"
        );
        let cancelled = f.engine.cancel(&alice, job).await.unwrap();
        assert_eq!(cancelled.summary.state, JobState::Cancelled);
        let retried = f.engine.retry(&alice, job).await.unwrap();
        assert_eq!(retried.summary.state, JobState::Queued);
        // Pruning spares what is not final, and others' records.
        assert_eq!(f.engine.prune(&alice, 0).await.unwrap(), 0);
        f.engine.cancel(&alice, job).await.unwrap();
        assert_eq!(f.engine.prune(&user(4_000_002), 0).await.unwrap(), 0);
        assert_eq!(f.engine.prune(&alice, 0).await.unwrap(), 1);
        assert!(matches!(
            f.engine.detail(&alice, job).await,
            Err(ApiError::NotFound(_))
        ));
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
