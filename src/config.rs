//! Settings of a running daemon: defaults, the configuration file, and the
//! part that SIGHUP may change.
//!
//! The file is TOML (`--config PATH`; by default `/etc/vidvard/vidvard.conf`
//! as root, else `${XDG_CONFIG_HOME:-~/.config}/vidvard/vidvard.conf`, used
//! when it exists). Command-line flags win over the file, the file over the
//! defaults. `main` builds a [`Config`]; nothing else reads flags, files or
//! the environment.

use crate::effects::Ranges;
use crate::ffmpeg::{EncodeSettings, RateControl};
use crate::job::FrameRate;
use crate::queue::postgres::NodeConfig;
use serde::Deserialize;
use std::ops::RangeInclusive;
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
/// Lowest SSIM a sampled frame of an output may have against its reference
/// picture by default: calibrated on the v1 effect ranges (honest
/// variations of real-looking and lavfi test inputs score 0.86 to 0.99, a
/// black, frozen, green or other video 0.0 to 0.79; README, "Quality
/// check").
pub const DEFAULT_MIN_SSIM: f64 = 0.83;

/// Settings that SIGHUP re-reads without interrupting running work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tunables {
    /// Slots of work running at once (a probe, or one variation's encode:
    /// a lone FFmpeg or its share of a pipeline); 0 takes no new work.
    pub max_parallel: usize,
    /// Time between SIGTERM and SIGKILL when FFmpeg is stopped.
    pub grace: Duration,
    /// An FFmpeg process whose encoded media time has not advanced for this
    /// long is stopped and its variation fails as stalled.
    pub stall_timeout: Duration,
    /// A variation does not start when its output filesystem has fewer free
    /// bytes than this (statvfs(3) `f_bavail * f_frsize`).
    pub min_free_bytes: u64,
    /// Records of final jobs older than this are pruned hourly; `None`
    /// keeps them. Output files are never deleted.
    pub retention: Option<Duration>,
    pub log_level: log::LevelFilter,
    /// The quality check: lowest SSIM a sampled frame of an output may
    /// have (0..=1); `None` when the check is off (`quality_check =
    /// false`): sampled frames must still decode, but are not compared.
    pub min_ssim: Option<f64>,
    /// Who applies the effects to the pictures (`pixel_path`).
    pub pixel_path: PixelPath,
}

/// Who applies the effects (`pixel_path`; see README's "The pixel path").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelPath {
    /// One FFmpeg decodes each input once for a batch of its variations,
    /// `vidvar-stage` rotates and equalizes, one FFmpeg per variation
    /// encodes (`"vidvar"`, the default).
    Vidvar,
    /// One FFmpeg per variation decodes, applies FFmpeg's `rotate` and
    /// `eq`, and encodes (`"ffmpeg"`).
    Ffmpeg,
}

impl PixelPath {
    /// The configuration file's name of it.
    pub fn as_str(self) -> &'static str {
        match self {
            PixelPath::Vidvar => "vidvar",
            PixelPath::Ffmpeg => "ffmpeg",
        }
    }
}

