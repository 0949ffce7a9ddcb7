//! The queue's conformance suite: the rules of [`Queue`], written once and
//! run on every backend. [`conformance!`] makes one module per backend
//! (`sqlite`, `postgres`) with one test per rule, so that a test's full
//! name says both (`postgres::round_robin`). Where a rule differs between
//! backends by design, the test asks the backend's [`Queue::sharing`] and
//! checks the side that [`Sharing`] documents; no test is skipped.
//!
//! Real databases: an SQLite file in a temp directory per test; for
//! PostgreSQL one private cluster per test binary ([`shared_cluster`];
//! it needs root, as initdb runs as the postgres user) and a database of
//! its own per test. Waits poll with a deadline.

mod common;

use common::postgres::Cluster;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use vidvar::effects::{Effects, Ranges};
use vidvar::job::{
    Credentials, FileIdentity, FileState, FrameRate, JobId, JobState, Lease, Media, Quality, Vetted,
};
use vidvar::process::ProcessIdentity;
use vidvar::queue::postgres::{NodeConfig, parse_url};
use vidvar::queue::sqlite::INTERRUPTED;
use vidvar::queue::{
    Backend, Beat, Full, JobFilter, Limits, NewJob, Outcome, Place, Queue, Sharing, VariationWork,
    Work, unix_now,
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
    ($($rule:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $rule() {
                    super::$rule(super::Bed::sqlite().await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $rule() {
                    super::$rule(super::Bed::postgres(stringify!($rule)).await).await;
                }
            )+
        }
    };
}

conformance!(
    submit_limits,
    claim_carries_what_the_work_needs,
    round_robin,
    priority_first,
    paused_jobs_wait,
    daemon_pause_survives_restart,
    fencing,
    settle_succeeded_partial_failed,
    unusable_input_fails_its_file,
    progress,
    outputs_in_order,
    cancel,
    retry,
    requeue,
    prune,
    prune_keeps_owed_hooks,
    labels_and_paging,
    hook_rows,
    recovery_after_a_crash,
    clean_stop,
);

// ---- helpers -------------------------------------------------------------

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

/// What a claim gave: its job and `probe PATH` or `encode PATH #INDEX`.
fn what(work: &Work) -> (JobId, String) {
    match work {
        Work::Probe { job_id, path, .. } => (*job_id, format!("probe {}", path.display())),
        Work::Encode(e) => (
            e.job_id,
            format!("encode {} #{}", e.input.display(), e.index),
        ),
    }
}

async fn claim(q: &dyn Queue, after: JobId) -> Option<(JobId, String)> {
    q.claim(after).await.unwrap().as_ref().map(what)
}

fn media() -> Media {
    Media {
        duration_us: Some(1_000_000),
        video_us: Some(990_000),
        frame_rate: FrameRate::parse("30000/1001"),
        interlaced: true,
    }
}

/// Claim and finish the probe of the next input, then claim every variation
/// of it; returns their claims, by index.
async fn start_next_file(q: &dyn Queue) -> Vec<VariationWork> {
    let Some(Work::Probe { lease, .. }) = q.claim(0).await.unwrap() else {
        panic!("a probe comes first");
    };
    assert!(q.finish_probe(lease, media()).await.unwrap());
    let mut claimed = Vec::new();
    while let Some(work) = q.claim(0).await.unwrap() {
        let Work::Encode(work) = work else {
            panic!("the probed input's variations come before the next probe");
        };
        assert_eq!(work.file_id, lease.id, "variations of the probed input");
        claimed.push(work);
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
    q.finish_variation(lease, succeeded(lease)).await.unwrap()
}

async fn failed(q: &dyn Queue, lease: Lease, error: &str) -> Option<JobState> {
    let outcome = Outcome::Failed {
        error: error.into(),
    };
    q.finish_variation(lease, outcome).await.unwrap()
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
        if let Some(work) = q.claim(0).await.unwrap() {
            return work;
        }
        assert!(Instant::now() < deadline, "no lease expired in {LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn process(pid: i32) -> ProcessIdentity {
    ProcessIdentity {
        pid,
        start_time: 7,
        boot_id: "boot".into(),
    }
}

// ---- rules ---------------------------------------------------------------

/// A job is inserted only within the limits, counted in the same step:
/// jobs queued or running, and the owner's variations queued or running.
async fn submit_limits(bed: Bed) {
    let q = &*bed.queue;
    let first = submit(q, 1, 3, 1000).await;
    let limits = |jobs, owner| Limits {
        max_jobs: jobs,
        max_owner_variations: owner,
    };
    let full = q.submit(new_job(1, 2, 1000), limits(1, None)).await;
    assert_eq!(full.unwrap(), Err(Full::Jobs { pending: 1 }));
    let full = q.submit(new_job(1, 2, 1000), limits(9, Some(4))).await;
    let over = Full::Owner {
        pending: 3,
        asked: 2,
    };
    assert_eq!(full.unwrap(), Err(over));
    // Another owner, and the same one within its limit, pass.
    let other = q.submit(new_job(1, 2, 1001), limits(9, Some(4))).await;
    other.unwrap().unwrap();
    let id = q.submit(new_job(1, 2, 1000), limits(9, Some(5))).await;
    assert!(id.unwrap().unwrap() > first);
    assert_eq!(q.queue_depth().await.unwrap(), 3);
    // A final job counts no more.
    q.cancel(first).await.unwrap();
    assert_eq!(q.queue_depth().await.unwrap(), 2);
    let id = q.submit(new_job(1, 2, 1000), limits(3, Some(4))).await;
    id.unwrap().unwrap();
}

/// A probe claim names the input as given and as vetted, and the owner; an
/// encode claim carries the probe's findings, the variation's effects, the
/// output directory and its temporary file's recorded path.
async fn claim_carries_what_the_work_needs(bed: Bed) {
    let q = &*bed.queue;
    let job = new_job(1, 2, 1000);
    let effects = job.inputs[0].2.clone();
    let a = submit_job(q, job).await;
    let Some(Work::Probe {
        job_id,
        lease,
        path,
        input,
        owner: who,
    }) = q.claim(0).await.unwrap()
    else {
        panic!("a probe comes first");
    };
    assert_eq!((job_id, path.as_path()), (a, Path::new("/in/0.mp4")));
    let place = |path: &str, ino| Place {
        path: path.into(),
        identity: Some(FileIdentity { dev: 1, ino }),
    };
    assert_eq!(input, place("/in/0.mp4", 2));
    assert_eq!(who, owner(1000));
    assert_eq!(file_states(q, a).await, [FileState::Running]);
    assert_eq!(state(q, a).await, JobState::Running);
    assert!(q.finish_probe(lease, media()).await.unwrap());
    let Some(Work::Encode(work)) = q.claim(0).await.unwrap() else {
        panic!("then its first variation");
    };
    let file = &q.files(a).await.unwrap()[0];
    assert_eq!(file.duration_us, Some(1_000_000));
    assert_eq!((work.job_id, work.file_id), (a, file.id));
    assert_eq!((work.index, work.variations), (1, 2));
    assert_eq!(work.input, Path::new("/in/0.mp4"));
    assert_eq!(work.input_place, place("/in/0.mp4", 2));
    assert_eq!(work.output_dir, place("/out", 1));
    assert_eq!(work.media, media());
    assert_eq!(work.effects, effects[0]);
    assert_eq!(work.owner, owner(1000));
    assert_eq!(work.previous, None);
    let interrupted = q.interrupted().await.unwrap();
    let temp = vidvar::naming::temp_name(&work.input, 1, work.lease);
    assert_eq!(interrupted.len(), 1);
    assert_eq!(interrupted[0].lease, work.lease);
    assert_eq!(interrupted[0].temp_path, Some(Path::new("/out").join(temp)));
}

/// Among jobs of one priority, each claim goes to the next job after the
/// one served last, wrapping around to the oldest; within a job, inputs
/// and variations go in order (README, "Scheduling").
async fn round_robin(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 3, 1, 0).await;
    let b = submit(q, 1, 1, 0).await;
    let c = submit(q, 1, 1, 0).await;
    let probe = |job, i| Some((job, format!("probe /in/{i}.mp4")));
    let Some(first) = q.claim(0).await.unwrap() else {
        panic!("a probe");
    };
    assert_eq!(Some(what(&first)), probe(a, 0));
    assert_eq!(claim(q, a).await, probe(b, 0));
    assert_eq!(claim(q, b).await, probe(c, 0));
    assert_eq!(claim(q, c).await, probe(a, 1), "wraps around to the oldest");
    // a's first input is probed: its variation comes before its next probe.
    let Work::Probe { lease, .. } = first else {
        unreachable!()
    };
    assert!(q.finish_probe(lease, media()).await.unwrap());
    assert_eq!(
        claim(q, c).await,
        Some((a, "encode /in/0.mp4 #1".into())),
        "inputs in order within a job"
    );
    // b and c have nothing claimable: a's turn again.
    assert_eq!(claim(q, a).await, probe(a, 2));
    assert_eq!(claim(q, a).await, None);
}

/// Work of the highest priority goes first; jobs of one priority take
/// turns; a lower one waits until they have nothing claimable.
async fn priority_first(bed: Bed) {
    let q = &*bed.queue;
    let (low, high_a, high_b) = (
        submit(q, 2, 1, 0).await,
        submit(q, 2, 1, 0).await,
        submit(q, 2, 1, 0).await,
    );
    q.set_priority(low, -1).await.unwrap();
    q.set_priority(high_a, 5).await.unwrap();
    let set = q.set_priority(high_b, 5).await.unwrap();
    assert_eq!(set, Some(JobState::Queued));
    assert_eq!(q.set_priority(999, 5).await.unwrap(), None);
    assert_eq!(q.job(high_a).await.unwrap().unwrap().priority, 5);
    let job = |w: Option<(JobId, String)>| w.map(|(job, _)| job);
    assert_eq!(job(claim(q, 0).await), Some(high_a));
    assert_eq!(job(claim(q, high_a).await), Some(high_b));
    assert_eq!(job(claim(q, high_b).await), Some(high_a));
    assert_eq!(job(claim(q, high_a).await), Some(high_b));
    assert_eq!(job(claim(q, high_b).await), Some(low), "the top is done");
    // A job submitted with a higher priority goes first at once.
    let urgent = submit_job(
        q,
        NewJob {
            priority: 9,
            ..new_job(1, 1, 0)
        },
    )
    .await;
    assert_eq!(job(claim(q, low).await), Some(urgent));
}

/// None of a paused job's work is claimed, probes nor variations, until
/// it is resumed.
async fn paused_jobs_wait(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 1, 1, 0).await;
    let b = submit(q, 1, 1, 0).await;
    assert_eq!(
        q.set_job_paused(a, true).await.unwrap(),
        Some(JobState::Queued)
    );
    assert_eq!(q.set_job_paused(999, true).await.unwrap(), None);
    assert!(q.job(a).await.unwrap().unwrap().paused);
    let Some(Work::Probe { job_id, lease, .. }) = q.claim(0).await.unwrap() else {
        panic!("b's probe");
    };
    assert_eq!(job_id, b);
    // Paused once probed: its queued variation waits too.
    q.set_job_paused(b, true).await.unwrap();
    assert!(q.finish_probe(lease, media()).await.unwrap());
    assert_eq!(claim(q, 0).await, None, "all paused");
    q.set_job_paused(b, false).await.unwrap();
    assert_eq!(claim(q, 0).await, Some((b, "encode /in/0.mp4 #1".into())));
    q.set_job_paused(a, false).await.unwrap();
    assert!(!q.job(a).await.unwrap().unwrap().paused);
    assert_eq!(claim(q, b).await, Some((a, "probe /in/0.mp4".into())));
}

/// The daemon's (node's) pause is stored in the queue and survives a
/// restart.
async fn daemon_pause_survives_restart(mut bed: Bed) {
    assert!(!bed.queue.paused().await.unwrap());
    bed.queue.set_paused(true).await.unwrap();
    assert!(bed.queue.paused().await.unwrap());
    bed.reopen().await;
    assert!(bed.queue.paused().await.unwrap(), "still paused");
    bed.queue.set_paused(false).await.unwrap();
    bed.reopen().await;
    assert!(!bed.queue.paused().await.unwrap());
}

/// Every write about claimed work is fenced by its lease. Where claims
/// expire ([`Sharing::Nodes`]), a node that lost its claim to another
/// (its lease expired and another node claimed the work with the next
/// attempt) can record nothing: not a probe, not a temporary file, not an
/// outcome, and its heartbeat tells it to stop; the new claim gets what
/// the lost one left. Where one daemon owns the queue, a claim is never
/// lost: it stays held however long the work takes.
async fn fencing(bed: Bed) {
    let q = &*bed.queue;
    let job = submit(q, 1, 1, 0).await;
    match q.sharing() {
        Sharing::OneDaemon => {
            let Some(Work::Probe { lease, .. }) = q.claim(0).await.unwrap() else {
                panic!("a probe");
            };
            assert_eq!(lease.attempt, 1);
            assert!(q.finish_probe(lease, media()).await.unwrap());
            let Some(Work::Encode(work)) = q.claim(0).await.unwrap() else {
                panic!("a variation");
            };
            let identity = FileIdentity { dev: 1, ino: 50 };
            q.set_temp(work.lease, identity).await.unwrap();
            let beat = Beat {
                variations: vec![work.lease],
                ..Beat::default()
            };
            assert_eq!(q.heartbeat(beat).await.unwrap(), []);
            assert!(q.confirm(work.lease).await.unwrap());
            assert_eq!(ok(q, work.lease).await, Some(JobState::Succeeded));
        }
        Sharing::Nodes => {
            let short = Duration::from_secs(1);
            let lost = bed.other_node("lost", short).await;
            let taker = bed.other_node("taker", short).await;
            let Some(Work::Probe { lease: old, .. }) = lost.claim(0).await.unwrap() else {
                panic!("a probe");
            };
            let Work::Probe { lease: new, .. } = claim_when_free(&*taker).await else {
                panic!("the same probe, taken over");
            };
            assert_eq!((new.id, new.attempt), (old.id, old.attempt + 1));
            assert!(!lost.finish_probe(old, media()).await.unwrap());
            assert_eq!(lost.fail_file(old, "x".into()).await.unwrap(), None);
            assert!(taker.finish_probe(new, media()).await.unwrap());

            let Some(Work::Encode(old)) = lost.claim(0).await.unwrap() else {
                panic!("a variation");
            };
            let identity = FileIdentity { dev: 1, ino: 50 };
            lost.set_temp(old.lease, identity).await.unwrap();
            lost.set_process(old.lease, process(4242)).await.unwrap();
            let Work::Encode(new) = claim_when_free(&*taker).await else {
                panic!("the same variation, taken over");
            };
            assert_eq!(new.lease.id, old.lease.id);
            assert_eq!(new.lease.attempt, old.lease.attempt + 1);
            let previous = new.previous.expect("what the lost claim left");
            assert_eq!(previous.lease, old.lease);
            assert_eq!(previous.temp_identity, Some(identity));
            assert_eq!(previous.process, Some(process(4242)));
            let old_temp = vidvar::naming::temp_name(&old.input, 1, old.lease);
            assert_eq!(previous.temp_path, Some(Path::new("/out").join(old_temp)));

            // The lost claim writes nothing more.
            assert!(!lost.confirm(old.lease).await.unwrap());
            let beat = Beat {
                variations: vec![old.lease],
                ..Beat::default()
            };
            assert_eq!(lost.heartbeat(beat).await.unwrap(), [old.lease]);
            lost.set_temp(old.lease, identity).await.unwrap();
            assert!(
                !taker.confirm(new.lease).await.unwrap(),
                "no temporary file recorded under the new claim"
            );
            assert_eq!(ok(&*lost, old.lease).await, None);
            taker.set_temp(new.lease, identity).await.unwrap();
            assert!(taker.confirm(new.lease).await.unwrap());
            assert_eq!(ok(&*taker, new.lease).await, Some(JobState::Succeeded));
            let outputs = q.outputs(job).await.unwrap();
            assert_eq!(outputs.len(), 1);
            assert_eq!(outputs[0].node.as_deref(), Some("taker"));
            // The lost claim's FFmpeg is its own node's to judge, once.
            assert_eq!(lost.orphaned_processes().await.unwrap(), [process(4242)]);
            assert_eq!(lost.orphaned_processes().await.unwrap(), []);
        }
    }
    assert_eq!(state(q, job).await, JobState::Succeeded);
}

/// A file settles once none of its variations is open (succeeded if all
/// did, failed if any failed, with the first failure's error); a job once
/// none of its files is (succeeded, partial or failed).
async fn settle_succeeded_partial_failed(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 2, 2, 0).await;
    for lease in leases_of_next_file(q).await {
        assert_eq!(ok(q, lease).await, Some(JobState::Running));
    }
    let second = leases_of_next_file(q).await;
    assert_eq!(failed(q, second[0], "boom").await, Some(JobState::Running));
    assert_eq!(ok(q, second[1]).await, Some(JobState::Partial));
    let files = q.files(a).await.unwrap();
    assert_eq!(
        files.iter().map(|f| f.state).collect::<Vec<_>>(),
        [FileState::Succeeded, FileState::Failed]
    );
    assert_eq!(files[1].error.as_deref(), Some("boom"));
    assert_eq!(files[1].done_variations, 1);
    assert_eq!(state(q, a).await, JobState::Partial);

    let b = submit(q, 1, 1, 0).await;
    let lease = leases_of_next_file(q).await[0];
    assert_eq!(failed(q, lease, "bad").await, Some(JobState::Failed));
    let c = submit(q, 1, 2, 0).await;
    let leases = leases_of_next_file(q).await;
    assert_eq!(ok(q, leases[1]).await, Some(JobState::Running));
    assert_eq!(ok(q, leases[0]).await, Some(JobState::Succeeded));
    assert_eq!(state(q, b).await, JobState::Failed);
    assert_eq!(state(q, c).await, JobState::Succeeded);
}

