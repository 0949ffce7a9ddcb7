//! vidvarctl's command line as a person meets it when something is wrong:
//! a refused value gets an error that names the option and the forms it
//! takes (exit status 2, as for any usage error).

mod common;

use common::*;
use std::process::Output;

/// vidvarctl `args`, with no daemon behind the socket it is given.
fn ctl_alone(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::process::Command::new(VIDVARCTL)
        .env("VIDVAR_SOCKET", dir.path().join("none.sock"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// A negative or unreadable `--since` (or `--older-than`), written after
/// a blank or an `=`, is a usage error that names the option and the
/// forms it takes, as `stats --help` gives them.
#[test]
fn a_bad_duration_is_refused_naming_the_option_and_its_forms() {
    let help = String::from_utf8(ctl_alone(&["stats", "--help"]).stdout).unwrap();
    let forms = "e.g. 24h, 7d, 90m, 1h30m";
    assert!(help.contains(forms), "{help}");
    let cases: [(&[&str], &str, &str); 5] = [
        (&["stats", "--since", "-1"], "--since", "cannot be negative"),
        (&["stats", "--since=-1"], "--since", "cannot be negative"),
        (
            &["stats", "--since", "-2h"],
            "--since",
            "cannot be negative",
        ),
        (
            &["stats", "--since", "3q"],
            "--since",
            "not a length of time",
        ),
        (
            &["prune", "--older-than", "7"],
            "--older-than",
            "not a length of time",
        ),
    ];
    for (args, option, why) in cases {
        let out = ctl_alone(args);
        let said = common::users::said(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {said}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or_default();
        for wanted in [option, why, "a number and a unit (s, m, h, d, w)", forms] {
            assert!(first.contains(wanted), "{args:?}: {wanted:?} not in {said}");
        }
    }
    // What it accepts still works (nothing listens: exit status 3).
    assert_eq!(
        ctl_alone(&["stats", "--since", "1h30m"]).status.code(),
        Some(3)
    );
}
