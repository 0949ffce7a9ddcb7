//! Framing and encoding of protocol messages: the only code that knows
//! bincode.
//!
//! A frame is a 4-byte big-endian payload length followed by that many
//! bytes of bincode 2 (standard configuration: little-endian varints; enum
//! variants as their index). A reader checks the length against its cap
//! before anything is allocated (tokio-util's `LengthDelimitedCodec`): the
//! daemon reads at most [`MAX_REQUEST_LEN`] per frame (derived from the
//! submission limits, so that every request they allow fits), a client at
//! most [`MAX_RESPONSE_LEN`] (answers such as the outputs of a large job
//! are bigger than any request), and bincode's own decode limit stops a
//! small payload from claiming a huge allocation.

use super::{MAX_INPUTS, MAX_LABEL_BYTES, MAX_LABELS, MAX_PATH_BYTES};
use bincode::config::{Configuration, Limit};
use futures_util::{SinkExt, StreamExt};
use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Most bytes bincode spends on one integer or length prefix (a `u64`
/// varint: a marker byte and 8 bytes).
const MAX_VARINT_LEN: usize = 9;

/// Largest frame payload a client may send, in bytes (3.9 MiB with
/// today's limits): the largest request the limits allow, a `Submit` of
/// [`MAX_INPUTS`] inputs and an output directory, each path
/// [`MAX_PATH_BYTES`] long with its length prefix, [`MAX_LABELS`] labels
/// of [`MAX_LABEL_BYTES`], and room for the variant tag, the input and
/// label counts, the variations, the seed and the priority.
pub const MAX_REQUEST_LEN: usize = (MAX_INPUTS + 1) * (MAX_PATH_BYTES + MAX_VARINT_LEN)
    + MAX_LABELS * (MAX_LABEL_BYTES + MAX_VARINT_LEN)
    + 8 * MAX_VARINT_LEN;
/// Largest frame payload the daemon may send, in bytes (64 MiB).
pub const MAX_RESPONSE_LEN: usize = 64 << 20;

// bincode decodes at most MAX_RESPONSE_LEN bytes (see `wire_config`), so
// every request must fit in that too.
const _: () = assert!(MAX_REQUEST_LEN <= MAX_RESPONSE_LEN);

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("socket I/O failed: {0}")]
    Io(#[source] std::io::Error),
    #[error("frame of more than {0} bytes refused")]
    FrameTooLarge(usize),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("connection closed by peer")]
    Closed,
    #[error("malformed message: {0}")]
    Decode(#[source] bincode::error::DecodeError),
    #[error("message cannot be encoded: {0}")]
    Encode(#[source] bincode::error::EncodeError),
    #[error("message of {0} bytes followed by {1} stray bytes in one frame")]
    TrailingBytes(usize, usize),
}

type WireConfig =
    Configuration<bincode::config::LittleEndian, bincode::config::Varint, Limit<MAX_RESPONSE_LEN>>;

/// bincode's standard configuration (little-endian, variable-length
/// integers), with decoding capped at [`MAX_RESPONSE_LEN`].
fn wire_config() -> WireConfig {
    bincode::config::standard().with_limit::<MAX_RESPONSE_LEN>()
}

/// Encode one message into a frame payload (without the length prefix).
///
/// Errors: [`CodecError::Encode`].
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(msg, wire_config()).map_err(CodecError::Encode)
}

