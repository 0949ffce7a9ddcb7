//! One folder's watching task: a scan at its start (finding what came
//! while the daemon was down) and every `--poll` seconds, inotify events
//! between scans (unless `--poll-only`, or when inotify is out of watches:
//! then one log line, and polling), each file looked at again every
//! [`TICK`] while it settles, each settled file taken as a job of the
//! folder's owner ([`Engine::take_settled`]), and the after-actions of
//! ended jobs done when the engine hears of a change (a job's end here or,
//! on a shared queue, on another node), at most every [`ACTIONS_EVERY`],
//! and every [`ACTIONS_POLL`] in any case: an idle folder costs a scan
//! every `--poll` seconds and nothing else.

use super::after::{self, Done};
use super::notify::{Event, Notifier, NotifyError};
use super::scan::{self, Found};
use super::tracker::Tracker;
use crate::access::vetted::AccessError;
use crate::engine::Engine;
use crate::engine::requests::{ApiError, refusal};
use crate::escape::logged;
use crate::folder::{FileKey, folder_label};
use crate::proto::SubmitRequest;
use crate::queue::{FolderRow, TakenFile};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often a file being settled is looked at again.
pub const TICK: Duration = Duration::from_millis(250);
/// Shortest time between two looks for a folder's ended jobs, for their
/// after-actions.
pub const ACTIONS_EVERY: Duration = Duration::from_secs(1);
/// Longest time between two such looks, whatever the engine heard.
pub const ACTIONS_POLL: Duration = Duration::from_secs(30);

/// What became of a settled file.
enum Taken {
    /// Queued as a job.
    Job,
    /// In the folder's ledger already (or an output): nothing to do.
    Known,
    /// Refused for good, as it is (unreadable for the owner, not a video
    /// path...): the reason.
    Refused(String),
    /// Not now (the queue is full or away, the file changed meanwhile):
    /// settle it again.
    Later(String),
}

/// What one look at the folder gave: a full scan's findings, or the keys
/// of the files looked at again (`None`: gone or not a file to take).
struct Look {
    scan: Option<Result<Found, AccessError>>,
    keys: Vec<(PathBuf, Option<FileKey>)>,
}

/// Watch `row` until `stop` fires.
pub async fn watch(engine: Arc<Engine>, row: FolderRow, stop: CancellationToken) {
    let id = row.id;
    let spec = &row.spec;
    let settle = Duration::from_secs(spec.settle_secs.into());
    let poll = Duration::from_secs(spec.poll_secs.into());
    let mut notifier = if spec.poll_only {
        None
    } else {
        notifier(id, &spec.dir, poll)
    };
    let mut tracker = Tracker::default();
    let mut fresh: Vec<PathBuf> = Vec::new();
    let mut next_scan = Instant::now();
    let mut changes = engine.subscribe();
    let (mut actions_due, mut next_actions, mut actions_poll) =
        (true, Instant::now(), Instant::now());
    let mut scan_failed = false;
    log::debug!("folder {id}: watching {}", logged(&spec.dir));
    loop {
        let now = Instant::now();
        let full = now >= next_scan;
        let look = look(
            &engine,
            &row,
            full,
            tracker.paths().into_iter().chain(fresh.drain(..)),
        );
        let Ok(look) = look.await else {
            return;
        };
        let seen = std::time::Instant::now();
        if let Some(found) = look.scan {
            next_scan = now + poll;
            match found {
                Ok(found) => {
                    scan_failed = false;
                    let present: HashSet<FileKey> = found.files.iter().map(|(_, k)| *k).collect();
                    tracker.keep_done(&present);
                    for (path, key) in &found.files {
                        tracker.observe(path, *key, seen);
                    }
                    if let Some(Err(err)) = notifier.as_mut().map(|n| watch_dirs(n, &found.dirs)) {
                        falls_back(id, &err, poll);
                        notifier = None;
                    }
                }
                Err(reason) if !scan_failed => {
                    scan_failed = true;
                    log::warn!("folder {id}: cannot scan it: {reason}");
                }
                Err(_) => {}
            }
        }
        for (path, key) in look.keys {
            match key {
                Some(key) => tracker.observe(&path, key, seen),
                None => tracker.forget(&path),
            }
        }
        for (path, key) in tracker.settled(std::time::Instant::now(), settle) {
            if stop.is_cancelled() {
                return;
            }
            match engine.take_settled(&row, &path, key).await {
                Taken::Job | Taken::Known => tracker.finish(&path, key),
                Taken::Refused(reason) => {
                    log::warn!("folder {id}: {} not taken: {reason}", logged(&path));
                    tracker.finish(&path, key);
                }
                Taken::Later(reason) => {
                    log::info!("folder {id}: {} not taken now: {reason}", logged(&path));
                    tracker.restart(&path, std::time::Instant::now());
                }
            }
        }
        let now = Instant::now();
        if (actions_due && now >= next_actions) || now >= actions_poll {
            engine.do_after_actions(&row).await;
            actions_due = false;
            next_actions = Instant::now() + ACTIONS_EVERY;
            actions_poll = Instant::now() + ACTIONS_POLL;
        }
        let mut wake = next_scan.min(actions_poll);
        if actions_due {
            wake = wake.min(next_actions);
        }
        if !tracker.is_empty() {
            wake = wake.min(Instant::now() + TICK);
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(wake) => {}
            changed = changes.changed() => match changed {
                Ok(()) => actions_due = true,
                Err(_) => return,
            },
            events = next_events(&mut notifier) => match events {
                Ok(events) => for event in events {
                    match event {
                        Event::File(path) => fresh.push(path),
                        Event::Rescan => next_scan = Instant::now(),
                    }
                },
                Err(err) => {
                    log::warn!("folder {id}: {err}; polling every {} s from now", poll.as_secs());
                    notifier = None;
                }
            },
        }
    }
}

