//! What the unit tests of the argv builders share: a variation's effects and
//! ways to read an argv. Tests only.

use crate::effects::Effects;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

pub(super) fn is_file_url(arg: &&OsString) -> bool {
    arg.as_bytes().starts_with(b"file:/")
}

pub(super) fn effects() -> Effects {
    Effects {
        rotation: 0.004321,
        brightness: -0.012,
        contrast: 1.03,
        saturation: 0.96,
    }
}

pub(super) fn joined(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ")
}
