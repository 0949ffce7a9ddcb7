//! `vidvarctl top` in a pseudo-terminal (tmux, 80x24) against a real
//! daemon with running, queued and failed work: what a person sees (the
//! running variation, the queued job's label, the failed input and its
//! reason, the slots), and keys that act: `c` really cancels the selected
//! job, `q` quits; when the daemon goes away, top exits 1 saying so. On a
//! shared queue it shows every node and every node's running variations.
//! Every key acts as the CLI does
//! (`p`/`P` on the daemon and on a job, `?`, `Enter`, `r` really retries),
//! the terminal is given back (out of the alternate screen, `stty` cooked
//! with echo) on `q`, Ctrl-C and SIGTERM (exit status 143), and `NO_COLOR`
//! leaves no colour.
//! A second user (nobody) sees only their own jobs in top and `stats`.
//! A name with control characters shows escaped once, as `status` shows
//! it, and never reaches the terminal raw. On a small terminal the
//! header and the key line stay.

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
/// its own running variations with its name and their progress, and the
/// other node's with that node's name, their progress unknown ("-");
/// nobody, in the socket group, sees root's running work on either node
/// only as counts.
#[test]
fn top_shows_every_node_of_a_shared_queue() {
    common::users::require_root("it acts as a second user");
    let pg = Cluster::start();
    let (a, _node_a) = pg.node("node-a", "2", &["--socket-group", GROUP]);
    let (b, _node_b) = pg.node("node-b", "1", &["--socket-group", GROUP]);
    open_to_nobody(&b);
    let input = a.path("long.mp4");
    make_video(&input, 120.0, "640x480", false);
    let out = a.out_dir();
    let job = a.submit(&["-n", "3", "-o", s(&out), s(&input)]);

    let command = format!("{VIDVARCTL} --socket {} top", s(&b.socket()));
    let pane = Pane::sized("vidvar-top-nodes", &command, &[], (120, 30));
    let screen = pane.shows(&["nodes: node-a 2/2, node-b 1/1", "on node-b", "on node-a"]);
    assert!(screen.contains("node node-b  slots 1/1"), "{screen}");
    let on = |node: &str| -> Vec<&str> {
        let tail = format!(" on {node}");
        screen.lines().filter(|l| l.contains(&tail)).collect()
    };
    let own = on("node-b");
    assert_eq!(own.len(), 1, "node-b's own: {screen}");
    assert!(own[0].contains(&format!("{job} long.mp4")), "{screen}");
    assert!(own[0].contains('%'), "its progress: {screen}");
    let theirs = on("node-a");
    assert_eq!(theirs.len(), 2, "node-a's, from the queue: {screen}");
    for line in theirs {
        assert!(line.contains(&format!("{job} long.mp4")), "{screen}");
        assert!(
            !line.contains('%') && line.contains("  - fps"),
            "progress unknown: {screen}"
        );
    }

    let theirs = Pane::sized(
        "vidvar-top-nodes-nobody",
        &as_nobody(&command),
        &[],
        (120, 30),
    );
    let screen = theirs.shows(&["nodes: node-a 2/2, node-b 1/1", "your jobs"]);
    assert!(screen.contains("jobs: running 1"), "counted: {screen}");
    assert!(!screen.contains("long.mp4"), "root's input shown: {screen}");
    assert!(!screen.contains(" on node-"), "root's variations: {screen}");
    a.ctl_ok(&["cancel", &job.to_string()]);
}

/// `vidvarctl top` run by a shell in a pane of its own that, once top has
/// ended, says how and prints `stty -a`, so that the test reads the
/// terminal top left behind.
fn top_in_shell(env: &Env, name: &str, vars: &[(&str, &str)]) -> Pane {
    let command = format!(
        "sh -c '{VIDVARCTL} --socket {} top; echo top exited $?; stty -a; echo stty done; sleep 600'",
        s(&env.socket())
    );
    Pane::start(name, &command, vars)
}

