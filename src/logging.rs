//! Where log records go: stderr in the foreground, syslog (facility
//! LOG_DAEMON) when daemonized. The level can change at run time
//! (SIGHUP) through `log::set_max_level`.

/// Install the logger. Daemonized and without a reachable syslog, records
/// are dropped and the reason is returned so the launcher can print it.
pub fn init(foreground: bool, level: log::LevelFilter) -> Result<(), String> {
    if foreground {
        env_logger::Builder::new()
            .filter_level(log::LevelFilter::Trace)
            .format_target(false)
            .init();
        log::set_max_level(level);
        return Ok(());
    }
    syslog::init_unix(syslog::Facility::LOG_DAEMON, level)
        .map_err(|err| format!("syslog is not reachable, logs are dropped: {err}"))
}
