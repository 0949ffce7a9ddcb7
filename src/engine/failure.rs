//! Why a probe or a variation failed: [`Failure`], rendered to text once,
//! where the reason is stored with the file or variation.

use crate::access::describe_io;
use crate::access::vetted::AccessError;
use crate::engine::supervisor::SupervisorError;
use crate::ffmpeg::probe::ProbeError;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Why a probe or a variation failed, in words for the job's owner.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(
        "input changed since it was submitted: {} now names another file or a symlink",
        .0.display()
    )]
    InputChanged(PathBuf),
    #[error("cannot read input: permission denied")]
    InputDenied,
    #[error("cannot read input: {}", describe_io(.0))]
    InputIo(#[source] io::Error),
    #[error("cannot read input: {0}")]
    InputUnusable(#[source] AccessError),
    #[error("input is a directory, not a video file")]
    InputIsDirectory,
    /// A FIFO or device cannot be read once per variation.
    #[error("input is not a regular file (a pipe or device?)")]
    InputNotRegular,
    #[error("input is an empty file, not a video")]
    InputEmpty,
    #[error(
        "output directory changed since it was submitted: {} now names another directory or \
         a symlink",
        .0.display()
    )]
    OutputDirChanged(PathBuf),
    #[error("permission denied: {}", .0.display())]
    OutputDirDenied(PathBuf),
    #[error("cannot use the output directory: {0}")]
    OutputDirUnusable(#[source] AccessError),
    #[error("cannot act as the job's owner: {0}")]
    Credentials(#[source] io::Error),
    #[error("file operation failed: {0}")]
    Blocking(#[source] tokio::task::JoinError),
    #[error("cannot check free space in {}: {source}", dir.display())]
    FreeSpaceUnknown {
        dir: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    #[error(
        "not enough free space in {}: {} MiB free, {} MiB required (min_free_space_mib)",
        dir.display(), free >> 20, needed >> 20
    )]
    NoSpace {
        dir: PathBuf,
        free: u64,
        needed: u64,
    },
    #[error("cannot create a file in {}: {}", dir.display(), describe_io(source))]
    CreateTemp {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    /// What a lost claim left could not be settled; encoding again could
    /// make a second output.
    #[error("cannot clean up after an earlier, lost claim: {0}")]
    LostClaimLeftovers(#[source] crate::recovery::CleanupError),
    /// The lease expired before the output was published (the node stopped
    /// renewing it, e.g. cut off from the database): another node may run
    /// the variation now, so this one publishes nothing.
    #[error("the claim on this variation was lost before its output was published")]
    ClaimLost,
    #[error("stalled: FFmpeg made no progress for {} s and was stopped", .0.as_secs_f64())]
    Stalled(Duration),
    #[error("FFmpeg failed ({status}){}", tail(stderr_tail))]
    Ffmpeg {
        status: ExitStatus,
        stderr_tail: String,
    },
    /// ffprobe's verdict on an output FFmpeg said it wrote.
    #[error("FFmpeg exited 0 but its output is broken: {0}")]
    BrokenOutput(#[source] ProbeError),
    #[error(
        "output lasts {:.3} s but the input claims {:.3} s: the input is truncated or damaged, \
         or the disk filled up",
        secs(*actual), secs(*expected)
    )]
    TooShort { expected: u64, actual: u64 },
    #[error(
        "output lasts {:.3} s, longer than the input's {:.3} s: FFmpeg misread the input",
        secs(*actual), secs(*expected)
    )]
    TooLong { expected: u64, actual: u64 },
    #[error("output has no duration: the encode is incomplete")]
    NoDuration,
    #[error("cannot publish output: {}", describe_io(.0))]
    Publish(#[source] io::Error),
    #[error("cannot remove the temporary file: {}", describe_io(.0))]
    RemoveTemp(#[source] io::Error),
    /// The input cannot be probed.
    #[error(transparent)]
    Probe(ProbeError),
}

/// Microseconds as seconds.
fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}

/// `: <tail>` when FFmpeg said anything.
fn tail(stderr_tail: &str) -> String {
    if stderr_tail.is_empty() {
        String::new()
    } else {
        format!(": {stderr_tail}")
    }
}
