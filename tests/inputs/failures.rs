//! Inputs that cannot become variations, and FFmpeg misbehaving on them:
//! broken files, a stalled FFmpeg, too little or a filling disk, megabytes
//! of warnings, a FIFO. Each fails its own file clearly and leaves the
//! job's other files and the daemon alone.

use super::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[test]
fn broken_inputs_fail_alone_with_reasons_a_person_understands() {
    let env = Env::new();
    let _d = env.start(&[]);
    let good = env.path("good.mp4");
    make_video(&good, 1.0, "160x120", false);
    let audio_only = env.path("song.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=duration=1",
        "-c:a",
        "aac",
        s(&audio_only),
    ]);
    let empty = env.path("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let text = env.path("text.mp4");
    std::fs::write(&text, "not a video at all\n").unwrap();
    // Moov atom first, then half the media data cut off: the container
    // claims 4 s but holds about 2.
    let whole = env.path("whole.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=4",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-movflags",
        "+faststart",
        s(&whole),
    ]);
    let truncated = env.path("truncated.mp4");
    let bytes = std::fs::read(&whole).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();

    let inputs = [&audio_only, &empty, &text, &truncated, &good];
    let detail = run_job(&env, "1", &inputs.map(PathBuf::as_path));
    assert_eq!(detail["summary"]["state"], "partial", "{detail}");
    let files = detail["files"].as_array().unwrap();
    let expected = [
        "no video stream",
        "empty file",
        "not a readable video file",
        "damaged or cut short",
    ];
    for (file, reason) in files.iter().zip(expected) {
        assert_eq!(file["state"], "failed", "{file}");
        let error = file["error"].as_str().unwrap();
        assert!(
            error.contains(reason),
            "{}: {error:?} lacks {reason:?}",
            file["path"]
        );
    }
    assert_eq!(files[4]["state"], "succeeded");
    assert_eq!(
        names(&env.out_dir()),
        ["good_v01.mp4"],
        "no broken output listed or left"
    );
}

#[test]
fn a_stalled_ffmpeg_is_killed_and_its_file_fails_as_stalled() {
    let env = Env::new();
    let _d = env.start(&["--stall-timeout", "2", "--grace-period", "1"]);
    let input = env.path("input.mp4");
    make_video(&input, 30.0, "640x360", false);
    let out = env.out_dir();
    let job = env.submit(&["-n", "1", "-o", s(&out), s(&input)]);
    env.wait_job(job, LIMIT, |d| {
        d["files"][0]["progress"].as_f64() > Some(0.0)
    });
    let pids = ffmpeg_using(s(&out));
    assert_eq!(pids.len(), 1);
    // A stopped process makes no progress and cannot act on SIGTERM.
    kill(Pid::from_raw(pids[0]), Signal::SIGSTOP).unwrap();
    let detail = env.wait_job(job, LIMIT, |d| d["summary"]["state"] != "running");
    assert_eq!(detail["summary"]["state"], "failed");
    let error = detail["files"][0]["error"].as_str().unwrap();
    assert!(error.contains("stalled"), "{error}");
    assert_eq!(ffmpeg_using(s(&out)), Vec::<i32>::new());
    assert_eq!(names(&out), Vec::<String>::new());
}

#[test]
fn too_little_free_space_keeps_a_variation_from_starting() {
    let env = Env::new();
    // Far more free space required than any disk has.
    let _d = env.start(&["--min-free-space", "1000000000"]);
    let input = env.path("input.mp4");
    make_video(&input, 1.0, "160x120", false);
    let detail = run_job(&env, "1", &[&input]);
    assert_eq!(detail["summary"]["state"], "failed");
    let error = detail["files"][0]["error"].as_str().unwrap();
    assert!(error.contains("not enough free space"), "{error}");
    assert_eq!(names(&env.out_dir()), Vec::<String>::new());
}

#[test]
fn a_disk_that_fills_up_mid_encode_fails_the_variation_and_leaves_nothing() {
    let env = Env::new();
    let small = env.path("small-disk");
    let _mount = Mount::tmpfs(&small, "1m");
    let _d = env.start(&["--min-free-space", "0"]);
    let input = env.path("input.mp4");
    make_video(&input, 10.0, "640x360", true);
    let good = env.path("good.mp4");
    make_video(&good, 1.0, "160x120", false);
    // The big input fills the 1 MiB disk; the small one fits once the
    // failed encode's temporary file is gone.
    let job = env.submit(&["-n", "1", "-o", s(&small), s(&input), s(&good)]);
    let detail = env.wait_job(job, LIMIT, |d| {
        d["summary"]["state"] != "running" && d["summary"]["state"] != "queued"
    });
    assert_eq!(detail["files"][0]["state"], "failed", "{detail}");
    assert_eq!(detail["files"][1]["state"], "succeeded", "{detail}");
    assert_eq!(detail["summary"]["state"], "partial");
    let listed: Vec<PathBuf> = outputs_of(&env, &detail).iter().map(output_path).collect();
    assert!(
        listed
            .iter()
            .all(|p| !p.to_str().unwrap().contains("input_v")),
        "{listed:?}"
    );
    assert!(
        names(&small)
            .iter()
            .all(|n| !n.starts_with("input") && !n.ends_with(".part")),
        "{:?}",
        names(&small)
    );
}

#[test]
fn megabytes_of_ffmpeg_warnings_neither_block_it_nor_grow_the_daemon() {
    let env = Env::new();
    let daemon = env.start(&[]);
    let clean = env.path("clean.ts");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=25:duration=20",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-f",
        "mpegts",
        s(&clean),
    ]);
    // Flip one byte in 200 after the headers: the decoder complains about
    // nearly every frame (over 100 KiB of stderr, more than a pipe holds).
    let mut bytes = std::fs::read(&clean).unwrap();
    let mut x: u32 = 12345;
    for _ in 0..bytes.len() / 200 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let at = 4000 + (x as usize >> 8) % (bytes.len() - 4000);
        bytes[at] ^= (x >> 3) as u8 | 1;
    }
    let noisy = env.path("noisy.ts");
    std::fs::write(&noisy, &bytes).unwrap();

    let detail = run_job(&env, "2", &[&noisy]);
    let state = detail["summary"]["state"].as_str().unwrap();
    assert!(state == "succeeded" || state == "failed", "{detail}");
    if let Some(error) = detail["files"][0]["error"].as_str() {
        assert!(
            !error.contains("stalled"),
            "FFmpeg blocked on its stderr: {error}"
        );
        assert!(
            error.len() < 8 * 1024,
            "error tail is bounded: {} bytes",
            error.len()
        );
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(rss_kib < 64 * 1024, "daemon RSS {rss_kib} KiB");
}

#[test]
fn a_fifo_input_fails_alone_and_the_daemon_stays_responsive() {
    let env = Env::new();
    let _d = env.start(&[]);
    let fifos: Vec<PathBuf> = (0..3).map(|i| env.path(&format!("pipe{i}.mp4"))).collect();
    for f in &fifos {
        nix::unistd::mkfifo(f, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    }
    let refs: Vec<&Path> = fifos.iter().map(PathBuf::as_path).collect();
    let detail = run_job(&env, "1", &refs);
    assert_eq!(detail["summary"]["state"], "failed");
    for f in detail["files"].as_array().unwrap() {
        let error = f["error"].as_str().unwrap();
        assert!(error.contains("not a regular file"), "{error}");
    }
    env.ctl_ok(&["ping"]);
}
