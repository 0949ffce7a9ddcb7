//! The records of jobs and nodes that cross the queue boundary: a new job
//! and the limits it must fit in ([`Limits`], [`Full`]), the rows that
//! reads return (jobs, their files and outputs, nodes, work running on
//! other nodes) and which jobs to read, and the queue's depth. Plain data:
//! the rules that fill them are the backends'.

use crate::effects::Effects;
use crate::job::{Credentials, FileState, JobId, JobState, Quality, Vetted};
use std::path::PathBuf;

/// A job to insert: inputs and, per input, the effects of its variations.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub seed: u64,
    /// The output directory as given, and as vetted.
    pub output_dir: (PathBuf, Vetted),
    /// Variations per input; every `effects` list has this length.
    pub variations: u32,
    /// Each input as given, as vetted, and its variations' effects.
    pub inputs: Vec<(PathBuf, Vetted, Vec<Effects>)>,
    /// Unix seconds.
    pub created_at: i64,
    /// The submitting client.
    pub owner: Credentials,
    /// Higher is claimed first, from [`crate::proto::MIN_PRIORITY`] to
    /// [`crate::proto::MAX_PRIORITY`].
    pub priority: i32,
    /// The job's labels, sorted, without duplicates.
    pub labels: Vec<String>,
}

/// What a new job must fit in: checked and inserted in one step, so that
/// concurrent submissions cannot pass a limit together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most jobs queued or running at once.
    pub max_jobs: u64,
    /// Most variations queued or running for the job's owner; `None` for
    /// no limit.
    pub max_owner_variations: Option<u64>,
}

/// Which limit a new job would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `pending` jobs are queued or running already.
    Jobs { pending: u64 },
    /// The owner has `pending` variations queued or running and asks for
    /// `asked` more.
    Owner { pending: u64, asked: u64 },
}

/// A job row.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: JobId,
    pub state: JobState,
    pub variations: u32,
    pub seed: u64,
    pub output_dir: PathBuf,
    pub created_at: i64,
    /// Number of input files.
    pub inputs: u32,
    /// Its files' stored progress by [`crate::job::job_progress`], percent.
    pub progress: f64,
    /// Uid of the submitting client.
    pub owner_uid: u32,
    /// Higher is claimed first.
    pub priority: i32,
    /// Paused by its owner: none of its work is claimed.
    pub paused: bool,
    /// Sorted.
    pub labels: Vec<String>,
}

/// Which jobs [`Queue::jobs`](super::Queue::jobs) returns: those matching
/// every field that is set, by id ascending, at most `limit` of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    /// Only this owner's jobs; `None` for everyone's.
    pub owner: Option<u32>,
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs carrying this label.
    pub label: Option<String>,
    /// Only jobs with a larger id (0: from the first).
    pub after: JobId,
    /// At most this many.
    pub limit: u32,
}

/// An input file row, with its count of verified variations.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRow {
    pub id: i64,
    pub job_id: JobId,
    pub idx: u32,
    pub path: PathBuf,
    pub state: FileState,
    pub duration_us: Option<u64>,
    /// Stored progress, percent.
    pub progress: f64,
    pub done_variations: u32,
    pub error: Option<String>,
    /// Nodes that ran or run its variations (shared queue only).
    pub nodes: Vec<String>,
}

/// A verified output.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRow {
    pub path: PathBuf,
    pub size: u64,
    pub input: PathBuf,
    pub index: u32,
    pub effects: Effects,
    /// The node that made it; `None` on a queue of one machine.
    pub node: Option<String>,
    /// The quality check's figures; `None` when the check was off.
    pub quality: Option<Quality>,
}

/// A node of a shared queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub name: String,
    pub host: String,
    /// Its `max_parallel` when it started.
    pub slots: u32,
    /// Heartbeat within the lease time and not stopped.
    pub up: bool,
    /// Stopped cleanly.
    pub stopped: bool,
    /// Unix seconds.
    pub last_heartbeat: i64,
    /// Variations it runs now.
    pub running: u32,
}

/// A variation that another node of a shared queue encodes now, as the
/// queue stores it: its claim's node, not its progress (that stays in the
/// memory of the node that runs it).
#[derive(Debug, Clone, PartialEq)]
pub struct ElsewhereRow {
    pub job_id: JobId,
    /// The id of its input's file row ([`FileRow::id`]).
    pub file_id: i64,
    /// Uid of the job's owner.
    pub owner_uid: u32,
    /// The input as given at submit.
    pub input: PathBuf,
    /// 1-based index of the variation of its input.
    pub index: u32,
    /// The node whose claim it is.
    pub node: String,
}

/// The queue's depth ([`Queue::census`](super::Queue::census)).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Census {
    /// Jobs by state; states without jobs are left out.
    pub jobs: Vec<(JobState, u64)>,
    pub variations_queued: u64,
    pub variations_running: u64,
}