impl Tunables {
    /// Every key of the configuration file that SIGHUP re-reads, with its
    /// value in the file's units (`none (...)` when unset): the one list
    /// that `vidvard --help`, the reload's log line and `--check-config`
    /// name them from.
    pub fn settings(&self) -> [(&'static str, String); 9] {
        [
            ("max_parallel", self.max_parallel.to_string()),
            ("grace_period", self.grace.as_secs_f64().to_string()),
            (
                "stall_timeout",
                self.stall_timeout.as_secs_f64().to_string(),
            ),
            (
                "min_free_space_mib",
                (self.min_free_bytes >> 20).to_string(),
            ),
            (
                "retention_days",
                self.retention
                    .map_or("none (keep)".into(), |d| (d.as_secs() / 86_400).to_string()),
            ),
            (
                "log_level",
                format!("{:?}", self.log_level.as_str().to_lowercase()),
            ),
            ("quality_check", self.min_ssim.is_some().to_string()),
            (
                "min_ssim",
                self.min_ssim
                    .map_or("none (no comparison)".into(), |f| f.to_string()),
            ),
            ("pixel_path", format!("{:?}", self.pixel_path.as_str())),
        ]
    }
}

/// The keys SIGHUP re-reads, in order: those of [`Tunables::settings`].
pub fn reloadable_keys() -> Vec<&'static str> {
    Tunables::default().settings().map(|(key, _)| key).to_vec()
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            max_parallel: default_parallelism(PixelPath::Vidvar),
            grace: DEFAULT_GRACE,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            min_free_bytes: DEFAULT_MIN_FREE_MIB << 20,
            retention: None,
            log_level: log::LevelFilter::Info,
            min_ssim: Some(DEFAULT_MIN_SSIM),
            pixel_path: PixelPath::Vidvar,
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

/// Where the metrics go besides `vidvarctl metrics` (see
/// [`crate::exporter`]); fixed for the daemon's life.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsOutputs {
    /// `metrics_socket`: a Unix socket answering `GET /metrics`.
    pub socket: Option<PathBuf>,
    /// `metrics_socket_group`: the group the socket is 0660 to; `None`:
    /// 0600.
    pub socket_group: Option<u32>,
    /// `metrics_textfile`: the file for node_exporter's textfile
    /// collector.
    pub textfile: Option<PathBuf>,
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

/// A queue shared by several nodes in PostgreSQL, and this node in it.
#[derive(Debug, Clone)]
pub struct SharedQueue {
    /// Connection settings from `database_url` (their `Debug` form hides
    /// the password).
    pub database: crate::queue::postgres::Database,
    pub node: NodeConfig,
}

/// Default `lease_timeout`.
pub const DEFAULT_LEASE_TIMEOUT: Duration = Duration::from_secs(30);

/// `lease_timeout` in range: 3 s to 1 hour (the heartbeat renews leases
/// every second).
pub fn lease_timeout(secs: f64) -> Result<Duration, OutOfRange> {
    seconds_within(secs, 3.0, 3600.0)
}

/// This machine's host name: the default node name.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into())
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

/// Whether `path` is a regular file (after symlinks) with an execute bit.
fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Slots per CPU core by default with the pixel path: a variation there
/// is one encoder sharing a decoder and a stage, about a third of a core,
/// and enough slots at once let a file's variations share one decode
/// while other pipelines keep the cores busy (12 slots on 2 cores were as
/// fast as 16 and faster than 4 to 10 in `vidvar_bench -- --pixel-path
/// --sweep`; README "Performance").
const SLOTS_PER_CORE: usize = 6;

/// The default `max_parallel`: the number of CPU cores available to this
/// process, times [`SLOTS_PER_CORE`] with the pixel path (one FFmpeg per
/// variation keeps a core busy, so one slot per core with
/// `pixel_path = "ffmpeg"`); at most [`MAX_PARALLEL`].
pub fn default_parallelism(pixel_path: PixelPath) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let slots = match pixel_path {
        PixelPath::Vidvar => cores * SLOTS_PER_CORE,
        PixelPath::Ffmpeg => cores,
    };
    slots.min(MAX_PARALLEL)
}

/// The largest `max_parallel` the configuration and `--max-parallel` take.
pub const MAX_PARALLEL: usize = 256;