/// An input that cannot be used fails with its queued variations; the job
/// goes on with its other inputs.
async fn unusable_input_fails_its_file(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 2, 2, 0).await;
    let Some(Work::Probe { lease, .. }) = q.claim(0).await.unwrap() else {
        panic!("a probe");
    };
    let failed = q.fail_file(lease, "not a video".into()).await.unwrap();
    assert_eq!(failed, Some(JobState::Running));
    let file = &q.files(a).await.unwrap()[0];
    assert_eq!(file.state, FileState::Failed);
    assert_eq!(file.error.as_deref(), Some("not a video"));
    for lease in leases_of_next_file(q).await {
        ok(q, lease).await;
    }
    assert_eq!(state(q, a).await, JobState::Partial);
    let b = submit(q, 1, 1, 0).await;
    let Some(Work::Probe { lease, .. }) = q.claim(0).await.unwrap() else {
        panic!("a probe");
    };
    let failed = q.fail_file(lease, "gone".into()).await.unwrap();
    assert_eq!(failed, Some(JobState::Failed));
    assert_eq!(state(q, b).await, JobState::Failed);
}

/// A file's progress counts its verified variations whole and its running
/// ones by their reported percents, never goes back, and a job's is the
/// mean of its files'.
async fn progress(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 2, 4, 0).await;
    let leases = leases_of_next_file(q).await;
    let file = q.files(a).await.unwrap()[0].id;
    let beat = |leases: &[Lease], running: f64| Beat {
        variations: leases.to_vec(),
        probes: Vec::new(),
        progress: vec![(file, running)],
        slots: 2,
    };
    let progress = async |expected_file: f64, expected_job: f64| {
        let files = q.files(a).await.unwrap();
        assert_eq!((files[0].progress, files[1].progress), (expected_file, 0.0));
        assert_eq!(q.job(a).await.unwrap().unwrap().progress, expected_job);
    };
    progress(0.0, 0.0).await;
    assert_eq!(q.heartbeat(beat(&leases, 100.0)).await.unwrap(), []);
    progress(25.0, 12.5).await;
    ok(q, leases[0]).await;
    progress(25.0, 12.5).await;
    q.heartbeat(beat(&leases[1..], 150.0)).await.unwrap();
    progress(62.5, 31.25).await;
    q.heartbeat(beat(&leases[1..], 10.0)).await.unwrap();
    progress(62.5, 31.25).await;
    for &lease in &leases[1..] {
        ok(q, lease).await;
    }
    progress(100.0, 50.0).await;
}

