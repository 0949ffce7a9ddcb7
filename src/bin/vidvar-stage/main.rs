//! `vidvar-stage`: the warp stage of a pipeline. Reads raw `yuv420p`
//! frames of one size from stdin (the decoding FFmpeg's output) and
//! writes each frame, warped with one variation's effects, to each output
//! descriptor it inherited (the encoding FFmpegs' inputs). The pixel work
//! is [`vidvar::pixel`]; this binary owns only the arguments, the pipes
//! (`sink`: lent pages) and the frame loop.
//!
//! Why a binary of its own rather than a hidden mode of vidvard: the
//! stage needs none of the daemon (no runtime, configuration, queue,
//! socket or logging set-up), so its image and resident set stay small
//! (its peak at 1080p with five outputs is in README's Performance,
//! from `benches/warp_bench.rs`: the binary, one frame and one band
//! buffer), its whole interface is its argv, and a stage process can never be mistaken for, or turn into, a
//! daemon start. It is
//! a helper, not a command: installed as /usr/lib/vidvar/vidvar-stage
//! (the .deb, README's "From source") and started by that path, never
//! looked up in PATH.
//!
//! Failure isolation: an output whose write fails (EPIPE when its reader
//! is gone; SIGPIPE is ignored so that the write returns the error) is
//! closed and named on stderr, and the other outputs go on. Exit status:
//! 0 when the input ended at a frame boundary; 2 with clap's message when
//! the command line does not parse (a bad size or output value); 1 with a
//! message for an output descriptor not open for writing or given twice,
//! a short last frame, an input read error, or when no output is left to
//! write to (the stage then stops reading).

use anyhow::{Context, bail};
use clap::Parser;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::{SigHandler, Signal, signal};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, RawFd};
use vidvar::effects::Effects;
use vidvar::pixel::{Level, Size, Warp};

mod sink;
use sink::Sink;

/// Warp raw yuv420p frames from stdin into one stream per variation.
///
/// Reads frames of --size from stdin until it ends and writes each one,
/// rotated and equalized as FFmpeg's rotate and eq would, to every
/// --output. An output whose reader is gone is closed and the others go
/// on. Meant to be started by vidvard as part of a pipeline, not by hand.
#[derive(Debug, Parser)]
#[command(name = "vidvar-stage", version)]
struct Args {
    /// Frame size in pixels, WIDTHxHEIGHT, both even and at least 2.
    #[arg(long, value_parser = parse_size)]
    size: Size,
    /// One output: FD:ANGLE:BRIGHTNESS:CONTRAST:SATURATION. FD is an open,
    /// writable descriptor this process inherited (not 0 or 2); ANGLE is in
    /// radians, clockwise (FFmpeg rotate, within one turn); the others as
    /// FFmpeg eq takes them (brightness -1..1, contrast -1000..1000,
    /// saturation 0..3). Repeat for each variation.
    #[arg(
        long = "output",
        value_name = "FD:ANGLE:BRIGHTNESS:CONTRAST:SATURATION",
        value_parser = parse_output,
        required = true
    )]
    outputs: Vec<OutputSpec>,
}

#[derive(Debug, Clone)]
struct OutputSpec {
    fd: RawFd,
    effects: Effects,
}

