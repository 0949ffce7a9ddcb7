//! Why a probe or a variation failed: [`Failure`], rendered to text once,
//! where the reason is stored with the file or variation.

use crate::access::describe_io;
use crate::access::vetted::AccessError;
use crate::engine::supervisor::SupervisorError;
use crate::ffmpeg::check::CheckError;
use crate::ffmpeg::probe::ProbeError;
use crate::job::Quality;
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
    #[error("the warp stage (vidvar-stage) failed ({status}){}", tail(stderr_tail))]
    Stage {
        status: ExitStatus,
        stderr_tail: String,
    },
    #[error("cannot run the pipeline: {0}")]
    Pipeline(String),
    #[error(
        "FFmpeg encoded {:.3} s but the input's video and audio last {:.3} s: the input \
         ends early (damaged or cut short)",
        secs(*encoded), secs(*expected)
    )]
    /// Both in microseconds.
    TooShort { expected: u64, encoded: u64 },
    #[error(
        "FFmpeg encoded {:.3} s, longer than the input's {:.3} s: it misread the input's \
         timestamps",
        secs(*encoded), secs(*expected)
    )]
    /// Both in microseconds.
    TooLong { expected: u64, encoded: u64 },
    #[error("FFmpeg exited 0 but reported nothing encoded")]
    NothingEncoded,
    #[error("FFmpeg exited 0 but encoded no video frame: the input's video stream is empty")]
    NoFrame,
    #[error("cannot keep the check's reference pictures: {0}")]
    CheckFile(#[source] io::Error),
    /// The check could not run, or could not decode the output.
    #[error("{}", check_failed(.0))]
    Check(#[source] CheckError),
    #[error(
        "FFmpeg exited 0 but its output is broken or short: only {decoded} of the {expected} \
         sampled frames over the input's video stream decode"
    )]
    SamplesMissing { decoded: u32, expected: u32 },
    #[error("the quality check printed no figures")]
    NoFigures,
    /// The output does not show the input with the effects: black, frozen,
    /// discoloured, another video, or badly damaged by the encoder.
    #[error(
        "the output does not look like the input with its effects: SSIM {:.4} on its worst \
         of {} sampled frames (mean {:.4}, luma difference {:.1}), below min_ssim = {floor}",
        quality.ssim_min, quality.samples, quality.ssim_mean, quality.luma_diff
    )]
    LooksWrong { quality: Quality, floor: f64 },
    #[error("cannot publish output: {}", describe_io(.0))]
    Publish(#[source] io::Error),
    #[error("cannot remove the temporary file: {}", describe_io(.0))]
    RemoveTemp(#[source] io::Error),
    /// The input cannot be probed.
    #[error(transparent)]
    Probe(ProbeError),
}

impl Failure {
    /// The class of this failure, for the history and `vidvarctl stats`
    /// (README, "History"): `input`, `output`, `no_space`, `claim_lost`,
    /// `stalled`, `ffmpeg`, `stage`, `process`, `duration`, `check`,
    /// `quality`, `probe` or `internal`.
    pub fn class(&self) -> &'static str {
        match self {
            Failure::InputChanged(_)
            | Failure::InputDenied
            | Failure::InputIo(_)
            | Failure::InputUnusable(_)
            | Failure::InputIsDirectory
            | Failure::InputNotRegular
            | Failure::InputEmpty => "input",
            Failure::OutputDirChanged(_)
            | Failure::OutputDirDenied(_)
            | Failure::OutputDirUnusable(_)
            | Failure::FreeSpaceUnknown { .. }
            | Failure::CreateTemp { .. }
            | Failure::Publish(_)
            | Failure::RemoveTemp(_) => "output",
            Failure::NoSpace { .. } => "no_space",
            Failure::LostClaimLeftovers(_) | Failure::ClaimLost => "claim_lost",
            Failure::Stalled(_) => "stalled",
            Failure::Ffmpeg { .. } => "ffmpeg",
            Failure::Stage { .. } => "stage",
            Failure::Supervisor(_) | Failure::Pipeline(_) => "process",
            Failure::TooShort { .. }
            | Failure::TooLong { .. }
            | Failure::NothingEncoded
            | Failure::NoFrame => "duration",
            Failure::Check(_) | Failure::SamplesMissing { .. } | Failure::NoFigures => "check",
            Failure::LooksWrong { .. } => "quality",
            Failure::Probe(_) => "probe",
            Failure::Credentials(_) | Failure::Blocking(_) | Failure::CheckFile(_) => "internal",
        }
    }
}

/// Why the check failed, in words for the job's owner: a broken output, or
/// a check that could not be done (which says nothing of the output).
fn check_failed(err: &CheckError) -> String {
    match err {
        CheckError::Undecodable(_) => format!("FFmpeg exited 0 but its output is broken: {err}"),
        CheckError::Spawn { .. } | CheckError::Timeout(_) => {
            format!("cannot check the output: {err}")
        }
    }
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
