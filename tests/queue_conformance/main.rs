//! The queue's conformance suite: the rules of [`Queue`], written once and
//! run on every backend. [`conformance!`] makes one module per backend
//! (`sqlite`, `postgres`) with one test per rule, so that a test's full
//! name says both (`postgres::round_robin`). Where a rule differs between
//! backends by design, the test asks the backend's [`Queue::sharing`] and
//! checks the side that [`Sharing`] documents; no test is skipped. The
//! rules live in one module per concern, named as the backends' files are
//! (`claims`, `settle`, `jobs`, `hooks`, `recovery`, `node`, `folders`, `history`), so that a
//! rule and its test sit at the same place.
//!
//! Real databases: an SQLite file in a temp directory per test; for
//! PostgreSQL one private cluster per test binary ([`shared_cluster`];
//! it needs root, as initdb runs as the postgres user) and a database of
//! its own per test. Waits poll with a deadline.

#[path = "../common/mod.rs"]
mod common;

mod claims;
mod folders;
mod history;
mod hooks;
mod jobs;
mod node;
mod recovery;
mod settle;

use common::postgres::Cluster;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use vidvar::effects::{Effects, Ranges};
use vidvar::history::RunFigures;
use vidvar::job::{
    Credentials, FileIdentity, FileState, FrameRate, JobId, JobState, Lease, Media, Quality,
    Vetted, VideoStream,
};
use vidvar::process::ProcessIdentity;
use vidvar::queue::postgres::{NodeConfig, parse_url};
use vidvar::queue::sqlite::INTERRUPTED;
use vidvar::queue::{
    Backend, Beat, FileRow, Full, JobFilter, Limits, NewJob, Outcome, Place, Queue, Sharing,
    VariationWork, Work, unix_now,
};

/// The name of the node the tests' PostgreSQL queues run as.
const NODE: &str = "a";
/// The lease time of the tests' nodes: no lease expires unless a test
/// opens a node with a short one and waits.
const LONG_LEASE: Duration = Duration::from_secs(60);
/// Longest wait for a state the test expects.
const LIMIT: Duration = Duration::from_secs(20);

/// Where a test's queue keeps its state, kept while the test runs.
enum Home {
    Sqlite(tempfile::TempDir),
    Postgres { _cluster: Arc<Cluster>, url: String },
}

/// One test's queue on one backend, opened as the daemon opens it
/// ([`vidvar::queue::open`]).
struct Bed {
    queue: Arc<dyn Queue>,
    home: Home,
}

/// The cluster the PostgreSQL tests of this binary share: started by the
/// first that needs it, stopped when the last one still using it is done.
fn shared_cluster() -> Arc<Cluster> {
    static CLUSTER: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());
    let mut slot = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(cluster) = slot.upgrade() {
        return cluster;
    }
    let cluster = Arc::new(Cluster::start());
    *slot = Arc::downgrade(&cluster);
    cluster
}

/// Node `name` of the shared queue at `url`, its claims leased for `lease`.
async fn pg_node(url: &str, name: &str, lease: Duration) -> Arc<dyn Queue> {
    let backend = Backend::Postgres {
        database: Box::new(parse_url(url).unwrap()),
        node: NodeConfig {
            name: name.into(),
            slots: 2,
            lease_timeout: lease,
        },
    };
    vidvar::queue::open(&backend).await.unwrap()
}

/// The SQLite queue in `dir`.
async fn sqlite_in(dir: &Path) -> Arc<dyn Queue> {
    let path = dir.join("q.db");
    vidvar::queue::open(&Backend::Sqlite { path })
        .await
        .unwrap()
}

impl Bed {
    async fn sqlite() -> Bed {
        let dir = tempfile::tempdir().unwrap();
        Bed {
            queue: sqlite_in(dir.path()).await,
            home: Home::Sqlite(dir),
        }
    }

    /// A queue in a new database named after the test.
    async fn postgres(test: &str) -> Bed {
        let cluster = shared_cluster();
        let url = cluster.create_database(test);
        Bed {
            queue: pg_node(&url, NODE, LONG_LEASE).await,
            home: Home::Postgres {
                _cluster: cluster,
                url,
            },
        }
    }

    /// Open the queue again, as a restarted daemon (node) does after a
    /// clean stop.
    async fn reopen(&mut self) {
        self.queue.leave().await.unwrap();
        self.queue = match &self.home {
            Home::Sqlite(dir) => sqlite_in(dir.path()).await,
            Home::Postgres { url, .. } => pg_node(url, NODE, LONG_LEASE).await,
        };
    }

