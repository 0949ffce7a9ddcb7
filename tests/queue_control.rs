//! Queue control with the real daemon and FFmpeg: priority order (also on
//! a loaded machine, on SQLite and PostgreSQL), pausing the daemon and one
//! job (across a restart, and with `--stop`), labels and paging over
//! thousands of jobs, `wait` and its exit statuses, `cancel` of a job that
//! had already ended (exit status 6), and the speed and ETA that progress
//! carries.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vidvar::proto::{JobPage, ListRequest, MAX_PAGE, Request, Response, SubmitRequest};

const LIMIT: Duration = Duration::from_secs(240);

/// The record of a pass of the claim loop of a paused daemon (at log
/// level trace).
const PAUSED_PASS: &str = "paused: no work claimed";

/// A daemon with `parallel` slots, logging at level trace, an input of `secs` seconds of `size`
/// and an output directory.
fn setup(secs: f64, size: &str, parallel: &str) -> (Env, PathBuf, PathBuf, Daemon) {
    let env = Env::new();
    let clip = env.path("clip.mp4");
    make_video(&clip, secs, size, false);
    let out = env.out_dir();
    let daemon = env.start(&["--max-parallel", parallel, "--log-level", "trace"]);
    (env, clip, out, daemon)
}

fn code(out: &std::process::Output) -> i32 {
    out.status.code().expect("vidvarctl exits, not killed")
}

#[test]
fn priority_decides_what_a_resumed_daemon_starts_first() {
    let (env, clip, out, daemon) = setup(1.0, "160x120", "1");

    let paused = env.json(&["pause"]);
    assert_eq!(paused["paused"], true, "{paused}");
    assert!(env.ctl_ok(&["ping"]).contains("paused"));
    let submit = |priority: &str, label: &str| {
        env.submit(&[
            "-n",
            "1",
            "-p",
            priority,
            "--label",
            label,
            "-o",
            s(&out),
            s(&clip),
        ])
    };
    let (j1, j2, j3, j4) = (
        submit("0", "a"),
        submit("5", "b"),
        submit("-3", "c"),
        submit("5", "d"),
    );
    // Raised after submission; and one job paused by its owner.
    let raised = env.json(&["priority", &j3.to_string(), "10"]);
    assert_eq!(raised["summary"]["priority"], 10);
    env.ctl_ok(&["pause", &j1.to_string()]);
    let status = env.ctl_ok(&["status"]);
    assert!(status.starts_with("vidvard is paused"), "{status}");
    assert!(
        status.contains("queued*"),
        "a paused job is marked: {status}"
    );
    let negative = env.ctl(&["priority", &j4.to_string(), "-1001"]);
    assert_eq!(code(&negative), 2, "out of range is a usage error");

    // The claim loop looked at the queue holding all four and took nothing.
    daemon.wait_record(PAUSED_PASS, daemon.log().len(), LIMIT);
    assert_eq!(
        env.status(j2)["summary"]["state"],
        "queued",
        "nothing starts while paused"
    );

    env.ctl_ok(&["resume"]);
    let done = env.ctl(&["wait", &j2.to_string(), &j3.to_string(), &j4.to_string()]);
    assert_eq!(code(&done), 0, "{}", String::from_utf8_lossy(&done.stderr));
    assert_eq!(
        env.status(j1)["summary"]["state"],
        "queued",
        "its owner paused it"
    );
    env.ctl_ok(&["resume", &j1.to_string()]);
    assert_eq!(code(&env.ctl(&["wait", &j1.to_string()])), 0);

    // Nothing started while paused: every job's first work, its probe,
    // is recorded after the resume.
    let log = std::fs::read_to_string(env.path("vidvard.log")).unwrap();
    let early = records_before(&log, "resumed by uid", ": probed ");
    assert!(early.is_empty(), "started while paused: {early:?}\n{log}");
    // Higher priority first; jobs of one priority take turns (from the
    // job after the one served last), the lowest priority comes last.
    let order = publish_order(&log);
    assert_eq!(order.len(), 4, "{log}");
    let mut middle = order[1..3].to_vec();
    middle.sort_unstable();
    assert_eq!(
        (order[0], middle, order[3]),
        (j3, vec![j2, j4], j1),
        "{log}"
    );
}

