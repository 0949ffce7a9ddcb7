//! The `.deb` itself, built once per test run from the test build's
//! binaries: it carries its license, changelog, md5sums and conffiles and
//! passes lintian; it installs, runs a job, upgrades with a restart and
//! purges every link on this machine.

use super::*;

/// The package built from this test run's binaries (copied to where
/// cargo-deb takes release binaries from) by packaging/build-deb.sh, at
/// Debian revisions 1 and 2 (an upgrade of the first), once per run: the
/// first test of the run that needs them builds them, under a lock, and
/// the others take them as built. cargo-nextest runs each test in a
/// process of its own and names the run in `NEXTEST_RUN_ID`; under cargo
/// test the run is this process.
fn debs() -> &'static [PathBuf; 2] {
    static DEBS: OnceLock<[PathBuf; 2]> = OnceLock::new();
    DEBS.get_or_init(|| {
        let cargo_deb = Command::new("cargo").args(["deb", "--version"]).output();
        assert!(
            cargo_deb.is_ok_and(|o| o.status.success()),
            "cargo-deb is not installed: cargo install --locked cargo-deb (.ci/run does)"
        );
        require("dpkg-deb", "dpkg");
        let run = std::env::var("NEXTEST_RUN_ID")
            .unwrap_or_else(|_| format!("process {}", std::process::id()));
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deb");
        let release = target.join("release");
        std::fs::create_dir_all(&release).unwrap();
        let lock = std::fs::File::create(target.join("lock")).unwrap();
        let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, err)| err)
            .unwrap();
        let debs = ["1", "2"].map(|revision| target.join(format!("vidvar-{revision}.deb")));
        let built_by = target.join("built-by");
        if std::fs::read_to_string(&built_by).is_ok_and(|r| r == run) {
            return debs;
        }
        for binary in [
            VIDVARD,
            common::VIDVARCTL,
            env!("CARGO_BIN_EXE_vidvar-stage"),
        ] {
            let name = Path::new(binary).file_name().unwrap();
            std::fs::copy(binary, release.join(name)).unwrap();
        }
        for (revision, deb) in ["1", "2"].iter().zip(&debs) {
            let out = Command::new(repo("packaging/build-deb.sh"))
                .args(["--no-build", "--strip", "--deb-revision", revision, "-o"])
                .arg(deb)
                .env("CARGO_TARGET_DIR", &target)
                .current_dir(repo(""))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "build-deb.sh: {}",
                common::users::said(&out)
            );
        }
        std::fs::write(&built_by, &run).unwrap();
        debs
    })
}

