//! `vidvarctl metrics`, `metrics_socket` and `metrics_textfile` against a
//! real daemon that ran a real job: the text passes Debian's `promtool
//! check metrics`, counts what ran (variations, CPU and media seconds from
//! the encoders' rusage and progress), is served over HTTP on its own
//! socket and written to the textfile, and its counters survive `prune`
//! and a restart; `vidvarctl stats` summarizes the same runs, by label.
//! The metrics socket's directory as the docs set it up lets a scraper of
//! another group in; a textfile in a directory another user controls is
//! refused at start.

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `promtool check metrics` of `text`: its complaints, empty when clean.
/// Fails the test when promtool is missing.
fn promtool_complaints(text: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool not found ({e}): install Debian's prometheus package (packaging/test.sh does)")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        String::new()
    } else {
        said
    }
}

/// The value of the sample `series` (name and labels as written).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .parse()
        .unwrap()
}

/// `GET PATH` on the Unix socket `socket`: status line and body.
fn get(socket: &Path, path: &str) -> (String, String) {
    let mut stream = UnixStream::connect(socket).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").expect("a head and a body");
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[test]
fn metrics_count_what_ran_pass_promtool_and_outlive_prune_and_restart() {
    let env = Env::new();
    let socket = env.path("metrics.sock");
    // In a directory not made yet: the daemon makes it, 0755.
    let textfile = env.path("node-exporter").join("vidvar.prom");
    let config = env.path("vidvard.conf");
    std::fs::write(
        &config,
        format!(
            "metrics_socket = {:?}\nmetrics_textfile = {:?}\n",
            s(&socket),
            s(&textfile)
        ),
    )
    .unwrap();
    let input = env.path("in.mp4");
    make_video(&input, 1.0, "160x120", true);
    let daemon = env.start(&["--config", s(&config), "--max-parallel", "2"]);
    let out = env.out_dir();
    let job = env.submit(&["-n", "2", "-l", "promo", "-o", s(&out), s(&input)]);
    env.wait_job(job, Duration::from_secs(120), |d| {
        d["summary"]["state"] == "succeeded"
    });

    let text = env.ctl_ok(&["metrics"]);
    assert_eq!(promtool_complaints(&text), "", "{text}");
    assert_eq!(
        value(&text, "vidvar_variations_total{outcome=\"succeeded\"}"),
        2.
    );
    assert_eq!(
        value(&text, "vidvar_variations_total{outcome=\"failed\"}"),
        0.
    );
    assert_eq!(
        value(&text, "vidvar_claims_total"),
        3.,
        "a probe, two variations"
    );
    let media = value(&text, "vidvar_variation_media_seconds_total");
    assert!((1.9..=2.2).contains(&media), "two 1 s encodes: {media}");
    let cpu = value(&text, "vidvar_variation_cpu_seconds_total");
    assert!(cpu > 0.05, "the encoders' rusage: {cpu}");
    assert_eq!(value(&text, "vidvar_output_ssim_min_count"), 2.);
    assert_eq!(value(&text, "vidvar_jobs{state=\"succeeded\"}"), 1.);
    assert_eq!(value(&text, "vidvar_slots"), 2.);
    assert!(
        !text.contains(s(&out)) && !text.contains("in.mp4") && !text.contains("promo"),
        "no paths and no job labels"
    );

    let (status, body) = get(&socket, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(promtool_complaints(&body), "", "{body}");
    assert_eq!(
        value(&body, "vidvar_variations_total{outcome=\"succeeded\"}"),
        2.
    );
    assert_eq!(get(&socket, "/").0, "HTTP/1.1 404 Not Found");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "no metrics_socket_group: the daemon's user only"
    );

    let made = std::fs::metadata(textfile.parent().unwrap()).unwrap();
    assert_eq!(made.permissions().mode() & 0o7777, 0o755);
    let written = wait_for("the textfile", Duration::from_secs(20), || {
        std::fs::read_to_string(&textfile).ok()
    });
    assert_eq!(promtool_complaints(&written), "", "{written}");
    assert!(written.contains("vidvar_build_info{version="));

    env.ctl_ok(&["prune"]);
    assert!(
        !env.ctl(&["status", &job.to_string()]).status.success(),
        "pruned"
    );
    let text = env.ctl_ok(&["metrics"]);
    assert_eq!(
        value(&text, "vidvar_variations_total{outcome=\"succeeded\"}"),
        2.
    );

    // The history outlives the job too: `stats` counts what ran.
    let stats = env.json(&["stats", "--label", "promo"]);
    assert_eq!(stats["total"]["succeeded"], 2, "{stats}");
    assert_eq!(stats["total"]["failed"], 0);
    assert!(
        stats["total"]["cpu_secs"].as_f64().unwrap() > 0.05,
        "{stats}"
    );
    let encoded = stats["total"]["encoded_secs"].as_f64().unwrap();
    assert!((1.9..=2.2).contains(&encoded), "{stats}");
    assert_eq!(stats["ssim"]["checked"], 2);
    assert_eq!(stats["everyone"], true, "the daemon's own user sees all");
    let other = env.json(&["stats", "--label", "other"]);
    assert_eq!(other["total"]["succeeded"], 0, "{other}");
    let text = env.ctl_ok(&["stats", "--since", "1h"]);
    assert!(text.contains("2 succeeded, 0 failed"), "{text}");
    drop(daemon);
    // Restarted with a group for the socket: 0660 to that group.
    let gid = nix::unistd::getegid().as_raw();
    std::fs::write(
        &config,
        format!(
            "metrics_socket = {:?}\nmetrics_socket_group = {gid}\n",
            s(&socket)
        ),
    )
    .unwrap();
    let _daemon = env.start(&["--config", s(&config)]);
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), gid);
    let text = env.ctl_ok(&["metrics"]);
    assert_eq!(
        value(&text, "vidvar_variations_total{outcome=\"succeeded\"}"),
        2.
    );
    assert_eq!(value(&text, "vidvar_jobs{state=\"succeeded\"}"), 0.);
}

