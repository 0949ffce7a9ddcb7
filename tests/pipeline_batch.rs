//! One pipeline of several variations (issue 24, item 4), run by the
//! daemon's own `engine::pipeline` with real FFmpeg and the real
//! `vidvar-stage` on a lavfi clip: every member's output is a whole,
//! decodable video of the input's size; an encoder whose disk is full
//! (its output is /dev/full) fails alone while the others finish; a
//! stopped member stops alone; and once every member is stopped, nothing
//! of the pipeline's process group is left.

mod common;

use common::*;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use vidvar::effects::Effects;
use vidvar::engine::pipeline::{self, Member, Pipeline};
use vidvar::engine::supervisor::End;
use vidvar::ffmpeg::EncodeSettings;
use vidvar::ffmpeg::argv::{DecodePlan, EncodePlan};
use vidvar::ffmpeg::samples::Samples;
use vidvar::job::FrameRate;
use vidvar::process::ProcessIdentity;
use vidvar::rusage::CpuMeter;

const RATE: FrameRate = FrameRate { num: 25, den: 1 };

fn effects(i: usize) -> Effects {
    Effects {
        rotation: 0.002 * (i as f64 + 1.0),
        brightness: 0.01,
        contrast: 1.02,
        saturation: 0.97,
    }
}

/// What a test hands the pipeline: the input, one output and one
/// references file per member, and one stop each.
struct Batch {
    input: File,
    outputs: Vec<File>,
    refs: Vec<File>,
    cancels: Vec<CancellationToken>,
    effects: Vec<Effects>,
    settings: EncodeSettings,
    samples: Samples,
    seconds: f64,
    /// Each member's CPU time.
    cpu: Vec<Arc<CpuMeter>>,
}

impl Batch {
    fn new(dir: &Path, seconds: f64, outputs: Vec<File>) -> Batch {
        let input = dir.join("in.mp4");
        make_video(&input, seconds, "320x240", true);
        let k = outputs.len();
        let tmp = || tempfile::tempfile_in(dir).unwrap();
        Batch {
            input: File::open(&input).unwrap(),
            outputs,
            refs: (0..k).map(|_| tmp()).collect(),
            cancels: (0..k).map(|_| CancellationToken::new()).collect(),
            effects: (0..k).map(effects).collect(),
            settings: EncodeSettings::default(),
            samples: Samples::plan(Some((seconds * 1e6) as u64), RATE),
            seconds,
            cpu: (0..k).map(|_| Arc::default()).collect(),
        }
    }

    /// Run the pipeline; `on_progress` sees (member, out_time_us).
    async fn run(
        &self,
        spawned: &std::sync::Mutex<Vec<(ProcessIdentity, i32)>>,
        on_progress: impl Fn(usize, u64),
    ) -> Vec<Result<End, vidvar::engine::failure::Failure>> {
        let members = (0..self.outputs.len())
            .map(|i| Member {
                plan: EncodePlan {
                    effects: &self.effects[i],
                    settings: &self.settings,
                    rate: RATE,
                    deinterlace: false,
                    video_stream: 0,
                    samples: &self.samples,
                },
                output: self.outputs[i].as_raw_fd(),
                refs: self.refs[i].as_raw_fd(),
                duration_us: Some((self.seconds * 1e6) as u64),
                cancel: &self.cancels[i],
                cpu: &self.cpu[i],
            })
            .collect();
        pipeline::run(
            Pipeline {
                ffmpeg: Path::new("ffmpeg"),
                stage: Path::new(env!("CARGO_BIN_EXE_vidvar-stage")),
                input: self.input.as_raw_fd(),
                size: (320, 240),
                decode: DecodePlan {
                    rate: RATE,
                    deinterlace: false,
                    video_stream: 0,
                    samples: &self.samples,
                },
                grace: Duration::from_secs(2),
                stall_timeout: Duration::from_secs(60),
                run_as: None,
                members,
            },
            |_, identity| {
                let group = identity.group().unwrap();
                spawned.lock().unwrap().push((identity, group));
                async {}
            },
            |i, progress| on_progress(i, progress.out_time_us),
        )
        .await
    }
}

fn output_file(dir: &Path, name: &str) -> File {
    File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.join(name))
        .unwrap()
}

fn succeeded(end: &Result<End, vidvar::engine::failure::Failure>) -> bool {
    matches!(end, Ok(End::Exited { status, .. }) if status.success())
}

