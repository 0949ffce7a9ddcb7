//! The wire protocol between `vidvarctl` (or any local tool) and `vidvard`.
//!
//! This module owns the message types; [`codec`] owns their encoding and
//! framing. A connection starts with a handshake: the client sends
//! [`Hello`], the daemon answers [`Welcome`] or a [`WireError`] of kind
//! [`ErrorKind::VersionMismatch`]. After that the client sends one
//! [`Request`] per exchange and reads one [`Response`], except for
//! [`Request::Watch`], which the daemon answers with a stream of
//! [`Response::Progress`] frames ending with a job in a final state.
//!
//! Wire types are plain structs and enums: no `flatten`, `skip`, `tag` or
//! `untagged`, which bincode cannot round-trip. `rename_all` is fine (bincode
//! encodes variants by index), and makes the `--json` output readable.

pub mod codec;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub use crate::effects::Effects;
pub use crate::folder::{AfterAction, FailedAction, FolderId, FolderSpec};
pub use crate::job::{FileState, JobId, JobState, Quality};

/// Version of this protocol. Bump it on any change to a wire type.
pub const PROTOCOL_VERSION: u32 = 8;

/// First frame of every connection, client to daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The client's [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Free-form client name and version, for the daemon's log.
    pub client: String,
}

/// The daemon's answer to a matching [`Hello`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// The daemon's [`PROTOCOL_VERSION`] (equal to the client's).
    pub protocol: u32,
    /// The daemon's package version, e.g. `0.1.0`.
    pub daemon_version: String,
}

/// Answer to the handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum HandshakeReply {
    Welcome(Welcome),
    Refused(WireError),
}

/// A client's request, sent after the handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Queue a new job. Answer: [`Response::Submitted`].
    Submit(SubmitRequest),
    /// One job in detail. Answer: [`Response::Job`].
    Status { job: JobId },
    /// One page of the jobs the client may see, in job id order. Answer:
    /// [`Response::Jobs`].
    List(ListRequest),
    /// Stream the job's progress until it reaches a final state. Answer: a
    /// stream of [`Response::Progress`], the last one in a final state.
    Watch { job: JobId },
    /// The verified output files of a job. Answer: [`Response::Outputs`].
    Outputs { job: JobId },
    /// Stop a job: queued work is dropped, running FFmpeg processes are
    /// stopped and their temporary files removed. Answer: [`Response::Job`].
    Cancel { job: JobId },
    /// Re-queue the variations of a failed, partial or cancelled job that
    /// did not succeed; verified outputs are kept. Answer: [`Response::Job`].
    Retry { job: JobId },
    /// Daemon liveness and load. Answer: [`Response::Pong`].
    Ping,
    /// Remove the records of final jobs that finished at least
    /// `older_than_secs` seconds ago (only the client's own, unless it is
    /// root or the daemon's own user). Output files are never touched. Answer: [`Response::Pruned`].
    Prune { older_than_secs: u64 },
    /// The nodes sharing the queue (this daemon alone on a queue of one
    /// machine). Answer: [`Response::Nodes`].
    Nodes,
    /// Pause a job (`Some`, its owner) or the whole daemon (`None`, root or
    /// the daemon's user only): no new variation or probe of it starts;
    /// running ones finish, or with `stop` are stopped and queued again.
    /// Answer: [`Response::Job`] for a job, [`Response::Pong`] for the
    /// daemon.
    Pause { job: Option<JobId>, stop: bool },
    /// Undo [`Request::Pause`]. Answer: as for it.
    Resume { job: Option<JobId> },
    /// Change the priority of a job that is not final (running variations
    /// go on). Answer: [`Response::Job`].
    SetPriority { job: JobId, priority: i32 },
    /// Watch a folder for the client: each settled file in it becomes a
    /// job of the client's. Answer: [`Response::FolderAdded`].
    FolderAdd(FolderSpec),
    /// The client's folders (everyone's for root and the daemon's user).
    /// Answer: [`Response::Folders`].
    Folders,
    /// One folder. Answer: [`Response::Folder`].
    FolderShow { folder: FolderId },
    /// Stop watching a folder and forget it (its jobs stay). Answer:
    /// [`Response::Folder`], as it was.
    FolderRemove { folder: FolderId },
    /// Pause (nothing is taken from it) or resume a folder. Answer:
    /// [`Response::Folder`].
    FolderPause { folder: FolderId, paused: bool },
    /// The daemon's metrics in Prometheus's text format 0.0.4 (see
    /// [`crate::metrics`]); any client may read them. Answer:
    /// [`Response::Metrics`].
    Metrics,
    /// A summary of the variation runs that ended in the last
    /// `since_secs` seconds (the history keeps 90 days): the client's own
    /// jobs' (everyone's for root and the daemon's user), only of jobs
    /// labelled `label` if set. Answer: [`Response::Stats`].
    Stats {
        since_secs: u64,
        label: Option<String>,
    },
    /// The dashboard of `vidvarctl top`: a stream of [`Response::Top`],
    /// one now and one whenever something changes (at most 4 a second, at
    /// least one a second), until the client closes the connection.
    Top,
}

