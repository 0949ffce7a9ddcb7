//! Where the metrics go besides `vidvarctl metrics` ([`MetricsOutputs`]:
//! `metrics_socket`, `metrics_socket_group`, `metrics_textfile`) and how the
//! configuration file sets them. Serving and writing them is `exporter`'s;
//! this module opens nothing.

use super::file::{ConfigError, FileSettings};
use super::groups::group_id;
use std::path::{Path, PathBuf};

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
}
