//! The pixel path: one variation's rotation and eq applied to raw
//! `yuv420p` frames, giving what FFmpeg's
//! `rotate=A:fillcolor=black@0,eq=brightness=B:contrast=C:saturation=S`
//! gives on the same frames.
//!
//! Owns the frame layout and the per-variation [`Warp`]; the plane
//! geometry is [`warp`] (from libavfilter's vf_rotate.c), the sample
//! mapping [`eq`] (vf_eq.c with gamma 1), the instruction-set levels
//! [`simd`], the inner loops written by hand `avx2` and `avx512`. Used
//! by the `vidvar-stage` binary; the daemon itself never touches pixels.
//! No I/O, no threads, no allocation per frame.
//!
//! A raw `yuv420p` frame of [`Size`] W x H (even, at least 2x2) is
//! W*H bytes of Y (rows of W), then (W/2)*(H/2) of U, then as many of V
//! (rows of W/2): FFmpeg's `-f rawvideo -pix_fmt yuv420p`, strides equal
//! to widths. Each plane turns about its own centre by the variation's
//! angle (radians, clockwise on screen), outside samples take black
//! (Y 16, U and V 128), then Y goes through eq's contrast and brightness
//! and U and V through its saturation.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod eq;
pub mod simd;
pub mod warp;

use crate::effects::Effects;
use eq::Tone;
pub use simd::Level;
use std::ops::Range;
use warp::{Blend, Plane, PlaneMut, Rotation};

/// What a frame or its size was refused for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PixelError {
    #[error("frame size {width}x{height}: {reason}")]
    Size {
        width: usize,
        height: usize,
        reason: &'static str,
    },
    #[error("a {width}x{height} yuv420p frame is {expected} bytes, {which} has {got}")]
    Length {
        width: usize,
        height: usize,
        expected: usize,
        got: usize,
        which: &'static str,
    },
}

/// Largest frame side: vf_rotate.c holds positions in 32-bit 16.16 fixed
/// point, so its results are defined below 32768 pixels.
pub const MAX_SIDE: usize = 32766;

/// The luma size of a `yuv420p` frame, in pixels: both sides even, from
/// 2 to [`MAX_SIDE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    width: usize,
    height: usize,
}

impl Size {
    /// Errors: [`PixelError::Size`] for an odd side, a side below 2 or
    /// above [`MAX_SIDE`].
    pub fn new(width: usize, height: usize) -> Result<Size, PixelError> {
        let refuse = |reason| {
            Err(PixelError::Size {
                width,
                height,
                reason,
            })
        };
        if width < 2 || height < 2 {
            return refuse("each side must be at least 2");
        }
        if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return refuse("each side must be even (yuv420p)");
        }
        if width > MAX_SIDE || height > MAX_SIDE {
            return refuse("a side is above 32766");
        }
        Ok(Size { width, height })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Bytes in one raw frame: W*H + 2 * (W/2)*(H/2).
    pub fn frame_bytes(&self) -> usize {
        self.width * self.height * 3 / 2
    }

    /// (byte offset, width, height) of the Y, U and V planes.
    fn planes(&self) -> [(usize, usize, usize); 3] {
        let luma = self.width * self.height;
        let (cw, ch) = (self.width / 2, self.height / 2);
        [
            (0, self.width, self.height),
            (luma, cw, ch),
            (luma + cw * ch, cw, ch),
        ]
    }

    /// The frame cut into [`Band`]s of at most `bytes` bytes each (but
    /// at least one row), in the order of the raw frame's bytes: the Y
    /// plane's rows top to bottom, then U's, then V's. One band per plane
    /// for `bytes` of a whole plane or more.
    pub fn bands(&self, bytes: usize) -> impl Iterator<Item = Band> + use<> {
        let size = *self;
        self.planes()
            .into_iter()
            .enumerate()
            .flat_map(move |(plane, (offset, width, height))| {
                let step = (bytes / width).clamp(1, height);
                (0..height).step_by(step).map(move |first| Band {
                    size,
                    plane,
                    offset: offset + first * width,
                    width,
                    rows: first..(first + step).min(height),
                })
            })
    }
}

