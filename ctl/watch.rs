//! `watch` and `submit --watch`: following a job until it ends.
//!
//! Three views of the same stream of progress frames: progress bars
//! (indicatif: overall and per input, with the daemon's ETA and speed)
//! when stdout is a terminal,
//! one plain line per change when it is not, and one JSON object per update
//! (newline-delimited, the last one final) with `--json`. All three show
//! the daemon's figures as `status` does ([`render::percent`],
//! [`render::amount`]): the bars' lengths follow them, and no view works
//! out a percent of its own.

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
                // Left where they are: finish() would fill them to 100%.
                bars.overall.abandon();
                for bar in &bars.files {
                    bar.abandon();
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
        self.overall.set_message(format!(
            "{} {} {}",
            render::percent(d.summary.progress),
            d.summary.state.as_str(),
            render::eta(d.summary.eta_secs)
        ));
        self.overall.set_position(position(d.summary.progress));
        for (bar, f) in self.files.iter().zip(&d.files) {
            bar.set_prefix(render::file_name(&f.path));
            let encoded = if f.encoded_secs.is_some() {
                " encoded"
            } else {
                ""
            };
            let speeds: Vec<f64> = f.running.iter().filter_map(|v| v.speed).collect();
            let pace = if f.state == vidvar::proto::FileState::Running {
                let speed = match speeds.is_empty() {
                    true => String::new(),
                    false => format!(" {:.2}x", speeds.iter().sum::<f64>()),
                };
                format!(" {}{speed}", render::eta(f.eta_secs))
            } else {
                String::new()
            };
            bar.set_message(format!(
                "{}{encoded} {} {}/{}{pace}",
                render::amount(f),
                f.state.as_str(),
                f.done_variations,
                d.summary.variations
            ));
            bar.set_position(position(f.progress));
        }
    }
}

/// The bars' look. The figures are in `{msg}`, not indicatif's
/// `{percent}` and `{eta}`, which round their own way, read 100% once a
/// bar is finished, and guess from the bar's rate instead of FFmpeg's.
fn style(overall: bool) -> ProgressStyle {
    let template = if overall {
        "{prefix:>24.bold} [{bar:30.cyan/blue}] {msg}"
    } else {
        "{prefix:>24} [{bar:30}] {msg}"
    };
    ProgressStyle::with_template(template)
        .expect("valid template")
        .progress_chars("=> ")
}
