//! Unit tests of the pixel path on synthetic frames: every level and the
//! span path against FFmpeg's per-pixel loop, bit for bit.

use super::warp::{self, Plane, PlaneMut, Rotation};
use super::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::f64::consts::{FRAC_PI_2, PI};

fn effects(rotation: f64, brightness: f64, contrast: f64, saturation: f64) -> Effects {
    Effects {
        rotation,
        brightness,
        contrast,
        saturation,
    }
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random()).collect()
}

fn run(level: Level, e: &Effects, size: Size, src: &[u8]) -> Vec<u8> {
    let mut out = vec![0; size.frame_bytes()];
    Warp::new(e).apply(level, size, src, &mut out).unwrap();
    out
}

/// FFmpeg's loop for one plane: `pixels` (or `spans` when `spans`),
/// no shortcut, identity tone.
fn plane_by(spans: bool, angle: f64, w: usize, h: usize, src: &[u8]) -> Vec<u8> {
    let src = Plane {
        data: src,
        stride: w,
        width: w,
        height: h,
    };
    let mut out = vec![0; w * h];
    let mut dst = PlaneMut {
        data: &mut out,
        stride: w,
        width: w,
        rows: 0..h,
    };
    let r = Rotation::new(angle);
    let tone = eq::Linear::IDENTITY;
    if spans {
        warp::spans(&src, &mut dst, &r, tone, 16, warp::Compiled);
    } else {
        warp::pixels(&src, &mut dst, &r, tone, 16);
    }
    out
}

/// The whole frame by FFmpeg's per-pixel loop and eq's tone.
fn oracle(e: &Effects, size: Size, src: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, (offset, w, h)) in size.planes().into_iter().enumerate() {
        let plane = &src[offset..offset + w * h];
        let tone = if index == 0 {
            Tone::luma(e.contrast, e.brightness)
        } else {
            Tone::chroma(e.saturation)
        };
        let mut p = Plane {
            data: plane,
            stride: w,
            width: w,
            height: h,
        };
        let turned;
        if e.rotation != 0.0 {
            let src = p;
            let mut o = vec![0; w * h];
            let mut dst = PlaneMut {
                data: &mut o,
                stride: w,
                width: w,
                rows: 0..h,
            };
            let fill = FILL[index];
            warp::pixels(
                &src,
                &mut dst,
                &Rotation::new(e.rotation),
                eq::Linear::IDENTITY,
                fill,
            );
            turned = o;
            p.data = &turned;
        }
        out.extend(p.data.iter().map(|&v| tone.map(v)));
    }
    out
}

const ANGLES: [f64; 10] = [0.001, 0.01, -0.001, -0.01, 0.1, -0.12, 0.5, 2.0, -3.0, 6.2];

#[test]
fn angle_zero_with_neutral_eq_is_the_identity_at_every_level() {
    let size = Size::new(64, 36).unwrap();
    let src = noise(size.frame_bytes(), 1);
    for level in Level::available() {
        assert_eq!(
            run(level, &effects(0.0, 0.0, 1.0, 1.0), size, &src),
            src,
            "{level:?}"
        );
    }
}

#[test]
fn every_level_matches_ffmpegs_loop_bit_for_bit() {
    let sizes = [(2, 2), (8000, 2), (2, 8000), (64, 36), (322, 180)];
    for (n, (w, h)) in sizes.into_iter().enumerate() {
        let size = Size::new(w, h).unwrap();
        let src = noise(size.frame_bytes(), n as u64);
        for &angle in &ANGLES {
            let e = effects(angle, 0.05, 0.95, 1.05);
            let want = oracle(&e, size, &src);
            for level in Level::available() {
                let got = run(level, &e, size, &src);
                assert!(got == want, "{level:?} {w}x{h} angle {angle}");
            }
        }
    }
}

#[test]
fn the_span_path_matches_ffmpegs_loop_at_any_angle() {
    for (w, h) in [(2, 2), (3, 5), (1, 7), (400, 3), (97, 61)] {
        let src = noise(w * h, (w * h) as u64);
        for angle in ANGLES
            .into_iter()
            .chain([FRAC_PI_2 + 1e-6, -0.25, PI - 1e-5, 3.0 * FRAC_PI_2])
        {
            assert!(
                plane_by(true, angle, w, h, &src) == plane_by(false, angle, w, h, &src),
                "{w}x{h} angle {angle}"
            );
        }
    }
}

#[test]
fn levels_agree_with_portable_on_large_frames_extreme_tones_and_a_table() {
    let size = Size::new(1280, 720).unwrap();
    let src = noise(size.frame_bytes(), 9);
    for e in [
        effects(0.0073, -0.05, 1.05, 0.95),
        // The formula's ends (|contrast| just under 7.9): the hand-written
        // kernels clip by saturating packs, which must give eq's clamp.
        effects(0.009, 1.0, 7.89, 3.0),
        effects(-0.009, -1.0, -7.89, 0.0),
        effects(-0.004, 0.3, 12.0, 2.5),
    ] {
        let want = run(Level::Portable, &e, size, &src);
        for level in Level::available() {
            assert!(run(level, &e, size, &src) == want, "{level:?} {e:?}");
        }
    }
}