/// The next inotify events, or never without a notifier.
async fn next_events(notifier: &mut Option<Notifier>) -> Result<Vec<Event>, NotifyError> {
    match notifier {
        Some(n) => n.next().await,
        None => std::future::pending().await,
    }
}

/// An inotify instance for folder `id`, or `None` (logged) when inotify
/// cannot serve it: it is polled then.
fn notifier(id: i64, dir: &Path, poll: Duration) -> Option<Notifier> {
    let made = Notifier::new().and_then(|mut n| n.watch(dir).map(|()| n));
    match made {
        Ok(n) => Some(n),
        Err(err) => {
            falls_back(id, &err, poll);
            None
        }
    }
}

/// The one log line of a folder that inotify cannot serve.
fn falls_back(id: i64, err: &NotifyError, poll: Duration) {
    log::warn!(
        "folder {id}: {err}; polling it every {} s instead",
        poll.as_secs()
    );
}

/// Watch every directory in `dirs` not watched yet.
fn watch_dirs(notifier: &mut Notifier, dirs: &[PathBuf]) -> Result<(), NotifyError> {
    for dir in dirs {
        if !notifier.watches(dir) {
            notifier.watch(dir)?;
        }
    }
    Ok(())
}

/// Scan the folder (when `full`) and look at `paths` again, on a blocking
/// thread. `Err` when the runtime is going away.
async fn look(
    engine: &Engine,
    row: &FolderRow,
    full: bool,
    paths: impl Iterator<Item = PathBuf>,
) -> Result<Look, tokio::task::JoinError> {
    let paths: Vec<PathBuf> = paths.collect::<HashSet<_>>().into_iter().collect();
    let (dir, recursive) = (row.spec.dir.clone(), row.spec.recursive);
    let judge = engine.judge_for(&row.owner);
    tokio::task::spawn_blocking(move || Look {
        scan: full.then(|| scan::scan(&dir, recursive, &judge)),
        keys: paths
            .into_iter()
            .map(|p| {
                let key = scan::key_of(&p);
                (p, key)
            })
            .collect(),
    })
    .await
}

impl Engine {
    /// Take the settled file `path` (seen as `key`) of folder `row` as a
    /// job of its owner: judged as their own submission ([`Engine::admit`],
    /// which vets the file for them now, so that a file swapped for a link
    /// to one they cannot read is refused), then stored with its ledger
    /// entry in one write ([`crate::queue::Queue::take_file`]).
    async fn take_settled(&self, row: &FolderRow, path: &Path, key: FileKey) -> Taken {
        let spec = &row.spec;
        log::info!("folder {}: {} settled; taking it", row.id, logged(path));
        let mut labels = spec.labels.clone();
        labels.push(folder_label(row.id));
        let request = SubmitRequest {
            inputs: vec![path.to_path_buf()],
            variations: spec.variations,
            seed: None,
            output_dir: spec.output_dir.clone(),
            priority: spec.priority,
            labels,
        };
        let job = match self.admit(&row.owner, request).await {
            Ok(job) => job,
            Err(err @ (ApiError::BadInput(_) | ApiError::Invalid(_))) => {
                return Taken::Refused(err.to_string());
            }
            Err(err) => return Taken::Later(err.to_string()),
        };
        let vetted = job.inputs[0].1.identity;
        if (vetted.dev, vetted.ino) != (key.dev, key.ino) {
            return Taken::Later("it was replaced while it was checked".into());
        }
        let (variations, seed) = (job.variations, job.seed);
        let file = TakenFile {
            folder: row.id,
            key,
            path: path.to_path_buf(),
        };
        match self
            .queue
            .take_file(file, job, self.limits_for(&row.owner))
            .await
        {
            Ok(Ok(Some(id))) => {
                log::info!("folder {}: {} is job {id}", row.id, logged(path));
                self.queued(id, &row.owner, 1, variations, seed);
                Taken::Job
            }
            Ok(Ok(None)) => Taken::Known,
            Ok(Err(full)) => Taken::Later(refusal(full).to_string()),
            Err(err) => Taken::Later(err.to_string()),
        }
    }

    /// Do the after-action of every ended job of folder `row` (see
    /// [`after`]), as its owner; each is done once, or given up with a
    /// log line.
    async fn do_after_actions(&self, row: &FolderRow) {
        let ended = match self.queue.ended_files(row.id).await {
            Ok(ended) => ended,
            Err(err) => {
                log::warn!("folder {}: cannot read its ended jobs: {err}", row.id);
                return;
            }
        };
        for file in ended {
            let (spec, judge) = (row.spec.clone(), self.judge_for(&row.owner));
            let key = file.file.key;
            let path = file.file.path.clone();
            let done =
                tokio::task::spawn_blocking(move || after::settle_input(&file, &spec, &judge))
                    .await;
            match done {
                Ok(Ok(Done::Kept)) => {}
                Ok(Ok(Done::Deleted)) => {
                    log::info!("folder {}: {} removed", row.id, logged(&path));
                }
                Ok(Ok(Done::Moved(to))) => log::info!(
                    "folder {}: {} moved to {}",
                    row.id,
                    logged(&path),
                    logged(&to)
                ),
                Ok(Err(err)) => log::warn!("folder {}: {err}", row.id),
                Err(_) => return,
            }
            if let Err(err) = self.queue.file_done(row.id, key).await {
                log::warn!("folder {}: cannot record an after-action: {err}", row.id);
            }
        }
    }
}
