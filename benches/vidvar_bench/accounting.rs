//! BSD process accounting (acct(2), acct(5)) around one measured run: the
//! kernel appends a record to a file of ours for every process that ends,
//! with its pid, parent pid, command name and exact CPU time (all its
//! threads, counted at its end). That is how the benchmark splits a
//! daemon's children's CPU by stage without losing the last moments of
//! short processes, as sampling /proc would. Needs root (CAP_SYS_PACCT);
//! accounting is machine-wide, so only one run may use it at a time.

use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};

/// Size of one `struct acct_v3` record (linux/acct.h).
const RECORD: usize = 64;
/// `ac_version` of the records this reader understands.
const VERSION_3: u8 = 3;
/// Clock ticks per second of `ac_utime` and `ac_stime` (`AHZ`, 100 on
/// Linux whatever the kernel's HZ).
const AHZ: f64 = 100.0;

/// A process that ended while accounting was on.
#[derive(Debug, Clone)]
pub struct Exit {
    pub pid: u32,
    pub ppid: u32,
    /// `ac_comm`: the first 15 bytes of the executable's name.
    pub comm: String,
    /// User + system CPU seconds of all its threads.
    pub cpu: f64,
}

/// Accounting switched on to a file; switched off by [`Accounting::finish`]
/// or on drop.
pub struct Accounting {
    file: PathBuf,
    on: bool,
}

impl Accounting {
    /// Switch accounting on, writing to a new file in `dir`. Fails when
    /// not root or when the kernel has no process accounting.
    pub fn start(dir: &Path) -> Result<Accounting> {
        let file = dir.join("acct");
        std::fs::write(&file, b"")?;
        nix::unistd::acct::enable(&file).with_context(|| {
            format!(
                "acct({}) failed: per-stage CPU needs root and a kernel with BSD process accounting",
                file.display()
            )
        })?;
        Ok(Accounting { file, on: true })
    }

    /// Switch accounting off and read every record written meanwhile.
    pub fn finish(mut self) -> Result<Vec<Exit>> {
        nix::unistd::acct::disable().context("acct(NULL)")?;
        self.on = false;
        let bytes = std::fs::read(&self.file)?;
        ensure!(
            bytes.len() % RECORD == 0,
            "{} is {} bytes, not whole acct_v3 records",
            self.file.display(),
            bytes.len()
        );
        bytes.chunks_exact(RECORD).map(parse).collect()
    }
}

impl Drop for Accounting {
    fn drop(&mut self) {
        if self.on {
            let _ = nix::unistd::acct::disable();
        }
    }
}

/// One `struct acct_v3`: flag u8, version u8, tty u16, exitcode, uid,
/// gid, pid, ppid, btime u32, etime f32, utime stime mem io rw minflt
/// majflt swaps comp_t (u16), comm 16 bytes; native byte order.
fn parse(record: &[u8]) -> Result<Exit> {
    if record[1] != VERSION_3 {
        bail!("acct record version {}, not 3 (acct_v3)", record[1]);
    }
    let u32_at = |i: usize| u32::from_ne_bytes(record[i..i + 4].try_into().expect("4 bytes"));
    let comp_at = |i: usize| comp_t(u16::from_ne_bytes(record[i..i + 2].try_into().expect("2")));
    let comm = &record[48..64];
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    Ok(Exit {
        pid: u32_at(16),
        ppid: u32_at(20),
        comm: String::from_utf8_lossy(&comm[..end]).into_owned(),
        cpu: (comp_at(32) + comp_at(34)) / AHZ,
    })
}

/// Value of a `comp_t`: a 13-bit mantissa and a 3-bit base-8 exponent.
fn comp_t(c: u16) -> f64 {
    f64::from(c & 0x1fff) * 8f64.powi(i32::from(c >> 13))
}
