//! Human-readable output of daemon answers: the text records of `status`,
//! `list`, `outputs`, `nodes` and `ping`, and the lines of `watch`.
//!
//! Every figure is the daemon's (progress as [`vidvar::job`] measures
//! it), shown by [`percent`] and [`amount`], never worked out here; every
//! name, path or message from the daemon goes through [`escape`], so that
//! a record stays on one line whatever a file is called.

use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;
use vidvar::proto::{
    FileState, FileStatus, JobDetail, JobSummary, NodeInfo, OutputInfo, Pong, RunTotals,
    RunningVariation, StatsReport,
};

pub use vidvar::escape::escape;

/// A percent of the daemon's (0 to 100) as every view shows it: `50.0%`.
pub fn percent(value: f64) -> String {
    format!("{value:.1}%")
}

/// A file's progress: its [`percent`], or the encoded media time when the
/// input's duration is unknown (no percent is invented then): `12.5s`.
pub fn amount(f: &FileStatus) -> String {
    match f.encoded_secs {
        Some(secs) => format!("{secs:.1}s"),
        None => percent(f.progress),
    }
}

/// The last component of `path` ([`escape`]d), or all of it when it has
/// none.
pub fn file_name(path: &Path) -> String {
    escape(raw_file_name(path))
}

/// [`file_name`] before it is escaped (bytes not UTF-8 as U+FFFD).
pub fn raw_file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// The terminal cells `text` takes: the sum of its grapheme clusters'
/// widths (UAX #29 clusters, UAX #11 widths, as ratatui lays text out): a
/// CJK character or an emoji, even one joined from several with ZWJ or a
/// flag of two regional indicators, takes two; a combining mark none.
pub fn cells(text: &str) -> usize {
    text.graphemes(true).map(UnicodeWidthStr::width).sum()
}

/// `text` padded with spaces to at least `width` terminal [`cells`], as
/// `{:<width}` pads ASCII.
pub fn pad(text: &str, width: usize) -> String {
    let shown = cells(text);
    format!("{text}{}", " ".repeat(width.saturating_sub(shown)))
}

/// `text` [`escape`]d and cut to at most `width` terminal [`cells`], never
/// inside a grapheme cluster or a character's escape (`\x1b` is kept
/// whole or dropped whole).
pub fn escape_cut(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for cluster in text.graphemes(true) {
        let shown = escape(cluster);
        used += cells(&shown);
        if used > width {
            break;
        }
        out.push_str(&shown);
    }
    out
}

/// An estimated remaining time, rounded to the second: `eta 1m 5s`, or
/// `eta ?` when the daemon cannot tell yet.
pub fn eta(secs: Option<f64>) -> String {
    match secs {
        Some(s) => format!(
            "eta {}",
            humantime::format_duration(Duration::from_secs(s.max(0.0).round() as u64))
        ),
        None => "eta ?".into(),
    }
}

/// The line `status` starts with while the daemon is paused.
pub const DAEMON_PAUSED: &str = "vidvard is paused: no new work starts until `vidvarctl resume`\n";

/// A job's state as a column: `*` marks a job paused by its owner.
fn state_of(s: &JobSummary) -> String {
    let mark = if s.paused { "*" } else { "" };
    format!("{}{mark}", s.state.as_str())
}

/// Unix seconds as RFC 3339 (UTC, seconds).
pub fn time(unix: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64))
        .to_string()
}

