//! The completion hook's setting ([`Hook`]: `on_job_end`, `hook_timeout`)
//! and its checks: an absolute path to an executable program, a timeout in
//! range. Running it is the engine's (`engine::hooks`); this module starts
//! no process.

use super::file::{ConfigError, FileSettings};
use super::programs::is_executable_file;
use super::seconds::seconds_within;
use std::path::Path;
use std::time::Duration;

/// A program run once each time a job becomes final (`on_job_end`), as
/// the engine's [`crate::engine::hooks`] describes.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    /// Program (an absolute path) and arguments; no shell is involved.
    pub argv: Vec<String>,
    /// Longest run (`hook_timeout`); then its process group gets SIGTERM,
    /// and SIGKILL after the grace period.
    pub timeout: Duration,
}

/// Default `hook_timeout`.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(60);

impl FileSettings {
    /// The completion hook, if `on_job_end` is set.
    ///
    /// Errors: [`ConfigError::Value`] for an empty argv, a program that is
    /// not an absolute path or not an executable file, or a `hook_timeout`
    /// outside 1 s to 1 day.
    pub fn hook(&self, path: &Path) -> Result<Option<Hook>, ConfigError> {
        let bad = |key, reason: String| self.bad(path, key, reason);
        let timeout = match self.hook_timeout {
            Some(secs) => seconds_within(secs, 1.0, 86_400.0)
                .map_err(|e| bad("hook_timeout", e.to_string()))?,
            None => DEFAULT_HOOK_TIMEOUT,
        };
        let Some(argv) = &self.on_job_end else {
            return Ok(None);
        };
        match argv.first() {
            None => Err(bad(
                "on_job_end",
                "give the program and its arguments".into(),
            )),
            Some(program) if !Path::new(program).is_absolute() => Err(bad(
                "on_job_end",
                format!("{program:?} is not an absolute path (no shell or PATH is used)"),
            )),
            Some(_) if argv.iter().any(|a| a.contains('\0')) => {
                Err(bad("on_job_end", "an argument holds a NUL byte".into()))
            }
            Some(program) if !is_executable_file(Path::new(program)) => Err(bad(
                "on_job_end",
                format!("{program:?} is not an executable file"),
            )),
            Some(_) => Ok(Some(Hook {
                argv: argv.clone(),
                timeout,
            })),
        }
    }
}
