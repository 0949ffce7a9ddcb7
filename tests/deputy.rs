//! No confused deputy: the packaged setup, a daemon running as an
//! unprivileged service user and a client in its socket group, attacked
//! with files swapped, renamed and symlinked after they were vetted; a
//! client that must not talk to a stranger's socket; and paths given to
//! vidvard that must never be deleted or overwritten.

mod common;

use common::users::{User, require_root, said};
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The packaged setup in a temp dir: vidvard as a new service user, with
/// a socket group that a new client user belongs to.
struct Setup {
    /// First, so the daemon is stopped before its service user is removed.
    _daemon: Daemon,
    env: Env,
    client: User,
    /// The client's own directories: inputs and outputs.
    vin: PathBuf,
    out: PathBuf,
    /// A directory (0700) and a clip (0600) only the service user may read.
    secret_dir: PathBuf,
    secret: PathBuf,
}

impl Setup {
    fn new(extra: &[&str]) -> Setup {
        require_root("it creates a service user and a client user");
        let service = User::create("vvd", &[]);
        let client = User::create("vvc", &[&service.name]);
        let mut env = Env::new();
        chmod(env.dir.path(), 0o755);
        for dir in ["run", "state"] {
            std::fs::create_dir(env.path(dir)).unwrap();
        }
        service.own(&env.path("run"), 0o750);
        service.own(&env.state_dir(), 0o700);

        let vin = env.path("vin");
        let out = env.path("out");
        for dir in [&vin, &out] {
            std::fs::create_dir(dir).unwrap();
        }
        client.own(&vin, 0o755);
        // The service user writes the outputs: the socket group may write.
        client.own(&out, 0o770);
        std::os::unix::fs::chown(&out, None, Some(service.gid)).unwrap();

        let secret_dir = env.path("secret");
        std::fs::create_dir(&secret_dir).unwrap();
        let secret = secret_dir.join("secret.mp4");
        // Another picture size than the decoys, to tell outputs apart.
        make_video(&secret, 2.0, "176x144", false);
        service.own(&secret, 0o600);
        service.own(&secret_dir, 0o700);

        let group = service.gid.to_string();
        let home = env.dir.path().to_path_buf();
        env.service_user = Some(service);
        let mut args = vec!["--socket-group", &group];
        args.extend_from_slice(extra);
        let daemon = env.start_with_env(&args, &[("HOME", &home), ("XDG_CONFIG_HOME", &home)]);
        Setup {
            env,
            client,
            _daemon: daemon,
            vin,
            out,
            secret_dir,
            secret,
        }
    }

    /// vidvarctl as the client user.
    fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_as(&self.client, args)
    }

    /// vidvarctl as `user`, trusting the service user.
    fn ctl_as(&self, user: &User, args: &[&str]) -> Output {
        user.command(VIDVARCTL)
            .env("VIDVAR_SOCKET", self.env.socket())
            .env(
                "VIDVAR_SERVICE_USER",
                &self.env.service_user.as_ref().unwrap().name,
            )
            .current_dir("/")
            .args(args)
            .output()
            .unwrap()
    }

    fn submit(&self, args: &[&str]) -> i64 {
        let out = self.ctl(&[&["submit"], args].concat());
        assert!(out.status.success(), "submit {args:?}: {}", said(&out));
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    /// A clip of the client's in `vin`, 320x240.
    fn decoy(&self, name: &str, seconds: f64) -> PathBuf {
        let path = self.vin.join(name);
        make_video(&path, seconds, "320x240", false);
        self.client.own(&path, 0o644);
        path
    }

    fn wait_final(&self, job: i64) -> serde_json::Value {
        self.env.wait_job(job, LIMIT, |d| {
            !matches!(d["summary"]["state"].as_str(), Some("queued" | "running"))
        })
    }

    /// Every output listed and every file in `out`: none is the secret
    /// (176x144), none is a hidden temporary file.
    fn assert_no_leak(&self, job: i64, dirs: &[&Path]) {
        for output in self
            .env
            .json(&["outputs", &job.to_string()])
            .as_array()
            .unwrap()
        {
            let path = Path::new(output["path"].as_str().unwrap());
            if path.exists() {
                assert_ne!(size_of(path), "176x144", "{} is the secret", path.display());
            }
        }
        for dir in dirs {
            for name in names(dir) {
                assert!(
                    !name.starts_with('.'),
                    "temporary file {name} left in {dir:?}"
                );
                assert_ne!(size_of(&dir.join(&name)), "176x144", "{name} is the secret");
            }
        }
    }
}

