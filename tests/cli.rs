//! vidvarctl's command line as a person meets it when something is wrong:
//! a refused value gets an error that names the option and the forms it
//! takes (exit status 2, as for any usage error); a value quoted in an
//! error, by clap or by the daemon, is escaped as text output escapes
//! names, never written raw.

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
        for wanted in [
            option,
            why,
            "a number and a unit (s, m, h, d, w; also ms",
            forms,
        ] {
            assert!(first.contains(wanted), "{args:?}: {wanted:?} not in {said}");
        }
    }
    // What it accepts still works (nothing listens: exit status 3).
    assert_eq!(
        ctl_alone(&["stats", "--since", "1h30m"]).status.code(),
        Some(3)
    );
}

/// `text` has no control character but the newlines that end its lines:
/// nothing in it can move the cursor, colour or retitle a terminal.
fn only_newlines(text: &str) -> bool {
    text.chars().all(|c| c == '\n' || !c.is_control())
}

/// A value vidvarctl refuses (a `--label` with an escape sequence and a
/// newline, an unknown subcommand, a bad `-n`) is quoted in clap's error
/// escaped as text output escapes names (`\x1b`, `\n`), never raw; the
/// error stays on its line and says what is wrong.
#[test]
fn a_refused_value_is_quoted_escaped_never_raw() {
    let label = "a\u{1b}[31mb\nc";
    let cases: [(&[&str], &str); 3] = [
        (
            &["submit", "-l", label, "x.mp4"],
            r#"invalid value 'a\x1b[31mb\nc' for '--label <TEXT>': label "a\x1b[31mb\nc" has a control character"#,
        ),
        (
            &["st\u{1b}]0;title\u{7}\n"],
            r"unrecognized subcommand 'st\x1b]0;title\x07\n'",
        ),
        (
            &["submit", "-n", "\u{1b}c", "x.mp4"],
            r"invalid value '\x1bc' for '--variations <N>': invalid digit found in string",
        ),
    ];
    for (args, wanted) in cases {
        let out = ctl_alone(args);
        let said = common::users::said(&out);
        assert_eq!(out.status.code(), Some(2), "{said}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(only_newlines(&stderr), "raw control bytes: {stderr:?}");
        let first = stderr.lines().next().unwrap_or_default();
        assert_eq!(first, format!("error: {wanted}"), "{stderr:?}");
    }
}

/// The daemon's refusals quote what the client sent (a path): vidvarctl
/// shows them escaped, on one line, and `--json` gives them raw.
#[test]
fn a_refusal_quoting_a_path_is_shown_escaped() {
    let env = Env::new();
    let _daemon = env.start(&[]);
    let missing = env.path("no\u{1b}[2J\nsuch.mp4");
    let out = env.ctl(&["submit", "-n", "1", s(&missing)]);
    let said = common::users::said(&out);
    assert_eq!(out.status.code(), Some(5), "{said}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(only_newlines(&stderr), "raw control bytes: {stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.contains(r"/no\x1b[2J\nsuch.mp4"),
        "the path, escaped: {stderr:?}"
    );
    let json = env.json(&["submit", "-n", "1", s(&missing)]);
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains(s(&missing)), "raw in JSON: {json}");
}