/// Lowest job priority ([`SubmitRequest::priority`]).
pub const MIN_PRIORITY: i32 = -1000;
/// Highest job priority.
pub const MAX_PRIORITY: i32 = 1000;
/// Most labels on one job ([`SubmitRequest::labels`]).
pub const MAX_LABELS: usize = 16;
/// Longest label, in bytes.
pub const MAX_LABEL_BYTES: usize = 64;
/// Most jobs in one [`JobPage`]; a [`ListRequest::limit`] above is
/// lowered to it.
pub const MAX_PAGE: u32 = 1000;

/// Why a text cannot label a job; the message names the label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("a label cannot be empty")]
    Empty,
    #[error("label {0:?} is {len} bytes long; at most {MAX_LABEL_BYTES} are allowed", len = .0.len())]
    TooLong(String),
    #[error("label {0:?} has a control character")]
    ControlCharacter(String),
}

/// Whether `label` may label a job: 1 to [`MAX_LABEL_BYTES`] bytes, no
/// control characters.
///
/// Errors: [`LabelError`], saying which rule it breaks.
pub fn check_label(label: &str) -> Result<(), LabelError> {
    if label.is_empty() {
        return Err(LabelError::Empty);
    }
    if label.len() > MAX_LABEL_BYTES {
        return Err(LabelError::TooLong(label.into()));
    }
    if label.chars().any(char::is_control) {
        return Err(LabelError::ControlCharacter(label.into()));
    }
    Ok(())
}

/// Which jobs [`Request::List`] returns: those matching every field that
/// is set, the client's own (everyone's for root and the daemon's user),
/// by id ascending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListRequest {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs carrying this label.
    pub label: Option<String>,
    /// Only jobs with a larger id: the last id of the previous page (0 for
    /// the first page).
    pub after: JobId,
    /// At most this many jobs, 1..=[`MAX_PAGE`].
    pub limit: u32,
}

/// One page of [`Request::List`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobPage {
    pub jobs: Vec<JobSummary>,
    /// More jobs match after the last one of this page.
    pub more: bool,
    /// Whether the daemon is paused (`vidvarctl pause`).
    pub daemon_paused: bool,
}

/// Most variations one input may ask for ([`SubmitRequest::variations`]).
pub const MAX_VARIATIONS: u32 = 1000;
/// Most input files in one job ([`SubmitRequest::inputs`]).
pub const MAX_INPUTS: usize = 1000;
/// Most variations in one job, over all its inputs.
pub const MAX_JOB_VARIATIONS: u64 = 10_000;
/// Longest path accepted in a [`SubmitRequest`], in bytes (Linux
/// `PATH_MAX`). With [`MAX_INPUTS`] it sets the largest request, and so
/// the daemon's frame cap ([`codec::MAX_REQUEST_LEN`]).
pub const MAX_PATH_BYTES: usize = 4096;

