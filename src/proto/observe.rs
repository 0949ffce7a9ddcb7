//! The daemon observed: a frame of `vidvarctl top` (slots, nodes, jobs by
//! state, throughput, running work, failures, jobs that ended) and the
//! `stats` report of variation runs over a window.

use super::{JobId, JobState, JobSummary, NodeInfo, Pong};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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

/// The answer to [`Request::Stats`](super::Request::Stats).
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
