//! Where log records go: stderr in the foreground ([`init_foreground`]),
//! syslog (facility LOG_DAEMON) when daemonized, or a file while syslog
//! cannot be reached ([`init_daemon`]). The level can change at run time
//! (SIGHUP) through `log::set_max_level`. When stderr is the journal's
//! stream (systemd's `JOURNAL_STREAM` names its device and inode),
//! records carry sd-daemon(3) priority prefixes (`<3>` error, `<4>`
//! warning, `<6>` info, `<7>` debug) and no timestamp of their own, so that
//! `journalctl -p err` selects them.
//!
//! Whatever the sink, every record is one line: [`Guarded`] escapes its
//! control and bidirectional characters ([`crate::escape::escape`]) and
//! cuts it at [`RECORD_MAX`] bytes, so nothing a client sends can forge a
//! line or a priority. Records made while serving a client's connection
//! (inside [`as_client`]) draw on that user's [`LogBudget`], so no client
//! can fill the disk with log lines.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
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
    // Only fails if a logger is installed already: then that one stays.
    let _ = log::set_boxed_logger(Box::new(Guarded {
        inner: builder.build(),
    }));
    log::set_max_level(level);
}

/// Install the logger of a daemonized vidvard: syslog (facility
/// LOG_DAEMON, through `/dev/log`), reconnected when a send fails (the
/// syslog daemon restarted and its socket is a new one) and tried again at
/// most once per [`RECONNECT_INTERVAL`] while it cannot be reached;
/// meanwhile records go to [`crate::paths::LOG_FILE_NAME`] in `state_dir` (judged by
/// [`crate::state_dir::prepare`] before this is called; the file is
/// appended to, mode 0600, a regular file of the daemon's user only),
/// with timestamps.
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
        file_path: state_dir.join(crate::paths::LOG_FILE_NAME),
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
    let _ = log::set_boxed_logger(Box::new(Guarded { inner: logger }));
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

    /// Open the fallback log, a regular file of ours in the state
    /// directory ([`crate::state_dir::open_file`]), which the launcher has
    /// judged before the logger is set up.
    fn open_file(&self, sinks: &mut Sinks) -> std::io::Result<()> {
        if sinks.file.is_none() {
            sinks.file = Some(crate::state_dir::open_file(
                &self.file_path,
                std::fs::OpenOptions::new().append(true).create(true),
            )?);
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

/// Longest log record in bytes, after escaping; a longer one is cut
/// ([`crate::escape::capped`]).
pub const RECORD_MAX: usize = 4096;

/// A logger that makes every record one safe line before `inner` writes
/// it, and holds back records of a client over its [`LogBudget`]: see the
/// module docs.
struct Guarded<L> {
    inner: L,
}

impl<L: log::Log> log::Log for Guarded<L> {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let held_back = match CLIENT.try_with(|budget| budget.take()) {
            Ok(None) => return,
            Ok(Some(held_back)) => held_back,
            Err(_) => 0,
        };
        let text = crate::escape::escape(record.args().to_string());
        let text = crate::escape::capped(&text, RECORD_MAX);
        let note = match held_back {
            0 => String::new(),
            n => format!(" ({n} earlier record(s) of this user's connections not logged)"),
        };
        self.inner.log(
            &log::Record::builder()
                .args(format_args!("{text}{note}"))
                .level(record.level())
                .target(record.target())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build(),
        );
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

tokio::task_local! {
    /// The budget of the client whose connection the current task serves.
    static CLIENT: Arc<LogBudget>;
}

/// Run `future` (a client connection's task) with its log records drawn
/// from `budget`.
pub async fn as_client<F: std::future::Future>(budget: Arc<LogBudget>, future: F) -> F::Output {
    CLIENT.scope(budget, future).await
}

/// Records one user's connections may log at once: a token bucket of
/// [`LogBudget::BURST`] records, refilled at [`LogBudget::PER_SECOND`].
/// Records over it are counted and dropped; the next one logged says how
/// many were.
#[derive(Debug)]
pub struct LogBudget {
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    held_back: u64,
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget {
            state: Mutex::new(Bucket {
                tokens: Self::BURST,
                at: Instant::now(),
                held_back: 0,
            }),
        }
    }
}

impl LogBudget {
    /// Records logged at once before the rate applies.
    pub const BURST: f64 = 30.0;
    /// Records per second after the burst.
    pub const PER_SECOND: f64 = 2.0;

    /// Take one record's worth: `None` when over budget (counted), else
    /// how many records were held back since the last one logged.
    fn take(&self) -> Option<u64> {
        let mut bucket = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(bucket.at).as_secs_f64() * Self::PER_SECOND;
        bucket.tokens = (bucket.tokens + refill).min(Self::BURST);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            bucket.held_back += 1;
            return None;
        }
        bucket.tokens -= 1.0;
        Some(std::mem::take(&mut bucket.held_back))
    }
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
    fn a_budget_holds_back_a_flood_and_counts_it() {
        let budget = LogBudget::default();
        let burst = LogBudget::BURST as usize;
        for _ in 0..burst {
            assert_eq!(budget.take(), Some(0));
        }
        for _ in 0..100 {
            assert_eq!(budget.take(), None);
        }
        std::thread::sleep(Duration::from_secs_f64(1.0 / LogBudget::PER_SECOND));
        assert_eq!(budget.take(), Some(100), "the next record says how many");
    }

    #[test]
    fn priorities_are_syslog_severities() {
        assert_eq!(priority(log::Level::Error), 3);
        assert_eq!(priority(log::Level::Warn), 4);
        assert_eq!(priority(log::Level::Info), 6);
        assert_eq!(priority(log::Level::Debug), 7);
    }
}
