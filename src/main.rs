//! `vidvard`: the vidvar daemon. Parses flags, daemonizes unless
//! `--foreground` (fork before any thread exists; the launcher waits on a
//! readiness pipe and exits with the real outcome), takes the pidfile, then
//! builds the tokio runtime and runs [`vidvar::daemon::run`] until SIGTERM
//! or SIGINT.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::mpsc;
use vidvar::config::{self, Config, FileSettings, Tunables};
use vidvar::daemon::{self, Pidfile};
use vidvar::readiness::{self, Notifier};
use vidvar::{logging, paths};

/// Turn videos into distinct-looking variations with FFmpeg, from a
/// durable job queue. Clients (vidvarctl) talk to it over a Unix socket.
#[derive(Parser, Debug, Clone)]
#[command(name = "vidvard", version, after_long_help = signals_help())]
struct Args {
    /// Stay in the foreground and log to stderr instead of forking and
    /// logging to syslog. Use this under systemd (Type=notify).
    #[arg(long)]
    foreground: bool,

    /// Configuration file (TOML) [default: /etc/vidvard/vidvard.conf in system
    /// mode, else ${XDG_CONFIG_HOME:-~/.config}/vidvard/vidvard.conf; used if
    /// it exists]
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Check the configuration, print the settings in force and exit
    #[arg(long)]
    check_config: bool,