/// The configuration file's keys; every one optional.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub socket: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub pidfile: Option<PathBuf>,
    pub ffmpeg: Option<PathBuf>,
    pub ffprobe: Option<PathBuf>,
    /// Group name or number allowed to connect.
    pub socket_group: Option<GroupSpec>,
    pub max_parallel: Option<u32>,
    /// Seconds.
    pub grace_period: Option<f64>,
    /// Seconds.
    pub stall_timeout: Option<f64>,
    /// MiB.
    pub min_free_space_mib: Option<u64>,
    /// Days after which records of finished jobs are pruned.
    pub retention_days: Option<u64>,
    pub log_level: Option<String>,
    /// Compare outputs with their reference pictures (default true).
    pub quality_check: Option<bool>,
    /// Lowest SSIM of a sampled frame, 0..=1.
    pub min_ssim: Option<f64>,
    /// `"vidvar"` or `"ffmpeg"`.
    pub pixel_path: Option<String>,
    /// `postgresql://` URL of a queue shared with other nodes.
    pub database_url: Option<String>,
    pub node_name: Option<String>,
    /// Seconds.
    pub lease_timeout: Option<f64>,
    /// Program and arguments run when a job becomes final.
    pub on_job_end: Option<Vec<String>>,
    /// Seconds.
    pub hook_timeout: Option<f64>,
    /// Unix socket serving `GET /metrics`.
    pub metrics_socket: Option<PathBuf>,
    /// Group name or number the metrics socket is 0660 to.
    pub metrics_socket_group: Option<GroupSpec>,
    /// File rewritten every 15 s for node_exporter's textfile collector.
    pub metrics_textfile: Option<PathBuf>,
    pub encode: Option<EncodeFile>,
    pub effects: Option<EffectsFile>,
    /// Where each key is set, for messages (not a key of the file).
    #[serde(skip)]
    lines: KeyLines,
}

/// A group as the file may give it: `"video"` or `1001`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum GroupSpec {
    Id(u32),
    Name(String),
}

impl std::fmt::Display for GroupSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupSpec::Id(gid) => write!(f, "{gid}"),
            GroupSpec::Name(name) => f.write_str(name),
        }
    }
}

/// The `[encode]` table.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EncodeFile {
    pub video_codec: Option<String>,
    pub preset: Option<String>,
    pub video_bitrate_kbps: Option<u32>,
    pub crf: Option<u8>,
    /// `N` or `N/D` frames per second, or `"source"`.
    pub frame_rate: Option<String>,
    pub audio_codec: Option<String>,
}

/// The `[effects]` table: `[min, max]` per effect.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EffectsFile {
    pub rotation: Option<[f64; 2]>,
    pub brightness: Option<[f64; 2]>,
    pub contrast: Option<[f64; 2]>,
    pub saturation: Option<[f64; 2]>,
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
    /// A value out of range, with the line that sets it when known.
    #[error("{}: {}{key}: {reason}", path.display(), .line.map_or(String::new(), |n| format!("line {n}: ")))]
    Value {
        path: PathBuf,
        line: Option<usize>,
        key: &'static str,
        reason: String,
    },
}

/// Where a configuration file sets each key: 1-based line numbers by
/// dotted key (`min_ssim`, `encode.crf`), so that an out-of-range value is
/// reported at its line as a malformed one is. Bare keys only (`key =` at
/// the start of a line, under a `[table]` header); a key written another
/// way is reported without a line.
#[derive(Debug, Default, Clone, PartialEq)]
struct KeyLines(std::collections::BTreeMap<String, usize>);

