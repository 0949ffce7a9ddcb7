//! `man/vidvarctl.1`, generated from the clap definition in ctl/cli.rs:
//! [`man_page_is_up_to_date`] fails when the page is out of date, and
//! `VIDVAR_UPDATE_MAN=1 cargo test --test man_pages` writes it anew.

use super::cli::Args;
use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};
use std::io::{self, Write};

const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/man/vidvarctl.1");
/// Date in the page's title line.
const DATE: &str = "2026-11-29";

/// Pieces of a page as roff text. Every piece that roff or clap_mangen
/// renders starts with the same preamble; it is kept once, at the top.
struct Page {
    text: String,
    preamble: String,
}

impl Page {
    fn new() -> Page {
        let preamble = Roff::new().render();
        Page {
            text: format!(
                ".\\\" Generated from ctl/cli.rs by tests/man_pages (clap_mangen).\n\
                 .\\\" Do not edit; update with: VIDVAR_UPDATE_MAN=1 cargo test --test man_pages\n\
                 {preamble}"
            ),
            preamble,
        }
    }

    /// Append what `render` writes; with `under_heading`, without the
    /// `.SH` line it starts with, so that it sits under a `.SS` instead.
    fn add(&mut self, render: impl FnOnce(&mut dyn Write) -> io::Result<()>, under_heading: bool) {
        let mut out = Vec::new();
        render(&mut out).expect("render to memory");
        let text = String::from_utf8(out).expect("roff is UTF-8");
        let mut text = text.strip_prefix(&self.preamble).unwrap_or(&text);
        if under_heading && text.starts_with(".SH") {
            text = text.split_once('\n').map_or("", |(_, rest)| rest);
        }
        self.text.push_str(text);
    }

    fn roff(&mut self, build: impl FnOnce(&mut Roff)) {
        let mut roff = Roff::new();
        build(&mut roff);
        self.add(|w| roff.to_writer(w), false);
    }
}

/// One `.SS` for command `name`: synopsis, description, its own arguments
/// and options (global options and --help are described once, above).
fn command_section(page: &mut Page, name: &str, sub: &clap::Command) {
    let sub = sub.clone().mut_args(|a| {
        if a.is_global_set() || a.get_id() == "help" {
            a.hide(true)
        } else {
            a
        }
    });
    let sub_man = Man::new(sub);
    page.roff(|r| {
        r.control("SS", [name]);
    });
    page.add(|w| sub_man.render_synopsis_section(w), true);
    page.roff(|r| {
        r.control("PP", []);
    });
    page.add(|w| sub_man.render_description_section(w), true);
    page.add(|w| sub_man.render_options_section(w), true);
}

/// The whole page: the top-level command as clap_mangen renders it, one
/// `.SS` per subcommand under COMMANDS (synopsis, description, its own
/// arguments and options; one per command of a command of commands, as
/// `folder add`), then exit status, environment and see also.
fn render() -> String {
    let mut cmd = Args::command().disable_help_subcommand(true);
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let man = Man::new(cmd.clone())
        .title("VIDVARCTL")
        .section("1")
        .date(DATE)
        .source(format!("vidvar {version}"))
        .manual("vidvar manual");
    let mut page = Page::new();
    page.add(|w| man.render_title(w), false);
    page.add(|w| man.render_name_section(w), false);
    page.add(|w| man.render_synopsis_section(w), false);
    page.add(|w| man.render_description_section(w), false);
    page.add(|w| man.render_options_section(w), false);
    page.roff(|r| {
        r.control("SH", ["COMMANDS"]);
    });
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_bin_name().unwrap_or(sub.get_name()).to_string();
        // A command of commands (`folder`): its description, then one
        // section per command under it (`folder add`...).
        let children: Vec<&clap::Command> = sub.get_subcommands().collect();
        if children.is_empty() {
            command_section(&mut page, &name, sub);
        } else {
            page.roff(|r| {
                r.control("SS", [name.as_str()]);
            });
            page.add(
                |w| Man::new(sub.clone()).render_description_section(w),
                true,
            );
            for child in children {
                let child_name = format!("{name} {}", child.get_name());
                command_section(&mut page, &child_name, child);
            }
        }
    }
    let exit_status = cmd
        .get_after_help()
        .map(|h| h.to_string())
        .unwrap_or_default();
    page.roff(|r| {
        r.control("SH", ["EXIT STATUS"]);
        r.text([roman(exit_status)]);
        r.control("SH", ["ENVIRONMENT"]);
        r.control("TP", []);
        r.text([bold("VIDVAR_SOCKET")]);
        r.text([
            roman("vidvard's socket, used when "),
            bold("--socket"),
            roman(" is not given."),
        ]);
        r.control("SH", ["SEE ALSO"]);
        r.text([
            bold("vidvard"),
            roman("(8), "),
            bold("vidvard.conf"),
            roman("(5)"),
        ]);
    });
    page.text
}

#[test]
fn man_page_is_up_to_date() {
    let page = render();
    if std::env::var_os("VIDVAR_UPDATE_MAN").is_some_and(|v| v == "1") {
        std::fs::write(PAGE, &page).expect("write man/vidvarctl.1");
        return;
    }
    let on_disk = std::fs::read_to_string(PAGE).unwrap_or_default();
    assert!(
        on_disk == page,
        "man/vidvarctl.1 is out of date with the command-line definition; \
         run `VIDVAR_UPDATE_MAN=1 cargo test --test man_pages` and commit the result"
    );
}
