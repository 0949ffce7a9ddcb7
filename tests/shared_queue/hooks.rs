//! The completion hook on a shared queue: each job's hook runs once, on
//! one node, with its JSON; a lock timeout or a database stopped as it
//! starts never loses nor doubles it; a node that never comes back has its
//! owed hook taken over.

use super::*;

#[test]
fn on_a_shared_queue_each_jobs_hook_runs_once_on_one_node() {
    let pg = Cluster::start();
    let a = Env::new();
    let hook = common::TestHook::new(&a, 30);
    let config = s(&hook.config);
    let _node_a = start(&a, &pg, "node-a", &["--config", config]);
    // A paused: node "node b" (a blank in its name) ends every job, and
    // either node may run the hooks.
    a.ctl_ok(&["pause"]);
    let (_b, _node_b) = node(&pg, "node b", &["--config", config]);
    let input = a.path("in.mp4");
    make_video(&input, 1.0, "160x120", false);
    let out = a.out_dir();
    let jobs: Vec<i64> = (0..4)
        .map(|_| a.submit(&["-n", "1", "-o", s(&out), s(&input)]))
        .collect();
    for &job in &jobs {
        let (_, vars) = hook.wait_done(job, Duration::from_secs(120));
        assert_eq!(common::env_value(&vars, "VIDVAR_STATE"), Some("succeeded"));
        let nodes = a.status(job)["files"][0]["nodes"].clone();
        assert_eq!(nodes, serde_json::json!(["node b"]), "job {job}");
    }
    // Every hook owed or running has ended: none can run again.
    wait_for("no hook owed or running", Duration::from_secs(120), || {
        (pg.psql("SELECT count(*) FROM hooks").trim() == "0").then_some(())
    });
    for &job in &jobs {
        assert_eq!(hook.runs(job).len(), 1, "job {job}");
    }
}

/// Node `name` in a new environment with the test hook (hook timeout
/// `timeout` s), paused, and a 1 s input: ready for a job whose end the
/// test times.
fn paused_node_with_hook(
    pg: &Cluster,
    lease: &str,
    timeout: u32,
) -> (Env, common::TestHook, Daemon) {
    let env = Env::new();
    let hook = common::TestHook::new(&env, timeout);
    let daemon = start_leased(&env, pg, "node-a", lease, &["--config", s(&hook.config)]);
    env.ctl_ok(&["pause"]);
    make_video(&env.path("in.mp4"), 1.0, "160x120", false);
    (env, hook, daemon)
}

/// Take an exclusive lock on the `labels` table (which reading a job
/// needs, and ending one does not) in a session of its own.
fn lock_labels(pg: &Cluster) -> common::postgres::Session {
    let mut session = pg.session();
    session.run("BEGIN; LOCK TABLE labels IN ACCESS EXCLUSIVE MODE");
    session
}

/// The job's hook ran exactly once, to its end, with what `vidvarctl
/// --json outputs` prints on its stdin, and nothing is owed any more.
fn assert_hook_ran_once_with_its_json(pg: &Cluster, env: &Env, hook: &common::TestHook, job: i64) {
    let (pid, _) = hook.wait_done(job, Duration::from_secs(60));
    let expected = env.json(&["outputs", &job.to_string()]);
    assert_eq!(expected.as_array().map(Vec::len), Some(1), "{expected}");
    for (run, _) in hook.runs(job) {
        let stdin = hook.stdin(job, run);
        let read: serde_json::Value = serde_json::from_str(&stdin)
            .unwrap_or_else(|e| panic!("run {run} read {stdin:?} on its stdin: {e}"));
        assert_eq!(read, expected, "run {run}'s stdin");
    }
    wait_for("no hook owed or running", Duration::from_secs(60), || {
        (pg.psql("SELECT count(*) FROM hooks").trim() == "0").then_some(())
    });
    assert_eq!(hook.runs(job).len(), 1, "one run (pid {pid})");
}

