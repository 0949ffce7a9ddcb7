//! The daemon's files are its own: a state directory another user could
//! plant files in is refused before anything in it is opened, an older
//! install's looser modes are tightened, a socket-group member cannot open
//! the state, and a user without XDG_RUNTIME_DIR is not led into another
//! user's runtime directory. Real vidvard and vidvarctl, real users.

mod common;

use common::users::{User, require_root, said};
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// A 1 s clip turned into one variation and waited for: records to keep.
fn one_job(env: &Env) -> i64 {
    let clip = env.path("clip.mp4");
    if !clip.exists() {
        make_video(&clip, 1.0, "160x120", false);
    }
    let job = env.submit(&["-n", "1", "-o", s(&env.out_dir()), s(&clip)]);
    env.ctl_ok(&["wait", &job.to_string()]);
    job
}

#[test]
fn a_sticky_shared_state_dir_with_a_planted_database_is_refused() {
    require_root("it plants files as another user");
    let env = Env::new();
    chmod(env.dir.path(), 0o755);
    let planter = User::create("vvp", &[]);
    // Like /tmp: sticky and open to all; the database is the planter's.
    let shared = env.path("shared");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o1777);
    let planted = shared.join("vidvard.db");
    std::fs::write(&planted, "planted").unwrap();
    planter.own(&planted, 0o666);
    let before = std::fs::metadata(&planted).unwrap();

    let out = env.run_vidvard(&env.socket(), &shared, &env.pidfile(), &[]);
    let text = said(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("refusing the state directory {}", s(&shared)))
            && text.contains("others may create files in it (mode 1777)"),
        "{text}"
    );
    let after = std::fs::metadata(&planted).unwrap();
    assert_eq!(std::fs::read_to_string(&planted).unwrap(), "planted");
    assert_eq!(
        (after.mtime_nsec(), after.atime_nsec()),
        (before.mtime_nsec(), before.atime_nsec()),
        "the planted database was not touched"
    );
    assert_eq!(names(&shared), vec!["vidvard.db"], "nothing made there");
    assert!(!env.socket().exists());

    // The same planted file in a directory of the root daemon's that is
    // private: refused as another user's file, still untouched.
    let own = env.path("own");
    std::fs::create_dir(&own).unwrap();
    chmod(&own, 0o700);
    std::fs::rename(&planted, own.join("vidvard.db")).unwrap();
    let out = env.run_vidvard(&env.socket(), &own, &env.pidfile(), &[]);
    let text = said(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("refusing {}/vidvard.db", s(&own)))
            && text.contains(&format!("belongs to {}", planter.name)),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(own.join("vidvard.db")).unwrap(),
        "planted"
    );
}

