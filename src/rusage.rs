//! CPU time of child processes from their rusage (getrusage(2)'s
//! `struct rusage`), read at each one's exit: [`ExitWatch`] waits for a
//! child to exit without reaping it (a pidfd, pidfd_open(2), readable
//! once it has exited; then waitid(2) with `WNOWAIT`, which fills the
//! zombie's rusage), so that its owner reaps it afterwards as usual.
//! [`CpuMeter`] adds up what a variation's processes used;
//! [`output_metered`] is `wait_with_output` for a short-lived child (the
//! probe, the check) that adds its CPU time to a meter. Must not reap,
//! signal or wait for anything but the one child.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// CPU time (user + system) of processes, added up; shared by the
/// processes of one variation run.
#[derive(Debug, Default)]
pub struct CpuMeter(AtomicU64);

impl CpuMeter {
    /// Add `time`.
    pub fn add(&self, time: Duration) {
        self.0.fetch_add(time.as_micros() as u64, Ordering::Relaxed);
    }

    /// Everything added so far, in seconds.
    pub fn seconds(&self) -> f64 {
        self.0.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// Add `time` to `meters`, split evenly over them (a process shared by a
/// pipeline's variations counts for each by its share); nothing when
/// `meters` is empty.
pub fn share(meters: &[std::sync::Arc<CpuMeter>], time: Duration) {
    if meters.is_empty() {
        return;
    }
    let each = time / meters.len() as u32;
    for meter in meters {
        meter.add(each);
    }
}

/// Watches one child process for its exit; see the module docs.
pub struct ExitWatch {
    pidfd: AsyncFd<OwnedFd>,
}

impl ExitWatch {
    /// Watch the child `pid`, which must not have been reaped.
    ///
    /// Errors: pidfd_open(2)'s (the process is gone, or a kernel before
    /// 5.3), or registering the descriptor with the runtime.
    pub fn of(pid: i32) -> io::Result<ExitWatch> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new
        // descriptor or -1; no memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by pidfd_open and is owned by no one
        // else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        set_cloexec(&fd)?;
        // SAFETY: `fd` is a valid open descriptor that the AsyncFd owns
        // (OwnedFd) until it is dropped.
        let pidfd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|err| err.into_parts().1)?;
        Ok(ExitWatch { pidfd })
    }

    /// Wait until the child has exited, leaving it unreaped, and return its
    /// CPU time: user plus system, its own and that of the children it
    /// reaped (`RUSAGE_BOTH`, as waitid(2) reports a zombie's). Cancel-safe.
    ///
    /// Errors: waitid(2)'s.
    pub async fn exited(&self) -> io::Result<Duration> {
        loop {
            let mut ready = self.pidfd.readable().await?;
            if let Some(cpu) = self.try_exited()? {
                return Ok(cpu);
            }
            ready.clear_ready();
        }
    }

    /// The CPU time if the child has exited; `None` if it still runs.
    fn try_exited(&self) -> io::Result<Option<Duration>> {
        // SAFETY: zeroed siginfo_t and rusage are valid values of these
        // plain C structs.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: the raw waitid syscall takes (idtype, id, siginfo *,
        // options, rusage *); both pointers are to live, writable structs.
        let done = unsafe {
            libc::syscall(
                libc::SYS_waitid,
                libc::P_PIDFD,
                self.pidfd.get_ref().as_raw_fd(),
                &mut info as *mut libc::siginfo_t,
                libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
                &mut usage as *mut libc::rusage,
            )
        };
        if done < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: waitid filled `info`; si_pid is 0 when nothing exited.
        if unsafe { info.si_pid() } == 0 {
            return Ok(None);
        }
        let time = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec.max(0) as u64)
                + Duration::from_micros(t.tv_usec.max(0) as u64)
        };
        Ok(Some(time(usage.ru_utime) + time(usage.ru_stime)))
    }
}

/// Read all of `child`'s piped stdout and stderr and wait for it to exit,
/// as tokio's `Child::wait_with_output` does, adding its CPU time (see
/// [`ExitWatch::exited`]) to `cpu` before it is reaped. A child that cannot
/// be watched (pidfd_open(2) fails) is waited for all the same, its CPU
/// time not counted. Dropped before the end, the child is killed if it was
/// started with `kill_on_drop`, and its CPU time is not counted.
///
/// Errors: reading its output or waitpid(2)'s.
pub async fn output_metered(
    mut child: tokio::process::Child,
    cpu: &CpuMeter,
) -> io::Result<std::process::Output> {
    use tokio::io::AsyncReadExt;
    let watch = child.id().and_then(|pid| {
        ExitWatch::of(pid as i32)
            .inspect_err(|err| log::debug!("cannot watch pid {pid} for its CPU time: {err}"))
            .ok()
    });
    async fn read_all(pipe: Option<impl AsyncReadExt + Unpin>) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        if let Some(mut pipe) = pipe {
            pipe.read_to_end(&mut all).await?;
        }
        Ok(all)
    }
    let (stdout, stderr) =
        tokio::try_join!(read_all(child.stdout.take()), read_all(child.stderr.take()))?;
    if let Some(watch) = watch {
        match watch.exited().await {
            Ok(time) => cpu.add(time),
            Err(err) => log::debug!("cannot read a child's CPU time: {err}"),
        }
    }
    let status = child.wait().await?;
    Ok(std::process::Output {
        status,
        stdout,
        stderr,
    })
}

/// pidfd_open(2) sets close-on-exec itself; set it again so that no child
/// spawned later could inherit the descriptor on any kernel.
fn set_cloexec(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_busy_childs_cpu_time_is_read_before_it_is_reaped() {
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let watch = ExitWatch::of(child.id().unwrap() as i32).unwrap();
        let cpu = watch.exited().await.unwrap();
        assert!(cpu > Duration::from_millis(20), "{cpu:?}");
        // Not reaped by the watch: the owner still gets the status.
        assert!(child.wait().await.unwrap().success());
    }

    #[tokio::test]
    async fn a_short_childs_output_and_cpu_time_are_both_kept() {
        let child = crate::process::command(std::path::Path::new("sh"), None, &[])
            .args([
                "-c",
                "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo out; echo err >&2; exit 3",
            ])
            .spawn()
            .unwrap();
        let meter = CpuMeter::default();
        let output = output_metered(child, &meter).await.unwrap();
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(output.stdout, b"out\n");
        assert_eq!(output.stderr, b"err\n");
        assert!(meter.seconds() > 0.02, "{}", meter.seconds());
    }

    #[test]
    fn a_shared_process_counts_evenly_for_each_meter() {
        let meters: Vec<Arc<CpuMeter>> = (0..4).map(|_| Arc::default()).collect();
        share(&meters, Duration::from_secs(2));
        share(&meters[..1], Duration::from_secs(1));
        assert_eq!(meters[0].seconds(), 1.5);
        assert_eq!(meters[3].seconds(), 0.5);
    }
}
