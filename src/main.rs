//! `vidvard`: the vidvar daemon. Parses flags, takes the pidfile, then
//! builds the tokio runtime (no thread exists before that point) and runs
//! [`vidvar::daemon::run`] until SIGTERM or SIGINT.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;
use vidvar::config::{self, Config};
use vidvar::daemon::{self, Pidfile};
use vidvar::paths;

/// Turn videos into distinct-looking variations with FFmpeg, from a
/// durable job queue. Clients (vidvarctl) talk to it over a Unix socket.
#[derive(Parser, Debug)]
#[command(name = "vidvard", version, about, long_about = None)]
struct Args {
    /// Stay in the foreground and log to stderr (the only mode for now).
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
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    env_logger::Builder::new()
        .filter_level(args.log_level)
        .format_target(false)
        .init();
    let config = config_of(&args)?;
    let mut pidfile = Pidfile::acquire(&config.pidfile)?;
    pidfile.write_pid()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vidvard")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(daemon::run(config, || {}, shutdown_signal()))?;
    drop(pidfile);
    Ok(())
}
