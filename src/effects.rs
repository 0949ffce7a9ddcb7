//! The variation recipe: random, seeded, pairwise distinct effect sets.
//!
//! Pure code: no I/O. For input number `file_index` of a job with seed
//! `seed`, [`generate`] draws N effect sets from ChaCha8 seeded with `seed`
//! on stream `file_index`, so any variation can be reproduced from the
//! stored seed. Values are rounded to [`DECIMALS`] places, which is what
//! the FFmpeg filter receives, so stored and applied values are equal.
//!
//! Ranges (DESIGN.md, parity with the system vidvar replaces): rotation
//! 0.001..0.01 rad, brightness -0.05..0.05, contrast and saturation
//! 0.95..1.05, each uniform.

use crate::proto::Effects;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;
use std::ops::RangeInclusive;

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

fn round(value: f64) -> f64 {
    let scale = 10f64.powi(DECIMALS);
    (value * scale).round() / scale
}

fn key(e: &Effects) -> [u64; 4] {
    [e.rotation, e.brightness, e.contrast, e.saturation].map(f64::to_bits)
}

/// Draw `count` pairwise distinct effect sets for one input of a job.
///
/// Deterministic: the same `(seed, file_index, count)` gives the same list,
/// and a shorter `count` gives a prefix of a longer one.
pub fn generate(seed: u64, file_index: u32, count: u32) -> Vec<Effects> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(u64::from(file_index));
    let mut seen = HashSet::with_capacity(count as usize);
    let mut out = Vec::with_capacity(count as usize);
    while out.len() < count as usize {
        let effects = Effects {
            rotation: round(rng.random_range(ROTATION)),
            brightness: round(rng.random_range(BRIGHTNESS)),
            contrast: round(rng.random_range(CONTRAST)),
            saturation: round(rng.random_range(SATURATION)),
        };
        if seen.insert(key(&effects)) {
            out.push(effects);
        }
    }
    out
}

/// A fresh seed from the operating system's entropy source.
pub fn random_seed() -> u64 {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_in_their_ranges() {
        for seed in 0..50 {
            for e in generate(seed, 0, 40) {
                assert!(ROTATION.contains(&e.rotation), "{e:?}");
                assert!(BRIGHTNESS.contains(&e.brightness), "{e:?}");
                assert!(CONTRAST.contains(&e.contrast), "{e:?}");
                assert!(SATURATION.contains(&e.saturation), "{e:?}");
            }
        }
    }

    #[test]
    fn sets_of_one_input_are_pairwise_distinct() {
        let sets = generate(7, 3, 1000);
        let keys: HashSet<_> = sets.iter().map(key).collect();
        assert_eq!(keys.len(), 1000);
    }

    #[test]
    fn same_seed_reproduces_and_prefixes_agree() {
        assert_eq!(generate(99, 1, 10), generate(99, 1, 10));
        assert_eq!(generate(99, 1, 4), generate(99, 1, 10)[..4]);
    }

    #[test]
    fn seed_and_file_index_both_change_the_draw() {
        assert_ne!(generate(1, 0, 3), generate(2, 0, 3));
        assert_ne!(generate(1, 0, 3), generate(1, 1, 3));
    }

    #[test]
    fn values_are_rounded_to_the_filter_precision() {
        for e in generate(5, 0, 20) {
            for v in [e.rotation, e.brightness, e.contrast, e.saturation] {
                assert_eq!(format!("{v:.6}").parse::<f64>().unwrap(), v);
            }
        }
    }
}
