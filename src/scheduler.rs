//! What runs next, and the live state of what runs now.
//!
//! The store is the queue; whenever one of `max_parallel` slots is free the
//! scheduler claims the next work from it and hands it to a
//! [`worker`] task on the runtime. Jobs take turns in
//! submission order (round robin), and within a job inputs and variations
//! go in order, so a job of many inputs shares the slots with later jobs
//! instead of starving them. It keeps, in memory only, the progress of
//! running variations (written to the store once a second, all files in
//! one transaction) and their cancellation tokens.
//! It answers the server's questions about jobs; it never sees a socket.

use crate::access::{Judge, Peer};
use crate::admission;
use crate::config::{Config, Tunables};
use crate::effects;
use crate::proto::{
    ErrorKind, FileState, FileStatus, JobDetail, JobId, JobSummary, OutputInfo, Pong,
    SubmitRequest, WireError,
};
use crate::queue::{FileRow, JobRow, NewJob, Queue, QueueError, Work, unix_now};
use crate::supervisor::Progress;
use crate::worker;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Most jobs queued or running at once; submissions beyond are refused.
pub const MAX_PENDING_JOBS: u64 = 10_000;
/// Most variations queued or running for one user other than root and the
/// daemon's user, so that one user cannot fill the queue (and the
/// database) for everyone.
pub const MAX_PENDING_VARIATIONS_PER_USER: u64 = 100_000;
/// How often finished job records are checked against the retention period.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
/// How often at most a file's progress is written to the store.
pub const PROGRESS_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Why a request could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no such job: {0}")]
    NotFound(JobId),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    BadInput(String),
    #[error("daemon is shutting down")]
    ShuttingDown,
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
            ApiError::NotFound(_) => ErrorKind::NotFound,
            ApiError::Invalid(_) => ErrorKind::InvalidRequest,
            ApiError::BadInput(_) => ErrorKind::BadInput,
            ApiError::ShuttingDown => ErrorKind::ShuttingDown,
            ApiError::Busy(_) => ErrorKind::Busy,
            ApiError::Internal(message) => {
                log::error!("{message}");
                ErrorKind::Internal
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

/// A variation being encoded now.
struct Running {
    job_id: JobId,
    file_id: i64,
    progress: Progress,
    cancel: CancellationToken,
}

#[derive(Default)]
struct Live {
    running: HashMap<i64, Running>,
    /// Probes in flight; each holds a slot.
    probing: usize,
    /// Claims sent to the queue and not yet registered here.
    claiming: usize,
    /// The job served last; the next slot goes to the job after it.
    last_job: JobId,
}

/// The job engine shared by the server and the worker tasks.
pub struct Scheduler {
    pub(crate) config: Config,
    /// Settings SIGHUP may change; starts as `config.tunables`.
    tunables: Mutex<Tunables>,
    queue: Arc<dyn Queue>,
    live: Mutex<Live>,
    /// Woken when work may be startable: a submit, a slot freed.
    wake: Notify,
    /// Woken when a running variation ends (cancel waits on it).
    ended: Notify,
    /// Bumped on every visible change, for `watch` streams.
    changes: watch::Sender<u64>,
    /// Fires at shutdown: no new work, running work is stopped.
    stopping: CancellationToken,
    tasks: TaskTracker,
    started: Instant,
}

impl Scheduler {
    pub fn new(config: Config, queue: Arc<dyn Queue>) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            tunables: Mutex::new(config.tunables),
            config,
            queue,
            live: Mutex::new(Live::default()),
            wake: Notify::new(),
            ended: Notify::new(),
            changes: watch::channel(0).0,
            stopping: CancellationToken::new(),
            tasks: TaskTracker::new(),
            started: Instant::now(),
        })
    }

    /// The settings in force now.
    pub fn tunables(&self) -> Tunables {
        *self.tunables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Apply new settings (SIGHUP): running work goes on; a larger
    /// `max_parallel` starts queued work at once, a smaller one lets running
    /// encodes finish.
    pub fn retune(&self, tunables: Tunables) {
        *self.tunables.lock().unwrap_or_else(|e| e.into_inner()) = tunables;
        log::set_max_level(tunables.log_level);
        log::info!(
            "settings reloaded: max_parallel {}, grace period {:?}, stall timeout {:?}, \
             min free space {} MiB, retention {:?}, log level {}",
            tunables.max_parallel,
            tunables.grace,
            tunables.stall_timeout,
            tunables.min_free_bytes >> 20,
            tunables.retention,
            tunables.log_level
        );
        self.wake.notify_one();
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tell `watch` streams that something changed.
    pub(crate) fn notify_change(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every change to any job.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_cancelled()
    }

    /// Resolves when shutdown begins.
    pub async fn until_stopping(&self) {
        self.stopping.cancelled().await
    }

    /// Whether `peer` administers this daemon: root or the daemon's own
    /// user. Administrators see every job and skip the access checks.
    fn is_admin(&self, peer: &Peer) -> bool {
        peer.is_root() || peer.uid == nix::unistd::geteuid().as_raw()
    }

    /// Whose permissions decide what a job of `owner` may read and write:
    /// the owner's own, judged by the daemon, unless the owner administers
    /// it (root or the daemon's user), which leaves it to the kernel. Any
    /// other user is judged, whatever the mode: a socket shared with a
    /// group must not lend the daemon's access to its members.
    pub(crate) fn judge_for(&self, owner: &Peer) -> Judge {
        if self.is_admin(owner) {
            Judge::Daemon
        } else {
            Judge::Peer(owner.clone())
        }
    }

    /// Whether `peer` may see and act on a job owned by `owner_uid`.
    fn may_access(&self, peer: &Peer, owner_uid: u32) -> bool {
        self.is_admin(peer) || peer.uid == owner_uid
    }

    /// A job row visible to `peer`; others' jobs are "no such job".
    async fn visible_job(&self, peer: &Peer, job: JobId) -> Result<JobRow, ApiError> {
        match self.queue.job(job).await? {
            Some(row) if self.may_access(peer, row.owner_uid) => Ok(row),
            _ => Err(ApiError::NotFound(job)),
        }
    }

    /// Validate (see [`admission::check`]) and queue a job for `peer`; at
    /// most [`MAX_PENDING_JOBS`] jobs may be pending.
    pub async fn submit(&self, peer: &Peer, req: SubmitRequest) -> Result<JobId, ApiError> {
        if self.is_stopping() {
            return Err(ApiError::ShuttingDown);
        }
        let judge = self.judge_for(peer);
        let (req, admitted) = tokio::task::spawn_blocking(move || {
            admission::check(&req, &judge).map(|admitted| (req, admitted))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("the submission check failed: {e}")))??;
        let pending = self.queue.queue_depth().await?;
        if pending >= MAX_PENDING_JOBS {
            return Err(ApiError::Busy(format!(
                "the queue is full ({pending} jobs pending); try again when some have finished"
            )));
        }
        if !self.is_admin(peer) {
            let mine = self.queue.pending_variations(peer.uid).await?;
            let asked = req.inputs.len() as u64 * u64::from(req.variations);
            if mine + asked > MAX_PENDING_VARIATIONS_PER_USER {
                return Err(ApiError::Busy(format!(
                    "you have {mine} variations pending and ask for {asked} more; at most \
                     {MAX_PENDING_VARIATIONS_PER_USER} may be pending per user: try again when \
                     some have finished"
                )));
            }
        }
        let seed = req.seed.unwrap_or_else(effects::random_seed);
        let mut inputs = Vec::with_capacity(admitted.inputs.len());
        for (i, (path, vetted)) in admitted.inputs.into_iter().enumerate() {
            let sets = effects::generate(&self.config.effects, seed, i as u32, req.variations)
                .map_err(|e| ApiError::Internal(format!("the daemon's effect ranges: {e}")))?;
            inputs.push((path, vetted, sets));
        }
        let job = NewJob {
            seed,
            output_dir: (req.output_dir, admitted.output_dir),
            variations: req.variations,
            inputs,
            created_at: unix_now(),
            owner: peer.clone(),
        };
        let (inputs, variations) = (job.inputs.len(), job.variations);
        let id = self.queue.submit(job).await?;
        log::info!(
            "job {id}: queued {inputs} input(s) x {variations} variation(s), seed {seed}, \
             for uid {}",
            peer.uid
        );
        self.wake.notify_one();
        self.notify_change();
        Ok(id)
    }

    fn summary(&self, row: &JobRow, progress: f64) -> JobSummary {
        JobSummary {
            id: row.id,
            state: row.state,
            progress,
            inputs: row.inputs,
            variations: row.variations,
            created_at: row.created_at,
        }
    }

    /// One job with live progress, if `peer` may see it.
    pub async fn detail(&self, peer: &Peer, job: JobId) -> Result<JobDetail, ApiError> {
        let row = self.visible_job(peer, job).await?;
        let files = self.queue.files(job).await?;
        let files: Vec<FileStatus> = {
            let live = self.live();
            files
                .iter()
                .map(|f| file_status(f, row.variations, &live))
                .collect()
        };
        let progress = if files.is_empty() {
            0.0
        } else {
            files.iter().map(|f| f.progress).sum::<f64>() / files.len() as f64
        };
        Ok(JobDetail {
            summary: self.summary(&row, progress),
            seed: row.seed,
            output_dir: row.output_dir.clone(),
            files,
        })
    }

    /// Every job `peer` may see, oldest first, with progress as last stored.
    pub async fn list(&self, peer: &Peer) -> Result<Vec<JobSummary>, ApiError> {
        let owner = (!self.is_admin(peer)).then_some(peer.uid);
        let rows = self.queue.jobs(owner).await?;
        Ok(rows.iter().map(|r| self.summary(r, r.progress)).collect())
    }

    /// Verified outputs of a job.
    pub async fn outputs(&self, peer: &Peer, job: JobId) -> Result<Vec<OutputInfo>, ApiError> {
        self.visible_job(peer, job).await?;
        Ok(self
            .queue
            .outputs(job)
            .await?
            .into_iter()
            .map(|o| OutputInfo {
                path: o.path,
                size: o.size,
                input: o.input,
                index: o.index,
                effects: o.effects,
            })
            .collect())
    }

    /// Remove records of final jobs of `peer` (of everyone for root) that
    /// finished at least `older_than_secs` ago. Outputs stay on disk.
    pub async fn prune(&self, peer: &Peer, older_than_secs: u64) -> Result<u64, ApiError> {
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
        })
    }

    /// Cancel a job and wait until its FFmpeg processes are gone and their
    /// temporary files removed. A job already final is returned unchanged.
    pub async fn cancel(&self, peer: &Peer, job: JobId) -> Result<JobDetail, ApiError> {
        self.visible_job(peer, job).await?;
        let before = self
            .queue
            .cancel(job)
            .await?
            .ok_or(ApiError::NotFound(job))?;
        if !before.is_final() {
            log::info!("job {job}: cancelled");
            loop {
                let ended = self.ended.notified();
                tokio::pin!(ended);
                ended.as_mut().enable();
                let any_left = {
                    let live = self.live();
                    // A claim in flight may be of this job: wait for it.
                    let mut any = live.claiming > 0;
                    for run in live.running.values().filter(|r| r.job_id == job) {
                        run.cancel.cancel();
                        any = true;
                    }
                    any
                };
                if !any_left {
                    break;
                }
                ended.await;
            }
            self.notify_change();
        }
        self.detail(peer, job).await
    }

    /// Re-queue what did not succeed in a failed, partial or cancelled job.
    ///
    /// Errors: [`ApiError::NotFound`]; [`ApiError::Invalid`] for a job that
    /// is still queued or running, or that succeeded.
    pub async fn retry(&self, peer: &Peer, job: JobId) -> Result<JobDetail, ApiError> {
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
        self.wake.notify_one();
        self.notify_change();
        self.detail(peer, job).await
    }

    /// The dispatch loop: start work while slots are free, until shutdown.
    /// Slots go to jobs in turn (see [`Store::next_work`]), so a job of many
    /// inputs shares them with later jobs instead of starving them.
    /// Then stop every running FFmpeg process (SIGTERM, SIGKILL after the
    /// grace period), wait for the workers, and mark unfinished work
    /// interrupted in the store.
    pub async fn run(self: Arc<Self>) {
        let mut flush = tokio::time::interval(PROGRESS_FLUSH_INTERVAL);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if let Err(err) = self.dispatch().await {
                log::error!("cannot dispatch work: {err}");
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = self.stopping.cancelled() => break,
                // Also retries dispatching after a store error.
                _ = flush.tick() => self.flush_progress().await,
            }
        }
        {
            let live = self.live();
            for run in live.running.values() {
                run.cancel.cancel();
            }
        }
        self.tasks.close();
        self.tasks.wait().await;
        match self.queue.requeue_idle_jobs().await {
            Ok(jobs) if !jobs.is_empty() => log::info!("jobs {jobs:?} stay queued for the restart"),
            Ok(_) => {}
            Err(err) => log::error!("cannot requeue waiting jobs: {err}"),
        }
        match self.queue.mark_interrupted().await {
            Ok(jobs) if !jobs.is_empty() => log::info!("jobs {jobs:?} interrupted by shutdown"),
            Ok(_) => {}
            Err(err) => log::error!("cannot mark interrupted work: {err}"),
        }
    }

    /// Begin shutdown: see [`Scheduler::run`].
    pub fn stop(&self) {
        self.stopping.cancel();
    }

    async fn dispatch(self: &Arc<Self>) -> Result<(), QueueError> {
        loop {
            if self.is_stopping() {
                return Ok(());
            }
            let slots = self.tunables().max_parallel.max(1);
            let after = {
                let mut live = self.live();
                if live.running.len() + live.probing >= slots {
                    return Ok(());
                }
                live.claiming += 1;
                live.last_job
            };
            // Until the claim is registered, a cancel waits for it.
            let claiming = Claiming(self);
            let Some(work) = self.queue.claim(after).await? else {
                return Ok(());
            };
            let mut live = self.live();
            live.last_job = match &work {
                Work::Probe { job_id, .. } => *job_id,
                Work::Encode(e) => e.job_id,
            };
            match work {
                Work::Probe {
                    job_id,
                    file_id,
                    path,
                    input,
                    owner,
                } => {
                    live.probing += 1;
                    let slot = Slot::Probe(Arc::clone(self));
                    self.tasks.spawn(async move {
                        let s = slot.scheduler();
                        worker::probe(s, job_id, file_id, &path, &input, &owner).await;
                    });
                }
                Work::Encode(work) => {
                    let cancel = self.stopping.child_token();
                    live.running.insert(
                        work.variation_id,
                        Running {
                            job_id: work.job_id,
                            file_id: work.file_id,
                            progress: Progress::default(),
                            cancel: cancel.clone(),
                        },
                    );
                    let slot = Slot::Encode(Arc::clone(self), work.variation_id);
                    self.tasks.spawn(async move {
                        worker::encode(slot.scheduler(), &work, &cancel).await;
                    });
                }
            }
            drop(live);
            drop(claiming);
            self.notify_change();
        }
    }

    /// Record a running variation's progress (in memory; see
    /// [`Scheduler::flush_progress`]).
    pub(crate) fn report_progress(&self, variation_id: i64, progress: Progress) {
        if let Some(run) = self.live().running.get_mut(&variation_id) {
            run.progress = progress;
        }
        self.notify_change();
    }

    /// Write the progress of every running file to the store in one
    /// transaction: called every [`PROGRESS_FLUSH_INTERVAL`], so the store
    /// sees one write a second however many encodes run.
    async fn flush_progress(&self) {
        let running: Vec<(i64, f64)> = {
            let live = self.live();
            let mut files: Vec<i64> = live.running.values().map(|r| r.file_id).collect();
            files.sort_unstable();
            files.dedup();
            files
                .into_iter()
                .map(|f| (f, running_sum(&live, f)))
                .collect()
        };
        if running.is_empty() {
            return;
        }
        if let Err(err) = self.queue.report_progress(running).await {
            log::warn!("cannot store progress: {err}");
        }
    }
}

