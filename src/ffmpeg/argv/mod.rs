//! Argument vectors for ffmpeg and ffprobe. Pure.
//!
//! FFmpeg never gets a user's path: every file it reads or writes is one
//! the daemon has opened and vetted (see `access::vetted`), handed down as
//! an inherited descriptor and named `file:/dev/fd/N` ([`fd_url`]). A
//! `file:` URL is never read as an option or another protocol
//! (ffmpeg-protocols(1), "file"), and opening `/dev/fd/N` gives FFmpeg a
//! fresh, seekable open file of that very inode (proc(5),
//! `/proc/PID/fd`), which the mp4 demuxer and muxer need. Processes are
//! started without a shell.
//!
//! What FFmpeg may open on its own is restricted too ([`INPUT_LIMITS`]):
//! only the `file` protocol, and only container formats that hold their
//! media, so that a "video" which is really a playlist (HLS, DASH) or a
//! concat script cannot make FFmpeg read further files, by path, with
//! the daemon's access.
//!
//! Each kind of command has a module of its own, whose builders are
//! re-exported here: `encode` (one variation by one FFmpeg), `pipeline` (the
//! decoder, `vidvar-stage` and the raw-frame encoders of a batch), `check`
//! (the decode of outputs, one or a pipeline's, that compares each with its
//! references) and `probe` (ffprobe); `filters` holds the filter chains they
//! share, `files` how FFmpeg is handed its files. Nothing here starts a
//! process.

mod check;
mod encode;
mod files;
mod filters;
mod pipeline;
mod probe;
#[cfg(test)]
mod testing;

pub use check::{OUTPUT_TAG, check};
pub use encode::{EncodePlan, QUIET_ENCODE, codec_args, encode, encode_graph};
pub use files::{INPUT_FORMATS, INPUT_LIMITS, fd_url};
pub use filters::{
    CHECK_SIZE, EVEN_YUV420P, REFERENCE_AREA, effects_chain, even_size, picture_chain, rate_filter,
};
pub use pipeline::{DecodePlan, decode, encode_raw, stage};
pub use probe::probe;