/// Outputs are listed by input, then variation index, with the effects
/// they were made with, their size, the quality check's figures and (on a
/// shared queue) the node that made them.
async fn outputs_in_order(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 2, 2, 0).await;
    let mut made = Vec::new();
    for _ in 0..2 {
        let mut works = start_next_file(q).await;
        works.reverse();
        for work in works {
            let quality = (work.index == 2).then_some(Quality {
                samples: 5,
                ssim_mean: 0.98,
                ssim_min: 0.95,
                luma_diff: 1.5,
            });
            let output = PathBuf::from(format!("/out/{}_{}.mp4", work.file_id, work.index));
            let outcome = Outcome::Succeeded {
                output: output.clone(),
                size: 100 + work.index as u64,
                quality,
            };
            q.finish_variation(work.lease, outcome).await.unwrap();
            made.push((work.input, work.index, output, work.effects, quality));
        }
    }
    made.sort_by(|x, y| (&x.0, x.1).cmp(&(&y.0, y.1)));
    let outputs = q.outputs(a).await.unwrap();
    let listed: Vec<_> = outputs
        .iter()
        .map(|o| {
            (
                o.input.clone(),
                o.index,
                o.path.clone(),
                o.effects,
                o.quality,
            )
        })
        .collect();
    assert_eq!(listed, made);
    assert_eq!(outputs[1].size, 102);
    let node = match q.sharing() {
        Sharing::OneDaemon => None,
        Sharing::Nodes => Some(NODE.to_string()),
    };
    assert!(outputs.iter().all(|o| o.node == node));
    let files = q.files(a).await.unwrap();
    assert!(
        files
            .iter()
            .all(|f| f.nodes == Vec::from_iter(node.clone()))
    );
    assert_eq!(state(q, a).await, JobState::Succeeded);
}

