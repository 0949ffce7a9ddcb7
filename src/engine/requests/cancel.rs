//! Cancel and retry: a job's state changed in the queue, and its running
//! variations stopped (also for `pause --stop`, which queues them again)
//! until their FFmpeg processes are gone and their outcomes recorded.

use super::ApiError;
use crate::engine::Engine;
use crate::job::Credentials;
use crate::proto::{JobDetail, JobId, JobState};

impl Engine {
    /// Cancel a job and wait until its FFmpeg processes are gone and their
    /// temporary files removed: this node's, and on a shared queue other
    /// nodes' ([`Self::wait_stopped_elsewhere`]).
    ///
    /// Errors: [`ApiError::NotFound`]; [`ApiError::AlreadyEnded`] for a job
    /// that had already ended (its state as the queue found it when asked
    /// to cancel it), left unchanged.
    pub async fn cancel(&self, peer: &Credentials, job: JobId) -> Result<JobDetail, ApiError> {
        self.visible_job(peer, job).await?;
        let before = self
            .queue
            .cancel(job)
            .await?
            .ok_or(ApiError::NotFound(job))?;
        if before.is_final() {
            return Err(ApiError::AlreadyEnded {
                job,
                state: before,
                request: "cancel",
            });
        }
        log::info!("job {job}: cancelled");
        self.stop_running(Some(job), false).await;
        self.wait_stopped_elsewhere(job).await;
        self.notify_change();
        self.detail(peer, job).await
    }

    /// On a shared queue, wait until no other node holds a variation of
    /// the cancelled `job` running: each node hears of the cancel at its
    /// next heartbeat and stops its FFmpeg within its grace period, and
    /// the claims of a node that died are settled once their lease expired
    /// (a node with a free slot takes them over only to settle them). Waits
    /// at most this node's grace period and lease time together, then
    /// answers anyway; nothing on one machine.
    async fn wait_stopped_elsewhere(&self, job: JobId) {
        let Some(shared) = &self.settings.shared else {
            return;
        };
        let limit = self.tunables().grace + shared.node.lease_timeout;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.queue.running_elsewhere(Some(job)).await {
                Ok(rows) if rows.is_empty() => return,
                Ok(_) => {}
                Err(err) => {
                    log::warn!("job {job}: cannot tell whether other nodes stopped it: {err}");
                    return;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                log::warn!(
                    "job {job}: other nodes still run some of it after {}; answering the cancel",
                    humantime::format_duration(limit)
                );
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    /// Stop the running variations of `job` (of every job for `None`), to
    /// be queued again when `requeue`, else cancelled, and wait until their
    /// FFmpeg processes are gone and their outcomes recorded. A claim in
    /// flight may be of the job: it is waited for and stopped too.
    ///
    /// Only work claimed before the call is stopped (claims numbered up to
    /// its horizon): the caller stored the cancel or pause first, so later
    /// claims hold none of that work, and work claimed after a `resume`
    /// that came meanwhile runs on.
    pub(crate) async fn stop_running(&self, job: Option<JobId>, requeue: bool) {
        let horizon = self.live().last_claim;
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let any_left = {
                let live = self.live();
                let mut any = live.claims.first().is_some_and(|&c| c <= horizon);
                for run in live
                    .running
                    .values()
                    .filter(|r| r.claim <= horizon && job.is_none_or(|j| r.job_id == j))
                {
                    if requeue {
                        run.stop.requeue();
                    } else {
                        run.stop.cancel();
                    }
                    any = true;
                }
                any
            };
            if !any_left {
                return;
            }
            ended.await;
        }
    }

    /// Re-queue what did not succeed in a failed, partial or cancelled job.
    ///
    /// Errors: [`ApiError::NotFound`]; [`ApiError::AlreadyEnded`] for a job
    /// that succeeded; [`ApiError::Invalid`] for a job that is still queued
    /// or running, or whose variations a cancel is still stopping; each
    /// left as it is.
    pub async fn retry(&self, peer: &Credentials, job: JobId) -> Result<JobDetail, ApiError> {
        if self.is_stopping() {
            return Err(ApiError::ShuttingDown);
        }
        self.visible_job(peer, job).await?;
        let (before, requeued) = self
            .queue
            .retry(job)
            .await?
            .ok_or(ApiError::NotFound(job))?;
        if requeued == 0 {
            return Err(match before {
                JobState::Succeeded => ApiError::AlreadyEnded {
                    job,
                    state: before,
                    request: "retry",
                },
                JobState::Queued | JobState::Running => ApiError::Invalid(format!(
                    "job {job} is {}: nothing to retry",
                    before.as_str()
                )),
                _ => ApiError::Invalid(format!(
                    "job {job} is {} but its variations are still being stopped: \
                     retry once they are",
                    before.as_str()
                )),
            });
        }
        log::info!("job {job}: retrying {requeued} variation(s)");
        // The answer shows the job as retried, before any of it starts.
        let detail = self.detail(peer, job).await;
        self.wake.notify_one();
        self.notify_change();
        detail
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fixture, request, user};
    use super::*;
    use crate::proto::JobState;

    #[tokio::test]
    async fn cancel_and_retry_follow_the_job_state() {
        let f = fixture();
        let alice = user(4_000_001);
        let job = f
            .engine
            .submit(&alice, request(&f, &[&f.clip], 2))
            .await
            .unwrap();
        let err = f.engine.retry(&alice, job).await.unwrap_err();
        assert!(
            err.to_string().contains("is queued: nothing to retry"),
            "{err}"
        );
        let cancelled = f.engine.cancel(&alice, job).await.unwrap();
        assert_eq!(cancelled.summary.state, JobState::Cancelled);
        // Once ended, nothing to cancel: said so, with a kind of its own.
        let again = f.engine.cancel(&alice, job).await.unwrap_err().to_wire();
        assert_eq!(again.kind, crate::proto::ErrorKind::Ended);
        assert_eq!(
            again.message,
            format!("job {job} had already been cancelled: nothing to cancel")
        );
        let retried = f.engine.retry(&alice, job).await.unwrap();
        assert_eq!(retried.summary.state, JobState::Queued);
        // Pruning spares what is not final, and others' records.
        assert_eq!(f.engine.prune(&alice, 0).await.unwrap(), 0);
        f.engine.cancel(&alice, job).await.unwrap();
        assert_eq!(f.engine.prune(&user(4_000_002), 0).await.unwrap(), 0);
        assert_eq!(f.engine.prune(&alice, 0).await.unwrap(), 1);
        assert!(matches!(
            f.engine.detail(&alice, job).await,
            Err(ApiError::NotFound(_))
        ));
    }
}
