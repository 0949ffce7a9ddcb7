//! The `vidvar-stage` process end to end (issue 24, item 1): real FFmpeg
//! decodes a lavfi clip into the stage, the stage feeds real FFmpeg
//! encoders through pipes it inherited, and the files play (ffprobe). An
//! encoder that goes away stops only its own output; bad arguments and a
//! short frame end the stage with a message; its pipes are raised to
//! /proc/sys/fs/pipe-max-size.

mod common;

use common::*;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::unistd::pipe2;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const STAGE: &str = env!("CARGO_BIN_EXE_vidvar-stage");
const SIZE: &str = "320x240";
const FRAMES: usize = 100;
const LIMIT: Duration = Duration::from_secs(120);

/// The decoding FFmpeg: `FRAMES` frames of testsrc2 as raw yuv420p on its
/// stdout.
fn decoder() -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(["-f", "lavfi", "-i", &format!("testsrc2=s={SIZE}:r=25")])
        .args(["-frames:v", &FRAMES.to_string()])
        .args(["-pix_fmt", "yuv420p", "-f", "rawvideo", "pipe:1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("ffmpeg is installed")
}

/// An encoding FFmpeg reading raw frames from `input` into `out`; `extra`
/// goes before the output (`-frames:v 3` makes one that leaves early).
fn encoder(input: OwnedFd, out: &Path, extra: &[&str]) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args([
            "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", SIZE, "-r", "25",
        ])
        .args(["-i", "pipe:0", "-c:v", "libx264", "-preset", "ultrafast"])
        .args(extra)
        .arg(out)
        .stdin(Stdio::from(input))
        .spawn()
        .expect("ffmpeg is installed")
}

/// The stage with `outputs[n]` as descriptor `3 + n`, stdin from `input`,
/// stderr captured.
fn stage(input: impl Into<Stdio>, outputs: &[OwnedFd], effects: &[&str]) -> Child {
    let mut cmd = Command::new(STAGE);
    cmd.args(["--size", SIZE]);
    for (n, e) in effects.iter().enumerate() {
        cmd.arg("--output").arg(format!("{}:{e}", 3 + n));
    }
    let fds: Vec<i32> = outputs.iter().map(AsRawFd::as_raw_fd).collect();
    // SAFETY: only dup2(2) between fork and exec; the pipes are made with
    // O_CLOEXEC and numbered above the targets, so no source is clobbered.
    unsafe {
        cmd.pre_exec(move || {
            for (n, &fd) in fds.iter().enumerate() {
                dup_to(fd, 3 + n as i32)?;
            }
            Ok(())
        });
    }
    cmd.stdin(input)
        .stderr(Stdio::piped())
        .spawn()
        .expect("vidvar-stage is built")
}

/// dup2(2) for a child between fork and exec (async-signal-safe).
fn dup_to(fd: i32, target: i32) -> std::io::Result<()> {
    // SAFETY: dup2 on plain numbers; no memory is touched.
    if unsafe { nix::libc::dup2(fd, target) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `n` pipes with close-on-exec set: (read ends, write ends), the write
/// ends numbered from 20 up.
fn pipes(n: usize) -> (Vec<OwnedFd>, Vec<OwnedFd>) {
    // Lift the numbers above 3..3+n so dup2 in the child never overwrites
    // a pipe it has yet to copy.
    let lift = |fd: OwnedFd| {
        let raw = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(20)).unwrap();
        // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor we own.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) }
    };
    (0..n)
        .map(|_| {
            let (r, w) = pipe2(OFlag::O_CLOEXEC).unwrap();
            (r, lift(w))
        })
        .unzip()
}

fn finish(child: Child, what: &str) -> (bool, String) {
    let limit = std::time::Instant::now() + LIMIT;
    let mut child = child;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < limit, "{what} did not end");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut err).unwrap();
    }
    (status.success(), err)
}

/// Frames of the video stream of `path`, decoded by ffprobe.
fn frames_in(path: &Path) -> usize {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(out.status.success(), "ffprobe {}: {text}", path.display());
    let fields: Vec<&str> = text.split(',').collect();
    assert_eq!(fields[..2], ["320", "240"], "{}", path.display());
    fields[2].parse().unwrap()
}

/// decoder -> stage -> two encoders into `dir`/0.mp4 and 1.mp4, with
/// `effects[n]` and `extra[n]` for output n. Returns the stage's success
/// and stderr, and each encoder's success and output path.
fn pipeline(
    dir: &Path,
    effects: [&str; 2],
    extra: [&[&str]; 2],
) -> ((bool, String), Vec<(bool, PathBuf)>) {
    let mut dec = decoder();
    let (readers, writers) = pipes(2);
    let st = stage(dec.stdout.take().unwrap(), &writers, &effects);
    drop(writers);
    let encoders: Vec<(Child, PathBuf)> = readers
        .into_iter()
        .zip(extra)
        .enumerate()
        .map(|(n, (r, extra))| {
            let out = dir.join(format!("{n}.mp4"));
            (encoder(r, &out, extra), out)
        })
        .collect();
    let stage_end = finish(st, "vidvar-stage");
    assert!(dec.wait().unwrap().success(), "the decoder failed");
    let ends = encoders
        .into_iter()
        .map(|(enc, out)| (finish(enc, "encoder").0, out))
        .collect();
    (stage_end, ends)
}