/// A job to queue. Its limits: [`MAX_INPUTS`] inputs, each path at most
/// [`MAX_PATH_BYTES`] bytes, 1 to [`MAX_VARIATIONS`] variations per input
/// and [`MAX_JOB_VARIATIONS`] in all; the daemon refuses more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitRequest {
    /// Input videos, absolute paths (the client resolves relative ones).
    pub inputs: Vec<PathBuf>,
    /// Variations per input, at least 1.
    pub variations: u32,
    /// Seed of the effect generator; the daemon picks one when `None`.
    pub seed: Option<u64>,
    /// Absolute directory the outputs are written to.
    pub output_dir: PathBuf,
    /// [`MIN_PRIORITY`]..=[`MAX_PRIORITY`]; higher is claimed first.
    pub priority: i32,
    /// At most [`MAX_LABELS`], each passing [`check_label`].
    pub labels: Vec<String>,
}

/// The daemon's answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Submitted {
        job: JobId,
    },
    Job(JobDetail),
    Jobs(JobPage),
    Progress(JobDetail),
    Outputs(Vec<OutputInfo>),
    Pong(Pong),
    /// Number of job records removed.
    Pruned {
        jobs: u64,
    },
    Error(WireError),
    Nodes(Vec<NodeInfo>),
    FolderAdded {
        folder: FolderId,
    },
    Folders(Vec<FolderInfo>),
    Folder(FolderInfo),
    /// The text of [`Request::Metrics`].
    Metrics(String),
    Stats(StatsReport),
    Top(Box<TopView>),
}

/// A watch folder as `vidvarctl folder list` and `show` give it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FolderInfo {
    pub id: FolderId,
    /// As added, with its directories' real paths.
    pub spec: FolderSpec,
    /// Uid of the user it belongs to: its jobs are theirs.
    pub owner_uid: u32,
    /// Paused by `vidvarctl folder pause`.
    pub paused: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// The node that scans it now (shared queue only).
    pub node: Option<String>,
    /// Files taken from it so far, each as one job.
    pub taken: u64,
}

/// One frame of `vidvarctl top`: daemon-wide figures for everyone, jobs
/// in detail only those the client may see (its own; everyone's for root
/// and the daemon's user).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopView {
    pub daemon: Pong,
    /// This daemon's slots and those held now.
    pub slots: u32,
    pub busy: u32,
    /// The live nodes of a shared queue (heartbeat within the lease time),
    /// by name, with their slots and running variations as the queue
    /// stores them; empty on one machine.
    pub nodes: Vec<NodeInfo>,
    /// Jobs stored by state (of everyone).
    pub jobs_by_state: Vec<(JobState, u64)>,
    pub variations_queued: u64,
    pub last_minute: Throughput,
    pub last_hour: Throughput,
    /// Whether the jobs shown are everyone's.
    pub everyone: bool,
    /// Running variations of the jobs shown: this daemon's (node's), then
    /// on a shared queue those other nodes hold claimed, by job.
    pub running: Vec<TopRunning>,
    /// Queued and running jobs shown, by priority (highest first), then id.
    pub open: Vec<JobSummary>,
    /// Failed inputs of jobs that ended lately, latest first.
    pub failures: Vec<TopFailure>,
    /// Jobs that ended lately, latest first.
    pub finished: Vec<TopFinished>,
}

/// Variation runs that ended in a window, of everyone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    pub variations_per_min: f64,
    /// Media seconds encoded per wall-clock second.
    pub encoded_per_sec: f64,
}

/// A running variation in `top`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopRunning {
    pub job: JobId,
    pub input: PathBuf,
    pub index: u32,
    /// The node running it, on a shared queue; `None` on one machine.
    pub node: Option<String>,
    /// Percent of it encoded, 0..=99 until verified. Progress, fps, speed
    /// and ETA are known only to the node that runs it (FFmpeg's
    /// `-progress` reports stay in its memory): `None` for another node's.
    pub percent: Option<f64>,
    /// Frames encoded per second (`fps`).
    pub fps: Option<f64>,
    /// A multiple of real time (`speed`).
    pub speed: Option<f64>,
    /// Seconds left of its input, as `status` estimates them.
    pub eta_secs: Option<f64>,
}

