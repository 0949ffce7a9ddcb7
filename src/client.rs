//! The client side of the protocol, for `vidvarctl`, the benchmark and
//! the tests: trust, connect, handshake, request/response. It knows
//! messages, not bytes ([`crate::proto::codec`] frames them), and nothing
//! of how they are shown.
//!
//! A client hands the daemon its paths, so it first makes sure that the
//! socket is vidvard's and not a stranger's: the socket's directory must
//! belong to a [`Trusted`] user and be writable by nobody else (unless
//! sticky, like /tmp), and the process listening must run as a trusted
//! user (`SO_PEERCRED`, socket(7)). Otherwise it refuses, and says why.
//!
//! What the daemon could not take for its size is refused here, before it
//! is sent: a submission over the limits ([`check_submission`]) and, as a
//! last guard, any request over the frame cap
//! ([`ClientError::RequestTooLarge`]).

use crate::proto::codec::{CodecError, Connection};
use crate::proto::{
    HandshakeReply, Hello, MAX_INPUTS, MAX_LABELS, MAX_PATH_BYTES, PROTOCOL_VERSION, Request,
    Response, SubmitRequest, WireError,
};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use interprocess::local_socket::tokio::{Stream, prelude::*};
use interprocess::local_socket::{GenericFilePath, ToFsName};

/// Why talking to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "vidvard is not running (nothing listens on {}).\n\
         Start it with `vidvard --foreground &`, or point --socket / VIDVAR_SOCKET at its socket.",
        socket.display()
    )]
    NotRunning { socket: PathBuf },
    /// The socket exists but this user may not use it: the daemon shares
    /// it with one group.
    #[error(
        "permission denied: {} is for the members of group {group} only.\n\
         Ask an administrator to add you to it (`sudo adduser $USER {group}`), then log in \
         again.",
        socket.display()
    )]
    PermissionDenied { socket: PathBuf, group: String },
    #[error("cannot connect to {}: {source}", socket.display())]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("vidvard does not answer on {} (within {}s)", socket.display(), ANSWER_TIMEOUT.as_secs())]
    NotAnswering { socket: PathBuf },
    #[error("lost the connection to vidvard (did it stop?)")]
    Lost,
    #[error("talking to vidvard failed: {0}")]
    Codec(#[source] CodecError),
    #[error("vidvard refused: {0}")]
    Refused(WireError),
    /// Nothing was sent: the daemon reads at most `limit` bytes per
    /// request ([`crate::proto::codec::MAX_REQUEST_LEN`]).
    #[error("request not sent: it is larger than the {limit} bytes vidvard reads in one request")]
    RequestTooLarge { limit: usize },
    #[error("refusing to use {}: {reason}", socket.display())]
    Untrusted { socket: PathBuf, reason: Distrust },
}

/// Why a socket is not trusted to be vidvard's.
#[derive(Debug, thiserror::Error)]
pub enum Distrust {
    #[error("its directory {} belongs to {who}", dir.display())]
    DirectoryOwner { dir: PathBuf, who: String },
    #[error("its directory {} may be written by others (mode {mode:o})", dir.display())]
    DirectoryWritable { dir: PathBuf, mode: u32 },
    #[error("it is served by {who}")]
    Server { who: String },
    #[error("cannot tell who serves it (no peer credentials)")]
    NoCredentials,
}

/// The users a client accepts as its daemon: root, itself, and the service
/// user of system mode.
#[derive(Debug, Clone)]
pub struct Trusted {
    /// The service user's name, as given (for messages).
    service_user: String,
    uids: Vec<u32>,
}

impl Trusted {
    /// Root, the calling user, and `service_user` when that user exists.
    pub fn new(service_user: &str) -> Trusted {
        let mut uids = vec![0, nix::unistd::geteuid().as_raw()];
        if let Ok(Some(user)) = nix::unistd::User::from_name(service_user) {
            uids.push(user.uid.as_raw());
        }
        Trusted {
            service_user: service_user.into(),
            uids,
        }
    }

    fn contains(&self, uid: u32) -> bool {
        self.uids.contains(&uid)
    }

    /// "uid N (name)" for messages.
    fn who(uid: u32) -> String {
        match nix::unistd::User::from_uid(uid.into()) {
            Ok(Some(user)) => format!("uid {uid} ({})", user.name),
            _ => format!("uid {uid}"),
        }
    }

    fn not_trusted(&self, uid: u32) -> String {
        format!(
            "{}, not root, you or the service user {}",
            Self::who(uid),
            self.service_user
        )
    }

