//! One variation of a batch around its encode: made ready (what an
//! earlier, lost claim left settled, its files opened, its temporary file
//! remembered for recovery) and concluded (what did not publish removed,
//! the outcome logged and recorded with the run's figures); its encoder
//! remembered for recovery too. The encode itself is `lone`'s or
//! `piped`'s.

use super::context::{Context, log_recorded, on_node, record};
use super::files::{Target, as_owner, blocking, prepare, remove_temp};
use crate::access::vetted::FileIdentity;
use crate::engine::Stop;
use crate::engine::failure::Failure;
use crate::engine::meter::Meter;
use crate::escape::logged;
use crate::history::RunFigures;
use crate::process::{ProcessIdentity, RunAs};
use crate::queue::{Interrupted, Outcome, VariationWork};
use crate::recovery::{self, Settled};
use std::fs::File;
use std::sync::Arc;

/// One variation of a batch, ready to encode: its input open, its
/// temporary file created and remembered.
pub(super) struct Ready<'a> {
    pub(super) work: &'a VariationWork,
    pub(super) stop: &'a Stop,
    pub(super) run_as: Option<RunAs>,
    pub(super) input: File,
    pub(super) target: Arc<Target>,
    pub(super) meter: Meter,
}

/// Settle an earlier claim's leftovers, open the files and create the
/// temporary file of one variation; `None` when its outcome is recorded
/// already (settled, or failed before it could start).
pub(super) async fn get_ready<'a>(
    s: &dyn Context,
    work: &'a VariationWork,
    stop: &'a Stop,
) -> Option<Ready<'a>> {
    let run_as = RunAs::for_owner(&work.owner);
    let meter = Meter::start();
    if let Some(previous) = &work.previous
        && let Some(settled) = settle_previous(work, previous, run_as.as_ref()).await
    {
        let reason = matches!(settled, Outcome::Failed { .. }).then_some("claim_lost");
        finish(s, work, settled, meter.figures(reason)).await;
        return None;
    }
    if work.cancelled {
        // Taken over from a lost node only to settle what it left.
        finish(s, work, Outcome::Cancelled, meter.figures(None)).await;
        return None;
    }
    match prepare(s, work, run_as.as_ref()).await {
        Ok((input, target)) => {
            remember_temp(s, work, &target.temp).await;
            Some(Ready {
                work,
                stop,
                run_as,
                input,
                target: Arc::new(target),
                meter,
            })
        }
        Err(error) => {
            conclude_failed(s, work, error, &meter).await;
            None
        }
    }
}

/// Remove what a variation that did not publish left, and record its
/// outcome.
pub(super) async fn conclude(
    s: &dyn Context,
    ready: Ready<'_>,
    result: Result<Option<Outcome>, Failure>,
) {
    let Ready {
        work,
        stop,
        run_as,
        input,
        target,
        meter,
    } = ready;
    drop(input);
    if !matches!(result, Ok(Some(_))) {
        remove_temp(target, run_as.as_ref()).await;
    }
    let outcome = match result {
        Ok(Some(published)) => published,
        // A `pause --stop` that came before the shutdown is recorded: the
        // variation is queued again rather than left to be marked
        // interrupted.
        Ok(None) if stop.requeued() => Outcome::Requeued,
        Ok(None) if s.stopping().is_cancelled() => return,
        Ok(None) => Outcome::Cancelled,
        Err(error) => return conclude_failed(s, work, error, &meter).await,
    };
    finish(s, work, outcome, meter.figures(None)).await;
}

/// Record a variation's failure, naming the node in a shared queue.
async fn conclude_failed(s: &dyn Context, work: &VariationWork, error: Failure, meter: &Meter) {
    let run = meter.figures(Some(error.class()));
    let error = match on_node(s) {
        Some(on) => format!("variation {} {on}: {error}", work.index),
        None => format!("variation {}: {error}", work.index),
    };
    finish(s, work, Outcome::Failed { error }, run).await;
}

