//! One message to and from a frame's payload in bincode 2 (the standard
//! configuration, decoding capped at [`MAX_RESPONSE_LEN`]): the only code
//! that calls bincode. It knows no length prefix and no stream.

use super::error::CodecError;
use super::limits::MAX_RESPONSE_LEN;
use bincode::config::{Configuration, Limit};
use serde::{Serialize, de::DeserializeOwned};

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

#[cfg(test)]
mod tests {
    use super::super::fixtures::detail;
    use super::*;
    use crate::proto::*;

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
