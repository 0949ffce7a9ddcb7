//! Queue control: pausing and resuming the daemon or one job, and changing
//! a job's priority, with who may do which. The flags live in the queue
//! (they survive restarts); the claim order they imply is the queue's
//! ([`crate::queue::Queue::claim`]).

use super::{ApiError, Engine};
use crate::job::Credentials;
use crate::proto::{JobDetail, JobId, Pong};
use std::sync::atomic::Ordering;

impl Engine {
    /// Pause the daemon (`Some(true)`) or resume it: while paused no probe
    /// or variation starts; with `stop`, running variations are stopped and
    /// queued again (probes finish), and the answer comes once they are.
    ///
    /// Errors: [`ApiError::Forbidden`] unless `peer` is root or the
    /// daemon's user.
    pub async fn pause_daemon(
        &self,
        peer: &Credentials,
        paused: bool,
        stop: bool,
    ) -> Result<Pong, ApiError> {
        if !self.is_admin(peer) {
            let what = if paused { "pause" } else { "resume" };
            return Err(ApiError::Forbidden(format!(
                "only root or the daemon's own user may {what} the daemon; \
                 `vidvarctl {what} JOB` acts on one of your jobs"
            )));
        }
        self.queue.set_paused(paused).await?;
        self.paused.store(paused, Ordering::SeqCst);
        if paused {
            log::info!("paused by uid {}: no new work starts", peer.uid);
            if stop {
                self.stop_running(None, true).await;
            }
        } else {
            log::info!("resumed by uid {}", peer.uid);
            self.wake.notify_one();
        }
        self.notify_change();
        self.pong().await
    }

    /// Pause or resume one job of `peer`'s (any job for an administrator):
    /// none of its work starts while paused; with `stop`, its running
    /// variations are stopped and queued again.
    ///
    /// Errors: [`ApiError::NotFound`]; [`ApiError::Invalid`] for a final
    /// job.
    pub async fn pause_job(
        &self,
        peer: &Credentials,
        job: JobId,
        paused: bool,
        stop: bool,
    ) -> Result<JobDetail, ApiError> {
        let what = if paused { "pause" } else { "resume" };
        self.open_job(peer, job, what).await?;
        self.queue
            .set_job_paused(job, paused)
            .await?
            .ok_or(ApiError::NotFound(job))?;
        log::info!("job {job}: {what}d by uid {}", peer.uid);
        if paused && stop {
            self.stop_running(Some(job), true).await;
        }
        self.wake.notify_one();
        self.notify_change();
        self.detail(peer, job).await
    }

    /// Set the priority of a job of `peer`'s that is not final; running
    /// variations go on.
    ///
    /// Errors: [`ApiError::NotFound`]; [`ApiError::Invalid`] for a final
    /// job or a priority out of range.
    pub async fn set_priority(
        &self,
        peer: &Credentials,
        job: JobId,
        priority: i32,
    ) -> Result<JobDetail, ApiError> {
        super::admission::check_priority(priority).map_err(|e| ApiError::Invalid(e.to_string()))?;
        self.open_job(peer, job, "reprioritize").await?;
        self.queue
            .set_priority(job, priority)
            .await?
            .ok_or(ApiError::NotFound(job))?;
        log::info!("job {job}: priority {priority}, set by uid {}", peer.uid);
        self.wake.notify_one();
        self.notify_change();
        self.detail(peer, job).await
    }

    /// Check that `peer` may see `job` and that it is not final.
    async fn open_job(&self, peer: &Credentials, job: JobId, what: &str) -> Result<(), ApiError> {
        let row = self.visible_job(peer, job).await?;
        if row.state.is_final() {
            return Err(ApiError::Invalid(format!(
                "job {job} has ended ({}): nothing to {what}",
                row.state.as_str()
            )));
        }
        Ok(())
    }
}
