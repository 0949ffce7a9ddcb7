//! `vidvarctl status JOB` on a shared queue (two real vidvard nodes on a
//! private PostgreSQL cluster): the job's running variations of every
//! node, each with its node; the answering node's own with their
//! progress, the other node's with their progress unknown (`-`, as top
//! shows them), in text and in `--json` (`percent` null).

mod common;

use common::postgres::Cluster;
use common::*;
use serde_json::Value;
use std::time::Duration;

#[test]
fn status_shows_every_nodes_running_variations() {
    let pg = Cluster::start();
    let (a, _node_a) = pg.node("node-a", "2", &[]);
    let (b, _node_b) = pg.node("node-b", "1", &[]);
    let input = a.path("long.mp4");
    make_video(&input, 120.0, "640x480", false);
    let out = a.out_dir();
    let job = a.submit(&["-n", "3", "-o", s(&out), s(&input)]);

    // Each node's view: every running variation, by node.
    let running_on = |env: &Env| -> Vec<Value> {
        let detail = env.wait_job(job, Duration::from_secs(120), |d| {
            d["files"][0]["running"]
                .as_array()
                .is_some_and(|r| r.len() == 3)
        });
        detail["files"][0]["running"].as_array().unwrap().clone()
    };
    let running = running_on(&b);
    let on = |node: &str| running.iter().filter(|r| r["node"] == node).count();
    assert_eq!((on("node-a"), on("node-b")), (2, 1), "{running:?}");
    for r in &running {
        let own = r["node"] == "node-b";
        assert_eq!(r["percent"].is_number(), own, "{r}");
        assert_eq!(r["encoded_secs"].is_number(), own, "{r}");
    }
    let indexes: Vec<&Value> = running.iter().map(|r| &r["index"]).collect();
    assert_eq!(indexes, [1, 2, 3], "by index: {running:?}");

    let text = b.ctl_ok(&["status", &job.to_string()]);
    let lines = |tail: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.trim_start().starts_with("variation ") && l.ends_with(tail))
            .map(String::from)
            .collect()
    };
    let theirs = lines(" on node-a");
    assert_eq!(theirs.len(), 2, "{text}");
    for line in &theirs {
        assert!(line.contains(": - at -, - fps on node-a"), "{text}");
    }
    let own = lines(" on node-b");
    assert_eq!(own.len(), 1, "{text}");
    assert!(own[0].contains('%'), "its progress: {text}");

    // node-a sees its own two with progress, node-b's one without.
    let running = running_on(&a);
    for r in &running {
        assert_eq!(r["percent"].is_number(), r["node"] == "node-a", "{r}");
    }
    a.ctl_ok(&["cancel", &job.to_string()]);
}
