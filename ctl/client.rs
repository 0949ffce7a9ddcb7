//! Connection to vidvard: connect, handshake, request/response.

use std::path::{Path, PathBuf};
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
    #[error("talking to vidvard failed: {0}")]
    Codec(#[from] CodecError),
    #[error("vidvard refused: {0}")]
    Refused(WireError),
}

pub struct Client {
    conn: Connection<Stream>,
}

impl Client {
    /// Connect to the socket at `socket` and complete the handshake.
    pub async fn connect(socket: &Path) -> Result<Client, ClientError> {
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
        let mut conn = Connection::new(stream);
        conn.send(&Hello {
            protocol: PROTOCOL_VERSION,
            client: format!("vidvarctl {}", env!("CARGO_PKG_VERSION")),
        })
        .await?;
        match conn.recv::<HandshakeReply>().await? {
            HandshakeReply::Welcome(_) => Ok(Client { conn }),
            HandshakeReply::Refused(err) => Err(ClientError::Refused(err)),
        }
    }

    /// Send one request and read one response.
    pub async fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        self.conn.send(request).await?;
        self.next().await
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
