//! Settings of a running daemon: defaults, the configuration file, and the
//! part that SIGHUP may change.
//!
//! The file is TOML (`--config PATH`; by default `/etc/vidvard/vidvard.conf`
//! as root, else `${XDG_CONFIG_HOME:-~/.config}/vidvard/vidvard.conf`, used
//! when it exists). Command-line flags win over the file, the file over the
//! defaults. `main` builds a [`Config`]; nothing else reads flags, files or
//! the environment.

use crate::ffmpeg::EncodeSettings;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Grace period between SIGTERM and SIGKILL when stopping FFmpeg.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(2);
/// Longest grace period accepted, seconds.
pub const MAX_GRACE_SECS: f64 = 3600.0;
/// Time without progress after which an FFmpeg process counts as stalled.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Free space an output filesystem must have for a variation to start, MiB.
pub const DEFAULT_MIN_FREE_MIB: u64 = 256;

/// Settings that SIGHUP re-reads without interrupting running work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tunables {
    /// FFmpeg processes running at once, at least 1.
    pub max_parallel: usize,
    /// Time between SIGTERM and SIGKILL when FFmpeg is stopped.
    pub grace: Duration,
    /// An FFmpeg process whose encoded media time has not advanced for this
    /// long is stopped and its variation fails as stalled.
    pub stall_timeout: Duration,
    /// A variation does not start when its output filesystem has fewer free
    /// bytes than this (statvfs(3) `f_bavail * f_frsize`).
    pub min_free_bytes: u64,
    pub log_level: log::LevelFilter,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            max_parallel: default_parallelism(),
            grace: DEFAULT_GRACE,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            min_free_bytes: DEFAULT_MIN_FREE_MIB << 20,
            log_level: log::LevelFilter::Info,
        }
    }
}

/// Everything the daemon needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Unix socket the daemon listens on.
    pub socket: PathBuf,
    /// Directory of the database file.
    pub state_dir: PathBuf,
    /// Pidfile, locked for the daemon's life.
    pub pidfile: PathBuf,
    /// The `ffmpeg` program (looked up in `PATH` when not absolute).
    pub ffmpeg: PathBuf,
    /// The `ffprobe` program.
    pub ffprobe: PathBuf,
    pub encode: EncodeSettings,
    pub tunables: Tunables,
    /// System mode (root or the `vidvar` service user): clients are other
    /// users, so their access to inputs and outputs is checked, FFmpeg runs
    /// as the job's owner when the daemon is root, and the socket is shared
    /// with `socket_group`. User mode: only the daemon's user connects.
    pub system_mode: bool,
    /// Group allowed to connect in system mode (socket 0660, directory
    /// 0750); `None` keeps the socket to the daemon's user (0600/0700).
    pub socket_group: Option<u32>,
}

impl Config {
    /// Defaults for the given paths.
    pub fn new(socket: PathBuf, state_dir: PathBuf, pidfile: PathBuf) -> Config {
        Config {
            socket,
            state_dir,
            pidfile,
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            encode: EncodeSettings::default(),
            tunables: Tunables::default(),
            system_mode: crate::paths::is_system_mode(),
            socket_group: None,
        }
    }

    /// Path of the database inside the state directory.
    pub fn database(&self) -> PathBuf {
        self.state_dir.join(crate::paths::DATABASE_NAME)
    }
}

/// The number of CPU cores available to this process.
pub fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The configuration file's keys; every one optional.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub socket: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub pidfile: Option<PathBuf>,
    pub ffmpeg: Option<PathBuf>,
    pub ffprobe: Option<PathBuf>,
    /// Group name or number allowed to connect in system mode.
    pub socket_group: Option<String>,
    pub max_parallel: Option<u32>,
    /// Seconds.
    pub grace_period: Option<f64>,
    /// Seconds.
    pub stall_timeout: Option<f64>,
    /// MiB.
    pub min_free_space_mib: Option<u64>,
    pub log_level: Option<String>,
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The message of the toml crate names line and column.
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}: {key}: {reason}", path.display())]
    Value {
        path: PathBuf,
        key: &'static str,
        reason: String,
    },
}

