//! The single-machine [`Queue`]: one SQLite file, owned by threads of its
//! own so that no SQLite call (and no fsync) ever runs on a runtime thread.
//!
//! A writer thread owns the read-write connection ([`Store`]) and runs the
//! changes one at a time, in the order they were sent; a reader thread owns
//! a read-only connection for `status`, `list`, `watch` and `outputs`,
//! which WAL mode lets read while the writer writes. Each call is sent to
//! its thread as a command and answered on a oneshot channel; a caller
//! that goes away does not stop a change once sent.

mod claims;
mod error;
mod folders;
mod history;
mod hooks;
mod jobs;
mod node;
mod recovery;
mod rows;
mod schema;
mod settle;
mod store;

pub use error::StoreError;
pub use recovery::INTERRUPTED;
pub use store::{BUSY_TIMEOUT, Store};

use super::{
    Beat, Census, EndedFile, FileRow, FolderRow, Full, HookRun, Interrupted, JobFilter, JobRow,
    Lease, Limits, NewFolder, NewJob, Outcome, OutputRow, Queue, QueueError, Result, Sharing,
    TakenFile, Work,
};
use crate::folder::{FileKey, FolderId};
use crate::history::{Count, CounterRow, ErrorTally, RunFigures, RunFilter, RunRow};
use crate::job::{FileIdentity, JobId, JobState, Media};
use crate::process::ProcessIdentity;
use std::path::Path;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Work for the thread that owns a connection.
type Command = Box<dyn FnOnce(&mut Store) + Send>;

impl From<StoreError> for QueueError {
    fn from(err: StoreError) -> Self {
        QueueError::Backend(Box::new(err))
    }
}

/// The queue in the SQLite file at a path, served by its two threads; they
/// end when this value is dropped.
pub struct SqliteQueue {
    writer: mpsc::Sender<Command>,
    reader: mpsc::Sender<Command>,
    /// Database errors not yet written to the counters.
    errors: ErrorTally,
}

/// Start a thread named `name` that opens a store with `open` and then runs
/// commands until every sender is gone; the open's outcome comes back first.
fn spawn(
    name: &str,
    open: impl FnOnce() -> std::result::Result<Store, StoreError> + Send + 'static,
) -> std::result::Result<mpsc::Sender<Command>, StoreError> {
    let (commands, inbox) = mpsc::channel::<Command>();
    let (opened, outcome) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut store = match open() {
                Ok(store) => {
                    let _ = opened.send(Ok(()));
                    store
                }
                Err(err) => {
                    let _ = opened.send(Err(err));
                    return;
                }
            };
            while let Ok(command) = inbox.recv() {
                command(&mut store);
            }
        })
        .map_err(StoreError::Thread)?;
    outcome.recv().map_err(|_| StoreError::ThreadDied)??;
    Ok(commands)
}

impl SqliteQueue {
    /// Open (creating and upgrading if needed) the database at `path` and
    /// start its threads. Blocks while it opens: call it before serving,
    /// or from a blocking thread.
    ///
    /// Errors: those of [`Store::open`] and [`Store::open_read_only`].
    pub fn open(path: &Path) -> std::result::Result<SqliteQueue, StoreError> {
        let (write_path, read_path) = (path.to_path_buf(), path.to_path_buf());
        let writer = spawn("vidvard-db", move || Store::open(&write_path))?;
        // After the writer: the schema is current once it has opened.
        let reader = spawn("vidvard-db-read", move || Store::open_read_only(&read_path))?;
        Ok(SqliteQueue {
            writer,
            reader,
            errors: ErrorTally::default(),
        })
    }

    /// Run `f` on `thread`; a database error is counted.
    async fn on<T: Send + 'static>(
        &self,
        thread: &mpsc::Sender<Command>,
        f: impl FnOnce(&mut Store) -> std::result::Result<T, StoreError> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        thread
            .send(Box::new(move |store| {
                let _ = reply.send(f(store));
            }))
            .map_err(|_| QueueError::Closed)?;
        let done = answer.await.map_err(|_| QueueError::Closed)?;
        if done.is_err() {
            self.errors.note();
        }
        Ok(done?)
    }

    /// Add `counts` and the database errors counted so far.
    async fn write_counts(&self, counts: Vec<Count>) -> Result<()> {
        let (counts, taken) = self.errors.take_into(counts);
        if counts.is_empty() {
            return Ok(());
        }
        let written = self.write(move |s| s.add_counts(&counts)).await;
        if written.is_err() {
            self.errors.give_back(taken);
        }
        written
    }

    /// Run a change on the writer thread.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> std::result::Result<T, StoreError> + Send + 'static,
    ) -> Result<T> {
        self.on(&self.writer, f).await
    }

    /// Run a query on the reader thread.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> std::result::Result<T, StoreError> + Send + 'static,
    ) -> Result<T> {
        self.on(&self.reader, move |store| f(store)).await
    }
}