#[test]
fn a_pause_survives_a_restart_and_pause_stop_queues_running_work_again() {
    let (env, clip, out, mut daemon) = setup(10.0, "640x360", "1");
    let job = env.submit_and_wait_for_progress(&clip, "1");

    // --stop answers once FFmpeg is gone and the variation is queued again.
    let pong = env.json(&["pause", "--stop"]);
    assert_eq!(
        (pong["paused"].clone(), pong["running_processes"].clone()),
        (Value::Bool(true), 0.into())
    );
    assert!(ffmpeg_using(s(&out)).is_empty(), "FFmpeg was stopped");
    let detail = env.status(job);
    assert_eq!(detail["files"][0]["running"], Value::Array(vec![]));
    assert!(
        !detail["summary"]["state"].as_str().unwrap().ends_with("ed"),
        "{detail}"
    );
    assert_eq!(names(&out), Vec::<String>::new(), "no temporary file left");
    assert!(detail["daemon_paused"].as_bool().unwrap());

    let (status, _) = daemon.signal_and_wait(nix::sys::signal::Signal::SIGTERM, LIMIT);
    assert!(status.success());
    // Each FFmpeg start is recorded ("ffmpeg pid"), as is each pass of the
    // claim loop while paused.
    let daemon = env.start(&["--max-parallel", "1", "--log-level", "trace"]);
    assert_eq!(env.json(&["ping"])["paused"], true, "the pause was kept");
    daemon.wait_record(PAUSED_PASS, 0, LIMIT);
    let detail = env.status(job);
    assert_eq!(detail["summary"]["state"], "queued", "{detail}");
    assert!(
        ffmpeg_using(s(&out)).is_empty(),
        "nothing started while paused"
    );

    assert_eq!(env.json(&["resume"])["paused"], false);
    assert_eq!(code(&env.ctl(&["wait", &job.to_string()])), 0);
    let log = daemon.log();
    let early = records_before(&log, "resumed by uid", "ffmpeg pid");
    assert!(early.is_empty(), "started while paused: {early:?}\n{log}");
    assert!(
        log.contains("ffmpeg pid"),
        "FFmpeg starts are recorded: {log}"
    );
    assert_eq!(
        env.json(&["outputs", &job.to_string()])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(!env.ctl_ok(&["ping"]).contains("paused"));
}

#[test]
fn wait_exits_zero_only_when_every_job_succeeded() {
    let (env, clip, out, _daemon) = setup(1.0, "160x120", "2");
    let garbage = env.path("garbage.mp4");
    std::fs::write(&garbage, "this is not a video at all").unwrap();

    let good = env.submit(&["-n", "1", "-o", s(&out), s(&clip)]);
    let bad = env.submit(&["-n", "1", "-o", s(&out), s(&garbage)]);
    let both = env.ctl(&["wait", &good.to_string(), &bad.to_string()]);
    assert_eq!(code(&both), 1);
    let text = String::from_utf8_lossy(&both.stdout);
    assert!(text.contains(&format!("job {good}: succeeded")), "{text}");
    assert!(text.contains(&format!("job {bad}: failed")), "{text}");
    assert_eq!(code(&env.ctl(&["wait", &good.to_string()])), 0);
    let json = env.json(&["wait", &good.to_string(), &bad.to_string()]);
    let states: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["succeeded", "failed"]);

    // A missing job fails at once, before waiting for the others.
    let later = env.submit(&["-n", "2", "-o", s(&out), s(&clip)]);
    let missing = env.ctl(&["wait", &later.to_string(), "424242"]);
    assert_eq!(code(&missing), 4);
    // --all waits for every open job of the caller's.
    assert_eq!(code(&env.ctl(&["wait", "--all"])), 0);
    assert_eq!(env.status(later)["summary"]["state"], "succeeded");
    assert_eq!(code(&env.ctl(&["wait"])), 2, "JOB or --all is required");
}

