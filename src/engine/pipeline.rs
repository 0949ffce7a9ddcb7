//! The pixel path of one batch (README's "The pixel path"): the variations
//! of one input file made by one decoding FFmpeg, one `vidvar-stage` and
//! one encoding FFmpeg per variation, joined by pipes.
//!
//! Owns the pipes (created here, raised to the system's pipe size limit
//! with [`crate::pipes::raise`], closed in the daemon once every process
//! holds its ends), the start of the processes, all direct children of
//! the daemon in one process group led by the decoder, and how each
//! variation's end follows from theirs. Every process is started and
//! watched by the [`supervisor`] (nice, owner's credentials, stderr
//! drained, `-progress` parsed). Must not touch a frame, a file's name or
//! the queue: the worker opens the files, records and publishes.
//!
//! Failure isolation: an encoder that fails or is stopped ends only its
//! variation (the stage closes that output and goes on); the decoder or
//! the stage failing fails every variation of the batch, as a file's
//! failure does. A variation's stop (cancel, pause --stop, shutdown)
//! stops its encoder alone; once every variation of the batch is stopped,
//! so are the decoder and the stage.

use super::failure::Failure;
use super::supervisor::{self, End, FfmpegRun, Group, Progress, Started};
use crate::effects::Effects;
use crate::ffmpeg::argv::{self, DecodePlan, EncodePlan};
use crate::process::{ProcessIdentity, RunAs};
use crate::rusage::CpuMeter;
use futures_util::future::join_all;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One batch's pipeline: what runs and on what.
pub struct Pipeline<'a> {
    pub ffmpeg: &'a Path,
    /// The `vidvar-stage` program (see [`stage_program`]).
    pub stage: &'a Path,
    /// The input file, open for reading.
    pub input: RawFd,
    /// Width and height of the decoded frames in pixels, even and at
    /// least 2 ([`argv::even_size`]).
    pub size: (u32, u32),
    pub decode: DecodePlan<'a>,
    pub grace: Duration,
    pub stall_timeout: Duration,
    pub run_as: Option<&'a RunAs>,
    /// The variations, at least one.
    pub members: Vec<Member<'a>>,
}

/// One variation of a batch.
pub struct Member<'a> {
    pub plan: EncodePlan<'a>,
    /// The temporary output file, open for reading and writing.
    pub output: RawFd,
    /// Where the decoder writes this variation's reference pictures.
    pub refs: RawFd,
    /// Duration of what is encoded in µs, for the percent.
    pub duration_us: Option<u64>,
    /// Fires when this variation must stop.
    pub cancel: &'a CancellationToken,
    /// Where the CPU time of its encoder, and its share of the decoder's
    /// and the stage's, goes.
    pub cpu: &'a Arc<CpuMeter>,
}

/// Where `vidvar-stage` is: beside the running daemon's executable (a
/// build tree, or a package that installs both in one directory), else
/// /usr/lib/vidvar/vidvar-stage, where the package and README's "From
/// source" install it. Never looked up in `PATH`.
pub fn stage_program() -> std::path::PathBuf {
    let installed = Path::new("/usr/lib/vidvar/vidvar-stage");
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("vidvar-stage")))
        .filter(|beside| beside.is_file())
        .unwrap_or_else(|| installed.to_path_buf())
}

/// A pipe: (read end, write end), close-on-exec, raised to the system's
/// limit (a pipe left at its size only costs speed, so a refusal is
/// logged, not fatal).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    if let Err(err) = crate::pipes::raise(write.as_fd()) {
        log::debug!("pipe size left as it was: {err}");
    }
    Ok((read, write))
}

