//! The queue boundary: jobs, their input files and variations, and the
//! claims on their work, in domain terms. [`Queue`] is what the engine
//! talks to; [`sqlite`] is the single-machine implementation, [`postgres`]
//! the one several nodes share, and [`open`] the one place that chooses
//! between them. Nothing here names a database: a claim is a [`Lease`]
//! that a backend may lose, every write about claimed work is fenced by
//! it, and every call may fail with [`QueueError`]. Both backends keep the
//! same rules in files of the same names (jobs, claims, settle, hooks, history,
//! recovery, node, folders, rows, schema, store, error), checked on each by the
//! conformance suite (`tests/queue_conformance/`); [`Sharing`] names
//! where they differ by design.
//!
//! The types that cross the boundary have files of their own: `records`
//! (a new job and the limits it must fit in, the rows reads return, the
//! census), `work` (claimed work, how it ends, what a heartbeat reports,
//! what a stop interrupted, the hooks owed), `folders` (watch folders and
//! the files they take) and `error` ([`QueueError`]); here are the
//! [`Queue`] trait itself and [`Sharing`].

mod backend;
mod error;
mod folders;
pub mod postgres;
mod records;
pub mod sqlite;
mod work;

pub use backend::{Backend, OpenError, open};
pub use error::{QueueError, Result};
pub use folders::{EndedFile, FolderRow, NewFolder, TakenFile};
pub use records::{
    Census, ElsewhereRow, FileRow, Full, JobFilter, JobRow, Limits, NewJob, NodeRow, OutputRow,
};
pub use work::{Beat, HookRun, Interrupted, Outcome, Place, VariationWork, Work};

pub use crate::job::Lease;

use crate::folder::{FileKey, FolderId};
use crate::history::{Count, CounterRow, RunFigures, RunFilter, RunRow};
use crate::job::{FileIdentity, JobId, JobState, Media};
use crate::process::ProcessIdentity;

/// Unix time now, in seconds: what the queue's times are counted in.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Who shares a backend: the one documented difference between backends.
/// Every other rule of [`Queue`] holds on each alike; where a rule depends
/// on this, its docs say how (the conformance suite checks both sides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// One daemon owns the queue ([`sqlite`]). A claim is never lost
    /// (every lease is attempt 1 and stays held, so fencing has nothing to
    /// refuse, and [`Queue::heartbeat`] never asks to stop: a cancel stops
    /// the daemon's own work directly); at a clean stop idle running jobs
    /// are queued again ([`Queue::requeue_idle_jobs`]), and what a stop
    /// left unfinished fails as interrupted ([`Queue::mark_interrupted`]).
    OneDaemon,
    /// Several nodes share the queue ([`postgres`]). A claim is a lease that
    /// expires when its node stops renewing it, and another node may then
    /// claim the work again with the next attempt; writes under the older
    /// attempt are refused, and the heartbeat names the leases to stop
    /// (lost, or of a cancelled job). What a stop left unfinished is queued
    /// again for any node.
    Nodes,
}

