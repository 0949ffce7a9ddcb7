//! Checks a submission must pass before it is queued: limits, path shapes,
//! and that the inputs can be read and the output directory written, by
//! the client itself (see [`crate::access::vetted`]): what passes is returned as
//! vetted files, real path and identity, which every later use must match.
//!
//! Runs on a blocking thread ([`check`] touches the filesystem, which may
//! hang on a dead network mount), never on the runtime's workers.

use crate::access::vetted::{self, AccessError, Vetted};
use crate::access::{Judge, Want, describe_io};
use crate::proto::{MAX_LABELS, MAX_PRIORITY, MIN_PRIORITY, SubmitRequest};
use std::path::{Path, PathBuf};

/// The limits are the protocol's: the client checks them before sending,
/// and the request frame cap is derived from them.
pub use crate::proto::{MAX_INPUTS, MAX_JOB_VARIATIONS, MAX_PATH_BYTES, MAX_VARIATIONS};

/// A submission that passed: each input as given (it names the outputs)
/// with the file vetted for it, and the vetted output directory.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub inputs: Vec<(PathBuf, Vetted)>,
    pub output_dir: Vetted,
}

/// Why a submission is refused.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("no input files given")]
    NoInputs,
    #[error("{0} inputs in one job; at most {MAX_INPUTS} are accepted")]
    TooManyInputs(usize),
    #[error("variations must be between 1 and {MAX_VARIATIONS}, not {0}")]
    Variations(u32),
    #[error(
        "{0} variations in one job; at most {MAX_JOB_VARIATIONS} are accepted \
         (split the inputs over several jobs)"
    )]
    TooManyVariations(u64),
    #[error("path of {len} bytes is longer than {MAX_PATH_BYTES}: {start}...")]
    PathTooLong { len: usize, start: String },
    #[error("path is not absolute: {}", .0.display())]
    NotAbsolute(PathBuf),
    #[error(
        "input {} is a directory, not a video file (name the videos in it, e.g. DIR/*.mp4)",
        .0.display()
    )]
    InputIsDirectory(PathBuf),
    #[error("priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}, not {0}")]
    Priority(i32),
    #[error("{0} labels on one job; at most {MAX_LABELS} are accepted")]
    TooManyLabels(usize),
    /// A label is empty, too long or has a control character.
    #[error(transparent)]
    Label(#[from] crate::proto::LabelError),
    /// An input or the output directory cannot be used by the client;
    /// `what` names which ("input", "output directory").
    #[error("{}", unusable(what, given, source))]
    Unusable {
        what: &'static str,
        given: PathBuf,
        #[source]
        source: AccessError,
    },
}

impl Rejection {
    /// Whether a file is at fault (missing, unreadable), not the request's
    /// values.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Rejection::Unusable { .. })
    }
}

/// The client's message for a path that did not pass.
fn unusable(what: &str, given: &Path, err: &AccessError) -> String {
    match err {
        AccessError::Io { path, source } if path == given => {
            format!(
                "cannot use {what} {}: {}",
                given.display(),
                describe_io(source)
            )
        }
        AccessError::NotDirectory { .. } => {
            format!("{what} {} is not a directory", given.display())
        }
        AccessError::Denied { .. } => err.to_string(),
        other => format!("cannot use {what} {}: {other}", given.display()),
    }
}

/// Check a priority against [`MIN_PRIORITY`]..=[`MAX_PRIORITY`].
pub fn check_priority(priority: i32) -> Result<(), Rejection> {
    if (MIN_PRIORITY..=MAX_PRIORITY).contains(&priority) {
        Ok(())
    } else {
        Err(Rejection::Priority(priority))
    }
}

/// Check `req` against the limits and the filesystem, judging access by
/// `judge`, and vet its files.
///
/// Errors: a [`Rejection`]: values out of range, malformed paths, or
/// [`Rejection::Unusable`] for a missing input, a missing or non-directory
/// output directory, or "permission denied".
pub fn check(req: &SubmitRequest, judge: &Judge) -> Result<Admitted, Rejection> {
    if req.inputs.is_empty() {
        return Err(Rejection::NoInputs);
    }
    if req.inputs.len() > MAX_INPUTS {
        return Err(Rejection::TooManyInputs(req.inputs.len()));
    }
    if !(1..=MAX_VARIATIONS).contains(&req.variations) {
        return Err(Rejection::Variations(req.variations));
    }
    check_priority(req.priority)?;
    if req.labels.len() > MAX_LABELS {
        return Err(Rejection::TooManyLabels(req.labels.len()));
    }
    for label in &req.labels {
        crate::proto::check_label(label)?;
    }
    let total = req.inputs.len() as u64 * u64::from(req.variations);
    if total > MAX_JOB_VARIATIONS {
        return Err(Rejection::TooManyVariations(total));
    }
    for path in req.inputs.iter().chain([&req.output_dir]) {
        if path.as_os_str().len() > MAX_PATH_BYTES {
            return Err(Rejection::PathTooLong {
                len: path.as_os_str().len(),
                start: path.to_string_lossy().chars().take(60).collect(),
            });
        }
        if !path.is_absolute() {
            return Err(Rejection::NotAbsolute(path.clone()));
        }
    }
    let unusable = |what, given: &PathBuf| {
        let given = given.clone();
        move |source| Rejection::Unusable {
            what,
            given,
            source,
        }
    };
    let mut inputs = Vec::with_capacity(req.inputs.len());
    for input in &req.inputs {
        let walked = vetted::vet(input, judge, Want::Read).map_err(unusable("input", input))?;
        if walked.is_dir() {
            return Err(Rejection::InputIsDirectory(input.clone()));
        }
        inputs.push((input.clone(), walked.vetted()));
    }
    let out = &req.output_dir;
    let output_dir = vetted::vet(out, judge, Want::CreateIn)
        .map_err(unusable("output directory", out))?
        .vetted();
    Ok(Admitted { inputs, output_dir })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(inputs: usize, variations: u32) -> SubmitRequest {
        SubmitRequest {
            priority: 0,
            labels: Vec::new(),
            inputs: vec!["/etc/hostname".into(); inputs],
            variations,
            seed: None,
            output_dir: std::env::temp_dir(),
        }
    }

    fn refusal(r: &SubmitRequest) -> String {
        check(r, &Judge::Daemon).unwrap_err().to_string()
    }

    #[test]
    fn limits_are_enforced_with_their_numbers() {
        assert!(refusal(&req(0, 1)).contains("no input"));
        assert!(refusal(&req(1, 0)).contains("between 1 and 1000"));
        assert!(refusal(&req(1001, 1)).contains("at most 1000"));
        assert!(refusal(&req(11, 1000)).contains("at most 10000"));
        let mut long = req(1, 1);
        long.inputs[0] = format!("/{}", "a/".repeat(2100)).into();
        assert!(refusal(&long).contains("longer than 4096"));
        let mut relative = req(1, 1);
        relative.output_dir = "out".into();
        assert!(refusal(&relative).contains("not absolute"));
    }

    #[test]
    fn missing_paths_and_non_directories_are_bad_input() {
        let mut r = req(1, 1);
        r.inputs[0] = "/nonexistent/x.mp4".into();
        assert!(check(&r, &Judge::Daemon).unwrap_err().is_bad_input());
        let mut r = req(1, 1);
        r.output_dir = "/etc/hostname".into();
        assert!(refusal(&r).contains("not a directory"));
        let admitted = check(&req(1, 1), &Judge::Daemon).unwrap();
        assert_eq!(admitted.inputs[0].0, Path::new("/etc/hostname"));
    }
}
