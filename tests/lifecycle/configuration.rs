//! The configuration file over a daemon's life: SIGHUP re-reads the keys
//! it may change without interrupting work, and a bad file stops the start
//! with its file and line.

use super::*;

#[test]
fn sighup_rereads_max_parallel_without_interrupting_work() {
    let env = Env::new();
    let conf = env.path("vidvard.conf");
    std::fs::write(&conf, "max_parallel = 1\n").unwrap();
    let daemon = env.start(&["--config", conf.to_str().unwrap()]);
    let job = start_long_job(&env, "2");
    let out = env.out_dir();
    let running = ffmpeg_using(out.to_str().unwrap());
    assert_eq!(running.len(), 1, "max_parallel = 1 runs one FFmpeg");

    std::fs::write(
        &conf,
        "max_parallel = 2\nlog_level = \"debug\"\nmin_ssim = 0.5\n",
    )
    .unwrap();
    let hup = nix::unistd::Pid::from_raw(daemon.pid());
    nix::sys::signal::kill(hup, Signal::SIGHUP).unwrap();
    wait_for("a second FFmpeg", LIMIT, || {
        (ffmpeg_using(out.to_str().unwrap()).len() == 2).then_some(())
    });
    assert!(
        ffmpeg_using(out.to_str().unwrap()).contains(&running[0]),
        "the first encode goes on"
    );
    // The log line and `vidvard --help` name every key SIGHUP re-reads.
    let log = daemon.log();
    let reloaded = log
        .lines()
        .find(|l| l.contains("settings reloaded: max_parallel 2"))
        .unwrap_or_else(|| panic!("no reload line: {log}"));
    let help = std::process::Command::new(VIDVARD)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let sighup = help
        .split("SIGHUP re-reads")
        .nth(1)
        .and_then(|rest| rest.split(" from the configuration file").next())
        .unwrap_or_else(|| panic!("no SIGHUP list in vidvard --help: {help}"));
    for key in [
        "max_parallel",
        "grace_period",
        "stall_timeout",
        "client_idle_timeout",
        "min_free_space_mib",
        "retention_days",
        "log_level",
        "quality_check",
        "min_ssim",
    ] {
        assert!(reloaded.contains(key), "{key} not in {reloaded}");
        assert!(
            sighup.contains(key),
            "{key} not in the SIGHUP list: {sighup}"
        );
    }
    assert!(reloaded.contains("min_ssim 0.5"), "{reloaded}");

    // A broken file on reload is reported and changes nothing.
    std::fs::write(&conf, "max_parallel = \"many\"\n").unwrap();
    nix::sys::signal::kill(hup, Signal::SIGHUP).unwrap();
    wait_for("the reload error in the log", LIMIT, || {
        daemon
            .log()
            .contains("configuration not reloaded")
            .then_some(())
    });
    env.ctl_ok(&["ping"]);
    assert_eq!(env.status(job)["summary"]["state"], "running");
}

#[test]
fn a_bad_configuration_file_stops_the_start_with_file_and_line() {
    let env = Env::new();
    let conf = env.path("vidvard.conf");
    // A misspelt key, and values out of range.
    for (text, says) in [
        ("max_parallel = 2\ngrace_priod = 3\n", "grace_priod"),
        (
            "max_parallel = 2\nmin_ssim = 1.5\n",
            "line 2: min_ssim: 1.5 is not in 0..=1",
        ),
        (
            "# one\nmax_parallel = 2\n\n[encode]\ncrf = 60\n",
            "line 5: encode.crf: 60",
        ),
    ] {
        std::fs::write(&conf, text).unwrap();
        let out = env.run_vidvard(
            &env.socket(),
            &env.state_dir(),
            &env.pidfile(),
            &["--config", conf.to_str().unwrap()],
        );
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("vidvard.conf") && stderr.contains("line "),
            "{stderr}"
        );
        assert!(stderr.contains(says), "{stderr}");
        assert!(!env.socket().exists());
    }
}