#[test]
fn a_fifo_planted_as_the_fallback_log_is_refused_at_once() {
    let env = Env::new();
    for (dir_mode, why) in [
        (0o777, "others may create files in it"),
        (0o700, "it is a FIFO, not a regular file"),
    ] {
        let state = env.path(&format!("state{dir_mode:o}"));
        std::fs::create_dir(&state).unwrap();
        chmod(&state, dir_mode);
        let fifo = state.join("vidvard.log");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
        // Daemonizing, so that syslog (or the fallback file) would be
        // opened; no /dev/log in many containers, so the file would be.
        let mut child = Command::new(VIDVARD)
            .args(["--socket", s(&env.socket()), "--pidfile", s(&env.pidfile())])
            .arg("--state-dir")
            .arg(&state)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait_for("the launcher to give up", LIMIT, || {
            child.try_wait().unwrap()
        });
        let out = child.wait_with_output().unwrap();
        let text = format!("{status}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(status.code(), Some(1), "{text}");
        assert!(text.contains(why), "{text}");
        assert!(text.contains(s(&state)), "{text}");
        assert!(
            std::fs::symlink_metadata(&fifo)
                .unwrap()
                .file_type()
                .is_fifo(),
            "left as it was"
        );
        assert_eq!(names(&state), vec!["vidvard.log"], "nothing else made");
        assert!(!env.pidfile().exists() && !env.socket().exists());
    }
}

use std::os::unix::fs::FileTypeExt;

#[test]
fn an_older_install_is_tightened_at_start_and_keeps_its_jobs() {
    let env = Env::new();
    let state = env.state_dir();
    let job = {
        let _daemon = env.start(&[]);
        one_job(&env)
    };
    // What earlier releases left: a 0750 directory, a 0644 database, a
    // 0640 fallback log.
    chmod(&state, 0o750);
    chmod(&state.join("vidvard.db"), 0o644);
    std::fs::write(state.join("vidvard.log"), "[old] record\n").unwrap();
    chmod(&state.join("vidvard.log"), 0o640);
    let daemon = env.start(&[]);
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("vidvard.db")), 0o600);
    assert_eq!(mode(&state.join("vidvard.log")), 0o600);
    let log = daemon.log();
    for what in [
        format!(
            "tightened the state directory {} from mode 750 to 700",
            s(&state)
        ),
        format!("tightened {}/vidvard.db from mode 644 to 600", s(&state)),
        format!("tightened {}/vidvard.log from mode 640 to 600", s(&state)),
    ] {
        assert_eq!(log.matches(&what).count(), 1, "{what}: {log}");
    }
    let detail = env.status(job);
    assert_eq!(detail["summary"]["state"], "succeeded", "{detail}");
    // The log is appended to, never rewritten.
    let kept = std::fs::read_to_string(state.join("vidvard.log")).unwrap();
    assert!(kept.starts_with("[old] record\n"), "{kept}");
}

