//! Who may do what: a second, unprivileged user (nobody, via setpriv)
//! against a root daemon, and the socket's mode bits under any umask.

mod common;

use common::users::require_root;
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const NOBODY: u32 = 65534;
/// A group with no name that the daemon shares its socket with.
const SOCKET_GROUP: &str = "4242";
const LIMIT: Duration = Duration::from_secs(120);

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// vidvarctl as nobody, a member of the socket group.
fn ctl_as_nobody(env: &Env, args: &[&str]) -> Output {
    ctl_as_nobody_with(env, &format!("--groups={SOCKET_GROUP}"), args)
}

/// vidvarctl as nobody with the supplementary groups `groups` (a setpriv
/// option: `--groups=...` or `--clear-groups`).
fn ctl_as_nobody_with(env: &Env, groups: &str, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            groups,
            VIDVARCTL,
        ])
        .args(args)
        .env("VIDVAR_SOCKET", env.socket())
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_user_outside_the_socket_group_is_told_so_not_that_nothing_runs() {
    require_root("it acts as a second user");
    let env = Env::new();
    chmod(env.dir.path(), 0o755);
    let _d = env.start(&["--socket-group", SOCKET_GROUP]);
    // nobody, without the socket's group.
    let out = ctl_as_nobody_with(&env, "--clear-groups", &["ping"]);
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(said.contains("permission denied"), "{said}");
    assert!(said.contains(s(&env.socket())), "{said}");
    assert!(said.contains(&format!("group {SOCKET_GROUP}")), "{said}");
    assert!(!said.contains("not running"), "{said}");
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn another_user_cannot_see_touch_or_use_what_is_not_theirs() {
    require_root("it acts as a second user");
    let env = Env::new();
    chmod(env.dir.path(), 0o755);
    let _d = env.start(&["--socket-group", SOCKET_GROUP]);

    // Root's job, on a file only root may read.
    let secret = env.path("secret.mp4");
    make_video(&secret, 1.0, "160x120", false);
    chmod(&secret, 0o600);
    let out = env.out_dir();
    let job = env.submit(&["-n", "1", "-o", s(&out), s(&secret)]);
    env.ctl_ok(&["watch", &job.to_string()]);

    let listed = ctl_as_nobody(&env, &["--json", "list"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).trim(),
        "[]",
        "root's job is not listed"
    );
    for command in ["status", "outputs", "cancel", "retry", "watch"] {
        let out = ctl_as_nobody(&env, &[command, &job.to_string()]);
        assert_eq!(out.status.code(), Some(4), "{command}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("no such job: {job}")),
            "{command}: {}",
            stderr(&out)
        );
    }

    // Submitting what nobody cannot read, or into a directory it cannot
    // write, is refused up front.
    let shared = env.path("shared");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o777);
    let refused = ctl_as_nobody(&env, &["submit", "-o", s(&shared), s(&secret)]);
    assert_eq!(refused.status.code(), Some(5));
    assert!(
        stderr(&refused).contains("permission denied"),
        "{}",
        stderr(&refused)
    );
    let public = env.path("public.mp4");
    make_video(&public, 1.0, "160x120", false);
    chmod(&public, 0o644);
    let refused = ctl_as_nobody(&env, &["submit", "-o", s(&out), s(&public)]);
    assert_eq!(refused.status.code(), Some(5));
    assert!(
        stderr(&refused).contains("permission denied"),
        "{}",
        stderr(&refused)
    );

    // What nobody may do, it can; FFmpeg writes as nobody.
    let mine = ctl_as_nobody(&env, &["submit", "-n", "1", "-o", s(&shared), s(&public)]);
    assert!(mine.status.success(), "{}", stderr(&mine));
    let mine: i64 = String::from_utf8_lossy(&mine.stdout)
        .trim()
        .parse()
        .unwrap();
    let watched = ctl_as_nobody(&env, &["watch", &mine.to_string()]);
    assert!(
        watched.status.success(),
        "{}",
        String::from_utf8_lossy(&watched.stdout)
    );
    let output = shared.join("public_v01.mp4");
    assert_eq!(
        std::fs::metadata(&output).unwrap().uid(),
        NOBODY,
        "FFmpeg ran as the job's owner"
    );
    // Root sees both jobs.
    assert_eq!(env.json(&["list"]).as_array().unwrap().len(), 2);
}