/// Run the pipeline to its end. `on_spawn` receives each member's encoder
/// identity by the member's index once all processes run (recorded for
/// recovery, which kills the encoder's whole group, the pipeline);
/// `on_progress` each member's encoder progress. Returns each member's
/// end: its encoder's, unless the decoder or the stage failed (then
/// that failure).
pub async fn run<F: std::future::Future<Output = ()>>(
    p: Pipeline<'_>,
    on_spawn: impl Fn(usize, ProcessIdentity) -> F,
    on_progress: impl Fn(usize, Progress),
) -> Vec<Result<End, Failure>> {
    let k = p.members.len();
    let failed_all = |why: String| {
        (0..k)
            .map(|_| Err(Failure::Pipeline(why.clone())))
            .collect()
    };
    let pipes = match (0..=k).map(|_| pipe()).collect::<std::io::Result<Vec<_>>>() {
        Ok(pipes) => pipes,
        Err(err) => return failed_all(format!("cannot create a pipe: {err}")),
    };
    let mut pipes = pipes.into_iter();
    let (decoded_read, decoded_write) = pipes.next().expect("k + 1 pipes");
    let (stage_reads, stage_writes): (Vec<OwnedFd>, Vec<OwnedFd>) = pipes.unzip();

    let references: Vec<(RawFd, &Effects)> =
        p.members.iter().map(|m| (m.refs, m.plan.effects)).collect();
    let decoder_fds: Vec<RawFd> = [p.input, decoded_write.as_raw_fd()]
        .into_iter()
        .chain(references.iter().map(|(fd, _)| *fd))
        .collect();
    let outputs: Vec<(RawFd, &Effects)> = stage_writes
        .iter()
        .zip(&p.members)
        .map(|(w, m)| (w.as_raw_fd(), m.plan.effects))
        .collect();
    let stage_fds: Vec<RawFd> = outputs.iter().map(|(fd, _)| *fd).collect();
    let encoder_fds: Vec<[RawFd; 3]> = stage_reads
        .iter()
        .zip(&p.members)
        .map(|(r, m)| [r.as_raw_fd(), p.input, m.output])
        .collect();
    let shared: Vec<Arc<CpuMeter>> = p.members.iter().map(|m| Arc::clone(m.cpu)).collect();
    let base = |program, args, inherit, group| FfmpegRun {
        program,
        args,
        duration_us: None,
        grace: p.grace,
        stall_timeout: Some(p.stall_timeout),
        run_as: p.run_as,
        inherit,
        stdin: None,
        group,
        cpu: &shared,
    };

    let decoder = supervisor::start(base(
        p.ffmpeg,
        argv::decode(
            p.input,
            decoded_write.as_raw_fd(),
            &references,
            p.size,
            &p.decode,
        ),
        &decoder_fds,
        Group::Lead,
    ));
    let decoder = match decoder {
        Ok(d) => d,
        Err(err) => return failed_all(err.to_string()),
    };
    let Some(leader) = decoder.pid() else {
        return failed_all("the decoder ended at once".into());
    };
    let stage = supervisor::start(FfmpegRun {
        stall_timeout: None,
        stdin: Some(decoded_read),
        ..base(
            p.stage,
            argv::stage(p.size, &outputs),
            &stage_fds,
            Group::Join(leader),
        )
    });
    let stage = match stage {
        Ok(s) => s,
        // Dropping the decoder kills it (kill_on_drop).
        Err(err) => return failed_all(err.to_string()),
    };
    let mut encoders: Vec<Started> = Vec::with_capacity(k);
    for (member, fds) in p.members.iter().zip(&encoder_fds) {
        let started = supervisor::start(FfmpegRun {
            duration_us: member.duration_us,
            cpu: std::slice::from_ref(member.cpu),
            ..base(
                p.ffmpeg,
                argv::encode_raw(fds[0], p.size, p.input, member.output, &member.plan),
                fds,
                Group::Join(leader),
            )
        });
        match started {
            Ok(e) => encoders.push(e),
            Err(err) => return failed_all(err.to_string()),
        }
    }
    // Every process holds its ends now: the daemon's copies must go, or
    // no reader would ever see the end of its input.
    drop((decoded_write, stage_reads, stage_writes));
    for (i, encoder) in encoders.iter().enumerate() {
        if let Some(identity) = encoder.identity() {
            on_spawn(i, identity).await;
        }
    }

    let upstream = CancellationToken::new();
    let on_progress = &on_progress;
    let work = async {
        tokio::join!(
            decoder.watch(&upstream, |_| {}),
            stage.watch(&upstream, |_| {}),
            join_all(
                encoders
                    .into_iter()
                    .zip(&p.members)
                    .enumerate()
                    .map(|(i, (e, m))| e.watch(m.cancel, move |pr| on_progress(i, pr)))
            )
        )
    };
    let all_stopped = async {
        join_all(p.members.iter().map(|m| m.cancel.cancelled())).await;
    };
    tokio::pin!(work);
    let (decoded, staged, encoded) = tokio::select! {
        ends = &mut work => ends,
        () = all_stopped => {
            upstream.cancel();
            work.await
        }
    };
    // Anything left of the pipeline goes (all have been reaped or
    // stopped; a process any of them started would be in the group too).
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(leader),
        nix::sys::signal::Signal::SIGKILL,
    );
    encoded
        .into_iter()
        .map(|end| {
            let end = end.map_err(Failure::Supervisor)?;
            if !matches!(&end, End::Exited { status, .. } if status.success()) {
                return Ok(end);
            }
            upstream_failure(&decoded, p.stall_timeout, false)
                .or_else(|| upstream_failure(&staged, p.stall_timeout, true))
                .map_or(Ok(end), Err)
        })
        .collect()
}

/// The failure of the decoder (`stage` false) or the stage that ended as
/// `end`, if it failed: it fails the variations whose encoders succeeded.
fn upstream_failure(
    end: &Result<End, supervisor::SupervisorError>,
    timeout: Duration,
    stage: bool,
) -> Option<Failure> {
    match end {
        Err(err) => Some(Failure::Pipeline(err.to_string())),
        Ok(End::Stalled) => Some(Failure::Stalled(timeout)),
        Ok(End::Exited {
            status,
            stderr_tail,
            ..
        }) if !status.success() => Some(match stage {
            true => Failure::Stage {
                status: *status,
                stderr_tail: stderr_tail.clone(),
            },
            false => Failure::Ffmpeg {
                status: *status,
                stderr_tail: stderr_tail.clone(),
            },
        }),
        Ok(_) => None,
    }
}
