//! The caps on a frame's payload: [`MAX_REQUEST_LEN`], derived from the
//! submission limits of [`crate::proto`] so that every request they allow
//! fits, and [`MAX_RESPONSE_LEN`]. Numbers only: `frame` enforces them on a
//! stream, `payload` holds bincode's decoding to them.

use crate::proto::{MAX_INPUTS, MAX_LABEL_BYTES, MAX_LABELS, MAX_PATH_BYTES};

/// Most bytes bincode spends on one integer or length prefix (a `u64`
/// varint: a marker byte and 8 bytes).
const MAX_VARINT_LEN: usize = 9;

/// Largest frame payload a client may send, in bytes (3.9 MiB with
/// today's limits): the largest request the limits allow, a `Submit` of
/// [`MAX_INPUTS`] inputs and an output directory, each path
/// [`MAX_PATH_BYTES`] long with its length prefix, [`MAX_LABELS`] labels
/// of [`MAX_LABEL_BYTES`], and room for the variant tag, the input and
/// label counts, the variations, the seed and the priority.
pub const MAX_REQUEST_LEN: usize = (MAX_INPUTS + 1) * (MAX_PATH_BYTES + MAX_VARINT_LEN)
    + MAX_LABELS * (MAX_LABEL_BYTES + MAX_VARINT_LEN)
    + 8 * MAX_VARINT_LEN;
/// Largest frame payload the daemon may send, in bytes (64 MiB).
pub const MAX_RESPONSE_LEN: usize = 64 << 20;

// bincode decodes at most MAX_RESPONSE_LEN bytes (see `wire_config`), so
// every request must fit in that too.
const _: () = assert!(MAX_REQUEST_LEN <= MAX_RESPONSE_LEN);

#[cfg(test)]
mod tests {
    use super::super::fixtures::largest_submit;
    use super::super::payload::encode;
    use super::*;

    #[test]
    fn the_frame_cap_fits_the_largest_request_the_limits_allow() {
        let len = encode(&largest_submit()).unwrap().len();
        assert!(
            len <= MAX_REQUEST_LEN,
            "the largest submission takes {len} bytes, the cap is {MAX_REQUEST_LEN}"
        );
        // Derived, not guessed: no more than a few bytes per path to spare.
        assert!(MAX_REQUEST_LEN - len < 16 * (MAX_INPUTS + 1), "{len}");
    }
}
