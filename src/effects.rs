//! The variation recipe: random, seeded, pairwise distinct effect sets.
//!
//! Pure code: no I/O. For input number `file_index` of a job with seed
//! `seed`, [`generate`] draws N effect sets from ChaCha8 seeded with `seed`
//! on stream `file_index`, so any variation can be reproduced from the
//! stored seed. Values are rounded to [`DECIMALS`] places, which is what
//! the FFmpeg filter receives, so stored and applied values are equal.
//!
//! Ranges (parity with the system vidvar replaces): rotation
//! 0.001..0.01 rad, brightness -0.05..0.05, contrast and saturation
//! 0.95..1.05, each uniform.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::ops::RangeInclusive;

/// The random effect values of one variation, drawn by [`generate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Effects {
    /// Radians, clockwise, as FFmpeg's `rotate` filter takes them.
    pub rotation: f64,
    /// `eq=brightness`, -1..1 where 0 is unchanged.
    pub brightness: f64,
    /// `eq=contrast`, 1 is unchanged.
    pub contrast: f64,
    /// `eq=saturation`, 1 is unchanged.
    pub saturation: f64,
}

/// Decimal places kept of every effect value.
pub const DECIMALS: i32 = 6;

/// Rotation in radians (FFmpeg `rotate=angle`).
pub const ROTATION: RangeInclusive<f64> = 0.001..=0.01;
/// FFmpeg `eq=brightness`.
pub const BRIGHTNESS: RangeInclusive<f64> = -0.05..=0.05;
/// FFmpeg `eq=contrast`.
pub const CONTRAST: RangeInclusive<f64> = 0.95..=1.05;
/// FFmpeg `eq=saturation`.
pub const SATURATION: RangeInclusive<f64> = 0.95..=1.05;

/// The ranges effects are drawn from; [`Default`] gives the v1 ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranges {
    pub rotation: RangeInclusive<f64>,
    pub brightness: RangeInclusive<f64>,
    pub contrast: RangeInclusive<f64>,
    pub saturation: RangeInclusive<f64>,
}

impl Default for Ranges {
    fn default() -> Self {
        Ranges {
            rotation: ROTATION,
            brightness: BRIGHTNESS,
            contrast: CONTRAST,
            saturation: SATURATION,
        }
    }
}

/// The effect sets could not be drawn.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("the effect ranges are too narrow for {0} distinct variations")]
pub struct TooNarrow(pub u32);

/// Draws allowed per requested set before [`TooNarrow`] is reported.
const ATTEMPTS_PER_SET: usize = 1000;

fn round(value: f64) -> f64 {
    let scale = 10f64.powi(DECIMALS);
    (value * scale).round() / scale
}

fn key(e: &Effects) -> [u64; 4] {
    [e.rotation, e.brightness, e.contrast, e.saturation].map(f64::to_bits)
}

/// Draw `count` pairwise distinct effect sets for one input of a job.
///
/// Deterministic: the same `(ranges, seed, file_index, count)` gives the
/// same list, and a shorter `count` gives a prefix of a longer one.
/// Errors: [`TooNarrow`] when the ranges hold too few distinct values.
pub fn generate(
    ranges: &Ranges,
    seed: u64,
    file_index: u32,
    count: u32,
) -> Result<Vec<Effects>, TooNarrow> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(u64::from(file_index));
    let mut seen = HashSet::with_capacity(count as usize);
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..(count as usize).saturating_mul(ATTEMPTS_PER_SET) {
        if out.len() == count as usize {
            break;
        }
        let effects = Effects {
            rotation: round(rng.random_range(ranges.rotation.clone())),
            brightness: round(rng.random_range(ranges.brightness.clone())),
            contrast: round(rng.random_range(ranges.contrast.clone())),
            saturation: round(rng.random_range(ranges.saturation.clone())),
        };
        if seen.insert(key(&effects)) {
            out.push(effects);
        }
    }
    if out.len() < count as usize {
        return Err(TooNarrow(count));
    }
    Ok(out)
}

/// A fresh seed from the operating system's entropy source.
pub fn random_seed() -> u64 {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw(seed: u64, file_index: u32, count: u32) -> Vec<Effects> {
        generate(&Ranges::default(), seed, file_index, count).unwrap()
    }

    #[test]
    fn ranges_too_narrow_for_the_count_are_an_error() {
        let point = Ranges {
            rotation: 0.005..=0.005,
            brightness: 0.0..=0.0,
            contrast: 1.0..=1.0,
            saturation: 1.0..=1.000001,
        };
        assert_eq!(generate(&point, 1, 0, 2).unwrap().len(), 2);
        assert_eq!(generate(&point, 1, 0, 3), Err(TooNarrow(3)));
    }

    #[test]
    fn values_stay_in_their_ranges() {
        for seed in 0..50 {
            for e in draw(seed, 0, 40) {
                assert!(ROTATION.contains(&e.rotation), "{e:?}");
                assert!(BRIGHTNESS.contains(&e.brightness), "{e:?}");
                assert!(CONTRAST.contains(&e.contrast), "{e:?}");
                assert!(SATURATION.contains(&e.saturation), "{e:?}");
            }
        }
    }

    #[test]
    fn sets_of_one_input_are_pairwise_distinct() {
        let sets = draw(7, 3, 1000);
        let keys: HashSet<_> = sets.iter().map(key).collect();
        assert_eq!(keys.len(), 1000);
    }

    #[test]
    fn same_seed_reproduces_and_prefixes_agree() {
        assert_eq!(draw(99, 1, 10), draw(99, 1, 10));
        assert_eq!(draw(99, 1, 4), draw(99, 1, 10)[..4]);
    }

    #[test]
    fn seed_and_file_index_both_change_the_draw() {
        assert_ne!(draw(1, 0, 3), draw(2, 0, 3));
        assert_ne!(draw(1, 0, 3), draw(1, 1, 3));
    }

    #[test]
    fn values_are_rounded_to_the_filter_precision() {
        for e in draw(5, 0, 20) {
            for v in [e.rotation, e.brightness, e.contrast, e.saturation] {
                assert_eq!(format!("{v:.6}").parse::<f64>().unwrap(), v);
            }
        }
    }
}
