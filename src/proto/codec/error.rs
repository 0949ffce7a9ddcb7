//! Why a frame could not be read or written ([`CodecError`]), with the I/O
//! or bincode error kept as its source. It judges nothing itself: `frame`
//! and `payload` return these.

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