#[test]
fn a_socket_group_member_cannot_open_the_state_under_umask_022() {
    require_root("it acts as a member of the socket group");
    let env = Env::new();
    chmod(env.dir.path(), 0o755);
    let group_owner = User::create("vvg", &[]);
    let member = User::create("vvm", &[&group_owner.name]);
    // umask 022, as a shell would start it; the state dir does not exist.
    let log = std::fs::File::create(env.path("vidvard.log")).unwrap();
    let mut child = Command::new("sh")
        .args(["-c", "umask 022; exec \"$0\" \"$@\"", VIDVARD])
        .args(env.foreground_args())
        .args(["--socket-group", &group_owner.name])
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(&mut child);
    wait_for("vidvard to answer", LIMIT, || {
        env.ctl(&["ping"]).status.success().then_some(())
    });
    one_job(&env);
    let state = env.state_dir();
    assert_eq!(mode(&state), 0o700);
    let files = names(&state);
    for name in [
        "vidvard.db",
        "vidvard.db-wal",
        "vidvard.db-shm",
        "vidvard.lock",
    ] {
        assert!(files.contains(&name.to_string()), "{name} in {files:?}");
    }
    for name in &files {
        let m = mode(&state.join(name));
        assert_eq!(m & 0o077, 0, "{name} has mode {m:o}");
    }
    // The member talks to the daemon, and opens none of its files.
    let out = member
        .command(VIDVARCTL)
        .args(["--socket", s(&env.socket()), "ping"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", said(&out));
    for name in [
        "vidvard.db",
        "vidvard.db-wal",
        "vidvard.db-shm",
        "vidvard.lock",
        "vidvard.log",
    ] {
        let out = member
            .command("sh")
            .args(["-c", "exec 3<\"$0\"", s(&state.join(name))])
            .output()
            .unwrap();
        assert!(
            !out.status.success() && said(&out).contains("Permission denied"),
            "{name}: {}",
            said(&out)
        );
    }
}

/// Kills a child when dropped.
struct KillOnDrop<'a>(&'a mut std::process::Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn user_mode_without_xdg_runtime_dir_is_not_led_into_a_planted_directory() {
    require_root("it acts as two users");
    let env = Env::new();
    chmod(env.dir.path(), 0o755);
    let stranger = User::create("vvs", &[]);
    let user = User::create("vvu", &[]);
    let home = env.path("home");
    std::fs::create_dir(&home).unwrap();
    user.own(&home, 0o700);
    // TMPDIR is a shared sticky directory, like /tmp.
    let tmp = env.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    chmod(&tmp, 0o1777);
    let fallback = tmp.join(format!("vidvard-{}", user.uid));
    let as_user = |program: &str| {
        let mut cmd = user.command(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", &home)
            .env("TMPDIR", &tmp);
        cmd
    };
    let victim = tmp.join("vidvard.pid");
    for planted in ["a directory", "a symlink"] {
        match planted {
            "a directory" => {
                std::fs::create_dir(&fallback).unwrap();
                stranger.own(&fallback, 0o777);
            }
            _ => {
                std::fs::remove_dir(&fallback).unwrap();
                std::os::unix::fs::symlink(&tmp, &fallback).unwrap();
                std::os::unix::fs::lchown(&fallback, Some(stranger.uid), Some(stranger.gid))
                    .unwrap();
                std::fs::write(&victim, "").unwrap();
                stranger.own(&victim, 0o666);
            }
        }
        let log = std::fs::File::create(env.path("user-vidvard.log")).unwrap();
        let mut child = as_user(VIDVARD)
            .arg("--foreground")
            .stderr(log)
            .spawn()
            .unwrap();
        let guard = KillOnDrop(&mut child);
        let ping = wait_for(
            &format!("the user's daemon with {planted} planted"),
            LIMIT,
            || {
                let out = as_user(VIDVARCTL).arg("ping").output().unwrap();
                out.status.success().then_some(out)
            },
        );
        assert!(
            String::from_utf8_lossy(&ping.stdout).contains("vidvard"),
            "{}",
            said(&ping)
        );
        let own = home.join(".local/state/vidvard/run");
        assert!(
            own.join("vidvard.sock").exists(),
            "socket in {}",
            own.display()
        );
        assert_eq!(mode(&own), 0o700);
        drop(guard);
        if planted == "a symlink" {
            assert_eq!(std::fs::read_to_string(&victim).unwrap(), "", "not written");
        }
        assert!(
            !tmp.join("vidvard.sock").exists(),
            "nothing in the stranger's place"
        );
    }
    let log = std::fs::read_to_string(env.path("user-vidvard.log")).unwrap();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_socket_group_members_lock_on_the_pidfile_cannot_keep_the_daemon_down() {
    require_root("it acts as a member of the socket group");
    let env = Env::new();
    chmod(env.dir.path(), 0o755);
    let group_owner = User::create("vvh", &[]);
    let member = User::create("vvn", &[&group_owner.name]);
    let group = ["--socket-group", group_owner.name.as_str()];
    let mut daemon = env.start(&group);
    // An unclean stop (kill -9, OOM) leaves the pidfile behind. It is
    // readable by the group, so a member may flock it meanwhile.
    daemon.signal_and_wait(nix::sys::signal::Signal::SIGKILL, LIMIT);
    assert!(env.pidfile().exists());
    let mut holder = member
        .command("flock")
        .args(["-s", s(&env.pidfile()), "sleep", "600"])
        .spawn()
        .unwrap();
    let _holder = KillOnDrop(&mut holder);
    let ino = std::fs::metadata(env.pidfile()).unwrap().ino();
    wait_for("the member's lock", LIMIT, || {
        let locks = std::fs::read_to_string("/proc/locks").unwrap();
        // Held, not waited for (`N: -> FLOCK ...`).
        locks
            .lines()
            .any(|l| !l.contains("->") && l.contains(" READ ") && l.contains(&format!(":{ino} ")))
            .then_some(())
    });
    let restarted = env.start(&group);
    let pid: i32 = std::fs::read_to_string(env.pidfile())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, restarted.pid());
    assert!(
        restarted
            .log()
            .contains("is locked by another user's process"),
        "{}",
        restarted.log()
    );
}