/// "WxH" of a video's first video stream.
fn size_of(path: &Path) -> String {
    let probe = probe_json(path);
    let v = streams(&probe, "video")[0];
    format!("{}x{}", v["width"], v["height"])
}

/// The reasons of every variation that failed, from `status`'s files.
fn errors(detail: &serde_json::Value) -> String {
    detail["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["error"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Wait until the job's first file has been probed (its duration known).
fn wait_probed(env: &Env, job: i64) {
    env.wait_job(job, LIMIT, |d| d["files"][0]["duration_secs"].is_number());
}

#[test]
fn an_input_swapped_for_a_symlink_after_the_probe_is_never_read() {
    let setup = Setup::new(&["--max-parallel", "1"]);
    swap_after_probe(&setup, |decoy| {
        // Swapped at once (rename(2)): the daemon sees the decoy or the
        // symlink, never a missing file.
        let link = decoy.with_extension("link");
        std::os::unix::fs::symlink(&setup.secret, &link).unwrap();
        std::fs::rename(&link, decoy).unwrap();
    });
}

/// Submit a decoy for 3 variations on one slot, let `swap` change what
/// its path leads to once the probe has run, and check that no later
/// variation read anything but the decoy.
fn swap_after_probe(setup: &Setup, swap: impl FnOnce(&Path)) {
    let decoy = setup.decoy("decoy.mp4", 3.0);
    let job = setup.submit(&["-n", "3", "-o", s(&setup.out), s(&decoy)]);
    wait_probed(&setup.env, job);
    swap(&decoy);
    let detail = setup.wait_final(job);
    assert_ne!(detail["summary"]["state"], "succeeded", "{detail}");
    let errors = errors(&detail);
    assert!(
        errors.contains("input changed since it was submitted"),
        "{errors}"
    );
    setup.assert_no_leak(job, &[&setup.out]);
}

#[test]
fn a_directory_on_the_way_swapped_for_a_symlink_is_refused() {
    let setup = Setup::new(&["--max-parallel", "1"]);
    // The secret's directory holds a file under the decoy's name.
    std::fs::hard_link(&setup.secret, setup.secret_dir.join("decoy.mp4")).unwrap();
    swap_after_probe(&setup, |_| {
        // Swapped at once (renameat2(2) RENAME_EXCHANGE): the daemon sees
        // the directory or the symlink, never a missing path.
        let vin = &setup.vin;
        let link = vin.with_extension("orig");
        std::os::unix::fs::symlink(&setup.secret_dir, &link).unwrap();
        nix::fcntl::renameat2(
            nix::fcntl::AT_FDCWD,
            &link,
            nix::fcntl::AT_FDCWD,
            vin.as_path(),
            nix::fcntl::RenameFlags::RENAME_EXCHANGE,
        )
        .unwrap();
    });
}

#[test]
fn a_hard_link_to_a_file_the_client_cannot_read_is_refused_at_submit() {
    let setup = Setup::new(&[]);
    let link = setup.vin.join("link.mp4");
    std::fs::hard_link(&setup.secret, &link).unwrap();
    let refused = setup.ctl(&["submit", "-o", s(&setup.out), s(&link)]);
    assert_eq!(refused.status.code(), Some(5), "{}", said(&refused));
    assert!(
        said(&refused).contains("permission denied"),
        "{}",
        said(&refused)
    );
    // And through a symlink, the file behind it is judged.
    let symlink = setup.vin.join("symlink.mp4");
    std::os::unix::fs::symlink(&setup.secret, &symlink).unwrap();
    let refused = setup.ctl(&["submit", "-o", s(&setup.out), s(&symlink)]);
    assert_eq!(refused.status.code(), Some(5), "{}", said(&refused));
    assert!(
        said(&refused).contains("permission denied"),
        "{}",
        said(&refused)
    );
    assert_eq!(names(&setup.out), Vec::<String>::new());
}

#[test]
fn an_output_directory_swapped_mid_job_keeps_no_stray_file_and_redirects_nothing() {
    let setup = Setup::new(&["--max-parallel", "1"]);
    let clip = setup.decoy("clip.mp4", 4.0);
    let swap = setup.out.join("swap");
    let elsewhere = setup.out.join("elsewhere");
    for dir in [&swap, &elsewhere] {
        std::fs::create_dir(dir).unwrap();
        setup.client.own(dir, 0o777);
    }
    let job = setup.submit(&["-n", "3", "-o", s(&swap), s(&clip)]);
    wait_for("the first encode", LIMIT, || {
        (!ffmpeg_using(s(&swap)).is_empty()).then_some(())
    });
    let orig = setup.out.join("swap.orig");
    setup.client.sh(&format!(
        "mv '{0}' '{1}' && ln -s '{2}' '{0}'",
        s(&swap),
        s(&orig),
        s(&elsewhere)
    ));

    let detail = setup.wait_final(job);
    assert_ne!(detail["summary"]["state"], "succeeded", "{detail}");
    let errors = errors(&detail);
    assert!(
        errors.contains("output directory changed since it was submitted"),
        "{errors}"
    );
    assert!(!errors.contains("output is broken"), "{errors}");
    assert_eq!(
        names(&elsewhere),
        Vec::<String>::new(),
        "nothing redirected"
    );
    // What was published went to the vetted directory; nothing hidden stays.
    for name in names(&orig) {
        assert!(
            name.starts_with("clip_v"),
            "{name} left in {}",
            orig.display()
        );
    }
}

#[test]
fn a_client_never_talks_to_a_socket_in_a_strangers_runtime_directory() {
    require_root("it acts as two users");
    let env = Env::new();
    chmod(env.dir.path(), 0o755);
    let stranger = User::create("vvx", &[]);
    let client = User::create("vvc", &[]);
    let home = env.path("home");
    std::fs::create_dir(&home).unwrap();
    client.own(&home, 0o700);
    // The client has no XDG_RUNTIME_DIR: its fallback is TMPDIR/vidvard-UID,
    // which the stranger made first, world-writable, with a socket in it.
    let fallback = env.path(&format!("vidvard-{}", client.uid));
    std::fs::create_dir(&fallback).unwrap();
    stranger.own(&fallback, 0o777);
    let listener = std::os::unix::net::UnixListener::bind(fallback.join("vidvard.sock")).unwrap();
    listener.set_nonblocking(true).unwrap();
    let clip = env.path("clip.mp4");
    make_video(&clip, 1.0, "160x120", false);

    let out = client
        .command(VIDVARCTL)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("VIDVAR_SOCKET")
        .env("TMPDIR", env.dir.path())
        .env("HOME", &home)
        .args(["submit", s(&clip)])
        .output()
        .unwrap();
    let text = said(&out);
    // Its own private place instead (where no daemon runs), or the
    // system daemon's socket: never the stranger's.
    assert!(!out.status.success(), "{text}");
    assert!(!text.contains(s(&fallback)), "{text}");
    assert!(
        text.contains(&format!(
            "{}/.local/state/vidvard/run/vidvard.sock",
            s(&home)
        )) || text.contains(vidvar::paths::SYSTEM_SOCKET),
        "{text}"
    );
    assert!(out.stdout.is_empty(), "{text}");
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "nothing connected to the stranger's socket"
    );
}

#[test]
fn a_client_refuses_a_daemon_run_by_a_stranger_and_trusts_the_service_user() {
    require_root("it acts as two users");
    let mut env = Env::new();
    chmod(env.dir.path(), 0o755);
    // A shared sticky directory, like /tmp: trusted, so the listener decides.
    let shared = env.path("run");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o1777);
    let client = User::create("vvc", &[]);
    // The stranger shares its socket with the client's group.
    let stranger = User::create("vvx", &[&client.name]);
    std::fs::create_dir(env.state_dir()).unwrap();
    stranger.own(&env.state_dir(), 0o700);
    let home = env.dir.path().to_path_buf();
    let name = stranger.name.clone();
    env.service_user = Some(stranger);
    let group = client.gid.to_string();
    let _daemon = env.start_with_env(
        &["--socket-group", &group],
        &[("HOME", &home), ("XDG_CONFIG_HOME", &home)],
    );
    let ping = |trust: Option<&str>| {
        let mut cmd = client.command(VIDVARCTL);
        cmd.env("VIDVAR_SOCKET", env.socket()).arg("ping");
        match trust {
            Some(user) => cmd.env("VIDVAR_SERVICE_USER", user),
            None => cmd.env_remove("VIDVAR_SERVICE_USER"),
        };
        cmd.output().unwrap()
    };
    let refused = ping(None);
    assert_eq!(refused.status.code(), Some(3), "{}", said(&refused));
    assert!(
        said(&refused).contains("it is served by uid") && said(&refused).contains(&name),
        "{}",
        said(&refused)
    );
    // The service user named: trusted.
    let trusted = ping(Some(&name));
    assert!(trusted.status.success(), "{}", said(&trusted));
}

