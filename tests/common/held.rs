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
        // A group stop takes each thread as it next leaves the kernel: until
        // all have stopped, one of them could still take a signal sent now.
        wait_for(
            "the held processes to stop",
            Duration::from_secs(30),
            || {
                held.0
                    .iter()
                    .all(|&pid| all_threads_stopped(pid))
                    .then_some(())
            },
        );
        held
    }

    pub fn send(&self, signal: Signal) {
        for &pid in &self.0 {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// Wait until every held process has a SIGTERM pending (the stop's
    /// signal, which a process whose threads are all stopped cannot take
    /// yet), or is gone.
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

/// Whether every thread of process `pid` is stopped (state `T` in
/// /proc/PID/task/TID/stat), or the process is gone.
fn all_threads_stopped(pid: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.filter_map(Result::ok).all(|task| {
        std::fs::read_to_string(task.path().join("stat")).map_or(true, |stat| {
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
                .is_some_and(|state| matches!(state, 'T' | 't' | 'Z' | 'X'))
        })
    })
}

impl Drop for Held {
    fn drop(&mut self) {
        self.send(Signal::SIGCONT);
    }
}