/// A cancel ends a job at once and its queued work with it; running
/// variations go on until their outcome is recorded (on a shared queue the
/// heartbeat tells their node to stop them). A final job stays as it is.
async fn cancel(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 1, 2, 0).await;
    let leases = leases_of_next_file(q).await;
    ok(q, leases[0]).await;
    let b = submit(q, 1, 1, 0).await;
    assert_eq!(q.cancel(a).await.unwrap(), Some(JobState::Running));
    assert_eq!(state(q, a).await, JobState::Cancelled);
    assert_eq!(file_states(q, a).await, [FileState::Running]);
    let beat = Beat {
        variations: vec![leases[1]],
        ..Beat::default()
    };
    let stop = q.heartbeat(beat).await.unwrap();
    match q.sharing() {
        Sharing::OneDaemon => assert_eq!(stop, []),
        Sharing::Nodes => assert_eq!(stop, [leases[1]]),
    }
    let ended = q.finish_variation(leases[1], Outcome::Cancelled).await;
    assert_eq!(ended.unwrap(), Some(JobState::Cancelled));
    assert_eq!(file_states(q, a).await, [FileState::Cancelled]);
    assert_eq!(
        q.outputs(a).await.unwrap().len(),
        1,
        "verified outputs stay"
    );
    assert_eq!(q.cancel(a).await.unwrap(), Some(JobState::Cancelled));
    assert_eq!(q.cancel(999).await.unwrap(), None);

    assert_eq!(q.cancel(b).await.unwrap(), Some(JobState::Queued));
    assert_eq!(file_states(q, b).await, [FileState::Cancelled]);
    assert_eq!(claim(q, 0).await, None, "nothing left to claim");
    assert_eq!(q.queue_depth().await.unwrap(), 0);
}

