//! The manual pages in `man/`: each formats with groff without a single
//! warning, and the hand-written ones keep up with the code: vidvard.8
//! describes every long flag `vidvard --help` prints and no other,
//! vidvard.conf.5 every key of the configuration file and no other.
//! vidvarctl.1 is generated from the client's command line
//! ([`vidvarctl_page`]).

/// The client's clap definition: only the command it builds is used here.
#[allow(dead_code)]
#[path = "../ctl/cli.rs"]
mod cli;
mod common;
#[path = "man_pages/vidvarctl_page.rs"]
mod vidvarctl_page;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

const VIDVARD: &str = env!("CARGO_BIN_EXE_vidvard");
const PAGES: [&str; 3] = ["vidvard.8", "vidvard.conf.5", "vidvarctl.1"];

fn page_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("man")
        .join(name)
}

fn read_page(name: &str) -> String {
    std::fs::read_to_string(page_path(name))
        .unwrap_or_else(|e| panic!("cannot read man/{name}: {e}"))
}

/// A line of roff as a reader sees its words: `\-` as `-`, font changes,
/// zero-width and thin spaces and `\(dq` quotes removed.
fn plain(line: &str) -> String {
    let mut out = line.replace("\\-", "-").replace("\\(dq", "");
    for escape in ["\\fB", "\\fI", "\\fR", "\\fP", "\\&", "\\|", "\\^", "\""] {
        out = out.replace(escape, "");
    }
    out
}

/// The lines of section `.SH name` (up to the next `.SH`).
fn section<'a>(page: &'a str, name: &str) -> Vec<&'a str> {
    let heading = format!(".SH {name}");
    page.lines()
        .skip_while(|l| l.trim() != heading)
        .skip(1)
        .take_while(|l| !l.starts_with(".SH"))
        .collect()
}

/// The tag lines of the `.TP` entries of a section, as plain text.
fn tags(lines: &[&str]) -> Vec<String> {
    lines
        .windows(2)
        .filter(|w| w[0].trim() == ".TP")
        .map(|w| plain(w[1]))
        .collect()
}

/// Words of `text` that look like long options.
fn long_flags(text: &str) -> BTreeSet<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '(' | ')' | '|'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.split(['=', '<']).next().unwrap_or(w).to_string())
        .collect()
}

#[test]
fn pages_format_without_warnings() {
    let Ok(version) = Command::new("groff").arg("--version").output() else {
        panic!("groff is not installed (Debian/Ubuntu: apt-get install groff-base)");
    };
    assert!(version.status.success());
    for name in PAGES {
        // The default device, and the terminal one man(1) uses.
        for device in [None, Some("-Tutf8")] {
            let mut groff = Command::new("groff");
            groff.args(["-man", "-ww", "-z"]).args(device);
            let out = groff.arg(page_path(name)).output().expect("run groff");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && stderr.is_empty(),
                "groff -man -ww -z {} man/{name}: {}\n{stderr}",
                device.unwrap_or(""),
                out.status
            );
        }
    }
}

#[test]
fn vidvard_8_documents_exactly_the_flags_of_vidvard_help() {
    let help = Command::new(VIDVARD).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    // Option lines start with the option: "      --foreground", "  -h, --help".
    let flags: BTreeSet<String> = help
        .lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .flat_map(long_flags)
        .collect();
    assert!(
        flags.contains("--foreground") && flags.len() > 5,
        "{flags:?}"
    );

    let page = read_page("vidvard.8");
    let documented: BTreeSet<String> = tags(&section(&page, "OPTIONS"))
        .iter()
        .flat_map(|tag| long_flags(tag))
        .collect();
    let missing: Vec<_> = flags.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "man/vidvard.8 has no OPTIONS entry for {missing:?}"
    );
    let unknown: Vec<_> = documented.difference(&flags).collect();
    assert!(
        unknown.is_empty(),
        "man/vidvard.8 documents {unknown:?}, which vidvard --help does not know"
    );
    // The synopsis shows them too.
    let synopsis = long_flags(&plain(&section(&page, "SYNOPSIS").join(" ")));
    let missing: Vec<_> = flags.difference(&synopsis).collect();
    assert!(missing.is_empty(), "not in the SYNOPSIS: {missing:?}");
}

/// The fields of `FileSettings` in src/config/file.rs, which are the keys of the
/// configuration file.
fn file_settings_fields() -> BTreeSet<String> {
    let source = include_str!("../src/config/file.rs");
    let body = source
        .split_once("pub struct FileSettings {")
        .expect("src/config/file.rs defines FileSettings")
        .1;
    let body = body.split_once("\n}").expect("end of FileSettings").0;
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        .collect()
}

#[test]
fn vidvard_conf_5_documents_exactly_the_keys_of_the_file() {
    let keys = file_settings_fields();
    assert!(keys.contains("max_parallel"), "{keys:?}");
    assert_eq!(
        keys,
        common::config_keys(),
        "FileSettings' fields and the keys vidvard accepts differ"
    );

    let page = read_page("vidvard.conf.5");
    // Entries look like `.BR key " = \fItype\fR"`.
    let documented: BTreeSet<String> = tags(&section(&page, "KEYS"))
        .iter()
        .filter_map(|tag| {
            let words = tag.strip_prefix(".BR ").or(tag.strip_prefix(".B "))?;
            Some(words.split_whitespace().next()?.to_string())
        })
        .collect();
    let missing: Vec<_> = keys.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "man/vidvard.conf.5 has no KEYS entry for {missing:?}"
    );
    let unknown: Vec<_> = documented.difference(&keys).collect();
    assert!(
        unknown.is_empty(),
        "man/vidvard.conf.5 documents {unknown:?}, which are not keys of the file"
    );
}

#[test]
fn pages_name_the_current_version() {
    let version = concat!("vidvar ", env!("CARGO_PKG_VERSION"));
    for name in PAGES {
        let page = read_page(name);
        let title = page
            .lines()
            .find(|l| l.starts_with(".TH "))
            .unwrap_or_else(|| panic!("man/{name} has no .TH line"));
        assert!(
            title.contains(version),
            "man/{name}: {title:?} does not name {version}"
        );
    }
}