/// Whole rows of one plane of a frame: the unit [`Warp::apply_band`]
/// writes (see [`Size::bands`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Band {
    /// The frame's size.
    size: Size,
    /// 0 for Y, 1 for U, 2 for V.
    plane: usize,
    /// Where the band's first byte lies in a raw frame.
    offset: usize,
    /// The plane's width in samples.
    width: usize,
    rows: Range<usize>,
}

impl Band {
    /// The band's length in bytes: its rows times its plane's width.
    pub fn bytes(&self) -> usize {
        self.width * self.rows.len()
    }

    /// Where the band lies in a raw frame, in bytes.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.bytes()
    }
}

/// Fill of the Y plane and of the U and V planes: `fillcolor=black`.
const FILL: [u8; 3] = [16, 128, 128];

/// One variation's effects, prepared once and applied to every frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Warp {
    rotation: Rotation,
    luma: Tone,
    chroma: Tone,
}

impl Warp {
    /// From the variation's effects (rotation in radians, eq brightness,
    /// contrast and saturation; see [`crate::effects`]).
    pub fn new(effects: &Effects) -> Warp {
        Warp {
            rotation: Rotation::new(effects.rotation),
            luma: Tone::luma(effects.contrast, effects.brightness),
            chroma: Tone::chroma(effects.saturation),
        }
    }

    /// Writes the warped `src` frame to `dst`, both raw `yuv420p` frames
    /// of `size`, with the instruction set `level` (see [`Level::detect`]).
    ///
    /// Errors: [`PixelError::Length`] when a buffer is not
    /// [`Size::frame_bytes`] long.
    pub fn apply(
        &self,
        level: Level,
        size: Size,
        src: &[u8],
        dst: &mut [u8],
    ) -> Result<(), PixelError> {
        check_length(size, "the output", size.frame_bytes(), dst.len())?;
        for band in size.bands(usize::MAX) {
            let range = band.range();
            self.apply_band(level, src, &band, &mut dst[range])?;
        }
        Ok(())
    }

    /// Writes the rows of `band` of the warped `src` frame (a raw
    /// `yuv420p` frame of the band's size, see [`Size::bands`]) to `dst`,
    /// [`Band::bytes`] long: what [`Warp::apply`] writes to
    /// `band.range()` of its output.
    ///
    /// Errors: [`PixelError::Length`] when `src` is not
    /// [`Size::frame_bytes`] long or `dst` not [`Band::bytes`].
    pub fn apply_band(
        &self,
        level: Level,
        src: &[u8],
        band: &Band,
        dst: &mut [u8],
    ) -> Result<(), PixelError> {
        let size = band.size;
        check_length(size, "the input", size.frame_bytes(), src.len())?;
        check_length(size, "the output", band.bytes(), dst.len())?;
        level.run(&mut Job {
            warp: self,
            src,
            band,
            dst,
        });
        Ok(())
    }
}

fn check_length(
    size: Size,
    which: &'static str,
    expected: usize,
    got: usize,
) -> Result<(), PixelError> {
    if got == expected {
        return Ok(());
    }
    Err(PixelError::Length {
        width: size.width,
        height: size.height,
        expected,
        got,
        which,
    })
}

/// One band's work, handed to the level's compiled copy of [`frame`].
struct Job<'a> {
    warp: &'a Warp,
    src: &'a [u8],
    band: &'a Band,
    dst: &'a mut [u8],
}

/// The per-band loop, with `kernel` as the span path's inner loop;
/// inlined into each [`Level`]'s function.
#[inline(always)]
fn frame<B: Blend>(job: &mut Job, kernel: B) {
    let band = job.band;
    let (offset, width, height) = band.size.planes()[band.plane];
    let src = Plane {
        data: &job.src[offset..offset + width * height],
        stride: width,
        width,
        height,
    };
    let mut dst = PlaneMut {
        data: job.dst,
        stride: width,
        width,
        rows: band.rows.clone(),
    };
    let tone = if band.plane == 0 {
        &job.warp.luma
    } else {
        &job.warp.chroma
    };
    let (rotation, fill) = (&job.warp.rotation, FILL[band.plane]);
    match tone {
        Tone::Linear(l) => warp::plane(&src, &mut dst, rotation, *l, fill, kernel),
        Tone::Table(t) => warp::plane(&src, &mut dst, rotation, &**t, fill, kernel),
    }
}

#[cfg(test)]
mod tests;