    /// Whether the directory holding `socket` can be trusted not to hold a
    /// stranger's socket: owned by a trusted user, and not writable by
    /// others unless sticky. A directory that cannot be read is left to
    /// the connect, which then fails.
    fn check_dir(&self, socket: &Path) -> Result<(), Distrust> {
        let Some(dir) = socket.parent() else {
            return Ok(());
        };
        let Ok(meta) = std::fs::metadata(dir) else {
            return Ok(());
        };
        if !self.contains(meta.uid()) {
            return Err(Distrust::DirectoryOwner {
                dir: dir.to_path_buf(),
                who: self.not_trusted(meta.uid()),
            });
        }
        if meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0 {
            return Err(Distrust::DirectoryWritable {
                dir: dir.to_path_buf(),
                mode: meta.mode() & 0o7777,
            });
        }
        Ok(())
    }
}

impl From<CodecError> for ClientError {
    fn from(err: CodecError) -> Self {
        match err {
            CodecError::Closed | CodecError::Truncated | CodecError::Io(_) => ClientError::Lost,
            other => ClientError::Codec(other),
        }
    }
}

/// A submission over the protocol's size limits, found before it is sent.
#[derive(Debug, thiserror::Error)]
pub enum Oversize {
    #[error(
        "{count} inputs in one job; at most {MAX_INPUTS} are accepted \
         (split them over several jobs)"
    )]
    TooManyInputs { count: usize },
    #[error("{count} labels on one job; at most {MAX_LABELS} are accepted")]
    TooManyLabels { count: usize },
    /// `start` is the path's first 60 characters.
    #[error("path of {len} bytes is longer than {MAX_PATH_BYTES} bytes, the limit: {start}...")]
    PathTooLong { len: usize, start: String },
}

/// Check the size of a submission against the limits the daemon applies:
/// at most [`MAX_INPUTS`] inputs, and no path (input or output directory)
/// longer than [`MAX_PATH_BYTES`] bytes, at most [`MAX_LABELS`] labels
/// (each checked by the command line's parser). Within them the request
/// fits in a frame. The other checks (variations, the files themselves) are the
/// daemon's.
///
/// Errors: [`Oversize`], naming the limit.
pub fn check_submission(request: &SubmitRequest) -> Result<(), Oversize> {
    if request.inputs.len() > MAX_INPUTS {
        return Err(Oversize::TooManyInputs {
            count: request.inputs.len(),
        });
    }
    if request.labels.len() > MAX_LABELS {
        return Err(Oversize::TooManyLabels {
            count: request.labels.len(),
        });
    }
    match request
        .inputs
        .iter()
        .chain([&request.output_dir])
        .find(|path| path.as_os_str().len() > MAX_PATH_BYTES)
    {
        Some(path) => Err(Oversize::PathTooLong {
            len: path.as_os_str().len(),
            start: path.to_string_lossy().chars().take(60).collect(),
        }),
        None => Ok(()),
    }
}

/// The error of sending a request: one too large for the daemon's frame
/// cap is [`ClientError::RequestTooLarge`] (the codec wrote nothing).
fn sending(err: CodecError) -> ClientError {
    match err {
        CodecError::FrameTooLarge(limit) => ClientError::RequestTooLarge { limit },
        other => other.into(),
    }
}

/// How long the daemon may take to accept, complete the handshake, or
/// answer a request (a cancel waits for FFmpeg's grace period).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to vidvard after a successful handshake.
pub struct Client {
    conn: Connection<Stream>,
    socket: PathBuf,
}

impl Client {
    /// Connect to the socket at `socket`, served by a `trusted` user (see
    /// the module docs), and complete the handshake as `name` (a program
    /// name and version, for the daemon's log).
    ///
    /// Errors: [`ClientError::Untrusted`] with the reason, before anything
    /// is sent; [`ClientError::NotRunning`], [`ClientError::Connect`],
    /// [`ClientError::NotAnswering`] and the handshake's errors.
    pub async fn connect(
        socket: &Path,
        trusted: &Trusted,
        name: &str,
    ) -> Result<Client, ClientError> {
        tokio::time::timeout(ANSWER_TIMEOUT, Self::handshake(socket, trusted, name))
            .await
            .map_err(|_| ClientError::NotAnswering {
                socket: socket.to_path_buf(),
            })?
    }