/// A retry queues again what did not succeed in a final job (verified
/// outputs are kept and its progress restarts from them); a succeeded or
/// open job has nothing to retry.
async fn retry(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 1, 2, 0).await;
    let leases = leases_of_next_file(q).await;
    ok(q, leases[0]).await;
    let file = q.files(a).await.unwrap()[0].id;
    let beat = Beat {
        variations: vec![leases[1]],
        progress: vec![(file, 80.0)],
        ..Beat::default()
    };
    q.heartbeat(beat).await.unwrap();
    q.cancel(a).await.unwrap();
    q.finish_variation(leases[1], Outcome::Cancelled)
        .await
        .unwrap();
    assert_eq!(q.retry(a).await.unwrap(), Some((JobState::Cancelled, 1)));
    assert_eq!(state(q, a).await, JobState::Queued);
    let file = &q.files(a).await.unwrap()[0];
    assert_eq!(file.state, FileState::Queued);
    assert_eq!(
        file.progress, 50.0,
        "progress restarts from what is verified"
    );
    assert_eq!(file.error, None);
    // Probed anew; only the cancelled variation runs again.
    let again = leases_of_next_file(q).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, leases[1].id);
    assert_eq!(ok(q, again[0]).await, Some(JobState::Succeeded));
    assert_eq!(q.outputs(a).await.unwrap().len(), 2);
    assert_eq!(q.retry(a).await.unwrap(), Some((JobState::Succeeded, 0)));
    assert_eq!(q.retry(999).await.unwrap(), None);
    let open = submit(q, 1, 1, 0).await;
    assert_eq!(q.retry(open).await.unwrap(), Some((JobState::Queued, 0)));
}