impl FileSettings {
    /// Read `path`. When `required` is false a missing file gives defaults.
    ///
    /// Errors: [`ConfigError::Read`], [`ConfigError::Parse`] for bad TOML,
    /// an unknown key or a value of the wrong type (with line and column).
    pub fn load(path: &Path, required: bool) -> Result<FileSettings, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if !required && err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FileSettings::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        toml::from_str(&text).map_err(|err| ConfigError::Parse {
            path: path.to_path_buf(),
            message: err.to_string().trim_end().to_string(),
        })
    }

    /// The tunables this file sets over `base`.
    ///
    /// Errors: [`ConfigError::Value`] for a value out of range.
    pub fn tunables(&self, path: &Path, base: Tunables) -> Result<Tunables, ConfigError> {
        let bad = |key, reason: String| ConfigError::Value {
            path: path.to_path_buf(),
            key,
            reason,
        };
        let mut t = base;
        if let Some(n) = self.max_parallel {
            if !(1..=256).contains(&n) {
                return Err(bad("max_parallel", format!("{n} is not in 1..=256")));
            }
            t.max_parallel = n as usize;
        }
        if let Some(secs) = self.grace_period {
            t.grace = grace(secs).map_err(|reason| bad("grace_period", reason))?;
        }
        if let Some(secs) = self.stall_timeout {
            t.stall_timeout = stall_timeout(secs).map_err(|reason| bad("stall_timeout", reason))?;
        }
        if let Some(mib) = self.min_free_space_mib {
            t.min_free_bytes = mib.saturating_mul(1 << 20);
        }
        if let Some(level) = &self.log_level {
            t.log_level = level.parse().map_err(|_| {
                bad(
                    "log_level",
                    format!("{level:?} is not one of off, error, warn, info, debug, trace"),
                )
            })?;
        }
        Ok(t)
    }
}

/// A grace period from seconds, 0..=[`MAX_GRACE_SECS`].
pub fn grace(secs: f64) -> Result<Duration, String> {
    if secs.is_finite() && (0.0..=MAX_GRACE_SECS).contains(&secs) {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!(
            "{secs} is not between 0 and {MAX_GRACE_SECS} seconds"
        ))
    }
}

/// A stall timeout from seconds, 1..=86400.
pub fn stall_timeout(secs: f64) -> Result<Duration, String> {
    if secs.is_finite() && (1.0..=86_400.0).contains(&secs) {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!("{secs} is not between 1 and 86400 seconds"))
    }
}

/// Name of the system mode's socket group, when the group exists.
pub const DEFAULT_SOCKET_GROUP: &str = "vidvar";

/// A group by name or number.
///
/// Errors: a message naming the group when no such group exists.
pub fn group_id(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("no such group: {group}")),
        Err(err) => Err(format!("cannot look up group {group}: {err}")),
    }
}

/// Default configuration file path.
pub fn default_file() -> PathBuf {
    if crate::paths::is_system_mode() {
        return PathBuf::from("/etc/vidvard/vidvard.conf");
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("/etc"));
    base.join("vidvard/vidvard.conf")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileSettings, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn keys_override_the_base() {
        let f = parse("max_parallel = 3\ngrace_period = 0.5\nlog_level = \"debug\"\n").unwrap();
        let t = f.tunables(Path::new("x"), Tunables::default()).unwrap();
        assert_eq!(t.max_parallel, 3);
        assert_eq!(t.grace, Duration::from_millis(500));
        assert_eq!(t.log_level, log::LevelFilter::Debug);
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_line() {
        let err = parse("max_parallel = 2\nmax_paralel = 3\n").unwrap_err();
        assert!(
            err.contains("line 2") && err.contains("max_paralel"),
            "{err}"
        );
        let err = parse("grace_period = \"soon\"\n").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for text in [
            "max_parallel = 0",
            "grace_period = -1.0",
            "log_level = \"loud\"",
        ] {
            let f = parse(text).unwrap();
            let err = f
                .tunables(Path::new("v.conf"), Tunables::default())
                .unwrap_err();
            assert!(err.to_string().starts_with("v.conf: "), "{err}");
        }
    }

    #[test]
    fn a_missing_optional_file_gives_defaults() {
        let f = FileSettings::load(Path::new("/nonexistent/vidvard.conf"), false).unwrap();
        assert_eq!(f, FileSettings::default());
        assert!(FileSettings::load(Path::new("/nonexistent/vidvard.conf"), true).is_err());
    }
}
