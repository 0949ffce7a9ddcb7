//! The filter chains FFmpeg applies (ffmpeg-filters(1)): the effects of a
//! variation, the output's picture and size, the output frame rate, and the
//! sampled frames and reference pictures the check compares. Strings only:
//! which chains make up a command's graph is the sibling modules' choice.

use crate::effects::Effects;
use crate::ffmpeg::samples::Samples;
use crate::job::FrameRate;

/// The effects of one variation as a filter chain (see
/// [`crate::effects`]): rotate, then eq for brightness, contrast and
/// saturation.
pub fn effects_chain(effects: &Effects) -> String {
    format!(
        "rotate={:.6}:fillcolor=black@0,eq=brightness={:.6}:contrast={:.6}:saturation={:.6}",
        effects.rotation, effects.brightness, effects.contrast, effects.saturation
    )
}

/// The output's picture from frames at the output rate: the effects
/// ([`effects_chain`]), then [`EVEN_YUV420P`].
pub fn picture_chain(effects: &Effects) -> String {
    format!("{},{EVEN_YUV420P}", effects_chain(effects))
}

/// Even dimensions of at least 2x2 (libx264 refuses odd ones; `trunc`
/// alone would turn a 1-pixel side into 0, which `scale` reads as "keep")
/// and `yuv420p`, which players need. [`even_size`] computes the same.
pub const EVEN_YUV420P: &str = "scale='max(2,trunc(iw/2)*2)':'max(2,trunc(ih/2)*2)',format=yuv420p";

/// The size in pixels [`EVEN_YUV420P`] gives a `width` x `height` picture.
pub fn even_size((width, height): (u32, u32)) -> (u32, u32) {
    let even = |side: u32| (side / 2 * 2).max(2);
    (even(width), even(height))
}

/// The output frame rate from time 0 (FFmpeg's `fps` filter with
/// `start_time=0`): a video that starts after the audio begins with its
/// first frame repeated, so the two stay in sync, and frame times are the
/// output's.
pub fn rate_filter(rate: FrameRate) -> String {
    format!("fps={rate}:start_time=0")
}

/// Width and height every sampled frame is scaled to before the check
/// compares it (see [`crate::ffmpeg::check`]).
pub const CHECK_SIZE: (u32, u32) = (320, 180);

/// Pixels a reference picture keeps while the effects are applied to it
/// (640x360 for 16:9): the input is shrunk to it keeping its shape, never
/// enlarged.
pub const REFERENCE_AREA: u32 = 640 * 360;

/// An FFmpeg `scale` expression for side `side` (`iw` or `ih`) shrunk by
/// one factor for both sides to at most [`REFERENCE_AREA`] pixels, even
/// and at least 2.
fn shrunk(side: &str) -> String {
    format!("max(2,trunc({side}*min(1,sqrt({REFERENCE_AREA}/(iw*ih)))/2)*2)")
}

/// The start of every graph that decodes: the input's video stream
/// `stream`, deinterlaced when asked (FFmpeg's `bwdif`, one frame per
/// frame), at the output frame rate from time 0 ([`rate_filter`]),
/// followed by a comma.
pub(super) fn source_chain(stream: usize, deinterlace: bool, rate: FrameRate) -> String {
    let deinterlace = if deinterlace {
        "bwdif=mode=send_frame:parity=auto:deint=all,"
    } else {
        ""
    };
    format!("[0:{stream}]{deinterlace}{},", rate_filter(rate))
}

/// Only the sampled frames, shrunk to about [`REFERENCE_AREA`] pixels
/// keeping the input's shape; a filter chain ending in a comma.
pub(super) fn sampled_chain(samples: &Samples) -> String {
    format!(
        "select='{}',scale='{}':'{}',",
        samples.select_expr(),
        shrunk("iw"),
        shrunk("ih")
    )
}

/// A reference picture from a sampled, shrunk frame: FFmpeg's own effects
/// ([`effects_chain`]), then [`CHECK_SIZE`] in `yuv420p`.
pub(super) fn reference_chain(effects: &Effects) -> String {
    let (w, h) = CHECK_SIZE;
    format!("{},scale={w}:{h},format=yuv420p", effects_chain(effects))
}

#[cfg(test)]
mod tests {
    use super::super::testing::effects;
    use super::*;

    #[test]
    fn effects_follow_the_recipe() {
        assert_eq!(
            effects_chain(&effects()),
            "rotate=0.004321:fillcolor=black@0,\
             eq=brightness=-0.012000:contrast=1.030000:saturation=0.960000"
        );
    }

    #[test]
    fn even_sizes_are_at_least_two() {
        assert_eq!(even_size((1, 1)), (2, 2));
        assert_eq!(even_size((321, 240)), (320, 240));
        assert_eq!(even_size((3, 1081)), (2, 1080));
    }
}
