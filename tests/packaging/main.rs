//! The files in `packaging/`: systemd units that `systemd-analyze verify`
//! accepts and a system unit hardened to an exposure of at most 1.5,
//! sysusers.d and tmpfiles.d files that systemd's own tools apply cleanly
//! (in a scratch root), shell scripts that parse, a `cargo deb` asset list
//! that ships every page, unit, completion and example, and the `.deb`
//! itself: lintian-clean, and installed, run, upgraded and purged on this
//! machine. A tool that is missing fails its test with the package to
//! install (`.ci/run` installs them all). This file: the files; `deb`:
//! the package.

#[path = "../common/mod.rs"]
mod common;
mod deb;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const VIDVARD: &str = env!("CARGO_BIN_EXE_vidvard");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Panic unless `tool` can be run, naming the Debian package that has it.
fn require(tool: &str, package: &str) {
    assert!(
        Command::new(tool).arg("--version").output().is_ok(),
        "{tool} is not installed: apt-get install -y {package} (.ci/run does)"
    );
}

/// Assert that `out` succeeded and that nothing on stderr concerns `about`
/// (other lines are about the host's own units and files).
fn assert_clean(what: &str, out: &Output, about: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| about.iter().any(|a| l.contains(a)))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "{what}: {}\n{stderr}",
        out.status
    );
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        common::users::said(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A copy of a unit with ExecStart pointing at the freshly built binary,
/// since /usr/bin/vidvard need not exist here.
fn unit_copy(unit: &str, dir: &Path, name: &str) -> PathBuf {
    let text = read(&format!("packaging/systemd/{unit}"));
    assert!(
        text.contains("ExecStart=/usr/bin/vidvard --foreground\n"),
        "{unit} starts /usr/bin/vidvard --foreground"
    );
    let path = dir.join(name);
    std::fs::write(&path, text.replace("/usr/bin/vidvard", VIDVARD)).unwrap();
    path
}

#[test]
fn systemd_units_verify_cleanly() {
    require("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().unwrap();
    let system = unit_copy("vidvard.service", dir.path(), "vidvard.service");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&system)
        .output()
        .unwrap();
    assert_clean("systemd-analyze verify vidvard.service", &out, &["vidvard"]);

    // Installed as vidvard.service in the user unit directory.
    let user_dir = dir.path().join("user");
    let runtime = dir.path().join("runtime");
    std::fs::create_dir_all(&user_dir).unwrap();
    std::fs::create_dir_all(&runtime).unwrap();
    let user = unit_copy("vidvard-user.service", &user_dir, "vidvard.service");
    let out = Command::new("systemd-analyze")
        .args(["--user", "verify", "--man=no"])
        .arg(&user)
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    assert_clean(
        "systemd-analyze --user verify vidvard-user.service",
        &out,
        &["vidvard"],
    );
}

#[test]
fn system_unit_matches_the_daemon() {
    let unit = read("packaging/systemd/vidvard.service");
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=vidvar",
        "Group=vidvar",
        "RuntimeDirectory=vidvard",
        "StateDirectory=vidvard",
        "KillMode=mixed",
    ] {
        assert!(unit.lines().any(|l| l == line), "vidvard.service: {line}");
    }
    // systemd must not SIGKILL before vidvard's own grace period (default
    // 2 s) is over.
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .expect("TimeoutStopSec=")
        .parse()
        .unwrap();
    let grace = vidvar::config::DEFAULT_GRACE.as_secs();
    assert!(stop > grace * 2, "TimeoutStopSec={stop} vs grace {grace} s");
}

#[test]
fn sysusers_and_tmpfiles_apply_in_a_scratch_root() {
    require("systemd-sysusers", "systemd");
    require("systemd-tmpfiles", "systemd");
    common::users::require_root("systemd-sysusers --root writes files owned by root");
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    let sysusers = repo("packaging/systemd/vidvar.sysusers");
    let out = Command::new("systemd-sysusers")
        .arg("--root")
        .arg(root.path())
        .arg(&sysusers)
        .output()
        .unwrap();
    assert_clean("systemd-sysusers", &out, &["vidvar.sysusers"]);
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    assert!(passwd.starts_with("vidvar:"), "{passwd}");

    // Resolves the user vidvar from the scratch root's /etc/passwd.
    let tmpfiles = repo("packaging/systemd/vidvar.tmpfiles");
    let out = Command::new("systemd-tmpfiles")
        .arg("--root")
        .arg(root.path())
        .arg("--create")
        .arg(&tmpfiles)
        .output()
        .unwrap();
    assert_clean("systemd-tmpfiles --create", &out, &["vidvar.tmpfiles"]);
    for (dir, mode) in [
        ("run/vidvard", 0o750),
        ("var/lib/vidvard", 0o700),
        ("etc/vidvard", 0o755),
    ] {
        let meta = std::fs::metadata(root.path().join(dir)).expect(dir);
        assert!(meta.is_dir(), "{dir} not created");
        assert_eq!(meta.mode() & 0o7777, mode, "{dir}");
    }
}

