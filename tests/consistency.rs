//! Every view of one moment agrees, and every limit with the others: the
//! progress of `watch` (bars, lines, JSON), `status` and `list`; text
//! records that stay one line whatever a file is called, with JSON kept
//! raw; and submissions as large as the limits allow get through, while
//! larger ones are refused by the client before it sends a byte.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(180);

/// The documented limits (README, Security model; `vidvarctl --help`).
const MAX_INPUTS: usize = 1000;
const MAX_PATH_BYTES: usize = 4096;

/// `text` with the escape sequences (CSI) of a terminal removed.
fn strip_csi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            // Parameters and intermediates, then one final byte @..~.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

/// Run vidvarctl with `args` on a terminal (a pty of script(1), 160
/// columns); returns its exit code and everything it drew.
fn ctl_on_terminal(env: &Env, args: &[&str]) -> (i32, String) {
    let quote = |a: &str| format!("'{}'", a.replace('\'', r"'\''"));
    let command = std::iter::once(VIDVARCTL)
        .chain(args.iter().copied())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("script")
        .args(["--quiet", "--return", "--command"])
        .arg(format!("stty cols 160 rows 40; exec {command}"))
        .arg("/dev/null")
        .env("VIDVAR_SOCKET", env.socket())
        .stdin(Stdio::null())
        .output()
        .expect("script(1) of util-linux runs vidvarctl on a terminal; install util-linux");
    let code = out.status.code().expect("script exits");
    (code, strip_csi(&String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn watch_status_and_list_agree_on_a_partial_job() {
    let env = Env::new();
    let _daemon = env.start(&[]);
    // One good input and one that is not a video: the job ends partial.
    let good = env.path("good.mp4");
    make_video(&good, 1.0, "160x120", false);
    let bad = env.path("bad.mp4");
    std::fs::write(&bad, "not a video at all\n").unwrap();
    let out = env.out_dir();
    let args = [
        "submit",
        "--watch",
        "-n",
        "2",
        "-o",
        s(&out),
        s(&good),
        s(&bad),
    ];
    let (code, drawn) = ctl_on_terminal(&env, &args);
    assert_eq!(code, 1, "a partial job exits 1: {drawn}");
    let job: i64 = drawn
        .split_once(" submitted")
        .and_then(|(before, _)| before.rsplit("job ").next())
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or_else(|| panic!("no 'job N submitted' in {drawn:?}"));

    let status = env.status(job);
    assert_eq!(status["summary"]["state"], "partial", "{status}");
    let progress = status["summary"]["progress"].as_f64().unwrap();
    assert!(
        progress > 0.0 && progress < 100.0,
        "a partial job is neither 0% nor 100% done: {status}"
    );
    let percent = format!("{progress:.1}%");
    let status_text = env.ctl_ok(&["status", &job.to_string()]);
    let headline = status_text.lines().next().unwrap().to_string();
    assert_eq!(headline, format!("job {job}: partial {percent}"));

    // The bars: the last drawing of each shows the figure of status.
    let last_figures = |label: &str| {
        let (_, last) = drawn
            .rsplit_once(&format!("{label} ["))
            .unwrap_or_else(|| panic!("no bar of {label} drawn: {drawn:?}"));
        last.split_once("] ")
            .map_or("", |(_, rest)| rest)
            .to_string()
    };
    let figures = last_figures(&format!("job {job}"));
    assert!(
        figures.starts_with(&format!("{percent} partial")),
        "the job's bar ends at {figures:?}, status says {percent}"
    );
    for file in status["files"].as_array().unwrap() {
        let path = Path::new(file["path"].as_str().unwrap());
        let name = path.file_name().unwrap().to_str().unwrap();
        let want = format!(
            "{:.1}% {}",
            file["progress"].as_f64().unwrap(),
            file["state"].as_str().unwrap()
        );
        let figures = last_figures(name);
        assert!(
            figures.starts_with(&want),
            "{name}: {figures:?}, status says {want:?}"
        );
    }
    assert!(drawn.contains(&headline), "{drawn}");

    // Lines (stdout not a terminal) and JSON of a watch of the ended job.
    let lines = env.ctl(&["watch", &job.to_string()]);
    assert_eq!(lines.status.code(), Some(1));
    let lines = String::from_utf8(lines.stdout).unwrap();
    assert_eq!(lines.lines().next(), Some(headline.as_str()), "{lines}");
    let json = env.ctl(&["--json", "watch", &job.to_string()]);
    let json = String::from_utf8(json.stdout).unwrap();
    let last: Value = serde_json::from_str(json.lines().last().unwrap()).unwrap();
    assert_eq!(last["summary"], status["summary"], "{json}");
    assert_eq!(last["files"], status["files"], "{json}");

    // list, text and JSON.
    let list = env.ctl_ok(&["list"]);
    let row: Vec<&str> = list
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields[0] == job.to_string())
        .unwrap_or_else(|| panic!("job {job} not listed: {list}"));
    assert_eq!(row[1..3], ["partial", percent.as_str()], "{list}");
    let listed = env.json(&["list"]);
    assert_eq!(listed[0]["progress"], status["summary"]["progress"]);
}

/// `text` escaped as the text records of vidvarctl show it.
fn escaped(text: &str) -> String {
    text.replace('\\', r"\\")
        .replace('\n', r"\n")
        .replace('\t', r"\t")
        .replace('\u{1b}', r"\x1b")
}

#[test]
fn text_records_escape_control_characters_and_json_keeps_names_raw() {
    let env = Env::new();
    let _daemon = env.start(&[]);
    let name = "two\nlines\tand a tab \\ \u{1b}[31mred.mp4";
    let input = env.path(name);
    make_video(&input, 1.0, "160x120", false);
    let out = env.out_dir();
    let job = env.submit(&["-n", "2", "-o", s(&out), s(&input)]);
    let detail = env.wait_job(job, LIMIT, |d| {
        d["summary"]["state"] != "queued" && d["summary"]["state"] != "running"
    });
    assert_eq!(detail["summary"]["state"], "succeeded", "{detail}");
    let job = job.to_string();

    let json = env.json(&["outputs", &job]);
    let json = json.as_array().unwrap();
    assert_eq!(json.len(), 2);
    let text = env.ctl_ok(&["outputs", &job]);
    let records: Vec<&str> = text.lines().collect();
    assert_eq!(records.len(), json.len(), "one line per output: {text:?}");
    for (record, o) in records.iter().zip(json) {
        let (path, raw_input) = (o["path"].as_str().unwrap(), o["input"].as_str().unwrap());
        assert_eq!(raw_input, s(&input), "JSON gives the raw name");
        let fields: Vec<&str> = record.split('\t').collect();
        assert_eq!(fields.len(), 6, "{record:?}");
        assert_eq!(fields[0], escaped(path));
        assert_eq!(fields[1], o["size"].to_string());
        assert_eq!(fields[2], escaped(raw_input));
        assert!(!record.contains('\u{1b}'), "{record:?}");
    }

    let status = env.ctl_ok(&["status", &job]);
    assert!(
        status.contains(&format!("  {}\n", escaped(s(&input)))),
        "{status}"
    );
    assert!(
        !status.contains('\u{1b}') && !status.contains("lines\t"),
        "raw control characters in {status:?}"
    );
    let detail = env.status(job.parse().unwrap());
    assert_eq!(detail["files"][0]["path"], s(&input));
}

/// `count` hard links to one small video, in directories nested so deep
/// that every path is `len` bytes long.
fn inputs_of_length(env: &Env, count: usize, len: usize) -> Vec<PathBuf> {
    let video = env.path("clip.mp4");
    make_video(&video, 0.5, "64x48", false);
    // The client sends the real path of the directory: build on it.
    let mut dir = std::fs::canonicalize(env.dir.path()).unwrap();
    for level in 0..5 {
        dir.push(format!("{level}{}", "d".repeat(199)));
    }
    std::fs::create_dir_all(&dir).unwrap();
    (0..count)
        .map(|i| {
            let head = format!("{}/clip{i:04}_", s(&dir));
            let pad = len - head.len() - ".mp4".len();
            let path = PathBuf::from(format!("{head}{}.mp4", "x".repeat(pad)));
            std::fs::hard_link(&video, &path).unwrap();
            assert_eq!(s(&path).len(), len);
            path
        })
        .collect()
}

#[test]
fn a_thousand_inputs_of_long_paths_are_taken() {
    let env = Env::new();
    let _daemon = env.start(&[]);
    let inputs = inputs_of_length(&env, MAX_INPUTS, 1117);
    let out = env.out_dir();
    let mut args = vec!["submit", "-n", "1", "-o", s(&out)];
    args.extend(inputs.iter().map(|p| s(p)));
    // Not env.submit: its message on failure would quote every path.
    let submitted = env.ctl(&args);
    let stderr = String::from_utf8_lossy(&submitted.stderr);
    assert!(submitted.status.success(), "{}: {stderr}", submitted.status);
    let job: i64 = String::from_utf8(submitted.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    // The daemon has them all, and works on them.
    let detail = env.wait_job(job, LIMIT, |d| d["files"][0]["state"] == "succeeded");
    let files = detail["files"].as_array().unwrap();
    assert_eq!(files.len(), MAX_INPUTS);
    for (file, input) in files.iter().zip(&inputs) {
        assert_eq!(file["path"], s(input));
    }
    let outputs = env.json(&["outputs", &job.to_string()]);
    assert_eq!(outputs[0]["input"], s(&inputs[0]), "{outputs}");
    let cancelled = env.json(&["cancel", &job.to_string()]);
    assert_eq!(cancelled["summary"]["state"], "cancelled", "{cancelled}");
}

/// vidvarctl `args` against `socket`: exit code, stdout, stderr.
fn ctl_at(socket: &Path, args: &[String]) -> (Option<i32>, String, String) {
    let out = Command::new(VIDVARCTL)
        .env("VIDVAR_SOCKET", socket)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.code(), text(out.stdout), text(out.stderr))
}

#[test]
fn submissions_over_the_limits_are_refused_before_they_are_sent() {
    let env = Env::new();
    let submit = |files: Vec<String>| -> Vec<String> {
        let head = ["submit".to_string(), "-o".into(), s(&env.out_dir()).into()];
        head.into_iter().chain(files).collect()
    };
    let missing = s(&env.path("missing.mp4")).to_string();
    let over = [
        (
            submit(vec![missing; MAX_INPUTS + 1]),
            "1001 inputs in one job; at most 1000 are accepted",
        ),
        (
            submit(vec![format!("/{}", "p".repeat(MAX_PATH_BYTES))]),
            "path of 4097 bytes is longer than 4096 bytes, the limit: /ppp",
        ),
    ];

    // Without a daemon: refused (5), not "not running" (3), so nothing was
    // even connected.
    for (args, message) in &over {
        let (code, _, stderr) = ctl_at(&env.socket(), args);
        assert_eq!(code, Some(5), "{stderr}");
        assert!(stderr.contains(message), "{stderr:?} lacks {message:?}");
    }

    // With one: the same, and the daemon saw no request.
    let daemon = env.start(&[]);
    for (args, message) in &over {
        let args = [vec!["--json".to_string()], args.clone()].concat();
        let (code, stdout, stderr) = ctl_at(&env.socket(), &args);
        assert_eq!(code, Some(5), "{stderr}");
        let error: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(error["error"]["exit_status"], 5);
        let said = error["error"]["message"].as_str().unwrap();
        assert!(said.contains(message), "{said:?} lacks {message:?}");
    }
    assert_eq!(env.json(&["list"]), serde_json::json!([]));
    let log = daemon.log();
    assert!(!log.contains("queued") && !log.contains("dropped"), "{log}");
}
