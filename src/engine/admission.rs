//! Checks a submission must pass before it is queued: limits, path shapes,
//! and that the inputs can be read and the output directory written, by
//! the client itself (see [`crate::access::vetted`]): what passes is returned as
//! vetted files, real path and identity, which every later use must match.
//!
//! Runs on a blocking thread ([`check`] touches the filesystem, which may
//! hang on a dead network mount), never on the runtime's workers.

use crate::access::vetted::{self, AccessError, Vetted};
use crate::access::{Judge, Want, describe_io};
use crate::folder::{AfterAction, FailedAction, FolderSpec, MAX_INTERVAL_SECS, nested};
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
    #[error("--{what} must be between 1 and {MAX_INTERVAL_SECS} seconds, not {secs}")]
    Interval { what: &'static str, secs: u32 },
    #[error(
        "output directory {} and watched directory {} are inside one another: outputs would \
         be taken as inputs",
        output_dir.display(), dir.display()
    )]
    Nested { dir: PathBuf, output_dir: PathBuf },
    #[error("{} would be watched again: move inputs out of the watched directory", .0.display())]
    MoveIntoFolder(PathBuf),
    /// An input or the output directory cannot be used by the client;
    /// `what` names which ("input", "output directory").
    #[error("{}", unusable_text(what, given, source))]
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
fn unusable_text(what: &str, given: &Path, err: &AccessError) -> String {
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

/// Each path at most [`MAX_PATH_BYTES`] long, and absolute.
fn check_paths<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) -> Result<(), Rejection> {
    for path in paths {
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
    Ok(())
}

/// The refusal of `given` (an input, the output directory...) for `source`.
fn unusable(what: &'static str, given: &Path) -> impl FnOnce(AccessError) -> Rejection {
    let given = given.to_path_buf();
    move |source| Rejection::Unusable {
        what,
        given,
        source,
    }
}

/// Check a watch folder as [`check`] checks a submission (its jobs' values,
/// `--settle` and `--poll` within 1..=[`MAX_INTERVAL_SECS`], one label
/// fewer than a job may carry, for `folder:ID`), and vet its directories
/// for `judge`: the watched one listed (read and search), and written too
/// when an action removes inputs from it; the output directory and those
/// inputs are moved to written. Returns the spec with their real paths.
///
/// Errors: a [`Rejection`]; [`Rejection::Nested`] when outputs would land
/// in the watched directory (or it in theirs), [`Rejection::MoveIntoFolder`]
/// when inputs would be moved where they are watched again.
pub fn check_folder(spec: &FolderSpec, judge: &Judge) -> Result<FolderSpec, Rejection> {
    if !(1..=MAX_VARIATIONS).contains(&spec.variations) {
        return Err(Rejection::Variations(spec.variations));
    }
    check_priority(spec.priority)?;
    if spec.labels.len() >= MAX_LABELS {
        return Err(Rejection::TooManyLabels(spec.labels.len() + 1));
    }
    for label in &spec.labels {
        crate::proto::check_label(label)?;
    }
    for (what, secs) in [("settle", spec.settle_secs), ("poll", spec.poll_secs)] {
        if !(1..=MAX_INTERVAL_SECS).contains(&secs) {
            return Err(Rejection::Interval { what, secs });
        }
    }
    let moves = [spec.after.move_dir(), spec.failed.move_dir()];
    let moves: Vec<PathBuf> = moves.into_iter().flatten().map(Path::to_path_buf).collect();
    check_paths([&spec.dir, &spec.output_dir].into_iter().chain(&moves))?;
    let removes = spec.after != AfterAction::Keep || spec.failed != FailedAction::Keep;
    let want = if removes { Want::CreateIn } else { Want::List };
    let dir = vetted::vet(&spec.dir, judge, want).map_err(unusable("folder", &spec.dir))?;
    if removes {
        dir.check(judge, Want::List)
            .map_err(unusable("folder", &spec.dir))?;
    }
    let dir = dir.real_path().to_path_buf();
    let writable = |what, path: &Path| {
        vetted::vet(path, judge, Want::CreateIn)
            .map(|w| w.real_path().to_path_buf())
            .map_err(unusable(what, path))
    };
    let output_dir = writable("output directory", &spec.output_dir)?;
    if nested(&dir, &output_dir) {
        return Err(Rejection::Nested { dir, output_dir });
    }
    let moved_to = |target: Option<&Path>| -> Result<Option<PathBuf>, Rejection> {
        let Some(target) = target else {
            return Ok(None);
        };
        let real = writable("directory to move inputs to", target)?;
        if real == dir || (spec.recursive && real.starts_with(&dir)) {
            return Err(Rejection::MoveIntoFolder(real));
        }
        Ok(Some(real))
    };
    let after = match moved_to(spec.after.move_dir())? {
        Some(real) => AfterAction::Move(real),
        None => spec.after.clone(),
    };
    let failed = match moved_to(spec.failed.move_dir())? {
        Some(real) => FailedAction::Move(real),
        None => spec.failed.clone(),
    };
    Ok(FolderSpec {
        dir,
        output_dir,
        after,
        failed,
        ..spec.clone()
    })
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
    check_paths(req.inputs.iter().chain([&req.output_dir]))?;
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

    /// A folder spec watching `dir`, writing to `out`.
    fn folder(dir: &Path, out: &Path) -> FolderSpec {
        FolderSpec {
            dir: dir.into(),
            output_dir: out.into(),
            variations: 1,
            priority: 0,
            labels: Vec::new(),
            settle_secs: 1,
            poll_secs: 1,
            poll_only: false,
            recursive: false,
            after: AfterAction::Keep,
            failed: FailedAction::Keep,
        }
    }

    #[test]
    fn folders_that_would_feed_themselves_or_are_out_of_range_are_refused() {
        let base = tempfile::tempdir().unwrap();
        let base = base.path().canonicalize().unwrap();
        let (dir, out, done) = (base.join("in"), base.join("out"), base.join("in/done"));
        for d in [&dir, &out, &done] {
            std::fs::create_dir_all(d).unwrap();
        }
        let refusal =
            |spec: FolderSpec| check_folder(&spec, &Judge::Daemon).unwrap_err().to_string();
        let ok = check_folder(&folder(&dir, &out), &Judge::Daemon).unwrap();
        assert_eq!((ok.dir, ok.output_dir), (dir.clone(), out.clone()));
        assert!(refusal(folder(&dir, &done)).contains("inside one another"));
        assert!(refusal(folder(&done, &dir)).contains("inside one another"));
        assert!(
            refusal(FolderSpec {
                settle_secs: 0,
                ..folder(&dir, &out)
            })
            .contains("--settle")
        );
        assert!(
            refusal(FolderSpec {
                poll_secs: 86_401,
                ..folder(&dir, &out)
            })
            .contains("--poll")
        );
        let labels = vec!["l".to_string(); MAX_LABELS];
        assert!(
            refusal(FolderSpec {
                labels,
                ..folder(&dir, &out)
            })
            .contains("labels")
        );
        let into = |recursive| FolderSpec {
            recursive,
            after: AfterAction::Move(done.clone()),
            ..folder(&dir, &out)
        };
        assert!(
            check_folder(&into(false), &Judge::Daemon).is_ok(),
            "not scanned"
        );
        assert!(refusal(into(true)).contains("watched again"));
        let same = FolderSpec {
            failed: FailedAction::Move(dir.clone()),
            ..folder(&dir, &out)
        };
        assert!(refusal(same).contains("watched again"));
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