#[test]
fn shell_scripts_parse() {
    let scripts = [
        "packaging/init.d/vidvard",
        "packaging/debian/postinst",
        "packaging/debian/prerm",
        "packaging/debian/postrm",
    ];
    for script in scripts {
        for shell in ["bash", "sh"] {
            let out = Command::new(shell)
                .arg("-n")
                .arg(repo(script))
                .output()
                .unwrap();
            assert_clean(&format!("{shell} -n {script}"), &out, &[""]);
        }
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(repo(script)).unwrap().permissions(),
        );
        assert!(mode & 0o111 != 0, "{script} is not executable");
    }
}

#[test]
fn init_script_has_an_lsb_header_and_every_action() {
    let script = read("packaging/init.d/vidvard");
    let header = script
        .split_once("### BEGIN INIT INFO\n")
        .and_then(|(_, rest)| rest.split_once("### END INIT INFO\n"))
        .expect("LSB header")
        .0;
    for field in [
        "Provides:",
        "Required-Start:",
        "Required-Stop:",
        "Default-Start:",
        "Default-Stop:",
        "Short-Description:",
    ] {
        assert!(header.contains(field), "LSB header lacks {field}");
    }
    assert!(header.contains("Provides:          vidvard\n"));
    for action in [
        "start)",
        "stop)",
        "status)",
        "reload)",
        "restart | force-reload)",
    ] {
        assert!(
            script.lines().any(|l| l == action),
            "init script lacks the {action} case"
        );
    }
    // The daemon's pidfile in system mode.
    assert!(script.contains("RUNDIR=/run/vidvard\n") && script.contains("$RUNDIR/vidvard.pid"));
}

