//! `vidvarctl`: command-line client of vidvard.
//!
//! Parses the command, talks to the daemon over its Unix socket
//! ([`vidvar::client`]), prints the answer for people ([`render`]) or as one JSON
//! document (`--json`), and exits with a status scripts can test.

mod render;
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

use clap::{Parser, Subcommand};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use vidvar::client::{self, Client, ClientError};
use vidvar::proto::{
    ErrorKind, JobDetail, JobId, JobState, Request, Response, SubmitRequest, WireError,
};

/// Exit status: the job did not produce every variation, or another error.
const EXIT_FAILURE: u8 = 1;
/// Exit status: the daemon could not be reached.
const EXIT_UNREACHABLE: u8 = 3;
/// Exit status: no such job.
const EXIT_NOT_FOUND: u8 = 4;
/// Exit status: the daemon refused the request (bad input, bad values,
/// shutting down, protocol mismatch).
const EXIT_REFUSED: u8 = 5;

/// Submit videos to vidvard, watch their progress and list the variations.
#[derive(Parser, Debug)]
#[command(
    name = "vidvarctl",
    version,
    after_help = "Exit status: 0 success; 1 a job did not produce every variation, or another \
                  error; 2 usage error; 3 vidvard not reachable, not answering, or gone, or its \
                  socket not trustworthy; 4 no \
                  such job; 5 request refused (missing or unreadable input, out-of-range value, \
                  full queue, non-UTF-8 path, protocol mismatch, daemon shutting down)."
)]
struct Args {
    /// vidvard's socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as
    /// root or the vidvar user, or when that does not exist,
    /// /run/vidvard/vidvard.sock]
    #[arg(long, global = true, env = "VIDVAR_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,

