//! Text that stays one unambiguous line, for the client's text output and
//! for the daemon's log: [`escape`] makes control and bidirectional
//! formatting characters visible, [`capped`] bounds a string a client chose.
//!
//! It owns no policy about *what* is shown; callers decide that. It must
//! stay pure (no I/O), since both the daemon's logger and the client use it.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt::Write;

/// Whether `c` is a Unicode bidirectional formatting character (Unicode
/// Standard Annex #9, "Explicit Directional Formatting Characters"): the
/// marks U+200E, U+200F and U+061C, the embeddings and overrides U+202A to
/// U+202E, and the isolates U+2066 to U+2069. Shown raw, they reorder the
/// text around them on a terminal (a name can make `gpj.mp4` look like
/// `mp4.jpg`, the "Trojan Source" trick).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` as one field of a text record or log line: on one line and
/// unambiguous. A backslash becomes `\\`; tab, newline and carriage return
/// `\t`, `\n` and `\r`; any other control character (Unicode's Cc: U+0000
/// to U+001F, U+007F to U+009F) `\xHH`, its code point in two hex digits;
/// a bidirectional formatting character ([`is_bidi_control`]) or a line or
/// paragraph separator (U+2028, U+2029) `\u{HHHH}`;
/// the rest stays as it is. Bytes that are not UTF-8 show as U+FFFD (vidvar
/// takes UTF-8 paths only).
pub fn escape(text: impl AsRef<OsStr>) -> String {
    let text = text.as_ref().to_string_lossy();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            // Line and paragraph separators end a line for some viewers.
            c if is_bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Longest client-chosen string (a client name, a label, a path) that a
/// log line carries in full, in bytes; a longer one is [`capped`].
pub const LOGGED_STRING_MAX: usize = 256;

/// `text` cut to at most `max` bytes (on character boundaries): a longer
/// string keeps its head and its tail (where a path keeps its file name)
/// with `...` between them, so the result is at most `max + 3` bytes.
pub fn capped(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let half = max / 2;
    let mut head = half;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - half;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    Cow::Owned(format!("{}...{}", &text[..head], &text[tail..]))
}

/// A client-chosen string as a log line shows it: [`capped`] at
/// [`LOGGED_STRING_MAX`] bytes. (The logger [`escape`]s every line whole.)
pub fn logged(text: impl AsRef<OsStr>) -> String {
    let text = text.as_ref().to_string_lossy();
    capped(&text, LOGGED_STRING_MAX).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn escape_keeps_a_field_on_one_line_and_unambiguous() {
        assert_eq!(escape("plain é.mp4"), "plain é.mp4");
        assert_eq!(escape("a\nb\tc\rd"), "a\\nb\\tc\\rd");
        assert_eq!(
            escape("\u{1b}[31m\u{7f}\u{0}\u{85}"),
            "\\x1b[31m\\x7f\\x00\\x85"
        );
        // A backslash is doubled, so `\n` in a name is not a newline.
        assert_eq!(escape("a\\nb"), "a\\\\nb");
        assert_eq!(escape(Path::new("/in/x\ny.mp4")), "/in/x\\ny.mp4");
    }

    #[test]
    fn bidi_controls_are_shown_not_obeyed() {
        assert_eq!(escape("a\u{202e}4pm.exe"), "a\\u{202e}4pm.exe");
        for c in [
            '\u{061c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{2066}', '\u{2069}',
        ] {
            let shown = escape(c.to_string());
            assert!(shown.starts_with("\\u{"), "{c:?} gave {shown}");
        }
        assert_eq!(escape("a\u{2028}b"), "a\\u{2028}b");
        // Letters of right-to-left scripts are not controls.
        assert_eq!(escape("שלום"), "שלום");
    }

    #[test]
    fn capped_keeps_head_and_tail_within_the_bound() {
        assert_eq!(capped("short", 10), "short");
        let long = format!("/{}/name.mp4", "d".repeat(1000));
        let cut = capped(&long, 64);
        assert!(cut.len() <= 67, "{}", cut.len());
        assert!(cut.starts_with("/ddd") && cut.ends_with("name.mp4") && cut.contains("..."));
        // Multi-byte characters are never split.
        let wide = "é".repeat(300);
        let cut = capped(&wide, 255);
        assert!(cut.len() <= 258);
        assert!(cut.chars().all(|c| c == 'é' || c == '.'));
    }
}