#[test]
fn socket_and_pidfile_paths_never_delete_what_is_there() {
    let env = Env::new();
    let important = env.path("important.txt");
    std::fs::write(&important, "precious").unwrap();
    let state = env.state_dir();

    // --socket naming a regular file.
    let out = env.run_vidvard(&important, &state, &env.pidfile(), &[]);
    assert!(!out.status.success());
    assert!(said(&out).contains("refusing to replace"), "{}", said(&out));
    assert_eq!(std::fs::read_to_string(&important).unwrap(), "precious");

    // --socket naming the job database, which holds a job.
    let _ = std::fs::remove_file(env.pidfile());
    let mut daemon = env.start(&[]);
    let clip = env.path("clip.mp4");
    make_video(&clip, 1.0, "160x120", false);
    let job = env.submit(&["-n", "1", "-o", s(&env.out_dir()), s(&clip)]);
    env.ctl_ok(&["watch", &job.to_string()]);
    // A second start while it runs, with another pidfile that holds data
    // or is a stale pidfile: refused, both untouched.
    let stale = env.path("stale.pid");
    std::fs::write(&stale, "12345\n").unwrap();
    for pidfile in [&important, &stale] {
        let out = env.run_vidvard(&env.socket(), &state, pidfile, &[]);
        assert!(!out.status.success());
        // Named by its pid and, holding the same state dir, that too.
        let expected = format!(
            "vidvard (pid {}) is already running on {}, state dir {}",
            daemon.pid(),
            s(&env.socket()),
            s(&state)
        );
        assert!(said(&out).contains(&expected), "{}", said(&out));
    }
    assert_eq!(std::fs::read_to_string(&important).unwrap(), "precious");
    assert_eq!(std::fs::read_to_string(&stale).unwrap(), "12345\n");
    daemon.signal_and_wait(nix::sys::signal::Signal::SIGTERM, LIMIT);

    let database = state.join("vidvard.db");
    let out = env.run_vidvard(&database, &state, &env.pidfile(), &[]);
    assert!(!out.status.success());
    assert!(said(&out).contains("state directory"), "{}", said(&out));
    // Other spellings of the same place, through a symlinked directory too.
    let link = env.path("link");
    std::os::unix::fs::symlink(&state, &link).unwrap();
    let spelled = state.join(".").join("vidvard.db");
    for (socket, pidfile) in [
        (spelled, env.pidfile()),
        (link.join("vidvard.db"), env.pidfile()),
        (env.socket(), link.join("vidvard.lock")),
    ] {
        let out = env.run_vidvard(&socket, &state, &pidfile, &[]);
        assert!(said(&out).contains("state directory"), "{}", said(&out));
    }
    assert!(std::fs::symlink_metadata(&database).unwrap().is_file());
    assert!(
        std::fs::symlink_metadata(state.join("vidvard.lock"))
            .unwrap()
            .is_file()
    );

    // A pidfile that holds something else is refused, never written.
    let other_socket = env.path("other.sock");
    let out = env.run_vidvard(&other_socket, &env.path("state2"), &important, &[]);
    assert!(!out.status.success());
    assert!(said(&out).contains("as a pidfile"), "{}", said(&out));
    assert_eq!(std::fs::read_to_string(&important).unwrap(), "precious");

    // The jobs are all still there.
    let _daemon = env.start(&[]);
    assert_eq!(env.status(job)["summary"]["state"], "succeeded");
}