#[test]
fn an_input_that_becomes_unreadable_fails_with_permission_denied() {
    require_root("it acts as a second user");
    let env = Env::new();
    chmod(env.dir.path(), 0o755);
    // One slot, taken by a long job, so the second job waits in the queue.
    let _d = env.start(&["--socket-group", SOCKET_GROUP, "--max-parallel", "1"]);
    let shared = env.path("shared");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o777);
    let long = env.path("long.mp4");
    make_video(&long, 30.0, "320x240", false);
    chmod(&long, 0o644);
    let first = ctl_as_nobody(&env, &["submit", "-n", "1", "-o", s(&shared), s(&long)]);
    assert!(first.status.success(), "{}", stderr(&first));
    let input = env.path("soon-private.mp4");
    make_video(&input, 1.0, "160x120", false);
    chmod(&input, 0o644);
    let second = ctl_as_nobody(&env, &["submit", "-n", "1", "-o", s(&shared), s(&input)]);
    assert!(second.status.success(), "{}", stderr(&second));
    let second: i64 = String::from_utf8_lossy(&second.stdout)
        .trim()
        .parse()
        .unwrap();
    chmod(&input, 0o600);
    let first: i64 = String::from_utf8_lossy(&first.stdout)
        .trim()
        .parse()
        .unwrap();
    env.ctl_ok(&["cancel", &first.to_string()]);
    let detail = env.wait_job(second, LIMIT, |d| d["summary"]["state"] == "failed");
    let error = detail["files"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("cannot read input: permission denied"),
        "{error}"
    );
}

/// Start vidvard in the foreground under `umask`, wait for its socket.
fn start_with_umask(env: &Env, umask: u32, extra: &[&str]) -> Daemon {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(VIDVARD);
    cmd.args(env.foreground_args())
        .args(extra)
        .stderr(Stdio::null());
    // SAFETY: umask(2) is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
            Ok(())
        });
    }
    let daemon = Daemon {
        child: Some(cmd.spawn().unwrap()),
        log: env.path("none"),
    };
    wait_for("the socket", LIMIT, || env.socket().exists().then_some(()));
    env.ctl_ok(&["ping"]);
    daemon
}

#[test]
fn socket_and_directory_modes_hold_under_any_umask() {
    for umask in [0o000, 0o077] {
        for group in [None, Some(SOCKET_GROUP)] {
            let env = Env::new();
            let extra: Vec<&str> = group.map(|g| vec!["--socket-group", g]).unwrap_or_default();
            let _d = start_with_umask(&env, umask, &extra);
            let socket = std::fs::metadata(env.socket()).unwrap();
            let dir = std::fs::metadata(env.socket().parent().unwrap()).unwrap();
            let (socket_mode, dir_mode) = if group.is_some() {
                (0o660, 0o750)
            } else {
                (0o600, 0o700)
            };
            assert_eq!(
                socket.mode() & 0o777,
                socket_mode,
                "socket, umask {umask:o}, group {group:?}"
            );
            assert_eq!(
                dir.mode() & 0o777,
                dir_mode,
                "directory, umask {umask:o}, group {group:?}"
            );
            if let Some(g) = group {
                assert_eq!(socket.gid().to_string(), g);
                assert_eq!(dir.gid().to_string(), g);
            }
        }
    }
}