#[async_trait::async_trait]
impl Queue for SqliteQueue {
    fn sharing(&self) -> Sharing {
        Sharing::OneDaemon
    }
    async fn submit(
        &self,
        job: NewJob,
        limits: Limits,
    ) -> Result<std::result::Result<JobId, Full>> {
        self.write(move |s| s.create_job_within(&job, limits)).await
    }
    async fn job(&self, id: JobId) -> Result<Option<JobRow>> {
        self.read(move |s| s.job(id)).await
    }
    async fn jobs(&self, filter: JobFilter) -> Result<Vec<JobRow>> {
        self.read(move |s| s.jobs(&filter)).await
    }
    async fn files(&self, job: JobId) -> Result<Vec<FileRow>> {
        self.read(move |s| s.files(job)).await
    }
    async fn outputs(&self, job: JobId) -> Result<Vec<OutputRow>> {
        self.read(move |s| s.outputs(job)).await
    }
    async fn queue_depth(&self) -> Result<u64> {
        self.read(|s| s.queue_depth()).await
    }
    async fn cancel(&self, job: JobId) -> Result<Option<JobState>> {
        self.write(move |s| s.cancel_job(job)).await
    }
    async fn retry(&self, job: JobId) -> Result<Option<(JobState, u64)>> {
        self.write(move |s| s.retry_job(job)).await
    }
    async fn set_priority(&self, job: JobId, priority: i32) -> Result<Option<JobState>> {
        self.write(move |s| s.set_priority(job, priority)).await
    }
    async fn set_job_paused(&self, job: JobId, paused: bool) -> Result<Option<JobState>> {
        self.write(move |s| s.set_job_paused(job, paused)).await
    }
    async fn paused(&self) -> Result<bool> {
        self.read(|s| s.paused()).await
    }
    async fn set_paused(&self, paused: bool) -> Result<()> {
        self.write(move |s| s.set_paused(paused)).await
    }
    async fn prune(&self, owner: Option<u32>, finished_before: i64) -> Result<u64> {
        self.write(move |s| s.prune(owner, finished_before)).await
    }
    async fn set_hooks(&self, on: bool) -> Result<()> {
        self.write(move |s| s.set_hooks(on)).await
    }
    async fn claim_hook(&self) -> Result<Option<HookRun>> {
        let now = super::unix_now();
        self.write(move |s| s.claim_hook(now)).await
    }
    async fn starting_hook(&self, job: JobId) -> Result<bool> {
        let now = super::unix_now();
        self.write(move |s| s.starting_hook(job, now)).await
    }
    async fn set_hook_process(&self, job: JobId, process: ProcessIdentity) -> Result<()> {
        self.write(move |s| s.set_hook_process(job, &process)).await
    }
    async fn finish_hook(&self, job: JobId) -> Result<()> {
        self.write(move |s| s.finish_hook(job)).await
    }
    async fn hooks_left_running(&self) -> Result<Vec<HookRun>> {
        let boot = crate::process::boot_id().map_err(StoreError::BootId)?;
        self.write(move |s| s.hooks_left_running(&boot)).await
    }
    async fn claim(&self, after: JobId, slots: usize) -> Result<Option<Work>> {
        self.write(move |s| s.claim(after, slots)).await
    }
    async fn finish_probe(&self, lease: Lease, media: Media, cpu_seconds: f64) -> Result<bool> {
        self.write(move |s| s.finish_probe(lease.id, media, cpu_seconds))
            .await
            .map(|()| true)
    }
    async fn fail_file(
        &self,
        lease: Lease,
        error: String,
        run: RunFigures,
    ) -> Result<Option<JobState>> {
        self.write(move |s| s.fail_file(lease.id, &error, &run))
            .await
            .map(Some)
    }
    async fn set_temp(&self, lease: Lease, temp: FileIdentity) -> Result<()> {
        self.write(move |s| s.set_temp(lease.id, temp)).await
    }
    async fn set_process(&self, lease: Lease, process: ProcessIdentity) -> Result<()> {
        self.write(move |s| s.set_process(lease.id, &process)).await
    }
    async fn confirm(&self, _lease: Lease) -> Result<bool> {
        Ok(true)
    }
    /// One daemon owns the file: no lease is ever lost, and a cancel stops
    /// this daemon's own work directly, so nothing comes back. Database
    /// errors counted since the last beat are written to the counters.
    async fn heartbeat(&self, beat: Beat) -> Result<Vec<Lease>> {
        if !beat.progress.is_empty() {
            let progress = beat.progress;
            self.write(move |s| s.set_files_progress(&progress)).await?;
        }
        self.write_counts(Vec::new()).await?;
        Ok(Vec::new())
    }
    async fn finish_variation(
        &self,
        lease: Lease,
        outcome: Outcome,
        run: RunFigures,
    ) -> Result<Option<JobState>> {
        self.write(move |s| s.finish_variation(lease.id, &outcome, &run))
            .await
            .map(Some)
    }
    async fn add_counts(&self, counts: Vec<Count>) -> Result<()> {
        self.write_counts(counts).await
    }
    async fn counters(&self) -> Result<Vec<CounterRow>> {
        self.read(|s| s.counters()).await
    }
    async fn runs(&self, filter: RunFilter) -> Result<Vec<RunRow>> {
        self.read(move |s| s.runs(&filter)).await
    }
    async fn census(&self) -> Result<Census> {
        self.read(|s| s.census()).await
    }
    async fn interrupted(&self) -> Result<Vec<Interrupted>> {
        self.read(|s| s.interrupted()).await
    }
    async fn requeue_idle_jobs(&self) -> Result<Vec<JobId>> {
        self.write(|s| s.requeue_idle_jobs()).await
    }
    async fn mark_interrupted(&self) -> Result<Vec<JobId>> {
        self.write(|s| s.mark_interrupted()).await
    }
    async fn add_folder(
        &self,
        folder: NewFolder,
        max_per_owner: Option<u64>,
    ) -> Result<std::result::Result<FolderId, u64>> {
        self.write(move |s| s.add_folder(&folder, max_per_owner))
            .await
    }
    async fn folder(&self, id: FolderId) -> Result<Option<FolderRow>> {
        self.read(move |s| s.folder(id)).await
    }
    async fn folders(&self, owner: Option<u32>) -> Result<Vec<FolderRow>> {
        self.read(move |s| s.folders(owner)).await
    }
    async fn remove_folder(&self, id: FolderId) -> Result<bool> {
        self.write(move |s| s.remove_folder(id)).await
    }
    async fn set_folder_paused(&self, id: FolderId, paused: bool) -> Result<bool> {
        self.write(move |s| s.set_folder_paused(id, paused)).await
    }
    async fn watched_folders(&self) -> Result<Vec<FolderRow>> {
        self.read(|s| s.watched_folders()).await
    }
    async fn take_file(
        &self,
        file: TakenFile,
        job: NewJob,
        limits: Limits,
    ) -> Result<std::result::Result<Option<JobId>, Full>> {
        self.write(move |s| s.take_file(&file, &job, limits)).await
    }
    async fn ended_files(&self, folder: FolderId) -> Result<Vec<EndedFile>> {
        self.read(move |s| s.ended_files(folder)).await
    }
    async fn file_done(&self, folder: FolderId, key: FileKey) -> Result<()> {
        self.write(move |s| s.file_done(folder, key)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_run_on_the_queues_own_threads_and_reads_see_writes() {
        let dir = tempfile::tempdir().unwrap();
        let queue = SqliteQueue::open(&dir.path().join("q.db")).unwrap();
        let runtime_thread = std::thread::current().id();
        let on_thread = move |s: &Store| {
            assert_ne!(std::thread::current().id(), runtime_thread);
            s.queue_depth()
        };
        assert_eq!(queue.read(on_thread).await.unwrap(), 0);
        let all = JobFilter {
            limit: 10,
            ..JobFilter::default()
        };
        assert_eq!(queue.jobs(all).await.unwrap(), Vec::new());
        assert!(queue.claim(0, 1).await.unwrap().is_none());
        drop(queue);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_an_open_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        std::fs::write(&path, "not a database, not at all, for sure").unwrap();
        assert!(matches!(
            SqliteQueue::open(&path),
            Err(StoreError::Open { .. } | StoreError::Sql(_))
        ));
    }
}
