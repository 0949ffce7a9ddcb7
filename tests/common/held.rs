//! Processes held stopped: a daemon's FFmpeg processes and stage frozen
//! with SIGSTOP, so that a stop request (a cancel, `pause --stop`, a
//! shutdown) waits in its grace period for as long as a test needs, and
//! released with SIGCONT when the test is done with them or fails.

use super::{Daemon, children_named, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::Duration;

/// The FFmpeg processes and the stage under a daemon, held stopped
/// (SIGSTOP) until released (SIGCONT), also when the test fails.
pub struct Held(Vec<i32>);

impl Held {
    pub fn all_of(daemon: &Daemon) -> Held {
        let pids: Vec<i32> = children_named(daemon.pid(), &["ffmpeg", "vidvar-stage"])
            .into_iter()
            .map(|(pid, _)| pid)
            .collect();
        assert!(!pids.is_empty(), "no FFmpeg under the daemon");
        let held = Held(pids);
        held.send(Signal::SIGSTOP);
        held
    }

    pub fn send(&self, signal: Signal) {
        for &pid in &self.0 {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// Wait until every held process has a SIGTERM pending (the stop's
    /// signal, which a stopped process cannot act on yet), or is gone.
    pub fn wait_signalled(&self) {
        let term = 1u64 << (Signal::SIGTERM as i32 - 1);
        wait_for(
            "SIGTERM pending on the held processes",
            Duration::from_secs(120),
            || {
                self.0
                    .iter()
                    .all(|pid| {
                        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                        else {
                            return true;
                        };
                        status.lines().any(|l| {
                            l.strip_prefix("ShdPnd:").is_some_and(|mask| {
                                u64::from_str_radix(mask.trim(), 16).is_ok_and(|m| m & term != 0)
                            })
                        })
                    })
                    .then_some(())
            },
        );
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.send(Signal::SIGCONT);
    }
}