#[test]
fn outputs_never_follow_a_planted_symlink_or_overwrite_a_file() {
    let env = Env::new();
    let _d = env.start(&[]);
    let input = env.path("a.mp4");
    make_video(&input, 1.0, "160x120", false);
    let out = env.out_dir();
    let victim = env.path("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    // Symlinks where the first output and its temporary file would go, and
    // a plain file where the second output would go.
    std::os::unix::fs::symlink(&victim, out.join("a_v01.mp4")).unwrap();
    std::os::unix::fs::symlink(&victim, out.join(".a_v01.vidvar-1.part")).unwrap();
    std::fs::write(out.join("a_v02.mp4"), "mine").unwrap();
    let job = env.submit(&["-n", "1", "-o", s(&out), s(&input)]);
    assert!(env.ctl(&["watch", &job.to_string()]).status.success());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(
        std::fs::read_to_string(out.join("a_v02.mp4")).unwrap(),
        "mine"
    );
    let outputs = env.json(&["outputs", &job.to_string()]);
    assert_eq!(outputs[0]["path"], s(&out.join("a_v03.mp4")));
    assert!(
        std::fs::symlink_metadata(out.join("a_v03.mp4"))
            .unwrap()
            .is_file()
    );
}

fn uid_of(pid: i32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[test]
fn ffmpeg_runs_as_the_owner_dies_with_the_daemon_and_cannot_be_redirected() {
    require_root("it acts as a second user");
    let env = Env::new();
    chmod(env.dir.path(), 0o755);
    let mut daemon = env.start(&["--socket-group", SOCKET_GROUP, "--max-parallel", "1"]);
    // nobody's own directory, holding the output directory.
    let home = env.path("nobody-home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(NOBODY), Some(NOBODY)).unwrap();
    let out = home.join("out");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::chown(&out, Some(NOBODY), Some(NOBODY)).unwrap();
    let long = env.path("long.mp4");
    make_video(&long, 30.0, "320x240", false);
    chmod(&long, 0o644);
    let short = env.path("short.mp4");
    make_video(&short, 1.0, "160x120", false);
    chmod(&short, 0o644);

    let first = ctl_as_nobody(&env, &["submit", "-n", "1", "-o", s(&out), s(&long)]);
    assert!(first.status.success(), "{}", stderr(&first));
    let second = ctl_as_nobody(&env, &["submit", "-n", "1", "-o", s(&out), s(&short)]);
    assert!(second.status.success(), "{}", stderr(&second));
    let second: i64 = String::from_utf8_lossy(&second.stdout)
        .trim()
        .parse()
        .unwrap();
    let ffmpeg = wait_for("FFmpeg", LIMIT, || ffmpeg_using(s(&out)).first().copied());
    assert_eq!(uid_of(ffmpeg), NOBODY, "FFmpeg runs as the job's owner");

    // While the second job waits, nobody points its output directory at a
    // directory only root may write.
    let root_only = env.path("root-only");
    std::fs::create_dir(&root_only).unwrap();
    chmod(&root_only, 0o755);
    Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ])
        .args([
            "sh",
            "-c",
            &format!(
                "mv '{0}' '{0}.old' && ln -s '{1}' '{0}'",
                s(&out),
                s(&root_only)
            ),
        ])
        .status()
        .unwrap();

    // A crash of the daemon takes FFmpeg with it, though it runs as nobody.
    daemon.signal_and_wait(nix::sys::signal::Signal::SIGKILL, LIMIT);
    wait_for(
        "FFmpeg to die with the daemon",
        Duration::from_secs(5),
        || (!ffmpeg_using(s(&out)).contains(&ffmpeg)).then_some(()),
    );
    let _daemon = env.start(&["--socket-group", SOCKET_GROUP, "--max-parallel", "1"]);
    let detail = env.wait_job(second, LIMIT, |d| {
        d["summary"]["state"] != "queued" && d["summary"]["state"] != "running"
    });
    assert_eq!(detail["summary"]["state"], "failed", "{detail}");
    assert_eq!(
        names(&root_only),
        Vec::<String>::new(),
        "nothing written where nobody may not write"
    );
}