/// A variation stopped to be claimed later is queued again, unless its job
/// was cancelled meanwhile; where claims are leases, the new claim is the
/// next attempt and the old one is refused.
async fn requeue(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 1, 2, 0).await;
    let leases = leases_of_next_file(q).await;
    let requeued = q.finish_variation(leases[0], Outcome::Requeued).await;
    assert_eq!(requeued.unwrap(), Some(JobState::Running));
    let Some(Work::Encode(again)) = q.claim(0).await.unwrap() else {
        panic!("the requeued variation is claimable");
    };
    assert_eq!(again.lease.id, leases[0].id);
    match q.sharing() {
        Sharing::OneDaemon => assert_eq!(again.lease, leases[0]),
        Sharing::Nodes => {
            assert_eq!(again.lease.attempt, leases[0].attempt + 1);
            assert_eq!(ok(q, leases[0]).await, None, "the old claim is refused");
        }
    }
    assert_eq!(file_states(q, a).await, [FileState::Running]);
    // Cancelled while being stopped: it does not come back.
    q.cancel(a).await.unwrap();
    q.finish_variation(leases[1], Outcome::Requeued)
        .await
        .unwrap();
    assert_eq!(claim(q, 0).await, None);
    let ended = q.finish_variation(again.lease, Outcome::Cancelled).await;
    assert_eq!(ended.unwrap(), Some(JobState::Cancelled));
    assert_eq!(file_states(q, a).await, [FileState::Cancelled]);
}

/// Prune forgets final jobs of an owner (everyone's for `None`) finished
/// before a time; open jobs and jobs whose FFmpeg is still being stopped
/// stay.
async fn prune(bed: Bed) {
    let q = &*bed.queue;
    let mine = submit(q, 1, 1, 1000).await;
    let theirs = submit(q, 1, 1, 2000).await;
    for _ in 0..2 {
        let lease = leases_of_next_file(q).await[0];
        ok(q, lease).await;
    }
    let open = submit(q, 1, 1, 1000).await;
    let soon = || unix_now() + 1;
    assert_eq!(q.prune(Some(1000), 0).await.unwrap(), 0, "none before 1970");
    assert_eq!(q.prune(Some(1000), soon()).await.unwrap(), 1);
    assert!(q.job(mine).await.unwrap().is_none());
    assert!(q.files(mine).await.unwrap().is_empty());
    assert!(q.job(theirs).await.unwrap().is_some());
    let owned = |uid| filter(|f| f.owner = Some(uid));
    assert_eq!(ids(q, owned(2000)).await, [theirs]);
    assert_eq!(ids(q, owned(1000)).await, [open]);

    // Cancelled, but FFmpeg is still being stopped: the record stays, so
    // that its temporary file is not lost to recovery.
    let lease = leases_of_next_file(q).await[0];
    q.cancel(open).await.unwrap();
    assert_eq!(q.prune(None, soon()).await.unwrap(), 1, "theirs only");
    assert!(q.job(open).await.unwrap().is_some());
    q.finish_variation(lease, Outcome::Cancelled).await.unwrap();
    assert_eq!(q.prune(None, soon()).await.unwrap(), 1);
    assert!(ids(q, filter(|_| {})).await.is_empty());
}

