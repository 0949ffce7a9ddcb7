//! Watch folders with the real daemon, client and FFmpeg (issue 25): a file
//! still being written is never taken, each file is taken once whatever
//! renames, rescans, restarts, crashes or other nodes, `--poll-only` finds
//! files with no inotify watch, outputs and partial downloads are never
//! taken, the after-actions run only as they should, and a folder is its
//! owner's alone, each file judged as theirs when it is taken.

mod common;

use common::postgres::Cluster;
use common::users::{User, require_root, said};
use common::*;
use nix::sys::signal::Signal;
use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest wait for a job to appear or end.
const LIMIT: Duration = Duration::from_secs(60);

/// A watched directory and an output directory in `env`.
fn dirs(env: &Env) -> (PathBuf, PathBuf) {
    let dir = env.path("in");
    std::fs::create_dir_all(&dir).unwrap();
    (dir, env.out_dir())
}

/// `vidvarctl folder add ARGS`; the folder's id.
fn add(env: &Env, args: &[&str]) -> i64 {
    env.ctl_ok(&[&["folder", "add"], args].concat())
        .trim()
        .parse()
        .expect("folder add prints the folder's id")
}

/// `folder add DIR -o OUT -n 1 --settle 1` and `extra`: a folder quick
/// enough for a test.
fn add_quick(env: &Env, dir: &Path, out: &Path, extra: &[&str]) -> i64 {
    let quick = [s(dir), "-o", s(out), "-n", "1", "--settle", "1"];
    add(env, &[&quick[..], extra].concat())
}

/// The jobs of folder `id`, by id.
fn jobs_of(env: &Env, id: i64) -> Vec<serde_json::Value> {
    let label = format!("folder:{id}");
    env.json(&["list", "--label", &label])
        .as_array()
        .expect("list --json gives an array")
        .clone()
}

/// The input of `job`, as given.
fn input_of(env: &Env, job: &serde_json::Value) -> String {
    let detail = env.status(job["id"].as_i64().unwrap());
    detail["files"][0]["path"].as_str().unwrap().to_owned()
}

/// Wait until folder `id` has `count` jobs, all final; returns them. More
/// than `count` fails at once: a file was taken twice.
fn final_jobs(env: &Env, id: i64, count: usize) -> Vec<serde_json::Value> {
    wait_for(
        &format!("{count} final job(s) of folder {id}"),
        LIMIT,
        || {
            let jobs = jobs_of(env, id);
            assert!(
                jobs.len() <= count,
                "{} jobs of folder {id}, not {count}: {jobs:?}",
                jobs.len()
            );
            let done = jobs.len() == count
                && jobs
                    .iter()
                    .all(|j| !matches!(j["state"].as_str(), Some("queued" | "running")));
            done.then_some(jobs)
        },
    )
}

/// A clip made outside the folder and moved (renamed) in as `name`.
fn move_in(env: &Env, dir: &Path, name: &str) -> PathBuf {
    let made = env.path(&format!("made-{name}"));
    make_video(&made, 1.0, "160x120", false);
    let path = dir.join(name);
    std::fs::rename(&made, &path).unwrap();
    path
}

/// The inodes that the inotify instances of process `pid` watch
/// (`/proc/PID/fdinfo`, proc(5)).
fn inotify_watched(pid: i32) -> HashSet<u64> {
    let mut inodes = HashSet::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fdinfo")).unwrap() {
        let info = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        for line in info.lines().filter(|l| l.starts_with("inotify wd:")) {
            let ino = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("ino:"))
                .expect("an inotify line names the inode");
            inodes.insert(u64::from_str_radix(ino, 16).unwrap());
        }
    }
    inodes
}

#[test]
fn a_file_still_being_written_is_taken_once_when_done() {
    let env = Env::new();
    let _daemon = env.start(&[]);
    let (dir, out) = dirs(&env);
    let settle = Duration::from_secs(2);
    let id = add(&env, &[s(&dir), "-o", s(&out), "-n", "1", "--settle", "2"]);
    // 20 MB of raw video, made elsewhere, then written in 7 bursts 1 s
    // apart (gaps shorter than the settle time): 6 s, three settle times.
    let source = env.path("big.nut");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=7",
        "-c:v",
        "rawvideo",
        "-pix_fmt",
        "yuv420p",
        s(&source),
    ]);
    let bytes = std::fs::read(&source).unwrap();
    assert!(bytes.len() >= 20_000_000, "{} bytes", bytes.len());
    let mut file = std::fs::File::create(dir.join("big.nut")).unwrap();
    for (i, burst) in bytes.chunks(bytes.len().div_ceil(7)).enumerate() {
        if i > 0 {
            // The writer's pace (the input of this test), not a wait.
            std::thread::sleep(Duration::from_secs(1));
        }
        file.write_all(burst).unwrap();
        assert_eq!(
            jobs_of(&env, id),
            [] as [serde_json::Value; 0],
            "taken while written"
        );
    }
    drop(file);
    let done = Instant::now();
    wait_for(
        "the job of the file",
        settle + Duration::from_secs(2),
        || (!jobs_of(&env, id).is_empty()).then_some(()),
    );
    assert!(
        done.elapsed() >= settle,
        "taken {:?} after the last write",
        done.elapsed()
    );
    let jobs = final_jobs(&env, id, 1);
    assert_eq!(jobs[0]["state"], "succeeded");
}

