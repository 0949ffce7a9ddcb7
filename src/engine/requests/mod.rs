//! The request API: one method per client request, over the queue and a
//! snapshot of live progress, with the access rules (who sees which job,
//! whose permissions judge a submission) and the limits on pending work.
//! [`ApiError`] is the one place that maps internal errors to the wire.
//!
//! Each kind of request has a module of its own: `submit` (a job judged,
//! drawn and queued, within the limits), `views` (status, list, outputs),
//! `cancel` (cancel and retry), `prune` (finished records removed, on
//! request and by the retention period) and `node` (ping and the nodes);
//! `error` holds [`ApiError`]. Here is only the rule every request about
//! one job goes through: `Engine::visible_job`.

mod cancel;
mod error;
mod node;
mod prune;
mod submit;
#[cfg(test)]
mod testing;
mod views;

pub use error::ApiError;
pub(in crate::engine) use node::node_info;
pub use prune::RETENTION_INTERVAL;
pub(crate) use submit::refusal;
pub use submit::{MAX_PENDING_JOBS, MAX_PENDING_VARIATIONS_PER_USER};

use super::Engine;
use crate::job::Credentials;
use crate::proto::JobId;
use crate::queue::JobRow;

impl Engine {
    /// A job row visible to `peer`; others' jobs are "no such job".
    pub(crate) async fn visible_job(
        &self,
        peer: &Credentials,
        job: JobId,
    ) -> Result<JobRow, ApiError> {
        match self.queue.job(job).await? {
            Some(row) if self.may_access(peer, row.owner_uid) => Ok(row),
            _ => Err(ApiError::NotFound(job)),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The access rules across requests: administrators and owners.

    use super::testing::{fixture, kind, listed, request, root, user};
    use super::*;
    use crate::proto::{ErrorKind, JobState};

    #[tokio::test]
    async fn only_administrators_pause_the_daemon_and_owners_their_jobs() {
        let f = fixture();
        let (alice, bob) = (user(4_000_001), user(4_000_002));
        let job = f
            .engine
            .submit(&alice, request(&f, &[&f.clip], 1))
            .await
            .unwrap();
        let err = f
            .engine
            .pause_daemon(&alice, true, false)
            .await
            .unwrap_err();
        assert_eq!(kind(err), ErrorKind::PermissionDenied);
        assert!(!f.engine.pong().await.unwrap().paused);
        assert!(
            f.engine
                .pause_daemon(&root(), true, false)
                .await
                .unwrap()
                .paused
        );
        assert!(
            f.engine.queue.paused().await.unwrap(),
            "stored, for the restart"
        );

        let err = f
            .engine
            .pause_job(&bob, job, true, false)
            .await
            .unwrap_err();
        assert_eq!(kind(err), ErrorKind::NotFound);
        let paused = f.engine.pause_job(&alice, job, true, false).await.unwrap();
        assert!(paused.summary.paused && paused.daemon_paused);
        assert!(listed(&f, &alice).await[0].paused);

        let err = f.engine.set_priority(&alice, job, 1001).await.unwrap_err();
        assert_eq!(kind(err), ErrorKind::InvalidRequest);
        let raised = f.engine.set_priority(&alice, job, -5).await.unwrap();
        assert_eq!(raised.summary.priority, -5);

        f.engine.cancel(&alice, job).await.unwrap();
        let err = f
            .engine
            .pause_job(&alice, job, false, false)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("has ended (cancelled): nothing to resume"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn others_jobs_are_invisible_and_root_sees_all() {
        let f = fixture();
        let (alice, bob) = (user(4_000_001), user(4_000_002));
        let job = f
            .engine
            .submit(&alice, request(&f, &[&f.clip], 2))
            .await
            .unwrap();
        let detail = f.engine.detail(&alice, job).await.unwrap();
        assert_eq!(detail.summary.state, JobState::Queued);
        assert_eq!(detail.files[0].path, f.clip);

        assert_eq!(listed(&f, &bob).await.len(), 0);
        assert!(matches!(f.engine.detail(&bob, job).await, Err(ApiError::NotFound(j)) if j == job));
        assert!(matches!(
            f.engine.outputs(&bob, job).await,
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            f.engine.cancel(&bob, job).await,
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            f.engine.retry(&bob, job).await,
            Err(ApiError::NotFound(_))
        ));
        assert_eq!(listed(&f, &root()).await.len(), 1);
        assert_eq!(listed(&f, &alice).await[0].id, job);
    }
}
