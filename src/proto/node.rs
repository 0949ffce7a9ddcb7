//! This daemon and its nodes as the wire shows them: `ping`'s liveness
//! and load ([`Pong`]) and each node of `vidvarctl nodes`.

use serde::{Deserialize, Serialize};

/// Whether a node takes part in the queue now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Its heartbeat is within the lease time.
    Up,
    /// No heartbeat for longer than the lease time: its work is taken over.
    Lost,
    /// It stopped cleanly.
    Stopped,
}

impl NodeState {
    /// Lowercase name, as in `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Up => "up",
            NodeState::Lost => "lost",
            NodeState::Stopped => "stopped",
        }
    }
}

/// One node of `vidvarctl nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub host: String,
    pub state: NodeState,
    /// Its `max_parallel`.
    pub slots: u32,
    /// Variations it runs now.
    pub running: u32,
    /// Unix seconds of its last heartbeat.
    pub last_heartbeat: i64,
}

/// Answer to [`Request::Ping`](super::Request::Ping).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    pub daemon_version: String,
    pub protocol: u32,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// Jobs queued or running.
    pub queue_depth: u64,
    /// FFmpeg processes running now.
    pub running_processes: u64,
    /// This daemon's node name in a shared queue; `None` on one machine.
    pub node: Option<String>,
    /// Paused by `vidvarctl pause`: it starts no new work.
    pub paused: bool,
}