/// The metrics socket's directory as the docs set it up (vidvard.conf(5),
/// `metrics_socket`): the daemon runs as a service user, the socket lives
/// in a directory of its own, of the scraper's group and set-group-ID; the
/// scraper, a member of that group only, scrapes it, while it cannot
/// enter the daemon's runtime directory (as Prometheus cannot enter
/// /run/vidvard).
#[test]
fn the_documented_metrics_directory_lets_the_scraper_in() {
    common::users::require_root("it acts as the daemon's user and as Prometheus");
    let service = common::users::User::create("vvd", &[]);
    let scraper = common::users::User::create("vvq", &[]);
    let mut env = Env::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for dir in ["run", "state"] {
        std::fs::create_dir(env.path(dir)).unwrap();
    }
    service.own(&env.path("run"), 0o750);
    service.own(&env.state_dir(), 0o700);
    // d /run/vidvard-metrics 2750 vidvar prometheus -
    let metrics_dir = env.path("vidvard-metrics");
    std::fs::create_dir(&metrics_dir).unwrap();
    std::os::unix::fs::chown(&metrics_dir, Some(service.uid), Some(scraper.gid)).unwrap();
    std::fs::set_permissions(&metrics_dir, std::fs::Permissions::from_mode(0o2750)).unwrap();
    let socket = metrics_dir.join("metrics.sock");
    let config = env.path("vidvard.conf");
    std::fs::write(
        &config,
        format!(
            "metrics_socket = {:?}\nmetrics_socket_group = {:?}\n",
            s(&socket),
            scraper.name
        ),
    )
    .unwrap();
    let home = env.dir.path().to_path_buf();
    env.service_user = Some(service);
    let _daemon = env.start_with_env(
        &["--config", s(&config)],
        &[("HOME", &home), ("XDG_CONFIG_HOME", &home)],
    );
    let curl = |path: &Path| {
        scraper
            .command("curl")
            .args(["-sS", "--unix-socket", s(path), "http://localhost/metrics"])
            .output()
            .unwrap_or_else(|e| panic!("curl not found ({e}): install it"))
    };
    let scraped = curl(&socket);
    let text = String::from_utf8_lossy(&scraped.stdout);
    assert!(
        scraped.status.success() && text.contains("vidvar_build_info{"),
        "{}",
        common::users::said(&scraped)
    );
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), scraper.gid);
    // The old suggestion, beside the control socket: out of reach.
    let refused = curl(&env.socket());
    assert!(
        !refused.status.success(),
        "{}",
        common::users::said(&refused)
    );
}