#[test]
fn a_lock_timeout_before_a_hook_starts_leaves_it_owed_and_it_runs_once() {
    let pg = Cluster::start();
    let (env, hook, daemon) = paused_node_with_hook(&pg, LEASE, 30);
    let out = env.out_dir();
    let job = env.submit(&["-n", "1", "-o", s(&out), s(&env.path("in.mp4"))]);
    let mut lock = lock_labels(&pg);
    env.ctl_ok(&["resume"]);
    // Reading the job for its hook waits for the lock, past the lock
    // timeout (the lease time).
    daemon.wait_record("lock timeout", 0, Duration::from_secs(60));
    lock.run("ROLLBACK");
    assert_hook_ran_once_with_its_json(&pg, &env, &hook, job);
}

#[test]
fn a_database_stopped_as_a_hook_starts_never_runs_it_without_its_json_nor_twice() {
    let pg = Cluster::start();
    // A lease (and lock timeout) of 20 s: the locks below hold the hook
    // for less.
    let (env, hook, mut daemon) = paused_node_with_hook(&pg, "20", 30);
    let out = env.out_dir();
    let job = env.submit(&["-n", "1", "-o", s(&out), s(&env.path("in.mp4"))]);
    let mut reads = lock_labels(&pg);
    env.ctl_ok(&["resume"]);
    let claimed = format!("SELECT count(*) FROM hooks WHERE job_id = {job} AND state = 'running'");
    wait_for(
        "the hook to be claimed and wait to read its job",
        Duration::from_secs(60),
        || (pg.psql(&claimed).trim() == "1" && pg.lock_waiters("%labels%") == 1).then_some(()),
    );
    // Its row locked too: the hook reads its job, then waits on its row
    // as the database stops.
    let mut row = pg.session();
    row.run(&format!(
        "BEGIN; SELECT 1 FROM hooks WHERE job_id = {job} FOR UPDATE"
    ));
    reads.run("ROLLBACK");
    wait_for(
        "the hook to wait on its row",
        Duration::from_secs(10),
        || (pg.lock_waiters("UPDATE hooks%") == 1).then_some(()),
    );
    let before_stop = daemon.log().len();
    pg.pg_ctl_stop();
    let said = format!("job {job}");
    daemon.wait_record(&said, before_stop, Duration::from_secs(30));
    drop((reads, row));
    pg.pg_ctl_start();
    assert_hook_ran_once_with_its_json(&pg, &env, &hook, job);
    // A restart of the node runs nothing again.
    daemon.signal_and_wait(Signal::SIGTERM, Duration::from_secs(20));
    let daemon = start_leased(&env, &pg, "node-a", "20", &["--config", s(&hook.config)]);
    let log_len = daemon.log().len();
    let other = env.submit(&["-n", "1", "-o", s(&out), s(&env.path("in.mp4"))]);
    hook.wait_done(other, Duration::from_secs(60));
    assert_eq!(hook.runs(job).len(), 1, "{}", &daemon.log()[log_len..]);
}

#[test]
fn the_hook_of_a_node_that_never_comes_back_is_taken_over() {
    let pg = Cluster::start();
    let a = Env::new();
    let hook = common::TestHook::new(&a, 12);
    let config = s(&hook.config);
    let mut node_a = start(&a, &pg, "node-a", &["--config", config]);
    make_video(&a.path("in.mp4"), 1.0, "160x120", false);
    let out = a.out_dir();
    let job = a.submit(&["-n", "1", "-l", "hang", "-o", s(&out), s(&a.path("in.mp4"))]);
    let (pid, _) = wait_for("A to start the hook", Duration::from_secs(60), || {
        hook.runs(job).into_iter().next()
    });
    node_a.signal_and_wait(Signal::SIGKILL, Duration::from_secs(10));
    let (_b, node_b) = node(&pg, "node-b", &["--config", config]);
    // B finds A lost after the lease time, waits for the hook (on this
    // machine) to its timeout, and records its end.
    wait_for("no hook owed or running", Duration::from_secs(60), || {
        (pg.psql("SELECT count(*) FROM hooks").trim() == "0").then_some(())
    });
    assert!(
        node_b.log().contains(&format!(
            "job {job}: its hook (pid {pid}) ran on a node that is lost"
        )),
        "{}",
        node_b.log()
    );
    assert_eq!(hook.runs(job).len(), 1, "waited for, not run again");
    assert!(!running(pid), "held to its timeout");
}
