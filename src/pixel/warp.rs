//! Rotation of one 8-bit plane about its centre, as FFmpeg's `rotate`.
//!
//! Owns the geometry and the bilinear sampling of libavfilter's
//! vf_rotate.c (output size = input size, bilinear on, a fill colour),
//! reproduced to the bit: sin and cos in 16.16 fixed point from its
//! integer Taylor series of the angle (radians, scaled by 2^20 and
//! truncated); every plane turned about its own centre ((w-1)/2, (h-1)/2)
//! with the same sin and cos; along an output row the source x grows by
//! cos and y falls by sin per pixel, so a positive angle turns the picture
//! clockwise on screen; a pixel whose integer source position lies
//! outside [-1, w] x [-1, h] gets the fill; inside, the four neighbours
//! are clamped to the plane and blended with 16-bit fractions, truncated.
//! Its exact shortcuts (a copy at angle 0, flips at pi, quarter turns of
//! square planes) are kept. Every written sample then goes through the
//! plane's [`Tone`](super::eq::Tone), the fill included (FFmpeg runs
//! `eq` after `rotate`).
//!
//! Shapes: a [`Plane`] is `height` rows of `width` samples, row `j`
//! starting at byte `j * stride` (stride >= width, in bytes). Sizes are
//! at least 1x1 and below 32768 on each side (vf_rotate.c keeps positions
//! in 32-bit 16.16 fixed point).
//!
//! Two ways through a plane, both bit-exact: `pixels`, FFmpeg's own
//! per-pixel loop, for any angle; and `spans` for small angles: a row
//! is cut into spans in which the two source rows and the source column
//! offset stay fixed and both fractions change linearly, so the inner
//! loop reads contiguous slices and vectorizes (see [`super::simd`],
//! which compiles these bodies once per instruction set, and `Blend`,
//! the inner loop an instruction set may write by hand). Nothing here
//! does I/O or allocates.

use super::eq::Apply;
use std::ops::Range;

/// 16.16 fixed point: one pixel.
const ONE: i64 = 1 << 16;
/// The angle's scale in vf_rotate.c's integer sine (2^20).
const ANGLE_ONE: f64 = (1 << 20) as f64;
/// pi * 2^20, as vf_rotate.c rounds it.
const INT_PI: i64 = 3_294_199;

/// vf_rotate.c's `int_sin`: sine of `a` (radians * 2^20) in 16.16 fixed
/// point from its five-term Taylor series.
fn int_sin(mut a: i64) -> i64 {
    if a < 0 {
        a = INT_PI - a;
    }
    a %= 2 * INT_PI;
    if a >= INT_PI * 3 / 2 {
        a -= 2 * INT_PI;
    }
    if a >= INT_PI / 2 {
        a = INT_PI - a;
    }
    let a2 = a * a / (1 << 20);
    let mut res = 0;
    for i in (2..11).step_by(2) {
        res += a;
        a = -a * a2 / ((1 << 20) * i * (i + 1));
    }
    (res + 8) >> 4
}

/// An angle prepared for the planes of a frame: the radians and FFmpeg's
/// fixed-point sine and cosine of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rotation {
    angle: f64,
    sin: i64,
    cos: i64,
}

/// vf_rotate.c's exact shortcuts, taken when the angle is within
/// `FLT_EPSILON` of 0, pi/2, pi or 3pi/2 (the quarter turns only for
/// square planes, as the output keeps the input's size).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shortcut {
    Copy,
    Quarter,
    Half,
    ThreeQuarters,
}

impl Rotation {
    /// `angle` in radians, clockwise on screen (FFmpeg `rotate=angle`).
    pub fn new(angle: f64) -> Rotation {
        let a = i64::from((angle * ANGLE_ONE) as i32);
        Rotation {
            angle,
            sin: int_sin(a),
            cos: int_sin(a + INT_PI / 2),
        }
    }

    fn shortcut(&self, width: usize, height: usize) -> Option<Shortcut> {
        use std::f64::consts::PI;
        let near = |target: f64| (self.angle - target).abs() < f64::from(f32::EPSILON);
        let square = width == height;
        if near(0.0) {
            Some(Shortcut::Copy)
        } else if near(PI / 2.0) && square {
            Some(Shortcut::Quarter)
        } else if near(PI) {
            Some(Shortcut::Half)
        } else if near(3.0 * PI / 2.0) && square {
            Some(Shortcut::ThreeQuarters)
        } else {
            None
        }
    }

    /// Whether [`spans`] pays for this angle: source rows then change at
    /// most every 8 pixels and columns advance forwards (|angle| below
    /// about 0.125 rad, or near a full turn).
    pub(crate) fn suits_spans(&self) -> bool {
        self.sin.abs() <= ONE / 8 && self.cos > 0
    }
}

