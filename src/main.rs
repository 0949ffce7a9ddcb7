//! `vidvard`: the vidvar daemon. Parses flags, daemonizes unless
//! `--foreground` (fork before any thread exists; the launcher waits on a
//! readiness pipe and exits with the real outcome), takes the pidfile, then
//! builds the tokio runtime and runs [`vidvar::daemon::run`] until SIGTERM
//! or SIGINT.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use vidvar::config::{self, Config};
use vidvar::daemon::{self, Pidfile};
use vidvar::readiness::{self, Notifier};
use vidvar::{logging, paths};

/// Turn videos into distinct-looking variations with FFmpeg, from a
/// durable job queue. Clients (vidvarctl) talk to it over a Unix socket.
#[derive(Parser, Debug)]
#[command(name = "vidvard", version, about, long_about = None)]
struct Args {
    /// Stay in the foreground and log to stderr instead of forking and
    /// logging to syslog. Use this under systemd (Type=notify).
    #[arg(long)]
    foreground: bool,

    /// Unix socket to listen on [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock,
    /// or /run/vidvard/vidvard.sock as root]
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Directory of the job database vidvard.db
    /// [default: ${XDG_STATE_HOME:-~/.local/state}/vidvard, or /var/lib/vidvard as root]
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Pidfile, locked while the daemon runs [default: vidvard.pid beside the
    /// default socket]
    #[arg(long, value_name = "PATH")]
    pidfile: Option<PathBuf>,

    /// FFmpeg processes to run at once [default: number of CPU cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    max_parallel: Option<u32>,

    /// Seconds between SIGTERM and SIGKILL when stopping FFmpeg
    #[arg(long, value_name = "SECS", default_value_t = config::DEFAULT_GRACE.as_secs_f64())]
    grace_period: f64,

    /// The ffmpeg program
    #[arg(long, value_name = "PATH", default_value = "ffmpeg")]
    ffmpeg: PathBuf,

    /// The ffprobe program
    #[arg(long, value_name = "PATH", default_value = "ffprobe")]
    ffprobe: PathBuf,

    /// Log level: error, warn, info, debug or trace
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: log::LevelFilter,
}

fn config_of(args: &Args) -> anyhow::Result<Config> {
    let runtime = paths::runtime_dir();
    let mut config = Config::new(
        args.socket
            .clone()
            .unwrap_or_else(|| runtime.join(paths::SOCKET_NAME)),
        args.state_dir.clone().unwrap_or_else(paths::state_dir),
        args.pidfile
            .clone()
            .unwrap_or_else(|| runtime.join(paths::PIDFILE_NAME)),
    );
    if let Some(n) = args.max_parallel {
        config.max_parallel = n as usize;
    }
    anyhow::ensure!(
        args.grace_period.is_finite() && (0.0..=3600.0).contains(&args.grace_period),
        "--grace-period must be between 0 and 3600 seconds"
    );
    config.grace = Duration::from_secs_f64(args.grace_period);
    config.ffmpeg = args.ffmpeg.clone();
    config.ffprobe = args.ffprobe.clone();
    for path in [
        &mut config.socket,
        &mut config.state_dir,
        &mut config.pidfile,
    ] {
        *path = std::path::absolute(&*path)
            .with_context(|| format!("cannot resolve {}", path.display()))?;
    }
    Ok(config)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => log::info!("SIGTERM received"),
        _ = int.recv() => log::info!("SIGINT received"),
    }
    readiness::stopping();
}

/// Everything after the fork: pidfile, runtime, the daemon itself. Errors
/// before readiness go to the launcher through `notifier`.
fn serve(config: Config, mut notifier: Notifier) -> anyhow::Result<()> {
    let started = (|| -> anyhow::Result<_> {
        let mut pidfile = Pidfile::acquire(&config.pidfile)?;
        pidfile.write_pid()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("vidvard")
            .build()
            .context("cannot start the async runtime")?;
        Ok((pidfile, runtime))
    })();
    let (pidfile, runtime) = match started {
        Ok(started) => started,
        Err(err) => {
            notifier.failed(&format!("{err:#}"));
            return Err(err);
        }
    };
    let failed = std::cell::RefCell::new(Some(notifier));
    let result = runtime.block_on(daemon::run(
        config,
        || {
            if let Some(mut n) = failed.borrow_mut().take() {
                n.ready();
            }
        },
        shutdown_signal(),
    ));
    if let (Err(err), Some(mut notifier)) = (&result, failed.borrow_mut().take()) {
        notifier.failed(&err.to_string());
    }
    drop(runtime);
    drop(pidfile);
    Ok(result?)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match config_of(&args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("vidvard: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    if args.foreground {
        if let Err(err) = logging::init(true, args.log_level) {
            eprintln!("vidvard: {err}");
        }
        return match serve(config, Notifier::new(None)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                log::error!("{err:#}");
                ExitCode::FAILURE
            }
        };
    }
    // Fork before any thread exists; the launcher waits on the pipe.
    let (reader, writer) = match std::io::pipe() {
        Ok(pipe) => pipe,
        Err(err) => {
            eprintln!("vidvard: cannot create the readiness pipe: {err}");
            return ExitCode::FAILURE;
        }
    };
    match daemonize::Daemonize::new().umask(0o022).execute() {
        daemonize::Outcome::Parent(Err(err)) => {
            eprintln!("vidvard: cannot daemonize: {err}");
            ExitCode::FAILURE
        }
        daemonize::Outcome::Parent(Ok(_)) => {
            drop(writer);
            match readiness::wait(reader) {
                Ok(()) => ExitCode::SUCCESS,
                Err(reason) => {
                    eprintln!("vidvard: {reason}");
                    ExitCode::FAILURE
                }
            }
        }
        daemonize::Outcome::Child(Err(err)) => {
            Notifier::new(Some(writer)).failed(&format!("cannot daemonize: {err}"));
            ExitCode::FAILURE
        }
        daemonize::Outcome::Child(Ok(_)) => {
            drop(reader);
            if let Err(err) = logging::init(false, args.log_level) {
                // Not fatal: the daemon runs, unlogged.
                eprintln!("vidvard: {err}");
            }
            match serve(config, Notifier::new(Some(writer))) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    log::error!("{err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
