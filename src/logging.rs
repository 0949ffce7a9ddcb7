//! Where log records go: stderr in the foreground ([`init_foreground`]),
//! syslog (facility LOG_DAEMON) when daemonized, or a file while syslog
//! cannot be reached ([`init_daemon`]). The level can change at run time
//! (SIGHUP) through `log::set_max_level`. When stderr is the journal's
//! stream (systemd's `JOURNAL_STREAM` names its device and inode),
//! records carry sd-daemon(3) priority prefixes (`<3>` error, `<4>`
//! warning, `<6>` info, `<7>` debug) and no timestamp of their own, so that
//! `journalctl -p err` selects them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Install the logger of a daemon in the foreground: stderr, with
/// sd-daemon(3) prefixes on the journal's stream (see the module docs).
pub fn init_foreground(level: log::LevelFilter) {
    let mut builder = env_logger::Builder::new();
    builder
        .filter_level(log::LevelFilter::Trace)
        .format_target(false);
    if stderr_is_journal() {
        builder.format(|out, record| {
            use std::io::Write;
            writeln!(out, "<{}>{}", priority(record.level()), record.args())
        });
    }
    builder.init();
    log::set_max_level(level);
}

/// Name of the log file in the state directory that a daemon writes while
/// its syslog cannot be reached.
pub const LOG_FILE_NAME: &str = "vidvard.log";

/// Install the logger of a daemonized vidvard: syslog (facility
/// LOG_DAEMON, through `/dev/log`), reconnected when a send fails (the
/// syslog daemon restarted and its socket is a new one) and tried again at
/// most once per [`RECONNECT_INTERVAL`] while it cannot be reached;
/// meanwhile records go to [`LOG_FILE_NAME`] in `state_dir` (created
/// `0700` if missing; the file is appended to, `0640`, never through a
/// symlink), with timestamps.
///
/// Returns what the launcher should print when syslog cannot be reached
/// at start: where the records go, or that they are dropped (the file
/// cannot be written either).
pub fn init_daemon(level: log::LevelFilter, state_dir: &Path) -> Option<String> {
    let logger = Syslog {
        formatter: syslog::Formatter3164 {
            facility: syslog::Facility::LOG_DAEMON,
            hostname: None,
            process: "vidvard".into(),
            pid: std::process::id(),
        },
        file_path: state_dir.join(LOG_FILE_NAME),
        state: Mutex::new(Sinks::default()),
    };
    let warning = {
        let mut sinks = logger.state.lock().unwrap_or_else(|e| e.into_inner());
        match logger.connect(&mut sinks) {
            Ok(()) => None,
            Err(err) => Some(match logger.open_file(&mut sinks) {
                Ok(()) => format!(
                    "syslog is not reachable ({err}): logging to {} until it is",
                    logger.file_path.display()
                ),
                Err(file_err) => format!(
                    "syslog is not reachable ({err}) and {} cannot be written ({file_err}): \
                     logs are dropped until syslog is reachable",
                    logger.file_path.display()
                ),
            }),
        }
    };
    // Only fails if a logger is installed already: then that one stays.
    let _ = log::set_boxed_logger(Box::new(logger));
    log::set_max_level(level);
    if let Some(warning) = &warning {
        log::warn!("{warning}");
    }
    warning
}

/// How often a daemon whose syslog cannot be reached tries it again (at
/// the next record after this long).
pub const RECONNECT_INTERVAL: Duration = Duration::from_secs(1);

/// The daemon's logger: see [`init_daemon`].
struct Syslog {
    formatter: syslog::Formatter3164,
    file_path: PathBuf,
    state: Mutex<Sinks>,
}

#[derive(Default)]
struct Sinks {
    /// Connected to syslog; `None` while it cannot be reached.
    syslog: Option<syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>>,
    /// When syslog was last tried.
    tried: Option<Instant>,
    /// The fallback file, once opened.
    file: Option<std::fs::File>,
}

impl Syslog {
    fn connect(&self, sinks: &mut Sinks) -> Result<(), syslog::Error> {
        sinks.tried = Some(Instant::now());
        sinks.syslog = Some(syslog::unix(self.formatter.clone())?);
        Ok(())
    }

    fn open_file(&self, sinks: &mut Sinks) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if sinks.file.is_none() {
            if let Some(dir) = self.file_path.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
            }
            let file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o640)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&self.file_path)?;
            sinks.file = Some(file);
        }
        Ok(())
    }

    /// Send to syslog, reconnecting once if the send fails; `false` when
    /// syslog cannot be reached now.
    fn send(&self, sinks: &mut Sinks, level: log::Level, message: &str) -> bool {
        for attempt in 0..2 {
            if sinks.syslog.is_none() {
                let due = sinks
                    .tried
                    .is_none_or(|at| attempt > 0 || at.elapsed() >= RECONNECT_INTERVAL);
                if !due || self.connect(sinks).is_err() {
                    return false;
                }
            }
            let Some(logger) = sinks.syslog.as_mut() else {
                return false;
            };
            let sent = match level {
                log::Level::Error => logger.err(message),
                log::Level::Warn => logger.warning(message),
                log::Level::Info => logger.info(message),
                log::Level::Debug | log::Level::Trace => logger.debug(message),
            };
            if sent.is_ok() {
                return true;
            }
            sinks.syslog = None;
        }
        false
    }
}

impl log::Log for Syslog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        let mut sinks = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if self.send(&mut sinks, record.level(), &message) {
            return;
        }
        if self.open_file(&mut sinks).is_ok()
            && let Some(file) = sinks.file.as_mut()
        {
            let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
            let _ = writeln!(file, "[{stamp} {:<5}] {message}", record.level());
        }
    }

    fn flush(&self) {}
}

/// The sd-daemon(3) priority of a log level: the syslog(3) severity.
fn priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// Whether stderr is the stream systemd connected to the journal:
/// `JOURNAL_STREAM` is `DEVICE:INODE` of it (systemd.exec(5)), and stderr
/// is still that file (not redirected since).
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let stderr = std::io::stderr();
    let Ok(meta) = nix::sys::stat::fstat(&stderr) else {
        return false;
    };
    dev.parse() == Ok(meta.st_dev) && ino.parse() == Ok(meta.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_are_syslog_severities() {
        assert_eq!(priority(log::Level::Error), 3);
        assert_eq!(priority(log::Level::Warn), 4);
        assert_eq!(priority(log::Level::Info), 6);
        assert_eq!(priority(log::Level::Debug), 7);
    }
}
