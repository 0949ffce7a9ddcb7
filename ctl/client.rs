//! Connection to vidvard: connect, handshake, request/response.

use std::path::{Path, PathBuf};
use std::time::Duration;
use vidvar::proto::codec::{CodecError, Connection};
use vidvar::proto::{HandshakeReply, Hello, PROTOCOL_VERSION, Request, Response, WireError};

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
}

impl From<CodecError> for ClientError {
    fn from(err: CodecError) -> Self {
        match err {
            CodecError::Closed | CodecError::Truncated | CodecError::Io(_) => ClientError::Lost,
            other => ClientError::Codec(other),
        }
    }
}

/// How long the daemon may take to accept, complete the handshake, or
/// answer a request (a cancel waits for FFmpeg's grace period).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Client {
    conn: Connection<Stream>,
    socket: PathBuf,
}

impl Client {
    /// Connect to the socket at `socket` and complete the handshake.
    pub async fn connect(socket: &Path) -> Result<Client, ClientError> {
        tokio::time::timeout(ANSWER_TIMEOUT, Self::handshake(socket))
            .await
            .map_err(|_| ClientError::NotAnswering {
                socket: socket.to_path_buf(),
            })?
    }

    async fn handshake(socket: &Path) -> Result<Client, ClientError> {
        let connect_err = |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                ClientError::NotRunning {
                    socket: socket.to_path_buf(),
                }
            }
            _ => ClientError::Connect {
                socket: socket.to_path_buf(),
                source,
            },
        };
        let name = socket
            .to_fs_name::<GenericFilePath>()
            .map_err(connect_err)?;
        let stream = Stream::connect(name).await.map_err(connect_err)?;
        let mut conn = Connection::client_side(stream);
        let sent = conn
            .send(&Hello {
                protocol: PROTOCOL_VERSION,
                client: format!("vidvarctl {}", env!("CARGO_PKG_VERSION")),
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
            self.conn.send(request).await?;
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
        Ok(self.conn.send(request).await?)
    }
}
