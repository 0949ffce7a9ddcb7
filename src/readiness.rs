//! Telling whoever started the daemon that it is ready, or why it is not.
//!
//! Daemonized, the launching process waits on a pipe (daemonize's own
//! parent always exits 0, so it cannot carry the outcome): the daemon writes
//! any `WARN <message>` lines, then `READY` or `ERROR <reason>`, and closes
//! it; the launcher prints the warnings, then exits 0 or prints the reason
//! and exits 1. A pipe closed with nothing written means the
//! daemon died during startup. Under systemd (`NOTIFY_SOCKET` set) the
//! daemon also sends `READY=1` and, at shutdown, `STOPPING=1`
//! (sd_notify(3)).

use std::io::{PipeReader, PipeWriter, Read, Write};

/// The daemon's side.
pub struct Notifier {
    pipe: Option<PipeWriter>,
}

impl Notifier {
    /// `pipe`: the write end of the readiness pipe, when daemonized.
    pub fn new(pipe: Option<PipeWriter>) -> Notifier {
        Notifier { pipe }
    }

    /// Report success to the launcher and to systemd.
    pub fn ready(&mut self) {
        self.send("READY");
        if let Err(err) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
            log::warn!("cannot notify systemd: {err}");
        }
    }

    /// Report a startup failure to the launcher.
    pub fn failed(&mut self, reason: &str) {
        self.send(&format!("ERROR {reason}"));
    }

    /// Tell the launcher something it should print before it returns (one
    /// line), e.g. where logs go when syslog cannot be reached.
    pub fn warn(&mut self, message: &str) {
        if let Some(pipe) = &mut self.pipe {
            let _ = writeln!(pipe, "WARN {}", message.replace('\n', " "));
        }
    }

    fn send(&mut self, message: &str) {
        if let Some(mut pipe) = self.pipe.take() {
            // The launcher may be gone (killed); nothing to do then.
            let _ = pipe.write_all(message.as_bytes());
        }
    }
}

/// Tell systemd the daemon is stopping.
pub fn stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

/// Why the daemon did not start, as the launcher learns it.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot read the daemon's startup report: {0}")]
    Read(#[source] std::io::Error),
    /// The daemon's own reason.
    #[error("{0}")]
    Failed(String),
    #[error("the daemon exited during startup (see the system log)")]
    Died,
}

/// The launcher's side: wait until the daemon reports; `warned` gets each
/// warning first. `Ok(())` when it is ready.
///
/// Errors: [`StartupError`], with the daemon's reason when it gave one.
pub fn wait(mut pipe: PipeReader, mut warned: impl FnMut(&str)) -> Result<(), StartupError> {
    let mut report = String::new();
    pipe.read_to_string(&mut report)
        .map_err(StartupError::Read)?;
    // Warning lines first; the rest, newlines and all, is the outcome.
    let mut message = report.as_str();
    while let Some((warning, rest)) = message
        .strip_prefix("WARN ")
        .and_then(|r| r.split_once('\n'))
    {
        warned(warning);
        message = rest;
    }
    match message.split_once(' ').unwrap_or((message, "")) {
        ("READY", _) => Ok(()),
        ("ERROR", reason) => Err(StartupError::Failed(reason.to_string())),
        _ => Err(StartupError::Died),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_error_and_silence_are_told_apart() {
        let (r, w) = std::io::pipe().unwrap();
        Notifier::new(Some(w)).ready();
        assert!(wait(r, |_| {}).is_ok());

        let (r, w) = std::io::pipe().unwrap();
        Notifier::new(Some(w)).failed("already running (pid 7)");
        assert_eq!(
            wait(r, |_| {}).unwrap_err().to_string(),
            "already running (pid 7)"
        );

        let (r, w) = std::io::pipe().unwrap();
        drop(w);
        assert!(matches!(wait(r, |_| {}), Err(StartupError::Died)));
        // Warnings come first, and do not decide the outcome.
        let (r, w) = std::io::pipe().unwrap();
        let mut notifier = Notifier::new(Some(w));
        notifier.warn("logging to /var/lib/vidvard/vidvard.log");
        notifier.failed("cannot listen:\nsecond line");
        drop(notifier);
        let mut warnings = Vec::new();
        let outcome = wait(r, |w| warnings.push(w.to_string()));
        assert_eq!(
            outcome.unwrap_err().to_string(),
            "cannot listen:\nsecond line"
        );
        assert_eq!(warnings, ["logging to /var/lib/vidvard/vidvard.log"]);
    }
}