#[test]
fn a_horizontal_ramp_gives_its_source_column() {
    // Bilinear on a ramp 40 + x is exact: the output is 40 + floor(sx)
    // with sx = cos*(i - cx) + sin*(j - cy) + cx (within a fixed-point
    // rounding of the float geometry).
    let (w, h) = (200usize, 40usize);
    let src: Vec<u8> = (0..w * h).map(|p| 40 + (p % w) as u8).collect();
    let angle = 0.01f64;
    let out = plane_by(false, angle, w, h, &src);
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    for (i, j) in [(10, 5), (100, 20), (150, 33), (190, 2)] {
        let sx = angle.cos() * (i as f64 - cx) + angle.sin() * (j as f64 - cy) + cx;
        let got = f64::from(out[j * w + i]);
        assert!(
            (got - (40.0 + sx.floor())).abs() <= 1.0,
            "({i},{j}): {got} for {sx}"
        );
    }
}

#[test]
fn a_positive_angle_turns_clockwise() {
    // Rows get brighter downwards; turned clockwise, the right end of the
    // middle row shows rows from above (darker), the left end from below.
    let (w, h) = (400usize, 100usize);
    let src: Vec<u8> = (0..w * h).map(|p| 20 + 2 * (p / w) as u8).collect();
    for (angle, right_darker) in [(0.01, true), (-0.01, false)] {
        let out = plane_by(true, angle, w, h, &src);
        let (left, right) = (out[50 * w + 10], out[50 * w + w - 10]);
        assert_eq!(right < left, right_darker, "angle {angle}: {left} {right}");
    }
}

#[test]
fn outside_the_source_is_black_through_eq() {
    let size = Size::new(64, 64).unwrap();
    let src = vec![200; size.frame_bytes()];
    let [_, u, v] = size.planes();
    let plain = run(Level::detect(), &effects(0.5, 0.0, 1.0, 1.0), size, &src);
    assert_eq!((plain[0], plain[u.0], plain[v.0]), (16, 128, 128));
    assert_eq!(plain[32 * 64 + 32], 200, "the centre keeps its value");
    // contrast 1.05, brightness 0.05: (16 * 4300 >> 12) + 6 = 22.
    let toned = run(Level::detect(), &effects(0.5, 0.05, 1.05, 1.0), size, &src);
    assert_eq!((toned[0], toned[u.0]), (22, 128));
}

#[test]
fn ffmpegs_shortcuts_flip_and_transpose() {
    let (w, h) = (4usize, 4usize);
    let src: Vec<u8> = (0..16).collect();
    let size = Size::new(w, h).unwrap();
    let mut frame = src.clone();
    frame.extend([0, 1, 2, 3, 0, 1, 2, 3]);
    let half = run(Level::detect(), &effects(PI, 0.0, 1.0, 1.0), size, &frame);
    assert_eq!(half[..16], (0..16).rev().collect::<Vec<u8>>()[..]);
    let quarter = run(
        Level::detect(),
        &effects(FRAC_PI_2, 0.0, 1.0, 1.0),
        size,
        &frame,
    );
    // Output (i, j) reads source column j of row w-1-i.
    assert_eq!(quarter[..4], [12, 8, 4, 0]);
}

#[test]
fn sizes_and_lengths_are_checked() {
    assert!(Size::new(2, 2).is_ok());
    for (w, h) in [(0, 2), (1, 2), (3, 4), (4, 5), (32768, 2)] {
        assert!(
            matches!(Size::new(w, h), Err(PixelError::Size { .. })),
            "{w}x{h}"
        );
    }
    let size = Size::new(4, 2).unwrap();
    let warp = Warp::new(&effects(0.0, 0.0, 1.0, 1.0));
    let err = warp
        .apply(Level::Portable, size, &[0; 11], &mut [0; 12])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "a 4x2 yuv420p frame is 12 bytes, the input has 11"
    );
}

#[test]
fn detection_picks_the_best_level_this_cpu_runs() {
    let levels = Level::available();
    assert_eq!(levels[0], Level::Portable);
    assert_eq!(levels.last(), Some(&Level::detect()));
    #[cfg(target_arch = "x86_64")]
    assert!(levels.contains(&Level::Sse2), "SSE2 is x86-64's baseline");
    // A level the CPU lacks still runs (the portable build).
    let missing = [Level::Avx2, Level::Avx512, Level::Neon]
        .into_iter()
        .find(|l| !l.runs_here());
    if let Some(level) = missing {
        let size = Size::new(4, 4).unwrap();
        let src = noise(size.frame_bytes(), 3);
        let e = effects(0.01, 0.0, 1.0, 1.0);
        assert_eq!(
            run(level, &e, size, &src),
            run(Level::Portable, &e, size, &src)
        );
    }
}