    /// Unix socket to listen on [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock;
    /// /run/vidvard/vidvard.sock in system mode (root or the vidvar user)]
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Directory of the job database vidvard.db [default:
    /// ${XDG_STATE_HOME:-~/.local/state}/vidvard; /var/lib/vidvard in system mode]
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Pidfile, locked while the daemon runs [default: vidvard.pid beside the
    /// default socket]
    #[arg(long, value_name = "PATH")]
    pidfile: Option<PathBuf>,

    /// Group (name or number) allowed to use the socket: socket 0660 and
    /// its directory 0750 [default in system mode: vidvar, when it exists;
    /// else only the daemon's user, 0600 and 0700]
    #[arg(long, value_name = "GROUP")]
    socket_group: Option<String>,

    /// Slots of work to run at once (a probe, or one variation's encode),
    /// 0..=256; 0 takes no new work (drains the node) [default: 6 per CPU
    /// core, 1 per core with pixel_path = "ffmpeg"]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=256))]
    max_parallel: Option<u32>,

    /// Seconds between SIGTERM and SIGKILL when stopping FFmpeg, 0..=3600
    /// [default: 2]
    #[arg(long, value_name = "SECS", value_parser = seconds(config::grace))]
    grace_period: Option<Duration>,

    /// Seconds an FFmpeg process may go without progress before it is
    /// stopped and its variation fails as stalled, 1..=86400 [default: 120]
    #[arg(long, value_name = "SECS", value_parser = seconds(config::timeout))]
    stall_timeout: Option<Duration>,

    /// Free space (MiB) an output filesystem needs for a variation to start
    /// [default: 256]
    #[arg(long, value_name = "MIB")]
    min_free_space: Option<u64>,

    /// The ffmpeg program [default: ffmpeg from PATH]
    #[arg(long, value_name = "PATH")]
    ffmpeg: Option<PathBuf>,

    /// The ffprobe program [default: ffprobe from PATH]
    #[arg(long, value_name = "PATH")]
    ffprobe: Option<PathBuf>,

    /// Log level: off, error, warn, info, debug or trace [default: info]
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<log::LevelFilter>,

    /// Share the job queue with other vidvard nodes in this PostgreSQL
    /// database: a postgresql:// URL (libpq style; a unix socket directory
    /// as ?host=/path; the password from the URL or the password file,
    /// PGPASSFILE or ~/.pgpass) [default: the SQLite file in the state
    /// directory]
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,

    /// This node's name in a shared queue, unique among live nodes
    /// [default: the host name]
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,

    /// Seconds work claimed by a node that stopped renewing its claims
    /// stays claimed before another node takes it over, 3..=3600
    /// [default: 30]
    #[arg(long, value_name = "SECS", value_parser = seconds(config::lease_timeout))]
    lease_timeout: Option<Duration>,
}

/// A clap value parser for seconds, checked by `check` (so a bad value is a
/// usage error, exit status 2, like every other bad flag).
fn seconds(
    check: fn(f64) -> Result<Duration, config::OutOfRange>,
) -> impl Fn(&str) -> Result<Duration, SecondsError> + Clone {
    move |text| {
        let secs: f64 = text
            .parse()
            .map_err(|_| SecondsError::NotANumber(text.into()))?;
        Ok(check(secs)?)
    }
}

/// A bad number of seconds on the command line.
#[derive(Debug, thiserror::Error)]
enum SecondsError {
    #[error("{0:?} is not a number")]
    NotANumber(String),
    #[error(transparent)]
    Range(#[from] config::OutOfRange),
}

/// What `vidvard --help` says of signals, after the options; the keys
/// SIGHUP re-reads are [`config::reloadable_keys`].
fn signals_help() -> String {
    let keys = config::reloadable_keys();
    let (last, rest) = keys.split_last().expect("SIGHUP re-reads some keys");
    format!(
        "Signals: SIGTERM and SIGINT stop it cleanly (running FFmpeg processes get SIGTERM, \
         then SIGKILL after the grace period; unfinished work is marked interrupted); SIGHUP \
         re-reads {} and {last} from the configuration file (flags given at start still win).",
        rest.join(", ")
    )
}

impl Args {
    fn config_file(&self) -> PathBuf {
        self.config.clone().unwrap_or_else(config::default_file)
    }

    fn file_settings(&self) -> anyhow::Result<FileSettings> {
        Ok(FileSettings::load(
            &self.config_file(),
            self.config.is_some(),
        )?)
    }

    /// Tunables from defaults, then the file, then the flags.
    fn tunables(&self, file: &FileSettings) -> anyhow::Result<Tunables> {
        let mut t = file.tunables(&self.config_file(), Tunables::default())?;
        if let Some(n) = self.max_parallel {
            t.max_parallel = n as usize;
        }
        if let Some(grace) = self.grace_period {
            t.grace = grace;
        }
        if let Some(stall) = self.stall_timeout {
            t.stall_timeout = stall;
        }
        if let Some(mib) = self.min_free_space {
            t.min_free_bytes = mib.saturating_mul(1 << 20);
        }
        if let Some(level) = self.log_level {
            t.log_level = level;
        }
        Ok(t)
    }

    /// The shared queue of `--database-url` or `database_url`, if any. A
    /// configuration file that holds a database password must not be open
    /// to others (as ssh refuses a private key others can read).
    fn shared_queue(
        &self,
        file: &FileSettings,
        slots: usize,
    ) -> anyhow::Result<Option<config::SharedQueue>> {
        let Some(url) = self.database_url.as_ref().or(file.database_url.as_ref()) else {
            return Ok(None);
        };
        let database = vidvar::queue::postgres::parse_url(url)?;
        let has_password = vidvar::queue::postgres::url_has_password(url);
        if self.database_url.is_some() && has_password {
            eprintln!(
                "vidvard: warning: the password in --database-url is visible to every user \
                 (ps, /proc); keep it in a password file (PGPASSFILE) instead"
            );
        }
        if self.database_url.is_none() && has_password {
            use std::os::unix::fs::MetadataExt;
            let path = self.config_file();
            let meta = std::fs::metadata(&path)?;
            let (mode, owner) = (meta.mode(), meta.uid());
            if mode & 0o007 != 0 {
                anyhow::bail!(
                    "{} holds a database password and others may read it (mode {:o}): \
                     chmod o-rwx it, or keep the password in a password file (PGPASSFILE)",
                    path.display(),
                    mode & 0o777
                );
            }
            if owner != 0 && owner != nix::unistd::geteuid().as_raw() {
                anyhow::bail!(
                    "{} holds a database password but belongs to uid {owner}, neither root \
                     nor this daemon's user: whoever owns it may change who can read it",
                    path.display()
                );
            }
        }
        let lease_timeout = match (self.lease_timeout, file.lease_timeout) {
            (Some(flag), _) => flag,
            (None, Some(secs)) => config::lease_timeout(secs).map_err(|e| {
                anyhow::anyhow!("{}: lease_timeout: {e}", self.config_file().display())
            })?,
            (None, None) => config::DEFAULT_LEASE_TIMEOUT,
        };
        let name = self
            .node_name
            .clone()
            .or_else(|| file.node_name.clone())
            .unwrap_or_else(config::host_name);
        if name.is_empty() || name.chars().any(char::is_control) {
            anyhow::bail!("node name {name:?} is empty or holds control characters");
        }
        Ok(Some(config::SharedQueue {
            database,
            node: vidvar::queue::postgres::NodeConfig {
                name,
                slots: slots as u32,
                lease_timeout,
            },
        }))
    }

    fn resolve(&self) -> anyhow::Result<Config> {
        let file = self.file_settings()?;
        let runtime = paths::runtime_dir();
        let pick = |flag: &Option<PathBuf>, key: &Option<PathBuf>, default: PathBuf| {
            flag.clone().or_else(|| key.clone()).unwrap_or(default)
        };
        let mut config = Config::new(
            pick(&self.socket, &file.socket, runtime.join(paths::SOCKET_NAME)),
            pick(&self.state_dir, &file.state_dir, paths::state_dir()),
            pick(
                &self.pidfile,
                &file.pidfile,
                runtime.join(paths::PIDFILE_NAME),
            ),
        );
        for (slot, flag, key, name) in [
            (
                &mut config.engine.ffmpeg,
                &self.ffmpeg,
                &file.ffmpeg,
                "ffmpeg",
            ),
            (
                &mut config.engine.ffprobe,
                &self.ffprobe,
                &file.ffprobe,
                "ffprobe",
            ),
        ] {
            let program = pick(flag, key, name.into());
            *slot = config::find_program(&program)
                .map_err(|reason| anyhow::anyhow!("{name}: {reason}"))?;
        }
        config.tunables = self.tunables(&file)?;
        config.engine.encode = file.encode(&self.config_file())?;
        config.engine.effects = file.effects(&self.config_file())?;
        config.engine.hook = file.hook(&self.config_file())?;
        config.metrics = file.metrics(&self.config_file())?;
        let group = match (&self.socket_group, &file.socket_group) {
            (Some(flag), _) => Some(flag.clone()),
            (None, Some(key)) => Some(key.to_string()),
            (None, None) => None,
        };
        config.socket_group = match group {
            Some(group) => {
                Some(config::group_id(&group).map_err(|e| anyhow::anyhow!("socket group: {e}"))?)
            }
            None if config.system_mode => config::group_id(config::DEFAULT_SOCKET_GROUP).ok(),
            None => None,
        };
        for path in [
            &mut config.socket,
            &mut config.state_dir,
            &mut config.pidfile,
        ] {
            *path = std::path::absolute(&*path)
                .map_err(|e| anyhow::anyhow!("cannot resolve {}: {e}", path.display()))?;
        }
        config.engine.shared = self.shared_queue(&file, config.tunables.max_parallel)?;
        // Compared where they really are: a symlinked directory must not
        // let the socket or pidfile land on the database or the state lock.
        let database = real_location(&config.database());
        let lock = real_location(&config.state_dir.join(paths::STATE_LOCK_NAME));
        let (socket, pidfile) = (
            real_location(&config.socket),
            real_location(&config.pidfile),
        );
        for (path, what) in [(&socket, "socket"), (&pidfile, "pidfile")] {
            if [&database, &lock].contains(&path) {
                anyhow::bail!(
                    "the {what} {} is a file of the state directory",
                    path.display()
                );
            }
        }
        if socket == pidfile {
            anyhow::bail!("socket and pidfile are the same path: {}", socket.display());
        }
        Ok(config)
    }
}

/// Where `path` (absolute) really is: its directory with symlinks, `.` and
/// `..` resolved, when that directory exists.
fn real_location(path: &std::path::Path) -> PathBuf {
    match (path.parent().map(std::fs::canonicalize), path.file_name()) {
        (Some(Ok(dir)), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}

/// On every SIGHUP (`hup`, installed before the daemon reports ready, so
/// that an early SIGHUP cannot kill it), re-read the tunables and send them
/// to the daemon; a file that has become invalid is logged and the
/// settings stay.
async fn reload_on_sighup(
    args: Args,
    mut hup: tokio::signal::unix::Signal,
    reload: mpsc::UnboundedSender<Tunables>,
) {
    while hup.recv().await.is_some() {
        log::info!(
            "SIGHUP received: reloading {}",
            args.config_file().display()
        );
        match args.file_settings().and_then(|file| args.tunables(&file)) {
            Ok(tunables) => {
                let _ = reload.send(tunables);
            }
            Err(err) => log::error!("configuration not reloaded, settings unchanged: {err}"),
        }
    }
}

/// A future that ends at the first SIGTERM or SIGINT. The handlers are
/// installed now, in `runtime`'s context, not when the future is first
/// polled: a SIGTERM sent right after the daemon reported ready must stop
/// it cleanly, not kill it by the default action (leaving its pidfile).
fn shutdown_signal(
    runtime: &tokio::runtime::Runtime,
) -> std::io::Result<impl std::future::Future<Output = ()> + use<>> {
    use tokio::signal::unix::{SignalKind, signal};
    let _context = runtime.enter();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => log::info!("SIGTERM received"),
            _ = int.recv() => log::info!("SIGINT received"),
        }
        readiness::stopping();
    })
}

/// Everything after the fork: pidfile, runtime, the daemon itself. Errors
/// before readiness go to the launcher through `notifier`.
/// Raise the open-file limit to its hard maximum: every client and every
/// FFmpeg pipe costs descriptors.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(err) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        log::warn!("cannot raise the open-file limit from {soft} to {hard}: {err}");
    }
}