impl KeyLines {
    fn scan(text: &str) -> KeyLines {
        let bare = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        let mut table = String::new();
        let mut lines = std::collections::BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if let Some(header) = line.strip_prefix('[').and_then(|l| l.split_once(']')) {
                let name = header.0.trim();
                if bare(name) {
                    table = format!("{name}.");
                }
                continue;
            }
            if let Some((key, _)) = line.split_once('=')
                && bare(key.trim())
            {
                lines
                    .entry(format!("{table}{}", key.trim()))
                    .or_insert(i + 1);
            }
        }
        KeyLines(lines)
    }
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
        FileSettings::from_text(&text).map_err(|err| ConfigError::Parse {
            path: path.to_path_buf(),
            // Not the toml crate's own rendering, which quotes the line: it
            // may hold a password, even under a misspelt key.
            message: {
                let at = err.span().map_or(0, |s| s.start).min(text.len());
                let line = text[..at].matches('\n').count() + 1;
                let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {column}: {}", err.message())
            },
        })
    }

    /// Parse the TOML `text` of a configuration file, noting where each key
    /// is set.
    fn from_text(text: &str) -> Result<FileSettings, toml::de::Error> {
        let settings: FileSettings = toml::from_str(text)?;
        Ok(FileSettings {
            lines: KeyLines::scan(text),
            ..settings
        })
    }

    /// The error for `key` (dotted, as `encode.crf`) set to a value out of
    /// range in the file at `path`, naming its line.
    fn bad(&self, path: &Path, key: &'static str, reason: impl ToString) -> ConfigError {
        ConfigError::Value {
            path: path.to_path_buf(),
            line: self.lines.0.get(key).copied(),
            key,
            reason: reason.to_string(),
        }
    }

    /// The tunables this file sets over `base`.
    ///
    /// Errors: [`ConfigError::Value`] for a value out of range.
    pub fn tunables(&self, path: &Path, base: Tunables) -> Result<Tunables, ConfigError> {
        let bad = |key, reason: String| self.bad(path, key, reason);
        let mut t = base;
        if let Some(n) = self.max_parallel {
            if n as usize > MAX_PARALLEL {
                return Err(bad(
                    "max_parallel",
                    format!("{n} is not in 0..={MAX_PARALLEL}"),
                ));
            }
            t.max_parallel = n as usize;
        }
        if let Some(secs) = self.grace_period {
            t.grace = grace(secs).map_err(|e| bad("grace_period", e.to_string()))?;
        }
        if let Some(secs) = self.stall_timeout {
            t.stall_timeout =
                stall_timeout(secs).map_err(|e| bad("stall_timeout", e.to_string()))?;
        }
        if let Some(mib) = self.min_free_space_mib {
            t.min_free_bytes = mib.saturating_mul(1 << 20);
        }
        if let Some(days) = self.retention_days {
            if !(1..=36_500).contains(&days) {
                return Err(bad("retention_days", format!("{days} is not in 1..=36500")));
            }
            t.retention = Some(Duration::from_secs(days.saturating_mul(86_400)));
        }
        if let Some(level) = &self.log_level {
            t.log_level = level.parse().map_err(|_| {
                bad(
                    "log_level",
                    format!("{level:?} is not one of off, error, warn, info, debug, trace"),
                )
            })?;
        }
        if let Some(floor) = self.min_ssim {
            if !(0.0..=1.0).contains(&floor) {
                return Err(bad("min_ssim", format!("{floor} is not in 0..=1")));
            }
            t.min_ssim = Some(floor);
        }
        if self.quality_check == Some(false) {
            t.min_ssim = None;
        }
        if let Some(path) = &self.pixel_path {
            t.pixel_path = [PixelPath::Vidvar, PixelPath::Ffmpeg]
                .into_iter()
                .find(|p| p.as_str() == path)
                .ok_or_else(|| bad("pixel_path", format!("{path:?} is not vidvar or ffmpeg")))?;
            if self.max_parallel.is_none() {
                t.max_parallel = default_parallelism(t.pixel_path);
            }
        }
        Ok(t)
    }
}

impl FileSettings {
    /// Where the metrics are served: `metrics_socket` (with
    /// `metrics_socket_group`) and `metrics_textfile`.
    ///
    /// Errors: [`ConfigError::Value`] for a path that is not absolute, a
    /// group that does not exist, or a group without a socket.
    pub fn metrics(&self, path: &Path) -> Result<MetricsOutputs, ConfigError> {
        let bad = |key, reason: String| self.bad(path, key, reason);
        let absolute = |key, value: &Option<PathBuf>| match value {
            Some(p) if !p.is_absolute() => {
                Err(bad(key, format!("{} is not an absolute path", p.display())))
            }
            other => Ok(other.clone()),
        };
        let socket = absolute("metrics_socket", &self.metrics_socket)?;
        let textfile = absolute("metrics_textfile", &self.metrics_textfile)?;
        let socket_group = match &self.metrics_socket_group {
            Some(_) if socket.is_none() => {
                return Err(bad("metrics_socket_group", "set metrics_socket too".into()));
            }
            Some(group) => Some(
                group_id(&group.to_string())
                    .map_err(|e| bad("metrics_socket_group", e.to_string()))?,
            ),
            None => None,
        };
        Ok(MetricsOutputs {
            socket,
            socket_group,
            textfile,
        })
    }

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

