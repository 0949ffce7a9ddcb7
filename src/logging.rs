//! Where log records go: stderr in the foreground, syslog (facility
//! LOG_DAEMON) when daemonized. The level can change at run time
//! (SIGHUP) through `log::set_max_level`.

/// Install the logger.
///
/// Errors: daemonized and without a reachable syslog, the reason; records
/// are then dropped, and the launcher can say so.
pub fn init(foreground: bool, level: log::LevelFilter) -> Result<(), syslog::Error> {
    if foreground {
        env_logger::Builder::new()
            .filter_level(log::LevelFilter::Trace)
            .format_target(false)
            .init();
        log::set_max_level(level);
        return Ok(());
    }
    syslog::init_unix(syslog::Facility::LOG_DAEMON, level)
}
