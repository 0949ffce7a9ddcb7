//! The job engine: what runs next, the live state of what runs now, and
//! the answers to clients' requests about jobs. It never sees a socket
//! (that is [`crate::server`]) nor a database (that is behind
//! [`crate::queue::Queue`]).
//!
//! - [`requests`]: one method per request (submit, status, list, outputs,
//!   cancel, retry, prune, ping), with the access rules and the one mapping
//!   from internal errors to the wire ([`requests::ApiError`]).
//! - [`live`]: the live state of running work and the progress views
//!   built on it.
//! - [`control`]: pause, resume and priority.
//! - [`hooks`]: the completion hook run when a job becomes final.
//! - [`folders`]: the requests about watch folders; [`watch`] watches
//!   them and takes each settled file as a job.
//! - [`dispatch`]: the slots, the claim loop, the heartbeat and the stop.
//! - [`worker`]: one slot's work, through a narrow [`worker::Context`];
//!   [`supervisor`] owns the FFmpeg processes; [`admission`] checks
//!   submissions; [`failure`] says why work failed.

pub mod admission;
pub mod control;
pub mod dispatch;
pub mod failure;
pub mod folders;
pub mod hooks;
pub mod live;
pub mod meter;
pub mod observe;
pub mod pipeline;
pub mod requests;
pub mod supervisor;
pub mod watch;
pub mod worker;

use crate::access::Judge;
use crate::config::{Config, Settings, Tunables};
use crate::job::Credentials;
use crate::queue::Queue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use supervisor::Progress;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use requests::ApiError;

use live::{Live, Running};

/// How a running variation is told to stop, and why: cancelled (its job
/// was cancelled, its claim lost, the daemon stops) or to be queued again
/// (`pause --stop`).
#[derive(Clone, Default)]
pub struct Stop {
    token: CancellationToken,
    requeue: Arc<AtomicBool>,
}

impl Stop {
    /// A stop that also fires when `parent` does.
    pub(crate) fn child_of(parent: &CancellationToken) -> Stop {
        Stop {
            token: parent.child_token(),
            requeue: Arc::default(),
        }
    }

    /// Fires when the variation must stop.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Stop it for good, also when a [`Stop::requeue`] came first (a
    /// cancel after `pause --stop`).
    pub(crate) fn cancel(&self) {
        self.requeue.store(false, Ordering::SeqCst);
        self.token.cancel();
    }

    /// Stop it, to be claimed again later, unless it was already stopped
    /// for good or by the shutdown (a `pause --stop` after a cancel).
    pub(crate) fn requeue(&self) {
        if !self.token.is_cancelled() {
            self.requeue.store(true, Ordering::SeqCst);
            self.token.cancel();
        }
    }

    /// Whether [`Stop::requeue`] stopped it.
    pub fn requeued(&self) -> bool {
        self.requeue.load(Ordering::SeqCst)
    }
}

/// The job engine shared by the server and the worker tasks.
pub struct Engine {
    /// What it runs with; the tunables are not part of it.
    pub(crate) settings: Settings,
    /// Settings SIGHUP may change: the one copy, read by
    /// [`Engine::tunables`].
    tunables: Mutex<Tunables>,
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) live: Mutex<Live>,
    /// Woken when work may be startable: a submit, a slot freed.
    pub(crate) wake: Notify,
    /// Woken when a running variation ends (cancel waits on it).
    pub(crate) ended: Notify,
    /// Woken when a watch folder was added, removed, paused or resumed.
    pub(crate) folders_changed: Notify,
    /// Bumped on every visible change, for `watch` streams.
    pub(crate) changes: tokio::sync::watch::Sender<u64>,
    /// Fires at shutdown: no new work, running work is stopped.
    pub(crate) stopping: CancellationToken,
    /// `vidvarctl pause`: no new work is claimed. Stored in the queue;
    /// read from it when [`Engine::run`] starts.
    pub(crate) paused: AtomicBool,
    pub(crate) tasks: TaskTracker,
    pub(crate) started: Instant,
}

