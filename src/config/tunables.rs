//! The settings SIGHUP re-reads ([`Tunables`]): their defaults, the default
//! number of slots for this machine, and how the configuration file sets
//! them. What is fixed for the daemon's life belongs elsewhere, and this
//! module reads no file and no environment itself.

use super::file::{ConfigError, FileSettings};
use super::seconds::{grace, timeout};
use std::path::Path;
use std::time::Duration;

/// Grace period between SIGTERM and SIGKILL when stopping FFmpeg.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(2);
/// Time without progress after which an FFmpeg process counts as stalled.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Time a client connection may stay silent between requests by default.
pub const DEFAULT_CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
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
    /// A client connection that sends no request for this long after the
    /// last one (or the handshake) is closed (`client_idle_timeout`); a
    /// `watch` or `top` stream is not silent. Applies to each wait that
    /// starts after a change.
    pub client_idle_timeout: Duration,
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
    pub fn settings(&self) -> [(&'static str, String); 10] {
        [
            ("max_parallel", self.max_parallel.to_string()),
            ("grace_period", self.grace.as_secs_f64().to_string()),
            (
                "stall_timeout",
                self.stall_timeout.as_secs_f64().to_string(),
            ),
            (
                "client_idle_timeout",
                self.client_idle_timeout.as_secs_f64().to_string(),
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
            client_idle_timeout: DEFAULT_CLIENT_IDLE_TIMEOUT,
            min_free_bytes: DEFAULT_MIN_FREE_MIB << 20,
            retention: None,
            log_level: log::LevelFilter::Info,
            min_ssim: Some(DEFAULT_MIN_SSIM),
            pixel_path: PixelPath::Vidvar,
        }
    }
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

impl FileSettings {
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
            t.stall_timeout = timeout(secs).map_err(|e| bad("stall_timeout", e.to_string()))?;
        }
        if let Some(secs) = self.client_idle_timeout {
            t.client_idle_timeout =
                timeout(secs).map_err(|e| bad("client_idle_timeout", e.to_string()))?;
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
        let f = parse(
            "max_parallel = 3\ngrace_period = 0.5\nlog_level = \"debug\"\nclient_idle_timeout = 2.5\n",
        )
        .unwrap();
        let t = f.tunables(Path::new("x"), Tunables::default()).unwrap();
        assert_eq!(t.max_parallel, 3);
        assert_eq!(t.client_idle_timeout, Duration::from_millis(2500));
        assert_eq!(t.grace, Duration::from_millis(500));
        assert_eq!(t.log_level, log::LevelFilter::Debug);
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for text in [
            "max_parallel = 257",
            "grace_period = -1.0",
            "client_idle_timeout = 0.5",
            "log_level = \"loud\"",
        ] {
            let f = parse(text).unwrap();
            let err = f
                .tunables(Path::new("v.conf"), Tunables::default())
                .unwrap_err();
            assert!(err.to_string().starts_with("v.conf: "), "{err}");
        }
    }
}