/// Log how a variation ended and record it with its run's figures
/// (`run`, for the history), fenced by its lease.
async fn finish(s: &dyn Context, work: &VariationWork, outcome: Outcome, run: RunFigures) {
    match &outcome {
        Outcome::Succeeded {
            output,
            size,
            quality,
        } => log::info!(
            "job {}: {} variation {} -> {} ({size} bytes{})",
            work.job_id,
            logged(&work.input),
            work.index,
            logged(output),
            quality.map_or(String::new(), |q| format!(
                ", SSIM {:.4} (lowest {:.4}), luma difference {:.2}",
                q.ssim_mean, q.ssim_min, q.luma_diff
            ))
        ),
        Outcome::Failed { error } => {
            log::warn!("job {}: {}: {error}", work.job_id, logged(&work.input))
        }
        Outcome::Cancelled => {}
        Outcome::Requeued => log::info!(
            "job {}: {} variation {} stopped by pause --stop, queued again",
            work.job_id,
            logged(&work.input),
            work.index
        ),
    }
    let recorded = record(s, work.job_id, || {
        s.queue()
            .finish_variation(work.lease, outcome.clone(), run.clone())
    });
    if let Some(state) = recorded.await {
        log_recorded(work.job_id, state);
    }
}

/// Settle what an earlier, lost claim on this variation left (see
/// [`recovery::settle_temp`]), as the job's owner: its temporary file
/// removed (`None`: encode now), or, when it had been published already,
/// the outcome to record instead. Removing the old temporary name is what
/// keeps a node that lost the claim from publishing, so when that fails the
/// variation fails rather than risk a second output.
async fn settle_previous(
    work: &VariationWork,
    previous: &Interrupted,
    run_as: Option<&RunAs>,
) -> Option<Outcome> {
    let (previous, run_as) = (previous.clone(), run_as.cloned());
    let settled = blocking(move || {
        as_owner(run_as.as_ref(), || {
            recovery::settle_temp(&previous).map_err(Failure::LostClaimLeftovers)
        })
    })
    .await;
    match settled {
        Ok(Settled::Published { output, size }) => {
            log::warn!(
                "job {}: variation {} was published as {} under a lost claim: recorded now",
                work.job_id,
                work.index,
                logged(&output)
            );
            Some(Outcome::Succeeded {
                output,
                size,
                quality: None,
            })
        }
        Ok(Settled::Removed | Settled::Nothing) => None,
        Err(failure) => Some(Outcome::Failed {
            error: format!("variation {}: {failure}", work.index),
        }),
    }
}

/// Record which file the temporary file is, so that recovery can find it
/// under its published name should the daemon die between publishing and
/// recording (see [`crate::recovery`]).
/// Tried like an outcome ([`record`]); the output is not published without
/// it (see [`Queue::confirm`](crate::queue::Queue::confirm)).
async fn remember_temp(s: &dyn Context, work: &VariationWork, temp: &File) {
    use std::os::unix::fs::MetadataExt;
    match temp.metadata() {
        Ok(meta) => {
            let identity = FileIdentity {
                dev: meta.dev(),
                ino: meta.ino(),
            };
            record(s, work.job_id, || s.queue().set_temp(work.lease, identity)).await;
        }
        Err(err) => log::error!(
            "job {}: cannot read the temporary file's identity: {err}",
            work.job_id
        ),
    }
}

/// Record the encoder of a variation, for recovery.
pub(super) async fn remember_process(
    s: &dyn Context,
    work: &VariationWork,
    identity: ProcessIdentity,
) {
    log::debug!(
        "job {}: ffmpeg pid {} for variation {}",
        work.job_id,
        identity.pid,
        work.index
    );
    if let Err(err) = s.queue().set_process(work.lease, identity).await {
        log::error!("job {}: cannot record ffmpeg pid: {err}", work.job_id);
    }
}
