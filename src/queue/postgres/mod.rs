//! The shared [`Queue`]: one PostgreSQL database that any number of vidvard
//! nodes use at once, each running work in its own slots.
//!
//! Work is claimed with the `FOR UPDATE SKIP LOCKED` pattern in one short
//! transaction: the claim sets the variation's (or for a probe, the file's)
//! `node`, bumps its `attempt` and sets `lease_until`. No transaction or row
//! lock is held while FFmpeg runs. The node's heartbeat ([`Queue::heartbeat`])
//! renews its leases; every later write about claimed work names the node
//! and the attempt (fencing), so a node whose lease expired and was taken
//! over can neither record an outcome nor, since it confirms its lease right
//! before, publish a file. Work whose lease expired is claimed again by any
//! node, which first settles what the lost claim left (its temporary file
//! removed, or its published output adopted).
//!
//! The settle rules and the progress formulas are [`crate::job`]'s, as in
//! the SQLite queue, and the files are split by concern as the SQLite
//! queue's are (jobs, claims, settle, hooks, history, recovery, node, folders, rows,
//! schema, store, error), so that a rule lives at the same place in each; this
//! file only answers [`Queue`] from them, and `url`, `listen`, `tls` and
//! `pgpass` are the connection's own. Connections come from a pool
//! (deadpool-postgres); a connection attempt gives up after
//! [`CONNECT_TIMEOUT`], so a request made while the database is away fails
//! within seconds.

mod claims;
mod error;
mod folders;
mod history;
mod hooks;
mod jobs;
mod listen;
mod node;
mod pgpass;
mod recovery;
mod rows;
mod schema;
mod settle;
mod store;
pub mod tls;
mod url;

pub use error::PgError;
pub use store::{CONNECT_TIMEOUT, Database, NodeConfig, PgQueue};
pub use url::{describe, parse_url, url_has_password};

use super::{
    Beat, Census, ElsewhereRow, EndedFile, FileRow, FolderRow, Full, HookRun, Interrupted,
    JobFilter, JobRow, Limits, NewFolder, NewJob, NodeRow, Outcome, OutputRow, Queue, Result,
    Sharing, TakenFile, Work,
};
use crate::folder::{FileKey, FolderId};
use crate::history::{Count, CounterRow, RunFigures, RunFilter, RunRow};
use crate::job::{FileIdentity, JobId, JobState, Lease, Media};
use crate::process::ProcessIdentity;

impl PgQueue {
    /// `result`, its database error counted.
    fn tally<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.errors.note();
        }
        result
    }
}