    async fn handshake(
        socket: &Path,
        trusted: &Trusted,
        name: &str,
    ) -> Result<Client, ClientError> {
        let untrusted = |reason| ClientError::Untrusted {
            socket: socket.to_path_buf(),
            reason,
        };
        trusted.check_dir(socket).map_err(untrusted)?;
        let connect_err = |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                ClientError::NotRunning {
                    socket: socket.to_path_buf(),
                }
            }
            std::io::ErrorKind::PermissionDenied => ClientError::PermissionDenied {
                socket: socket.to_path_buf(),
                group: group_of(socket),
            },
            _ => ClientError::Connect {
                socket: socket.to_path_buf(),
                source,
            },
        };
        let address = socket
            .to_fs_name::<GenericFilePath>()
            .map_err(connect_err)?;
        let stream = Stream::connect(address).await.map_err(connect_err)?;
        let server = stream
            .peer_creds()
            .ok()
            .and_then(|creds| creds.euid())
            .ok_or_else(|| untrusted(Distrust::NoCredentials))?;
        if !trusted.contains(server) {
            return Err(untrusted(Distrust::Server {
                who: trusted.not_trusted(server),
            }));
        }
        let mut conn = Connection::client_side(stream);
        let sent = conn
            .send(&Hello {
                protocol: PROTOCOL_VERSION,
                client: name.into(),
            })
            .await;
        // A daemon turning us away answers before reading, and may have
        // closed already: its answer still says why.
        let reply = match (conn.recv::<HandshakeReply>().await, sent) {
            (Ok(reply), _) => reply,
            (Err(_), Err(send_error)) => return Err(send_error.into()),
            (Err(recv_error), Ok(())) => return Err(recv_error.into()),
        };
        match reply {
            HandshakeReply::Welcome(_) => Ok(Client {
                conn,
                socket: socket.to_path_buf(),
            }),
            HandshakeReply::Refused(err) => Err(ClientError::Refused(err)),
        }
    }

    /// Send one request and read one response, within [`ANSWER_TIMEOUT`].
    pub async fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        let exchange = async {
            self.conn.send(request).await.map_err(sending)?;
            Ok(self.conn.recv().await?)
        };
        tokio::time::timeout(ANSWER_TIMEOUT, exchange)
            .await
            .map_err(|_| ClientError::NotAnswering {
                socket: self.socket.clone(),
            })?
    }

    /// Read the next response (of a `watch` stream).
    pub async fn next(&mut self) -> Result<Response, ClientError> {
        Ok(self.conn.recv().await?)
    }

    /// Send a request without reading the answer (to start a stream).
    pub async fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        self.conn.send(request).await.map_err(sending)
    }
}

/// The group a socket is shared with, by name when it has one: the
/// socket's own, or its directory's when the socket cannot be looked at
/// (a directory closed to others, as `/run/vidvard` is).
fn group_of(socket: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let gid = std::fs::metadata(socket)
        .or_else(|_| std::fs::metadata(socket.parent().unwrap_or(Path::new("/"))))
        .map(|m| m.gid());
    match gid {
        Ok(gid) => nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
            .ok()
            .flatten()
            .map_or(gid.to_string(), |g| g.name),
        Err(_) => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submission(inputs: usize, path_len: usize) -> SubmitRequest {
        SubmitRequest {
            priority: 0,
            labels: Vec::new(),
            inputs: vec![format!("/{}", "i".repeat(path_len - 1)).into(); inputs],
            variations: 1,
            seed: None,
            output_dir: "/out".into(),
        }
    }

    #[test]
    fn submissions_over_the_limits_are_refused_naming_them() {
        check_submission(&submission(MAX_INPUTS, MAX_PATH_BYTES)).unwrap();
        let refusal = |r| check_submission(&r).unwrap_err().to_string();
        assert!(
            refusal(submission(MAX_INPUTS + 1, 10))
                .starts_with("1001 inputs in one job; at most 1000 are accepted"),
        );
        let long = refusal(submission(1, MAX_PATH_BYTES + 1));
        assert!(
            long.starts_with("path of 4097 bytes is longer than 4096 bytes, the limit: /iii"),
            "{long}"
        );
        let mut out = submission(1, 10);
        out.output_dir = format!("/{}", "o".repeat(MAX_PATH_BYTES)).into();
        assert!(refusal(out).contains("/ooo"));
    }

    #[test]
    fn a_frame_too_large_to_send_is_a_refusal_not_a_lost_connection() {
        assert!(matches!(
            sending(CodecError::FrameTooLarge(7)),
            ClientError::RequestTooLarge { limit: 7 }
        ));
        assert!(matches!(sending(CodecError::Closed), ClientError::Lost));
    }
}