/// `status JOB`: the job, then one block per input.
pub fn detail(d: &JobDetail) -> String {
    let s = &d.summary;
    let mut out = if d.daemon_paused && !s.state.is_final() {
        DAEMON_PAUSED.to_owned()
    } else {
        String::new()
    };
    let open = !s.state.is_final();
    let _ = write!(
        out,
        "job {}: {}{} {}{}\n  created {}, {} input(s) x {} variation(s), seed {}, priority {}\n",
        s.id,
        s.state.as_str(),
        if s.paused { " (paused)" } else { "" },
        percent(s.progress),
        if open {
            format!(", {}", eta(s.eta_secs))
        } else {
            String::new()
        },
        time(s.created_at),
        s.inputs,
        s.variations,
        d.seed,
        s.priority,
    );
    if !s.labels.is_empty() {
        let labels: Vec<String> = s.labels.iter().map(escape).collect();
        let _ = writeln!(out, "  labels {}", labels.join(", "));
    }
    let _ = writeln!(out, "  output dir {}", escape(&d.output_dir));
    for f in &d.files {
        out.push_str(&format!(
            "  {:<9} {:>6}  {}/{}  {}\n",
            f.state.as_str(),
            amount(f),
            f.done_variations,
            s.variations,
            escape(&f.path)
        ));
        for v in &f.running {
            let _ = writeln!(out, "      {}", running(v));
        }
        if f.state == FileState::Running {
            let _ = writeln!(out, "      {}", eta(f.eta_secs));
        }
        if !f.nodes.is_empty() {
            let nodes: Vec<String> = f.nodes.iter().map(escape).collect();
            out.push_str(&format!("      on {}\n", nodes.join(", ")));
        }
        if let Some(error) = &f.error {
            for line in error.lines() {
                out.push_str(&format!("      {}\n", escape(line)));
            }
        }
    }
    out
}

/// A running variation in `status JOB`: `variation 1: 44.2% at 3.50x,
/// 107.0 fps` (`speed ?`, `fps ?` until FFmpeg reports them), then `on
/// NODE` on a shared queue. Another node's progress is unknown here: its
/// figures show as `-`, as `top` shows them.
fn running(v: &RunningVariation) -> String {
    let node = v
        .node
        .as_ref()
        .map_or(String::new(), |n| format!(" on {}", escape(n)));
    let Some(done) = v.percent else {
        return format!("variation {}: - at -, - fps{node}", v.index);
    };
    format!(
        "variation {}: {} at {}, {}{node}",
        v.index,
        percent(done),
        v.speed.map_or("speed ?".into(), |x| format!("{x:.2}x")),
        v.fps.map_or("fps ?".into(), |x| format!("{x:.1} fps")),
    )
}