#[test]
fn a_playlist_posing_as_a_video_cannot_make_ffmpeg_read_other_files() {
    let setup = Setup::new(&[]);
    let playlist = setup.vin.join("evil.mp4");
    std::fs::write(
        &playlist,
        format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXTINF:2.0,\n{}\n#EXT-X-ENDLIST\n",
            setup.secret.display()
        ),
    )
    .unwrap();
    setup.client.own(&playlist, 0o644);
    let job = setup.submit(&["-n", "1", "-o", s(&setup.out), s(&playlist)]);
    let detail = setup.wait_final(job);
    assert_eq!(detail["summary"]["state"], "failed", "{detail}");
    let errors = errors(&detail);
    assert!(errors.contains("a hls file is not read"), "{errors}");
    setup.assert_no_leak(job, &[&setup.out]);
    assert_eq!(names(&setup.out), Vec::<String>::new());
}

#[test]
fn one_user_cannot_fill_the_queue_for_everyone() {
    let setup = Setup::new(&["--max-parallel", "1"]);
    let clip = setup.decoy("clip.mp4", 0.2);
    let inputs = vec![s(&clip); 1000];
    let mut args = vec!["submit", "-n", "10", "-o", s(&setup.out)];
    args.extend(&inputs);
    let mut jobs = Vec::new();
    for _ in 0..10 {
        let out = setup.ctl(&args);
        assert!(out.status.success(), "{}", said(&out));
        jobs.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    let refused = setup.ctl(&args);
    assert_eq!(refused.status.code(), Some(5), "{}", said(&refused));
    assert!(said(&refused).contains("per user"), "{}", said(&refused));
    // The daemon's own user is not held to it.
    let admin = setup
        .env
        .ctl(&["submit", "-n", "1", "-o", s(&setup.out), s(&clip)]);
    assert!(admin.status.success(), "{}", said(&admin));
    for job in &jobs {
        setup.ctl(&["cancel", job]);
    }
}

/// Give `path` the access ACL `user::rw- user:UID:--- group::r--
/// mask::r-- other::r--` (acl(5)), set as its extended attribute.
fn deny_by_acl(path: &Path, uid: u32) {
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 0, uid),
        (0x04, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 4, u32::MAX),
    ] {
        acl.extend(tag.to_le_bytes());
        acl.extend(perm.to_le_bytes());
        acl.extend(id.to_le_bytes());
    }
    let path = std::ffi::CString::new(s(path)).unwrap();
    let name = std::ffi::CString::new("system.posix_acl_access").unwrap();
    // SAFETY: NUL-terminated strings and a live buffer.
    let set = unsafe {
        nix::libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            acl.as_ptr().cast(),
            acl.len(),
            0,
        )
    };
    assert_eq!(set, 0, "setxattr: {}", std::io::Error::last_os_error());
}