#[test]
fn deb_assets_exist_and_ship_every_page_and_unit() {
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"].as_array().expect("assets");
    let mut sources = Vec::new();
    for asset in assets {
        let asset = asset.as_array().expect("[source, dest, mode]");
        let (source, dest) = (asset[0].as_str().unwrap(), asset[1].as_str().unwrap());
        if !source.starts_with("target/") {
            assert!(repo(source).is_file(), "deb asset {source} does not exist");
        }
        // man/NAME.N goes to usr/share/man/manN/NAME.N.
        if let Some(page) = source.strip_prefix("man/") {
            let section = page.rsplit('.').next().unwrap();
            assert_eq!(dest, format!("usr/share/man/man{section}/{page}"));
        }
        sources.push(source.to_string());
    }
    let dest_of = |source: &str| {
        assets
            .iter()
            .find(|a| a[0].as_str() == Some(source))
            .map(|a| a[1].as_str().unwrap().to_string())
    };
    assert_eq!(
        dest_of("packaging/systemd/vidvard.service").as_deref(),
        Some("lib/systemd/system/vidvard.service")
    );
    assert_eq!(
        dest_of("packaging/init.d/vidvard").as_deref(),
        Some("etc/init.d/vidvard")
    );
    let mut expected = vec![
        "target/release/vidvard".to_string(),
        "target/release/vidvarctl".to_string(),
        "target/release/vidvar-stage".to_string(),
        "packaging/init.d/vidvard".to_string(),
    ];
    for dir in ["man", "packaging/systemd"] {
        for entry in std::fs::read_dir(repo(dir)).unwrap() {
            expected.push(format!(
                "{dir}/{}",
                entry.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    for file in expected {
        assert!(sources.contains(&file), "the .deb does not ship {file}");
    }
    let scripts = deb["maintainer-scripts"].as_str().unwrap();
    assert!(repo(scripts).join("postinst").is_file());
}

#[test]
fn the_system_unit_is_hardened_to_an_exposure_of_at_most_1_5() {
    require("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_copy("vidvard.service", dir.path(), "vidvard.service");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for vidvard.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{report}"));
    assert!(exposure <= 1.5, "exposure {exposure}:\n{report}");
    // The drop-in for a shared queue lifts exactly the network limits.
    let dropin = read("packaging/systemd/shared-queue.conf");
    for line in [
        "[Service]",
        "PrivateNetwork=no",
        "IPAddressDeny=",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    ] {
        assert!(
            dropin.lines().any(|l| l == line),
            "shared-queue.conf: {line}"
        );
    }
}

#[test]
fn the_example_configuration_shows_every_key_with_a_valid_default() {
    let example = read("packaging/etc/vidvard.conf");
    // Top-level keys: `#key = value` before the first table.
    let top = example.split("\n[").next().unwrap();
    let shown: std::collections::BTreeSet<&str> = top
        .lines()
        .filter_map(|l| l.strip_prefix('#')?.split_once(" = ").map(|(k, _)| k))
        .filter(|k| !k.contains(' '))
        .collect();
    let accepted: std::collections::BTreeSet<String> = common::config_keys()
        .into_iter()
        .filter(|k| !["encode", "effects"].contains(&k.as_str()))
        .collect();
    let shown: std::collections::BTreeSet<String> = shown.into_iter().map(String::from).collect();
    assert_eq!(
        shown, accepted,
        "packaging/etc/vidvard.conf shows every key"
    );
    let dir = tempfile::tempdir().unwrap();
    assert!(example.contains("\n[encode]\n") && example.contains("\n[effects]\n"));

    // As shipped (all commented out) and with every default uncommented
    // (but the alternatives: crf, a shared queue, a group that may not
    // exist here, and the hook, an example program), the daemon accepts it.
    let skip = [
        "on_job_end",
        "crf",
        "database_url",
        "node_name",
        "lease_timeout",
        "socket_group",
    ];
    let uncommented: String = example
        .lines()
        .filter_map(|l| match l.strip_prefix('#') {
            Some(setting)
                if setting
                    .split_once(" = ")
                    .is_some_and(|(k, _)| !k.contains(' ')) =>
            {
                let key = setting.split_once(" = ").unwrap().0;
                (!skip.contains(&key)).then(|| format!("{setting}\n"))
            }
            _ => Some(format!("{l}\n")),
        })
        .collect();
    for (name, text) in [
        ("shipped.conf", example.clone()),
        ("defaults.conf", uncommented),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = Command::new(VIDVARD)
            .arg("--config")
            .arg(&path)
            .args(["--check-config", "--state-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            common::users::said(&out)
        );
    }
}

#[test]
fn completions_are_up_to_date() {
    for (shell, file) in [
        ("bash", "packaging/completions/vidvarctl.bash"),
        ("zsh", "packaging/completions/_vidvarctl"),
        ("fish", "packaging/completions/vidvarctl.fish"),
    ] {
        let script = run_ok(Command::new(common::VIDVARCTL).args(["completions", shell]));
        if std::env::var_os("VIDVAR_UPDATE_GENERATED").is_some_and(|v| v == "1") {
            std::fs::write(repo(file), &script).unwrap();
            continue;
        }
        assert!(
            std::fs::read_to_string(repo(file)).unwrap_or_default() == script,
            "{file} is out of date with the command line; run \
             `VIDVAR_UPDATE_GENERATED=1 cargo test --test packaging` and commit the result"
        );
    }
}

/// The system calls a seccomp group of systemd allows, its nested groups
/// expanded (`systemd-analyze syscall-filter`).
fn syscall_group(group: &str) -> std::collections::BTreeSet<String> {
    let listing = run_ok(Command::new("systemd-analyze").args(["syscall-filter", group]));
    let mut calls = std::collections::BTreeSet::new();
    for entry in listing.lines().skip(1).map(str::trim) {
        match entry {
            "" => {}
            e if e.starts_with('#') => {}
            e if e.starts_with('@') => calls.extend(syscall_group(e)),
            e => {
                calls.insert(e.to_string());
            }
        }
    }
    calls
}

#[test]
fn the_daemon_and_ffmpeg_make_only_calls_the_units_syscall_filter_allows() {
    require("systemd-analyze", "systemd");
    require("strace", "strace");
    let unit = read("packaging/systemd/vidvard.service");
    let filters: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("SystemCallFilter="))
        .collect();
    assert_eq!(filters, ["@system-service"], "the filter this test checks");
    let allowed = syscall_group("@system-service");
    assert!(
        allowed.contains("execve") && allowed.len() > 300,
        "{allowed:?}"
    );

    // A job with audio, the quality check, pause, resume and a clean stop,
    // every process traced.
    let env = common::Env::new();
    let input = env.path("in.mp4");
    common::make_video(&input, 2.0, "320x240", true);
    let trace = env.path("trace");
    let mut daemon = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&trace)
        .arg(VIDVARD)
        .args(env.foreground_args())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for(
        "vidvard to answer",
        std::time::Duration::from_secs(60),
        || env.ctl(&["ping"]).status.success().then_some(()),
    );
    let out = env.out_dir();
    env.ctl_ok(&[
        "submit",
        "-n",
        "2",
        "-o",
        common::s(&out),
        "--watch",
        common::s(&input),
    ]);
    env.ctl_ok(&["pause"]);
    env.ctl_ok(&["resume"]);
    let vidvard = std::fs::read_to_string(env.pidfile()).unwrap();
    run_ok(Command::new("kill").args(["-TERM", vidvard.trim()]));
    daemon.wait().unwrap();

    let text = std::fs::read_to_string(&trace).unwrap();
    let used: std::collections::BTreeSet<String> = text
        .lines()
        .filter_map(|l| {
            // "PID name(args..." ; resumed and signal lines have no name.
            let call = l.split_once(' ')?.1.trim_start();
            let name = call.split_once('(')?.0;
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                .then(|| name.to_string())
        })
        .collect();
    assert!(used.contains("execve") && used.len() > 40, "{used:?}");
    let denied: Vec<&String> = used.difference(&allowed).collect();
    assert!(
        denied.is_empty(),
        "calls outside SystemCallFilter=@system-service: {denied:?}"
    );
}
