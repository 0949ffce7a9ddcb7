//! The pixel path: one variation's rotation and eq applied to raw
//! `yuv420p` frames, giving what FFmpeg's
//! `rotate=A:fillcolor=black@0,eq=brightness=B:contrast=C:saturation=S`
//! gives on the same frames.
//!
//! Owns the frame layout and the per-variation [`Warp`]; the plane
//! geometry is [`warp`] (from libavfilter's vf_rotate.c), the sample
//! mapping [`eq`] (vf_eq.c with gamma 1), the instruction-set levels
//! [`simd`], the hand-written AVX2 inner loop `avx2`. Used by the `vidvar-stage` binary; the daemon itself never
//! touches pixels. No I/O, no threads, no allocation per frame.
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
        for (which, got) in [("the input", src.len()), ("the output", dst.len())] {
            if got != size.frame_bytes() {
                return Err(PixelError::Length {
                    width: size.width,
                    height: size.height,
                    expected: size.frame_bytes(),
                    got,
                    which,
                });
            }
        }
        level.run(&mut Job {
            warp: self,
            size,
            src,
            dst,
        });
        Ok(())
    }
}

/// One frame's work, handed to the level's compiled copy of [`frame`].
struct Job<'a> {
    warp: &'a Warp,
    size: Size,
    src: &'a [u8],
    dst: &'a mut [u8],
}

/// The whole per-frame loop, with `kernel` as the span path's inner
/// loop; inlined into each [`Level`]'s function.
#[inline(always)]
fn frame<B: Blend>(job: &mut Job, kernel: B) {
    for (index, (offset, width, height)) in job.size.planes().into_iter().enumerate() {
        let bytes = offset..offset + width * height;
        let src = Plane {
            data: &job.src[bytes.clone()],
            stride: width,
            width,
            height,
        };
        let mut dst = PlaneMut {
            data: &mut job.dst[bytes],
            stride: width,
            width,
            height,
        };
        let tone = if index == 0 {
            &job.warp.luma
        } else {
            &job.warp.chroma
        };
        let rotation = &job.warp.rotation;
        match tone {
            Tone::Linear(l) => warp::plane(&src, &mut dst, rotation, *l, FILL[index], kernel),
            Tone::Table(t) => warp::plane(&src, &mut dst, rotation, &**t, FILL[index], kernel),
        }
    }
}

#[cfg(test)]
mod tests;
