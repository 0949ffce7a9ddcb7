//! What a client sees of jobs: which jobs `list` returns and a page of
//! them, one job with its files and their running variations (`status`,
//! `watch`), and the verified outputs.

use super::{Effects, FileState, JobId, JobState, Quality};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Most jobs in one [`JobPage`]; a [`ListRequest::limit`] above is
/// lowered to it.
pub const MAX_PAGE: u32 = 1000;

/// Which jobs [`Request::List`](super::Request::List) returns: those
/// matching every field that is set, the client's own (everyone's for root
/// and the daemon's user), by id ascending.
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

/// One page of [`Request::List`](super::Request::List).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobPage {
    pub jobs: Vec<JobSummary>,
    /// More jobs match after the last one of this page.
    pub more: bool,
    /// Whether the daemon is paused (`vidvarctl pause`).
    pub daemon_paused: bool,
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
    /// The variations of this input being encoded now, by index: this
    /// node's, and on a shared queue other nodes' too (their progress
    /// unknown here).
    pub running: Vec<RunningVariation>,
    /// Estimated seconds until this input's variations are done: media
    /// time left (queued variations whole, running ones from their
    /// `out_time_us`) over the summed speed of its running variations;
    /// `None` when nothing of it runs or its duration is unknown.
    pub eta_secs: Option<f64>,
}

/// One variation being encoded, from FFmpeg's `-progress` reports
/// (ffmpeg(1): `-progress url`). Only the node that runs it hears them:
/// another node's variation, as the shared queue stores it, has its
/// figures `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningVariation {
    /// 1-based index of the variation of its input.
    pub index: u32,
    /// Percent of it encoded, 0..=99 until verified; `None` for another
    /// node's.
    pub percent: Option<f64>,
    /// Media time encoded, seconds (`out_time_us`); `None` for another
    /// node's.
    pub encoded_secs: Option<f64>,
    /// Encoding speed as a multiple of real time (`speed`, e.g. 2.5 for
    /// "2.5x"); `None` until FFmpeg reports one, and for another node's.
    pub speed: Option<f64>,
    /// Frames encoded per second (`fps`); `None` until reported, and for
    /// another node's.
    pub fps: Option<f64>,
    /// The node that runs it, on a shared queue; `None` on one machine.
    pub node: Option<String>,
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
