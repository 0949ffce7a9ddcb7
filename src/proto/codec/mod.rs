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
//!
//! Each part has a module of its own, whose names are re-exported here:
//! `limits` (the frame caps), `payload` (bincode: one message to and from a
//! frame's payload), `frame` (the length prefix and the typed
//! [`Connection`]) and `error` ([`CodecError`]).

mod error;
#[cfg(test)]
mod fixtures;
mod frame;
mod limits;
mod payload;

pub use error::CodecError;
pub use frame::Connection;
pub use limits::{MAX_REQUEST_LEN, MAX_RESPONSE_LEN};
pub use payload::{decode, encode};
