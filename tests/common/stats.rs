//! Figures of timed samples for the benchmarks: nearest-rank percentiles
//! in milliseconds. Pure arithmetic; nothing is run or measured here.

use std::time::Duration;

/// Milliseconds of `d`.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile `p` (0..=100) of `samples`, milliseconds: the
/// smallest sample that at least `p`% of them do not exceed (`p` 0 gives
/// the smallest, 100 the largest); NaN without samples.
pub fn percentile(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted: Vec<Duration> = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    ms(sorted[rank.clamp(1, sorted.len()) - 1])
}
