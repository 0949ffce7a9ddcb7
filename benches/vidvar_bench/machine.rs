//! The machine under the benchmark: what it is (cores, CPU, FFmpeg,
//! kernel, filesystem) and its clocks and counters, read from /proc and
//! getrusage(2): CPU time of children, of the whole machine, of one
//! process, and a process's memory. It starts nothing.

use anyhow::{Context, Result};
use nix::sys::resource::{UsageWho, getrusage};
use nix::unistd::{SysconfVar, sysconf};
use std::path::Path;
use std::process::Command;

/// Print what the figures were measured on: cores, CPU, FFmpeg, kernel,
/// the temporary directory's filesystem, the load at start.
pub fn describe(root: &Path) -> Result<()> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".to_string(), |(_, m)| m.trim().to_string());
    let ffmpeg = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .context("ffmpeg is not on PATH")?;
    let ffmpeg = String::from_utf8_lossy(&ffmpeg.stdout);
    let ffmpeg = ffmpeg.lines().next().unwrap_or("unknown");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("# vidvar benchmark\n");
    println!(
        "- nproc: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("- CPU: {model}");
    println!("- {ffmpeg}");
    println!("- kernel: {}", kernel.trim());
    println!(
        "- temporary directory: {} ({})",
        root.display(),
        filesystem_of(root)
    );
    println!(
        "- load average at start: {}",
        loadavg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}

/// Type and device of the filesystem holding `path`, from /proc/mounts.
fn filesystem_of(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && path.starts_with(f[1]))
                .then(|| (f[1].len(), format!("{} {}", f[2], f[0])))
        })
        .max()
        .map_or("unknown filesystem".into(), |(_, fs)| fs)
}

pub fn clock_ticks() -> f64 {
    sysconf(SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

/// user + sys seconds of this process's reaped children (and theirs).
pub fn children_cpu() -> f64 {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    secs(usage.user_time()) + secs(usage.system_time())
}

/// CPU seconds the whole machine spent busy (all but idle and iowait).
pub fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user)
    let busy: f64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum();
    busy / clock_ticks()
}

/// Fields of `/proc/PID/stat` after the command name, so that index 0 is
/// field 3 (state).
pub fn proc_stat_fields(pid: i32) -> Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/PID/stat")?;
    Ok(rest.split_whitespace().map(String::from).collect())
}

/// Resident set size (VmRSS) and its peak (VmHWM) of `pid`, MiB.
pub fn rss_mib(pid: i32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> Result<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("no {key} in /proc/{pid}/status"))
    };
    Ok((kib("VmRSS:")? / 1024.0, kib("VmHWM:")? / 1024.0))
}
