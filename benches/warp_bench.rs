//! What the pixel path costs: CPU-seconds to warp 300 raw yuv420p frames
//! at 720p and 1080p with each instruction-set level of
//! [`vidvar::pixel`], against FFmpeg's own `rotate,eq` on the same raw
//! frames; then the `vidvar-stage` binary's peak resident set at 1080p
//! with five outputs. Prints a Markdown table; nothing is asserted.
//!
//! ```sh
//! cargo bench --bench warp_bench
//! ```
//!
//! Frames: 30 of lavfi `testsrc2` made by FFmpeg, warped 10 times over
//! (FFmpeg reads the same file with `-stream_loop 9`). The variation is
//! one of the v1 ranges' inner values (0.0073 rad, brightness 0.03,
//! contrast 1.04, saturation 0.97); one row shows a rotation of 0.5 rad,
//! beyond the span path's range. FFmpeg's figure is the CPU time
//! (user + system, all its threads) of `ffmpeg -f rawvideo ... -vf
//! rotate,eq -f null -` minus the same run without the filters; the
//! stage's CPU time is read from wait4(2) when it exits, its peak RSS
//! (`VmHWM` of /proc/PID/status) once it has taken the whole input.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;
use vidvar::effects::Effects;
use vidvar::pixel::{Level, Size, Warp};

const DISTINCT: usize = 30;
const ROUNDS: usize = 10;
const EFFECTS: Effects = Effects {
    rotation: 0.0073,
    brightness: 0.03,
    contrast: 1.04,
    saturation: 0.97,
};

fn cpu_of(who: nix::sys::resource::UsageWho) -> Duration {
    let u = nix::sys::resource::getrusage(who).expect("getrusage");
    let t =
        |v: nix::sys::time::TimeVal| Duration::new(v.tv_sec() as u64, v.tv_usec() as u32 * 1000);
    t(u.user_time()) + t(u.system_time())
}

fn frames(size: Size) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=s={}x{}:r=25",
            size.width(),
            size.height()
        ))
        .args(["-frames:v", &DISTINCT.to_string()])
        .args(["-pix_fmt", "yuv420p", "-f", "rawvideo", "-"])
        .output()
        .expect("ffmpeg (install FFmpeg)");
    assert!(out.status.success(), "ffmpeg failed");
    assert_eq!(out.stdout.len(), DISTINCT * size.frame_bytes());
    out.stdout
}

fn warp_seconds(level: Level, effects: &Effects, size: Size, raw: &[u8]) -> f64 {
    let warp = Warp::new(effects);
    let mut out = vec![0; size.frame_bytes()];
    let before = cpu_of(nix::sys::resource::UsageWho::RUSAGE_SELF);
    for _ in 0..ROUNDS {
        for frame in raw.chunks(size.frame_bytes()) {
            warp.apply(level, size, frame, &mut out).unwrap();
        }
    }
    (cpu_of(nix::sys::resource::UsageWho::RUSAGE_SELF) - before).as_secs_f64()
}

fn ffmpeg_seconds(size: Size, file: &std::path::Path, filter: Option<String>) -> f64 {
    let before = cpu_of(nix::sys::resource::UsageWho::RUSAGE_CHILDREN);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-stream_loop", &(ROUNDS - 1).to_string()])
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s"])
        .arg(format!("{}x{}", size.width(), size.height()))
        .arg("-i")
        .arg(file);
    if let Some(f) = filter {
        cmd.args(["-vf", &f]);
    }
    let status = cmd.args(["-f", "null", "-"]).status().expect("ffmpeg");
    assert!(status.success());
    (cpu_of(nix::sys::resource::UsageWho::RUSAGE_CHILDREN) - before).as_secs_f64()
}

