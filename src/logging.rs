//! Where log records go: stderr in the foreground, syslog (facility
//! LOG_DAEMON) when daemonized, or a file ([`init_file`]) when syslog
//! cannot be reached. The level can change at run time
//! (SIGHUP) through `log::set_max_level`. When stderr is the journal's
//! stream (systemd's `JOURNAL_STREAM` names its device and inode),
//! records carry sd-daemon(3) priority prefixes (`<3>` error, `<4>`
//! warning, `<6>` info, `<7>` debug) and no timestamp of their own, so that
//! `journalctl -p err` selects them.

/// Install the logger.
///
/// Errors: daemonized and without a reachable syslog, the reason; records
/// are then dropped, and the launcher can say so.
pub fn init(foreground: bool, level: log::LevelFilter) -> Result<(), syslog::Error> {
    if foreground {
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
        return Ok(());
    }
    syslog::init_unix(syslog::Facility::LOG_DAEMON, level)
}

/// Name of the log file in the state directory that a daemon without a
/// reachable syslog writes.
pub const LOG_FILE_NAME: &str = "vidvard.log";

/// Log to the file `path` (appended to, created `0640`), with timestamps:
/// for a daemon whose syslog cannot be reached (no `/dev/log` in a
/// container or early at boot).
///
/// Errors: the file cannot be opened.
pub fn init_file(path: &std::path::Path, level: log::LevelFilter) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?;
    env_logger::Builder::new()
        .filter_level(log::LevelFilter::Trace)
        .format_target(false)
        .target(env_logger::Target::Pipe(Box::new(file)))
        .init();
    log::set_max_level(level);
    Ok(())
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
