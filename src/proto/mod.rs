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
//!
//! Here are the frames of a connection: the handshake, [`Request`] and
//! [`Response`]. What they carry has a module per concern, its names
//! re-exported here: `submit` (a job to queue and its limits, labels),
//! `jobs` (the views of jobs: list pages, status, outputs), `node` (ping
//! and the nodes), `folders` (watch folders), `observe` (`top` and
//! `stats`) and `error` ([`WireError`]).

pub mod codec;
mod error;
mod folders;
mod jobs;
mod node;
mod observe;
mod submit;

use serde::{Deserialize, Serialize};

pub use crate::effects::Effects;
pub use crate::folder::{AfterAction, FailedAction, FolderId, FolderSpec};
pub use crate::job::{FileState, JobId, JobState, Quality};
pub use error::{ErrorKind, WireError};
pub use folders::FolderInfo;
pub use jobs::{
    FileStatus, JobDetail, JobPage, JobSummary, ListRequest, MAX_PAGE, OutputInfo, RunningVariation,
};
pub use node::{NodeInfo, NodeState, Pong};
pub use observe::{
    NodeTotals, ReasonCount, RunTotals, SsimSummary, StatsReport, Throughput, TopFailure,
    TopFinished, TopRunning, TopView,
};
pub use submit::{
    LabelError, MAX_INPUTS, MAX_JOB_VARIATIONS, MAX_LABEL_BYTES, MAX_LABELS, MAX_PATH_BYTES,
    MAX_PRIORITY, MAX_VARIATIONS, MIN_PRIORITY, SubmitRequest, check_label,
};

/// Version of this protocol. Bump it on any change to a wire type.
pub const PROTOCOL_VERSION: u32 = 9;

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
    /// stopped and their temporary files removed. Answer: [`Response::Job`];
    /// for a job that had already ended, a [`WireError`] of kind
    /// [`ErrorKind::Ended`], the job unchanged.
    Cancel { job: JobId },
    /// Re-queue the variations of a failed, partial or cancelled job that
    /// did not succeed; verified outputs are kept. Answer: [`Response::Job`];
    /// for a job that succeeded, a [`WireError`] of kind
    /// [`ErrorKind::Ended`], the job unchanged.
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
