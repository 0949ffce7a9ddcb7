//! Claimed work as the engine gets it and hands it back: a probe or a
//! batch of variations to encode ([`Work`]), where their vetted files are
//! ([`Place`]), how a variation ended ([`Outcome`]), what a heartbeat
//! reports ([`Beat`]), what a stop interrupted ([`Interrupted`]) and the
//! completion hooks owed ([`HookRun`]). Plain data, fenced by a [`Lease`].

use super::Lease;
use crate::effects::Effects;
use crate::history::RunOutcome;
use crate::job::{Credentials, FileIdentity, JobId, Media, Quality};
use crate::process::ProcessIdentity;
use std::path::PathBuf;

/// The next thing the scheduler should start: one job's turn (README,
/// "Scheduling").
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// The file has not been probed yet.
    Probe {
        job_id: JobId,
        /// The claim; its id is the file's.
        lease: Lease,
        /// As given at submit, for messages.
        path: PathBuf,
        input: Place,
        owner: Credentials,
    },
    /// Queued variations of one probed file: never empty, all of the same
    /// job and file (`job_id`, `file_id`), at most the `slots` asked for,
    /// by index ascending. Each is claimed on its own ([`VariationWork::lease`])
    /// and holds one slot.
    Encode(Vec<VariationWork>),
}

/// Where a vetted file is and which file it must be: its real path and
/// identity, or for a job of an older version (no identity stored) the
/// path as given, vetted again when used.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub path: PathBuf,
    pub identity: Option<FileIdentity>,
}

/// Everything needed to encode one variation.
#[derive(Debug, Clone, PartialEq)]
pub struct VariationWork {
    pub job_id: JobId,
    pub file_id: i64,
    /// The claim; its id is the variation's.
    pub lease: Lease,
    /// 1-based.
    pub index: u32,
    /// Variations per input in the job: output numbers are padded to its
    /// width.
    pub variations: u32,
    /// The input as given at submit: it names the outputs.
    pub input: PathBuf,
    /// The input as vetted.
    pub input_place: Place,
    /// The output directory as vetted.
    pub output_dir: Place,
    /// What the input's probe found.
    pub media: Media,
    pub effects: Effects,
    /// The job's owner, as whom FFmpeg runs in system mode.
    pub owner: Credentials,
    /// What an earlier claim that was lost (its node died or stopped
    /// renewing) may have left: settled before this claim encodes.
    pub previous: Option<Box<Interrupted>>,
    /// The job was cancelled while that earlier claim ran: once its
    /// leftovers are settled the variation is recorded cancelled, never
    /// encoded.
    pub cancelled: bool,
}

/// How a variation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded {
        output: PathBuf,
        size: u64,
        /// The quality check's figures; `None` when the check is off.
        quality: Option<Quality>,
    },
    Failed {
        error: String,
    },
    Cancelled,
    /// Stopped to be claimed again later (`pause --stop`): the variation is
    /// queued again, or cancelled if its job was cancelled meanwhile.
    Requeued,
}

impl Outcome {
    /// How the history spells this outcome, and the lowest SSIM of a
    /// checked output.
    pub fn run_outcome(&self) -> (RunOutcome, Option<f64>) {
        match self {
            Outcome::Succeeded { quality, .. } => {
                (RunOutcome::Succeeded, quality.map(|q| q.ssim_min))
            }
            Outcome::Failed { .. } => (RunOutcome::Failed, None),
            Outcome::Cancelled => (RunOutcome::Cancelled, None),
            Outcome::Requeued => (RunOutcome::Requeued, None),
        }
    }
}

/// What a node reports every heartbeat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Beat {
    /// The claims of the variations it encodes.
    pub variations: Vec<Lease>,
    /// The claims of the files it probes.
    pub probes: Vec<Lease>,
    /// Progress of running files: `(file, sum of its running variations'
    /// percents)`.
    pub progress: Vec<(i64, f64)>,
    /// Its `max_parallel` now.
    pub slots: u32,
}

/// A variation that was running when the daemon last stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct Interrupted {
    /// The claim that was interrupted.
    pub lease: Lease,
    /// The name of its temporary file in the output directory.
    pub temp_path: Option<PathBuf>,
    /// The job's output directory as vetted.
    pub output_dir: Place,
    /// The temporary file's identity, once it was created.
    pub temp_identity: Option<FileIdentity>,
    /// FFmpeg's identity, when it had been spawned.
    pub process: Option<ProcessIdentity>,
}

/// A completion hook owed to a job that became final, claimed by this
/// daemon (node) to run.
#[derive(Debug, Clone, PartialEq)]
pub struct HookRun {
    pub job_id: JobId,
    /// As whom the hook runs when the daemon is root.
    pub owner: Credentials,
    /// Unix seconds when it was claimed, then when its program was
    /// started ([`Queue::starting_hook`](super::Queue::starting_hook)):
    /// its timeout counts from there.
    pub started_at: i64,
    /// Its process, once spawned; a run handed back
    /// ([`Queue::hooks_left_running`](super::Queue::hooks_left_running),
    /// [`Queue::adopt_hooks`](super::Queue::adopt_hooks)) always has one,
    /// on this machine and its current boot.
    pub process: Option<ProcessIdentity>,
}