/// Prune leaves a job whose completion hook is still owed, due or
/// running (issue 22, item 7): its hook runs first, then it may go.
async fn prune_keeps_owed_hooks(bed: Bed) {
    let q = &*bed.queue;
    q.set_hooks(true).await.unwrap();
    let a = submit(q, 1, 1, 1000).await;
    let lease = leases_of_next_file(q).await[0];
    assert_eq!(ok(q, lease).await, Some(JobState::Succeeded));
    let soon = || unix_now() + 1;
    assert_eq!(q.prune(None, soon()).await.unwrap(), 0, "its hook is due");
    assert!(q.job(a).await.unwrap().is_some());
    let run = q.claim_hook().await.unwrap().expect("the owed hook");
    assert_eq!(run.job_id, a);
    assert_eq!(q.prune(Some(1000), soon()).await.unwrap(), 0, "it runs");
    q.finish_hook(a).await.unwrap();
    assert_eq!(q.prune(None, soon()).await.unwrap(), 1);
    assert!(q.job(a).await.unwrap().is_none());
}

/// Jobs are listed by id, filtered by owner, state and label, a page at a
/// time after a given id; a job's row carries what it was submitted with.
async fn labels_and_paging(bed: Bed) {
    let q = &*bed.queue;
    let labelled = |uid, labels: &[&str]| NewJob {
        labels: labels.iter().map(|l| l.to_string()).collect(),
        ..new_job(2, 3, uid)
    };
    let j1 = submit_job(q, labelled(1000, &["a", "b"])).await;
    let j2 = submit_job(q, labelled(2000, &["b"])).await;
    let j3 = submit_job(q, labelled(1000, &[])).await;
    let j4 = submit_job(q, labelled(1000, &["a"])).await;
    let row = q.job(j1).await.unwrap().unwrap();
    assert_eq!(row.labels, ["a", "b"]);
    assert_eq!((row.inputs, row.variations, row.seed), (2, 3, 1));
    assert_eq!((row.owner_uid, row.created_at), (1000, 1_700_000_000));
    assert_eq!(row.output_dir, Path::new("/out"));
    assert_eq!(
        (row.state, row.priority, row.paused),
        (JobState::Queued, 0, false)
    );
    assert!(q.job(j3).await.unwrap().unwrap().labels.is_empty());
    assert!(q.job(999).await.unwrap().is_none());

    assert_eq!(ids(q, filter(|_| {})).await, [j1, j2, j3, j4]);
    let label = |l: &str| Some(l.to_string());
    assert_eq!(ids(q, filter(|f| f.label = label("a"))).await, [j1, j4]);
    let b_of_1000 = filter(|f| {
        f.label = label("b");
        f.owner = Some(1000);
    });
    assert_eq!(ids(q, b_of_1000).await, [j1]);
    assert!(ids(q, filter(|f| f.label = label("c"))).await.is_empty());
    // Pages.
    assert_eq!(ids(q, filter(|f| f.limit = 2)).await, [j1, j2]);
    let next = filter(|f| {
        f.limit = 2;
        f.after = j2;
    });
    assert_eq!(ids(q, next).await, [j3, j4]);
    assert!(ids(q, filter(|f| f.after = j4)).await.is_empty());
    // By state.
    q.cancel(j3).await.unwrap();
    let cancelled = filter(|f| f.state = Some(JobState::Cancelled));
    assert_eq!(ids(q, cancelled).await, [j3]);
    let queued = filter(|f| f.state = Some(JobState::Queued));
    assert_eq!(ids(q, queued).await, [j1, j2, j4]);
}

/// A job that becomes final while hooks are on owes one hook, recorded
/// with its end: claimed once, owed again if a stop came before its
/// spawn, handed back with its process if after; a retry and a new end
/// while it runs owe one more.
async fn hook_rows(bed: Bed) {
    let q = &*bed.queue;
    let before = submit(q, 1, 1, 1000).await;
    let lease = leases_of_next_file(q).await[0];
    ok(q, lease).await;
    assert_eq!(state(q, before).await, JobState::Succeeded);
    assert_eq!(q.claim_hook().await.unwrap(), None, "no hook while off");

    q.set_hooks(true).await.unwrap();
    let a = submit(q, 1, 1, 1000).await;
    let lease = leases_of_next_file(q).await[0];
    failed(q, lease, "boom").await;
    let t0 = unix_now();
    let run = q.claim_hook().await.unwrap().expect("a hook is owed");
    assert_eq!((run.job_id, run.process.as_ref()), (a, None));
    assert_eq!(run.owner, owner(1000));
    assert!((t0 - 1..=unix_now() + 1).contains(&run.started_at));
    assert_eq!(q.claim_hook().await.unwrap(), None, "claimed once");
    // A stop before the spawn: owed again.
    assert_eq!(q.hooks_left_running().await.unwrap(), []);
    let run = q.claim_hook().await.unwrap();
    assert_eq!(run.map(|r| r.job_id), Some(a));
    q.set_hook_process(a, process(42)).await.unwrap();
    // Retried and ended again while its hook runs: that end owes one
    // more, which the end of the first run does not settle.
    assert_eq!(q.retry(a).await.unwrap().map(|r| r.1), Some(1));
    let lease = leases_of_next_file(q).await[0];
    ok(q, lease).await;
    q.finish_hook(a).await.unwrap();
    let second = q.claim_hook().await.unwrap().expect("the second end's");
    assert_eq!(second.job_id, a);
    q.set_hook_process(a, process(43)).await.unwrap();
    // A stop after the spawn: handed back with its process, not owed.
    let left = q.hooks_left_running().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].process, Some(process(43)));
    assert_eq!(q.claim_hook().await.unwrap(), None);
    q.finish_hook(a).await.unwrap();
    assert_eq!(q.hooks_left_running().await.unwrap(), []);
    assert_eq!(q.claim_hook().await.unwrap(), None);
}

