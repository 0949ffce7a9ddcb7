//! Pipe capacity: raising a pipeline's pipes (see README's "The pixel
//! path") to the largest size the
//! system allows, so that a frame (1.38 MB at 720p) crosses in a few
//! wake-ups instead of 21 of a default 64 KiB pipe.
//!
//! Owns the `F_SETPIPE_SZ` calls (fcntl(2)) and the reading of
//! /proc/sys/fs/pipe-max-size (proc(5)), the limit an unprivileged
//! process may raise a pipe to. Must not read or write the pipes.

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};
use std::os::fd::BorrowedFd;

/// Where the system's pipe size limit is published (proc(5)).
const PIPE_MAX_SIZE: &str = "/proc/sys/fs/pipe-max-size";

/// Raises the pipe `fd` to /proc/sys/fs/pipe-max-size bytes, halving the
/// request while the kernel refuses it for the user's pipe quota (EPERM,
/// pipe-user-pages-soft) down to the pipe's current size. A descriptor
/// that is not a pipe (a file, a terminal) is left alone.
///
/// Errors: an unreadable limit file, or fcntl(2) failing otherwise.
pub fn raise(fd: BorrowedFd) -> Result<(), std::io::Error> {
    let current = match fcntl(fd, FcntlArg::F_GETPIPE_SZ) {
        Ok(size) => size,
        Err(Errno::EBADF) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let text = std::fs::read_to_string(PIPE_MAX_SIZE)?;
    let max: i32 = text.trim().parse().map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{PIPE_MAX_SIZE}: {text:?}: {e}"),
        )
    })?;
    let mut want = max;
    while want > current {
        match fcntl(fd, FcntlArg::F_SETPIPE_SZ(want)) {
            Ok(_) => return Ok(()),
            Err(Errno::EPERM | Errno::EBUSY) => want /= 2,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
