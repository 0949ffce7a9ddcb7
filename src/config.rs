//! Settings of a running daemon, with their defaults.
//!
//! Built from the command line by `main`; everything else takes a
//! [`Config`] and never reads flags or the environment itself.

use crate::ffmpeg::EncodeSettings;
use std::path::PathBuf;
use std::time::Duration;

/// Grace period between SIGTERM and SIGKILL when stopping FFmpeg.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(2);

/// Everything the daemon needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Unix socket the daemon listens on.
    pub socket: PathBuf,
    /// Directory of the database file.
    pub state_dir: PathBuf,
    /// Pidfile, locked for the daemon's life.
    pub pidfile: PathBuf,
    /// FFmpeg processes running at once, at least 1.
    pub max_parallel: usize,
    /// Time between SIGTERM and SIGKILL when FFmpeg is stopped.
    pub grace: Duration,
    /// The `ffmpeg` program (looked up in `PATH` when not absolute).
    pub ffmpeg: PathBuf,
    /// The `ffprobe` program.
    pub ffprobe: PathBuf,
    pub encode: EncodeSettings,
}

impl Config {
    /// Defaults for the given paths: one FFmpeg process per CPU core.
    pub fn new(socket: PathBuf, state_dir: PathBuf, pidfile: PathBuf) -> Config {
        Config {
            socket,
            state_dir,
            pidfile,
            max_parallel: default_parallelism(),
            grace: DEFAULT_GRACE,
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            encode: EncodeSettings::default(),
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
