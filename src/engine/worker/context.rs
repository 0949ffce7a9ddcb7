//! What a worker needs of the engine ([`Context`]), and what every step
//! takes from it: outcomes written to the queue until they hold
//! ([`record`]) and what recording did logged, the node named in a
//! reason, and a variation's output frame rate and sampled frames. No
//! file or process is touched here.

use crate::access::Judge;
use crate::config::{Settings, Tunables};
use crate::engine::supervisor::Progress;
use crate::ffmpeg::DEFAULT_FRAME_RATE;
use crate::ffmpeg::samples::Samples;
use crate::job::{Credentials, FrameRate, JobId, JobState};
use crate::queue::{Queue, QueueError, VariationWork};
use tokio_util::sync::CancellationToken;

/// What a worker needs from the engine that runs it, and nothing more.
pub trait Context: Send + Sync {
    /// The job queue, where outcomes are recorded.
    fn queue(&self) -> &dyn Queue;
    /// The FFmpeg programs and the encoding settings.
    fn settings(&self) -> &Settings;
    /// The settings in force now (SIGHUP may change them).
    fn tunables(&self) -> Tunables;
    /// Whose permissions decide what a job of `owner` may use.
    fn judge_for(&self, owner: &Credentials) -> Judge;
    /// A running variation's progress, for `status` and `watch`.
    fn report_progress(&self, variation: i64, progress: Progress);
    /// Fires when the daemon begins to stop: work is then left for the
    /// queue's interrupted-work marking.
    fn stopping(&self) -> &CancellationToken;
}

/// `on node NAME` in a shared queue, so that a reason says which node
/// could not read or write a file; `None` on one machine.
pub(super) fn on_node(s: &dyn Context) -> Option<String> {
    let shared = s.settings().shared.as_ref()?;
    Some(format!("on node {}", shared.node.name))
}

/// Longest pause between two attempts at writing to the queue.
const RECORD_PAUSE_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// Write an outcome to the queue, trying again with growing pauses (1, 2,
/// 4 ... 30 s) while it fails, e.g. on a full disk or a database locked by
/// another process, until it is written or the daemon stops (`None`;
/// startup recovery then settles what was left). The worker's slot stays
/// taken meanwhile: a slot is free only once the work that held it is
/// recorded, so no other work (of a lower priority, say) starts before
/// the queue shows this work ended.
pub(super) async fn record<T, F>(
    s: &dyn Context,
    job_id: JobId,
    mut write: impl FnMut() -> F,
) -> Option<T>
where
    F: std::future::Future<Output = Result<T, QueueError>>,
{
    let mut pause = std::time::Duration::from_secs(1);
    let mut attempt: u64 = 1;
    loop {
        match write().await {
            Ok(value) => return Some(value),
            Err(err) => {
                log::error!("job {job_id}: cannot record an outcome (attempt {attempt}): {err}")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = s.stopping().cancelled() => return None,
        }
        pause = (pause * 2).min(RECORD_PAUSE_MAX);
        attempt += 1;
    }
}

/// Log what recording an outcome did: the job's end, or a write refused
/// because the claim was lost to another node.
pub(super) fn log_recorded(job_id: JobId, state: Option<JobState>) {
    match state {
        Some(state) if state.is_final() => {
            log::info!("job {job_id}: finished, {}", state.as_str())
        }
        Some(_) => {}
        None => log::warn!("job {job_id}: the claim was lost: outcome not recorded"),
    }
}

/// The output frame rate of a variation: the settings' own, else the
/// input's.
pub(super) fn output_rate(s: &dyn Context, work: &VariationWork) -> FrameRate {
    s.settings()
        .encode
        .frame_rate
        .or(work.media.frame_rate)
        .unwrap_or(DEFAULT_FRAME_RATE)
}

/// The frames the check samples of a variation at `rate`.
pub(super) fn samples_of(work: &VariationWork, rate: FrameRate) -> Samples {
    Samples::plan(work.media.video_us.or(work.media.duration_us), rate)
}
