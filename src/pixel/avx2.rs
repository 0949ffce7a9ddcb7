//! The span path's inner loop written with AVX2 intrinsics, for x86-64
//! CPUs that have AVX2.
//!
//! Owns one [`Blend`]: eight output samples per 256-bit vector, sixteen
//! per step, in 32-bit lanes with the integer steps of [`warp::blend`]
//! (so the same bytes); eq's formula is one product and a shift, and its
//! clip to 0..255 is the saturation of the two packs to bytes. A span
//! shorter than 8 samples, or a table tone, takes [`warp::blend`]. The
//! tail of a span is computed as the last whole vector of the span,
//! overlapping samples already written (each sample depends on its index
//! only). Nothing here allocates or holds geometry.

use super::eq::{Apply, Linear};
use super::warp::{self, Blend, Source};
use std::arch::x86_64::*;

/// The AVX2 [`Blend`]; made only by [`Avx2::new`], on a CPU that has
/// AVX2.
#[derive(Debug, Clone, Copy)]
pub(super) struct Avx2(());

impl Avx2 {
    /// # Safety
    /// The CPU must have AVX2 (`is_x86_feature_detected!("avx2")`).
    pub(super) unsafe fn new() -> Avx2 {
        Avx2(())
    }
}

impl Blend for Avx2 {
    #[inline(always)]
    fn blend<T: Apply>(self, out: &mut [u8], source: &Source, tone: T) {
        match tone.linear() {
            // SAFETY: this type exists only where the CPU has the features.
            Some(linear) if out.len() >= 8 => unsafe { span(out, source, linear) },
            _ => warp::blend(out, source, tone),
        }
    }
}

/// One span's steps and tone, broadcast once.
struct Lanes {
    /// `[0, 1, ..., 7] * x[1]`: each lane's step of `fx` from the first.
    x: __m256i,
    /// The same for `fy`: `[0, 1, ..., 7] * y[1]`.
    y: __m256i,
    /// eq's contrast and offset ([`Linear`]) in every lane.
    contrast: __m256i,
    offset: __m256i,
}

/// [`Blend::blend`] for `out.len() >= 8` with eq's formula.
#[target_feature(enable = "avx2")]
fn span(out: &mut [u8], source: &Source, tone: Linear) {
    let n = out.len();
    assert!(n >= 8 && source.top.len() > n && source.bottom.len() > n);
    let index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let lanes = Lanes {
        x: _mm256_mullo_epi32(index, _mm256_set1_epi32(source.x[1])),
        y: _mm256_mullo_epi32(index, _mm256_set1_epi32(source.y[1])),
        contrast: _mm256_set1_epi32(tone.contrast()),
        offset: _mm256_set1_epi32(tone.offset()),
    };
    if n < 16 {
        for k in [0, n - 8] {
            let v = eight(&lanes, source, k);
            // i32 -> i16 with signed saturation, then i16 -> u8 with
            // unsigned saturation: eq's clip to 0..255.
            let words = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
            let bytes = _mm_packus_epi16(words, words);
            // SAFETY: k + 8 <= n = out.len().
            unsafe { _mm_storel_epi64(out.as_mut_ptr().add(k).cast(), bytes) };
        }
        return;
    }
    let mut k = 0;
    loop {
        let start = k.min(n - 16);
        let (low, high) = (
            eight(&lanes, source, start),
            eight(&lanes, source, start + 8),
        );
        // The 256-bit pack works per 128-bit lane: put the four quarters
        // back in order before the pack to bytes.
        let words = _mm256_permute4x64_epi64(_mm256_packs_epi32(low, high), 0b11_01_10_00);
        let bytes = _mm_packus_epi16(
            _mm256_castsi256_si128(words),
            _mm256_extracti128_si256(words, 1),
        );
        // SAFETY: start + 16 <= n = out.len().
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(start).cast(), bytes) };
        if start == n - 16 {
            return;
        }
        k += 16;
    }
}

/// Samples `k..k + 8` through eq's formula, as i32 lanes not yet
/// clipped. Requires `k + 9 <=` the length of `source`'s rows.
#[inline]
#[target_feature(enable = "avx2")]
fn eight(lanes: &Lanes, source: &Source, k: usize) -> __m256i {
    let Source { top, bottom, x, y } = *source;
    assert!(k + 9 <= top.len() && k + 9 <= bottom.len());
    // SAFETY: the assertion above keeps the four 8-byte loads inside.
    let load = |row: &[u8], at: usize| unsafe {
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(row.as_ptr().add(at).cast()))
    };
    let (a, b) = (load(top, k), load(top, k + 1));
    let (c, d) = (load(bottom, k), load(bottom, k + 1));
    let step = |steps: __m256i, [first, slope]: [i32; 2]| {
        _mm256_add_epi32(_mm256_set1_epi32(first + k as i32 * slope), steps)
    };
    let (fx, fy) = (step(lanes.x, x), step(lanes.y, y));
    // s = p * 2^16 + fx * (q - p), in 0..255 * 2^16.
    let horizontal = |p, q| {
        _mm256_add_epi32(
            _mm256_slli_epi32(p, 16),
            _mm256_mullo_epi32(fx, _mm256_sub_epi32(q, p)),
        )
    };
    let (s0, s1) = (horizontal(a, b), horizontal(c, d));
    let diff = _mm256_sub_epi32(s1, s0);
    let low = _mm256_srli_epi32(
        _mm256_mullo_epi32(fy, _mm256_and_si256(diff, _mm256_set1_epi32(0xFFFF))),
        16,
    );
    let high = _mm256_mullo_epi32(fy, _mm256_srai_epi32(diff, 16));
    let v = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(s0, high), low), 16);
    _mm256_add_epi32(
        _mm256_srai_epi32(_mm256_mullo_epi32(v, lanes.contrast), 12),
        lanes.offset,
    )
}