impl worker::Context for Scheduler {
    fn queue(&self) -> &dyn Queue {
        &*self.queue
    }
    fn config(&self) -> &Config {
        &self.config
    }
    fn tunables(&self) -> Tunables {
        Scheduler::tunables(self)
    }
    fn judge_for(&self, owner: &Peer) -> Judge {
        Scheduler::judge_for(self, owner)
    }
    fn report_progress(&self, variation: i64, progress: Progress) {
        Scheduler::report_progress(self, variation, progress)
    }
    fn stopping(&self) -> &CancellationToken {
        &self.stopping
    }
}

/// A claim in flight; dropping it (registered, or failed) tells a waiting
/// cancel to look again.
struct Claiming<'a>(&'a Scheduler);

impl Drop for Claiming<'_> {
    fn drop(&mut self) {
        self.0.live().claiming -= 1;
        self.0.ended.notify_waiters();
    }
}

/// A slot taken by a worker task; dropping it (when the task ends, even by
/// a panic) frees the slot and wakes whoever waits for one.
enum Slot {
    Probe(Arc<Scheduler>),
    /// The variation's id.
    Encode(Arc<Scheduler>, i64),
}

impl Slot {
    fn scheduler(&self) -> &Scheduler {
        match self {
            Slot::Probe(s) | Slot::Encode(s, _) => s,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let s = self.scheduler();
        match *self {
            Slot::Probe(_) => s.live().probing -= 1,
            Slot::Encode(_, variation_id) => {
                s.live().running.remove(&variation_id);
                s.ended.notify_waiters();
            }
        }
        s.wake.notify_one();
        s.notify_change();
    }
}

fn running_of(live: &Live, file_id: i64) -> impl Iterator<Item = &Progress> {
    live.running
        .values()
        .filter(move |r| r.file_id == file_id)
        .map(|r| &r.progress)
}

fn running_sum(live: &Live, file_id: i64) -> f64 {
    running_of(live, file_id).map(|p| p.percent).sum()
}

fn file_status(row: &FileRow, variations: u32, live: &Live) -> FileStatus {
    let progress = match row.state {
        FileState::Succeeded => 100.0,
        FileState::Running => {
            let live_percent = (row.done_variations as f64 * 100.0 + running_sum(live, row.id))
                / variations.max(1) as f64;
            live_percent.max(row.progress).min(100.0)
        }
        _ => row.progress,
    };
    // Without a duration there is no percent to show: the media time is.
    let encoded_secs = (row.state == FileState::Running && row.duration_us.is_none())
        .then(|| running_of(live, row.id).map(|p| p.out_time_us).max())
        .flatten()
        .map(|us| us as f64 / 1e6);
    FileStatus {
        encoded_secs,
        path: row.path.clone(),
        state: row.state,
        progress,
        done_variations: row.done_variations,
        duration_secs: row.duration_us.map(|us| us as f64 / 1e6),
        error: row.error.clone(),
    }
}