/// Each call is answered by the file of its concern; every database error
/// is counted ([`PgQueue::tally`]).
#[async_trait::async_trait]
impl Queue for PgQueue {
    fn sharing(&self) -> Sharing {
        Sharing::Nodes
    }
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.changes.clone())
    }
    async fn paused(&self) -> Result<bool> {
        self.tally(PgQueue::paused(self).await)
    }
    async fn set_paused(&self, paused: bool) -> Result<()> {
        self.tally(PgQueue::set_paused(self, paused).await)
    }
    async fn set_hooks(&self, on: bool) -> Result<()> {
        self.tally(PgQueue::set_hooks(self, on).await)
    }
    async fn nodes(&self) -> Result<Vec<NodeRow>> {
        self.tally(PgQueue::nodes(self).await)
    }
    async fn running_elsewhere(&self, job: Option<JobId>) -> Result<Vec<ElsewhereRow>> {
        self.tally(PgQueue::running_elsewhere(self, job).await)
    }
    async fn leave(&self) -> Result<()> {
        self.tally(PgQueue::release_folders(self).await)?;
        self.tally(PgQueue::leave(self).await)
    }
    async fn submit(
        &self,
        job: NewJob,
        limits: Limits,
    ) -> Result<std::result::Result<JobId, Full>> {
        self.tally(PgQueue::submit(self, job, limits).await)
    }
    async fn job(&self, id: JobId) -> Result<Option<JobRow>> {
        self.tally(PgQueue::job(self, id).await)
    }
    async fn jobs(&self, filter: JobFilter) -> Result<Vec<JobRow>> {
        self.tally(PgQueue::jobs(self, filter).await)
    }
    async fn files(&self, job: JobId) -> Result<Vec<FileRow>> {
        self.tally(PgQueue::files(self, job).await)
    }
    async fn outputs(&self, job: JobId) -> Result<Vec<OutputRow>> {
        self.tally(PgQueue::outputs(self, job).await)
    }
    async fn queue_depth(&self) -> Result<u64> {
        self.tally(PgQueue::queue_depth(self).await)
    }
    async fn cancel(&self, job: JobId) -> Result<Option<JobState>> {
        self.tally(PgQueue::cancel(self, job).await)
    }
    async fn retry(&self, job: JobId) -> Result<Option<(JobState, u64)>> {
        self.tally(PgQueue::retry(self, job).await)
    }
    async fn prune(&self, owner: Option<u32>, finished_before: i64) -> Result<u64> {
        self.tally(PgQueue::prune(self, owner, finished_before).await)
    }
    async fn set_priority(&self, job: JobId, priority: i32) -> Result<Option<JobState>> {
        self.tally(PgQueue::set_priority(self, job, priority).await)
    }
    async fn set_job_paused(&self, job: JobId, paused: bool) -> Result<Option<JobState>> {
        self.tally(PgQueue::set_job_paused(self, job, paused).await)
    }
    async fn claim(&self, after: JobId, slots: usize) -> Result<Option<Work>> {
        self.tally(PgQueue::claim(self, after, slots).await)
    }
    async fn finish_probe(&self, lease: Lease, media: Media, cpu_seconds: f64) -> Result<bool> {
        self.tally(PgQueue::finish_probe(self, lease, media, cpu_seconds).await)
    }
    async fn fail_file(
        &self,
        lease: Lease,
        error: String,
        run: RunFigures,
    ) -> Result<Option<JobState>> {
        self.tally(PgQueue::fail_file(self, lease, error, run).await)
    }
    async fn set_temp(&self, lease: Lease, temp: FileIdentity) -> Result<()> {
        self.tally(PgQueue::set_temp(self, lease, temp).await)
    }
    async fn set_process(&self, lease: Lease, process: ProcessIdentity) -> Result<()> {
        self.tally(PgQueue::set_process(self, lease, process).await)
    }
    async fn confirm(&self, lease: Lease) -> Result<bool> {
        self.tally(PgQueue::confirm(self, lease).await)
    }
    async fn heartbeat(&self, beat: Beat) -> Result<Vec<Lease>> {
        self.tally(PgQueue::heartbeat(self, beat).await)
    }
    async fn finish_variation(
        &self,
        lease: Lease,
        outcome: Outcome,
        run: RunFigures,
    ) -> Result<Option<JobState>> {
        self.tally(PgQueue::finish_variation(self, lease, outcome, run).await)
    }
    async fn add_counts(&self, counts: Vec<Count>) -> Result<()> {
        self.tally(PgQueue::add_counts(self, counts).await)
    }
    async fn counters(&self) -> Result<Vec<CounterRow>> {
        self.tally(PgQueue::counters(self).await)
    }
    async fn runs(&self, filter: RunFilter) -> Result<Vec<RunRow>> {
        self.tally(PgQueue::runs(self, filter).await)
    }
    async fn census(&self) -> Result<Census> {
        self.tally(PgQueue::census(self).await)
    }
    async fn claim_hook(&self) -> Result<Option<HookRun>> {
        self.tally(PgQueue::claim_hook(self).await)
    }
    async fn starting_hook(&self, job: JobId) -> Result<bool> {
        self.tally(PgQueue::starting_hook(self, job).await)
    }
    async fn set_hook_process(&self, job: JobId, process: ProcessIdentity) -> Result<()> {
        self.tally(PgQueue::set_hook_process(self, job, process).await)
    }
    async fn finish_hook(&self, job: JobId) -> Result<()> {
        self.tally(PgQueue::finish_hook(self, job).await)
    }
    async fn hooks_left_running(&self) -> Result<Vec<HookRun>> {
        self.tally(PgQueue::hooks_left_running(self).await)
    }
    async fn adopt_hooks(&self) -> Result<Vec<HookRun>> {
        self.tally(PgQueue::adopt_hooks(self).await)
    }
    async fn interrupted(&self) -> Result<Vec<Interrupted>> {
        self.tally(PgQueue::interrupted(self).await)
    }
    async fn orphaned_processes(&self) -> Result<Vec<ProcessIdentity>> {
        self.tally(PgQueue::orphaned_processes(self).await)
    }
    async fn requeue_idle_jobs(&self) -> Result<Vec<JobId>> {
        self.tally(PgQueue::requeue_idle_jobs(self).await)
    }
    async fn mark_interrupted(&self) -> Result<Vec<JobId>> {
        self.tally(PgQueue::mark_interrupted(self).await)
    }
    async fn add_folder(
        &self,
        folder: NewFolder,
        max_per_owner: Option<u64>,
    ) -> Result<std::result::Result<FolderId, u64>> {
        self.tally(PgQueue::add_folder(self, folder, max_per_owner).await)
    }
    async fn folder(&self, id: FolderId) -> Result<Option<FolderRow>> {
        self.tally(PgQueue::folder(self, id).await)
    }
    async fn folders(&self, owner: Option<u32>) -> Result<Vec<FolderRow>> {
        self.tally(PgQueue::folders(self, owner).await)
    }
    async fn remove_folder(&self, id: FolderId) -> Result<bool> {
        self.tally(PgQueue::remove_folder(self, id).await)
    }
    async fn set_folder_paused(&self, id: FolderId, paused: bool) -> Result<bool> {
        self.tally(PgQueue::set_folder_paused(self, id, paused).await)
    }
    async fn watched_folders(&self) -> Result<Vec<FolderRow>> {
        self.tally(PgQueue::watched_folders(self).await)
    }
    async fn take_file(
        &self,
        file: TakenFile,
        job: NewJob,
        limits: Limits,
    ) -> Result<std::result::Result<Option<JobId>, Full>> {
        self.tally(PgQueue::take_file(self, file, job, limits).await)
    }
    async fn ended_files(&self, folder: FolderId) -> Result<Vec<EndedFile>> {
        self.tally(PgQueue::ended_files(self, folder).await)
    }
    async fn file_done(&self, folder: FolderId, key: FileKey) -> Result<()> {
        self.tally(PgQueue::file_done(self, folder, key).await)
    }
}
