//! The files in `packaging/`: systemd units that `systemd-analyze verify`
//! accepts, sysusers.d and tmpfiles.d files that systemd's own tools apply
//! cleanly (in a scratch root), shell scripts that parse, and a `cargo deb`
//! asset list that ships every page and unit. Checks needing a systemd tool
//! are skipped, with a note on stderr, where that tool is not installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const VIDVARD: &str = env!("CARGO_BIN_EXE_vidvard");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Whether `tool` can be run; when not, say that the check is skipped.
fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        eprintln!("{tool} is not installed: check skipped");
    }
    found
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
    if !have("systemd-analyze") {
        return;
    }
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
    if !have("systemd-sysusers") || !have("systemd-tmpfiles") {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: sysusers/tmpfiles check skipped");
        return;
    }
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
    for dir in ["run/vidvard", "var/lib/vidvard", "etc/vidvard"] {
        assert!(root.path().join(dir).is_dir(), "{dir} not created");
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
