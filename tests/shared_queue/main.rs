//! Several vidvard nodes sharing one queue in a real PostgreSQL cluster
//! that each test starts for itself (see `common::postgres`): work spreads
//! over the nodes, any node sees and controls any job, a node killed or
//! frozen mid-encode loses nothing and leaves nothing behind, a database
//! restart loses no outcome, and node names are unique. This file: work,
//! control and failures of nodes; `connection`: reaching the database
//! (password, TLS, schema version); `hooks`: the completion hook; `stops`:
//! stops that meet a node dying or stopping.

#[path = "../common/mod.rs"]
mod common;
mod connection;
mod hooks;
mod stops;

use common::postgres::Cluster;
use common::{
    Daemon, Env, LOSES_A_VARIATION, Mount, ffmpeg_using, make_video, publish_order, running, s,
    submit_losing_a_variation, wait_for,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Seconds a claim stays a silent node's in these tests.
const LEASE: &str = "3";

/// Start node `name` on the cluster, in its own environment.
fn node(pg: &Cluster, name: &str, extra: &[&str]) -> (Env, Daemon) {
    let env = Env::new();
    let daemon = start(&env, pg, name, extra);
    (env, daemon)
}

/// Start node `name` in `env`: 2 slots unless `extra` says otherwise.
fn start(env: &Env, pg: &Cluster, name: &str, extra: &[&str]) -> Daemon {
    start_leased(env, pg, name, LEASE, extra)
}

/// [`start`] with a lease time of `lease` seconds (also the lock timeout
/// of its database sessions).
fn start_leased(env: &Env, pg: &Cluster, name: &str, lease: &str, extra: &[&str]) -> Daemon {
    let url = pg.url();
    let mut args = vec![
        "--database-url",
        url.as_str(),
        "--node-name",
        name,
        "--lease-timeout",
        lease,
    ];
    if !extra.contains(&"--max-parallel") {
        args.extend(["--max-parallel", "2"]);
    }
    args.extend(extra);
    env.start(&args)
}

/// Two nodes, `node-a` and `node-b`, and an input of `secs` seconds of
/// `size` in A's directory.
fn two_nodes(pg: &Cluster, secs: f64, size: &str) -> [(Env, Daemon); 2] {
    let nodes = [node(pg, "node-a", &[]), node(pg, "node-b", &[])];
    make_video(&nodes[0].0.path("in.mp4"), secs, size, false);
    nodes
}

/// Node A running both variations of a 12 s 720p job, then node B joined
/// with nothing left in the queue: all the work is A's.
struct Busy {
    a: Env,
    node_a: Daemon,
    b: Env,
    _node_b: Daemon,
    out: PathBuf,
    job: i64,
}

fn busy_a_then_b(pg: &Cluster) -> Busy {
    busy_a_then_b_with(pg, &[], &[])
}

/// [`busy_a_then_b`] with extra arguments for each node.
fn busy_a_then_b_with(pg: &Cluster, a_extra: &[&str], b_extra: &[&str]) -> Busy {
    let (a, node_a) = node(pg, "node-a", a_extra);
    let input = a.path("in.mp4");
    make_video(&input, 12.0, "1280x720", false);
    let out = a.out_dir();
    let job = a.submit(&["-n", "2", "-o", s(&out), s(&input)]);
    wait_for("A to run both variations", Duration::from_secs(60), || {
        (ffmpeg_using(s(&out)).len() == 2).then_some(())
    });
    let (b, node_b) = node(pg, "node-b", b_extra);
    Busy {
        a,
        node_a,
        b,
        _node_b: node_b,
        out,
        job,
    }
}

/// The first `count` distinct progress figures `vidvarctl --json watch`
/// on `env`'s node prints for `job`, with the time each arrived.
fn watched_progress(env: &Env, job: i64, count: usize) -> Vec<(Duration, f64)> {
    use std::io::BufRead;
    let mut watch = std::process::Command::new(common::VIDVARCTL)
        .env("VIDVAR_SOCKET", env.socket())
        .args(["--json", "watch", &job.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut figures: Vec<(Duration, f64)> = Vec::new();
    let lines = std::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    for line in lines {
        let frame: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        let progress = frame["summary"]["progress"].as_f64().unwrap();
        if figures.last().is_none_or(|&(_, last)| progress != last) {
            figures.push((started.elapsed(), progress));
        }
        if figures.len() == count {
            break;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(figures.len(), count, "watch ended early: {figures:?}");
    figures
}

/// The names in `dir`: outputs, and hidden temporary files.
fn files_in(dir: &Path) -> (Vec<String>, Vec<String>) {
    let names = common::names(dir);
    names.into_iter().partition(|n| !n.starts_with('.'))
}

/// The `node` of every output of `job`, as `env`'s node lists them.
fn output_nodes(env: &Env, job: i64) -> Vec<String> {
    env.json(&["outputs", &job.to_string()])
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            o["node"]
                .as_str()
                .expect("every output names its node")
                .into()
        })
        .collect()
}

/// Nothing is left over in `out` and no FFmpeg writes there: exactly
/// `expected` outputs, one per variation index, and no temporary file.
fn assert_clean(out: &Path, expected: usize) {
    wait_for("no FFmpeg left", Duration::from_secs(10), || {
        ffmpeg_using(s(out)).is_empty().then_some(())
    });
    let (outputs, hidden) = files_in(out);
    assert!(hidden.is_empty(), "temporary files left: {hidden:?}");
    assert_eq!(
        outputs.len(),
        expected,
        "one output per variation: {outputs:?}"
    );
    let indexes: BTreeSet<&str> = outputs
        .iter()
        .map(|n| n.rsplit_once("_v").unwrap().1)
        .collect();
    assert_eq!(indexes.len(), expected, "no variation twice: {outputs:?}");
}

#[test]
fn a_job_spreads_over_two_nodes_and_either_node_sees_it() {
    let pg = Cluster::start();
    let [(a, _node_a), (b, _node_b)] = two_nodes(&pg, 4.0, "640x360");
    let input = a.path("in.mp4");
    let out = a.out_dir();
    let job = a.submit(&["-n", "8", "-o", s(&out), s(&input)]);
    let watched = b.ctl(&["watch", &job.to_string()]);
    assert!(
        watched.status.success(),
        "watch from the other node: {}",
        String::from_utf8_lossy(&watched.stderr)
    );
    let nodes: BTreeSet<String> = output_nodes(&b, job).into_iter().collect();
    assert_eq!(
        nodes,
        BTreeSet::from(["node-a".to_string(), "node-b".to_string()]),
        "both nodes ran variations"
    );
    assert_eq!(a.json(&["list"]), b.json(&["list"]), "one queue, one view");
    let listed = b.json(&["nodes"]);
    let states: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap(), n["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("node-a", "up"), ("node-b", "up")]);
    assert_eq!(a.json(&["ping"])["node"], "node-a");
    assert_clean(&out, 8);
}

#[test]
fn watch_and_cancel_on_one_node_follow_and_stop_ffmpeg_on_the_other() {
    let pg = Cluster::start();
    let (a, _node_a) = node(&pg, "node-a", &[]);
    let input = a.path("long.mp4");
    make_video(&input, 30.0, "1280x720", false);
    let job = a.submit_and_wait_for_progress(&input, "1");
    // All the work is node A's; B joins to follow and control it.
    let (b, _node_b) = node(&pg, "node-b", &[]);
    let out = a.out_dir();
    assert!(!ffmpeg_using(s(&out)).is_empty(), "A encodes");
    let figures = watched_progress(&b, job, 3);
    assert!(
        figures.windows(2).all(|w| w[1].1 > w[0].1),
        "B sees A's progress grow: {figures:?}"
    );
    assert!(
        figures
            .windows(2)
            .all(|w| w[1].0 - w[0].0 < Duration::from_millis(2500)),
        "about once a second: {figures:?}"
    );
    let asked = Instant::now();
    let detail: serde_json::Value =
        serde_json::from_str(&b.ctl_ok(&["--json", "cancel", &job.to_string()])).unwrap();
    assert_eq!(detail["summary"]["state"], "cancelled");
    wait_for("A's FFmpeg to stop", Duration::from_secs(5), || {
        ffmpeg_using(s(&out)).is_empty().then_some(())
    });
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "stopped {:?} after the cancel",
        asked.elapsed()
    );
    wait_for("A's temporary file to go", Duration::from_secs(5), || {
        files_in(&out).1.is_empty().then_some(())
    });
    b.wait_job(job, Duration::from_secs(10), |d| {
        d["files"][0]["state"] == "cancelled"
    });
}

#[test]
fn a_killed_node_loses_nothing_and_recovers_only_its_own() {
    let pg = Cluster::start();
    let Busy {
        a,
        mut node_a,
        b,
        _node_b,
        out,
        job,
    } = busy_a_then_b(&pg);
    node_a.signal_and_wait(Signal::SIGKILL, Duration::from_secs(10));
    let done = b.wait_job(job, Duration::from_secs(180), |d| {
        d["summary"]["state"] != "running" && d["summary"]["state"] != "queued"
    });
    assert_eq!(done["summary"]["state"], "succeeded", "{done}");
    assert_eq!(
        output_nodes(&b, job),
        ["node-b", "node-b"],
        "B took it over"
    );
    let nodes = b.json(&["nodes"]);
    assert_eq!(nodes[0]["name"], "node-a");
    assert_eq!(nodes[0]["state"], "lost", "{nodes}");
    // A comes back under its name and cleans up after itself only.
    let _node_a = start(&a, &pg, "node-a", &[]);
    assert_eq!(pg.psql("SELECT count(*) FROM orphans").trim(), "0");
    assert_clean(&out, 2);
    assert_eq!(a.json(&["nodes"])[0]["state"], "up");
}

#[test]
fn a_frozen_node_that_lost_its_claims_publishes_nothing() {
    let pg = Cluster::start();
    // Every field is bound: one left to `..` would be dropped at once (a
    // daemon killed, a directory removed).
    let Busy {
        a: _a,
        node_a,
        b,
        _node_b,
        out,
        job,
    } = busy_a_then_b(&pg);
    let a_pid = Pid::from_raw(node_a.pid());
    kill(a_pid, Signal::SIGSTOP).unwrap();
    wait_for(
        "B to take both variations over",
        Duration::from_secs(30),
        || {
            let held = pg.psql(
                "SELECT count(*) FROM variations WHERE node = 'node-b' AND state <> 'queued'",
            );
            (held.trim() == "2").then_some(())
        },
    );
    kill(a_pid, Signal::SIGCONT).unwrap();
    let done = b.wait_job(job, Duration::from_secs(180), |d| {
        d["summary"]["state"] == "succeeded"
    });
    assert_eq!(done["files"][0]["done_variations"], 2);
    assert_eq!(output_nodes(&b, job), ["node-b", "node-b"]);
    assert_clean(&out, 2);
    let log = node_a.log();
    assert!(
        log.contains("must stop") || log.contains("claim was lost"),
        "A noticed it lost its claims: {log}"
    );
}

#[test]
fn a_database_restart_mid_job_loses_no_outcome() {
    let pg = Cluster::start();
    let [(a, _node_a), (b, _node_b)] = two_nodes(&pg, 8.0, "1280x720");
    let input = a.path("in.mp4");
    let out = a.out_dir();
    let job = a.submit_and_wait_for_progress(&input, "4");
    pg.pg_ctl_stop();
    let asked = Instant::now();
    let during = b.ctl(&["status", &job.to_string()]);
    assert_eq!(
        during.status.code(),
        Some(3),
        "a request during the outage: {}",
        String::from_utf8_lossy(&during.stderr)
    );
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "answered in seconds"
    );
    assert!(String::from_utf8_lossy(&during.stderr).contains("database"));
    std::thread::sleep(Duration::from_secs(2));
    pg.pg_ctl_start();
    let done = a.wait_job(job, Duration::from_secs(240), |d| {
        d["summary"]["state"] != "running" && d["summary"]["state"] != "queued"
    });
    assert_eq!(done["summary"]["state"], "succeeded", "{done}");
    assert_clean(&out, 4);
}

#[test]
fn a_job_that_lost_a_variation_but_has_an_output_is_partial() {
    let pg = Cluster::start();
    let env = Env::new();
    let small = env.path("small-disk");
    let _mount = Mount::tmpfs(&small, "3m");
    let _node = start(&env, &pg, "node-a", &LOSES_A_VARIATION);
    let job = submit_losing_a_variation(&env, &small);
    let done = env.wait_job(job, Duration::from_secs(120), |d| {
        !matches!(d["summary"]["state"].as_str(), Some("queued" | "running"))
    });
    assert_eq!(done["files"][0]["state"], "failed", "{done}");
    assert_eq!(done["files"][0]["done_variations"], 1, "{done}");
    assert_eq!(done["summary"]["state"], "partial", "{done}");
}

#[test]
fn a_second_live_node_of_the_same_name_is_refused() {
    let pg = Cluster::start();
    let (_a, node_a) = node(&pg, "twin", &[]);
    let other = Env::new();
    let url = pg.url();
    let out = other.run_vidvard(
        &other.socket(),
        &other.state_dir(),
        &other.pidfile(),
        &["--database-url", &url, "--node-name", "twin"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("taken by a live node") && err.contains(&format!("pid {}", node_a.pid())),
        "{err}"
    );
    assert!(!err.contains("postgresql://"), "no URL in messages: {err}");
}

#[test]
fn a_draining_node_takes_no_work_but_serves_its_clients() {
    let pg = Cluster::start();
    let (a, _node_a) = node(&pg, "node-a", &["--max-parallel", "0"]);
    let (b, _node_b) = node(&pg, "node-b", &[]);
    let input = a.path("in.mp4");
    make_video(&input, 2.0, "320x240", false);
    let out = a.out_dir();
    let garbage = a.path("garbage.mp4");
    std::fs::write(&garbage, b"not a video at all").unwrap();
    let job = a.submit(&["-n", "3", "-o", s(&out), s(&input), s(&garbage)]);
    let done = a.wait_job(job, Duration::from_secs(120), |d| {
        d["summary"]["state"] == "partial"
    });
    assert_eq!(done["files"][0]["nodes"], serde_json::json!(["node-b"]));
    let reason = done["files"][1]["error"].as_str().unwrap();
    assert!(
        reason.starts_with("on node node-b: "),
        "names the node: {reason}"
    );
    assert_eq!(output_nodes(&a, job), ["node-b"; 3]);
    assert_eq!(
        b.json(&["nodes"])[0]["slots"],
        0,
        "A's slots as it reported them"
    );
    assert_clean(&out, 3);
}

#[test]
fn queue_control_holds_on_a_shared_queue_and_a_pause_is_per_node() {
    let pg = Cluster::start();
    let (a, mut node_a) = node(&pg, "node-a", &["--max-parallel", "1"]);
    let (b, node_b) = node(&pg, "node-b", &["--max-parallel", "1"]);
    let input = a.path("in.mp4");
    make_video(&input, 1.0, "160x120", false);
    let out = a.out_dir();
    a.ctl_ok(&["pause"]);
    b.ctl_ok(&["pause"]);
    let submit = |priority: &str, label: &str| {
        a.submit(&[
            "-n",
            "1",
            "-p",
            priority,
            "-l",
            label,
            "-o",
            s(&out),
            s(&input),
        ])
    };
    let (low, high, held) = (submit("0", "x"), submit("7", "y"), submit("9", "y"));
    // Any node controls any job; labels select on every node.
    b.ctl_ok(&["pause", &held.to_string()]);
    let ys: Vec<i64> = b
        .json(&["list", "--label", "y"])
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ys, [high, held]);

    // A's pause outlives its restart; B alone resumes and works.
    node_a.signal_and_wait(Signal::SIGTERM, Duration::from_secs(60));
    let _node_a = start(&a, &pg, "node-a", &["--max-parallel", "1"]);
    assert_eq!(a.json(&["ping"])["paused"], true);
    b.ctl_ok(&["resume"]);
    assert_eq!(b.json(&["ping"])["paused"], false);
    assert_eq!(
        a.ctl(&["wait", &low.to_string(), &high.to_string()])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        a.status(held)["summary"]["state"],
        "queued",
        "paused by its owner"
    );
    a.ctl_ok(&["resume", &held.to_string()]);
    assert_eq!(b.ctl(&["wait", &held.to_string()]).status.code(), Some(0));

    let order = publish_order(&node_b.log());
    assert_eq!(
        order,
        [high, low, held],
        "priority first; the paused job after its resume"
    );
    for job in [low, high, held] {
        assert_eq!(
            output_nodes(&a, job),
            ["node-b"],
            "paused node A took nothing"
        );
    }
}