/// top exited with `status`, and the terminal is as top found it: out of
/// the alternate screen (tmux's `#{alternate_on}`), and `stty -a` shows
/// canonical mode, echo and signals back on (raw mode turns them off).
fn assert_given_back(pane: &Pane, status: u8) {
    // stty -a prints several lines: wait for the line after its last.
    let screen = pane.shows(&["top exited", "stty done"]);
    assert!(
        screen.contains(&format!("top exited {status}\n")),
        "not exit status {status}:\n{screen}"
    );
    assert!(
        !pane.alternate_on(),
        "still in the alternate screen:\n{screen}"
    );
    let words: Vec<&str> = screen
        .split(|c: char| c.is_whitespace() || c == ';')
        .collect();
    for flag in ["icanon", "echo", "isig"] {
        assert!(
            words.contains(&flag) && !words.contains(&format!("-{flag}").as_str()),
            "{flag} not back on:\n{screen}"
        );
    }
}

/// The pid of the `vidvarctl top` that talks to `socket`.
fn top_pid(socket: &std::path::Path) -> i32 {
    wait_for("vidvarctl top to run", Duration::from_secs(10), || {
        std::fs::read_dir("/proc").unwrap().find_map(|e| {
            let e = e.ok()?;
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let ours = args.first()?.ends_with(b"vidvarctl")
                && args.contains(&s(socket).as_bytes())
                && args.contains(&b"top".as_slice());
            ours.then_some(pid)
        })
    })
}