impl Engine {
    /// An engine on `queue` with the settings of `config`; its tunables are
    /// the starting point of those [`Engine::apply_tunables`] replaces.
    pub fn new(config: Config, queue: Arc<dyn Queue>) -> Arc<Engine> {
        Arc::new(Engine {
            tunables: Mutex::new(config.tunables),
            settings: config.engine,
            queue,
            live: Mutex::new(Live::default()),
            wake: Notify::new(),
            ended: Notify::new(),
            folders_changed: Notify::new(),
            changes: tokio::sync::watch::channel(0).0,
            stopping: CancellationToken::new(),
            paused: AtomicBool::new(false),
            tasks: TaskTracker::new(),
            started: Instant::now(),
        })
    }

    /// Until shutdown: whenever the queue hears of a change made by any
    /// node (see [`Queue::changes`]), wake the dispatch loop and `watch`
    /// streams, and, while this node runs work, beat at once, so that a
    /// cancel made on another node stops its FFmpeg without waiting for the
    /// next beat. Returns at once for a queue of one machine, whose changes
    /// all come through this engine.
    pub async fn hear_queue_changes(self: Arc<Self>) {
        let Some(mut changes) = self.queue.changes() else {
            return;
        };
        loop {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                () = self.stopping.cancelled() => return,
            }
            self.wake.notify_one();
            self.notify_change();
            if !self.live().running.is_empty() {
                self.heartbeat().await;
            }
        }
    }

    /// The settings in force now.
    pub fn tunables(&self) -> Tunables {
        *self.tunables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Apply new settings (SIGHUP): running work goes on; a larger
    /// `max_parallel` starts queued work at once, a smaller one lets running
    /// encodes finish.
    pub fn apply_tunables(&self, tunables: Tunables) {
        *self.tunables.lock().unwrap_or_else(|e| e.into_inner()) = tunables;
        log::set_max_level(tunables.log_level);
        let settings: Vec<String> = tunables
            .settings()
            .iter()
            .map(|(key, value)| format!("{key} {value}"))
            .collect();
        log::info!("settings reloaded: {}", settings.join(", "));
        self.wake.notify_one();
    }

    pub(crate) fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tell `watch` streams that something changed.
    pub(crate) fn notify_change(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every change to any job.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// This daemon's node name in a shared queue; `None` on one machine.
    pub fn node_name(&self) -> Option<&str> {
        self.settings.shared.as_ref().map(|s| s.node.name.as_str())
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_cancelled()
    }

    /// Whether `peer` administers this daemon: root or the daemon's own
    /// user. Administrators see every job and skip the access checks.
    pub(crate) fn is_admin(&self, peer: &Credentials) -> bool {
        peer.is_root() || peer.uid == nix::unistd::geteuid().as_raw()
    }

    /// Whose permissions decide what a job of `owner` may read and write:
    /// the owner's own, judged by the daemon, unless the owner administers
    /// it (root or the daemon's user), which leaves it to the kernel. Any
    /// other user is judged, whatever the mode: a socket shared with a
    /// group must not lend the daemon's access to its members.
    pub(crate) fn judge_for(&self, owner: &Credentials) -> Judge {
        if self.is_admin(owner) {
            Judge::Daemon
        } else {
            Judge::User(owner.clone())
        }
    }

    /// Whether `peer` may see and act on a job owned by `owner_uid`.
    pub(crate) fn may_access(&self, peer: &Credentials, owner_uid: u32) -> bool {
        self.is_admin(peer) || peer.uid == owner_uid
    }
}

impl worker::Context for Engine {
    fn queue(&self) -> &dyn Queue {
        &*self.queue
    }
    fn settings(&self) -> &Settings {
        &self.settings
    }
    fn tunables(&self) -> Tunables {
        Engine::tunables(self)
    }
    fn judge_for(&self, owner: &Credentials) -> Judge {
        Engine::judge_for(self, owner)
    }
    fn report_progress(&self, variation: i64, progress: Progress) {
        Engine::report_progress(self, variation, progress)
    }
    fn stopping(&self) -> &CancellationToken {
        &self.stopping
    }
}
