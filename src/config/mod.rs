//! Settings of a running daemon: defaults, the configuration file, and the
//! part that SIGHUP may change.
//!
//! The file is TOML (`--config PATH`; by default `/etc/vidvard/vidvard.conf`
//! as root, else `${XDG_CONFIG_HOME:-~/.config}/vidvard/vidvard.conf`, used
//! when it exists). Command-line flags win over the file, the file over the
//! defaults. `main` builds a [`Config`]; nothing else reads flags, files or
//! the environment.
//!
//! This module owns [`Config`] and [`Settings`], what the daemon runs with,
//! and their listing for `--check-config`. Each other concern has a module of
//! its own, whose names are re-exported here: `tunables` (what SIGHUP
//! re-reads), `file` (reading the file), `seconds` (durations in range),
//! `variation` (the `[encode]` and `[effects]` tables), `hook`, `metrics`,
//! `shared` (the PostgreSQL queue), `programs` and `groups` (names looked up
//! on the system).

mod file;
mod groups;
mod hook;
mod metrics;
mod programs;
mod seconds;
mod shared;
mod tunables;
mod variation;

pub use file::{ConfigError, EffectsFile, EncodeFile, FileSettings, GroupSpec, default_file};
pub use groups::{DEFAULT_SOCKET_GROUP, GroupError, group_id};
pub use hook::{DEFAULT_HOOK_TIMEOUT, Hook};
pub use metrics::MetricsOutputs;
pub use programs::{ProgramError, find_program};
pub use seconds::{MAX_GRACE_SECS, OutOfRange, grace, lease_timeout, timeout};
pub use shared::{DEFAULT_LEASE_TIMEOUT, SharedQueue, host_name};
pub use tunables::{
    DEFAULT_GRACE, DEFAULT_MIN_FREE_MIB, DEFAULT_MIN_SSIM, DEFAULT_STALL_TIMEOUT, MAX_PARALLEL,
    PixelPath, Tunables, default_parallelism, reloadable_keys,
};

use crate::effects::Ranges;
use crate::ffmpeg::{EncodeSettings, RateControl};
use std::ops::RangeInclusive;
use std::path::PathBuf;

/// Everything the daemon needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Unix socket the daemon listens on.
    pub socket: PathBuf,
    /// Directory of the database file.
    pub state_dir: PathBuf,
    /// Pidfile, locked for the daemon's life.
    pub pidfile: PathBuf,
    /// The settings SIGHUP may change, as they are at start: the engine
    /// takes them over and keeps the one live copy
    /// ([`crate::engine::Engine::tunables`]).
    pub tunables: Tunables,
    /// System mode (root or the `vidvar` service user): clients are other
    /// users, so their access to inputs and outputs is checked, FFmpeg runs
    /// as the job's owner when the daemon is root, and the socket is shared
    /// with `socket_group`. User mode: only the daemon's user connects.
    pub system_mode: bool,
    /// Group allowed to connect in system mode (socket 0660, directory
    /// 0750); `None` keeps the socket to the daemon's user (0600/0700).
    pub socket_group: Option<u32>,
    /// What the engine runs with, fixed for the daemon's life.
    pub engine: Settings,
    /// Where the metrics are served for scrapers.
    pub metrics: MetricsOutputs,
}

/// The settings the engine runs with that SIGHUP does not change: the
/// programs, the encoding, the effect ranges, the shared queue and the
/// completion hook.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `ffmpeg` program (looked up in `PATH` when not absolute).
    pub ffmpeg: PathBuf,
    /// The `ffprobe` program.
    pub ffprobe: PathBuf,
    pub encode: EncodeSettings,
    /// Ranges the effects of new jobs are drawn from.
    pub effects: Ranges,
    /// The queue shared with other nodes in PostgreSQL (`database_url`);
    /// `None`: the SQLite file in `state_dir`.
    pub shared: Option<SharedQueue>,
    /// The completion hook (`on_job_end`); `None` when unset.
    pub hook: Option<Hook>,
}

