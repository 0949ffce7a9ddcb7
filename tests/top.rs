//! `vidvarctl top` in a pseudo-terminal (tmux, 80x24) against a real
//! daemon with running, queued and failed work: what a person sees (the
//! running variation, the queued job's label, the failed input and its
//! reason, the slots), and keys that act: `c` really cancels the selected
//! job, `q` quits; when the daemon goes away, top exits 1 saying so.

mod common;

use common::postgres::Cluster;
use common::tty::Pane;
use common::*;
use std::time::Duration;

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

    let command = format!("{} --socket {} top", VIDVARCTL, s(&env.socket()));
    let session = Pane::start("vidvar-top", &command, &[]);
    let text = session.shows(&[
        "slots 1/1",
        "long.mp4",
        "#1",
        "blue",
        "cut.mkv: variation 1",
        "worst SSIM",
    ]);
    assert!(text.contains(&format!("{running} running")), "{text}");
    let waiting = text.lines().find(|l| l.contains("blue")).unwrap();
    assert!(waiting.contains(&format!("{queued} ")), "{text}");

    // The running job is listed first (same priority, lower id): `c`
    // cancels it for real.
    session.keys(&["c"]);
    env.wait_job(running, Duration::from_secs(30), |d| {
        d["summary"]["state"] == "cancelled"
    });
    session.shows(&[&format!("cancel job {running}: now cancelled")]);

    session.keys(&["q"]);
    wait_for("top to quit on q", Duration::from_secs(10), || {
        (!session.alive()).then_some(())
    });

    // Again, with the shell saying how it exited; then the daemon stops.
    let wrapped = format!("sh -c '{command}; echo top exited $?; sleep 60'");
    let gone = Pane::start("vidvar-top-gone", &wrapped, &[]);
    gone.shows(&["slots 1/1"]);
    daemon.signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(60));
    let text = gone.shows(&["top exited 1"]);
    assert!(text.contains("the daemon went away"), "{text}");
}

/// On a shared queue (two real nodes on one private PostgreSQL cluster),
/// top on a node shows every live node's running variations and slots,
/// and its own running variations with its name.
#[test]
fn top_shows_every_node_of_a_shared_queue() {
    let pg = Cluster::start();
    let url = pg.url();
    let node = |name: &str, slots: &str| {
        let env = Env::new();
        let daemon = env.start(&[
            "--database-url",
            &url,
            "--node-name",
            name,
            "--max-parallel",
            slots,
        ]);
        (env, daemon)
    };
    let (a, _node_a) = node("node-a", "2");
    let (b, _node_b) = node("node-b", "1");
    let input = a.path("long.mp4");
    make_video(&input, 120.0, "640x480", false);
    let out = a.out_dir();
    let job = a.submit(&["-n", "3", "-o", s(&out), s(&input)]);

    let command = format!("{VIDVARCTL} --socket {} top", s(&b.socket()));
    let pane = Pane::sized("vidvar-top-nodes", &command, &[], (120, 30));
    let screen = pane.shows(&["nodes: node-a 2/2, node-b 1/1", "on node-b"]);
    assert!(screen.contains("node node-b  slots 1/1"), "{screen}");
    let running: Vec<&str> = screen.lines().filter(|l| l.contains(" on node-")).collect();
    assert_eq!(running.len(), 1, "node-b's own: {screen}");
    assert!(running[0].contains(&format!("{job} ")), "{screen}");
    a.ctl_ok(&["cancel", &job.to_string()]);
}