    /// Encoding settings: the defaults with the `[encode]` table over them.
    ///
    /// Errors: [`ConfigError::Value`] for both a bitrate and a CRF, values
    /// out of range, or a frame rate that is neither `N`, `N/D` nor
    /// `"source"`.
    pub fn encode(&self, path: &Path) -> Result<EncodeSettings, ConfigError> {
        let bad = |key, reason: String| self.bad(path, key, reason);
        let mut e = EncodeSettings::default();
        let Some(f) = &self.encode else {
            return Ok(e);
        };
        for (key, value, slot) in [
            ("encode.video_codec", &f.video_codec, &mut e.video_codec),
            ("encode.preset", &f.preset, &mut e.preset),
            ("encode.audio_codec", &f.audio_codec, &mut e.audio_codec),
        ] {
            if let Some(value) = value {
                if value.is_empty() || value.starts_with('-') || value.contains(char::is_whitespace)
                {
                    return Err(bad(key, format!("{value:?} is not a name")));
                }
                *slot = value.clone();
            }
        }
        e.rate = match (f.video_bitrate_kbps, f.crf) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "encode.crf",
                    "set video_bitrate_kbps or crf, not both".into(),
                ));
            }
            (Some(kbps), None) if (1..=1_000_000).contains(&kbps) => RateControl::BitrateKbps(kbps),
            (Some(kbps), None) => {
                return Err(bad(
                    "encode.video_bitrate_kbps",
                    format!("{kbps} is not in 1..=1000000"),
                ));
            }
            (None, Some(crf)) if crf <= 51 => RateControl::Crf(crf),
            (None, Some(crf)) => return Err(bad("encode.crf", format!("{crf} is not in 0..=51"))),
            (None, None) => e.rate,
        };
        if let Some(rate) = &f.frame_rate {
            e.frame_rate = match rate.as_str() {
                "source" => None,
                r => match FrameRate::parse(r) {
                    Some(rate) => Some(rate),
                    None => {
                        return Err(bad(
                            "encode.frame_rate",
                            format!("{r:?} is not N, N/D or \"source\""),
                        ));
                    }
                },
            };
        }
        Ok(e)
    }

    /// Effect ranges: the v1 ranges with the `[effects]` table over them.
    ///
    /// Errors: [`ConfigError::Value`] for `min > max` or bounds outside
    /// what FFmpeg's filters take (eq(1): brightness -1..1, contrast
    /// -1000..1000, saturation 0..3; rotation within one turn).
    pub fn effects(&self, path: &Path) -> Result<Ranges, ConfigError> {
        let mut r = Ranges::default();
        let Some(f) = &self.effects else {
            return Ok(r);
        };
        let turn = std::f64::consts::TAU;
        for (key, value, limits, slot) in [
            (
                "effects.rotation",
                f.rotation,
                -turn..=turn,
                &mut r.rotation,
            ),
            (
                "effects.brightness",
                f.brightness,
                -1.0..=1.0,
                &mut r.brightness,
            ),
            (
                "effects.contrast",
                f.contrast,
                -1000.0..=1000.0,
                &mut r.contrast,
            ),
            (
                "effects.saturation",
                f.saturation,
                0.0..=3.0,
                &mut r.saturation,
            ),
        ] {
            if let Some([lo, hi]) = value {
                *slot = range(lo, hi, &limits).map_err(|reason| self.bad(path, key, reason))?;
            }
        }
        Ok(r)
    }
}

/// Why an effect range `[lo, hi]` from the configuration file is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum BadRange {
    #[error("[{lo}, {hi}] is not within [{min}, {max}]")]
    OutOfLimits {
        lo: f64,
        hi: f64,
        min: f64,
        max: f64,
    },
    #[error("[{lo}, {hi}]: the minimum is above the maximum")]
    Reversed { lo: f64, hi: f64 },
}

fn range(lo: f64, hi: f64, limits: &RangeInclusive<f64>) -> Result<RangeInclusive<f64>, BadRange> {
    if !(limits.contains(&lo) && limits.contains(&hi)) {
        return Err(BadRange::OutOfLimits {
            lo,
            hi,
            min: *limits.start(),
            max: *limits.end(),
        });
    }
    if lo > hi {
        return Err(BadRange::Reversed { lo, hi });
    }
    Ok(lo..=hi)
}

