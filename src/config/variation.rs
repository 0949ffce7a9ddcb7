//! How variations are made, as the configuration file sets it: the
//! `[encode]` table over [`EncodeSettings::default`] and the `[effects]`
//! table over the v1 effect ranges, each value checked against what FFmpeg
//! takes. Building FFmpeg's arguments is `ffmpeg::argv`'s, drawing effects
//! `effects`'; this module only reads the settings.

use super::file::{ConfigError, FileSettings};
use crate::effects::Ranges;
use crate::ffmpeg::{EncodeSettings, RateControl};
use crate::job::FrameRate;
use std::ops::RangeInclusive;
use std::path::Path;

impl FileSettings {
    /// Encoding settings: the defaults with the `[encode]` table over them.
    ///
    /// Errors: [`ConfigError::Value`] for both a bitrate and a CRF, values
    /// out of range, or a frame rate that is neither `N`, `N/D` nor
    /// `"source"`.
    pub fn encode(&self, path: &Path) -> Result<EncodeSettings, ConfigError> {
        let bad = |key, reason: String| self.bad(path, key, reason);
        let mut e = EncodeSettings::default();
        let Some(f) = &self.encode else {
            return Ok(e);
        };
        for (key, value, slot) in [
            ("encode.video_codec", &f.video_codec, &mut e.video_codec),
            ("encode.preset", &f.preset, &mut e.preset),
            ("encode.audio_codec", &f.audio_codec, &mut e.audio_codec),
        ] {
            if let Some(value) = value {
                if value.is_empty() || value.starts_with('-') || value.contains(char::is_whitespace)
                {
                    return Err(bad(key, format!("{value:?} is not a name")));
                }
                *slot = value.clone();
            }
        }
        e.rate = match (f.video_bitrate_kbps, f.crf) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "encode.crf",
                    "set video_bitrate_kbps or crf, not both".into(),
                ));
            }
            (Some(kbps), None) if (1..=1_000_000).contains(&kbps) => RateControl::BitrateKbps(kbps),
            (Some(kbps), None) => {
                return Err(bad(
                    "encode.video_bitrate_kbps",
                    format!("{kbps} is not in 1..=1000000"),
                ));
            }
            (None, Some(crf)) if crf <= 51 => RateControl::Crf(crf),
            (None, Some(crf)) => return Err(bad("encode.crf", format!("{crf} is not in 0..=51"))),
            (None, None) => e.rate,
        };
        if let Some(rate) = &f.frame_rate {
            e.frame_rate = match rate.as_str() {
                "source" => None,
                r => match FrameRate::parse(r) {
                    Some(rate) => Some(rate),
                    None => {
                        return Err(bad(
                            "encode.frame_rate",
                            format!("{r:?} is not N, N/D or \"source\""),
                        ));
                    }
                },
            };
        }
        Ok(e)
    }

    /// Effect ranges: the v1 ranges with the `[effects]` table over them.
    ///
    /// Errors: [`ConfigError::Value`] for `min > max` or bounds outside
    /// what FFmpeg's filters take (eq(1): brightness -1..1, contrast
    /// -1000..1000, saturation 0..3; rotation within one turn).
    pub fn effects(&self, path: &Path) -> Result<Ranges, ConfigError> {
        let mut r = Ranges::default();
        let Some(f) = &self.effects else {
            return Ok(r);
        };
        let turn = std::f64::consts::TAU;
        for (key, value, limits, slot) in [
            (
                "effects.rotation",
                f.rotation,
                -turn..=turn,
                &mut r.rotation,
            ),
            (
                "effects.brightness",
                f.brightness,
                -1.0..=1.0,
                &mut r.brightness,
            ),
            (
                "effects.contrast",
                f.contrast,
                -1000.0..=1000.0,
                &mut r.contrast,
            ),
            (
                "effects.saturation",
                f.saturation,
                0.0..=3.0,
                &mut r.saturation,
            ),
        ] {
            if let Some([lo, hi]) = value {
                *slot = range(lo, hi, &limits).map_err(|reason| self.bad(path, key, reason))?;
            }
        }
        Ok(r)
    }
}

/// Why an effect range `[lo, hi]` from the configuration file is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum BadRange {
    #[error("[{lo}, {hi}] is not within [{min}, {max}]")]
    OutOfLimits {
        lo: f64,
        hi: f64,
        min: f64,
        max: f64,
    },
    #[error("[{lo}, {hi}]: the minimum is above the maximum")]
    Reversed { lo: f64, hi: f64 },
}

fn range(lo: f64, hi: f64, limits: &RangeInclusive<f64>) -> Result<RangeInclusive<f64>, BadRange> {
    if !(limits.contains(&lo) && limits.contains(&hi)) {
        return Err(BadRange::OutOfLimits {
            lo,
            hi,
            min: *limits.start(),
            max: *limits.end(),
        });
    }
    if lo > hi {
        return Err(BadRange::Reversed { lo, hi });
    }
    Ok(lo..=hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileSettings, toml::de::Error> {
        FileSettings::from_text(text)
    }

    #[test]
    fn encode_and_effects_tables_override_the_defaults() {
        let f = parse(
            "[encode]\ncrf = 20\nframe_rate = \"source\"\npreset = \"fast\"\n\
             [effects]\nrotation = [0.0, 0.02]\n",
        )
        .unwrap();
        let e = f.encode(Path::new("x")).unwrap();
        assert_eq!(e.rate, RateControl::Crf(20));
        assert_eq!(e.frame_rate, None);
        assert_eq!(e.preset, "fast");
        let r = f.effects(Path::new("x")).unwrap();
        assert_eq!(r.rotation, 0.0..=0.02);
        assert_eq!(r.contrast, Ranges::default().contrast);
    }

    #[test]
    fn bad_encode_and_effects_values_are_refused() {
        for text in [
            "[encode]\ncrf = 20\nvideo_bitrate_kbps = 100",
            "[encode]\ncrf = 60",
            "[encode]\nframe_rate = \"fast\"",
            "[encode]\npreset = \"-y\"",
        ] {
            assert!(
                parse(text).unwrap().encode(Path::new("x")).is_err(),
                "{text}"
            );
        }
        for text in [
            "[effects]\nbrightness = [0.1, -0.1]",
            "[effects]\nsaturation = [0.0, 9.0]",
        ] {
            assert!(
                parse(text).unwrap().effects(Path::new("x")).is_err(),
                "{text}"
            );
        }
        assert!(
            parse("[encode]\ncodec = \"x\"").is_err(),
            "unknown keys in tables too"
        );
    }
}
