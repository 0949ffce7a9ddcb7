//! Dispatch: whenever enough of `max_parallel` slots are free (any when
//! nothing runs; with the pixel path, otherwise half of them: [`gather`]),
//! claim the next turn from the queue (a probe, or up to the free slots of
//! one file's variations) and hand each piece to a [`worker`] task on the
//! runtime. Jobs take turns in submission order (round robin), and within
//! a job inputs go in order, so a job of many inputs shares the slots with
//! later jobs instead of starving them. The progress of running
//! variations is kept in memory and written to the queue once a second,
//! all files in one call. At shutdown, running FFmpeg processes are
//! stopped and unfinished work is left to the queue's interrupted marking.

use super::{Engine, Running, Stop, worker};
use crate::config::PixelPath;
use crate::engine::supervisor::Progress;
use crate::queue::{Beat, Lease, QueueError, Work};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often the leases of running work are renewed and the progress of
/// running files is written to the queue.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// Free slots a turn waits for while other work runs. With the pixel
/// path, half of them, rounded up, so that the variations of one file go
/// to one pipeline (one decode) instead of one each as single slots free
/// up (measured in `vidvar_bench -- --pixel-path`: a turn on every single
/// free slot made pipelines of one or two variations on 2 cores). With
/// `pixel_path = "ffmpeg"` nothing is shared: one.
fn gather(slots: usize, pixel_path: PixelPath) -> usize {
    match pixel_path {
        PixelPath::Vidvar => slots.div_ceil(2),
        PixelPath::Ffmpeg => 1,
    }
}