/// A read-only plane: `height` rows of `width` samples, `stride` bytes
/// apart.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    pub data: &'a [u8],
    pub stride: usize,
    pub width: usize,
    pub height: usize,
}

/// Some whole rows of a plane to write, of the same width as its
/// [`Plane`]: rows `rows` of the plane, row `j` starting at byte
/// `(j - rows.start) * stride` of `data`.
#[derive(Debug)]
pub struct PlaneMut<'a> {
    pub data: &'a mut [u8],
    pub stride: usize,
    pub width: usize,
    pub rows: Range<usize>,
}

impl PlaneMut<'_> {
    #[inline(always)]
    fn row(&mut self, j: usize) -> &mut [u8] {
        let at = (j - self.rows.start) * self.stride;
        &mut self.data[at..at + self.width]
    }
}

/// Where output row `j` starts reading, in 16.16 fixed point, exactly as
/// vf_rotate.c derives it (integer divisions truncate toward zero).
#[derive(Debug, Clone, Copy)]
struct Geometry {
    sin: i64,
    cos: i64,
    x_first: i64,
    y_first: i64,
}

impl Geometry {
    fn new(rotation: &Rotation, width: usize, height: usize) -> Geometry {
        let (w, h) = (width as i64, height as i64);
        let (s, c) = (rotation.sin, rotation.cos);
        let xi = -(w - 1) * c / 2;
        let yi = (w - 1) * s / 2;
        let x_prime = -(h - 1) * s / 2;
        let y_prime = -(h - 1) * c / 2;
        Geometry {
            sin: s,
            cos: c,
            x_first: x_prime + xi + ONE * (w - 1) / 2,
            y_first: y_prime + yi + ONE * (h - 1) / 2,
        }
    }

    #[inline(always)]
    fn row_start(&self, j: usize) -> (i64, i64) {
        let j = j as i64;
        (self.x_first + j * self.sin, self.y_first + j * self.cos)
    }
}

/// FFmpeg's `interpolate_bilinear8` behind its bounds test: the sample at
/// 16.16 position (x, y), or `None` outside [-1, w] x [-1, h].
#[inline(always)]
fn sample(src: &Plane, x: i64, y: i64) -> Option<u32> {
    let (w, h) = (src.width as i64, src.height as i64);
    let (x1, y1) = (x >> 16, y >> 16);
    if x1 < -1 || x1 > w || y1 < -1 || y1 > h {
        return None;
    }
    let ix = x1.clamp(0, w - 1) as usize;
    let iy = y1.clamp(0, h - 1) as usize;
    let ix1 = (ix + 1).min(w as usize - 1);
    let iy1 = (iy + 1).min(h as usize - 1);
    let (fx, fy) = (x & 0xFFFF, y & 0xFFFF);
    let at = |col: usize, row: usize| i64::from(src.data[row * src.stride + col]);
    let s0 = (ONE - fx) * at(ix, iy) + fx * at(ix1, iy);
    let s1 = (ONE - fx) * at(ix, iy1) + fx * at(ix1, iy1);
    Some((((ONE - fy) * s0 + fy * s1) >> 32) as u32)
}

/// Rotates `src` into the rows `dst` holds (same width), mapping every
/// written sample, `fill` included, through `tone`: vf_rotate.c's
/// shortcut when the angle has one, else [`spans`] (its inner loop by
/// `kernel`) or [`pixels`].
#[inline(always)]
pub(crate) fn plane<T: Apply, B: Blend>(
    src: &Plane,
    dst: &mut PlaneMut,
    rotation: &Rotation,
    tone: T,
    fill: u8,
    kernel: B,
) {
    match rotation.shortcut(src.width, src.height) {
        Some(shortcut) => shortcut_plane(src, dst, shortcut, tone),
        None if rotation.suits_spans() => spans(src, dst, rotation, tone, fill, kernel),
        None => pixels(src, dst, rotation, tone, fill),
    }
}

#[inline(always)]
fn shortcut_plane<T: Apply>(src: &Plane, dst: &mut PlaneMut, shortcut: Shortcut, tone: T) {
    let (w, h) = (src.width, src.height);
    let at = |col: usize, row: usize| u32::from(src.data[row * src.stride + col]);
    for j in dst.rows.clone() {
        let row = dst.row(j);
        match shortcut {
            Shortcut::Copy => {
                let line = &src.data[j * src.stride..j * src.stride + w];
                for (o, &v) in row.iter_mut().zip(line) {
                    *o = tone.apply(u32::from(v));
                }
            }
            Shortcut::Quarter => {
                for (i, o) in row.iter_mut().enumerate() {
                    *o = tone.apply(at(j, w - 1 - i));
                }
            }
            Shortcut::Half => {
                for (i, o) in row.iter_mut().enumerate() {
                    *o = tone.apply(at(w - 1 - i, h - 1 - j));
                }
            }
            Shortcut::ThreeQuarters => {
                for (i, o) in row.iter_mut().enumerate() {
                    *o = tone.apply(at(h - 1 - j, i));
                }
            }
        }
    }
}

