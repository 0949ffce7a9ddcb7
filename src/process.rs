//! How child processes (FFmpeg, ffprobe, the completion hook) are started,
//! and their identity across daemon restarts.
//!
//! [`command`] gives every child the same safe start: no shell, stdin on
//! /dev/null, no `NOTIFY_SOCKET` and none of libpq's `PG*` variables (a
//! `PGPASSWORD` or `PGPASSFILE` of the daemon's is not the job owner's
//! business, and the owner can read its FFmpeg's environment), a process
//! group of its own,
//! `PR_SET_PDEATHSIG(SIGKILL)` (prctl(2)), nice [`CHILD_NICE`], and, when
//! the daemon is root and
//! the job belongs to another user, that user's uid, gid and groups. The
//! only descriptors it inherits beyond stdio are the ones named, the files
//! it is to read and write (as `/dev/fd/N`). [`detached_command`] is the
//! same start without the death signal, for a child that outlives a
//! killed daemon.
//!
//! A pid alone may be reused by an unrelated process after a crash; the
//! triple (pid, start time, boot id) names one process for good (proc(5):
//! `/proc/PID/stat` field 22 `starttime`, `/proc/sys/kernel/random/boot_id`).

use crate::job::Credentials;
use nix::unistd::{Gid, Uid};
use std::io;
use std::os::fd::RawFd;
use std::path::Path;
use std::process::Stdio;

/// Nice value of every child (setpriority(2)): FFmpeg's CPU-bound work
/// yields to the daemon's request handling and to interactive programs,
/// and takes whatever CPU is left over, which on an idle machine is all.
pub const CHILD_NICE: i32 = 10;

/// The user a child runs as, when it is not the daemon's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
}

impl RunAs {
    /// The credentials to drop to for a job of `owner`: `None` unless the
    /// daemon is root and the owner is not.
    pub fn for_owner(owner: &Credentials) -> Option<RunAs> {
        (nix::unistd::geteuid().is_root() && owner.uid != 0).then(|| RunAs {
            uid: Uid::from_raw(owner.uid),
            gid: Gid::from_raw(owner.gid),
            groups: owner.groups.iter().map(|&g| Gid::from_raw(g)).collect(),
        })
    }
}

/// A command for `program` set up as described in the module docs; stdout
/// and stderr are piped. The descriptors in `inherit` stay open in the
/// child under the same numbers (their close-on-exec flag is cleared there
/// alone); the caller keeps them open until the child has started.
pub fn command(
    program: &Path,
    run_as: Option<&RunAs>,
    inherit: &[RawFd],
) -> tokio::process::Command {
    prepared(program, run_as, inherit, true)
}

/// A command for `program` set up like [`command`]'s, except that it
/// outlives the daemon (no death signal; not killed when its handle is
/// dropped), so that a daemon killed meanwhile can wait for it after its
/// restart: for the completion hook.
pub fn detached_command(program: &Path, run_as: Option<&RunAs>) -> tokio::process::Command {
    let mut command = prepared(program, run_as, &[], false);
    command.kill_on_drop(false);
    command
}

fn prepared(
    program: &Path,
    run_as: Option<&RunAs>,
    inherit: &[RawFd],
    dies_with_daemon: bool,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.as_encoded_bytes().starts_with(b"PG") {
            command.env_remove(name);
        }
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("NOTIFY_SOCKET")
        .process_group(0)
        .kill_on_drop(true);
    let run_as = run_as.cloned();
    let inherit = inherit.to_vec();
    let daemon = nix::unistd::getpid();
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes system calls (fcntl, setgroups, setgid, setuid, prctl, getppid)
    // on data prepared before the fork; it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            for &fd in &inherit {
                // The child's own descriptor table: the daemon's copy keeps
                // its close-on-exec flag.
                if nix::libc::fcntl(fd, nix::libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(r) = &run_as {
                nix::unistd::setgroups(&r.groups)?;
                nix::unistd::setgid(r.gid)?;
                nix::unistd::setuid(r.uid)?;
            }
            // Batch work yields to the control plane (and to everything
            // interactive on the machine): setpriority(2).
            if nix::libc::setpriority(nix::libc::PRIO_PROCESS, 0, CHILD_NICE) == -1 {
                return Err(io::Error::last_os_error());
            }
            if !dies_with_daemon {
                return Ok(());
            }
            // After the credential change, which clears the death signal.
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            if nix::unistd::getppid() != daemon {
                // The daemon died before the signal was armed. (Nothing
                // here may allocate: another thread may have held the
                // allocator's lock at the fork.)
                return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
    command
}

impl RunAs {
    /// Run `f` on the calling thread with the owner's filesystem
    /// credentials (fsuid, fsgid and supplementary groups; setfsuid(2)),
    /// so every path it touches is resolved and checked as the owner, and
    /// files it creates belong to the owner. The thread's credentials are
    /// restored afterwards, even if `f` panics; should that fail, the
    /// daemon aborts rather than go on with a thread acting as someone else.
    ///
    /// Call only on a blocking thread (`spawn_blocking`): raw system calls
    /// change this thread alone, unlike the glibc wrappers for setgroups.
    pub fn with_fs_creds<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        let saved_groups = nix::unistd::getgroups()?;
        let restore = Restore {
            uid: nix::unistd::geteuid(),
            gid: nix::unistd::getegid(),
            groups: saved_groups,
        };
        let groups: Vec<nix::libc::gid_t> = self.groups.iter().map(|g| g.as_raw()).collect();
        thread_setgroups(&groups)?;
        set_fs_ids(self.uid, self.gid)?;
        let result = f();
        drop(restore);
        result
    }
}

/// Puts a thread's filesystem credentials back when dropped.
struct Restore {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let groups: Vec<nix::libc::gid_t> = self.groups.iter().map(|g| g.as_raw()).collect();
        // The uid first: it brings back the capability to change the rest.
        let restored = set_fs_ids(self.uid, self.gid).and_then(|()| thread_setgroups(&groups));
        if let Err(err) = restored {
            log::error!("cannot restore a thread's credentials ({err}); aborting");
            std::process::abort();
        }
    }
}