#[test]
fn the_deb_carries_its_license_changelog_md5sums_and_conffiles_and_passes_lintian() {
    require("lintian", "lintian");
    let deb = &debs()[0];
    let info = run_ok(Command::new("dpkg-deb").arg("--field").arg(deb));
    let maintainer = info
        .lines()
        .find_map(|l| l.strip_prefix("Maintainer: "))
        .unwrap();
    assert!(
        maintainer.contains('<') && maintainer.contains('@'),
        "an e-mail address: {maintainer}"
    );
    let control = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("dpkg-deb")
            .arg("--control")
            .arg(deb)
            .arg(control.path()),
    );
    let conffiles = std::fs::read_to_string(control.path().join("conffiles")).unwrap();
    let mut conffiles: Vec<&str> = conffiles.lines().collect();
    conffiles.sort();
    assert_eq!(
        conffiles,
        [
            "/etc/default/vidvard",
            "/etc/init.d/vidvard",
            "/etc/vidvard/vidvard.conf"
        ]
    );
    let files = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("dpkg-deb")
            .arg("--extract")
            .arg(deb)
            .arg(files.path()),
    );
    // md5sums: every regular file but the conffiles, with its sum.
    let md5sums = std::fs::read_to_string(control.path().join("md5sums")).unwrap();
    let listed: Vec<&str> = md5sums.lines().map(|l| &l[34..]).collect();
    let sums = run_ok(
        Command::new("md5sum")
            .args(&listed)
            .current_dir(files.path()),
    );
    assert_eq!(sums, md5sums, "md5sums matches the files");
    let regular = run_ok(
        Command::new("find")
            .args([".", "-type", "f"])
            .current_dir(files.path()),
    );
    assert_eq!(
        listed.len() + conffiles.len(),
        regular.lines().count(),
        "every file but the conffiles is summed: {md5sums}"
    );
    for shipped in [
        "usr/share/doc/vidvar/copyright",
        "usr/share/doc/vidvar/changelog.Debian.gz",
        "usr/share/bash-completion/completions/vidvarctl",
        "usr/share/zsh/vendor-completions/_vidvarctl",
        "usr/share/fish/vendor_completions.d/vidvarctl.fish",
        "usr/share/doc/vidvar/examples/shared-queue.conf",
    ] {
        assert!(files.path().join(shipped).is_file(), "{shipped}");
    }
    let copyright =
        std::fs::read_to_string(files.path().join("usr/share/doc/vidvar/copyright")).unwrap();
    assert!(
        copyright.contains("Permission is hereby granted"),
        "the license text: {copyright}"
    );

    // lintian: no error; every warning explained in packaging/README.md.
    let out = Command::new("lintian").arg(deb).output().unwrap();
    let tags = String::from_utf8_lossy(&out.stdout);
    let readme = read("packaging/README.md");
    for line in tags.lines() {
        assert!(!line.starts_with("E:"), "lintian: {tags}");
        if let Some(rest) = line.strip_prefix("W: vidvar: ") {
            let tag = rest.split_whitespace().next().unwrap();
            assert!(
                readme.contains(&format!("`{tag}`")),
                "lintian warns {tag}, which packaging/README.md does not explain"
            );
        }
    }
}

/// Every path under `dirs` whose name mentions vidvard (links included,
/// dangling or not).
fn vidvard_entries(dirs: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for dir in dirs {
        let out = Command::new("find")
            .args([*dir, "-name", "*vidvard*"])
            .output()
            .unwrap();
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(String::from),
        );
    }
    found
}

/// The pid in the package's pidfile, once the daemon is up.
fn packaged_daemon_pid() -> i32 {
    common::wait_for(
        "the packaged daemon",
        std::time::Duration::from_secs(20),
        || {
            std::fs::read_to_string("/run/vidvard/vidvard.pid")
                .ok()?
                .trim()
                .parse()
                .ok()
        },
    )
}

