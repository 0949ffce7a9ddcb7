//! Names of the files a variation makes: its hidden temporary file and
//! its output `<stem>_v<NN>.mp4`. Pure.

use crate::job::Lease;
use std::ffi::OsString;
use std::path::Path;

/// The name of the temporary file of variation `index` (1-based) of
/// `input` under claim `lease`: hidden, kept in the output directory (so
/// that publishing is a link on one filesystem), unique by the variation's
/// id and the claim's attempt, so that a node that lost its claim never
/// touches the file of the claim after it.
pub fn temp_name(input: &Path, index: u32, lease: Lease) -> OsString {
    format!(
        ".{}_v{index:02}.vidvar-{}-{}.part",
        stem(input),
        lease.id,
        lease.attempt
    )
    .into()
}

/// Longest stem kept in output names, in bytes, so that names stay within
/// NAME_MAX (255 bytes) with their suffixes.
const MAX_STEM_BYTES: usize = 200;

/// The input's name without extension, for output names: leading dots
/// dropped (outputs are never hidden), cut to [`MAX_STEM_BYTES`] on a
/// character boundary, `video` when nothing is left.
fn stem(input: &Path) -> String {
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let name = name.trim_start_matches('.');
    let stem = match name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => name,
    };
    let mut end = stem.len().min(MAX_STEM_BYTES);
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    match &stem[..end] {
        "" => "video".into(),
        cut => cut.into(),
    }
}

/// `<stem>_v<NN>.mp4`: the name of output number `n` of `input` in a job
/// of `count` variations per input. `NN` is padded with zeros to the width
/// of `count`, at least 2 digits, so that a directory listing sorts the
/// outputs in order (`_v0001` ... `_v1000`).
pub fn output_name(input: &Path, n: u32, count: u32) -> OsString {
    let width = count.max(10).ilog10() as usize + 1;
    format!("{}_v{n:0width$}.mp4", stem(input)).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_numbers_are_as_wide_as_the_count_so_names_sort() {
        let a = Path::new("/in/a.mp4");
        assert_eq!(output_name(a, 1, 1), "a_v01.mp4");
        assert_eq!(output_name(a, 7, 100), "a_v007.mp4");
        assert_eq!(output_name(a, 100, 100), "a_v100.mp4");
        let mut names: Vec<_> = (1..=1000).map(|n| output_name(a, n, 1000)).collect();
        let in_order = names.clone();
        names.sort();
        assert_eq!(names, in_order);
        // A name taken already makes the next number, which may be wider.
        assert_eq!(output_name(a, 100, 99), "a_v100.mp4");
    }

    #[test]
    fn names_fit_the_filesystem_and_are_never_hidden() {
        use std::os::unix::ffi::OsStrExt;
        let long = format!("/in/{}.mp4", "é".repeat(200));
        let long = Path::new(&long);
        let lease = Lease { id: 77, attempt: 3 };
        for name in [temp_name(long, 1000, lease), output_name(long, 1000, 1000)] {
            assert!(name.len() <= 255, "{} bytes", name.len());
            assert!(
                std::str::from_utf8(name.as_bytes()).is_ok(),
                "cut on a char boundary"
            );
        }
        assert_eq!(output_name(Path::new("/in/.mp4"), 1, 3), "mp4_v01.mp4");
        assert_eq!(output_name(Path::new("/in/..."), 2, 10), "video_v02.mp4");
        assert_eq!(output_name(Path::new("/in/a b.mov"), 12, 99), "a b_v12.mp4");
        assert_eq!(
            temp_name(Path::new("/in/a.mov"), 3, lease),
            ".a_v03.vidvar-77-3.part"
        );
    }
}