#[test]
fn an_acl_that_denies_the_client_is_honoured() {
    let setup = Setup::new(&[]);
    // root's clip, 0644, but not for the client.
    let clip = setup.vin.join("clip.mp4");
    make_video(&clip, 1.0, "160x120", false);
    deny_by_acl(&clip, setup.client.uid);
    let cat = setup.client.command("cat").arg(&clip).output().unwrap();
    assert!(!cat.status.success(), "the kernel refuses the client");
    let refused = setup.ctl(&["submit", "-o", s(&setup.out), s(&clip)]);
    assert_eq!(refused.status.code(), Some(5), "{}", said(&refused));
    assert!(
        said(&refused).contains("permission denied"),
        "{}",
        said(&refused)
    );
}

#[test]
fn only_root_or_the_daemons_user_pause_the_daemon_and_owners_their_jobs() {
    let setup = Setup::new(&["--max-parallel", "1"]);
    let clip = setup.decoy("clip.mp4", 0.2);
    let refused = setup.ctl(&["pause"]);
    assert_eq!(refused.status.code(), Some(5), "{}", said(&refused));
    assert!(
        said(&refused).contains("only root or the daemon's own user"),
        "{}",
        said(&refused)
    );
    assert!(!setup.env.json(&["ping"])["paused"].as_bool().unwrap());

    // Root pauses the daemon; the client holds and raises its own job.
    setup.env.ctl_ok(&["pause"]);
    let job = setup
        .submit(&["-n", "1", "-o", s(&setup.out), s(&clip)])
        .to_string();
    let held = setup.ctl(&["--json", "pause", &job]);
    assert!(held.status.success(), "{}", said(&held));
    assert!(setup.ctl(&["priority", &job, "9"]).status.success());
    // Another user does not see it.
    let stranger = User::create("vvs", &[&setup.env.service_user.as_ref().unwrap().name]);
    let theirs = setup.ctl_as(&stranger, &["resume", &job]);
    assert_eq!(theirs.status.code(), Some(4), "{}", said(&theirs));
    assert!(setup.ctl(&["resume", &job]).status.success());
    setup.env.ctl_ok(&["resume"]);
    assert_eq!(setup.ctl(&["wait", &job]).status.code(), Some(0));
}