#[test]
fn decode_stage_and_two_encoders_make_playable_distinct_files() {
    let dir = tempfile::tempdir().unwrap();
    let effects = ["0.004:0.02:1.03:0.97", "-0.008:-0.04:0.96:1.04"];
    let ((ok, err), ends) = pipeline(dir.path(), effects, [&[], &[]]);
    assert!(ok, "vidvar-stage failed: {err}");
    for (ok, out) in &ends {
        assert!(ok, "encoder of {}", out.display());
        assert_eq!(frames_in(out), FRAMES, "{}", out.display());
    }
    assert_ne!(
        std::fs::read(&ends[0].1).unwrap(),
        std::fs::read(&ends[1].1).unwrap(),
        "two variations gave the same file"
    );
}

#[test]
fn an_encoder_that_leaves_stops_only_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let effects = ["0.004:0:1:1", "0.006:0:1:1"];
    let ((ok, err), ends) = pipeline(dir.path(), effects, [&["-frames:v", "3"], &[]]);
    assert!(ok, "vidvar-stage failed: {err}");
    assert!(
        err.contains("output 1 (fd 3) stopped at frame") && err.contains("Broken pipe"),
        "the lost output is not named: {err}"
    );
    assert!(ends[0].0 && ends[1].0, "an encoder failed");
    assert_eq!(
        frames_in(&ends[1].1),
        FRAMES,
        "the other output lost frames"
    );
}

#[test]
fn with_every_reader_gone_the_stage_stops_with_a_message() {
    let mut dec = decoder();
    let (readers, writers) = pipes(1);
    let st = stage(dec.stdout.take().unwrap(), &writers, &["0.004:0:1:1"]);
    drop((readers, writers));
    let (ok, err) = finish(st, "vidvar-stage");
    assert!(!ok && err.contains("every output has failed"), "{err}");
    let _ = dec.kill();
    let _ = dec.wait();
}

#[test]
fn a_short_frame_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("short.yuv");
    // One and a half 320x240 frames (115200 bytes each).
    std::fs::write(&raw, vec![100u8; 115_200 + 57_600]).unwrap();
    let (readers, writers) = pipes(1);
    let st = stage(
        std::fs::File::open(&raw).unwrap(),
        &writers,
        &["0.004:0:1:1"],
    );
    drop(writers);
    let drain = std::thread::spawn(move || {
        let mut r = std::fs::File::from(readers.into_iter().next().unwrap());
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut all).unwrap();
        all.len()
    });
    let (ok, err) = finish(st, "vidvar-stage");
    assert!(!ok, "a short frame was accepted");
    assert!(
        err.contains("short frame: frame 2 ended after 57600 of 115200 bytes"),
        "{err}"
    );
    assert_eq!(
        drain.join().unwrap(),
        115_200,
        "the whole first frame is delivered"
    );
}

#[test]
fn bad_arguments_are_refused_with_a_message() {
    let (_readers, writers) = pipes(1);
    let cases: [(&[&str], &str); 8] = [
        (&["--size", "321x240", "--output", "3:0:0:1:1"], "even"),
        (&["--size", "320", "--output", "3:0:0:1:1"], "WIDTHxHEIGHT"),
        (&["--size", SIZE, "--output", "0:0:0:1:1"], "not an output"),
        (&["--size", SIZE, "--output", "2:0:0:1:1"], "not an output"),
        (&["--size", SIZE, "--output", "3:0:0:1"], "FD:ANGLE"),
        (
            &["--size", SIZE, "--output", "3:7:0:1:1"],
            "angle 7 is not within",
        ),
        (
            &[
                "--size",
                SIZE,
                "--output",
                "3:0:0:1:1",
                "--output",
                "3:0:0:1:1",
            ],
            "more than one",
        ),
        (
            &["--size", SIZE, "--output", "9:0:0:1:1"],
            "descriptor 9 is not open",
        ),
    ];
    for (args, message) in cases {
        let fds: Vec<i32> = writers.iter().map(AsRawFd::as_raw_fd).collect();
        let mut cmd = Command::new(STAGE);
        // SAFETY: only dup2(2) between fork and exec.
        unsafe {
            cmd.pre_exec(move || dup_to(fds[0], 3));
        }
        let out = cmd.args(args).stdin(Stdio::null()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(message), "{args:?}: {err}");
    }
}

#[test]
fn the_stage_raises_its_pipes_to_the_system_maximum() {
    let max: i32 = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (in_r, in_w) = pipe2(OFlag::O_CLOEXEC).unwrap();
    let (readers, writers) = pipes(1);
    let st = stage(Stdio::from(in_r), &writers, &["0.004:0:1:1"]);
    drop(writers);
    let size = |fd: &OwnedFd| fcntl(fd, FcntlArg::F_GETPIPE_SZ).unwrap();
    wait_for("the stage's pipes to grow", Duration::from_secs(20), || {
        (size(&in_w) == max && size(&readers[0]) == max).then_some(())
    });
    drop(in_w);
    assert!(finish(st, "vidvar-stage").0);
}