/// A failed input in `top`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopFailure {
    pub job: JobId,
    pub input: PathBuf,
    pub error: String,
}

/// A job that ended, in `top`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopFinished {
    pub job: JobId,
    pub state: JobState,
    /// The lowest SSIM over its checked outputs.
    pub worst_ssim: Option<f64>,
}

/// The answer to [`Request::Stats`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    /// Unix seconds: runs that ended from then on are counted.
    pub since: i64,
    pub label: Option<String>,
    /// Whether everyone's runs are counted (root, the daemon's user), or
    /// only the client's.
    pub everyone: bool,
    /// All of them.
    pub total: RunTotals,
    /// By the node that ran them, by name (empty on one machine).
    pub nodes: Vec<NodeTotals>,
    /// Failed runs by failure class, most first.
    pub failures: Vec<ReasonCount>,
    /// The lowest SSIM of the checked outputs.
    pub ssim: SsimSummary,
}

/// Figures of a set of variation runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunTotals {
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Stopped by `pause --stop` and queued again.
    pub requeued: u64,
    /// Media seconds encoded.
    pub encoded_secs: f64,
    /// CPU seconds (user + system) of their processes.
    pub cpu_secs: f64,
    /// Wall-clock seconds, each run from its claim to its end, added up.
    pub wall_secs: f64,
    /// `encoded_secs / wall_secs`: a multiple of real time per slot;
    /// `None` without wall time.
    pub mean_speed: Option<f64>,
}

/// [`RunTotals`] of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeTotals {
    pub node: String,
    pub totals: RunTotals,
}

/// How many failed runs had one failure class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasonCount {
    /// E.g. `ffmpeg`, `stalled`, `input` (vidvarctl(1), STATS).
    pub reason: String,
    pub count: u64,
}

/// The distribution of the checked outputs' lowest SSIM.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SsimSummary {
    /// Outputs checked.
    pub checked: u64,
    pub lowest: Option<f64>,
    pub median: Option<f64>,
    /// `(upper bound, outputs at most it and above the previous bound)`,
    /// by bound; the last bound is 1.
    pub buckets: Vec<(f64, u64)>,
}

/// Whether a node takes part in the queue now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Its heartbeat is within the lease time.
    Up,
    /// No heartbeat for longer than the lease time: its work is taken over.
    Lost,
    /// It stopped cleanly.
    Stopped,
}

impl NodeState {
    /// Lowercase name, as in `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Up => "up",
            NodeState::Lost => "lost",
            NodeState::Stopped => "stopped",
        }
    }
}

/// One node of `vidvarctl nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub host: String,
    pub state: NodeState,
    /// Its `max_parallel`.
    pub slots: u32,
    /// Variations it runs now.
    pub running: u32,
    /// Unix seconds of its last heartbeat.
    pub last_heartbeat: i64,
}

/// One line of `list`: a job without its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    pub id: JobId,
    pub state: JobState,
    /// Overall progress in percent, 0..=100: the mean of the files' progress.
    pub progress: f64,
    pub inputs: u32,
    /// Variations per input.
    pub variations: u32,
    /// Unix time, seconds.
    pub created_at: i64,
    /// Uid of the submitting user.
    pub owner_uid: u32,
    /// Higher is claimed first.
    pub priority: i32,
    /// Paused by `vidvarctl pause JOB`.
    pub paused: bool,
    /// Sorted.
    pub labels: Vec<String>,
    /// Estimated seconds until the job's work is done, from the measured
    /// speed of its running variations and the media time left to encode;
    /// `None` until it can be estimated (nothing of it running, or an input
    /// not yet probed or of unknown duration).
    pub eta_secs: Option<f64>,
}

