//! Instruction-set levels: the warp's frame loop compiled once per level
//! and chosen at run time.
//!
//! Owns CPU detection and the unsafe calls into the levels'
//! `#[target_feature]` functions, which alone make the tokens
//! (`Avx2::new`, `Avx512::new`) the hand-written kernels rely on. The frame body (`pixel::frame`) and everything it calls
//! are `#[inline(always)]`, so each level below gets its own copy of the
//! whole per-frame loop, vectorized by the compiler for that instruction
//! set (the span loop has no gathers and no 64-bit products); AVX2 and
//! AVX-512 run the span path's inner loop written by hand instead
//! (`super::avx2`, `super::avx512`: the compiler's takes more steps per
//! sample). The build never uses `target-cpu=native`: the baseline is
//! the target's (SSE2 on x86-64, NEON on aarch64), and SSE4.1, AVX2 and
//! AVX-512 are added only where `is_x86_feature_detected!` finds them.
//! Must not hold pixel arithmetic of its own.

use super::warp::Compiled;
use super::{Job, frame};
#[cfg(test)]
use super::{
    eq::Linear,
    warp::{Blend, Source},
};

/// An instruction set the warp can run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Plain Rust with the target's baseline features: the fallback on
    /// any CPU (on x86-64 this still has SSE2, on aarch64 NEON).
    Portable,
    /// x86-64 with SSE2 named explicitly (x86-64's baseline).
    Sse2,
    /// x86-64 with SSE4.1 (its 32-bit multiply `pmulld`, which SSE2
    /// lacks and the blend uses five times a sample, eq's included).
    Sse41,
    /// x86-64 with AVX2, when the CPU has it.
    Avx2,
    /// x86-64 with AVX-512 F, BW and VL, when the CPU has them.
    Avx512,
    /// aarch64 with NEON named explicitly (aarch64's baseline).
    Neon,
}

/// Every level, worst first.
const ALL: [Level; 6] = [
    Level::Portable,
    Level::Sse2,
    Level::Sse41,
    Level::Avx2,
    Level::Avx512,
    Level::Neon,
];

impl Level {
    /// The best level this CPU runs. Cheap, without allocation: the
    /// standard library caches the CPU's answer, so calling this once a
    /// frame costs nothing.
    pub fn detect() -> Level {
        ALL.into_iter()
            .rev()
            .find(|l| l.runs_here())
            .unwrap_or(Level::Portable)
    }

    /// Every level this CPU runs, worst first; always starts with
    /// [`Level::Portable`].
    pub fn available() -> Vec<Level> {
        ALL.into_iter().filter(|l| l.runs_here()).collect()
    }

    /// Whether this build and this CPU run the level.
    pub fn runs_here(self) -> bool {
        match self {
            Level::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Level::Sse2 => true,
            #[cfg(target_arch = "x86_64")]
            Level::Sse41 => std::arch::is_x86_feature_detected!("sse4.1"),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
            }
            #[cfg(target_arch = "aarch64")]
            Level::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Lower-case name, as the bench prints it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Portable => "portable",
            Level::Sse2 => "sse2",
            Level::Sse41 => "sse4.1",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
            Level::Neon => "neon",
        }
    }

    /// Runs `job` compiled for this level; a level this CPU lacks (see
    /// [`Level::runs_here`]) runs the portable build instead.
    pub(super) fn run(self, job: &mut Job) {
        if !self.runs_here() {
            return frame(job, Compiled);
        }
        match self {
            Level::Portable => frame(job, Compiled),
            // SAFETY: `runs_here` found each feature on this CPU.
            #[cfg(target_arch = "x86_64")]
            Level::Sse2 => unsafe { frame_sse2(job) },
            #[cfg(target_arch = "x86_64")]
            Level::Sse41 => unsafe { frame_sse41(job) },
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => unsafe { frame_avx2(job) },
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => unsafe { frame_avx512(job) },
            #[cfg(target_arch = "aarch64")]
            Level::Neon => unsafe { frame_neon(job) },
            #[allow(unreachable_patterns)]
            _ => frame(job, Compiled),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn frame_sse2(job: &mut Job) {
    frame(job, Compiled)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.1")]
fn frame_sse41(job: &mut Job) {
    frame(job, Compiled)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn frame_avx2(job: &mut Job) {
    // SAFETY: this function runs only where the CPU has AVX2.
    frame(job, unsafe { super::avx2::Avx2::new() })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn frame_avx512(job: &mut Job) {
    // SAFETY: this function runs only where the CPU has these features.
    frame(job, unsafe { super::avx512::Avx512::new() })
}

#[cfg(target_arch = "aarch64")]
#[target_feature(enable = "neon")]
fn frame_neon(job: &mut Job) {
    frame(job, Compiled)
}

/// The span path's inner loop of `level` alone, as [`Level::run`] would
/// pick it (tests only: the kernels' bounds and bytes on every length).
#[cfg(test)]
pub(super) fn blend(level: Level, out: &mut [u8], source: &Source, tone: Linear) {
    match level {
        // SAFETY: each token is made only where `runs_here` found its
        // features on this CPU.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 if level.runs_here() => {
            unsafe { super::avx2::Avx2::new() }.blend(out, source, tone)
        }
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 if level.runs_here() => {
            unsafe { super::avx512::Avx512::new() }.blend(out, source, tone)
        }
        _ => Compiled.blend(out, source, tone),
    }
}