/// The durable job queue, as the engine sees it. Every method is one
/// short operation on the queue's durable state: it returns once the change
/// is durable (progress aside), and never blocks the caller's runtime
/// thread.
#[async_trait::async_trait]
pub trait Queue: Send + Sync {
    /// Who shares this queue; see [`Sharing`].
    fn sharing(&self) -> Sharing;
    /// Queue a new job, all of it queued, if it fits in `limits`; returns
    /// its id, or which limit it would pass.
    async fn submit(&self, job: NewJob, limits: Limits)
    -> Result<std::result::Result<JobId, Full>>;
    /// One job, or `None` if there is no such job.
    async fn job(&self, id: JobId) -> Result<Option<JobRow>>;
    /// The jobs `filter` selects, by id ascending.
    async fn jobs(&self, filter: JobFilter) -> Result<Vec<JobRow>>;
    /// The input files of a job, in submission order.
    async fn files(&self, job: JobId) -> Result<Vec<FileRow>>;
    /// The verified outputs of a job, by input, then variation index.
    async fn outputs(&self, job: JobId) -> Result<Vec<OutputRow>>;
    /// Jobs queued or running.
    async fn queue_depth(&self) -> Result<u64>;
    /// Cancel a job and its queued work; running variations go on until
    /// their outcome is recorded. Returns the job's state before, `None`
    /// for no such job.
    async fn cancel(&self, job: JobId) -> Result<Option<JobState>>;
    /// Queue again what did not succeed in a final job. Returns the job's
    /// state before and how many variations were queued again; with none
    /// (an open or succeeded job, or a cancelled one with a variation still
    /// stopping) the job is left as it is.
    async fn retry(&self, job: JobId) -> Result<Option<(JobState, u64)>>;
    /// Set a job's priority. Returns its state, `None` for no such job.
    async fn set_priority(&self, job: JobId, priority: i32) -> Result<Option<JobState>>;
    /// Pause (none of its work is claimed) or resume a job. Returns its
    /// state, `None` for no such job.
    async fn set_job_paused(&self, job: JobId, paused: bool) -> Result<Option<JobState>>;
    /// Whether this daemon (this node, on a shared queue) is paused: it
    /// claims nothing. Survives restarts.
    async fn paused(&self) -> Result<bool>;
    /// Pause or resume this daemon (this node); see [`Queue::paused`].
    async fn set_paused(&self, paused: bool) -> Result<()>;
    /// Forget final jobs of `owner` (everyone's for `None`) that finished
    /// before `finished_before` (Unix seconds), except those with a
    /// variation still running (its FFmpeg being stopped) or a completion
    /// hook still owed (due or running): their records stay until it ran.
    /// Returns how many.
    async fn prune(&self, owner: Option<u32>, finished_before: i64) -> Result<u64>;

    /// Whether jobs that this daemon (this node) ends from now on owe a
    /// completion hook: the owed hook is recorded in the same write that
    /// makes the job final, and dropped if the job is retried before it ran.
    async fn set_hooks(&self, on: bool) -> Result<()>;
    /// Claim an owed hook to run now, the one of the oldest job first.
    async fn claim_hook(&self) -> Result<Option<HookRun>>;
    /// Just before the program of a claimed hook is spawned: whether the
    /// claim is still this daemon's (node's) and nothing was spawned for
    /// it yet; the row then says the hook starts now (its timeout counts
    /// from here). `false`: do not spawn it (another node took the hooks
    /// of this one, found lost, or the job was retried and ended again:
    /// that end owes a hook of its own, claimed anew).
    async fn starting_hook(&self, job: JobId) -> Result<bool>;
    /// The process of a claimed hook was spawned.
    async fn set_hook_process(&self, job: JobId, process: ProcessIdentity) -> Result<()>;
    /// A claimed hook has run (or its process is gone): nothing is owed.
    /// Only its end is recorded so: a failed call leaves the hook owed.
    async fn finish_hook(&self, job: JobId) -> Result<()>;
    /// At start: this daemon's (node's) hooks that a stop interrupted.
    /// Those claimed but never spawned, or spawned before the machine last
    /// booted, are owed again; those spawned since the boot are returned,
    /// to be waited for while their processes live.
    async fn hooks_left_running(&self) -> Result<Vec<HookRun>>;
    /// Take over the running hooks of the nodes that are lost: no
    /// heartbeat for this node's lease time while the database was up
    /// (a stopped node's too, once that time has passed), as claims are
    /// taken over. Those never spawned, or spawned on another machine or
    /// before this one's boot, are owed again (any node runs them anew);
    /// those whose process is on this machine and boot become this node's
    /// and are returned, to be waited for as [`Queue::hooks_left_running`]'s
    /// are. Empty on a queue of one daemon ([`Sharing::OneDaemon`]): its
    /// own restart settles them.
    async fn adopt_hooks(&self) -> Result<Vec<HookRun>> {
        Ok(Vec::new())
    }

