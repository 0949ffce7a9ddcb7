//! What one variation's run uses, measured while it runs: when it began,
//! the CPU time of its processes (a [`CpuMeter`] the supervisor adds their
//! rusage to) and the media time its encoder reported; turned into the
//! history's [`RunFigures`] when it ends. Must not record anything: the
//! worker writes the figures with the outcome.

use crate::engine::supervisor::Progress;
use crate::history::RunFigures;
use crate::queue::unix_now;
use crate::rusage::CpuMeter;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One run's measures.
#[derive(Debug)]
pub struct Meter {
    started: Instant,
    /// Unix seconds.
    started_at: i64,
    /// Where its processes' CPU time goes.
    pub cpu: Arc<CpuMeter>,
    /// The furthest `out_time_us` its encoder reported.
    media_us: AtomicU64,
}

impl Meter {
    /// A run that begins now.
    pub fn start() -> Meter {
        Meter {
            started: Instant::now(),
            started_at: unix_now(),
            cpu: Arc::default(),
            media_us: AtomicU64::new(0),
        }
    }

    /// The encoder reported `progress`.
    pub fn saw(&self, progress: &Progress) {
        self.media_us
            .fetch_max(progress.out_time_us, Ordering::Relaxed);
    }

    /// The run's figures, ending now; `reason` the class of its failure.
    pub fn figures(&self, reason: Option<&str>) -> RunFigures {
        RunFigures {
            started_at: self.started_at,
            ended_at: unix_now(),
            wall_seconds: self.started.elapsed().as_secs_f64(),
            cpu_seconds: self.cpu.seconds(),
            media_seconds: self.media_us.load(Ordering::Relaxed) as f64 / 1e6,
            reason: reason.map(String::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_furthest_media_time_and_the_cpu_time_are_kept() {
        let meter = Meter::start();
        for us in [2_000_000, 5_500_000, 4_000_000] {
            meter.saw(&Progress {
                out_time_us: us,
                ..Progress::default()
            });
        }
        meter.cpu.add(std::time::Duration::from_millis(1500));
        let figures = meter.figures(Some("ffmpeg"));
        assert_eq!(figures.media_seconds, 5.5);
        assert_eq!(figures.cpu_seconds, 1.5);
        assert_eq!(figures.reason.as_deref(), Some("ffmpeg"));
        assert!(figures.ended_at >= figures.started_at);
    }
}
