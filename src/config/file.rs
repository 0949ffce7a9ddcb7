//! The configuration file: its keys and tables as TOML gives them
//! ([`FileSettings`]), where it is by default, reading and parsing it, the
//! line each key is set on, and [`ConfigError`]. Turning its values into
//! settings is the work of the modules that own those settings (`tunables`,
//! `variation`, `hook`, `metrics`); this one judges no value's range.

use serde::Deserialize;
use std::path::{Path, PathBuf};

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
    /// Seconds a client connection may stay silent between requests.
    pub client_idle_timeout: Option<f64>,
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
    pub(super) fn from_text(text: &str) -> Result<FileSettings, toml::de::Error> {
        let settings: FileSettings = toml::from_str(text)?;
        Ok(FileSettings {
            lines: KeyLines::scan(text),
            ..settings
        })
    }

    /// The error for `key` (dotted, as `encode.crf`) set to a value out of
    /// range in the file at `path`, naming its line.
    pub(super) fn bad(&self, path: &Path, key: &'static str, reason: impl ToString) -> ConfigError {
        ConfigError::Value {
            path: path.to_path_buf(),
            line: self.lines.0.get(key).copied(),
            key,
            reason: reason.to_string(),
        }
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
    use crate::config::Tunables;

    fn parse(text: &str) -> Result<FileSettings, toml::de::Error> {
        FileSettings::from_text(text)
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