    /// Claim the next turn: it goes to the unpaused jobs of highest
    /// priority with claimable work, among them to the first job after
    /// `after` (by id, wrapping around to the oldest: jobs take turns), and
    /// takes that job's first input still to be probed or with queued
    /// variations: its probe (one slot), or up to `slots` (the caller's
    /// free slots, at least 1) of its queued variations, by index, each
    /// with its temporary file's path recorded (named by
    /// [`crate::naming::temp_name`]) before the file exists. A turn never
    /// takes variations of two files. Each claim (the probe's, each
    /// variation's) is a lease of its own: kept by [`Queue::heartbeat`],
    /// lost when not renewed in time on a shared queue, and fencing only
    /// the writes about its own work.
    async fn claim(&self, after: JobId, slots: usize) -> Result<Option<Work>>;
    /// A probe succeeded: the file's variations become claimable. False
    /// when the lease was lost (nothing was written). A cancel meanwhile
    /// does not lose it: the probe is acknowledged and nothing recorded.
    /// `cpu_seconds`, the probe's CPU time, is shared evenly by the file's
    /// variations: each one's share is added to its next run's record in
    /// the history (once).
    async fn finish_probe(&self, lease: Lease, media: Media, cpu_seconds: f64) -> Result<bool>;
    /// A file cannot be used: it and its queued variations fail with
    /// `error` (unless a cancel settled them meanwhile), each failed
    /// variation recorded as a failed run in the history with an even share
    /// of `run` (the probe's figures and failure class). Returns the job's
    /// state; `None` when the lease was lost.
    async fn fail_file(
        &self,
        lease: Lease,
        error: String,
        run: RunFigures,
    ) -> Result<Option<JobState>>;
    /// The temporary file of a claimed variation exists: which file it is.
    async fn set_temp(&self, lease: Lease, temp: FileIdentity) -> Result<()>;
    /// The FFmpeg process of a claimed variation runs.
    async fn set_process(&self, lease: Lease, process: ProcessIdentity) -> Result<()>;
    /// Whether the lease is still held (expired, but not taken over by
    /// another claim, counts as held) and the temporary file's identity is
    /// recorded (so that a later claim can find the output), renewed for a
    /// full lease time if so: asked right before an output is published, so
    /// that a node that lost its claim never publishes.
    async fn confirm(&self, lease: Lease) -> Result<bool>;
    /// Renew the leases this node holds and store what [`Beat`] reports;
    /// returns the variations' leases whose work must stop: lost to another
    /// node, or of a job cancelled meanwhile. Progress is not made durable
    /// on its own: a crash may lose the last figures, never an outcome.
    async fn heartbeat(&self, beat: Beat) -> Result<Vec<Lease>>;
    /// How a claimed variation ended. Returns the job's state afterwards;
    /// `None` when the lease was lost (nothing was written). In the same
    /// write, the run joins the history ([`Queue::runs`]: `run`'s figures,
    /// the job's owner and labels, this node, the outcome's lowest SSIM)
    /// and its counts ([`crate::history::counts_of_run`]) are added to this
    /// node's counters; runs older than [`crate::history::HISTORY_DAYS`]
    /// are deleted.
    async fn finish_variation(
        &self,
        lease: Lease,
        outcome: Outcome,
        run: RunFigures,
    ) -> Result<Option<JobState>>;

    /// Variations left claimed by an earlier run of this daemon (this
    /// node) that did not stop cleanly.
    async fn interrupted(&self) -> Result<Vec<Interrupted>>;
    /// FFmpeg processes of this node's earlier runs whose claims other
    /// nodes took over (taken off the list): recovery kills those still
    /// alive.
    async fn orphaned_processes(&self) -> Result<Vec<ProcessIdentity>> {
        Ok(Vec::new())
    }
    /// At a clean stop: put back in the queue the running jobs of which
    /// nothing is being encoded. Returns them.
    async fn requeue_idle_jobs(&self) -> Result<Vec<JobId>>;
    /// Settle what a stop of this daemon left unfinished. On one machine
    /// its jobs become interrupted (a user retries them); on a shared queue
    /// the work is queued again for any node. Returns the jobs.
    async fn mark_interrupted(&self) -> Result<Vec<JobId>>;