/// FFmpeg's per-pixel loop (no shortcut): for any angle, and the oracle
/// the span path is tested against.
#[inline(always)]
pub(crate) fn pixels<T: Apply>(
    src: &Plane,
    dst: &mut PlaneMut,
    rotation: &Rotation,
    tone: T,
    fill: u8,
) {
    let g = Geometry::new(rotation, src.width, src.height);
    let fill = tone.apply(u32::from(fill));
    for j in dst.rows.clone() {
        let (mut x, mut y) = g.row_start(j);
        for o in dst.row(j) {
            *o = sample(src, x, y).map_or(fill, |v| tone.apply(v));
            x += g.cos;
            y -= g.sin;
        }
    }
}

/// How many steps k >= 0 keep `rem + k * slope` within one pixel
/// [0, 2^16), for `rem` in that range; `i64::MAX` for a zero slope.
#[inline(always)]
fn steps_within_pixel(rem: i64, slope: i64) -> i64 {
    match slope {
        0 => i64::MAX,
        s if s < 0 => rem / -s + 1,
        s => (ONE - 1 - rem) / s + 1,
    }
}

/// The span path (same output as [`pixels`], any angle; fast when
/// [`Rotation::suits_spans`]). A span is a run of output pixels whose
/// source row and column offset (source column - output column) stay
/// fixed; inside it the columns clear of the plane's left and right
/// edges go through `kernel` ([`Blend`]), the few edge columns through
/// FFmpeg's clamped sample, the rest are fill.
#[inline(always)]
pub(crate) fn spans<T: Apply, B: Blend>(
    src: &Plane,
    dst: &mut PlaneMut,
    rotation: &Rotation,
    tone: T,
    fill: u8,
    kernel: B,
) {
    let g = Geometry::new(rotation, src.width, src.height);
    let (w, h) = (src.width as i64, src.height as i64);
    let fill_out = tone.apply(u32::from(fill));
    let src_row = |r: i64| &src.data[r as usize * src.stride..r as usize * src.stride + src.width];
    for j in dst.rows.clone() {
        let (x0, y0) = g.row_start(j);
        let row = dst.row(j);
        let edge = |k: i64| {
            sample(src, x0 + k * g.cos, y0 - k * g.sin).map_or(fill_out, |v| tone.apply(v))
        };
        let mut i = 0;
        while i < w {
            let (x, y) = (x0 + i * g.cos, y0 - i * g.sin);
            let offset = (x >> 16) - i;
            let iy = y >> 16;
            let (fx, fy) = (x & 0xFFFF, y & 0xFFFF);
            let len = steps_within_pixel(fx, g.cos - ONE)
                .min(steps_within_pixel(fy, -g.sin))
                .min(w - i);
            let end = i + len;
            if iy < -1 || iy > h {
                row[i as usize..end as usize].fill(fill_out);
                i = end;
                continue;
            }
            // Output columns by source column (k + offset): < -1 fill,
            // -1 edge, 0..=w-2 blend, w-1 and w edge, > w fill.
            let cut = |k: i64| k.clamp(i, end);
            let (left_fill, left_edge) = (cut(-1 - offset), cut(-offset));
            let (inner, right_edge) = (cut(w - 1 - offset), cut(w + 1 - offset));
            // Most spans have no fill: skip the call to memset.
            if left_fill > i {
                row[i as usize..left_fill as usize].fill(fill_out);
            }
            for k in left_fill..left_edge {
                row[k as usize] = edge(k);
            }
            if left_edge < inner {
                let r0 = iy.clamp(0, h - 1);
                let r1 = (r0 + 1).min(h - 1);
                let (col, n) = ((left_edge + offset) as usize, (inner - left_edge) as usize);
                let skip = left_edge - i;
                let source = Source {
                    top: &src_row(r0)[col..col + n + 1],
                    bottom: &src_row(r1)[col..col + n + 1],
                    x: [(fx + skip * (g.cos - ONE)) as i32, (g.cos - ONE) as i32],
                    y: [(fy - skip * g.sin) as i32, -g.sin as i32],
                };
                kernel.blend(&mut row[left_edge as usize..inner as usize], &source, tone);
            }
            for k in inner..right_edge {
                row[k as usize] = edge(k);
            }
            if end > right_edge {
                row[right_edge as usize..end as usize].fill(fill_out);
            }
            i = end;
        }
    }
}

/// What one span blends from: `out[k]` (see [`Blend`]) is the bilinear
/// blend of `top[k..k+2]` and `bottom[k..k+2]` with 16-bit fractions
/// `fx = x[0] + k * x[1]` and `fy = y[0] + k * y[1]`, each staying in
/// 0..2^16 over the span. `top` and `bottom` hold `out.len() + 1`
/// samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    pub top: &'a [u8],
    pub bottom: &'a [u8],
    pub x: [i32; 2],
    pub y: [i32; 2],
}

