//! This daemon and the nodes it shares the queue with: `ping`'s liveness
//! and load, and `nodes` (each node's state, slots and running work, as
//! `top` shows them too).

use super::ApiError;
use crate::engine::Engine;
use crate::proto::{NodeInfo, NodeState, Pong};
use crate::queue::{NodeRow, unix_now};
use std::sync::atomic::Ordering;

impl Engine {
    /// Liveness and load.
    pub async fn pong(&self) -> Result<Pong, ApiError> {
        let queue_depth = self.queue.queue_depth().await?;
        Ok(Pong {
            daemon_version: env!("CARGO_PKG_VERSION").into(),
            protocol: crate::proto::PROTOCOL_VERSION,
            uptime_secs: self.started.elapsed().as_secs(),
            queue_depth,
            running_processes: self.live().running.len() as u64,
            node: self.node_name().map(String::from),
            paused: self.paused.load(Ordering::SeqCst),
        })
    }

    /// The nodes sharing the queue, or this daemon alone on one machine.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ApiError> {
        let rows = self.queue.nodes().await?;
        if rows.is_empty() {
            return Ok(vec![NodeInfo {
                name: crate::config::host_name(),
                host: crate::config::host_name(),
                state: NodeState::Up,
                slots: self.tunables().max_parallel as u32,
                running: self.live().running.len() as u32,
                last_heartbeat: unix_now(),
            }]);
        }
        Ok(rows.into_iter().map(node_info).collect())
    }
}

/// A node of the shared queue as `nodes` and `top` show it.
pub(in crate::engine) fn node_info(n: NodeRow) -> NodeInfo {
    NodeInfo {
        state: match (n.up, n.stopped) {
            (true, _) => NodeState::Up,
            (false, true) => NodeState::Stopped,
            (false, false) => NodeState::Lost,
        },
        name: n.name,
        host: n.host,
        slots: n.slots,
        running: n.running,
        last_heartbeat: n.last_heartbeat,
    }
}