    /// Another node of this shared queue (only [`Sharing::Nodes`] has
    /// any), its claims leased for `lease`.
    async fn other_node(&self, name: &str, lease: Duration) -> Arc<dyn Queue> {
        match &self.home {
            Home::Postgres { url, .. } => pg_node(url, name, lease).await,
            Home::Sqlite(_) => panic!("one daemon owns an SQLite queue: it has no other node"),
        }
    }
}

/// One test per rule and backend: `sqlite::RULE` and `postgres::RULE`,
/// each running `async fn RULE(Bed)` on its backend.
macro_rules! conformance {
    ($($concern:ident :: $rule:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $rule() {
                    super::$concern::$rule(super::Bed::sqlite().await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $rule() {
                    super::$concern::$rule(super::Bed::postgres(stringify!($rule)).await).await;
                }
            )+
        }
    };
}

conformance!(
    claims::claim_carries_what_the_work_needs,
    claims::round_robin,
    claims::priority_first,
    claims::batch_claims,
    claims::paused_jobs_wait,
    claims::fencing,
    claims::unusable_input_fails_its_file,
    claims::cancel_while_probing,
    claims::lost_claims_of_cancelled_jobs,
    settle::settle_succeeded_partial_failed,
    settle::progress,
    settle::outputs_in_order,
    settle::requeue,
    jobs::submit_limits,
    jobs::cancel,
    jobs::retry,
    jobs::prune,
    jobs::prune_keeps_owed_hooks,
    jobs::labels_and_paging,
    hooks::hook_rows,
    hooks::lost_node_hooks,
    recovery::recovery_after_a_crash,
    recovery::clean_stop,
    node::daemon_pause_survives_restart,
    node::running_elsewhere,
    folders::folders_are_their_owners,
    folders::ledger_takes_a_file_once,
    folders::ended_files_are_owed_their_action,
    folders::one_node_scans_a_folder,
    history::runs_and_counters_outlive_their_jobs,
    history::runs_by_filter_and_age,
    history::census,
    history::takeovers,
    history::probe_cost_is_shared_by_the_runs,
);

// ---- helpers for the rules, which live in one module per concern, named
// as the backends' files are (claims, settle, jobs, hooks, recovery, node).

fn effects(n: u32) -> Vec<Effects> {
    vidvar::effects::generate(&Ranges::default(), 1, 0, n).unwrap()
}

fn vetted(path: &str, ino: u64) -> Vetted {
    Vetted {
        real: path.into(),
        identity: FileIdentity { dev: 1, ino },
    }
}

fn owner(uid: u32) -> Credentials {
    Credentials {
        uid,
        gid: uid,
        groups: vec![uid, 27],
    }
}

/// A job of `inputs` inputs (`/in/0.mp4`, ...) of `variations` each.
fn new_job(inputs: usize, variations: u32, uid: u32) -> NewJob {
    NewJob {
        seed: 1,
        output_dir: (PathBuf::from("/out"), vetted("/out", 1)),
        variations,
        inputs: (0..inputs)
            .map(|i| {
                let path = format!("/in/{i}.mp4");
                (
                    PathBuf::from(&path),
                    vetted(&path, 2 + i as u64),
                    effects(variations),
                )
            })
            .collect(),
        created_at: 1_700_000_000,
        owner: owner(uid),
        priority: 0,
        labels: Vec::new(),
    }
}

const NO_LIMITS: Limits = Limits {
    max_jobs: u64::MAX,
    max_owner_variations: None,
};

async fn submit_job(q: &dyn Queue, job: NewJob) -> JobId {
    q.submit(job, NO_LIMITS).await.unwrap().unwrap()
}

async fn submit(q: &dyn Queue, inputs: usize, variations: u32, uid: u32) -> JobId {
    submit_job(q, new_job(inputs, variations, uid)).await
}

/// What a claim gave: its job and `probe PATH`, or `encode PATH #INDEX...`
/// naming each variation's input and index (`encode /in/0.mp4 #1 #2`, or
/// `encode /in/0.mp4 #3 /in/1.mp4 #1` if a batch spanned two files).
fn what(work: &Work) -> (JobId, String) {
    match work {
        Work::Probe { job_id, path, .. } => (*job_id, format!("probe {}", path.display())),
        Work::Encode(batch) => {
            let mut said = String::from("encode");
            let mut input = None;
            for e in batch {
                if input != Some(&e.input) {
                    said += &format!(" {}", e.input.display());
                    input = Some(&e.input);
                }
                said += &format!(" #{}", e.index);
            }
            (batch[0].job_id, said)
        }
    }
}

/// What the turn after `after` claims with `slots` free slots.
async fn claim(q: &dyn Queue, after: JobId, slots: usize) -> Option<(JobId, String)> {
    q.claim(after, slots).await.unwrap().as_ref().map(what)
}

/// The one variation a claim of one free slot gave.
fn single(work: Option<Work>) -> VariationWork {
    match work {
        Some(Work::Encode(batch)) if batch.len() == 1 => batch.into_iter().next().unwrap(),
        other => panic!("one variation, not {:?}", other.as_ref().map(what)),
    }
}

fn media() -> Media {
    Media {
        duration_us: Some(1_000_000),
        video_us: Some(990_000),
        frame_rate: FrameRate::parse("30000/1001"),
        interlaced: true,
        stream: Some(VideoStream {
            index: 2,
            picture: Some((1280, 720)),
        }),
    }
}

/// Claim and finish the probe of the next input, then claim every variation
/// of it, two slots at a time; returns their claims, by index.
async fn start_next_file(q: &dyn Queue) -> Vec<VariationWork> {
    let Some(Work::Probe { lease, .. }) = q.claim(0, 2).await.unwrap() else {
        panic!("a probe comes first");
    };
    assert!(q.finish_probe(lease, media(), 0.).await.unwrap());
    let mut claimed: Vec<VariationWork> = Vec::new();
    while let Some(work) = q.claim(0, 2).await.unwrap() {
        let Work::Encode(batch) = work else {
            panic!("the probed input's variations come before the next probe");
        };
        assert!(
            batch.iter().all(|w| w.file_id == lease.id),
            "of the probed input"
        );
        claimed.extend(batch);
        if claimed.len() == claimed[0].variations as usize {
            break;
        }
    }
    claimed
}

async fn leases_of_next_file(q: &dyn Queue) -> Vec<Lease> {
    start_next_file(q).await.iter().map(|w| w.lease).collect()
}

fn succeeded(lease: Lease) -> Outcome {
    Outcome::Succeeded {
        output: format!("/out/{}.mp4", lease.id).into(),
        size: 1,
        quality: None,
    }
}

async fn ok(q: &dyn Queue, lease: Lease) -> Option<JobState> {
    q.finish_variation(lease, succeeded(lease), RunFigures::default())
        .await
        .unwrap()
}

async fn failed(q: &dyn Queue, lease: Lease, error: &str) -> Option<JobState> {
    let outcome = Outcome::Failed {
        error: error.into(),
    };
    q.finish_variation(lease, outcome, RunFigures::default())
        .await
        .unwrap()
}

async fn state(q: &dyn Queue, job: JobId) -> JobState {
    q.job(job).await.unwrap().expect("the job exists").state
}

async fn file_states(q: &dyn Queue, job: JobId) -> Vec<FileState> {
    let files = q.files(job).await.unwrap();
    files.iter().map(|f| f.state).collect()
}

fn filter(f: impl FnOnce(&mut JobFilter)) -> JobFilter {
    let mut filter = JobFilter {
        limit: 100,
        ..JobFilter::default()
    };
    f(&mut filter);
    filter
}

async fn ids(q: &dyn Queue, filter: JobFilter) -> Vec<JobId> {
    q.jobs(filter).await.unwrap().iter().map(|j| j.id).collect()
}

/// Claim on `q` until it gives work (a lease of another node expired), or
/// panic after [`LIMIT`].
async fn claim_when_free(q: &dyn Queue) -> Work {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(work) = q.claim(0, 1).await.unwrap() {
            return work;
        }
        assert!(Instant::now() < deadline, "no lease expired in {LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// This test's own process: one that runs on this machine, since its
/// boot.
fn this_process() -> ProcessIdentity {
    ProcessIdentity::of(std::process::id() as i32).unwrap()
}

/// A process of pid `pid` on a machine (boot) other than this one.
fn process(pid: i32) -> ProcessIdentity {
    ProcessIdentity {
        pid,
        start_time: 7,
        boot_id: "boot".into(),
    }
}