impl Engine {
    /// The dispatch loop: start work while slots are free, until shutdown.
    /// Turns go to jobs in turn (see [`Queue::claim`](crate::queue::Queue::claim)), so a job of many
    /// inputs shares them with later jobs instead of starving them.
    /// Then stop every running FFmpeg process (SIGTERM, SIGKILL after the
    /// grace period), wait for the workers, and mark unfinished work
    /// interrupted in the store.
    pub async fn run(self: Arc<Self>) {
        match self.queue.paused().await {
            Ok(paused) => {
                if paused {
                    log::info!("paused (vidvarctl pause): no new work starts until resumed");
                }
                self.paused.store(paused, Ordering::SeqCst);
            }
            Err(err) => log::error!("cannot read whether the daemon was paused: {err}"),
        }
        let mut beat = tokio::time::interval(HEARTBEAT_INTERVAL);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if let Err(err) = self.dispatch().await {
                log::error!("cannot dispatch work: {err}");
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = self.stopping.cancelled() => break,
                // Also retries dispatching after a store error.
                _ = beat.tick() => self.heartbeat().await,
            }
        }
        // Every running variation's stop is a child of `stopping`: each
        // has fired, keeping a `pause --stop`'s wish to queue it again.
        // The heartbeat goes on until the work has ended, so that on a
        // shared queue no other node takes over what is still being
        // stopped here (the grace period may outlast a lease).
        self.tasks.close();
        let ended = self.tasks.wait();
        tokio::pin!(ended);
        loop {
            tokio::select! {
                () = &mut ended => break,
                _ = beat.tick() => self.heartbeat().await,
            }
        }
        match self.queue.requeue_idle_jobs().await {
            Ok(jobs) if !jobs.is_empty() => log::info!("jobs {jobs:?} stay queued for the restart"),
            Ok(_) => {}
            Err(err) => log::error!("cannot requeue waiting jobs: {err}"),
        }
        match self.queue.mark_interrupted().await {
            Ok(jobs) if !jobs.is_empty() => log::info!("jobs {jobs:?} interrupted by shutdown"),
            Ok(_) => {}
            Err(err) => log::error!("cannot mark interrupted work: {err}"),
        }
        if let Err(err) = self.queue.leave().await {
            log::warn!("cannot mark this node stopped in the queue: {err}");
        }
    }

    /// Begin shutdown: see [`Engine::run`].
    pub fn stop(&self) {
        self.stopping.cancel();
    }

    async fn dispatch(self: &Arc<Self>) -> Result<(), QueueError> {
        loop {
            if self.is_stopping() {
                return Ok(());
            }
            // 0 slots: the node drains (takes no new work).
            let tunables = self.tunables();
            let slots = tunables.max_parallel;
            let (after, free, claim) = {
                let mut live = self.live();
                // Read under the lock a stop takes its horizon under (see
                // `Engine::stop_running`): a claim numbered after a `pause
                // --stop`'s horizon is never of work that pause stopped.
                if self.paused.load(Ordering::SeqCst) {
                    // Each pass a paused daemon makes (at every wake and
                    // heartbeat): the record that it looked and took nothing.
                    log::trace!("paused: no work claimed");
                    return Ok(());
                }
                let busy = live.running.len() + live.probing.len();
                let wanted = gather(slots, tunables.pixel_path);
                if busy >= slots || (busy > 0 && slots - busy < wanted) {
                    return Ok(());
                }
                live.last_claim += 1;
                let claim = live.last_claim;
                live.claims.insert(claim);
                (live.last_job, slots - busy, claim)
            };
            // Until the claim is registered, a cancel waits for it.
            let claiming = Claiming(self, claim);
            let Some(work) = self.queue.claim(after, free).await? else {
                return Ok(());
            };
            let mut live = self.live();
            live.last_job = match &work {
                Work::Probe { job_id, .. } => *job_id,
                Work::Encode(batch) => batch.first().map_or(live.last_job, |e| e.job_id),
            };
            match work {
                Work::Probe {
                    job_id,
                    lease,
                    path,
                    input,
                    owner,
                } => {
                    live.probing.insert(lease);
                    let slot = Slot::Probe(Arc::clone(self), lease);
                    self.tasks.spawn(async move {
                        let s = slot.scheduler();
                        worker::probe(s, job_id, lease, &path, &input, &owner).await;
                    });
                }
                Work::Encode(batch) => {
                    // One pipeline for the batch; each variation holds its
                    // own slot until the pipeline has ended.
                    let mut members = Vec::with_capacity(batch.len());
                    let mut slots = Vec::with_capacity(batch.len());
                    for work in batch {
                        let stop = Stop::child_of(&self.stopping);
                        live.running.insert(
                            work.lease.id,
                            Running {
                                lease: work.lease,
                                job_id: work.job_id,
                                file_id: work.file_id,
                                index: work.index,
                                progress: Progress::default(),
                                stop: stop.clone(),
                                claim,
                            },
                        );
                        slots.push(Slot::Encode(Arc::clone(self), work.lease.id));
                        members.push((work, stop));
                    }
                    self.tasks.spawn(async move {
                        worker::encode(slots[0].scheduler(), &members).await;
                        drop(slots);
                    });
                }
            }
            drop(live);
            drop(claiming);
            self.notify_change();
        }
    }

    /// Record a running variation's progress (in memory; see
    /// [`Engine::heartbeat`]).
    pub(crate) fn report_progress(&self, variation_id: i64, progress: Progress) {
        if let Some(run) = self.live().running.get_mut(&variation_id) {
            run.progress = progress;
        }
        self.notify_change();
    }

    /// The heartbeat, every [`HEARTBEAT_INTERVAL`]: renew the leases of
    /// the running variations and write the progress of every running file
    /// in one call, so the queue sees one write a second however many
    /// encodes run; then stop the work whose lease was lost or whose job
    /// was cancelled (on another node, say).
    pub(crate) async fn heartbeat(&self) {
        let beat = {
            let live = self.live();
            let variations: Vec<Lease> = live.running.values().map(|r| r.lease).collect();
            let mut files: Vec<i64> = live.running.values().map(|r| r.file_id).collect();
            files.sort_unstable();
            files.dedup();
            let progress = files
                .into_iter()
                .map(|f| (f, live.running_sum(f)))
                .collect::<Vec<_>>();
            Beat {
                variations,
                probes: live.probing.iter().copied().collect(),
                progress,
                slots: self.tunables().max_parallel as u32,
            }
        };
        match self.queue.heartbeat(beat).await {
            Ok(stop) => {
                let live = self.live();
                for lease in stop {
                    if let Some(run) = live.running.get(&lease.id).filter(|r| r.lease == lease) {
                        // Said once: the queue names it at every beat
                        // until its FFmpeg is gone.
                        if !run.stop.token().is_cancelled() {
                            log::warn!(
                                "job {}: variation {} must stop: its claim was lost or its \
                                 job cancelled",
                                run.job_id,
                                run.index
                            );
                        }
                        run.stop.cancel();
                    }
                }
            }
            Err(err) => log::warn!("heartbeat failed (leases not renewed): {err}"),
        }
    }
}

/// A claim in flight, by number; dropping it (registered, or failed)
/// tells a waiting cancel to look again.
struct Claiming<'a>(&'a Engine, u64);

impl Drop for Claiming<'_> {
    fn drop(&mut self) {
        self.0.live().claims.remove(&self.1);
        self.0.ended.notify_waiters();
    }
}

/// A slot taken by a worker task; dropping it (when the task ends, even by
/// a panic) frees the slot and wakes whoever waits for one.
enum Slot {
    /// The probe's claim.
    Probe(Arc<Engine>, Lease),
    /// The variation's id.
    Encode(Arc<Engine>, i64),
}

impl Slot {
    fn scheduler(&self) -> &Engine {
        match self {
            Slot::Probe(s, _) | Slot::Encode(s, _) => s,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let s = self.scheduler();
        match *self {
            Slot::Probe(_, lease) => {
                s.live().probing.remove(&lease);
            }
            Slot::Encode(_, variation_id) => {
                s.live().running.remove(&variation_id);
                s.ended.notify_waiters();
            }
        }
        s.wake.notify_one();
        s.notify_change();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pixel_path_waits_for_half_the_slots() {
        let halves: Vec<usize> = [1, 2, 3, 4, 12]
            .map(|slots| gather(slots, PixelPath::Vidvar))
            .to_vec();
        assert_eq!(halves, [1, 1, 2, 2, 6]);
        assert_eq!(gather(12, PixelPath::Ffmpeg), 1);
    }
}
