//! Frames on a byte stream: a 4-byte big-endian length prefix, checked
//! against this side's cap before anything is allocated (tokio-util's
//! `LengthDelimitedCodec`), and [`Connection`], which sends and receives
//! typed messages as one frame each. The payload's encoding is `payload`'s.

use super::error::CodecError;
use super::limits::{MAX_REQUEST_LEN, MAX_RESPONSE_LEN};
use super::payload::{decode, encode};
use futures_util::{SinkExt, StreamExt};
use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

fn frame_codec(max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .big_endian()
        .max_frame_length(max)
        .new_codec()
}

fn map_io(err: std::io::Error, max: usize) -> CodecError {
    if err
        .get_ref()
        .is_some_and(|inner| inner.is::<tokio_util::codec::LengthDelimitedCodecError>())
    {
        return CodecError::FrameTooLarge(max);
    }
    if err.kind() == std::io::ErrorKind::UnexpectedEof
        || err.to_string().contains("bytes remaining on stream")
    {
        return CodecError::Truncated;
    }
    CodecError::Io(err)
}

/// A framed, typed connection over any byte stream (a Unix socket in the
/// daemon and client, an in-memory duplex in tests).
pub struct Connection<S> {
    framed: Framed<S, LengthDelimitedCodec>,
    /// Cap on the frames this side reads.
    recv_max: usize,
    /// Cap on the frames this side writes (the peer's read cap).
    send_max: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// The daemon's end: reads requests, writes responses.
    pub fn daemon_side(stream: S) -> Self {
        Self::with_caps(stream, MAX_REQUEST_LEN, MAX_RESPONSE_LEN)
    }

    /// A client's end: writes requests, reads responses.
    pub fn client_side(stream: S) -> Self {
        Self::with_caps(stream, MAX_RESPONSE_LEN, MAX_REQUEST_LEN)
    }

    fn with_caps(stream: S, recv_max: usize, send_max: usize) -> Self {
        Connection {
            framed: Framed::new(stream, frame_codec(recv_max)),
            recv_max,
            send_max,
        }
    }

    /// Send one message as one frame and flush it.
    ///
    /// Errors: [`CodecError::FrameTooLarge`] (nothing is written) when the
    /// payload exceeds what the peer reads; I/O errors.
    pub async fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), CodecError> {
        let payload = encode(msg)?;
        if payload.len() > self.send_max {
            return Err(CodecError::FrameTooLarge(self.send_max));
        }
        // The codec's one cap serves reading; lift it while writing.
        self.framed.codec_mut().set_max_frame_length(self.send_max);
        let sent = self.framed.send(bytes::Bytes::from(payload)).await;
        self.framed.codec_mut().set_max_frame_length(self.recv_max);
        sent.map_err(|e| map_io(e, self.send_max))
    }

    /// Read the next message. Errors: [`CodecError::Closed`] at a clean end
    /// of stream, [`CodecError::Truncated`] in the middle of a frame,
    /// [`CodecError::FrameTooLarge`] for a length prefix above the cap.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<T, CodecError> {
        match self.framed.next().await {
            Some(Ok(frame)) => decode(&frame),
            Some(Err(err)) => Err(map_io(err, self.recv_max)),
            None => Err(CodecError::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{detail, largest_submit};
    use super::*;
    use crate::proto::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn frames_over_the_cap_are_refused_before_reading_them() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = Connection::daemon_side(server);
        let mut client = client;
        client
            .write_all(&((MAX_REQUEST_LEN as u32) + 1).to_be_bytes())
            .await
            .unwrap();
        assert!(matches!(
            server.recv::<Request>().await,
            Err(CodecError::FrameTooLarge(MAX_REQUEST_LEN))
        ));
    }

    #[tokio::test]
    async fn answers_may_exceed_the_request_cap_but_requests_may_not() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (mut client, mut daemon) = (Connection::client_side(a), Connection::daemon_side(b));
        let big = vec![
            OutputInfo {
                path: "/o/x".repeat(1000).into(),
                size: 1,
                input: "/i".into(),
                index: 1,
                effects: Effects {
                    rotation: 0.0,
                    brightness: 0.0,
                    contrast: 1.0,
                    saturation: 1.0,
                },
                node: None,
                quality: None,
            };
            400
        ];
        let answer = Response::Outputs(big);
        let (sent, got) = tokio::join!(daemon.send(&answer), client.recv::<Response>());
        sent.unwrap();
        assert_eq!(got.unwrap(), answer);
        let huge = Request::Submit(SubmitRequest {
            priority: 0,
            labels: Vec::new(),
            inputs: vec!["/x".repeat(MAX_PATH_BYTES).into(); MAX_INPUTS],
            variations: 1,
            seed: None,
            output_dir: "/o".into(),
        });
        assert!(matches!(
            client.send(&huge).await,
            Err(CodecError::FrameTooLarge(MAX_REQUEST_LEN))
        ));
        // Nothing was written: the connection still works.
        client.send(&Request::Ping).await.unwrap();
        assert_eq!(daemon.recv::<Request>().await.unwrap(), Request::Ping);
    }

    #[tokio::test]
    async fn the_largest_request_crosses_a_stream() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (mut client, mut daemon) = (Connection::client_side(a), Connection::daemon_side(b));
        let request = largest_submit();
        let (sent, got) = tokio::join!(client.send(&request), daemon.recv::<Request>());
        sent.unwrap();
        assert_eq!(got.unwrap(), request);
    }

    #[tokio::test]
    async fn truncated_frame_and_clean_close_are_told_apart() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = Connection::daemon_side(server);
        let mut client = client;
        client.write_all(&10u32.to_be_bytes()).await.unwrap();
        client.write_all(&[1, 2, 3]).await.unwrap();
        drop(client);
        assert!(matches!(
            server.recv::<Request>().await,
            Err(CodecError::Truncated)
        ));

        let (client, server) = tokio::io::duplex(64);
        drop(client);
        assert!(matches!(
            Connection::daemon_side(server).recv::<Request>().await,
            Err(CodecError::Closed)
        ));
    }

    #[tokio::test]
    async fn typed_messages_cross_a_stream() {
        let (a, b) = tokio::io::duplex(1024);
        let (mut a, mut b) = (Connection::client_side(a), Connection::daemon_side(b));
        a.send(&Request::Watch { job: 3 }).await.unwrap();
        assert_eq!(
            b.recv::<Request>().await.unwrap(),
            Request::Watch { job: 3 }
        );
        b.send(&Response::Progress(detail())).await.unwrap();
        assert_eq!(
            a.recv::<Response>().await.unwrap(),
            Response::Progress(detail())
        );
    }
}