/// Decode one frame payload; the whole payload must be one message.
///
/// Errors: [`CodecError::Decode`] for malformed bytes or an unknown variant,
/// [`CodecError::TrailingBytes`] when bytes are left over.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, CodecError> {
    let (msg, used) =
        bincode::serde::decode_from_slice(payload, wire_config()).map_err(CodecError::Decode)?;
    if used != payload.len() {
        return Err(CodecError::TrailingBytes(used, payload.len() - used));
    }
    Ok(msg)
}

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
    use super::*;
    use crate::proto::*;
    use std::path::PathBuf;
    use tokio::io::AsyncWriteExt;

    fn detail() -> JobDetail {
        JobDetail {
            summary: JobSummary {
                id: 7,
                state: JobState::Partial,
                progress: 55.5,
                inputs: 2,
                variations: 3,
                created_at: 1_700_000_000,
                owner_uid: 1000,
                priority: -3,
                paused: true,
                labels: vec!["a".into(), "b c".into()],
                eta_secs: Some(12.5),
            },
            seed: u64::MAX,
            output_dir: "/out".into(),
            files: vec![FileStatus {
                path: "/in/a b.mp4".into(),
                state: FileState::Failed,
                progress: 33.3,
                done_variations: 1,
                duration_secs: None,
                encoded_secs: Some(3.5),
                error: Some("not a video".into()),
                nodes: vec!["node-a".into()],
                running: vec![RunningVariation {
                    index: 2,
                    percent: 40.0,
                    encoded_secs: 1.5,
                    speed: Some(2.5),
                    fps: None,
                }],
                eta_secs: None,
            }],
            daemon_paused: true,
        }
    }

    fn folder_spec() -> FolderSpec {
        FolderSpec {
            dir: "/in ü".into(),
            output_dir: "/out".into(),
            variations: 3,
            priority: -2,
            labels: vec!["x".into()],
            settle_secs: 10,
            poll_secs: 60,
            poll_only: true,
            recursive: false,
            after: AfterAction::Move("/done".into()),
            failed: FailedAction::Keep,
        }
    }

    fn folder_info() -> FolderInfo {
        FolderInfo {
            id: 4,
            spec: FolderSpec {
                after: AfterAction::Delete,
                failed: FailedAction::Move("/failed".into()),
                ..folder_spec()
            },
            owner_uid: 1000,
            paused: true,
            created_at: 1_700_000_000,
            node: Some("node-a".into()),
            taken: 12,
        }
    }

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(msg: T) {
        let bytes = encode(&msg).unwrap();
        assert_eq!(decode::<T>(&bytes).unwrap(), msg);
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(Hello {
            protocol: PROTOCOL_VERSION,
            client: "t".into(),
        });
        round_trip(HandshakeReply::Welcome(Welcome {
            protocol: 1,
            daemon_version: "0.1.0".into(),
        }));
        round_trip(HandshakeReply::Refused(WireError {
            kind: ErrorKind::VersionMismatch,
            message: "x".into(),
        }));
        for req in [
            Request::Submit(SubmitRequest {
                priority: 0,
                labels: Vec::new(),
                inputs: vec!["/a.mp4".into(), "/ü -x:y.mp4".into()],
                variations: 5,
                seed: Some(42),
                output_dir: "/o".into(),
            }),
            Request::Submit(SubmitRequest {
                priority: 0,
                labels: Vec::new(),
                inputs: vec![],
                variations: 1,
                seed: None,
                output_dir: "/o".into(),
            }),
            Request::Submit(SubmitRequest {
                priority: -1000,
                labels: vec!["nightly".into(), "ü x".into()],
                inputs: vec!["/a.mp4".into()],
                variations: 1,
                seed: None,
                output_dir: "/o".into(),
            }),
            Request::Status { job: 1 },
            Request::List(ListRequest {
                state: Some(JobState::Partial),
                label: Some("nightly".into()),
                after: 17,
                limit: 100,
            }),
            Request::Pause {
                job: None,
                stop: true,
            },
            Request::Pause {
                job: Some(3),
                stop: false,
            },
            Request::Resume { job: Some(3) },
            Request::SetPriority {
                job: 3,
                priority: -7,
            },
            Request::Watch { job: 2 },
            Request::Outputs { job: 3 },
            Request::Cancel { job: 4 },
            Request::Retry { job: 5 },
            Request::Ping,
            Request::Prune {
                older_than_secs: 86_400,
            },
            Request::FolderAdd(folder_spec()),
            Request::Folders,
            Request::FolderShow { folder: 2 },
            Request::FolderRemove { folder: 2 },
            Request::FolderPause {
                folder: 2,
                paused: true,
            },
        ] {
            round_trip(req);
        }
        for resp in [
            Response::Submitted { job: 9 },
            Response::Pruned { jobs: 12 },
            Response::Job(detail()),
            Response::Progress(detail()),
            Response::Jobs(JobPage {
                jobs: vec![detail().summary],
                more: true,
                daemon_paused: false,
            }),
            Response::Outputs(vec![OutputInfo {
                path: "/o/a_v01.mp4".into(),
                size: 12345,
                input: "/a.mp4".into(),
                index: 1,
                effects: Effects {
                    rotation: 0.005,
                    brightness: -0.01,
                    contrast: 1.01,
                    saturation: 0.99,
                },
                node: Some("node-a".into()),
                quality: Some(crate::job::Quality {
                    samples: 8,
                    ssim_mean: 0.99,
                    ssim_min: 0.98,
                    luma_diff: 1.5,
                }),
            }]),
            Response::Pong(Pong {
                daemon_version: "0.1.0".into(),
                protocol: 1,
                uptime_secs: 5,
                queue_depth: 2,
                running_processes: 1,
                node: None,
                paused: true,
            }),
            Response::Nodes(vec![NodeInfo {
                name: "node-a".into(),
                host: "host".into(),
                state: NodeState::Lost,
                slots: 4,
                running: 2,
                last_heartbeat: 1_700_000_000,
            }]),
            Response::Error(WireError {
                kind: ErrorKind::NotFound,
                message: "no such job: 3".into(),
            }),
            Response::FolderAdded { folder: 4 },
            Response::Folders(vec![folder_info()]),
            Response::Folder(folder_info()),
        ] {
            round_trip(resp);
        }
    }

    #[test]
    fn unknown_variant_and_garbage_are_decode_errors() {
        // Variant index 200 of Request does not exist.
        let bytes = [200u8];
        assert!(matches!(
            decode::<Request>(&bytes),
            Err(CodecError::Decode(_))
        ));
        assert!(decode::<Request>(&[0xff; 3]).is_err());
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&Request::Ping).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<Request>(&bytes),
            Err(CodecError::TrailingBytes(_, 1))
        ));
    }

    #[test]
    fn huge_length_inside_payload_does_not_allocate() {
        // A Submit whose input vector claims u64::MAX elements.
        let mut bytes = vec![0u8, 253];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode::<Request>(&bytes).is_err());
    }

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

    /// The largest submission the limits allow: every path
    /// [`MAX_PATH_BYTES`] long, every number at its widest.
    fn largest_submit() -> Request {
        let path =
            |c: char| PathBuf::from(format!("/{}", c.to_string().repeat(MAX_PATH_BYTES - 1)));
        Request::Submit(SubmitRequest {
            priority: i32::MIN,
            labels: vec!["l".repeat(MAX_LABEL_BYTES); MAX_LABELS],
            inputs: vec![path('i'); MAX_INPUTS],
            variations: u32::MAX,
            seed: Some(u64::MAX),
            output_dir: path('o'),
        })
    }

    #[test]
    fn the_frame_cap_fits_the_largest_request_the_limits_allow() {
        let len = encode(&largest_submit()).unwrap().len();
        assert!(
            len <= MAX_REQUEST_LEN,
            "the largest submission takes {len} bytes, the cap is {MAX_REQUEST_LEN}"
        );
        // Derived, not guessed: no more than a few bytes per path to spare.
        assert!(MAX_REQUEST_LEN - len < 16 * (MAX_INPUTS + 1), "{len}");
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

    mod fuzz {
        //! Property tests of the decoders: no input makes them panic or
        //! allocate past the cap, and every request survives a round trip.

        use super::super::*;
        use crate::proto::*;
        use proptest::collection::vec;
        use proptest::prelude::*;
        use std::path::PathBuf;

        fn request() -> impl Strategy<Value = Request> {
            let job = any::<i64>();
            prop_oneof![
                (
                    vec(".{0,40}", 0..5),
                    any::<u32>(),
                    any::<Option<u64>>(),
                    ".{0,40}",
                    any::<i32>(),
                    vec(".{0,10}", 0..3),
                )
                    .prop_map(
                        |(inputs, variations, seed, out, priority, labels)| {
                            Request::Submit(SubmitRequest {
                                priority,
                                labels,
                                inputs: inputs.into_iter().map(PathBuf::from).collect(),
                                variations,
                                seed,
                                output_dir: out.into(),
                            })
                        }
                    ),
                job.prop_map(|job| Request::Status { job }),
                job.prop_map(|job| Request::Watch { job }),
                job.prop_map(|job| Request::Outputs { job }),
                job.prop_map(|job| Request::Cancel { job }),
                job.prop_map(|job| Request::Retry { job }),
                job.prop_map(|folder| Request::FolderRemove { folder }),
                (job, any::<bool>())
                    .prop_map(|(folder, paused)| Request::FolderPause { folder, paused }),
                (any::<Option<String>>(), any::<i64>(), any::<u32>()).prop_map(
                    |(label, after, limit)| Request::List(ListRequest {
                        state: None,
                        label,
                        after,
                        limit
                    })
                ),
                (any::<Option<i64>>(), any::<bool>())
                    .prop_map(|(job, stop)| Request::Pause { job, stop }),
                (job, any::<i32>())
                    .prop_map(|(job, priority)| Request::SetPriority { job, priority }),
                Just(Request::Ping),
                any::<u64>().prop_map(|older_than_secs| Request::Prune { older_than_secs }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..600)) {
                let _ = decode::<Hello>(&bytes);
                let _ = decode::<Request>(&bytes);
                let _ = decode::<Response>(&bytes);
                let _ = decode::<HandshakeReply>(&bytes);
            }

            #[test]
            fn requests_round_trip(req in request()) {
                let bytes = encode(&req).unwrap();
                prop_assert_eq!(decode::<Request>(&bytes).unwrap(), req);
            }

            #[test]
            fn mutated_requests_never_panic(
                req in request(),
                flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
                cut in any::<prop::sample::Index>(),
            ) {
                let mut bytes = encode(&req).unwrap();
                for (at, value) in flips {
                    let i = at.index(bytes.len());
                    bytes[i] = value;
                }
                let _ = decode::<Request>(&bytes);
                let end = cut.index(bytes.len() + 1);
                let _ = decode::<Request>(&bytes[..end]);
            }
        }
    }
}
