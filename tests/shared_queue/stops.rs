//! Stops across nodes: a cancel whose work runs on a node that dies, and
//! a node that is still stopping its work at shutdown.

use super::*;
use common::held::Held;

/// A job cancelled while the node running it is frozen, then killed: the
/// other node takes its expired claims over only to settle them (their
/// temporary files removed, the variations cancelled), never encodes them
/// again; and the cancel answers once that is done.
#[test]
fn a_cancelled_jobs_work_on_a_dead_node_is_settled_not_encoded_again() {
    let pg = Cluster::start();
    // At debug level B records every FFmpeg it starts ("ffmpeg pid").
    let Busy {
        a: _a,
        node_a,
        b,
        _node_b: node_b,
        out,
        job,
    } = busy_a_then_b_with(&pg, &[], &["--log-level", "debug"]);
    let a_pid = Pid::from_raw(node_a.pid());
    kill(a_pid, Signal::SIGSTOP).unwrap();
    let cancel = b.ctl_started(&["cancel", &job.to_string()]);
    kill(a_pid, Signal::SIGKILL).unwrap();
    let answered = cancel.wait_with_output().unwrap();
    assert!(answered.status.success(), "{:?}", answered.status);
    let done = b.wait_job(job, Duration::from_secs(120), |d| {
        d["files"][0]["running"]
            .as_array()
            .is_some_and(|r| r.is_empty())
    });
    assert_eq!(done["summary"]["state"], "cancelled", "{done}");
    assert_eq!(done["files"][0]["done_variations"], 0, "{done}");
    assert_eq!(
        b.json(&["outputs", &job.to_string()]),
        serde_json::json!([])
    );
    assert_eq!(
        files_in(&out),
        (vec![], vec![]),
        "outputs or temporary files"
    );
    let settled = pg.psql(&format!(
        "SELECT count(*) FROM variations v JOIN files f ON f.id = v.file_id
         WHERE f.job_id = {job} AND v.state = 'cancelled' AND v.node = 'node-b'"
    ));
    assert_eq!(
        settled.trim(),
        "2",
        "B took both claims over and settled them"
    );
    let log = node_b.log();
    assert!(!log.contains("ffmpeg pid"), "B encoded them again:\n{log}");
}

/// A node stopping cleanly keeps renewing its claims until its FFmpeg is
/// gone, however long its grace period: no other node takes over work it
/// is still stopping. Once it has stopped, the work goes to the other node.
#[test]
fn a_node_still_stopping_its_work_keeps_its_claims() {
    let pg = Cluster::start();
    let Busy {
        a,
        mut node_a,
        b,
        _node_b: node_b,
        out: _out,
        job,
    } = busy_a_then_b_with(&pg, &["--grace-period", "60"], &["--log-level", "debug"]);
    // Past their start: a stop during the start ends it at once.
    a.wait_job(job, Duration::from_secs(60), |d| {
        common::both_encoding(&d["files"][0])
    });
    let held = Held::all_of(&node_a);
    kill(Pid::from_raw(node_a.pid()), Signal::SIGTERM).unwrap();
    held.wait_signalled();
    let taken_by_b = || {
        pg.psql("SELECT count(*) FROM variations WHERE node = 'node-b'")
            .trim()
            .to_string()
    };
    // Past two lease times (3 s each) of A stopping: B took nothing.
    let window = Instant::now() + Duration::from_secs(7);
    while Instant::now() < window {
        let taken = taken_by_b();
        assert_eq!(
            taken,
            "0",
            "B took over work A was still stopping; A:\n{}\nB:\n{}",
            node_a.log(),
            node_b.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(held);
    let (status, _) = node_a.signal_and_wait(Signal::SIGTERM, Duration::from_secs(120));
    assert!(status.success(), "{}", node_a.log());
    wait_for(
        "B to take the work A handed back",
        Duration::from_secs(60),
        || (taken_by_b() != "0").then_some(()),
    );
    let state = b.status(job)["summary"]["state"].clone();
    assert!(state == "running" || state == "queued", "{state}");
    b.ctl_ok(&["cancel", &job.to_string()]);
}
