//! The work of one slot: probe an input, or encode, check and publish one
//! variation.
//!
//! Files are used only as they were vetted at submit (see
//! [`crate::access::vetted`]): the input is reopened, compared with its
//! recorded identity and judged again, then read by ffprobe and FFmpeg as
//! `/dev/fd/N`; the output directory is reopened the same way once per
//! variation and held as a descriptor. An encode writes to a hidden
//! temporary file created in it with `O_EXCL` (its path is in the store
//! before the file exists, so recovery can remove it), is checked by one
//! more FFmpeg run because FFmpeg's exit status 0 is not proof of a good
//! file (sampled frames over its whole length decode and look like the
//! input with the effects applied, see [`crate::ffmpeg::check`]), and is
//! then published under `<input stem>_v<NN>.mp4` with linkat(2), which
//! never replaces an existing file. Creating, publishing and removing are
//! all relative to the directory's descriptor, so a directory renamed or
//! swapped meanwhile can neither redirect an output nor keep a stray
//! temporary file. A failed or stopped encode leaves no file behind.
//!
//! Each step has a module of its own: `probe` (ffprobe on an input),
//! `files` (the vetted files reopened and the temporary file, on a
//! blocking thread as the job's owner), `variation` (a variation made
//! ready before its encode and concluded after), `lone` (one FFmpeg per
//! variation), `piped` (a batch through one pipeline of the pixel path),
//! `verify` (the encode's length, the quality check and the claim
//! confirmed), `shared_check` (a pipeline's outputs checked by one FFmpeg
//! before each is checked alone) and `publish` (the checked file given its name); `context`
//! holds what they need of the engine ([`Context`]) and the writing of
//! outcomes to the queue. Here is only [`encode`], which runs a batch
//! through them.

mod context;
mod files;
mod lone;
mod piped;
mod probe;
mod publish;
mod shared_check;
mod variation;
mod verify;

pub use context::Context;
pub use probe::probe;

use crate::config::PixelPath;
use crate::queue::VariationWork;
use futures_util::future::join_all;
use lone::run_each;
use piped::run_pipeline;
use variation::{Ready, conclude, get_ready};

/// Encode, check and publish a batch of claimed variations of one input
/// file (each holding a slot and its own lease), then record each
/// outcome. With `pixel_path = "vidvar"` the batch is one pipeline (see
/// [`super::pipeline`]), else one FFmpeg per variation. When stopped by
/// shutdown, an outcome is left for the store's interrupted-work marking.
pub async fn encode(s: &dyn Context, batch: &[(VariationWork, super::Stop)]) {
    let ready: Vec<Ready> = join_all(batch.iter().map(|(work, stop)| get_ready(s, work, stop)))
        .await
        .into_iter()
        .flatten()
        .collect();
    if ready.is_empty() {
        return;
    }
    let results = match s.tunables().pixel_path {
        PixelPath::Vidvar => run_pipeline(s, &ready).await,
        PixelPath::Ffmpeg => run_each(s, &ready).await,
    };
    join_all(
        ready
            .into_iter()
            .zip(results)
            .map(|(r, result)| conclude(s, r, result)),
    )
    .await;
}