#[test]
fn the_deb_installs_runs_a_job_upgrades_with_a_restart_and_purges_every_link() {
    common::users::require_root("dpkg installs the package");
    require("dpkg", "dpkg");
    require("systemctl", "systemd");
    let [v1, v2] = debs();
    let dpkg = |args: &[&str], deb: Option<&PathBuf>| {
        let mut cmd = Command::new("dpkg");
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        if let Some(deb) = deb {
            cmd.arg(deb);
        }
        run_ok(&mut cmd)
    };
    let had_user = nix::unistd::User::from_name("vidvar").unwrap().is_some();
    let _restore = Uninstall { had_user };
    if Command::new("dpkg")
        .args(["-s", "vidvar"])
        .output()
        .unwrap()
        .status
        .success()
    {
        dpkg(&["--purge", "vidvar"], None);
    }
    let link_dirs = [
        "/etc/rc0.d",
        "/etc/rc1.d",
        "/etc/rc2.d",
        "/etc/rc3.d",
        "/etc/rc4.d",
        "/etc/rc5.d",
        "/etc/rc6.d",
        "/etc/rcS.d",
        "/etc/systemd",
    ];
    assert_eq!(
        vidvard_entries(&link_dirs),
        Vec::<String>::new(),
        "a clean start"
    );

    dpkg(&["-i"], Some(v1));
    assert!(nix::unistd::User::from_name("vidvar").unwrap().is_some());
    assert!(Path::new("/etc/vidvard/vidvard.conf").is_file());
    let started: Vec<String> = vidvard_entries(&link_dirs)
        .into_iter()
        .filter(|p| p.contains("/S"))
        .collect();
    assert_eq!(started, Vec::<String>::new(), "installed, not enabled");
    // The administrator enables it every way there is.
    run_ok(Command::new("update-rc.d").args(["vidvard", "enable"]));
    run_ok(Command::new("systemctl").args(["enable", "vidvard"]));
    run_ok(Command::new("systemctl").args(["--global", "enable", "vidvard"]));

    // The SysV service runs a job.
    run_ok(Command::new("/etc/init.d/vidvard").arg("start"));
    let pid = packaged_daemon_pid();
    let work = tempfile::tempdir().unwrap();
    let vidvar = nix::unistd::User::from_name("vidvar").unwrap().unwrap();
    std::os::unix::fs::chown(work.path(), Some(vidvar.uid.as_raw()), None).unwrap();
    let input = work.path().join("clip.mp4");
    common::make_video(&input, 1.0, "160x120", false);
    let ctl = |args: &[&str]| {
        run_ok(
            Command::new(common::VIDVARCTL)
                .env("VIDVAR_SOCKET", "/run/vidvard/vidvard.sock")
                .args(args),
        )
    };
    let job = ctl(&[
        "submit",
        "-n",
        "1",
        "-o",
        common::s(work.path()),
        common::s(&input),
    ]);
    let job = job.trim();
    ctl(&["wait", job]);
    assert_state_is_private();

    // An upgrade restarts it on the new binary, and the job is still there.
    // The state as earlier releases left it (0750, a 0644 database) is
    // tightened by the restart.
    chmod("/var/lib/vidvard", 0o750);
    chmod("/var/lib/vidvard/vidvard.db", 0o644);
    dpkg(&["-i"], Some(v2));
    let upgraded = packaged_daemon_pid();
    assert_ne!(upgraded, pid, "restarted by the upgrade");
    let exe = std::fs::read_link(format!("/proc/{upgraded}/exe")).unwrap();
    assert_eq!(exe, Path::new("/usr/bin/vidvard"), "not the deleted binary");
    assert!(ctl(&["status", job]).contains("succeeded"));
    assert_state_is_private();

    // Purge: stopped, and nothing of it left.
    dpkg(&["--purge", "vidvar"], None);
    assert!(
        !Path::new(&format!("/proc/{upgraded}")).exists(),
        "the daemon was stopped"
    );
    assert_eq!(
        vidvard_entries(&link_dirs),
        Vec::<String>::new(),
        "purge leaves no rc or .wants link"
    );
    for gone in [
        "/var/lib/vidvard",
        "/etc/vidvard",
        "/etc/init.d/vidvard",
        "/run/vidvard",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} after purge");
    }
}

fn chmod(path: &str, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The packaged state directory is vidvar's alone: 0700, every file in it
/// without group or other bits, and a member of the socket group (vidvar)
/// opens none of them.
fn assert_state_is_private() {
    let state = Path::new("/var/lib/vidvard");
    let vidvar = nix::unistd::User::from_name("vidvar").unwrap().unwrap();
    let meta = std::fs::metadata(state).unwrap();
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid()),
        (0o700, vidvar.uid.as_raw())
    );
    let mut names = Vec::new();
    for entry in std::fs::read_dir(state).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().mode() & 0o7777;
        let name = entry.file_name().into_string().unwrap();
        assert_eq!(mode & 0o077, 0, "{name} has mode {mode:o}");
        names.push(name);
    }
    assert!(names.iter().any(|n| n == "vidvard.db"), "{names:?}");
    let member = common::users::User::create("vvm", &["vidvar"]);
    for name in &names {
        let path = state.join(name);
        let out = member
            .command("sh")
            .args(["-c", "exec 3<\"$0\"", common::s(&path)])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "a member of group vidvar opened {}",
            path.display()
        );
    }
}

/// Leaves the machine as the package test found it, even when the test
/// fails: the package purged, and the user vidvar (which a purge keeps)
/// removed unless it was there before.
struct Uninstall {
    had_user: bool,
}

impl Drop for Uninstall {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "vidvar"]).output();
        if !self.had_user {
            let _ = Command::new("userdel").arg("vidvar").output();
        }
    }
}
