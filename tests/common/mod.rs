//! The kit shared by the integration tests and the benchmarks: a real
//! `vidvard` on a temp socket and state dir and the real `vidvarctl`
//! ([`daemon`]), its FFmpeg held stopped mid-stop ([`held`]), inputs made by FFmpeg's lavfi sources and ffprobe's view
//! of outputs ([`media`]), a completion hook that records its runs
//! ([`hooks`]), a private PostgreSQL cluster ([`postgres`]), jobs stored
//! through the queue's own API ([`seed`]), percentiles ([`stats`]), test
//! users ([`users`]), a pseudo-terminal under tmux for `top` ([`tty`]),
//! wrappers that record what FFmpeg ran ([`wrappers`]) and the invariants
//! every test checks ([`invariants`]).
//! Each helper is defined here once. Waits poll with a deadline; the
//! daemon is killed when its guard drops. A benchmark includes it with
//! `#[path = "../tests/common/mod.rs"] mod common;`. It must not mock:
//! every helper runs the real programs.

#![allow(dead_code)] // each test binary uses its own subset

pub mod daemon;
pub mod held;
pub mod hooks;
pub mod invariants;
pub mod media;
pub mod postgres;
pub mod seed;
pub mod stats;
pub mod tty;
pub mod users;
pub mod wrappers;

// The helpers most tests use, by their own names; a test binary that uses
// none of one module's leaves its import unused.
#[allow(unused_imports)]
pub use daemon::*;
#[allow(unused_imports)]
pub use hooks::*;
#[allow(unused_imports)]
pub use media::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A test path as text (test paths are UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Poll `check` every 50 ms until it returns `Some`, or panic after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pids of live (non-zombie) FFmpeg processes whose command line or open
/// files mention `needle` (vidvard hands FFmpeg descriptors, `/dev/fd/N`,
/// so the output directory shows in the files it has open).
pub fn ffmpeg_using(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let state = stat[stat.rfind(')')? + 2..].chars().next()?;
            if comm.trim() != "ffmpeg" || state == 'Z' {
                return None;
            }
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let mentions = String::from_utf8_lossy(&cmdline).contains(needle)
                || std::fs::read_dir(e.path().join("fd"))
                    .into_iter()
                    .flatten()
                    .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                    .any(|target| target.to_string_lossy().contains(needle));
            mentions.then_some(pid)
        })
        .collect()
}

/// Names in `dir`.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A tmpfs of `size` mounted on `dir`, unmounted on drop.
pub struct Mount(PathBuf);

impl Mount {
    /// Mount it, or fail the test saying why (mounting needs root).
    pub fn tmpfs(dir: &Path, size: &str) -> Mount {
        users::require_root("it mounts a small tmpfs");
        Self::try_tmpfs(dir, size).expect("root can mount a tmpfs")
    }

    fn try_tmpfs(dir: &Path, size: &str) -> Option<Mount> {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .ok()?;
        status.success().then(|| Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Whether process `pid` still runs (a zombie no longer does: it waits
/// only to be reaped by whoever inherited it).
pub fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z')
        })
        .unwrap_or(false)
}

/// A process told apart from a later one that reuses its pid: pid and
/// start time (/proc/PID/stat field 22, clock ticks after boot).
pub type Incarnation = (i32, u64);

/// What /proc/PID/stat tells of a running process (proc(5)).
pub struct LiveStat {
    /// Command name (field 2, as /proc/PID/comm).
    pub comm: String,
    /// Parent pid (field 4).
    pub ppid: i32,
    /// Process group (field 5).
    pub group: i32,
    /// Start time, clock ticks after boot (field 22).
    pub start: u64,
}

/// The [`LiveStat`] of `pid` while it runs (not a zombie); `None` once it
/// is gone or a zombie.
pub fn live_stat(pid: i32) -> Option<LiveStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = stat.rsplit_once(") ")?;
    let comm = head.split_once('(')?.1.to_string();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    Some(LiveStat {
        comm,
        ppid: fields.get(1)?.parse().ok()?,
        group: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// The running children of `parent` whose command name is one of `comms`.
pub fn children_named(parent: i32, comms: &[&str]) -> Vec<Incarnation> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = live_stat(pid)?;
            (stat.ppid == parent && comms.contains(&stat.comm.as_str()))
                .then_some((pid, stat.start))
        })
        .collect()
}

/// Whether that very process still runs (not its pid reused).
pub fn still_running((pid, start): Incarnation) -> bool {
    live_stat(pid).is_some_and(|stat| stat.start == start)
}