/// After a crash, the variations that were running are listed with what
/// recovery needs (temporary file, its identity, FFmpeg's identity, the
/// output directory); then one daemon fails them as interrupted, while a
/// shared queue queues them again. Queued jobs stay queued.
async fn recovery_after_a_crash(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 2, 1, 0).await;
    let b = submit(q, 1, 1, 0).await;
    let work = start_next_file(q).await.remove(0);
    let identity = FileIdentity { dev: 1, ino: 77 };
    q.set_temp(work.lease, identity).await.unwrap();
    q.set_process(work.lease, process(99)).await.unwrap();
    let left = q.interrupted().await.unwrap();
    assert_eq!(left.len(), 1);
    let temp = vidvar::naming::temp_name(&work.input, 1, work.lease);
    assert_eq!(left[0].lease, work.lease);
    assert_eq!(left[0].temp_path, Some(Path::new("/out").join(temp)));
    assert_eq!(left[0].temp_identity, Some(identity));
    assert_eq!(left[0].process, Some(process(99)));
    assert_eq!(left[0].output_dir, work.output_dir);

    assert_eq!(q.mark_interrupted().await.unwrap(), [a]);
    assert!(q.interrupted().await.unwrap().is_empty());
    assert_eq!(state(q, b).await, JobState::Queued);
    match q.sharing() {
        Sharing::OneDaemon => {
            assert_eq!(state(q, a).await, JobState::Failed);
            let files = q.files(a).await.unwrap();
            assert!(
                files
                    .iter()
                    .all(|f| f.error.as_deref() == Some(INTERRUPTED))
            );
            assert_eq!(claim(q, 0).await, Some((b, "probe /in/0.mp4".into())));
        }
        Sharing::Nodes => {
            assert_eq!(state(q, a).await, JobState::Running);
            let Some(Work::Encode(again)) = q.claim(0).await.unwrap() else {
                panic!("the interrupted variation, queued again");
            };
            assert_eq!(again.lease.id, work.lease.id);
            assert_eq!(again.previous, None, "settled already");
        }
    }
}

/// At a clean stop, a running job of which nothing is being encoded is
/// queued again on one machine (it goes on after the restart, probed
/// anew), while work being encoded ends as [`recovery_after_a_crash`]
/// says.
async fn clean_stop(bed: Bed) {
    let q = &*bed.queue;
    let busy = submit(q, 1, 1, 0).await;
    let idle = submit(q, 1, 1, 0).await;
    start_next_file(q).await;
    let Some(Work::Probe { job_id, lease, .. }) = q.claim(busy).await.unwrap() else {
        panic!("the idle job's probe");
    };
    assert_eq!(job_id, idle);
    q.finish_probe(lease, media()).await.unwrap();
    match q.sharing() {
        Sharing::OneDaemon => {
            assert_eq!(q.requeue_idle_jobs().await.unwrap(), [idle]);
            assert_eq!(q.mark_interrupted().await.unwrap(), [busy]);
            assert_eq!(state(q, idle).await, JobState::Queued);
            assert_eq!(file_states(q, idle).await, [FileState::Queued]);
            assert_eq!(claim(q, 0).await, Some((idle, "probe /in/0.mp4".into())));
        }
        Sharing::Nodes => {
            assert!(q.requeue_idle_jobs().await.unwrap().is_empty());
            assert_eq!(q.mark_interrupted().await.unwrap(), [busy]);
            assert_eq!(state(q, idle).await, JobState::Running);
            assert_eq!(
                claim(q, 0).await,
                Some((busy, "encode /in/0.mp4 #1".into()))
            );
            assert_eq!(
                claim(q, busy).await,
                Some((idle, "encode /in/0.mp4 #1".into()))
            );
        }
    }
}