    /// Add `counts` to this daemon's (node's) counters, together with the
    /// database errors counted since the last such write. Counters never go
    /// down: neither `prune` nor `retention_days` touches them.
    async fn add_counts(&self, counts: Vec<Count>) -> Result<()>;
    /// Every counter's value, of every node, by node, counter and key.
    async fn counters(&self) -> Result<Vec<CounterRow>>;
    /// The runs of the history that `filter` selects, oldest end first.
    async fn runs(&self, filter: RunFilter) -> Result<Vec<RunRow>>;
    /// How many jobs are in each state, and variations queued and running
    /// (of every node): the queue's depth for metrics.
    async fn census(&self) -> Result<Census>;

    /// The nodes sharing this queue; empty for a queue of one machine.
    async fn nodes(&self) -> Result<Vec<NodeRow>> {
        Ok(Vec::new())
    }
    /// The variations that other nodes (any but this one, up or lost)
    /// hold claimed as running now, of `job` (of every job for `None`),
    /// by job, input and index; empty for a queue of one machine.
    async fn running_elsewhere(&self, _job: Option<JobId>) -> Result<Vec<ElsewhereRow>> {
        Ok(Vec::new())
    }
    /// A counter bumped whenever another node (or this one) changed the
    /// queue, for a backend shared by several nodes; `None` otherwise.
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
    /// This daemon stops cleanly: another may take its node name at once
    /// (and, on a shared queue, another node its folders).
    async fn leave(&self) -> Result<()> {
        Ok(())
    }

    /// Store a watch folder, unless its owner has `max_per_owner` already
    /// (`None`: no cap); returns its id, or the owner's count of folders.
    async fn add_folder(
        &self,
        folder: NewFolder,
        max_per_owner: Option<u64>,
    ) -> Result<std::result::Result<FolderId, u64>>;
    /// One folder, `None` for no such folder.
    async fn folder(&self, id: FolderId) -> Result<Option<FolderRow>>;
    /// The folders of `owner` (everyone's for `None`), by id.
    async fn folders(&self, owner: Option<u32>) -> Result<Vec<FolderRow>>;
    /// Forget a folder and its ledger (its jobs stay). False: no such folder.
    async fn remove_folder(&self, id: FolderId) -> Result<bool>;
    /// Pause (not scanned) or resume a folder. False: no such folder.
    async fn set_folder_paused(&self, id: FolderId, paused: bool) -> Result<bool>;
    /// The unpaused folders this daemon (node) is to scan now. On a shared
    /// queue one node at a time scans a folder: this takes the scan lease
    /// of each folder nobody holds (or whose node is lost, as claims are
    /// taken over) and renews this node's, for a lease time; call it
    /// again within that time to keep them.
    async fn watched_folders(&self) -> Result<Vec<FolderRow>>;
    /// Take a settled file as `job`, in one write: its ledger entry and the
    /// job are stored together or not at all. `Ok(None)` when the folder's
    /// ledger has this file already (taken before: by this node, another,
    /// or before a restart) or when it is a job's output, published or
    /// still temporary (then entered as taken, with no job); [`Full`] when the job would pass
    /// `limits` (nothing stored).
    async fn take_file(
        &self,
        file: TakenFile,
        job: NewJob,
        limits: Limits,
    ) -> Result<std::result::Result<Option<JobId>, Full>>;
    /// A folder's taken files whose job is final (or pruned) and whose
    /// after-action is not done yet.
    async fn ended_files(&self, folder: FolderId) -> Result<Vec<EndedFile>>;
    /// The after-action of a taken file is done (or given up).
    async fn file_done(&self, folder: FolderId, key: FileKey) -> Result<()>;
}