fn serve(args: Args, config: Config, mut notifier: Notifier) -> anyhow::Result<()> {
    raise_fd_limit();
    let started = (|| -> anyhow::Result<_> {
        // A start refused as "already running" leaves the pidfile alone.
        daemon::refuse_live_socket(&config.socket, &config.state_dir)?;
        daemon::create_socket_dir(&config.socket, config.socket_group)?;
        let mut pidfile = Pidfile::acquire(&config.pidfile)?;
        pidfile.write_pid()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("vidvard")
            .build()
            .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
        Ok((pidfile, runtime))
    })();
    let (pidfile, runtime, shutdown, hup) = match started.and_then(|(pidfile, runtime)| {
        let shutdown =
            shutdown_signal(&runtime).map_err(|e| anyhow::anyhow!("cannot handle SIGTERM: {e}"))?;
        let hup = {
            let _context = runtime.enter();
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .map_err(|e| anyhow::anyhow!("cannot handle SIGHUP: {e}"))?
        };
        Ok((pidfile, runtime, shutdown, hup))
    }) {
        Ok(started) => started,
        Err(err) => {
            notifier.failed(&format!("{err}"));
            return Err(err);
        }
    };
    let (reload, reloaded) = mpsc::unbounded_channel();
    runtime.spawn(reload_on_sighup(args, hup, reload));
    let failed = std::cell::RefCell::new(Some(notifier));
    let result = runtime.block_on(daemon::run(
        config,
        || {
            if let Some(mut n) = failed.borrow_mut().take() {
                n.ready();
            }
        },
        shutdown,
        reloaded,
    ));
    if let (Err(err), Some(mut notifier)) = (&result, failed.borrow_mut().take()) {
        notifier.failed(&err.to_string());
    }
    drop(runtime);
    drop(pidfile);
    Ok(result?)
}