#[test]
fn each_file_is_taken_once_through_renames_rescans_and_restarts() {
    let env = Env::new();
    let mut daemon = env.start(&[]);
    let (dir, out) = dirs(&env);
    let id = add_quick(&env, &dir, &out, &["--poll", "1"]);
    let moved = move_in(&env, &dir, "a.mp4");
    final_jobs(&env, id, 1);
    // Renamed inside: the same file. A file added after it is the proof
    // that the folder was looked at since.
    std::fs::rename(&moved, dir.join("renamed.mp4")).unwrap();
    move_in(&env, &dir, "b.mp4");
    let jobs = final_jobs(&env, id, 2);
    assert!(input_of(&env, &jobs[1]).ends_with("/b.mp4"));

    // Two files added while the daemon is down: found by its first scan.
    daemon.signal_and_wait(Signal::SIGTERM, LIMIT);
    move_in(&env, &dir, "c.mp4");
    move_in(&env, &dir, "d.mp4");
    let mut daemon = env.start(&[]);
    let jobs = final_jobs(&env, id, 4);
    let mut inputs: Vec<String> = jobs[2..].iter().map(|j| input_of(&env, j)).collect();
    inputs.sort();
    assert!(
        inputs[0].ends_with("/c.mp4") && inputs[1].ends_with("/d.mp4"),
        "{inputs:?}"
    );

    // Restarted again, with every file still there: the ledger takes none
    // of them again (the new one settles with them).
    daemon.signal_and_wait(Signal::SIGTERM, LIMIT);
    let _daemon = env.start(&[]);
    move_in(&env, &dir, "e.mp4");
    let jobs = final_jobs(&env, id, 5);
    assert!(input_of(&env, &jobs[4]).ends_with("/e.mp4"));
    assert_eq!(env.json(&["folder", "show", &id.to_string()])["taken"], 5);
}

#[test]
fn poll_only_finds_files_within_the_interval_with_no_inotify_watch() {
    let env = Env::new();
    let daemon = env.start(&[]);
    let (polled, out) = dirs(&env);
    let notified = env.path("notified");
    std::fs::create_dir(&notified).unwrap();
    let (poll, settle) = (Duration::from_secs(2), Duration::from_secs(1));
    let id = add_quick(&env, &polled, &out, &["--poll", "2", "--poll-only"]);
    add(&env, &[s(&notified), "-o", s(&out), "--settle", "1"]);
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    wait_for("an inotify watch on the other folder", LIMIT, || {
        inotify_watched(daemon.pid())
            .contains(&ino(&notified))
            .then_some(())
    });
    assert!(
        !inotify_watched(daemon.pid()).contains(&ino(&polled)),
        "an inotify watch on the --poll-only folder"
    );
    let made = env.path("made.mp4");
    make_video(&made, 1.0, "160x120", false);
    let dropped = Instant::now();
    std::fs::rename(&made, polled.join("clip.mp4")).unwrap();
    wait_for("the polled file's job", LIMIT, || {
        (!jobs_of(&env, id).is_empty()).then_some(())
    });
    let took = dropped.elapsed();
    assert!(
        took <= poll + settle + Duration::from_millis(1500),
        "found after {took:?}"
    );
}

