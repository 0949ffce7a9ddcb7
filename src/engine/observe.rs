//! What the engine shows of itself as a whole: the metrics' [`Snapshot`]
//! (the queue's counters and depth, this daemon's slots and running
//! encodes, the nodes). Figures only: no path, label or user of a job, so
//! any socket user may read them. Rendering is [`crate::metrics`]'s.

use super::{ApiError, Engine};
use crate::metrics::Snapshot;
use std::sync::atomic::Ordering;

impl Engine {
    /// The metrics as of now.
    ///
    /// Errors: [`ApiError`] when the queue cannot be read.
    pub async fn metrics(&self) -> Result<Snapshot, ApiError> {
        let (counters, census, nodes) = tokio::try_join!(
            self.queue.counters(),
            self.queue.census(),
            self.queue.nodes()
        )?;
        let (running, busy, fps) = {
            let live = self.live();
            let fps = live
                .running
                .values()
                .filter_map(|r| r.progress.fps)
                .collect();
            let busy = live.running.len() + live.probing.len() + live.claiming;
            (live.running.len() as u32, busy as u32, fps)
        };
        Ok(Snapshot {
            version: env!("CARGO_PKG_VERSION").into(),
            counters,
            census,
            slots: self.tunables().max_parallel as u32,
            busy,
            running,
            paused: self.paused.load(Ordering::SeqCst),
            fps,
            nodes,
        })
    }
}
