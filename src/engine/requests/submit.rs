//! Submit: a job judged as its owner's submission, its seed and effects
//! drawn, and queued within the limits on pending work (for everyone, and
//! per user); the one path every job takes into the queue, a client's or
//! a watch folder's.

use super::ApiError;
use crate::effects;
use crate::engine::{Engine, admission};
use crate::job::Credentials;
use crate::proto::{JobId, SubmitRequest};
use crate::queue::{Full, Limits, NewJob, unix_now};

/// Most jobs queued or running at once; submissions beyond are refused.
pub const MAX_PENDING_JOBS: u64 = 10_000;
/// Most variations queued or running for one user other than root and the
/// daemon's user, so that one user cannot fill the queue (and the
/// database) for everyone.
pub const MAX_PENDING_VARIATIONS_PER_USER: u64 = 100_000;

impl Engine {
    /// Validate (see [`admission::check`]) and queue a job for `peer`; at
    /// most [`MAX_PENDING_JOBS`] jobs may be pending.
    pub async fn submit(&self, peer: &Credentials, req: SubmitRequest) -> Result<JobId, ApiError> {
        let job = self.admit(peer, req).await?;
        let (inputs, variations, seed) = (job.inputs.len(), job.variations, job.seed);
        let id = self
            .queue
            .submit(job, self.limits_for(peer))
            .await?
            .map_err(refusal)?;
        self.queued(id, peer, inputs, variations, seed);
        Ok(id)
    }

    /// The job `req` asks for on behalf of `owner`, judged as a submission
    /// of theirs ([`admission::check`], on a blocking thread), with its
    /// seed and effects drawn: the one path every job takes into the queue,
    /// a client's or a watch folder's.
    pub(crate) async fn admit(
        &self,
        owner: &Credentials,
        req: SubmitRequest,
    ) -> Result<NewJob, ApiError> {
        if self.is_stopping() {
            return Err(ApiError::ShuttingDown);
        }
        let judge = self.judge_for(owner);
        let (req, admitted) = tokio::task::spawn_blocking(move || {
            admission::check(&req, &judge).map(|admitted| (req, admitted))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("the submission check failed: {e}")))??;
        let seed = req.seed.unwrap_or_else(effects::random_seed);
        let mut inputs = Vec::with_capacity(admitted.inputs.len());
        for (i, (path, vetted)) in admitted.inputs.into_iter().enumerate() {
            let sets = effects::generate(&self.settings.effects, seed, i as u32, req.variations)
                .map_err(|e| ApiError::Internal(format!("the daemon's effect ranges: {e}")))?;
            inputs.push((path, vetted, sets));
        }
        let mut labels = req.labels;
        labels.sort_unstable();
        labels.dedup();
        Ok(NewJob {
            seed,
            output_dir: (req.output_dir, admitted.output_dir),
            variations: req.variations,
            inputs,
            created_at: unix_now(),
            owner: owner.clone(),
            priority: req.priority,
            labels,
        })
    }

    /// The limits a new job of `owner` must fit in.
    pub(crate) fn limits_for(&self, owner: &Credentials) -> Limits {
        Limits {
            max_jobs: MAX_PENDING_JOBS,
            max_owner_variations: (!self.is_admin(owner))
                .then_some(MAX_PENDING_VARIATIONS_PER_USER),
        }
    }

    /// A job was stored: log it and wake the dispatch loop and watchers.
    pub(crate) fn queued(
        &self,
        id: JobId,
        owner: &Credentials,
        inputs: usize,
        variations: u32,
        seed: u64,
    ) {
        log::info!(
            "job {id}: queued {inputs} input(s) x {variations} variation(s), seed {seed}, \
             for uid {}",
            owner.uid
        );
        self.wake.notify_one();
        self.notify_change();
    }
}

/// Why a job that passed its checks does not fit in the queue now.
pub(crate) fn refusal(full: Full) -> ApiError {
    match full {
        Full::Jobs { pending } => ApiError::Busy(format!(
            "the queue is full ({pending} jobs pending); try again when some have finished"
        )),
        Full::Owner { pending, asked } => ApiError::Busy(format!(
            "you have {pending} variations pending and ask for {asked} more; at most \
             {MAX_PENDING_VARIATIONS_PER_USER} may be pending per user: try again when some \
             have finished"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fixture, kind, request, root, user};
    use crate::proto::ErrorKind;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn submissions_are_judged_for_the_client_with_the_right_error_kind() {
        let f = fixture();
        let alice = user(4_000_001);
        let missing = f.out.join("missing.mp4");
        let err = f
            .engine
            .submit(&alice, request(&f, &[&missing], 1))
            .await
            .unwrap_err();
        assert_eq!(kind(err), ErrorKind::BadInput);
        std::fs::set_permissions(&f.clip, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = f
            .engine
            .submit(&alice, request(&f, &[&f.clip], 1))
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("permission denied"), "{err}");
        let err = f
            .engine
            .submit(&alice, request(&f, &[&f.clip], 0))
            .await
            .unwrap_err();
        assert_eq!(kind(err), ErrorKind::InvalidRequest);
        // Root is not judged by mode bits.
        f.engine
            .submit(&root(), request(&f, &[&f.clip], 1))
            .await
            .unwrap();
        // Nor is anyone once the daemon stops.
        f.engine.stopping.cancel();
        let err = f
            .engine
            .submit(&root(), request(&f, &[&f.clip], 1))
            .await
            .unwrap_err();
        assert_eq!(kind(err), ErrorKind::ShuttingDown);
    }
}
