//! The ffprobe command that describes an input's format and streams as
//! JSON. Running it and reading its answer is `ffmpeg::probe`'s; this module
//! only builds the argv.

use super::files::{INPUT_LIMITS, fd_url};
use std::ffi::OsString;
use std::os::fd::RawFd;

/// ffprobe arguments (without the program) that print the format and
/// streams of the file open as descriptor `fd` as JSON on stdout.
pub fn probe(fd: RawFd) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
    ]
    .iter()
    .chain(&INPUT_LIMITS)
    .map(OsString::from)
    .collect();
    args.push(fd_url(fd));
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_asks_for_json() {
        let args = probe(5);
        assert!(args.iter().any(|a| a == "json"));
        assert_eq!(args.last().unwrap(), "file:/dev/fd/5");
    }
}