/// setgroups(2) for the calling thread only (the raw system call).
fn thread_setgroups(groups: &[nix::libc::gid_t]) -> io::Result<()> {
    // SAFETY: the pointer and length describe a live slice.
    let r = unsafe { nix::libc::syscall(nix::libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set the calling thread's fsuid and fsgid, and check that they took (the
/// calls report no errors themselves: setfsuid(2)).
fn set_fs_ids(uid: Uid, gid: Gid) -> io::Result<()> {
    // The group first, while the uid still has the capability to change it.
    nix::unistd::setfsgid(gid);
    nix::unistd::setfsuid(uid);
    // Asking for an invalid id changes nothing and returns the current one.
    let now_uid = nix::unistd::setfsuid(Uid::from_raw(u32::MAX));
    let now_gid = nix::unistd::setfsgid(Gid::from_raw(u32::MAX));
    if now_uid != uid || now_gid != gid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("cannot act as uid {uid} gid {gid}"),
        ));
    }
    Ok(())
}

/// A process as recorded in the store while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessIdentity {
    pub pid: i32,
    /// `/proc/PID/stat` field 22: start time in clock ticks after boot.
    pub start_time: u64,
    /// Boot id of the kernel the process runs under.
    pub boot_id: String,
}

impl ProcessIdentity {
    /// Read the identity of the live process `pid`.
    ///
    /// Errors: `NotFound` when no such process exists, `InvalidData` when
    /// its stat line cannot be parsed.
    pub fn of(pid: i32) -> io::Result<ProcessIdentity> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        Ok(ProcessIdentity {
            pid,
            start_time: parse_start_time(&stat).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "malformed /proc/PID/stat")
            })?,
            boot_id: boot_id()?,
        })
    }

    /// The process group the process is in now (`/proc/PID/stat` field
    /// 5): its own pid for a lone FFmpeg, the decoder's for every process
    /// of a pipeline.
    ///
    /// Errors: as [`ProcessIdentity::of`].
    pub fn group(&self) -> io::Result<i32> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        stat_field(&stat, 2)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc/PID/stat"))
    }

    /// Whether `pid` still names this very process (same start time, same
    /// boot). False when the process is gone or the pid was reused.
    pub fn is_alive(&self) -> bool {
        ProcessIdentity::of(self.pid).is_ok_and(|now| now == *self)
    }
}

/// The kernel's boot id, a UUID that changes at every boot.
pub fn boot_id() -> io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_string())
}

/// Field 22 of a `/proc/PID/stat` line. The command name (field 2) is in
/// parentheses and may hold spaces and `)`, so fields are counted after the
/// last `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    // Field 22 is the 20th from field 3.
    stat_field(stat, 19)?.parse().ok()
}

/// Field `n + 3` of a `/proc/PID/stat` line (`n` counts from field 3,
/// the first after the command name).
fn stat_field(stat: &str, n: usize) -> Option<&str> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_survives_odd_command_names() {
        let stat = "4242 (ff) mpeg (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    5 6 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(stat), Some(987_654));
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn own_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessIdentity::of(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        let other = ProcessIdentity {
            start_time: me.start_time + 1,
            ..me.clone()
        };
        assert!(!other.is_alive());
        assert_eq!(me.group().unwrap(), nix::unistd::getpgrp().as_raw());
    }
}