#[test]
fn bands_cover_the_frame_in_order_and_warp_as_the_whole_frame() {
    // The span path, FFmpeg's shortcuts (copy, half and quarter turns)
    // and its per-pixel loop, at every level.
    let cases = [
        (322, 180, 0.0073),
        (322, 180, 0.0),
        (322, 180, PI),
        (180, 180, FRAC_PI_2),
        (322, 180, 0.5),
    ];
    for (w, h, angle) in cases {
        let size = Size::new(w, h).unwrap();
        let src = noise(size.frame_bytes(), 5);
        let e = effects(angle, -0.05, 1.05, 0.95);
        for level in Level::available() {
            let whole = run(level, &e, size, &src);
            let what = format!("{w}x{h} angle {angle} {level:?}");
            // 1 byte: one row a band; 1000: a few rows; a whole plane or
            // more: one band a plane.
            for bytes in [1, 1000, w * h, usize::MAX] {
                let mut next = 0;
                let mut count = 0;
                for band in size.bands(bytes) {
                    assert_eq!(band.range().start, next, "{what} {bytes}: in order");
                    assert!(band.bytes() <= bytes.max(w), "{what} {bytes}: {band:?}");
                    let mut out = vec![0; band.bytes()];
                    Warp::new(&e)
                        .apply_band(level, &src, &band, &mut out)
                        .unwrap();
                    assert!(out == whole[band.range()], "{what} {bytes}: {band:?}");
                    next = band.range().end;
                    count += 1;
                }
                assert_eq!(next, size.frame_bytes(), "{what} {bytes}: the whole frame");
                let (cw, ch) = (w / 2, h / 2);
                let expected = match bytes {
                    1 => h + 2 * ch,
                    1000 => h.div_ceil(1000 / w) + 2 * ch.div_ceil(1000 / cw),
                    _ => 3,
                };
                assert_eq!(count, expected, "{what} {bytes}");
            }
        }
    }
}

/// `bytes` placed so that they end where a page that may not be touched
/// begins: reading one byte past them faults (SIGSEGV ends the test).
struct Guarded {
    map: *mut libc::c_void,
    page: usize,
    len: usize,
}

impl Guarded {
    fn new(bytes: &[u8]) -> Guarded {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        assert!(bytes.len() <= page);
        // SAFETY: a fresh private anonymous mapping of two pages; the
        // second is made inaccessible, the first written only within it.
        unsafe {
            let map = libc::mmap(
                std::ptr::null_mut(),
                2 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(map, libc::MAP_FAILED, "mmap");
            let guard = map.cast::<u8>().add(page);
            assert_eq!(libc::mprotect(guard.cast(), page, libc::PROT_NONE), 0);
            let start = guard.sub(bytes.len());
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), start, bytes.len());
            Guarded {
                map,
                page,
                len: bytes.len(),
            }
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the `len` bytes before the guard page, written in `new`,
        // live as long as `self`.
        unsafe {
            let guard = self.map.cast::<u8>().add(self.page);
            std::slice::from_raw_parts(guard.sub(self.len), self.len)
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer borrowed.
        unsafe { libc::munmap(self.map, 2 * self.page) };
    }
}

#[test]
fn every_kernel_stays_inside_its_span_and_matches_the_portable_one() {
    // Every span length around the vector widths, fractions at both ends
    // of their range and steep slopes, eq's formula at its ends; the
    // source rows end at an inaccessible page (an unmasked read past them
    // faults) and the output sits between canaries.
    const CANARY: u8 = 0xA5;
    let tones: Vec<eq::Linear> = [
        Tone::luma(1.05, -0.05),
        Tone::luma(7.89, 1.0),
        Tone::chroma(0.0),
    ]
    .into_iter()
    .map(|t| match t {
        Tone::Linear(l) => l,
        Tone::Table(_) => unreachable!("formula tones"),
    })
    .collect();
    for n in 0..=48usize {
        let steps = (n.max(2) - 1) as i32;
        let fractions = [
            [0, 0],
            [65535, 0],
            [65535, -(65535 / steps)],
            [0, 65535 / steps],
        ];
        let top = Guarded::new(&noise(n + 1, n as u64));
        let bottom = Guarded::new(&noise(n + 1, 1000 + n as u64));
        for x in fractions {
            for y in fractions {
                let source = warp::Source {
                    top: top.bytes(),
                    bottom: bottom.bytes(),
                    x,
                    y,
                };
                for &tone in &tones {
                    let mut want = vec![0; n];
                    warp::blend(&mut want, &source, tone);
                    for level in Level::available() {
                        let mut out = vec![CANARY; n + 64];
                        simd::blend(level, &mut out[32..32 + n], &source, tone);
                        let what = format!("{level:?} n {n} x {x:?} y {y:?} {tone:?}");
                        assert!(out[32..32 + n] == want[..], "{what}");
                        assert!(
                            out[..32].iter().chain(&out[32 + n..]).all(|&b| b == CANARY),
                            "{what}: wrote outside its span"
                        );
                    }
                }
            }
        }
    }
}
