//! How FFmpeg is handed its files: inherited descriptors named as `file:`
//! URLs, raw frames through pipes, and the input limits that keep it to the
//! one file it is given (see the parent module). Pieces of argv only: whole
//! commands are built by the sibling modules.

use std::ffi::OsString;
use std::os::fd::RawFd;

/// Demuxers an input may be read with (ffmpeg-formats(1)): containers and
/// raw streams that carry their media themselves. Left out on purpose:
/// `hls`, `dash`, `concat`, `image2` and every other format that opens
/// further files or URLs named inside the input.
pub const INPUT_FORMATS: &str = "mov,matroska,avi,flv,mpegts,mpeg,asf,ogg,mxf,nut,dv,gif,ivf,\
                                 h264,hevc,m4v,mpegvideo,mjpeg,obu,av1,vc1,rm,wtv,yuv4mpegpipe";

/// Input options that keep FFmpeg to the one file it is given: the `file`
/// protocol only (`-protocol_whitelist`) and [`INPUT_FORMATS`]
/// (`-format_whitelist`; ffmpeg-formats(1), "Format Options").
pub const INPUT_LIMITS: [&str; 4] = [
    "-protocol_whitelist",
    "file",
    "-format_whitelist",
    INPUT_FORMATS,
];

/// The `file:` URL of the inherited descriptor `fd`: `file:/dev/fd/N`.
pub fn fd_url(fd: RawFd) -> OsString {
    format!("file:/dev/fd/{fd}").into()
}

/// An output of the filter graph's `label`, frame for frame as the graph
/// timed them (`-fps_mode passthrough`), raw, to the descriptor `fd`
/// itself (FFmpeg's `pipe:` protocol).
pub(super) fn raw_output(label: &str, fd: RawFd) -> Vec<OsString> {
    [
        "-map",
        label,
        "-fps_mode:v",
        "passthrough",
        "-c:v",
        "rawvideo",
        "-f",
        "rawvideo",
        &format!("pipe:{fd}"),
    ]
    .iter()
    .map(OsString::from)
    .collect()
}

/// An input of raw `yuv420p` frames of `size` (width, height) at `rate`
/// frames/s read from the descriptor `fd` itself (`pipe:`), with nothing
/// else allowed (`-protocol_whitelist pipe -format_whitelist rawvideo`).
pub(super) fn raw_input(fd: RawFd, size: (u32, u32), rate: &str) -> Vec<OsString> {
    [
        "-protocol_whitelist",
        "pipe",
        "-format_whitelist",
        "rawvideo",
        "-f",
        "rawvideo",
        "-pixel_format",
        "yuv420p",
        "-video_size",
        &format!("{}x{}", size.0, size.1),
        "-framerate",
        rate,
        "-i",
        &format!("pipe:{fd}"),
    ]
    .iter()
    .map(OsString::from)
    .collect()
}
