//! A wrapper around a real FFmpeg program ([`metering_wrapper`]), named in
//! a daemon's configuration in its place, that records each run of a job's
//! work: what it was (the check, or other work), its CPU time and its
//! arguments; and reading those records back ([`wrapped_runs`]). The real
//! program does all the work: nothing is mocked.

use super::s;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// One run of a wrapped program, as its wrapper recorded it.
#[derive(Debug, Clone)]
pub struct WrappedRun {
    /// `ffmpeg check` (the check of outputs), `ffmpeg work` or `ffprobe
    /// work` (any other run with a file handed down).
    pub kind: String,
    /// The program's own user and system CPU time, seconds (bash's
    /// `times`, to the millisecond).
    pub cpu: f64,
    /// Its arguments, joined by spaces.
    pub args: String,
}

/// Write at `at` a wrapper around the real `program` (found on `PATH`): it
/// runs the program with its arguments and, when they name a file handed
/// down (`/dev/fd/N`: the work of a job), writes to a file of its own in
/// `logs` what it ran (`check` when FFmpeg computes SSIM or writes to no
/// file, `-f null -`, as the check does with the comparison off; else
/// `work`),
/// bash's `times` of its child and the arguments (see [`wrapped_runs`]).
/// It exits as the program did.
pub fn metering_wrapper(program: &str, at: &Path, logs: &Path) {
    let real = which(program);
    let script = format!(
        r#"#!/bin/bash
{real} "$@"
status=$?
case " $* " in
  *ssim*|*" -f null - "*) kind=check ;;
  */dev/fd/*) kind=work ;;
  *) exit $status ;;
esac
{{ echo "{program} $kind"; times; echo "$*"; }} > {logs}/$$
exit $status
"#,
        logs = s(logs)
    );
    std::fs::write(at, script).unwrap();
    std::fs::set_permissions(at, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The runs the wrappers of [`metering_wrapper`] recorded in `logs`.
pub fn wrapped_runs(logs: &Path) -> Vec<WrappedRun> {
    std::fs::read_dir(logs)
        .unwrap()
        .map(|entry| {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            // `times`: the shell's own line, then its children's.
            let (user, system) = lines[2].split_once(' ').unwrap();
            WrappedRun {
                kind: lines[0].to_string(),
                cpu: seconds(user) + seconds(system),
                args: lines[3..].join("\n"),
            }
        })
        .collect()
}

/// The absolute path of `program` on `PATH`.
pub fn which(program: &str) -> String {
    std::env::var("PATH")
        .unwrap()
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} is not on PATH"))
        .to_string_lossy()
        .into_owned()
}

/// Seconds of a `times` figure such as `0m1.250s`.
fn seconds(figure: &str) -> f64 {
    let (min, sec) = figure.trim_end_matches('s').split_once('m').unwrap();
    min.parse::<f64>().unwrap() * 60.0 + sec.parse::<f64>().unwrap()
}