/// Runs the stage with `k` outputs to /dev/null over `rounds` x the
/// frames; returns (peak RSS in KiB, CPU-seconds).
fn stage_run(size: Size, raw: &[u8], k: usize) -> (i64, f64) {
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vidvar-stage"));
    cmd.arg("--size")
        .arg(format!("{}x{}", size.width(), size.height()));
    for n in 0..k {
        cmd.arg("--output")
            .arg(format!("{}:0.00{}:0.03:1.04:0.97", 3 + n, 5 + n));
    }
    // Numbered above the targets: dup2 onto itself would keep close-on-exec.
    let null_fd = nix::fcntl::fcntl(&null, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(20)).unwrap();
    // SAFETY: only dup2(2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for n in 0..k as i32 {
                if nix::libc::dup2(null_fd, 3 + n) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    #[allow(
        clippy::zombie_processes,
        reason = "reaped by wait4 below, for its rusage"
    )]
    let mut child = cmd.stdin(Stdio::piped()).spawn().expect("vidvar-stage");
    let mut stdin = child.stdin.take().unwrap();
    for _ in 0..ROUNDS {
        stdin.write_all(raw).unwrap();
    }
    // The stage has taken all but the last pipeful: its high-water mark
    // is reached. Read it now, while the process lives (ru_maxrss would
    // count the bench's own pages, shared with the child before exec).
    let status_file = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let hwm_kib: i64 = status_file
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    drop(stdin);
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it for our own child.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as i32;
    assert_eq!(
        unsafe { nix::libc::wait4(pid, &mut status, 0, &mut usage) },
        pid
    );
    assert_eq!(status, 0, "vidvar-stage failed");
    let secs = |t: nix::libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (hwm_kib, secs(usage.ru_utime) + secs(usage.ru_stime))
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let frames_total = DISTINCT * ROUNDS;
    println!(
        "CPU-seconds per {frames_total} yuv420p frames (rotate 0.0073 rad + eq), one thread for the warp:\n"
    );
    println!("| size | what | CPU-s |");
    println!("| --- | --- | --- |");
    for (w, h) in [(1280, 720), (1920, 1080)] {
        let size = Size::new(w, h).unwrap();
        let raw = frames(size);
        for level in Level::available() {
            let s = warp_seconds(level, &EFFECTS, size, &raw);
            println!("| {w}x{h} | vidvar warp, {} | {s:.2} |", level.name());
        }
        let steep = Effects {
            rotation: 0.5,
            ..EFFECTS
        };
        let s = warp_seconds(Level::detect(), &steep, size, &raw);
        println!(
            "| {w}x{h} | vidvar warp, {}, 0.5 rad (FFmpeg's per-pixel loop) | {s:.2} |",
            Level::detect().name()
        );
        let file = dir.path().join(format!("{w}x{h}.yuv"));
        std::fs::write(&file, &raw).unwrap();
        let filters = format!(
            "rotate={}:fillcolor=black@0,eq=brightness={}:contrast={}:saturation={}",
            EFFECTS.rotation, EFFECTS.brightness, EFFECTS.contrast, EFFECTS.saturation
        );
        let base = ffmpeg_seconds(size, &file, None);
        let full = ffmpeg_seconds(size, &file, Some(filters));
        let rotate_only = ffmpeg_seconds(
            size,
            &file,
            Some(format!("rotate={}:fillcolor=black@0", EFFECTS.rotation)),
        );
        println!(
            "| {w}x{h} | FFmpeg rotate,eq (minus reading: {base:.2}) | {:.2} |",
            full - base
        );
        println!(
            "| {w}x{h} | FFmpeg rotate alone (minus reading) | {:.2} |",
            rotate_only - base
        );
        if h == 1080 {
            let k = 5;
            let (rss_kib, cpu) = stage_run(size, &raw, k);
            println!(
                "\nvidvar-stage at {w}x{h}, K = {k} outputs to /dev/null, {frames_total} frames: \
                 peak RSS {:.1} MiB, {cpu:.2} CPU-s ({:.2} per output)",
                rss_kib as f64 / 1024.0,
                cpu / k as f64
            );
        }
    }
}
