//! `vidvarctl`: command-line client of vidvard.
//!
//! Parses the command, talks to the daemon over its Unix socket
//! ([`vidvar::client`]), prints the answer for people ([`render`]) or as one JSON
//! document (`--json`), and exits with a status scripts can test.

mod cli;
mod commands;
mod folders;
mod render;
mod top;
mod watch;

/// Write to stdout. When the reader has gone (`vidvarctl list | head`),
/// stop quietly with the status a shell gives a process killed by SIGPIPE
/// (128 + 13), as Unix tools do, instead of panicking as `print!` would.
fn say(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(err) = out.write_fmt(text).and_then(|()| out.flush()) {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("vidvarctl: cannot write output: {err}");
        std::process::exit(1);
    }
}

/// `print!` through [`say`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::say(format_args!($($arg)*)) };
}
pub(crate) use out;

use clap::Parser;
use commands::Failure;
use std::process::ExitCode;
use vidvar::client::ClientError;
use vidvar::escape::escape;
use vidvar::proto::ErrorKind;

/// A command-line error of clap's with the values it quotes from the
/// command line (a refused `--label`, an unknown argument) escaped as
/// vidvarctl's text output escapes names ([`escape`]): clap echoes them as
/// they were typed, and a control character in one would reach the
/// terminal raw.
fn escaped_values(mut err: clap::Error) -> clap::Error {
    use clap::error::ContextValue;
    let escaped: Vec<_> = err
        .context()
        .filter_map(|(kind, value)| match value {
            ContextValue::String(text) => Some((kind, ContextValue::String(escape(text)))),
            ContextValue::Strings(texts) => Some((
                kind,
                ContextValue::Strings(texts.iter().map(escape).collect()),
            )),
            _ => None,
        })
        .collect();
    for (kind, value) in escaped {
        err.insert(kind, value);
    }
    err
}

/// Exit status: the job did not produce every variation, or another error.
const EXIT_FAILURE: u8 = 1;
/// Exit status: the daemon could not be reached.
const EXIT_UNREACHABLE: u8 = 3;
/// Exit status: no such job.
const EXIT_NOT_FOUND: u8 = 4;
/// Exit status: the request was refused, by the daemon (bad input, bad
/// values, shutting down, protocol mismatch) or before it was sent (a
/// non-UTF-8 path, a submission over the size limits).
const EXIT_REFUSED: u8 = 5;
/// Exit status: nothing to do, the job had already ended (`cancel` of a
/// succeeded, partial, failed or cancelled job).
const EXIT_ENDED: u8 = 6;
/// Exit status of `top` ended by a signal: this plus the signal's number
/// (143 for SIGTERM), as a shell reports a process the signal killed.
const EXIT_SIGNALLED: u8 = 128;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = cli::Args::try_parse().unwrap_or_else(|err| escaped_values(err).exit());
    let json = args.json;
    match commands::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // The daemon's messages are one line, which may quote what a
            // client sent (a path): escaped whole. vidvarctl's own may
            // have several lines: each escaped.
            let mut one_line = false;
            let (message, code) = match failure {
                Failure::Client(err @ ClientError::NotRunning { .. }) => {
                    (Some(err.to_string()), EXIT_UNREACHABLE)
                }
                Failure::Client(
                    err @ (ClientError::Connect { .. }
                    | ClientError::PermissionDenied { .. }
                    | ClientError::NotAnswering { .. }
                    | ClientError::Untrusted { .. }
                    | ClientError::Lost),
                ) => (Some(err.to_string()), EXIT_UNREACHABLE),
                Failure::Client(ClientError::Refused(err)) | Failure::Daemon(err) => {
                    let code = match err.kind {
                        ErrorKind::NotFound => EXIT_NOT_FOUND,
                        ErrorKind::Unavailable => EXIT_UNREACHABLE,
                        ErrorKind::Internal => EXIT_FAILURE,
                        ErrorKind::Ended => EXIT_ENDED,
                        _ => EXIT_REFUSED,
                    };
                    one_line = true;
                    (Some(err.message), code)
                }
                Failure::Client(err @ ClientError::RequestTooLarge { .. }) => {
                    (Some(err.to_string()), EXIT_REFUSED)
                }
                Failure::Client(err) => (Some(err.to_string()), EXIT_FAILURE),
                Failure::Local(message) => (Some(message), EXIT_FAILURE),
                Failure::Refused(message) => (Some(message), EXIT_REFUSED),
                Failure::JobNotSucceeded => (None, EXIT_FAILURE),
                Failure::Signalled(number) => (None, EXIT_SIGNALLED + number as u8),
            };
            if let Some(message) = message {
                if json {
                    // Scripts reading stdout get a document even now, on
                    // one line so that a watch stream stays line-delimited.
                    let error = serde_json::json!({
                        "error": { "exit_status": code, "message": message }
                    });
                    out!("{error}\n");
                }
                let shown: Vec<String> = if one_line {
                    vec![escape(&message)]
                } else {
                    message.lines().map(escape).collect()
                };
                eprintln!("vidvarctl: {}", shown.join("\n"));
            }
            ExitCode::from(code)
        }
    }
}