impl Config {
    /// Defaults for the given paths.
    pub fn new(socket: PathBuf, state_dir: PathBuf, pidfile: PathBuf) -> Config {
        Config {
            socket,
            state_dir,
            pidfile,
            tunables: Tunables::default(),
            system_mode: crate::paths::is_system_mode(),
            socket_group: None,
            metrics: MetricsOutputs::default(),
            engine: Settings {
                ffmpeg: "ffmpeg".into(),
                ffprobe: "ffprobe".into(),
                encode: EncodeSettings::default(),
                effects: Ranges::default(),
                shared: None,
                hook: None,
            },
        }
    }

    /// Path of the database inside the state directory.
    pub fn database(&self) -> PathBuf {
        self.state_dir.join(crate::paths::DATABASE_NAME)
    }

    /// Where the queue is: the shared database, else [`Config::database`].
    pub fn queue(&self) -> crate::queue::Backend {
        match &self.engine.shared {
            Some(shared) => crate::queue::Backend::Postgres {
                database: Box::new(shared.database.clone()),
                node: shared.node.clone(),
            },
            None => crate::queue::Backend::Sqlite {
                path: self.database(),
            },
        }
    }

    /// The settings in force, one `key = value` line each, in the units of
    /// the configuration file (for `vidvard --check-config`).
    pub fn describe(&self) -> String {
        let t = &self.tunables;
        let e = &self.engine.encode;
        let r = &self.engine.effects;
        let range = |x: &RangeInclusive<f64>| format!("[{}, {}]", x.start(), x.end());
        let rate = match e.rate {
            RateControl::BitrateKbps(kbps) => format!("video_bitrate_kbps = {kbps}"),
            RateControl::Crf(crf) => format!("crf = {crf}"),
        };
        let lines = [
            format!(
                "mode = {:?}",
                if self.system_mode { "system" } else { "user" }
            ),
            format!("socket = {:?}", self.socket.display().to_string()),
            format!("state_dir = {:?}", self.state_dir.display().to_string()),
            format!("pidfile = {:?}", self.pidfile.display().to_string()),
            format!(
                "socket_group = {}",
                self.socket_group
                    .map_or("none (socket 0600)".into(), |g| g.to_string())
            ),
            format!("ffmpeg = {:?}", self.engine.ffmpeg.display().to_string()),
            format!("ffprobe = {:?}", self.engine.ffprobe.display().to_string()),
            t.settings()
                .map(|(key, value)| format!("{key} = {value}"))
                .join("\n"),
            match &self.engine.shared {
                Some(shared) => format!(
                    "database_url = {:?}\nnode_name = {:?}\nlease_timeout = {}",
                    crate::queue::postgres::describe(&shared.database.config),
                    shared.node.name,
                    shared.node.lease_timeout.as_secs_f64()
                ),
                None => format!("database = {:?}", self.database().display().to_string()),
            },
            match &self.engine.hook {
                Some(hook) => format!(
                    "on_job_end = {:?}\nhook_timeout = {}",
                    hook.argv,
                    hook.timeout.as_secs_f64()
                ),
                None => format!(
                    "on_job_end = none\nhook_timeout = {}",
                    DEFAULT_HOOK_TIMEOUT.as_secs_f64()
                ),
            },
            format!(
                "metrics_socket = {}\nmetrics_socket_group = {}\nmetrics_textfile = {}",
                self.metrics
                    .socket
                    .as_ref()
                    .map_or("none".into(), |p| format!("{:?}", p.display().to_string())),
                self.metrics
                    .socket_group
                    .map_or("none (socket 0600)".into(), |g| g.to_string()),
                self.metrics
                    .textfile
                    .as_ref()
                    .map_or("none".into(), |p| format!("{:?}", p.display().to_string())),
            ),
            "[encode]".into(),
            format!("video_codec = {:?}", e.video_codec),
            format!("preset = {:?}", e.preset),
            rate,
            format!(
                "frame_rate = {:?}",
                e.frame_rate.map_or("source".into(), |r| r.to_string())
            ),
            format!("audio_codec = {:?}", e.audio_codec),
            "[effects]".into(),
            format!("rotation = {}", range(&r.rotation)),
            format!("brightness = {}", range(&r.brightness)),
            format!("contrast = {}", range(&r.contrast)),
            format!("saturation = {}", range(&r.saturation)),
        ];
        lines.iter().map(|l| format!("{l}\n")).collect()
    }
}