/// `metrics_textfile` through another user's symlink (planted in a sticky
/// directory, pointing at a directory of root's) would have the daemon
/// replace, every 15 s, whatever file that user points it at: the start
/// is refused, naming the directory, and the file there is untouched.
#[test]
fn a_textfile_in_a_directory_of_another_user_is_refused() {
    common::users::require_root("the planted symlink belongs to nobody");
    let env = Env::new();
    let victim = env.path("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("vidvar.prom"), "important\n").unwrap();
    let sticky = env.path("sticky");
    std::fs::create_dir(&sticky).unwrap();
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let link = sticky.join("d");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    let config = env.path("vidvard.conf");
    let textfile = link.join("vidvar.prom");
    std::fs::write(&config, format!("metrics_textfile = {:?}\n", s(&textfile))).unwrap();
    let mut child = Command::new(VIDVARD)
        .args(env.foreground_args())
        .args(["--config", s(&config)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("vidvard started with a textfile in another user's directory");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let said = common::users::said(&out);
    assert!(!out.status.success(), "vidvard started:\n{said}");
    assert!(
        said.contains(s(&link)),
        "the directory is not named:\n{said}"
    );
    assert_eq!(
        std::fs::read_to_string(victim.join("vidvar.prom")).unwrap(),
        "important\n"
    );
}

/// A `metrics_socket` or `metrics_textfile` in a directory another user
/// (nobody) owns stops the start with advice about that setting (give the
/// directory to the daemon's user, or set it in vidvard.conf to another
/// place), not the control socket's (its --socket, --pidfile, --state-dir).
#[test]
fn a_metrics_directory_of_another_user_is_refused_with_advice_for_metrics() {
    common::users::require_root("the directory belongs to nobody");
    let env = Env::new();
    let theirs = env.path("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    for setting in ["metrics_socket", "metrics_textfile"] {
        let config = env.path("vidvard.conf");
        let path = theirs.join("metrics");
        std::fs::write(&config, format!("{setting} = {:?}\n", s(&path))).unwrap();
        let out = env.run_vidvard(
            &env.socket(),
            &env.state_dir(),
            &env.pidfile(),
            &["--config", s(&config)],
        );
        let said = common::users::said(&out);
        assert!(!out.status.success(), "vidvard started:\n{said}");
        for wanted in [
            format!("refusing to use {} for {setting}", s(&theirs)),
            "belongs to nobody".into(),
            format!("set {setting} in vidvard.conf"),
            format!("chown root {}", s(&theirs)),
        ] {
            assert!(said.contains(&wanted), "{wanted:?} not in:\n{said}");
        }
        assert!(
            !said.contains("--pidfile"),
            "the control socket's advice:\n{said}"
        );
    }
}

/// A daemon whose user has no login name is told to `chown` the directory
/// to its uid, which chown(1) takes, and not to "uid N", which it does not;
/// the directory is quoted for the shell.
#[test]
fn a_daemon_user_without_a_name_is_advised_to_chown_by_uid() {
    use std::os::unix::fs::PermissionsExt;
    common::users::require_root("it runs vidvard as a uid without a name");
    let uid = (4_100_000..4_200_000)
        .find(|&u| {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(u)).is_ok_and(|u| u.is_none())
        })
        .expect("a uid without a user");
    let env = Env::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for dir in ["run", "state"] {
        std::fs::create_dir(env.path(dir)).unwrap();
        std::os::unix::fs::chown(env.path(dir), Some(uid), Some(uid)).unwrap();
    }
    // A space in the path: the advice quotes it for the shell.
    let theirs = env.path("their dir");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let config = env.path("vidvard.conf");
    let metrics = theirs.join("metrics.prom");
    std::fs::write(&config, format!("metrics_textfile = {:?}\n", s(&metrics))).unwrap();
    let out = std::process::Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
            "--",
        ])
        .arg(VIDVARD)
        .args(env.foreground_args())
        .args(["--config", s(&config)])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let said = common::users::said(&out);
    assert!(!out.status.success(), "vidvard started:\n{said}");
    let wanted = format!("chown {uid} '{}'", s(&theirs));
    assert!(said.contains(&wanted), "{wanted:?} not in:\n{said}");
    assert!(
        said.contains(&format!("uid {uid} (the user vidvard runs as)")),
        "{said}"
    );
}
