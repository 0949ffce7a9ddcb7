//! A job to queue ([`SubmitRequest`]) and the limits on it: priorities,
//! labels (and [`check_label`], the rule both sides apply), inputs,
//! variations and path lengths. These limits also size the daemon's frame
//! cap (see `codec`).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Lowest job priority ([`SubmitRequest::priority`]).
pub const MIN_PRIORITY: i32 = -1000;
/// Highest job priority.
pub const MAX_PRIORITY: i32 = 1000;
/// Most labels on one job ([`SubmitRequest::labels`]).
pub const MAX_LABELS: usize = 16;
/// Longest label, in bytes.
pub const MAX_LABEL_BYTES: usize = 64;

/// Why a text cannot label a job; the message names the label, escaped
/// ([`crate::escape::escape`]) as vidvarctl shows names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("a label cannot be empty")]
    Empty,
    #[error("label \"{}\" is {len} bytes long; at most {MAX_LABEL_BYTES} are allowed", crate::escape::escape(.0), len = .0.len())]
    TooLong(String),
    #[error("label \"{}\" has a control character", crate::escape::escape(.0))]
    ControlCharacter(String),
}

/// Whether `label` may label a job: 1 to [`MAX_LABEL_BYTES`] bytes, no
/// control characters.
///
/// Errors: [`LabelError`], saying which rule it breaks.
pub fn check_label(label: &str) -> Result<(), LabelError> {
    if label.is_empty() {
        return Err(LabelError::Empty);
    }
    if label.len() > MAX_LABEL_BYTES {
        return Err(LabelError::TooLong(label.into()));
    }
    if label.chars().any(char::is_control) {
        return Err(LabelError::ControlCharacter(label.into()));
    }
    Ok(())
}

/// Most variations one input may ask for ([`SubmitRequest::variations`]).
pub const MAX_VARIATIONS: u32 = 1000;
/// Most input files in one job ([`SubmitRequest::inputs`]).
pub const MAX_INPUTS: usize = 1000;
/// Most variations in one job, over all its inputs.
pub const MAX_JOB_VARIATIONS: u64 = 10_000;
/// Longest path accepted in a [`SubmitRequest`], in bytes (Linux
/// `PATH_MAX`). With [`MAX_INPUTS`] it sets the largest request, and so
/// the daemon's frame cap
/// ([`codec::MAX_REQUEST_LEN`](super::codec::MAX_REQUEST_LEN)).
pub const MAX_PATH_BYTES: usize = 4096;

/// A job to queue. Its limits: [`MAX_INPUTS`] inputs, each path at most
/// [`MAX_PATH_BYTES`] bytes, 1 to [`MAX_VARIATIONS`] variations per input
/// and [`MAX_JOB_VARIATIONS`] in all; the daemon refuses more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitRequest {
    /// Input videos, absolute paths (the client resolves relative ones).
    pub inputs: Vec<PathBuf>,
    /// Variations per input, at least 1.
    pub variations: u32,
    /// Seed of the effect generator; the daemon picks one when `None`.
    pub seed: Option<u64>,
    /// Absolute directory the outputs are written to.
    pub output_dir: PathBuf,
    /// [`MIN_PRIORITY`]..=[`MAX_PRIORITY`]; higher is claimed first.
    pub priority: i32,
    /// At most [`MAX_LABELS`], each passing [`check_label`].
    pub labels: Vec<String>,
}