/// Frames of the video stream of `path`, and its size.
fn frames_and_size(path: &Path) -> (u64, u64, u64) {
    let probe = probe_json(path);
    let video = streams(&probe, "video")[0];
    let count = ffmpeg_frame_count(path);
    (
        count,
        video["width"].as_u64().unwrap(),
        video["height"].as_u64().unwrap(),
    )
}

/// Frames FFmpeg decodes from `path`.
fn ffmpeg_frame_count(path: &Path) -> u64 {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_one_encoder_and_the_others_finish_whole() {
    let dir = tempfile::tempdir().unwrap();
    let full = File::options().write(true).open("/dev/full").unwrap();
    let outputs = vec![
        output_file(dir.path(), "a.mp4"),
        full,
        output_file(dir.path(), "c.mp4"),
    ];
    let batch = Batch::new(dir.path(), 2.0, outputs);
    let spawned = Default::default();
    let ends = batch.run(&spawned, |_, _| {}).await;
    assert!(succeeded(&ends[0]), "{:?}", ends[0]);
    assert!(!succeeded(&ends[1]), "{:?}", ends[1]);
    assert!(matches!(ends[1], Ok(End::Exited { .. })), "{:?}", ends[1]);
    assert!(succeeded(&ends[2]), "{:?}", ends[2]);
    for name in ["a.mp4", "c.mp4"] {
        let (frames, w, h) = frames_and_size(&dir.path().join(name));
        assert_eq!((w, h), (320, 240), "{name}");
        assert_eq!(frames, 50, "{name}: 2 s at 25 frames/s");
        let (_, audio, _) = probe(&dir.path().join(name));
        assert!(audio, "{name} keeps the input's audio");
    }
    // Each member's reference pictures were written by the decoder.
    for refs in &batch.refs {
        assert!(refs.metadata().unwrap().len() > 0);
    }
    // Each member's CPU time is its encoder's and a third of the decoder's
    // and the stage's (the failed encoder's is near nothing).
    let cpu: Vec<f64> = batch.cpu.iter().map(|m| m.seconds()).collect();
    assert!(cpu.iter().all(|&s| s > 0.0), "{cpu:?}");
    assert!(cpu[0] > cpu[1] && cpu[2] > cpu[1], "{cpu:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stopped_member_stops_alone_and_all_stopped_leave_no_process() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = vec![
        output_file(dir.path(), "a.mp4"),
        output_file(dir.path(), "b.mp4"),
    ];
    let batch = Batch::new(dir.path(), 4.0, outputs);
    let spawned = Default::default();
    // Member 0 stops once it has encoded half a second.
    let stop_first = batch.cancels[0].clone();
    let ends = batch
        .run(&spawned, |i, out_time_us| {
            if i == 0 && out_time_us >= 500_000 {
                stop_first.cancel();
            }
        })
        .await;
    assert!(matches!(ends[0], Ok(End::Stopped)), "{:?}", ends[0]);
    assert!(succeeded(&ends[1]), "{:?}", ends[1]);
    let (frames, _, _) = frames_and_size(&dir.path().join("b.mp4"));
    assert_eq!(frames, 100, "4 s at 25 frames/s");

    // Now a batch whose members all stop: the run returns within the
    // grace period and its whole group is gone.
    let dir = tempfile::tempdir().unwrap();
    let outputs = vec![
        output_file(dir.path(), "a.mp4"),
        output_file(dir.path(), "b.mp4"),
    ];
    let batch = Batch::new(dir.path(), 30.0, outputs);
    let spawned = std::sync::Mutex::new(Vec::new());
    let cancels = batch.cancels.clone();
    let started = Instant::now();
    let ends = batch
        .run(&spawned, |_, out_time_us| {
            if out_time_us > 0 {
                cancels.iter().for_each(CancellationToken::cancel);
            }
        })
        .await;
    assert!(
        ends.iter().all(|e| matches!(e, Ok(End::Stopped))),
        "{ends:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let spawned = spawned.into_inner().unwrap();
    assert_eq!(spawned.len(), 2);
    let group = spawned[0].1;
    assert_ne!(group, nix::unistd::getpgrp().as_raw());
    for (identity, in_group) in &spawned {
        assert_eq!(*in_group, group, "one process group per pipeline");
        assert!(!identity.is_alive());
    }
    // kill(2) with no signal: ESRCH once no process is in the group (the
    // run has reaped its own children).
    assert_eq!(
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group), None),
        Err(nix::errno::Errno::ESRCH),
        "the pipeline's group is gone"
    );
}
