//! Parser for ffmpeg's `-progress` output and the percent it implies. Pure.
//!
//! With `-progress pipe:1 -nostats`, ffmpeg writes blocks of `key=value`
//! lines to stdout, each block ending with `progress=continue` or
//! `progress=end` (ffmpeg(1), `-progress url`). Used: `out_time_us`
//! (encoded media time, microseconds; `N/A` before the first frame),
//! `speed` (media time per wall-clock time, "2.5x") and `fps` (frames
//! encoded per second); the human-readable log changed format between
//! versions.

/// One completed block of progress output.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Snapshot {
    /// Media time written so far, microseconds; `None` while ffmpeg reports
    /// `N/A`.
    pub out_time_us: Option<u64>,
    /// Encoding speed, a multiple of real time; `None` while ffmpeg reports
    /// `N/A` or 0 (before the first frame).
    pub speed: Option<f64>,
    /// Frames encoded per second; `None` until ffmpeg reports more than 0.
    pub fps: Option<f64>,
    /// `progress=end`: ffmpeg has finished writing.
    pub end: bool,
}

/// Collects `key=value` lines into [`Snapshot`]s.
#[derive(Debug, Default)]
pub struct ProgressParser {
    out_time_us: Option<u64>,
    speed: Option<f64>,
    fps: Option<f64>,
}

/// A positive finite rate from `value` (a trailing `x` allowed), or `None`.
fn rate(value: &str) -> Option<f64> {
    let value = value.trim();
    let number = value.strip_suffix('x').unwrap_or(value).trim();
    number
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0)
}

impl ProgressParser {
    /// Feed one line (without its newline). Returns a snapshot when the line
    /// closes a block. Unknown keys and malformed lines are ignored; a
    /// negative `out_time_us` (seen at the start of some streams) counts as 0.
    pub fn feed(&mut self, line: &str) -> Option<Snapshot> {
        let (key, value) = line.trim_end_matches('\r').split_once('=')?;
        match key.trim() {
            "out_time_us" => {
                if let Ok(us) = value.trim().parse::<i64>() {
                    self.out_time_us = Some(us.max(0) as u64);
                }
                None
            }
            "speed" => {
                self.speed = rate(value);
                None
            }
            "fps" => {
                self.fps = rate(value);
                None
            }
            "progress" => Some(Snapshot {
                out_time_us: self.out_time_us,
                speed: self.speed,
                fps: self.fps,
                end: value.trim() == "end",
            }),
            _ => None,
        }
    }
}

/// Highest percent shown while the output is not yet verified.
pub const MAX_UNVERIFIED_PERCENT: f64 = 99.0;

/// Turns media times into a percent that never decreases, never divides by
/// zero and stays at or below [`MAX_UNVERIFIED_PERCENT`] until the caller
/// has verified the output.
#[derive(Debug)]
pub struct PercentTracker {
    duration_us: Option<u64>,
    percent: f64,
}

impl PercentTracker {
    /// `duration_us`: the input's probed duration; `None` or 0 when unknown,
    /// in which case the percent stays 0.
    pub fn new(duration_us: Option<u64>) -> Self {
        PercentTracker {
            duration_us: duration_us.filter(|&d| d > 0),
            percent: 0.0,
        }
    }

    /// Account for a snapshot; returns the percent, 0..=99.
    pub fn update(&mut self, snapshot: &Snapshot) -> f64 {
        if let (Some(duration), Some(done)) = (self.duration_us, snapshot.out_time_us) {
            let percent = (done as f64 * 100.0 / duration as f64).min(MAX_UNVERIFIED_PERCENT);
            self.percent = self.percent.max(percent);
        }
        self.percent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(parser: &mut ProgressParser, text: &str) -> Vec<Snapshot> {
        text.lines().filter_map(|l| parser.feed(l)).collect()
    }

    #[test]
    fn blocks_become_snapshots() {
        let mut p = ProgressParser::default();
        let text = "frame=10\nfps=0.0\nout_time_us=333667\nout_time=00:00:00.333667\n\
                    progress=continue\nframe=60\nout_time_us=2000000\nprogress=end\n";
        assert_eq!(
            feed_all(&mut p, text),
            [
                Snapshot {
                    out_time_us: Some(333_667),
                    ..Snapshot::default()
                },
                Snapshot {
                    out_time_us: Some(2_000_000),
                    end: true,
                    ..Snapshot::default()
                },
            ]
        );
    }

    #[test]
    fn not_available_keeps_the_last_known_time() {
        let mut p = ProgressParser::default();
        let snaps = feed_all(
            &mut p,
            "out_time_us=N/A\nprogress=continue\nout_time_us=5\nprogress=continue\n\
             out_time_us=N/A\nprogress=continue\n",
        );
        assert_eq!(snaps[0].out_time_us, None);
        assert_eq!(snaps[1].out_time_us, Some(5));
        assert_eq!(snaps[2].out_time_us, Some(5));
    }

    #[test]
    fn garbage_and_negative_times_are_harmless() {
        let mut p = ProgressParser::default();
        assert_eq!(p.feed("no equals sign"), None);
        assert_eq!(p.feed("out_time_us=-23000"), None);
        assert_eq!(p.feed("out_time_us=12abc"), None);
        assert_eq!(
            p.feed("progress=continue\r"),
            Some(Snapshot {
                out_time_us: Some(0),
                ..Snapshot::default()
            })
        );
    }

    #[test]
    fn speed_and_fps_are_read_and_not_available_clears_them() {
        let mut p = ProgressParser::default();
        let snaps = feed_all(
            &mut p,
            "fps=0.00\nspeed=N/A\nprogress=continue\nfps=48.5\nspeed=2.47x\n\
             progress=continue\nspeed=   1.5x\nprogress=continue\nspeed=N/A\nprogress=end\n",
        );
        let seen: Vec<_> = snaps.iter().map(|s| (s.speed, s.fps)).collect();
        assert_eq!(
            seen,
            [
                (None, None),
                (Some(2.47), Some(48.5)),
                (Some(1.5), Some(48.5)),
                (None, Some(48.5))
            ]
        );
    }

    fn at(us: u64) -> Snapshot {
        Snapshot {
            out_time_us: Some(us),
            ..Snapshot::default()
        }
    }

    #[test]
    fn percent_is_monotonic_and_capped() {
        let mut t = PercentTracker::new(Some(2_000_000));
        assert_eq!(t.update(&at(1_000_000)), 50.0);
        assert_eq!(t.update(&at(500_000)), 50.0, "never goes backwards");
        assert_eq!(t.update(&at(5_000_000)), MAX_UNVERIFIED_PERCENT);
    }

    #[test]
    fn unknown_or_zero_duration_never_divides() {
        for duration in [None, Some(0)] {
            let mut t = PercentTracker::new(duration);
            assert_eq!(t.update(&at(1_000_000)), 0.0);
        }
        let mut t = PercentTracker::new(Some(1_000));
        assert_eq!(t.update(&Snapshot::default()), 0.0);
    }
}
