//! `vidvarctl top` in a pseudo-terminal (tmux, 80x24) against a real
//! daemon with running, queued and failed work: what a person sees (the
//! running variation, the queued job's label, the failed input and its
//! reason, the slots), and keys that act: `c` really cancels the selected
//! job, `q` quits; when the daemon goes away, top exits 1 saying so.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

/// tmux with `args`; fails the test when tmux is missing.
fn tmux(args: &[&str]) -> std::process::Output {
    Command::new("tmux")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("tmux not found ({e}): install it (packaging/test.sh does)"))
}

/// What the pane shows now.
fn screen(session: &str) -> String {
    String::from_utf8_lossy(&tmux(&["capture-pane", "-t", session, "-p"]).stdout).into_owned()
}

/// Wait until the pane shows every one of `wanted`; returns the screen.
fn shows(session: &str, wanted: &[&str]) -> String {
    wait_for(
        &format!("top to show {wanted:?}"),
        Duration::from_secs(30),
        || {
            let text = screen(session);
            wanted.iter().all(|w| text.contains(w)).then_some(text)
        },
    )
}

/// Kills the tmux session when the test ends, however it ends.
struct Session(String);

impl Drop for Session {
    fn drop(&mut self) {
        let _ = tmux(&["kill-session", "-t", &self.0]);
    }
}

#[test]
fn top_shows_the_work_and_its_keys_act() {
    let env = Env::new();
    let long = env.path("long.mp4");
    make_video(&long, 30.0, "640x480", false);
    // A Matroska file cut short keeps the duration its header states:
    // its variation fails as ending early.
    let whole = env.path("whole.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=25",
        "-t",
        "4",
        "-c:v",
        "libx264",
        s(&whole),
    ]);
    let bytes = std::fs::read(&whole).unwrap();
    let bad = env.path("cut.mkv");
    std::fs::write(&bad, &bytes[..bytes.len() * 4 / 10]).unwrap();
    let mut daemon = env.start(&["--max-parallel", "1"]);
    let out = env.out_dir();
    let failed = env.submit(&["-n", "1", "-o", s(&out), s(&bad)]);
    env.wait_job(failed, Duration::from_secs(60), |d| {
        d["summary"]["state"] == "failed"
    });
    let running = env.submit(&["-n", "2", "-o", s(&out), s(&long)]);
    let queued = env.submit(&["-n", "1", "-l", "blue", "-o", s(&out), s(&long)]);
    env.wait_job(running, Duration::from_secs(60), |d| {
        d["files"][0]["running"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    });

    let session = Session(format!("vidvar-top-{}", std::process::id()));
    let command = format!("{} --socket {} top", VIDVARCTL, s(&env.socket()));
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session.0,
        "-x",
        "80",
        "-y",
        "24",
        &command,
    ]);
    assert!(started.status.success(), "{started:?}");
    let text = shows(
        &session.0,
        &[
            "slots 1/1",
            "long.mp4",
            "#1",
            "blue",
            "cut.mkv: variation 1",
            "worst SSIM",
        ],
    );
    assert!(text.contains(&format!("{running} running")), "{text}");
    let waiting = text.lines().find(|l| l.contains("blue")).unwrap();
    assert!(waiting.contains(&format!("{queued} ")), "{text}");

    // The running job is listed first (same priority, lower id): `c`
    // cancels it for real.
    tmux(&["send-keys", "-t", &session.0, "c"]);
    env.wait_job(running, Duration::from_secs(30), |d| {
        d["summary"]["state"] == "cancelled"
    });
    shows(
        &session.0,
        &[&format!("cancel job {running}: now cancelled")],
    );

    tmux(&["send-keys", "-t", &session.0, "q"]);
    wait_for("top to quit on q", Duration::from_secs(10), || {
        (!tmux(&["has-session", "-t", &session.0]).status.success()).then_some(())
    });

    // Again, with the shell saying how it exited; then the daemon stops.
    let gone = Session(format!("vidvar-top-gone-{}", std::process::id()));
    let wrapped = format!("sh -c '{command}; echo top exited $?; sleep 60'");
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &gone.0,
        "-x",
        "80",
        "-y",
        "24",
        &wrapped,
    ]);
    assert!(started.status.success(), "{started:?}");
    shows(&gone.0, &["slots 1/1"]);
    daemon.signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(60));
    let text = shows(&gone.0, &["top exited 1"]);
    assert!(text.contains("the daemon went away"), "{text}");
}