/// A bad `--size` or `--output`, as clap reports it (exit status 2).
#[derive(Debug, thiserror::Error)]
enum ArgError {
    #[error("{0:?} is not WIDTHxHEIGHT")]
    NotASize(String),
    #[error("{text:?}: {part:?}: {source}")]
    Side {
        text: String,
        part: String,
        #[source]
        source: std::num::ParseIntError,
    },
    #[error(transparent)]
    Size(#[from] vidvar::pixel::PixelError),
    #[error("{0:?} is not FD:ANGLE:BRIGHTNESS:CONTRAST:SATURATION")]
    NotAnOutput(String),
    #[error("{text:?}: descriptor {fd:?}: {source}")]
    Descriptor {
        text: String,
        fd: String,
        #[source]
        source: std::num::ParseIntError,
    },
    #[error("{text:?}: descriptor {fd} is not an output (0 is the input, 2 the messages)")]
    NotOutputDescriptor { text: String, fd: RawFd },
    #[error("{text:?}: {name} {part:?}: {source}")]
    Number {
        text: String,
        name: &'static str,
        part: String,
        #[source]
        source: std::num::ParseFloatError,
    },
    #[error("{text:?}: {name} {value} is not within {limits:?}")]
    OutOfRange {
        text: String,
        name: &'static str,
        value: f64,
        limits: std::ops::RangeInclusive<f64>,
    },
}

fn parse_size(text: &str) -> Result<Size, ArgError> {
    let (w, h) = text
        .split_once('x')
        .ok_or_else(|| ArgError::NotASize(text.into()))?;
    let side = |part: &str| {
        part.parse::<usize>().map_err(|source| ArgError::Side {
            text: text.into(),
            part: part.into(),
            source,
        })
    };
    Ok(Size::new(side(w)?, side(h)?)?)
}

fn parse_output(text: &str) -> Result<OutputSpec, ArgError> {
    let parts: Vec<&str> = text.split(':').collect();
    let [fd, numbers @ ..] = parts.as_slice() else {
        unreachable!("split yields at least one part")
    };
    if numbers.len() != 4 {
        return Err(ArgError::NotAnOutput(text.into()));
    }
    let fd: RawFd = fd.parse().map_err(|source| ArgError::Descriptor {
        text: text.into(),
        fd: (*fd).into(),
        source,
    })?;
    if fd < 1 || fd == 2 {
        return Err(ArgError::NotOutputDescriptor {
            text: text.into(),
            fd,
        });
    }
    let turn = std::f64::consts::TAU;
    let mut values = [0.0; 4];
    for (((name, limits), part), value) in [
        ("angle", -turn..=turn),
        ("brightness", -1.0..=1.0),
        ("contrast", -1000.0..=1000.0),
        ("saturation", 0.0..=3.0),
    ]
    .into_iter()
    .zip(numbers)
    .zip(&mut values)
    {
        let v: f64 = part.parse().map_err(|source| ArgError::Number {
            text: text.into(),
            name,
            part: (*part).into(),
            source,
        })?;
        if !limits.contains(&v) {
            return Err(ArgError::OutOfRange {
                text: text.into(),
                name,
                value: v,
                limits,
            });
        }
        *value = v;
    }
    let [rotation, brightness, contrast, saturation] = values;
    Ok(OutputSpec {
        fd,
        effects: Effects {
            rotation,
            brightness,
            contrast,
            saturation,
        },
    })
}

/// One live output: where it goes and what it applies.
struct Output {
    index: usize,
    fd: RawFd,
    sink: Sink,
    warp: Warp,
}

/// Takes ownership of the inherited descriptors, after checking each is
/// open for writing and named once, and raises the pipes among them (see
/// [`vidvar::pipes::raise`]); `max_band`: the longest band, in bytes.
fn open_outputs(specs: &[OutputSpec], max_band: usize) -> anyhow::Result<Vec<Output>> {
    let mut outputs = Vec::with_capacity(specs.len());
    for (index, spec) in specs.iter().enumerate() {
        if specs[..index].iter().any(|s| s.fd == spec.fd) {
            bail!("descriptor {} is given to more than one output", spec.fd);
        }
        // SAFETY: only checks the number; fcntl fails with EBADF when no
        // descriptor of that number is open.
        let borrowed = unsafe { BorrowedFd::borrow_raw(spec.fd) };
        let flags = fcntl(borrowed, FcntlArg::F_GETFL)
            .with_context(|| format!("output {}: descriptor {} is not open", index + 1, spec.fd))?;
        let mode = OFlag::from_bits_truncate(flags) & OFlag::O_ACCMODE;
        if mode == OFlag::O_RDONLY {
            bail!(
                "output {}: descriptor {} is not open for writing",
                index + 1,
                spec.fd
            );
        }
        // SAFETY: the descriptor is open (checked above), inherited for
        // this process's use, and owned by nothing else here (each number
        // is taken once).
        let file = unsafe { File::from_raw_fd(spec.fd) };
        raise_pipe(&format!("output {}", index + 1), file.as_fd());
        outputs.push(Output {
            index: index + 1,
            fd: spec.fd,
            sink: Sink::new(file, max_band),
            warp: Warp::new(&spec.effects),
        });
    }
    Ok(outputs)
}

/// Fills `frame` from `input`: `Ok(false)` at a clean end (no byte of a
/// new frame), an error for a frame cut short.
fn read_frame(input: &mut impl Read, frame: &mut [u8], number: u64) -> anyhow::Result<bool> {
    let mut filled = 0;
    while filled < frame.len() {
        match input.read(&mut frame[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => bail!(
                "short frame: frame {number} ended after {filled} of {} bytes",
                frame.len()
            ),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(|| format!("reading frame {number} from stdin")),
        }
    }
    Ok(true)
}

/// Bytes warped and handed on at a time: a frame goes band by band (see
/// [`Size::bands`]), each band to every output in turn, so that the
/// source rows a band reads stay in the CPU's cache over all the outputs.
/// 256 KiB: a band and its source rows fit a core's L2 cache.
const BAND_BYTES: usize = 256 * 1024;

fn raise_pipe(name: &str, fd: BorrowedFd) {
    if let Err(e) = vidvar::pipes::raise(fd) {
        eprintln!("vidvar-stage: {name}: pipe size left as it was: {e}");
    }
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vidvar-stage: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The stage's whole life: arguments, pipes, then frame after frame.
fn run() -> anyhow::Result<()> {
    // Writes to an output whose reader is gone return EPIPE instead of
    // killing the stage, so that only that output stops.
    // SAFETY: no other thread exists yet; SIG_IGN installs no handler code.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) }.context("ignoring SIGPIPE")?;
    let args = Args::parse();
    let max_band = args.size.bands(BAND_BYTES).map(|b| b.bytes()).max();
    let max_band = max_band.expect("a frame has three planes");
    let mut outputs = open_outputs(&args.outputs, max_band)?;
    let stdin = std::io::stdin();
    raise_pipe("stdin", stdin.as_fd());
    let mut input = stdin.lock();
    let (mut frame, mut spare) = (vec![0u8; args.size.frame_bytes()], vec![0u8; max_band]);
    let mut number = 0u64;
    while read_frame(&mut input, &mut frame, number + 1)? {
        number += 1;
        let level = Level::detect();
        for band in args.size.bands(BAND_BYTES) {
            outputs.retain_mut(|o| {
                let warp = &o.warp;
                let sent = o.sink.send(band.bytes(), &mut spare, |warped| {
                    warp.apply_band(level, &frame, &band, warped)
                        .expect("the frame is frame_bytes long, the band's buffer its bytes")
                });
                match sent {
                    Ok(()) => true,
                    Err(e) => {
                        eprintln!(
                            "vidvar-stage: output {} (fd {}) stopped at frame {number}: {e}; \
                             the other outputs go on",
                            o.index, o.fd
                        );
                        false
                    }
                }
            });
        }
        if outputs.is_empty() {
            bail!("every output has failed; stopped at frame {number}");
        }
    }
    Ok(())
}