/// The keys act as the CLI does: `p`/`P` pause and resume the daemon with
/// no job selected, `?` shows the help, `Enter` a job's detail, `r` really
/// retries a failed job (it succeeds once its input is fixed), `p`/`P`
/// pause and resume the selected job; and the terminal is given back on
/// `q` and Ctrl-C (exit status 0) and SIGTERM (143).
#[test]
fn top_keys_act_and_the_terminal_is_given_back() {
    let env = Env::new();
    let _daemon = env.start(&["--max-parallel", "1"]);
    let pane = top_in_shell(&env, "vidvar-top-keys", &[]);
    pane.shows(&["slots 0/1", "q quit"]);

    pane.keys(&["p"]);
    pane.shows(&["pause the daemon: done", "PAUSED"]);
    assert_eq!(env.json(&["ping"])["paused"], true);
    pane.keys(&["P"]);
    pane.shows(&["resume the daemon: done"]);
    assert_eq!(env.json(&["ping"])["paused"], false);

    pane.keys(&["?"]);
    pane.shows(&[" keys ", "this help; any key closes it"]);
    pane.keys(&["x"]);
    wait_for("the help to close", Duration::from_secs(10), || {
        (!pane.screen().contains("any key closes it")).then_some(())
    });

    // An input that is no video fails; fixed in place (the same file), a
    // retry from top runs it again, and it succeeds.
    let input = env.path("flaky.mp4");
    std::fs::write(&input, b"not a video at all").unwrap();
    let out = env.out_dir();
    let job = env.submit(&["-n", "1", "-o", s(&out), s(&input)]);
    env.wait_job(job, Duration::from_secs(60), |d| {
        d["summary"]["state"] == "failed"
    });
    pane.shows(&[&format!("{job} failed")]);
    pane.keys(&["Enter"]);
    pane.shows(&[" job ", &format!("job {job}: failed"), "flaky.mp4"]);
    pane.keys(&["x"]);
    let good = env.path("good.mp4");
    make_video(&good, 1.0, "160x120", false);
    std::fs::write(&input, std::fs::read(&good).unwrap()).unwrap();
    pane.keys(&["r"]);
    env.wait_job(job, Duration::from_secs(120), |d| {
        d["summary"]["state"] == "succeeded"
    });
    pane.shows(&[&format!("retry job {job}: now")]);

    // A queued job (the daemon paused): p pauses it, P resumes it.
    env.ctl_ok(&["pause"]);
    let queued = env.submit(&["-n", "1", "-o", s(&out), s(&good)]);
    pane.shows(&[&format!("{queued} queued")]);
    // The selection stayed on the retried job, now below the queued one.
    pane.keys(&["k", "p"]);
    pane.shows(&[&format!("pause job {queued}: now")]);
    assert_eq!(env.status(queued)["summary"]["paused"], true);
    pane.keys(&["P"]);
    pane.shows(&[&format!("resume job {queued}: now")]);
    assert_eq!(env.status(queued)["summary"]["paused"], false);
    env.ctl_ok(&["resume"]);

    pane.keys(&["q"]);
    assert_given_back(&pane, 0);

    let pane = top_in_shell(&env, "vidvar-top-ctrl-c", &[]);
    pane.shows(&["q quit"]);
    pane.keys(&["C-c"]);
    assert_given_back(&pane, 0);

    let pane = top_in_shell(&env, "vidvar-top-sigterm", &[]);
    pane.shows(&["q quit"]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(top_pid(&env.socket())),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // As a shell reports a process SIGTERM killed: 128 + 15.
    assert_given_back(&pane, 143);
}

/// Whether `screen` (captured with `capture-pane -e`) sets a colour: an
/// SGR sequence with a foreground or background colour parameter.
fn has_colour(screen: &str) -> bool {
    screen.split("\x1b[").skip(1).any(|seq| {
        let Some(end) = seq.find('m') else {
            return false;
        };
        seq[..end].split(';').any(|p| {
            p.parse::<u32>()
                .is_ok_and(|n| matches!(n, 30..=37 | 38 | 40..=47 | 48 | 90..=97 | 100..=107))
        })
    })
}

/// Colour by default; with `NO_COLOR` set, not one colour escape (bold and
/// reverse video stay: they are not colour).
#[test]
fn no_color_turns_colour_off() {
    let env = Env::new();
    let _daemon = env.start(&[]);
    let command = format!("{VIDVARCTL} --socket {} top", s(&env.socket()));
    let coloured = Pane::start("vidvar-top-colour", &command, &[]);
    coloured.shows(&["q quit"]);
    let screen = coloured.screen_escaped();
    assert!(has_colour(&screen), "colour by default: {screen:?}");
    let plain = Pane::start("vidvar-top-no-colour", &command, &[("NO_COLOR", "1")]);
    plain.shows(&["q quit"]);
    let screen = plain.screen_escaped();
    assert!(!has_colour(&screen), "{screen:?}");
    assert!(
        screen.contains("\x1b["),
        "attributes are still drawn: {screen:?}"
    );
}

/// The socket group that nobody joins in [`as_nobody`].
const GROUP: &str = "4242";

/// `program` (a shell command) as nobody, also in [`GROUP`].
fn as_nobody(program: &str) -> String {
    format!("setpriv --reuid=65534 --regid=65534 --groups={GROUP} {program}")
}

/// Let nobody reach `env`'s socket (its directory open to all): start the
/// daemon with `--socket-group` [`GROUP`].
fn open_to_nobody(env: &Env) {
    std::fs::set_permissions(
        env.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
}

/// nobody, in the socket group, sees in top and in `stats --json` only
/// their own job's name and label; root's running and failed work shows
/// only in the daemon-wide figures (slots, jobs by state).
#[test]
fn a_user_sees_only_their_own_work_in_top_and_stats() {
    common::users::require_root("it acts as a second user");
    let env = Env::new();
    open_to_nobody(&env);
    let _daemon = env.start(&["--socket-group", GROUP, "--max-parallel", "1"]);
    let out = env.out_dir();
    let broken = env.path("roots-broken.mp4");
    std::fs::write(&broken, b"not a video").unwrap();
    let failed = env.submit(&["-n", "1", "-l", "rootfail", "-o", s(&out), s(&broken)]);
    env.wait_job(failed, Duration::from_secs(60), |d| {
        d["summary"]["state"] == "failed"
    });
    let secret = env.path("roots-secret.mp4");
    make_video(&secret, 30.0, "640x480", false);
    let running = env.submit(&["-n", "1", "-l", "rootlabel", "-o", s(&out), s(&secret)]);
    env.wait_job(running, Duration::from_secs(60), |d| {
        d["files"][0]["running"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    });
    let shared = env.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let mine = env.path("mine.mp4");
    make_video(&mine, 1.0, "160x120", false);
    let submitted = std::process::Command::new("sh")
        .args([
            "-c",
            &format!(
                "{} --socket {} submit -n 1 -l minelabel -o {} {}",
                as_nobody(VIDVARCTL),
                s(&env.socket()),
                s(&shared),
                s(&mine)
            ),
        ])
        .output()
        .unwrap();
    assert!(submitted.status.success(), "{submitted:?}");

    let command = as_nobody(&format!("{VIDVARCTL} --socket {} top", s(&env.socket())));
    let pane = Pane::start("vidvar-top-nobody", &command, &[]);
    let screen = pane.shows(&["minelabel", "slots 1/1", "running 1"]);
    for theirs in ["roots-secret", "rootlabel", "roots-broken", "rootfail"] {
        assert!(
            !screen.contains(theirs),
            "{theirs} shown to nobody:\n{screen}"
        );
    }
    assert!(screen.contains("your jobs"), "{screen}");
    assert!(
        screen.contains("failed 1"),
        "root's failure counted: {screen}"
    );

    let stats = std::process::Command::new("sh")
        .args([
            "-c",
            &format!(
                "{} --socket {} --json stats",
                as_nobody(VIDVARCTL),
                s(&env.socket())
            ),
        ])
        .output()
        .unwrap();
    assert!(stats.status.success(), "{stats:?}");
    let text = String::from_utf8_lossy(&stats.stdout);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["everyone"], false, "{text}");
    assert_eq!(
        json["total"]["failed"], 0,
        "root's failed run left out: {text}"
    );
    for theirs in ["roots-secret", "rootlabel", "roots-broken", "rootfail"] {
        assert!(!text.contains(theirs), "{theirs} in nobody's stats: {text}");
    }
    assert_eq!(env.json(&["stats"])["total"]["failed"], 1, "root sees it");
    env.ctl_ok(&["cancel", &running.to_string()]);
}

/// top may sit idle far longer than the daemon keeps a silent connection
/// (`client_idle_timeout`, set to 2 s here; a minute by default): a key
/// pressed after that still acts (its own connection), instead of failing
/// with "lost the connection".
#[test]
fn keys_still_act_after_top_sat_idle_past_the_daemons_idle_timeout() {
    let env = Env::new();
    let config = env.path("vidvard.conf");
    std::fs::write(&config, "client_idle_timeout = 2\n").unwrap();
    let _daemon = env.start(&["--config", s(&config), "--max-parallel", "1"]);
    let input = env.path("broken.mp4");
    std::fs::write(&input, b"not a video at all").unwrap();
    let job = env.submit(&["-n", "1", "-o", s(&env.out_dir()), s(&input)]);
    env.wait_job(job, Duration::from_secs(60), |d| {
        d["summary"]["state"] == "failed"
    });
    let pane = Pane::start(
        "vidvar-top-idle",
        &format!("{VIDVARCTL} --socket {} top", s(&env.socket())),
        &[],
    );
    pane.shows(&[&format!("{job} failed")]);
    // Idle past the daemon's client_idle_timeout: the time must pass, no
    // state shows it.
    std::thread::sleep(Duration::from_secs(4));
    pane.keys(&["Enter"]);
    let screen = pane.shows(&[&format!("job {job}: failed"), "broken.mp4"]);
    assert!(!screen.contains("lost the connection"), "{screen}");
}

/// A name with an escape sequence shows in top as `status` shows it,
/// escaped once (`\x1b`, not `\\x1b`), in the running variations and in
/// the recent failures, and never reaches the terminal raw: with
/// `NO_COLOR`, the name's `ESC [31m` would otherwise colour the screen.
#[test]
fn top_escapes_a_name_once_as_status_does() {
    let env = Env::new();
    let _daemon = env.start(&["--max-parallel", "1"]);
    let out = env.out_dir();
    let broken = env.path("f\u{1b}[32m.mp4");
    std::fs::write(&broken, b"not a video at all").unwrap();
    let failed = env.submit(&["-n", "1", "-o", s(&out), s(&broken)]);
    env.wait_job(failed, Duration::from_secs(60), |d| {
        d["summary"]["state"] == "failed"
    });
    let long = env.path("r\u{1b}[31m.mp4");
    make_video(&long, 30.0, "640x480", false);
    let running = env.submit(&["-n", "1", "-o", s(&out), s(&long)]);
    env.wait_job(running, Duration::from_secs(60), |d| {
        d["files"][0]["running"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    });
    let status = env.ctl_ok(&["status", &running.to_string()]);
    assert!(status.contains(r"/r\x1b[31m.mp4"), "{status}");

    let command = format!("{VIDVARCTL} --socket {} top", s(&env.socket()));
    let pane = Pane::start("vidvar-top-escape", &command, &[("NO_COLOR", "1")]);
    let screen = pane.shows(&[
        &format!("{running} r\\x1b[31m.mp4"),
        &format!("{failed} f\\x1b[32m.mp4: "),
    ]);
    assert!(!screen.contains(r"\\x1b"), "escaped twice:\n{screen}");
    let escaped = pane.screen_escaped();
    assert!(!has_colour(&escaped), "a raw escape coloured: {escaped:?}");
    env.ctl_ok(&["cancel", &running.to_string()]);
}

/// On a small terminal (30x8) the header and the key hint line stay whole,
/// in their places (the first three rows, the last row); the lists give
/// up their rows first.
#[test]
fn a_small_terminal_keeps_the_header_and_the_key_hints() {
    let env = Env::new();
    let _daemon = env.start(&["--max-parallel", "1"]);
    let command = format!("{VIDVARCTL} --socket {} top", s(&env.socket()));
    let pane = Pane::sized("vidvar-top-small", &command, &[], (30, 8));
    let screen = pane.shows(&["q quit"]);
    let rows: Vec<&str> = screen.lines().collect();
    assert!(rows.len() >= 8, "{screen}");
    assert!(rows[0].starts_with("vidvard "), "{screen}");
    assert!(rows[0].contains("slots 0/1"), "{screen}");
    assert!(rows[1].starts_with("jobs:"), "{screen}");
    assert!(rows[2].starts_with("last minute "), "{screen}");
    assert!(rows[7].starts_with("q quit"), "{screen}");
}

/// `c` on a job that had already ended says so, as `vidvarctl cancel`
/// does, instead of "now succeeded"; the job stays as it was.
#[test]
fn cancel_in_top_of_an_ended_job_says_there_is_nothing_to_cancel() {
    let env = Env::new();
    let _daemon = env.start(&["--max-parallel", "1"]);
    let input = env.path("short.mp4");
    make_video(&input, 1.0, "160x120", false);
    let job = env.submit(&["-n", "1", "-o", s(&env.out_dir()), s(&input)]);
    env.wait_job(job, Duration::from_secs(60), |d| {
        d["summary"]["state"] == "succeeded"
    });
    let command = format!("{VIDVARCTL} --socket {} top", s(&env.socket()));
    let pane = Pane::start("vidvar-top-ended", &command, &[]);
    pane.shows(&[&format!("{job} succeeded")]);
    pane.keys(&["c"]);
    pane.shows(&[&format!(
        "job {job} had already succeeded: nothing to cancel"
    )]);
    assert_eq!(env.status(job)["summary"]["state"], "succeeded");
}

/// A name in a script of double-width characters is cut and padded by the
/// terminal cells it takes, so the columns after it stay in line with a
/// plain name's.
#[test]
fn wide_characters_in_a_name_keep_the_columns_in_line() {
    use unicode_width::UnicodeWidthStr;
    let env = Env::new();
    let _daemon = env.start(&["--max-parallel", "2"]);
    let out = env.out_dir();
    let mut jobs = Vec::new();
    for name in ["日本語の長い名前のビデオ.mp4", "plain.mp4"] {
        let input = env.path(name);
        make_video(&input, 30.0, "640x480", false);
        jobs.push(env.submit(&["-n", "1", "-o", s(&out), s(&input)]));
    }
    for &job in &jobs {
        env.wait_job(job, Duration::from_secs(60), |d| {
            d["files"][0]["running"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        });
    }
    let command = format!("{VIDVARCTL} --socket {} top", s(&env.socket()));
    let pane = Pane::start("vidvar-top-wide", &command, &[("NO_COLOR", "1")]);
    let screen = pane.shows(&[
        &format!("{} 日本語", jobs[0]),
        &format!("{} plain.mp4", jobs[1]),
    ]);
    let columns: Vec<usize> = screen
        .lines()
        .filter_map(|row| Some(row[..row.find(" #1 ")?].width()))
        .collect();
    assert_eq!(columns.len(), 2, "{screen}");
    assert_eq!(
        columns[0], columns[1],
        "the columns after the names differ:\n{screen}"
    );
    for job in jobs {
        env.ctl_ok(&["cancel", &job.to_string()]);
    }
}
