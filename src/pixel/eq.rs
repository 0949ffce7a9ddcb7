//! The tone curve of one plane: FFmpeg's `eq` filter with gamma 1.
//!
//! Owns the mapping of one 8-bit sample to one 8-bit sample that
//! libavfilter's vf_eq.c applies to a plane: on Y with the variation's
//! contrast and brightness, on U and V with contrast = saturation and
//! brightness 0. It must not know planes, frames or rotation; the warp
//! applies a [`Tone`] to every sample it writes, the fill included.
//!
//! vf_eq.c keeps contrast, brightness and saturation as `float` (clipped
//! with `av_clipf` to -1000..1000, -1..1 and 0..3) and picks, per plane:
//! a copy when contrast is 1 and brightness 0; for |contrast| < 7.9 the
//! integer formula `clip(((in * C) >> 12) + B, 0, 255)` with
//! `C = int(contrast * 4096)` and
//! `B = int(100 * brightness + 100) * 511 / 200 - 128 - C / 32`
//! (integer division; its x86 SIMD version computes the same values);
//! otherwise its look-up table `256 * (contrast * (in / 255 - 0.5) + 0.5
//! + brightness)`, truncated, 0 at or below 0, 255 at or above 1.

/// One plane's sample mapping, as `eq` computes it (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tone {
    /// The integer formula; [`Linear::IDENTITY`] is the copy.
    Linear(Linear),
    /// The look-up table FFmpeg builds for |contrast| >= 7.9.
    Table(Box<[u8; 256]>),
}

/// `clip(((in * c) >> 12) + b, 0, 255)`: `c` is the contrast in 1/4096
/// steps, `b` the offset in sample levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linear {
    c: i32,
    b: i32,
}

impl Linear {
    /// The copy vf_eq.c makes for contrast 1 and brightness 0.
    pub const IDENTITY: Linear = Linear { c: 4096, b: 0 };

    /// The contrast in 1/4096 steps, |c| < 32359 (7.9 * 4096).
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn contrast(self) -> i32 {
        self.c
    }

    /// The offset in sample levels, -1140 < b < 1400.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn offset(self) -> i32 {
        self.b
    }
}

/// Maps a sample in 0..=255 (held in a `u32`) to its output level.
pub(crate) trait Apply: Copy {
    fn apply(self, v: u32) -> u8;

    /// The formula when this tone is one, for kernels that compute it
    /// in vector lanes (x86-64's); `None` for the table.
    #[cfg(target_arch = "x86_64")]
    fn linear(self) -> Option<Linear>;
}

impl Apply for Linear {
    #[inline(always)]
    fn apply(self, v: u32) -> u8 {
        (((v as i32 * self.c) >> 12) + self.b).clamp(0, 255) as u8
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn linear(self) -> Option<Linear> {
        Some(self)
    }
}

impl Apply for &[u8; 256] {
    #[inline(always)]
    fn apply(self, v: u32) -> u8 {
        self[(v & 255) as usize]
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn linear(self) -> Option<Linear> {
        None
    }
}

/// Below this |contrast| vf_eq.c uses its integer formula, at and above
/// it the table.
const FORMULA_LIMIT: f64 = 7.9;

impl Tone {
    /// The Y plane's tone for `eq=contrast=contrast:brightness=brightness`
    /// (contrast -1000..1000, brightness -1..1, clipped there as
    /// FFmpeg's options are; 1 and 0 leave the plane as it is).
    pub fn luma(contrast: f64, brightness: f64) -> Tone {
        let contrast = f64::from((contrast as f32).clamp(-1000.0, 1000.0));
        let brightness = f64::from((brightness as f32).clamp(-1.0, 1.0));
        Tone::new(contrast, brightness)
    }

    /// The U and V planes' tone for `eq=saturation=saturation` (0..3,
    /// clipped there; 1 leaves the planes as they are).
    pub fn chroma(saturation: f64) -> Tone {
        Tone::new(f64::from((saturation as f32).clamp(0.0, 3.0)), 0.0)
    }

    fn new(contrast: f64, brightness: f64) -> Tone {
        if contrast == 1.0 && brightness == 0.0 {
            return Tone::Linear(Linear::IDENTITY);
        }
        if contrast.abs() < FORMULA_LIMIT {
            let c = (contrast * 4096.0) as i32;
            let b = ((100.0 * brightness + 100.0) as i32 * 511) / 200 - 128 - c / 32;
            return Tone::Linear(Linear { c, b });
        }
        let mut table = Box::new([0u8; 256]);
        for (i, out) in table.iter_mut().enumerate() {
            let v = contrast * (i as f64 / 255.0 - 0.5) + 0.5 + brightness;
            *out = if v <= 0.0 {
                0
            } else if v >= 1.0 {
                255
            } else {
                (256.0 * v) as u8
            };
        }
        Tone::Table(table)
    }

    /// The output level of sample `v` (0..=255), one sample at a time:
    /// the tests' reference (the warp applies the tone inline).
    #[cfg(test)]
    pub(crate) fn map(&self, v: u8) -> u8 {
        match self {
            Tone::Linear(l) => l.apply(u32::from(v)),
            Tone::Table(t) => (&**t).apply(u32::from(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contrast_one_brightness_zero_is_the_copy() {
        assert_eq!(Tone::luma(1.0, 0.0), Tone::Linear(Linear::IDENTITY));
        assert_eq!(Tone::chroma(1.0), Tone::Linear(Linear::IDENTITY));
        for v in 0..=255 {
            assert_eq!(Tone::luma(1.0, 0.0).map(v), v);
        }
    }

    #[test]
    fn formula_values_by_hand() {
        // C = int(1.05 * 4096) = 4300, B = 105 * 511 / 200 - 128 - 134 = 6.
        let t = Tone::luma(1.05, 0.05);
        assert_eq!(t, Tone::Linear(Linear { c: 4300, b: 6 }));
        assert_eq!(t.map(100), ((100 * 4300) >> 12) as u8 + 6);
        assert_eq!(t.map(255), 255);
        // Saturation: brightness 0 gives B = 255 - 128 - C / 32.
        let s = Tone::chroma(0.95);
        assert_eq!(
            s,
            Tone::Linear(Linear {
                c: 3891,
                b: 127 - 3891 / 32
            })
        );
        assert_eq!(s.map(128), ((128 * 3891) >> 12) as u8 + 6);
        // Contrast 1 with a brightness is the formula, not the copy; the
        // float brightness 0.01 is 0.00999... and so acts as 0 (B = -1),
        // 0.02 as 0.01 (B = 2): FFmpeg 5.1 gives 0 and 2 too.
        assert_eq!(Tone::luma(1.0, 0.01).map(0), 0);
        assert_eq!(Tone::luma(1.0, 0.01).map(100), 99);
        assert_eq!(Tone::luma(1.0, 0.02).map(0), 2);
    }

    #[test]
    fn negative_contrast_inverts_and_clips() {
        let t = Tone::luma(-1.0, 0.0);
        assert_eq!(t.map(0), 255);
        assert_eq!(t.map(255), 0);
    }

    #[test]
    fn large_contrast_takes_the_table() {
        let t = Tone::luma(10.0, 0.0);
        assert!(matches!(t, Tone::Table(_)));
        assert_eq!(t.map(0), 0);
        assert_eq!(t.map(255), 255);
        // 10 * (128/255 - 0.5) + 0.5 = 0.5196..., * 256 = 133.0...
        assert_eq!(t.map(128), 133);
    }
}
