//! The metrics for scrapers ([`crate::metrics`]'s text, from the engine's
//! snapshot): `GET /metrics` over HTTP/1.x on a Unix socket of its own
//! (`metrics_socket`, 0660 to `metrics_socket_group` or 0600), and a file
//! for node_exporter's textfile collector (`metrics_textfile`), written
//! atomically (a temporary file in its directory, then rename(2)) every
//! [`TEXTFILE_INTERVAL`].
//!
//! The HTTP side is a minimal server of one route, kept here rather than
//! pulling in an HTTP stack: it reads a request head of at most
//! [`MAX_HEAD`] bytes within [`READ_TIMEOUT`], answers `GET /metrics`
//! (`HEAD` too) with 200, any other path with 404 and any other method
//! with 405, and closes the connection after each answer
//! (`Connection: close`); bodies are never read. Must not touch the queue
//! other than through the engine's snapshot, nor serve anything else.

use crate::engine::Engine;
use crate::metrics::{CONTENT_TYPE, render};
use crate::socket_file::{Before, before_bind, set_access};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

/// How often `metrics_textfile` is written.
pub const TEXTFILE_INTERVAL: Duration = Duration::from_secs(15);
/// Longest request head read, in bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// Longest wait for a request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the metrics socket cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("metrics socket {}: {source}", path.display())]
    Socket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("metrics socket {}: a {kind} is in the way, not a socket", path.display())]
    NotASocket { path: PathBuf, kind: &'static str },
    #[error("metrics socket {}: a process is listening on it (the control socket, or another daemon's)", path.display())]
    InUse { path: PathBuf },
}

