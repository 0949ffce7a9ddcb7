//! The programs the daemon runs (ffmpeg, ffprobe) as the settings name them:
//! found in `PATH` or by their path, made absolute, and refused when they
//! cannot run. This module never runs them.

use std::path::{Path, PathBuf};

/// Why a program (ffmpeg, ffprobe) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("no program given")]
    Empty,
    #[error("{} is not an executable file", .0.display())]
    NotExecutable(PathBuf),
    #[error("{} not found in PATH (install FFmpeg?)", .0.display())]
    NotFound(PathBuf),
    #[error("cannot resolve {}: {source}", path.display())]
    Resolve {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Whether `path` is a regular file (after symlinks) with an execute bit.
pub(super) fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The executable `program` names: itself when it holds a `/`, else the
/// first match in `PATH`; made absolute, since the daemon runs from `/`.
///
/// Errors: [`ProgramError`] when it is empty, missing or not executable.
pub fn find_program(program: &Path) -> Result<PathBuf, ProgramError> {
    if program.as_os_str().is_empty() {
        return Err(ProgramError::Empty);
    }
    if program.components().count() > 1 {
        return if is_executable_file(program) {
            std::path::absolute(program).map_err(|source| ProgramError::Resolve {
                path: program.to_path_buf(),
                source,
            })
        } else {
            Err(ProgramError::NotExecutable(program.to_path_buf()))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_absolute() && is_executable_file(p))
        .ok_or_else(|| ProgramError::NotFound(program.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_in_path_or_refused() {
        assert!(find_program(Path::new("sh")).unwrap().is_absolute());
        assert!(find_program(Path::new("/bin/sh")).is_ok());
        assert!(find_program(Path::new("")).is_err());
        assert!(find_program(Path::new("no-such-program-vidvar")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        assert!(find_program(&plain).is_err(), "not executable");
    }
}