/// A job with every input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDetail {
    pub summary: JobSummary,
    /// Seed of the effect generator; with it every variation can be redone.
    pub seed: u64,
    pub output_dir: PathBuf,
    pub files: Vec<FileStatus>,
    /// Whether the daemon is paused (`vidvarctl pause`).
    pub daemon_paused: bool,
}

/// Progress of one input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileStatus {
    pub path: PathBuf,
    pub state: FileState,
    /// Percent 0..=100 over all variations:
    /// `(done_variations * 100 + sum of running percents) / variations`.
    pub progress: f64,
    /// Variations verified and in place.
    pub done_variations: u32,
    /// Input duration in seconds as probed; `None` before the probe or when
    /// the container does not tell.
    pub duration_secs: Option<f64>,
    /// While running with an unknown duration: the media time encoded so
    /// far, seconds (no percent is invented then). `None` otherwise.
    pub encoded_secs: Option<f64>,
    /// Why the file failed: the reason and FFmpeg's last stderr lines.
    pub error: Option<String>,
    /// The nodes of a shared queue that ran or run its variations, by
    /// name; empty on a queue of one machine.
    pub nodes: Vec<String>,
    /// The variations of this input being encoded now (on this node).
    pub running: Vec<RunningVariation>,
    /// Estimated seconds until this input's variations are done: media
    /// time left (queued variations whole, running ones from their
    /// `out_time_us`) over the summed speed of its running variations;
    /// `None` when nothing of it runs or its duration is unknown.
    pub eta_secs: Option<f64>,
}

/// One variation being encoded, from FFmpeg's `-progress` reports
/// (ffmpeg(1): `-progress url`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningVariation {
    /// 1-based index of the variation of its input.
    pub index: u32,
    /// Percent of it encoded, 0..=99 until verified.
    pub percent: f64,
    /// Media time encoded, seconds (`out_time_us`).
    pub encoded_secs: f64,
    /// Encoding speed as a multiple of real time (`speed`, e.g. 2.5 for
    /// "2.5x"); `None` until FFmpeg reports one.
    pub speed: Option<f64>,
    /// Frames encoded per second (`fps`); `None` until reported.
    pub fps: Option<f64>,
}

/// One verified output file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputInfo {
    pub path: PathBuf,
    /// File size in bytes.
    pub size: u64,
    pub input: PathBuf,
    /// 1-based index of the variation of this input.
    pub index: u32,
    pub effects: Effects,
    /// The node of a shared queue that made it; `None` on one machine.
    pub node: Option<String>,
    /// The quality check's figures; `None` when the check was off (or the
    /// output was found by recovery after a crash).
    pub quality: Option<Quality>,
}

/// Answer to [`Request::Ping`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    pub daemon_version: String,
    pub protocol: u32,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// Jobs queued or running.
    pub queue_depth: u64,
    /// FFmpeg processes running now.
    pub running_processes: u64,
    /// This daemon's node name in a shared queue; `None` on one machine.
    pub node: Option<String>,
    /// Paused by `vidvarctl pause`: it starts no new work.
    pub paused: bool,
}

/// What went wrong, as the client sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    pub kind: ErrorKind,
    /// One sentence for a person, e.g. "no such job: 7".
    pub message: String,
}

/// Class of a [`WireError`]; clients map it to an exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is malformed or its values are out of range.
    InvalidRequest,
    /// The job (or watch folder) does not exist, or is another user's.
    NotFound,
    /// An input path does not exist or is not a regular file.
    BadInput,
    /// Client and daemon speak different protocol versions.
    VersionMismatch,
    /// The daemon is stopping and takes no new work.
    ShuttingDown,
    /// Too many connections are open (in all, or of this user).
    Busy,
    /// The daemon failed (database, I/O); details are in its log.
    Internal,
    /// The daemon cannot reach its shared queue's database now.
    Unavailable,
    /// The client may not do this: pausing the daemon is for root and the
    /// daemon's own user.
    PermissionDenied,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WireError {}
