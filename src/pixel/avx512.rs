//! The span path's inner loop written with AVX-512 intrinsics, for x86-64
//! CPUs that have AVX-512 F, BW and VL.
//!
//! Owns one [`Blend`]: sixteen output samples per 512-bit vector, in
//! 32-bit lanes with the integer steps of [`warp::blend`] (so the same
//! bytes). A span's last, partial vector is loaded and
//! stored under a lane mask, so every span of any length goes through
//! here; only a table tone takes [`warp::blend`]. eq's clip to 0..255 is
//! a max with 0 and the unsigned saturation of the store to bytes.
//! Nothing here allocates or holds geometry.

use super::eq::{Apply, Linear};
use super::warp::{self, Blend, Source};
use std::arch::x86_64::*;

/// The AVX-512 [`Blend`]; made only by [`Avx512::new`], on a CPU that has
/// AVX-512 F, BW and VL.
#[derive(Debug, Clone, Copy)]
pub(super) struct Avx512(());

impl Avx512 {
    /// # Safety
    /// The CPU must have AVX-512 F, BW and VL
    /// (`is_x86_feature_detected!` of "avx512f", "avx512bw", "avx512vl").
    pub(super) unsafe fn new() -> Avx512 {
        Avx512(())
    }
}

impl Blend for Avx512 {
    #[inline(always)]
    fn blend<T: Apply>(self, out: &mut [u8], source: &Source, tone: T) {
        match tone.linear() {
            // SAFETY: this type exists only where the CPU has the features.
            Some(linear) => unsafe { span(out, source, linear) },
            None => warp::blend(out, source, tone),
        }
    }
}

/// [`Blend::blend`] with eq's formula.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn span(out: &mut [u8], source: &Source, tone: Linear) {
    let Source { top, bottom, x, y } = *source;
    let n = out.len();
    assert!(top.len() > n && bottom.len() > n);
    let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let contrast = _mm512_set1_epi32(tone.contrast());
    let offset = _mm512_set1_epi32(tone.offset());
    let low16 = _mm512_set1_epi32(0xFFFF);
    let zero = _mm512_setzero_si512();
    let step = |[first, slope]: [i32; 2], index| {
        _mm512_add_epi32(
            _mm512_set1_epi32(first),
            _mm512_mullo_epi32(index, _mm512_set1_epi32(slope)),
        )
    };
    let (mut fx, mut fy) = (step(x, lanes), step(y, lanes));
    let (fx_16, fy_16) = (_mm512_set1_epi32(16 * x[1]), _mm512_set1_epi32(16 * y[1]));
    let mut k = 0;
    while k < n {
        let mask: __mmask16 = if n - k >= 16 {
            0xFFFF
        } else {
            (1 << (n - k)) - 1
        };
        // SAFETY: the mask keeps every load below `n + 1 <= top.len()`
        // and `bottom.len()` (lane i reads index k + i or k + i + 1,
        // i < n - k), and every store below `n`; masked-off lanes are
        // neither read nor written.
        let load = |row: &[u8], at: usize| unsafe {
            _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, row.as_ptr().add(at).cast()))
        };
        let (a, b) = (load(top, k), load(top, k + 1));
        let (c, d) = (load(bottom, k), load(bottom, k + 1));
        // s = p * 2^16 + fx * (q - p), in 0..255 * 2^16.
        let horizontal = |p, q| {
            _mm512_add_epi32(
                _mm512_slli_epi32(p, 16),
                _mm512_mullo_epi32(fx, _mm512_sub_epi32(q, p)),
            )
        };
        let (s0, s1) = (horizontal(a, b), horizontal(c, d));
        let diff = _mm512_sub_epi32(s1, s0);
        let low = _mm512_srli_epi32(_mm512_mullo_epi32(fy, _mm512_and_si512(diff, low16)), 16);
        let high = _mm512_mullo_epi32(fy, _mm512_srai_epi32(diff, 16));
        let v = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(s0, high), low), 16);
        let toned = _mm512_add_epi32(
            _mm512_srai_epi32(_mm512_mullo_epi32(v, contrast), 12),
            offset,
        );
        // SAFETY: as for the loads.
        unsafe {
            _mm_mask_storeu_epi8(
                out.as_mut_ptr().add(k).cast(),
                mask,
                _mm512_cvtusepi32_epi8(_mm512_max_epi32(toned, zero)),
            )
        };
        (fx, fy) = (_mm512_add_epi32(fx, fx_16), _mm512_add_epi32(fy, fy_16));
        k += 16;
    }
}