#[test]
fn loops_are_refused_and_outputs_and_partial_files_never_taken() {
    let env = Env::new();
    let _daemon = env.start(&[]);
    let (dir, out) = dirs(&env);
    let inside = dir.join("out");
    std::fs::create_dir(&inside).unwrap();
    for (watched, outputs) in [(&dir, &inside), (&inside, &dir)] {
        let refused = env.ctl(&["folder", "add", s(watched), "-o", s(outputs)]);
        assert_eq!(refused.status.code(), Some(5), "{}", said(&refused));
        assert!(
            said(&refused).contains("inside one another"),
            "{}",
            said(&refused)
        );
    }
    std::fs::remove_dir(&inside).unwrap();
    let id = add_quick(&env, &dir, &out, &["--poll", "1"]);
    // A job of the client's own writes its output into the folder.
    let elsewhere = env.path("elsewhere.mp4");
    make_video(&elsewhere, 1.0, "160x120", false);
    let job = env.submit(&["-n", "1", "-o", s(&dir), s(&elsewhere)]);
    env.wait_job(job, LIMIT, |d| d["summary"]["state"] == "succeeded");
    assert!(dir.join("elsewhere_v01.mp4").exists());
    for name in ["x.mp4.part", ".hidden.mp4", "y.crdownload", "z.mp4~"] {
        std::fs::copy(&elsewhere, dir.join(name)).unwrap();
    }
    // The proof that the folder was looked at with all of them there.
    move_in(&env, &dir, "real.mp4");
    let jobs = final_jobs(&env, id, 1);
    assert!(input_of(&env, &jobs[0]).ends_with("/real.mp4"));
}

/// A file that is no video: its job fails.
fn junk(path: &Path) {
    std::fs::write(path, b"not a video at all").unwrap();
}

#[test]
fn after_actions_run_only_after_success_and_failed_inputs_are_moved_not_deleted() {
    let env = Env::new();
    let _daemon = env.start(&[]);
    let out = env.out_dir();
    let [deleting, moving, done, failed] = ["deleting", "moving", "done", "failed"].map(|d| {
        let path = env.path(d);
        std::fs::create_dir(&path).unwrap();
        path
    });
    // Successes move to another file system (a copy, synced, then the
    // input removed), failures within one (a rename).
    let _done_fs = Mount::tmpfs(&done, "64m");
    let quick = ["-n", "1", "--settle", "1", "--poll", "1"];
    let del = add(
        &env,
        &[
            &[s(&deleting), "-o", s(&out), "--after", "delete"],
            &quick[..],
        ]
        .concat(),
    );
    let mov = add(
        &env,
        &[
            &[s(&moving), "-o", s(&out)],
            &["--after", &format!("move:{}", s(&done))][..],
            &["--failed", &format!("move:{}", s(&failed))][..],
            &quick[..],
        ]
        .concat(),
    );
    // Failures first: their after-actions have run once the successes'
    // have (each pass takes every ended job of the folder).
    junk(&deleting.join("bad.mp4"));
    junk(&moving.join("bad.mp4"));
    for job in final_jobs(&env, del, 1)
        .iter()
        .chain(&final_jobs(&env, mov, 1))
    {
        assert_eq!(job["state"], "failed");
    }
    move_in(&env, &deleting, "good.mp4");
    let good = move_in(&env, &moving, "good.mp4");
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o640)).unwrap();
    final_jobs(&env, del, 2);
    final_jobs(&env, mov, 2);
    wait_for("the after-actions", LIMIT, || {
        let gone = !deleting.join("good.mp4").exists() && !moving.join("good.mp4").exists();
        (gone && done.join("good.mp4").exists() && failed.join("bad.mp4").exists()).then_some(())
    });
    assert!(deleting.join("bad.mp4").exists(), "removed after a failure");
    assert_eq!(names(&moving), [] as [String; 0]);
    assert_eq!(
        names(&done),
        ["good.mp4"],
        "the free name, not a numbered one"
    );
    let moved = std::fs::metadata(done.join("good.mp4")).unwrap();
    assert_eq!(moved.mode() & 0o7777, 0o640, "the input's permission bits");
    assert_eq!(names(&failed), ["bad.mp4"]);
    assert_eq!(names(&out).len(), 2, "{:?}", names(&out));
}