/// Close every descriptor above standard error but `keep`, as daemon(7)
/// asks of a daemon: whatever its launcher left open (a terminal, a lock,
/// a socket) must not stay held by a process that runs for months.
fn close_inherited(keep: std::os::fd::RawFd) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let open: Vec<std::os::fd::RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open.into_iter().filter(|&fd| fd > 2 && fd != keep) {
        // The listing's own descriptor is closed already: EBADF is fine.
        let _ = nix::unistd::close(fd);
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match args.resolve() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("vidvard: {err}");
            return ExitCode::FAILURE;
        }
    };
    if args.check_config {
        print!("{}", config.describe());
        return ExitCode::SUCCESS;
    }
    let level = config.tunables.log_level;
    if args.foreground {
        logging::init_foreground(level);
        return match serve(args, config, Notifier::new(None)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                log::error!("{err}");
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
            match readiness::wait(reader, |warning| eprintln!("vidvard: warning: {warning}")) {
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
            close_inherited(std::os::fd::AsRawFd::as_raw_fd(&writer));
            let mut notifier = Notifier::new(Some(writer));
            // Judged before the fallback log in it is opened.
            let changes = match vidvar::state_dir::prepare(&config.state_dir) {
                Ok(changes) => changes,
                Err(err) => {
                    notifier.failed(&err.to_string());
                    return ExitCode::FAILURE;
                }
            };
            if let Some(warning) = logging::init_daemon(level, &config.state_dir) {
                notifier.warn(&warning);
            }
            for change in changes {
                log::info!("{change}");
            }
            match serve(args, config, notifier) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    log::error!("{err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