/// `list`: a header and one line per job.
pub fn summaries(jobs: &[JobSummary]) -> String {
    let mut out = format!(
        "{:>5}  {:<10}  {:>6}  {:>6}  {:>10}  {:>8}  {:<20}  {}\n",
        "JOB", "STATE", "DONE", "INPUTS", "VARIATIONS", "PRIORITY", "CREATED", "LABELS"
    );
    for j in jobs {
        let labels: Vec<String> = j.labels.iter().map(escape).collect();
        let line = format!(
            "{:>5}  {:<10}  {:>6}  {:>6}  {:>10}  {:>8}  {:<20}  {}",
            j.id,
            state_of(j),
            percent(j.progress),
            j.inputs,
            j.variations,
            j.priority,
            time(j.created_at),
            labels.join(",")
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// `outputs`: one tab-separated line per file: path, size in bytes, input,
/// index, effects, the quality check's figures (`unchecked` when there are
/// none), and the node that made it when there is one; names [`escape`]d.
pub fn outputs(list: &[OutputInfo]) -> String {
    list.iter()
        .map(|o| {
            let node = o
                .node
                .as_ref()
                .map_or(String::new(), |n| format!("\tnode={}", escape(n)));
            let quality = o.quality.map_or("unchecked".into(), |q| {
                format!(
                    "ssim={:.4} ssim_min={:.4} luma_diff={:.2} samples={}",
                    q.ssim_mean, q.ssim_min, q.luma_diff, q.samples
                )
            });
            format!(
                "{}\t{}\t{}\t{}\trotation={} brightness={} contrast={} saturation={}\t{quality}{node}\n",
                escape(&o.path),
                o.size,
                escape(&o.input),
                o.index,
                o.effects.rotation,
                o.effects.brightness,
                o.effects.contrast,
                o.effects.saturation
            )
        })
        .collect()
}

/// `nodes`: a header and one line per node.
pub fn nodes(list: &[NodeInfo]) -> String {
    let mut out = format!(
        "{:<20}  {:<7}  {:>5}  {:>7}  {:<20}  {}\n",
        "NODE", "STATE", "SLOTS", "RUNNING", "LAST HEARTBEAT", "HOST"
    );
    for n in list {
        out.push_str(&format!(
            "{}  {:<7}  {:>5}  {:>7}  {:<20}  {}\n",
            pad(&escape(&n.name), 20),
            n.state.as_str(),
            n.slots,
            n.running,
            time(n.last_heartbeat),
            escape(&n.host)
        ));
    }
    out
}

/// `stats`: whose runs since when, the totals, the SSIM distribution, the
/// failures by class, then the totals per node.
pub fn stats(r: &StatsReport) -> String {
    let whose = if r.everyone { "all jobs" } else { "your jobs" };
    let label = r
        .label
        .as_ref()
        .map_or(String::new(), |l| format!(" labelled {}", escape(l)));
    let mut out = format!(
        "Variations ended since {} ({whose}{label}):\n",
        time(r.since)
    );
    out.push_str(&totals(&r.total));
    let s = &r.ssim;
    if s.checked > 0 {
        let figure = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.4}"));
        let spread: Vec<String> = s
            .buckets
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(bound, n)| format!("<={bound}: {n}"))
            .collect();
        let _ = writeln!(
            out,
            "  SSIM (lowest)  {} checked, lowest {}, median {}; {}",
            s.checked,
            figure(s.lowest),
            figure(s.median),
            spread.join(", ")
        );
    }
    if !r.failures.is_empty() {
        let classes: Vec<String> = r
            .failures
            .iter()
            .map(|f| format!("{} {}", escape(&f.reason), f.count))
            .collect();
        let _ = writeln!(out, "  failures       {}", classes.join(", "));
    }
    for n in &r.nodes {
        let _ = writeln!(out, "node {}:", escape(&n.node));
        out.push_str(&totals(&n.totals));
    }
    out
}

/// Two lines of [`stats`]: outcomes, then time and speed.
fn totals(t: &RunTotals) -> String {
    let speed = t.mean_speed.map_or("-".into(), |s| format!("{s:.2}x"));
    format!(
        "  variations     {} succeeded, {} failed, {} cancelled, {} requeued\n\
         \x20 encoded        {:.1} s of media in {:.1} s of wall time (mean speed {speed}), \
         {:.1} CPU s\n",
        t.succeeded, t.failed, t.cancelled, t.requeued, t.encoded_secs, t.wall_secs, t.cpu_secs
    )
}

/// Inputs named on one `watch` line; the others are counted.
const LINE_FILES: usize = 4;

/// One line of `watch`: overall progress, then the inputs being worked on
/// (at most [`LINE_FILES`]) and how many are done.
pub fn progress_line(d: &JobDetail) -> String {
    let mut line = format!(
        "job {}: {} {} {}",
        d.summary.id,
        state_of(&d.summary),
        percent(d.summary.progress),
        eta(d.summary.eta_secs)
    );
    let running: Vec<&FileStatus> = d
        .files
        .iter()
        .filter(|f| f.state == FileState::Running)
        .collect();
    for f in running.iter().take(LINE_FILES) {
        line.push_str(&format!(
            " | {} {} ({}/{})",
            file_name(&f.path),
            amount(f),
            f.done_variations,
            d.summary.variations
        ));
    }
    if running.len() > LINE_FILES {
        line.push_str(&format!(" | {} more running", running.len() - LINE_FILES));
    }
    let done = d.files.iter().filter(|f| f.state.is_final()).count();
    if d.files.len() > 1 {
        line.push_str(&format!(" | {done}/{} inputs done", d.files.len()));
    }
    line
}

pub fn pong(p: &Pong) -> String {
    let node = p
        .node
        .as_ref()
        .map_or(String::new(), |n| format!(", node {}", escape(n)));
    format!(
        "vidvard {} (protocol {}){node}, up {}, {} job(s) queued or running, {} FFmpeg \
         process(es){}\n",
        p.daemon_version,
        p.protocol,
        humantime::format_duration(Duration::from_secs(p.uptime_secs)),
        p.queue_depth,
        p.running_processes,
        if p.paused { ", paused" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_counted_in_terminal_cells_not_characters() {
        // Each of these CJK characters takes two cells.
        assert_eq!(escape_cut("日本語.mp4", 5), "日本");
        assert_eq!(pad(&escape_cut("日本語.mp4", 5), 5), "日本 ");
        assert_eq!(escape_cut("日本語.mp4", 6), "日本語");
        assert_eq!(escape_cut("plain.mp4", 5), "plain");
        assert_eq!(escape_cut("short", 16), "short");
        // A combining mark takes none: e + U+0301 is one cell.
        assert_eq!(pad("e\u{301}", 3), "e\u{301}  ");
        assert_eq!(escape_cut("e\u{301}e\u{301}", 1), "e\u{301}");
        // Longer than the column: left as it is.
        assert_eq!(pad("日本語", 4), "日本語");
        // Emoji sequences are one cluster of two cells, kept whole or
        // dropped whole: a heart with its emoji presentation selector, a
        // family joined with ZWJ, a flag of two regional indicators.
        for emoji in ["\u{2764}\u{fe0f}", "👨\u{200d}👩\u{200d}👧", "🇯🇵"] {
            assert_eq!(cells(emoji), 2, "{emoji:?}");
            let name = format!("aaa{emoji}{emoji}x");
            assert_eq!(escape_cut(&name, 6), format!("aaa{emoji}"), "{emoji:?}");
            assert_eq!(cells(&pad(&escape_cut(&name, 6), 6)), 6, "{emoji:?}");
        }
        // An escape is kept whole or dropped whole.
        assert_eq!(escape_cut("ab\u{1b}[31m", 6), "ab\\x1b");
        assert_eq!(escape_cut("ab\u{1b}[31m", 5), "ab");
        let node = NodeInfo {
            name: "節点一".into(),
            host: "h".into(),
            state: vidvar::proto::NodeState::Up,
            slots: 2,
            running: 1,
            last_heartbeat: 0,
        };
        let plain = NodeInfo {
            name: "n1".into(),
            ..node.clone()
        };
        let text = nodes(&[node, plain]);
        let starts: Vec<usize> = text
            .lines()
            .skip(1)
            .map(|l| cells(&l[..l.find("up").unwrap()]))
            .collect();
        assert_eq!(starts, [22, 22], "{text}");
    }

    #[test]
    fn an_output_named_with_control_characters_is_one_record() {
        let output = OutputInfo {
            path: "/o/a\nb\tc_v01.mp4".into(),
            size: 10,
            input: "/i/a\nb\tc.mp4".into(),
            index: 1,
            effects: vidvar::proto::Effects {
                rotation: 0.0,
                brightness: 0.0,
                contrast: 1.0,
                saturation: 1.0,
            },
            node: Some("n\n1".into()),
            quality: Some(vidvar::proto::Quality {
                samples: 8,
                ssim_mean: 0.99912,
                ssim_min: 0.9985,
                luma_diff: 0.126,
            }),
        };
        let text = outputs(&[output]);
        assert_eq!(text.lines().count(), 1, "{text:?}");
        let fields: Vec<&str> = text.trim_end().split('\t').collect();
        assert_eq!(fields[0], "/o/a\\nb\\tc_v01.mp4");
        assert_eq!(fields[2], "/i/a\\nb\\tc.mp4");
        assert_eq!(
            fields[5],
            "ssim=0.9991 ssim_min=0.9985 luma_diff=0.13 samples=8"
        );
        assert_eq!(fields[6], "node=n\\n1");
    }
}