/// Bind the metrics socket at `path` (a stale socket there is replaced;
/// one a process listens on, such as the control socket, is refused),
/// mode 0660 with group `group`, or 0600 without. The caller has judged
/// (or created) its directory as the control socket's is (owned by the
/// daemon's user or root, writable by nobody else unless sticky), so that
/// nobody else can swap what the path names.
///
/// Errors: [`ExporterError`] naming the path.
pub fn bind(path: &Path, group: Option<u32>) -> Result<UnixListener, ExporterError> {
    let err = |source| ExporterError::Socket {
        path: path.to_path_buf(),
        source,
    };
    match before_bind(path).map_err(err)? {
        Before::Nothing => {}
        Before::Other(kind) => {
            return Err(ExporterError::NotASocket {
                path: path.to_path_buf(),
                kind,
            });
        }
        Before::Socket if std::os::unix::net::UnixStream::connect(path).is_ok() => {
            return Err(ExporterError::InUse {
                path: path.to_path_buf(),
            });
        }
        Before::Socket => std::fs::remove_file(path).map_err(err)?,
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    set_access(path, group).map_err(err)?;
    Ok(listener)
}

/// Serve `listener` until `stop` fires, then remove the socket at `path`.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    engine: Arc<Engine>,
    stop: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        match stream {
            Ok((stream, _)) => {
                let engine = Arc::clone(&engine);
                tokio::spawn(async move {
                    if let Err(err) = answer(stream, &engine).await {
                        log::debug!("metrics socket: {err}");
                    }
                });
            }
            Err(err) => {
                log::warn!("metrics socket: cannot accept: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    if let Err(err) = std::fs::remove_file(&path)
        && err.kind() != io::ErrorKind::NotFound
    {
        log::warn!("cannot remove metrics socket {}: {err}", path.display());
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    /// `GET /metrics`, or `HEAD` (`true`: headers only).
    Metrics {
        head_only: bool,
    },
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// The request line of `head` judged (see the module docs); a query
/// string after the path is allowed.
fn parse(head: &[u8]) -> Asked {
    let Some(line) = head.split(|&b| b == b'\n').next() else {
        return Asked::BadRequest;
    };
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Asked::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Asked::BadRequest;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Asked::MethodNotAllowed,
    };
    match target.split('?').next() {
        Some("/metrics") => Asked::Metrics { head_only },
        _ => Asked::NotFound,
    }
}

/// Read one request head (to its blank line), at most [`MAX_HEAD`] bytes.
async fn read_head(stream: &mut UnixStream) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() >= MAX_HEAD {
            break;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Ok(head)
}

async fn answer(mut stream: UnixStream, engine: &Engine) -> io::Result<()> {
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request head in time"))??;
    let (status, body, head_only) = match parse(&head) {
        Asked::Metrics { head_only } => match engine.metrics().await {
            Ok(snapshot) => ("200 OK", render(&snapshot), head_only),
            Err(err) => (
                "503 Service Unavailable",
                format!("cannot read the metrics: {err}\n"),
                false,
            ),
        },
        Asked::NotFound => ("404 Not Found", "only /metrics is served\n".into(), false),
        Asked::MethodNotAllowed => (
            "405 Method Not Allowed",
            "only GET and HEAD\n".into(),
            false,
        ),
        Asked::BadRequest => ("400 Bad Request", "not an HTTP/1 request\n".into(), false),
    };
    let content_type = if status.starts_with("200") {
        CONTENT_TYPE
    } else {
        "text/plain; charset=utf-8"
    };
    let mut reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        reply.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&reply).await?;
    stream.shutdown().await
}

/// Write the metrics to `path` now and every [`TEXTFILE_INTERVAL`] until
/// `stop` fires, each time whole: a temporary file beside it (mode 0644,
/// as node_exporter reads it as another user), then rename(2) over it.
pub async fn write_textfile(path: PathBuf, engine: Arc<Engine>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(TEXTFILE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let text = match engine.metrics().await {
            Ok(snapshot) => render(&snapshot),
            Err(err) => {
                log::warn!("metrics_textfile: cannot read the metrics: {err}");
                continue;
            }
        };
        let target = path.clone();
        let written = tokio::task::spawn_blocking(move || replace(&target, &text)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(err)) => log::warn!("cannot write {}: {err}", path.display()),
            Err(err) => log::warn!("cannot write {}: {err}", path.display()),
        }
    }
}

/// Replace `path` by a file holding `text`, atomically: a new temporary
/// file of a random name beside it (created exclusively, `O_EXCL`, so no
/// file or symlink planted in the directory is ever opened), written,
/// synced, made 0644 (node_exporter reads it as its own user), then
/// renamed over `path`.
fn replace(path: &Path, text: &str) -> io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    temp.write_all(text.as_bytes())?;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_textfile_replaces_a_planted_symlink_and_never_writes_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("vidvard.db");
        std::fs::write(&victim, "records").unwrap();
        let path = dir.path().join("vidvar.prom");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        replace(&path, "vidvar_up 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "records");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_file(), "a regular file now");
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "vidvar_up 1\n");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "no temporary file left: {left:?}");
    }

    #[test]
    fn a_listening_socket_is_never_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let _control = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let err = bind(&path, None).unwrap_err();
        assert!(matches!(err, ExporterError::InUse { .. }), "{err}");
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
    }

    #[test]
    fn only_get_and_head_of_metrics_are_served() {
        let asked = |head: &str| parse(head.as_bytes());
        assert_eq!(
            asked("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Asked::Metrics { head_only: false }
        );
        assert_eq!(
            asked("GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Asked::Metrics { head_only: false }
        );
        assert_eq!(
            asked("HEAD /metrics HTTP/1.1\r\n\r\n"),
            Asked::Metrics { head_only: true }
        );
        assert_eq!(asked("GET / HTTP/1.1\r\n\r\n"), Asked::NotFound);
        assert_eq!(
            asked("POST /metrics HTTP/1.1\r\n\r\n"),
            Asked::MethodNotAllowed
        );
        assert_eq!(asked("GET /metrics\r\n\r\n"), Asked::BadRequest);
        assert_eq!(asked("hello"), Asked::BadRequest);
    }

    #[test]
    fn the_textfile_is_replaced_whole_and_no_temporary_file_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vidvar.prom");
        replace(&path, "a 1\n").unwrap();
        replace(&path, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 2\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }
}