    /// The user the system daemon runs as; a socket is trusted only when
    /// it and its directory belong to root, you or this user
    #[arg(
        long,
        global = true,
        env = "VIDVAR_SERVICE_USER",
        value_name = "USER",
        default_value = vidvar::paths::SERVICE_USER
    )]
    service_user: String,

    /// Print JSON instead of text: one document per command; for watch and
    /// submit --watch, one object per line, the last one final; errors as
    /// {"error": {"exit_status", "message"}}
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Queue a job: N variations of each FILE. Prints the job id.
    Submit {
        /// Variations per input file (1..=1000)
        #[arg(short = 'n', long, default_value_t = 3, value_name = "N")]
        variations: u32,
        /// Seed of the effect generator, to reproduce a job's effects
        #[arg(long, value_name = "S")]
        seed: Option<u64>,
        /// Directory for the outputs [default: the current directory]
        #[arg(short = 'o', long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
        /// Follow the job until it ends, as `watch` does
        #[arg(long)]
        watch: bool,
        /// Input videos
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// One job in detail, or a summary line per job without JOB
    Status { job: Option<JobId> },
    /// Follow a job's progress until it ends; exit 0 only if every
    /// variation succeeded
    Watch { job: JobId },
    /// List a job's outputs: path, size in bytes, input, index, effects
    /// (tab-separated)
    Outputs { job: JobId },
    /// A summary line per job
    List,
    /// Cancel a job: stop its FFmpeg processes and drop queued work
    Cancel { job: JobId },
    /// Re-queue the variations of a failed, partial, cancelled or
    /// interrupted job that did not succeed; verified outputs are kept
    Retry { job: JobId },
    /// Check that vidvard answers: version, uptime, queue depth
    Ping,
    /// Remove the records of finished jobs (yours; everyone's as root or
    /// the daemon's user). Output files are never deleted.
    Prune {
        /// Only jobs that finished at least this long ago, e.g. 7d, 12h, 30m
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        older_than: Option<std::time::Duration>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions { shell: clap_complete::Shell },
}

/// What a command ended with.
enum Failure {
    Client(ClientError),
    Daemon(WireError),
    Local(String),
    /// Refused before asking the daemon (exit status as for its refusals).
    Refused(String),
    /// The job ended without producing every variation.
    JobNotSucceeded,
}

impl From<ClientError> for Failure {
    fn from(err: ClientError) -> Self {
        Failure::Client(err)
    }
}

fn print_json<T: Serialize>(value: &T) {
    let text = serde_json::to_string_pretty(value).expect("wire types serialize to JSON");
    out!("{text}\n");
}

fn expect<T>(response: Response, pick: impl FnOnce(Response) -> Option<T>) -> Result<T, Failure> {
    match response {
        Response::Error(err) => Err(Failure::Daemon(err)),
        other => {
            let text = format!("{other:?}");
            pick(other).ok_or_else(|| Failure::Local(format!("unexpected answer: {text}")))
        }
    }
}

/// The absolute form of `path`, as the daemon needs it: its directory
/// resolved (symlinks, `..`) when it exists, its own name kept as given, so
/// a symlinked input names its outputs. A missing path is made absolute
/// as it is, and the daemon says what is wrong with it.
fn absolute(path: &std::path::Path) -> Result<PathBuf, Failure> {
    if path.to_str().is_none() {
        return Err(Failure::Refused(format!(
            "{} is not valid UTF-8; vidvar handles UTF-8 paths only (rename it)",
            path.display()
        )));
    }
    let resolve =
        |e: std::io::Error| Failure::Local(format!("cannot resolve {}: {e}", path.display()));
    let full = std::path::absolute(path).map_err(resolve)?;
    let (Some(dir), Some(name)) = (full.parent(), full.file_name()) else {
        return Ok(full);
    };
    match std::fs::canonicalize(dir) {
        Ok(dir) => Ok(dir.join(name)),
        Err(_) => Ok(full),
    }
}

async fn submit(
    client: &mut Client,
    json: bool,
    variations: u32,
    seed: Option<u64>,
    output_dir: Option<PathBuf>,
    files: Vec<PathBuf>,
    follow: bool,
) -> Result<(), Failure> {
    let inputs = files
        .iter()
        .map(|f| absolute(f))
        .collect::<Result<Vec<_>, _>>()?;
    let output_dir = match output_dir {
        Some(dir) => absolute(&dir)?,
        None => std::env::current_dir()
            .map_err(|e| Failure::Local(format!("cannot read the current directory: {e}")))?,
    };
    let request = Request::Submit(SubmitRequest {
        inputs,
        variations,
        seed,
        output_dir,
    });
    let job = expect(client.request(&request).await?, |r| match r {
        Response::Submitted { job } => Some(job),
        _ => None,
    })?;
    if follow {
        if !json {
            out!("job {job} submitted\n");
        }
        return watch(client, json, job).await;
    }
    if json {
        print_json(&serde_json::json!({ "job": job }));
    } else {
        out!("{job}\n");
    }
    Ok(())
}

/// Follow a job until it ends (see [`watch::View`]); exit status as for
/// `watch`: success only when every variation succeeded.
async fn watch(client: &mut Client, json: bool, job: JobId) -> Result<(), Failure> {
    client.send(&Request::Watch { job }).await?;
    let mut view = watch::View::new(json);
    loop {
        let detail: JobDetail = expect(client.next().await?, |r| match r {
            Response::Progress(d) => Some(d),
            _ => None,
        })?;
        if !detail.summary.state.is_final() {
            view.update(&detail);
            continue;
        }
        view.finish(&detail);
        return match detail.summary.state {
            JobState::Succeeded => Ok(()),
            _ => Err(Failure::JobNotSucceeded),
        };
    }
}

/// Send one request, then print its answer as JSON or as `render` makes it.
async fn show<T: Serialize>(
    client: &mut Client,
    json: bool,
    request: Request,
    pick: impl FnOnce(Response) -> Option<T>,
    render: impl FnOnce(&T) -> String,
) -> Result<(), Failure> {
    let answer = expect(client.request(&request).await?, pick)?;
    if json {
        print_json(&answer);
    } else {
        out!("{}", render(&answer));
    }
    Ok(())
}

fn job_detail(r: Response) -> Option<JobDetail> {
    match r {
        Response::Job(d) => Some(d),
        _ => None,
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    if let Command::Completions { shell } = args.command {
        use clap::CommandFactory;
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Args::command(), "vidvarctl", &mut script);
        out!("{}", String::from_utf8_lossy(&script));
        return Ok(());
    }
    let socket = args.socket.unwrap_or_else(vidvar::paths::default_socket);
    let trusted = client::Trusted::new(&args.service_user);
    let name = format!("vidvarctl {}", env!("CARGO_PKG_VERSION"));
    let mut client = Client::connect(&socket, &trusted, &name).await?;
    let json = args.json;
    let c = &mut client;
    match args.command {
        Command::Submit {
            variations,
            seed,
            output_dir,
            watch: follow,
            files,
        } => submit(c, json, variations, seed, output_dir, files, follow).await,
        Command::Watch { job } => watch(c, json, job).await,
        Command::Status { job: Some(job) } => {
            show(c, json, Request::Status { job }, job_detail, render::detail).await
        }
        Command::Cancel { job } => {
            show(c, json, Request::Cancel { job }, job_detail, render::detail).await
        }
        Command::Retry { job } => {
            show(c, json, Request::Retry { job }, job_detail, render::detail).await
        }
        Command::Status { job: None } | Command::List => {
            let pick = |r| match r {
                Response::Jobs(j) => Some(j),
                _ => None,
            };
            show(c, json, Request::List, pick, |j| render::summaries(j)).await
        }
        Command::Outputs { job } => {
            let pick = |r| match r {
                Response::Outputs(o) => Some(o),
                _ => None,
            };
            show(c, json, Request::Outputs { job }, pick, |o| {
                render::outputs(o)
            })
            .await
        }
        Command::Ping => {
            let pick = |r| match r {
                Response::Pong(p) => Some(p),
                _ => None,
            };
            show(c, json, Request::Ping, pick, render::pong).await
        }
        Command::Prune { older_than } => {
            let older_than_secs = older_than.map_or(0, |d| d.as_secs());
            let pick = |r| match r {
                Response::Pruned { jobs } => Some(serde_json::json!({ "pruned": jobs })),
                _ => None,
            };
            let text = |v: &serde_json::Value| format!("{} job record(s) removed\n", v["pruned"]);
            show(c, json, Request::Prune { older_than_secs }, pick, text).await
        }
        Command::Completions { .. } => unreachable!("handled before connecting"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.json;
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let (message, code) = match failure {
                Failure::Client(err @ ClientError::NotRunning { .. }) => {
                    (Some(err.to_string()), EXIT_UNREACHABLE)
                }
                Failure::Client(
                    err @ (ClientError::Connect { .. }
                    | ClientError::NotAnswering { .. }
                    | ClientError::Untrusted { .. }
                    | ClientError::Lost),
                ) => (Some(err.to_string()), EXIT_UNREACHABLE),
                Failure::Client(ClientError::Refused(err)) | Failure::Daemon(err) => {
                    let code = match err.kind {
                        ErrorKind::NotFound => EXIT_NOT_FOUND,
                        ErrorKind::Internal => EXIT_FAILURE,
                        _ => EXIT_REFUSED,
                    };
                    (Some(err.message), code)
                }
                Failure::Client(err) => (Some(err.to_string()), EXIT_FAILURE),
                Failure::Local(message) => (Some(message), EXIT_FAILURE),
                Failure::Refused(message) => (Some(message), EXIT_REFUSED),
                Failure::JobNotSucceeded => (None, EXIT_FAILURE),
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
                eprintln!("vidvarctl: {message}");
            }
            ExitCode::from(code)
        }
    }
}

/// `man/vidvarctl.1` is generated from the clap definition above: this test
/// fails when the page is out of date, and `VIDVAR_UPDATE_MAN=1 cargo test
/// man_page` writes it anew.
#[cfg(test)]
mod man_page {
    use super::Args;
    use clap::CommandFactory;
    use clap_mangen::Man;
    use clap_mangen::roff::{Roff, bold, roman};
    use std::io::{self, Write};

    const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/man/vidvarctl.1");
    /// Date in the page's title line.
    const DATE: &str = "2026-11-29";

    /// Pieces of a page as roff text. Every piece that roff or clap_mangen
    /// renders starts with the same preamble; it is kept once, at the top.
    struct Page {
        text: String,
        preamble: String,
    }

    impl Page {
        fn new() -> Page {
            let preamble = Roff::new().render();
            Page {
                text: format!(
                    ".\\\" Generated from ctl/main.rs by the man_page test (clap_mangen).\n\
                     .\\\" Do not edit; update with: VIDVAR_UPDATE_MAN=1 cargo test man_page\n\
                     {preamble}"
                ),
                preamble,
            }
        }

        /// Append what `render` writes; with `under_heading`, without the
        /// `.SH` line it starts with, so that it sits under a `.SS` instead.
        fn add(
            &mut self,
            render: impl FnOnce(&mut dyn Write) -> io::Result<()>,
            under_heading: bool,
        ) {
            let mut out = Vec::new();
            render(&mut out).expect("render to memory");
            let text = String::from_utf8(out).expect("roff is UTF-8");
            let mut text = text.strip_prefix(&self.preamble).unwrap_or(&text);
            if under_heading && text.starts_with(".SH") {
                text = text.split_once('\n').map_or("", |(_, rest)| rest);
            }
            self.text.push_str(text);
        }

        fn roff(&mut self, build: impl FnOnce(&mut Roff)) {
            let mut roff = Roff::new();
            build(&mut roff);
            self.add(|w| roff.to_writer(w), false);
        }
    }

    /// The whole page: the top-level command as clap_mangen renders it, one
    /// `.SS` per subcommand under COMMANDS (synopsis, description, its own
    /// arguments and options), then exit status, environment and see also.
    fn render() -> String {
        let mut cmd = Args::command().disable_help_subcommand(true);
        cmd.build();
        let version = cmd.get_version().unwrap_or_default().to_string();
        let man = Man::new(cmd.clone())
            .title("VIDVARCTL")
            .section("1")
            .date(DATE)
            .source(format!("vidvar {version}"))
            .manual("vidvar manual");
        let mut page = Page::new();
        page.add(|w| man.render_title(w), false);
        page.add(|w| man.render_name_section(w), false);
        page.add(|w| man.render_synopsis_section(w), false);
        page.add(|w| man.render_description_section(w), false);
        page.add(|w| man.render_options_section(w), false);
        page.roff(|r| {
            r.control("SH", ["COMMANDS"]);
        });
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = sub.get_bin_name().unwrap_or(sub.get_name()).to_string();
            // Global options and --help are described once, above.
            let sub = sub.clone().mut_args(|a| {
                if a.is_global_set() || a.get_id() == "help" {
                    a.hide(true)
                } else {
                    a
                }
            });
            let sub_man = Man::new(sub);
            page.roff(|r| {
                r.control("SS", [name.as_str()]);
            });
            page.add(|w| sub_man.render_synopsis_section(w), true);
            page.roff(|r| {
                r.control("PP", []);
            });
            page.add(|w| sub_man.render_description_section(w), true);
            page.add(|w| sub_man.render_options_section(w), true);
        }
        let exit_status = cmd
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        page.roff(|r| {
            r.control("SH", ["EXIT STATUS"]);
            r.text([roman(exit_status)]);
            r.control("SH", ["ENVIRONMENT"]);
            r.control("TP", []);
            r.text([bold("VIDVAR_SOCKET")]);
            r.text([
                roman("vidvard's socket, used when "),
                bold("--socket"),
                roman(" is not given."),
            ]);
            r.control("SH", ["SEE ALSO"]);
            r.text([
                bold("vidvard"),
                roman("(8), "),
                bold("vidvard.conf"),
                roman("(5)"),
            ]);
        });
        page.text
    }

    #[test]
    fn man_page_is_up_to_date() {
        let page = render();
        if std::env::var_os("VIDVAR_UPDATE_MAN").is_some_and(|v| v == "1") {
            std::fs::write(PAGE, &page).expect("write man/vidvarctl.1");
            return;
        }
        let on_disk = std::fs::read_to_string(PAGE).unwrap_or_default();
        assert!(
            on_disk == page,
            "man/vidvarctl.1 is out of date with the command-line definition; \
             run `VIDVAR_UPDATE_MAN=1 cargo test man_page` and commit the result"
        );
    }
}
