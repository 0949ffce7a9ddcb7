//! Where a daemon run's CPU goes, by stage of the work: each child of the
//! daemon is given its role from its argv while it runs (an observer
//! thread reads `/proc/PID/task/*/children` every few milliseconds), and
//! its exact CPU time from the process accounting record written when it
//! ends ([`crate::accounting`]). The observer also keeps the peak RSS of
//! each `vidvar-stage` with the number of variations it served.

use crate::accounting::Exit;
use crate::daemon::DaemonCpu;
use crate::machine::rss_mib;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the observer looks for new children.
const POLL: Duration = Duration::from_millis(5);

/// What a child of the daemon does, from its argv (see
/// `vidvar::ffmpeg::argv`: `decode`, `encode_raw`, `encode`, `check`,
/// `probe`, and `stage` for `vidvar-stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// ffprobe of an input or an output.
    Probe,
    /// The pipeline's FFmpeg decoding an input once for its batch.
    Decode,
    /// `vidvar-stage`: rotation and eq of every frame, for its batch.
    Warp,
    /// A pipeline's FFmpeg encoding one variation's raw frames.
    Encode,
    /// `pixel_path = "ffmpeg"`: one FFmpeg decoding, filtering (`rotate`,
    /// `eq`) and encoding one variation.
    WholeEncode,
    /// The quality check of one output.
    Check,
    /// An FFmpeg that ended before the observer saw its argv.
    Unseen,
}

impl Role {
    /// The role of a process running `argv`; `None` while it is not yet
    /// one of ours (between the daemon's fork and the exec, a child still
    /// shows the daemon's argv).
    fn of_argv(argv: &[String]) -> Option<Role> {
        let program = argv
            .first()
            .and_then(|a| a.rsplit('/').next())
            .unwrap_or_default();
        let has = |s: &str| argv.iter().any(|a| a == s);
        let encoder = argv
            .windows(2)
            .any(|w| w[0] == "-c:v" && w[1] != "rawvideo");
        Some(match program {
            "vidvar-stage" => Role::Warp,
            "ffprobe" => Role::Probe,
            "ffmpeg" if argv.windows(2).any(|w| w[0] == "-f" && w[1] == "null") => Role::Check,
            // Raw frames in: the stage's output.
            "ffmpeg" if has("-video_size") => Role::Encode,
            "ffmpeg" if encoder => Role::WholeEncode,
            // Raw frames out only.
            "ffmpeg" => Role::Decode,
            _ => return None,
        })
    }

    fn of_comm(comm: &str) -> Role {
        match comm {
            "vidvar-stage" => Role::Warp,
            "ffprobe" => Role::Probe,
            _ => Role::Unseen,
        }
    }
}

/// What the observer saw of one child.
#[derive(Debug, Clone, Copy)]
struct Seen {
    role: Role,
    /// `vidvar-stage` only: its `--output`s, and its peak RSS (MiB).
    outputs: usize,
    peak_mib: f64,
}

/// Watches the children of one daemon until stopped.
pub struct Observer {
    seen: Arc<Mutex<BTreeMap<u32, Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Observer {
    pub fn start(daemon: i32) -> Observer {
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    look(daemon, &mut seen.lock().expect("observer lock"));
                    std::thread::sleep(POLL);
                }
            })
        };
        Observer {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Stop watching and split `exits` (the accounting records of the run)
    /// among the roles: the daemon's children only; `cpu` is the daemon's
    /// own and its children's, read while it was a zombie.
    pub fn finish(mut self, daemon: i32, exits: &[Exit], cpu: &DaemonCpu) -> Stages {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("observer thread");
        }
        let seen = self.seen.lock().expect("observer lock");
        let mut stages = Stages::default();
        for exit in exits.iter().filter(|e| e.ppid == daemon as u32) {
            let role = seen
                .get(&exit.pid)
                .map_or_else(|| Role::of_comm(&exit.comm), |s| s.role);
            let entry = stages.cpu.entry(role).or_default();
            entry.0 += 1;
            entry.1 += exit.cpu;
        }
        stages.daemon = cpu.own;
        stages.unaccounted = cpu.children - stages.total();
        for s in seen.values().filter(|s| s.role == Role::Warp) {
            if s.peak_mib > stages.stage_peak.0 {
                stages.stage_peak = (s.peak_mib, s.outputs);
            }
        }
        stages
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One look: note new children with their role; read each live stage's
/// peak RSS.
fn look(daemon: i32, seen: &mut BTreeMap<u32, Seen>) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{daemon}/task")) else {
        return;
    };
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            if let std::collections::btree_map::Entry::Vacant(entry) = seen.entry(pid) {
                let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                    continue;
                };
                let argv: Vec<String> = raw
                    .split(|&b| b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                let Some(role) = Role::of_argv(&argv) else {
                    continue;
                };
                entry.insert(Seen {
                    role,
                    outputs: argv.iter().filter(|a| *a == "--output").count(),
                    peak_mib: 0.0,
                });
            }
            if let Some(s) = seen.get_mut(&pid).filter(|s| s.role == Role::Warp)
                && let Ok((_, peak)) = rss_mib(pid as i32)
            {
                s.peak_mib = s.peak_mib.max(peak);
            }
        }
    }
}

/// CPU of a daemon's children by role.
#[derive(Debug, Clone, Default)]
pub struct Stages {
    /// Role: (processes, CPU seconds).
    pub cpu: BTreeMap<Role, (usize, f64)>,
    /// The largest peak RSS of a `vidvar-stage` (MiB) and its variations.
    pub stage_peak: (f64, usize),
    /// CPU seconds of the daemon itself.
    pub daemon: f64,
    /// CPU seconds of the daemon's children not in [`Stages::cpu`]: the
    /// accounting records count whole ticks (1/100 s), cut short.
    pub unaccounted: f64,
}

impl Stages {
    /// CPU seconds of all the daemon's children that were accounted.
    pub fn total(&self) -> f64 {
        self.cpu.values().map(|(_, s)| s).sum()
    }
}
