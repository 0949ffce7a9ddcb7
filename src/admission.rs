//! Checks a submission must pass before it is queued: limits, path shapes,
//! and that the inputs can be read and the output directory written.
//!
//! Runs on a blocking thread ([`check`] touches the filesystem, which may
//! hang on a dead network mount), never on the runtime's workers. Access is
//! judged for the client itself in system mode ([`access::check`]) and by
//! the kernel for the daemon's own user otherwise (faccessat(2) with
//! `AT_EACCESS`).

use crate::access::{self, Peer, Want};
use crate::proto::SubmitRequest;
use crate::scheduler::{ApiError, describe_io};
use nix::fcntl::AtFlags;
use nix::unistd::AccessFlags;
use std::path::Path;

/// Most variations one input may ask for.
pub const MAX_VARIATIONS: u32 = 1000;
/// Most input files in one job.
pub const MAX_INPUTS: usize = 1000;
/// Most variations in one job, over all its inputs.
pub const MAX_JOB_VARIATIONS: u64 = 10_000;
/// Longest path accepted, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;

/// Whose permissions decide whether a path may be used.
#[derive(Debug, Clone)]
pub enum Judge {
    /// A client other than the daemon's user: Unix permission bits.
    Peer(Peer),
    /// The daemon's own user (user mode, or an administrator): the kernel.
    Daemon,
}

impl Judge {
    fn allows(&self, path: &Path, want: Want) -> Result<(), String> {
        match self {
            Judge::Peer(peer) => access::check(peer, path, want),
            Judge::Daemon => {
                let flags = match want {
                    Want::Read => AccessFlags::R_OK,
                    Want::CreateIn => AccessFlags::W_OK | AccessFlags::X_OK,
                };
                nix::unistd::faccessat(nix::fcntl::AT_FDCWD, path, flags, AtFlags::AT_EACCESS)
                    .map_err(|_| format!("permission denied: {}", path.display()))
            }
        }
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::Invalid(message)
}

/// Check `req` against the limits and the filesystem.
///
/// Errors: [`ApiError::Invalid`] for values out of range or malformed
/// paths; [`ApiError::BadInput`] for a missing input, a missing or non-
/// directory output directory, or "permission denied".
pub fn check(req: &SubmitRequest, judge: &Judge) -> Result<(), ApiError> {
    if req.inputs.is_empty() {
        return Err(invalid("no input files given".into()));
    }
    if req.inputs.len() > MAX_INPUTS {
        return Err(invalid(format!(
            "{} inputs in one job; at most {MAX_INPUTS} are accepted",
            req.inputs.len()
        )));
    }
    if !(1..=MAX_VARIATIONS).contains(&req.variations) {
        return Err(invalid(format!(
            "variations must be between 1 and {MAX_VARIATIONS}, not {}",
            req.variations
        )));
    }
    let total = req.inputs.len() as u64 * u64::from(req.variations);
    if total > MAX_JOB_VARIATIONS {
        return Err(invalid(format!(
            "{total} variations in one job; at most {MAX_JOB_VARIATIONS} are accepted \
             (split the inputs over several jobs)"
        )));
    }
    for path in req.inputs.iter().chain([&req.output_dir]) {
        if path.as_os_str().len() > MAX_PATH_BYTES {
            return Err(invalid(format!(
                "path of {} bytes is longer than {MAX_PATH_BYTES}: {}...",
                path.as_os_str().len(),
                path.to_string_lossy().chars().take(60).collect::<String>()
            )));
        }
        if !path.is_absolute() {
            return Err(invalid(format!("path is not absolute: {}", path.display())));
        }
    }
    for input in &req.inputs {
        std::fs::metadata(input).map_err(|err| {
            ApiError::BadInput(format!(
                "cannot use input {}: {}",
                input.display(),
                describe_io(&err)
            ))
        })?;
        judge
            .allows(input, Want::Read)
            .map_err(ApiError::BadInput)?;
    }
    let out = &req.output_dir;
    match std::fs::metadata(out) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(ApiError::BadInput(format!(
                "output directory {} is not a directory",
                out.display()
            )));
        }
        Err(err) => {
            return Err(ApiError::BadInput(format!(
                "cannot use output directory {}: {}",
                out.display(),
                describe_io(&err)
            )));
        }
    }
    judge
        .allows(out, Want::CreateIn)
        .map_err(ApiError::BadInput)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(inputs: usize, variations: u32) -> SubmitRequest {
        SubmitRequest {
            inputs: vec!["/etc/hostname".into(); inputs],
            variations,
            seed: None,
            output_dir: std::env::temp_dir(),
        }
    }

    fn refused(r: &SubmitRequest) -> String {
        check(r, &Judge::Daemon).unwrap_err().to_string()
    }

    #[test]
    fn limits_are_enforced_with_their_numbers() {
        assert!(refused(&req(0, 1)).contains("no input"));
        assert!(refused(&req(1, 0)).contains("between 1 and 1000"));
        assert!(refused(&req(1001, 1)).contains("at most 1000"));
        assert!(refused(&req(11, 1000)).contains("at most 10000"));
        let mut long = req(1, 1);
        long.inputs[0] = format!("/{}", "a/".repeat(2100)).into();
        assert!(refused(&long).contains("longer than 4096"));
        let mut relative = req(1, 1);
        relative.output_dir = "out".into();
        assert!(refused(&relative).contains("not absolute"));
    }

    #[test]
    fn missing_paths_and_non_directories_are_bad_input() {
        let mut r = req(1, 1);
        r.inputs[0] = "/nonexistent/x.mp4".into();
        assert!(matches!(
            check(&r, &Judge::Daemon),
            Err(ApiError::BadInput(_))
        ));
        let mut r = req(1, 1);
        r.output_dir = "/etc/hostname".into();
        assert!(refused(&r).contains("not a directory"));
        assert!(check(&req(1, 1), &Judge::Daemon).is_ok());
    }
}