/// The span path's inner loop: writes every `out[k]` as blended from
/// `source`, truncated as FFmpeg's 64-bit `((1-fy)*s0 + fy*s1) >> 32`,
/// then mapped through `tone`. Every implementation gives [`blend`]'s
/// bytes.
pub(crate) trait Blend: Copy {
    fn blend<T: Apply>(self, out: &mut [u8], source: &Source, tone: T);
}

/// [`blend`] as written, vectorized by the compiler for the level it is
/// compiled in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Compiled;

impl Blend for Compiled {
    #[inline(always)]
    fn blend<T: Apply>(self, out: &mut [u8], source: &Source, tone: T) {
        blend(out, source, tone)
    }
}

/// The portable [`Blend`], in 32-bit lanes (the hand-written kernels take
/// the same steps). FFmpeg's sum `(2^16 - fy) * s0 + fy * s1` is
/// `2^16 * s0 + fy * D` with `D = s1 - s0` (|D| < 2^24); with
/// `D = 2^16 * Dh + Dl` (Dh arithmetic, 0 <= Dl < 2^16) its value
/// truncated by 2^32 is `(s0 + fy * Dh + ((fy * Dl) >> 16)) >> 16`,
/// where `fy * Dl` is below 2^32 as an unsigned product.
#[inline(always)]
pub(crate) fn blend<T: Apply>(out: &mut [u8], source: &Source, tone: T) {
    let Source { top, bottom, x, y } = *source;
    let n = out.len();
    let (a, b) = (&top[..n], &top[1..n + 1]);
    let (c, d) = (&bottom[..n], &bottom[1..n + 1]);
    for k in 0..n {
        let fx = x[0] + k as i32 * x[1];
        let fy = y[0] + k as i32 * y[1];
        let (a, b, c, d) = (
            i32::from(a[k]),
            i32::from(b[k]),
            i32::from(c[k]),
            i32::from(d[k]),
        );
        let s0 = (a << 16) + fx * (b - a);
        let s1 = (c << 16) + fx * (d - c);
        let diff = s1 - s0;
        let low = ((fy as u32).wrapping_mul((diff & 0xFFFF) as u32) >> 16) as i32;
        out[k] = tone.apply(((s0 + fy * (diff >> 16) + low) >> 16) as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixel::eq::Linear;

    #[test]
    fn fixed_point_sin_and_cos_match_vf_rotate() {
        // Values of vf_rotate.c's int_sin, worked through by hand for 0
        // and checked against the float functions for the rest.
        let zero = Rotation::new(0.0);
        assert_eq!((zero.sin, zero.cos), (0, 65536));
        for angle in [0.001, 0.01, -0.01, 0.5, 3.0, -6.0] {
            let r = Rotation::new(angle);
            assert!(
                (r.sin as f64 - 65536.0 * f64::sin(angle)).abs() < 2.0,
                "{angle}"
            );
            assert!(
                (r.cos as f64 - 65536.0 * f64::cos(angle)).abs() < 2.0,
                "{angle}"
            );
        }
    }

    #[test]
    fn a_whole_pixel_run_is_counted_exactly() {
        assert_eq!(steps_within_pixel(100, -10), 11);
        assert_eq!(steps_within_pixel(65535, 1), 1);
        assert_eq!(steps_within_pixel(0, 1), 65536);
        assert_eq!(steps_within_pixel(5, 0), i64::MAX);
    }

    #[test]
    fn blend_equals_the_64_bit_formula() {
        let top = [0u8, 255, 7, 200];
        let bottom = [255u8, 0, 199, 3];
        for (fx, dfx) in [(0, 0), (65535, -1), (40000, -7)] {
            for (fy, dfy) in [(0, 0), (65535, -655), (1, 600)] {
                let mut out = [0u8; 3];
                let source = Source {
                    top: &top,
                    bottom: &bottom,
                    x: [fx, dfx],
                    y: [fy, dfy],
                };
                blend(&mut out, &source, Linear::IDENTITY);
                for (k, &got) in out.iter().enumerate() {
                    let (fx, fy) = (
                        i64::from(fx + k as i32 * dfx),
                        i64::from(fy + k as i32 * dfy),
                    );
                    let p = |s: &[u8], i: usize| i64::from(s[i]);
                    let s0 = (ONE - fx) * p(&top, k) + fx * p(&top, k + 1);
                    let s1 = (ONE - fx) * p(&bottom, k) + fx * p(&bottom, k + 1);
                    assert_eq!(i64::from(got), ((ONE - fy) * s0 + fy * s1) >> 32);
                }
            }
        }
    }
}