/// `cancel` of a job that had already ended says so and exits 6 (its own
/// status, vidvarctl(1)), the job left as it was: succeeded, failed, or
/// cancelled by an earlier `cancel`; a job with a variation running and
/// one queued is cancelled (exit 0) as before.
#[test]
fn cancel_of_an_ended_job_says_so_and_exits_6() {
    let (env, clip, out, _daemon) = setup(1.0, "160x120", "1");
    let ended = |job: i64, how: &str| {
        let refused = env.ctl(&["cancel", &job.to_string()]);
        assert_eq!(code(&refused), 6, "{}", common::users::said(&refused));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(
            stderr,
            format!("vidvarctl: job {job} had already {how}: nothing to cancel\n")
        );
        let json = env.json(&["cancel", &job.to_string()]);
        assert_eq!(json["error"]["exit_status"], 6, "{json}");
    };
    let good = env.submit(&["-n", "1", "-o", s(&out), s(&clip)]);
    env.wait_job(good, LIMIT, |d| d["summary"]["state"] == "succeeded");
    ended(good, "succeeded");
    assert_eq!(env.status(good)["summary"]["state"], "succeeded");

    let garbage = env.path("garbage.mp4");
    std::fs::write(&garbage, "this is not a video at all").unwrap();
    let bad = env.submit(&["-n", "1", "-o", s(&out), s(&garbage)]);
    env.wait_job(bad, LIMIT, |d| d["summary"]["state"] == "failed");
    ended(bad, "failed");

    let long = env.path("long.mp4");
    make_video(&long, 30.0, "640x480", false);
    let open = env.submit(&["-n", "2", "-o", s(&out), s(&long)]);
    env.wait_job(open, LIMIT, |d| {
        d["files"][0]["running"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    });
    let cancelled = env.json(&["cancel", &open.to_string()]);
    assert_eq!(cancelled["summary"]["state"], "cancelled", "{cancelled}");
    ended(open, "been cancelled");
}

#[test]
fn progress_carries_a_speed_and_a_decreasing_eta() {
    let (env, clip, out, _daemon) = setup(10.0, "1280x720", "1");
    let job = env.submit(&["-n", "2", "-o", s(&out), s(&clip)]);
    let watched = env.ctl(&["--json", "watch", &job.to_string()]);
    assert_eq!(
        code(&watched),
        0,
        "{}",
        String::from_utf8_lossy(&watched.stderr)
    );
    let frames: Vec<Value> = String::from_utf8_lossy(&watched.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let etas: Vec<f64> = frames
        .iter()
        .filter(|f| f["summary"]["state"] == "running")
        .filter_map(|f| f["summary"]["eta_secs"].as_f64())
        .collect();
    assert!(etas.len() >= 3, "an ETA in most running frames: {etas:?}");
    assert!(etas.first() > etas.last(), "the ETA goes down: {etas:?}");
    // It estimates what is left: at most the media time of the job over a
    // plausible speed, never negative.
    assert!(etas.iter().all(|&e| (0.0..600.0).contains(&e)), "{etas:?}");
    let speeds: Vec<f64> = frames
        .iter()
        .flat_map(|f| {
            f["files"][0]["running"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|v| v["speed"].as_f64())
        .collect();
    assert!(
        !speeds.is_empty() && speeds.iter().all(|&x| x > 0.0),
        "{speeds:?}"
    );
    let last = frames.last().unwrap();
    assert_eq!(last["summary"]["state"], "succeeded");
    assert_eq!(last["summary"]["eta_secs"], 0.0);
}

/// A client of the daemon's socket, for requests vidvarctl does not make
/// as such (a page larger than the largest).
async fn client(socket: &Path) -> vidvar::client::Client {
    let trusted = vidvar::client::Trusted::new(vidvar::paths::SERVICE_USER);
    vidvar::client::Client::connect(socket, &trusted, "queue_control test")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_select_and_pages_walk_thousands_of_jobs_in_a_stable_order() {
    const JOBS: usize = 2500;
    let (env, clip, out, _daemon) = setup(1.0, "160x120", "2");
    env.ctl_ok(&["pause"]);

    let mut c = client(&env.socket()).await;
    let mut ids = Vec::with_capacity(JOBS);
    for i in 0..JOBS {
        let mut labels = vec![format!("batch-{}", i % 3)];
        if i % 100 == 0 {
            labels.push("hundred".into());
        }
        let request = Request::Submit(SubmitRequest {
            inputs: vec![clip.clone()],
            variations: 1,
            seed: Some(i as u64),
            output_dir: out.clone(),
            priority: 0,
            labels,
        });
        match c.request(&request).await.unwrap() {
            Response::Submitted { job } => ids.push(job),
            other => panic!("submit {i}: {other:?}"),
        }
    }

    // A page never grows past MAX_PAGE, whatever is asked.
    let huge = Request::List(ListRequest {
        state: None,
        label: None,
        after: 0,
        limit: u32::MAX,
    });
    let Response::Jobs(JobPage {
        jobs,
        more,
        daemon_paused,
    }) = c.request(&huge).await.unwrap()
    else {
        panic!("list answers with a page");
    };
    assert_eq!(
        (jobs.len(), more, daemon_paused),
        (MAX_PAGE as usize, true, true)
    );

    // vidvarctl walks the pages: every job once, by id.
    let listed = |args: &[&str]| -> Vec<i64> {
        env.json(&[&["list"], args].concat())
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(listed(&[]), ids);
    let mut walked = Vec::new();
    let mut after = 0;
    loop {
        let page = listed(&["--limit", "1000", "--after", &after.to_string()]);
        let Some(&last) = page.last() else { break };
        assert!(page.len() <= 1000);
        walked.extend(page);
        after = last;
    }
    assert_eq!(walked, ids, "pages in a stable order, none twice");

    let batch1: Vec<i64> = ids.iter().skip(1).step_by(3).copied().collect();
    assert_eq!(listed(&["--label", "batch-1"]), batch1);
    let hundreds: Vec<i64> = ids.iter().step_by(100).copied().collect();
    assert_eq!(
        listed(&["--label", "hundred", "--state", "queued"]),
        hundreds
    );
    assert_eq!(
        listed(&["--label", "hundred", "--state", "running"]),
        Vec::<i64>::new()
    );
    assert_eq!(
        listed(&["--label", "hundred", "--limit", "3"]),
        hundreds[..3]
    );
    let text = env.ctl_ok(&["list", "--label", "hundred", "--limit", "1"]);
    assert!(text.contains("batch-0,hundred"), "labels column: {text}");

    let bad = env.ctl(&["submit", "--label", "", s(&clip)]);
    assert_eq!(code(&bad), 2, "an empty label is a usage error");
    let state = env.ctl(&["list", "--state", "done"]);
    assert_eq!(code(&state), 2);
    assert!(String::from_utf8_lossy(&state.stderr).contains("queued, running"));
}

/// Busy-loop CPU hogs, competing with FFmpeg for every core; killed and
/// reaped when dropped.
struct Hogs(Vec<std::process::Child>);

impl Hogs {
    fn start(count: usize) -> Hogs {
        Hogs(
            (0..count)
                .map(|_| {
                    std::process::Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .stdin(std::process::Stdio::null())
                        .spawn()
                        .expect("sh starts")
                })
                .collect(),
        )
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for hog in &mut self.0 {
            let _ = hog.kill();
            let _ = hog.wait();
        }
    }
}

/// A live (not zombie) FFmpeg, ffprobe or vidvar-stage child of
/// `parent`: its pid and start time (/proc/PID/stat field 22), so a
/// reused pid is told apart, and its process group (field 5).
fn ffmpeg_child(pid: i32, parent: i32) -> Option<(i32, u64, i32)> {
    let stat = live_stat(pid)?;
    (matches!(stat.comm.as_str(), "ffmpeg" | "ffprobe" | "vidvar-stage") && stat.ppid == parent)
        .then_some((pid, stat.start, stat.group))
}

/// How many units of FFmpeg work (encodes, checks, probes: a lone
/// process, or the processes of one pipeline of the pixel path, which
/// share a process group) of children of `parent` are alive at one
/// moment. /proc is read twice: a process found
/// in the first walk and still there in the second was alive from the
/// first walk's read to the second's, so all those found twice were alive
/// together (at the end of the first walk); one that ended while another
/// started during the walk is not counted with it.
fn ffmpeg_alive_together(parent: i32) -> usize {
    let first: Vec<(i32, u64, i32)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter_map(|pid| ffmpeg_child(pid, parent))
        .collect();
    let groups: std::collections::BTreeSet<i32> = first
        .iter()
        .filter(|&&(pid, start, group)| ffmpeg_child(pid, parent) == Some((pid, start, group)))
        .map(|&(_, _, group)| group)
        .collect();
    groups.len()
}

/// The rule a user relies on when giving a job a higher priority, on a
/// loaded machine (busy loops on every core) with one slot: nothing of the
/// lower-priority job starts (not even its probe: the job stays queued)
/// until every variation of the higher-priority job is recorded as ended
/// (the job is final); and never is more FFmpeg work alive at once
/// than `max_parallel` (a lone FFmpeg or one pipeline each), the check
/// and the probe counting as FFmpeg work.
/// `daemon` runs with `--max-parallel 1`.
async fn a_lower_priority_job_waits_for_a_higher_one(env: &Env, daemon: &Daemon) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use vidvar::job::JobState;

    let clip = env.path("clip.mp4");
    make_video(&clip, 2.0, "320x240", false);
    let out = env.out_dir();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let _hogs = Hogs::start(cores);

    // FFmpeg processes of this daemon, sampled as fast as /proc is read.
    let done = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (done, most, daemon) = (Arc::clone(&done), Arc::clone(&most), daemon.pid());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                most.fetch_max(ffmpeg_alive_together(daemon), Ordering::SeqCst);
            }
        })
    };

    env.ctl_ok(&["pause"]);
    let submit = |priority: &str| env.submit(&["-n", "2", "-p", priority, "-o", s(&out), s(&clip)]);
    let (low, high) = (submit("0"), submit("5"));
    env.ctl_ok(&["resume"]);

    // Each answer to `list` is one read of the queue: the two jobs'
    // states at one moment (two `status` calls are two moments, and may
    // straddle the moment one job ends and the other starts).
    let mut c = client(&env.socket()).await;
    let list = Request::List(ListRequest {
        state: None,
        label: None,
        after: 0,
        limit: 10,
    });
    let deadline = std::time::Instant::now() + LIMIT;
    let (mut reads, mut high_open) = (0, 0);
    let ended = loop {
        let Response::Jobs(page) = c.request(&list).await.unwrap() else {
            panic!("list answers with a page");
        };
        let state = |id| page.jobs.iter().find(|j| j.id == id).unwrap().state;
        let (h, l) = (state(high), state(low));
        reads += 1;
        if !h.is_final() {
            high_open += 1;
            assert_eq!(
                l,
                JobState::Queued,
                "job {low} (priority 0) started while job {high} (priority 5) was {h:?}, \
                 its variations not all recorded; log:\n{}",
                daemon.log()
            );
        }
        if h.is_final() && l.is_final() {
            break (h, l);
        }
        assert!(std::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    done.store(true, Ordering::SeqCst);
    sampler.join().unwrap();

    assert_eq!(ended, (JobState::Succeeded, JobState::Succeeded));
    assert!(
        high_open > 10,
        "job {high} was read while it ran: {high_open} of {reads} reads"
    );
    assert_eq!(
        most.load(Ordering::SeqCst),
        1,
        "FFmpeg work (lone processes or pipelines) alive at once with max_parallel 1"
    );
    assert_eq!(
        publish_order(&daemon.log()),
        [high, low],
        "{}",
        daemon.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_a_lower_priority_job_waits_until_a_higher_one_is_recorded() {
    let env = Env::new();
    let daemon = env.start(&["--max-parallel", "1"]);
    a_lower_priority_job_waits_for_a_higher_one(&env, &daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_under_load_a_lower_priority_job_waits_for_a_higher_one() {
    let pg = common::postgres::Cluster::start();
    let env = Env::new();
    let url = pg.url();
    let daemon = env.start(&[
        "--database-url",
        &url,
        "--node-name",
        "solo",
        "--max-parallel",
        "1",
    ]);
    a_lower_priority_job_waits_for_a_higher_one(&env, &daemon).await;
}