#[test]
fn a_folder_is_its_owners_and_links_to_what_they_cannot_read_are_refused() {
    require_root("it creates users and a file only root may read");
    let group = User::create("vfg", &[]);
    let alice = User::create("vfa", &[&group.name]);
    let bob = User::create("vfb", &[&group.name]);
    let env = Env::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let daemon = env.start(&["--socket-group", &group.gid.to_string()]);
    let ctl_as = |user: &User, args: &[&str]| {
        user.command(VIDVARCTL)
            .env("VIDVAR_SOCKET", env.socket())
            .current_dir("/")
            .args(args)
            .output()
            .unwrap()
    };
    let (dir, out) = dirs(&env);
    alice.own(&dir, 0o755);
    alice.own(&out, 0o755);
    let added = ctl_as(
        &alice,
        &[
            "folder",
            "add",
            s(&dir),
            "-o",
            s(&out),
            "-n",
            "1",
            "--settle",
            "1",
            "--poll",
            "1",
        ],
    );
    assert!(added.status.success(), "{}", said(&added));
    let id = String::from_utf8_lossy(&added.stdout).trim().to_owned();

    let listed = |user: &User| {
        let out = ctl_as(user, &["--json", "folder", "list"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(listed(&alice).as_array().unwrap().len(), 1);
    assert_eq!(listed(&bob).as_array().unwrap().len(), 0);
    for action in ["show", "remove", "pause", "resume"] {
        let refused = ctl_as(&bob, &["folder", action, &id]);
        assert_eq!(
            refused.status.code(),
            Some(4),
            "bob: {action}: {}",
            said(&refused)
        );
    }
    assert_eq!(
        env.json(&["folder", "list"]).as_array().unwrap().len(),
        1,
        "root sees it"
    );
    assert_eq!(env.json(&["folder", "show", &id])["paused"], false);

    // A file only root may read, reached from alice's folder by a symlink
    // swapped in for one of her clips, and by a hard link.
    let secret_dir = env.path("secret");
    std::fs::create_dir(&secret_dir).unwrap();
    let secret = secret_dir.join("secret.mp4");
    make_video(&secret, 1.0, "176x144", false);
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let swapped = move_in(&env, &dir, "swap.mp4");
    alice.own(&swapped, 0o644);
    let link = dir.join(".link");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    std::fs::rename(&link, &swapped).unwrap();
    std::fs::hard_link(&secret, dir.join("hard.mp4")).unwrap();
    for name in ["swap.mp4", "hard.mp4"] {
        daemon.wait_record(&format!("{name} not taken: permission denied"), 0, LIMIT);
    }
    let id: i64 = id.parse().unwrap();
    assert_eq!(jobs_of(&env, id), [] as [serde_json::Value; 0]);
    // Her own file is taken, as her job.
    let mine = move_in(&env, &dir, "mine.mp4");
    alice.own(&mine, 0o644);
    let jobs = final_jobs(&env, id, 1);
    assert_eq!(jobs[0]["owner_uid"], alice.uid);
    assert_eq!(jobs[0]["state"], "succeeded");
}

#[test]
fn two_nodes_watching_one_folder_take_each_file_once() {
    let pg = Cluster::start();
    let url = pg.url();
    let start = |env: &Env, name: &str| {
        env.start(&[
            "--database-url",
            &url,
            "--node-name",
            name,
            "--lease-timeout",
            "3",
        ])
    };
    let (a, b) = (Env::new(), Env::new());
    let mut nodes = [Some(start(&a, "node-a")), Some(start(&b, "node-b"))];
    let (dir, out) = dirs(&a);
    let id = add_quick(&a, &dir, &out, &["--poll", "1"]);
    let scanner = wait_for("a node to scan the folder", LIMIT, || {
        let node = a.json(&["folder", "show", &id.to_string()])["node"].clone();
        node.as_str().map(String::from)
    });
    for name in ["1.mp4", "2.mp4", "3.mp4"] {
        move_in(&a, &dir, name);
    }
    let jobs = final_jobs(&b, id, 3);
    let inputs: HashSet<String> = jobs.iter().map(|j| input_of(&b, j)).collect();
    assert_eq!(inputs.len(), 3, "{inputs:?}");
    // The scanning node is lost: the other takes the folder over.
    let (lost, env) = if scanner == "node-a" {
        (0, &b)
    } else {
        (1, &a)
    };
    let mut gone = nodes[lost].take().unwrap();
    gone.signal_and_wait(Signal::SIGKILL, LIMIT);
    move_in(env, &dir, "4.mp4");
    final_jobs(env, id, 4);
    assert_eq!(env.json(&["folder", "show", &id.to_string()])["taken"], 4);
}

#[test]
fn a_crash_between_settling_and_storing_takes_the_file_exactly_once() {
    let env = Env::new();
    let mut daemon = env.start(&[]);
    let (dir, out) = dirs(&env);
    let id = add_quick(&env, &dir, &out, &["--poll", "60"]);
    move_in(&env, &dir, "a.mp4");
    daemon.wait_record("a.mp4 settled; taking it", 0, LIMIT);
    daemon.signal_and_wait(Signal::SIGKILL, LIMIT);
    let _daemon = env.start(&[]);
    // A second file settles after the first was looked at again.
    move_in(&env, &dir, "b.mp4");
    let jobs = final_jobs(&env, id, 2);
    let inputs: HashSet<String> = jobs.iter().map(|j| input_of(&env, j)).collect();
    assert_eq!(inputs.len(), 2, "{inputs:?}");
}