/// A number of seconds outside the range a setting allows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{value} is not between {min} and {max} seconds")]
pub struct OutOfRange {
    pub value: f64,
    pub min: f64,
    pub max: f64,
}

/// `secs` as a duration when it is within `min..=max` seconds.
fn seconds_within(secs: f64, min: f64, max: f64) -> Result<Duration, OutOfRange> {
    if secs.is_finite() && (min..=max).contains(&secs) {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(OutOfRange {
            value: secs,
            min,
            max,
        })
    }
}

/// A grace period from seconds, 0..=[`MAX_GRACE_SECS`].
pub fn grace(secs: f64) -> Result<Duration, OutOfRange> {
    seconds_within(secs, 0.0, MAX_GRACE_SECS)
}

/// A stall timeout from seconds, 1..=86400.
pub fn stall_timeout(secs: f64) -> Result<Duration, OutOfRange> {
    seconds_within(secs, 1.0, 86_400.0)
}

/// Why a program (ffmpeg, ffprobe) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("no program given")]
    Empty,
    #[error("{} is not an executable file", .0.display())]
    NotExecutable(PathBuf),
    #[error("{} not found in PATH (install FFmpeg?)", .0.display())]
    NotFound(PathBuf),
    #[error("cannot resolve {}: {source}", path.display())]
    Resolve {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why a group cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("no such group: {0}")]
    NoSuchGroup(String),
    #[error("cannot look up group {group}: {source}")]
    Lookup {
        group: String,
        #[source]
        source: nix::Error,
    },
}

/// The executable `program` names: itself when it holds a `/`, else the
/// first match in `PATH`; made absolute, since the daemon runs from `/`.
///
/// Errors: [`ProgramError`] when it is empty, missing or not executable.
pub fn find_program(program: &Path) -> Result<PathBuf, ProgramError> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.as_os_str().is_empty() {
        return Err(ProgramError::Empty);
    }
    if program.components().count() > 1 {
        return if runnable(program) {
            std::path::absolute(program).map_err(|source| ProgramError::Resolve {
                path: program.to_path_buf(),
                source,
            })
        } else {
            Err(ProgramError::NotExecutable(program.to_path_buf()))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_absolute() && runnable(p))
        .ok_or_else(|| ProgramError::NotFound(program.to_path_buf()))
}

/// Name of the system mode's socket group, when the group exists.
pub const DEFAULT_SOCKET_GROUP: &str = "vidvar";

