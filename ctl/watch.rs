//! `watch` and `submit --watch`: following a job until it ends.
//!
//! Three views of the same stream of progress frames: progress bars
//! (indicatif: overall and per input, with ETA) when stdout is a terminal,
//! one plain line per change when it is not, and one JSON object per update
//! (newline-delimited, the last one final) with `--json`.

use crate::{out, render};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use vidvar::proto::JobDetail;

/// Bar length: progress is drawn in tenths of a percent.
const BAR_UNITS: u64 = 1000;

pub enum View {
    Json,
    Lines { last: String },
    Bars(Bars),
}

pub struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    files: Vec<ProgressBar>,
}

impl View {
    pub fn new(json: bool) -> View {
        if json {
            View::Json
        } else if std::io::stdout().is_terminal() {
            View::Bars(Bars::new())
        } else {
            View::Lines {
                last: String::new(),
            }
        }
    }

    /// Show one progress frame.
    pub fn update(&mut self, detail: &JobDetail) {
        match self {
            View::Json => out!(
                "{}\n",
                serde_json::to_string(detail).expect("wire types serialize to JSON")
            ),
            View::Lines { last } => {
                let line = render::progress_line(detail);
                if line != *last {
                    out!("{line}\n");
                    *last = line;
                }
            }
            View::Bars(bars) => bars.update(detail),
        }
    }

    /// Show the final frame.
    pub fn finish(&mut self, detail: &JobDetail) {
        match self {
            View::Json => self.update(detail),
            View::Lines { .. } => out!("{}", render::detail(detail)),
            View::Bars(bars) => {
                bars.update(detail);
                bars.overall.finish();
                for bar in &bars.files {
                    bar.finish();
                }
                let _ = bars.multi.clear();
                out!("{}", render::detail(detail));
            }
        }
    }
}

fn position(percent: f64) -> u64 {
    (percent.clamp(0.0, 100.0) * (BAR_UNITS as f64 / 100.0)) as u64
}

impl Bars {
    fn new() -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let overall = multi.add(ProgressBar::new(BAR_UNITS).with_style(style(true)));
        Bars {
            multi,
            overall,
            files: Vec::new(),
        }
    }

    fn update(&mut self, d: &JobDetail) {
        while self.files.len() < d.files.len() {
            let bar = ProgressBar::new(BAR_UNITS).with_style(style(false));
            self.files.push(self.multi.add(bar));
        }
        self.overall.set_prefix(format!("job {}", d.summary.id));
        self.overall.set_message(d.summary.state.as_str());
        self.overall.set_position(position(d.summary.progress));
        for (bar, f) in self.files.iter().zip(&d.files) {
            let name = f.path.file_name().map_or_else(
                || f.path.display().to_string(),
                |n| n.to_string_lossy().into(),
            );
            bar.set_prefix(name);
            let mut message = format!(
                "{} {}/{}",
                f.state.as_str(),
                f.done_variations,
                d.summary.variations
            );
            if let Some(secs) = f.encoded_secs {
                message.push_str(&format!(", {secs:.1}s encoded"));
            }
            bar.set_message(message);
            bar.set_position(position(f.progress));
        }
    }
}

fn style(overall: bool) -> ProgressStyle {
    let template = if overall {
        "{prefix:>24.bold} [{bar:30.cyan/blue}] {percent:>3}% {msg} (ETA {eta})"
    } else {
        "{prefix:>24} [{bar:30}] {percent:>3}% {msg}"
    };
    ProgressStyle::with_template(template)
        .expect("valid template")
        .progress_chars("=> ")
}