/// A group by name or number.
///
/// Errors: [`GroupError`] naming the group when no such group exists.
pub fn group_id(group: &str) -> Result<u32, GroupError> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(GroupError::NoSuchGroup(group.into())),
        Err(source) => Err(GroupError::Lookup {
            group: group.into(),
            source,
        }),
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

    fn parse(text: &str) -> Result<FileSettings, toml::de::Error> {
        FileSettings::from_text(text)
    }

    #[test]
    fn pixel_path_is_vidvar_unless_the_file_says_ffmpeg() {
        let pick = |text: &str| {
            parse(text)
                .unwrap()
                .tunables(Path::new("x"), Tunables::default())
                .map(|t| t.pixel_path)
        };
        assert_eq!(pick("").unwrap(), PixelPath::Vidvar);
        assert_eq!(pick("pixel_path = \"ffmpeg\"").unwrap(), PixelPath::Ffmpeg);
        assert_eq!(pick("pixel_path = \"vidvar\"").unwrap(), PixelPath::Vidvar);
        let err = pick("pixel_path = \"gpu\"").unwrap_err().to_string();
        assert!(err.contains("line 1: pixel_path"), "{err}");
    }

    #[test]
    fn the_default_slots_follow_the_pixel_path_unless_the_file_sets_them() {
        let slots = |text: &str| {
            parse(text)
                .unwrap()
                .tunables(Path::new("x"), Tunables::default())
                .unwrap()
                .max_parallel
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let vidvar = (cores * SLOTS_PER_CORE).min(MAX_PARALLEL);
        assert_eq!(slots(""), vidvar);
        assert_eq!(slots("pixel_path = \"vidvar\""), vidvar);
        assert_eq!(slots("pixel_path = \"ffmpeg\""), cores);
        assert_eq!(slots("pixel_path = \"ffmpeg\"\nmax_parallel = 7"), 7);
        assert_eq!(slots("max_parallel = 7\npixel_path = \"vidvar\""), 7);
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
        let err = parse("max_parallel = 2\nmax_paralel = 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("max_paralel"),
            "{err}"
        );
        let err = parse("grace_period = \"soon\"\n").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_their_line() {
        let text = "# vidvard\nmin_ssim = 1.5\n\n[encode]\n  crf = 60\n[effects]\n\
                    rotation = [0.2, 0.1]\n";
        let f = parse(text).unwrap();
        let err = f.tunables(Path::new("v.conf"), Tunables::default());
        assert_eq!(
            err.unwrap_err().to_string(),
            "v.conf: line 2: min_ssim: 1.5 is not in 0..=1"
        );
        let err = f.encode(Path::new("v.conf")).unwrap_err().to_string();
        assert!(err.starts_with("v.conf: line 5: encode.crf: "), "{err}");
        let err = f.effects(Path::new("v.conf")).unwrap_err().to_string();
        assert!(
            err.starts_with("v.conf: line 7: effects.rotation: "),
            "{err}"
        );
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for text in [
            "max_parallel = 257",
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
    fn encode_and_effects_tables_override_the_defaults() {
        let f = parse(
            "[encode]\ncrf = 20\nframe_rate = \"source\"\npreset = \"fast\"\n\
             [effects]\nrotation = [0.0, 0.02]\n",
        )
        .unwrap();
        let e = f.encode(Path::new("x")).unwrap();
        assert_eq!(e.rate, RateControl::Crf(20));
        assert_eq!(e.frame_rate, None);
        assert_eq!(e.preset, "fast");
        let r = f.effects(Path::new("x")).unwrap();
        assert_eq!(r.rotation, 0.0..=0.02);
        assert_eq!(r.contrast, Ranges::default().contrast);
    }

    #[test]
    fn bad_encode_and_effects_values_are_refused() {
        for text in [
            "[encode]\ncrf = 20\nvideo_bitrate_kbps = 100",
            "[encode]\ncrf = 60",
            "[encode]\nframe_rate = \"fast\"",
            "[encode]\npreset = \"-y\"",
        ] {
            assert!(
                parse(text).unwrap().encode(Path::new("x")).is_err(),
                "{text}"
            );
        }
        for text in [
            "[effects]\nbrightness = [0.1, -0.1]",
            "[effects]\nsaturation = [0.0, 9.0]",
        ] {
            assert!(
                parse(text).unwrap().effects(Path::new("x")).is_err(),
                "{text}"
            );
        }
        assert!(
            parse("[encode]\ncodec = \"x\"").is_err(),
            "unknown keys in tables too"
        );
    }

    #[test]
    fn programs_are_found_in_path_or_refused() {
        assert!(find_program(Path::new("sh")).unwrap().is_absolute());
        assert!(find_program(Path::new("/bin/sh")).is_ok());
        assert!(find_program(Path::new("")).is_err());
        assert!(find_program(Path::new("no-such-program-vidvar")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        assert!(find_program(&plain).is_err(), "not executable");
    }

    #[test]
    fn socket_group_may_be_a_name_or_a_number() {
        assert_eq!(
            parse("socket_group = 1001").unwrap().socket_group,
            Some(GroupSpec::Id(1001))
        );
        assert_eq!(
            parse("socket_group = \"video\"").unwrap().socket_group,
            Some(GroupSpec::Name("video".into()))
        );
    }

    #[test]
    fn a_missing_optional_file_gives_defaults() {
        let f = FileSettings::load(Path::new("/nonexistent/vidvard.conf"), false).unwrap();
        assert_eq!(f, FileSettings::default());
        assert!(FileSettings::load(Path::new("/nonexistent/vidvard.conf"), true).is_err());
    }
}
