//! Where the stage's warped bands go: one output descriptor, and, when it
//! is a pipe, a ring of memory whose pages are lent to the pipe with
//! vmsplice(2) instead of copied into it by write(2).
//!
//! Why: write(2) copies every byte into pages the kernel allocates for
//! the pipe and frees once the reader has copied them out again; lent
//! pages are copied once, by the reader. Each 1080p frame crosses five
//! pipes in a pipeline of five variations, so this is most of what the
//! stage costs beyond the warp (README's "The pixel path" has the
//! figures).
//!
//! The rule that makes lending safe: the ring's bytes are written again
//! only once the reader has copied them out of the pipe. A pipe is a
//! FIFO, so the bytes it has handed on are all those lent since the start
//! but the last FIONREAD (pipe(7)) of them, when the stage is its only
//! writer (another writer's unread bytes only make the count smaller, and
//! the count of read bytes is never taken below zero). The ring is the
//! pipe's capacity (up to [`MAX_RING_PIPE`]) plus two of the largest
//! bands, which keeps every reused byte at least a pipe's capacity behind
//! the newest one, so a reader that copies what it reads (FFmpeg's
//! `pipe:` protocol reads with read(2)) has always taken it; the FIONREAD
//! check makes that a verified fact rather than an assumption, and a band
//! whose place in the ring still waits in the pipe is copied by write(2)
//! instead (never seen with pipes of up to [`MAX_RING_PIPE`]; a larger
//! pipe, where the system allows one, copies what its reader lags behind
//! the ring by). A reader that splices the pages on elsewhere (splice(2)
//! or tee(2) to another pipe or a socket, as pv(1) does) would break the
//! rule, its next reader seeing later bytes (seen by hand): the stage's
//! outputs are FFmpeg encoders, whose `pipe:` protocol reads.
//!
//! Must not: warp (the caller fills the band), or decide what happens to
//! an output that fails (its error goes back to the caller).

use nix::fcntl::{FcntlArg, SpliceFFlags, fcntl, vmsplice};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{IoSlice, Write};
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd};

/// One output: the descriptor and, for a pipe, the ring lent to it.
pub struct Sink {
    file: File,
    ring: Option<Ring>,
}

/// Memory lent to a pipe band by band, and what of it may still be
/// unread there.
struct Ring {
    /// A mapping of its own (see [`Ring::new`]).
    bytes: memmap2::MmapMut,
    /// Where the next band goes unless it does not fit before the end.
    next: usize,
    /// Bytes handed to the pipe since the start, lent or written.
    sent: u64,
    /// Lent bands the reader may not have read yet, oldest first: their
    /// place in the ring and the count of `sent` at their end.
    pending: VecDeque<(Range<usize>, u64)>,
}

/// The most of a pipe's capacity a ring covers, in bytes: Linux's default
/// /proc/sys/fs/pipe-max-size (1 MiB). A root stage may raise its pipes
/// beyond it where an administrator raised that limit; its rings stay this
/// size (1 MiB and two bands an output) rather than grow with the pipes.
pub const MAX_RING_PIPE: usize = 1024 * 1024;

impl Sink {
    /// An output writing to `file`, whose bands are at most `max_band`
    /// bytes: with a ring of its pipe's capacity (F_GETPIPE_SZ, fcntl(2),
    /// read now: raise it first; at most [`MAX_RING_PIPE`]) plus two such
    /// bands when `file` is a pipe (and the ring could be mapped), else
    /// written with write(2).
    pub fn new(file: File, max_band: usize) -> Sink {
        let ring = fcntl(file.as_fd(), FcntlArg::F_GETPIPE_SZ)
            .ok()
            .and_then(|capacity| Ring::new(ring_len(capacity as usize, max_band)).ok());
        Sink { file, ring }
    }

    /// Hands on the next `len` bytes of the output, which `fill` writes
    /// into the buffer it is given (`len` long): a free place of the ring,
    /// then lent to the pipe; else `spare` (at least `len` long), then
    /// written.
    ///
    /// Errors: vmsplice(2), write(2) or, for the ring, ioctl(2) FIONREAD
    /// failing (EPIPE when the reader is gone).
    pub fn send(
        &mut self,
        len: usize,
        spare: &mut [u8],
        fill: impl FnOnce(&mut [u8]),
    ) -> std::io::Result<()> {
        let file = &mut self.file;
        if let Some(ring) = &mut self.ring
            && let Some(at) = ring.place(len, || unread(file.as_fd()))?
        {
            fill(&mut ring.bytes[at.clone()]);
            lend(file, &ring.bytes[at.clone()])?;
            ring.sent += len as u64;
            ring.next = at.end;
            ring.pending.push_back((at, ring.sent));
            return Ok(());
        }
        let band = &mut spare[..len];
        fill(band);
        file.write_all(band)?;
        if let Some(ring) = &mut self.ring {
            ring.sent += len as u64;
        }
        Ok(())
    }
}

/// A ring's length, in bytes, for a pipe of `capacity` bytes and bands of
/// at most `max_band` (see the module's documentation).
fn ring_len(capacity: usize, max_band: usize) -> usize {
    capacity.min(MAX_RING_PIPE) + 2 * max_band
}

impl Ring {
    /// A ring of `len` bytes in an anonymous mapping of its own (mmap(2)),
    /// unmapped when the ring is dropped: never heap memory, which the
    /// allocator would hand to other code once freed while the pipe still
    /// holds its pages unread (a test saw a freed heap ring's last bands
    /// rewritten before the reader got them).
    ///
    /// Errors: mmap(2) failing.
    fn new(len: usize) -> std::io::Result<Ring> {
        Ok(Ring {
            bytes: memmap2::MmapMut::map_anon(len)?,
            next: 0,
            sent: 0,
            pending: VecDeque::new(),
        })
    }

    /// A place for `len` bytes that the pipe no longer needs, from `next`
    /// or else from the start; `None` when it still holds some of them
    /// (or `len` exceeds the ring). `unread` is FIONREAD, asked only when
    /// a lent band lies there.
    fn place(
        &mut self,
        len: usize,
        unread: impl FnOnce() -> std::io::Result<u64>,
    ) -> std::io::Result<Option<Range<usize>>> {
        if len > self.bytes.len() {
            return Ok(None);
        }
        let start = if self.next + len > self.bytes.len() {
            0
        } else {
            self.next
        };
        let at = start..start + len;
        let overlaps = |(lent, _): &(Range<usize>, u64)| lent.start < at.end && at.start < lent.end;
        if self.pending.iter().any(overlaps) {
            // More unread than sent: another writer shares the pipe (or
            // wrote to it before); then none of ours is known to be read.
            let read = self.sent.saturating_sub(unread()?);
            while self.pending.front().is_some_and(|&(_, end)| end <= read) {
                self.pending.pop_front();
            }
            if self.pending.iter().any(overlaps) {
                return Ok(None);
            }
        }
        Ok(Some(at))
    }
}

/// Bytes written to the pipe `fd` and not yet read (FIONREAD, pipe(7)).
fn unread(fd: impl AsRawFd) -> std::io::Result<u64> {
    let mut count: libc::c_int = 0;
    // SAFETY: FIONREAD stores one c_int through the pointer, which points
    // to a live c_int.
    let result = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut count) };
    if result < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(count as u64)
}

/// Lends all of `bytes` to the pipe `file` (vmsplice(2), no flags),
/// blocking while it is full.
fn lend(file: &File, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: vmsplice's rule is that the pages are not changed while
        // the pipe still holds them; `Ring::place` hands out no byte the
        // reader has yet to read (see the module's documentation).
        match unsafe { vmsplice(file, &[IoSlice::new(bytes)], SpliceFFlags::empty()) } {
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::OFlag;
    use nix::unistd::pipe2;
    use std::io::Read;

    /// Band `n`, `len` bytes: each byte tells its band and place, so a
    /// band overwritten in the ring before it was read shows.
    fn band(n: usize, len: usize) -> Vec<u8> {
        (0..len).map(|i| (n * 7 + i * 13 % 251) as u8).collect()
    }

    /// Sends `count` bands of varying length through `sink` while a
    /// slow reader copies the pipe's contents out; returns what it read
    /// and what was sent.
    fn through(mut sink: Sink, reader: File, count: usize) -> (Vec<u8>, Vec<u8>) {
        let reading = std::thread::spawn(move || {
            let mut reader = reader;
            let mut got = Vec::new();
            let mut chunk = [0u8; 1000];
            loop {
                std::thread::sleep(std::time::Duration::from_micros(50));
                match reader.read(&mut chunk).unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&chunk[..n]),
                }
            }
        });
        let mut sent = Vec::new();
        let mut spare = vec![0u8; 20_000];
        for n in 0..count {
            let len = 5_000 + (n * 3_001) % 15_000;
            let want = band(n, len);
            sink.send(len, &mut spare, |buf| buf.copy_from_slice(&want))
                .unwrap();
            sent.extend_from_slice(&want);
        }
        drop(sink);
        (reading.join().unwrap(), sent)
    }

    fn pipe_of(pages: i32) -> (File, File) {
        let (r, w) = pipe2(OFlag::O_CLOEXEC).unwrap();
        fcntl(w.as_fd(), FcntlArg::F_SETPIPE_SZ(pages * 4096)).unwrap();
        (File::from(r), File::from(w))
    }

    #[test]
    fn a_pipe_gets_every_band_intact_through_the_ring() {
        let (r, w) = pipe_of(4);
        let sink = Sink::new(w, 20_000);
        assert_eq!(sink.ring.as_ref().unwrap().bytes.len(), 4 * 4096 + 40_000);
        let (got, sent) = through(sink, r, 300);
        assert!(got == sent, "the reader saw other bytes than were sent");
    }

    #[test]
    fn a_ring_covers_a_pipe_up_to_the_default_limit() {
        assert_eq!(ring_len(16 * 4096, 20_000), 16 * 4096 + 40_000);
        // A pipe raised beyond pipe-max-size's default (root with
        // CAP_SYS_RESOURCE, where the limit was raised).
        assert_eq!(ring_len(4 << 20, 20_000), MAX_RING_PIPE + 40_000);
    }

    #[test]
    fn a_ring_too_small_for_the_pipe_copies_instead_of_overwriting() {
        // A ring of one band's room against a pipe of 16 pages: without
        // the FIONREAD check the ring would overwrite bytes still unread.
        let (r, w) = pipe_of(16);
        let mut sink = Sink::new(w, 0);
        sink.ring = Some(Ring::new(20_000).unwrap());
        let (got, sent) = through(sink, r, 300);
        assert!(got == sent, "the reader saw other bytes than were sent");
    }

    #[test]
    fn a_pipe_holding_more_than_was_sent_frees_no_place() {
        // Another writer's bytes (or a FIFO's older ones) make FIONREAD
        // exceed what this sink sent: no band may count as read.
        let mut ring = Ring::new(10).unwrap();
        let first = ring.place(6, || unreachable!()).unwrap().unwrap();
        ring.sent = 6;
        ring.next = first.end;
        ring.pending.push_back((first, 6));
        assert_eq!(ring.place(6, || Ok(100)).unwrap(), None);
        assert_eq!(ring.place(6, || Ok(0)).unwrap(), Some(0..6));
    }

    #[test]
    fn a_pipe_whose_ring_cannot_be_mapped_is_written() {
        // Bands of 2^55 bytes: a ring of over 2^56 is more than the user
        // address space of any 64-bit Linux (2^56 with 5-level paging), so
        // mmap(2) fails (ENOMEM) whatever the overcommit setting.
        let (r, w) = pipe_of(4);
        let sink = Sink::new(w, 1 << 55);
        assert!(sink.ring.is_none(), "a ring of over 2^56 bytes was mapped");
        let (got, sent) = through(sink, r, 50);
        assert!(got == sent, "the reader saw other bytes than were sent");
    }

    #[test]
    fn a_file_is_written_not_lent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut sink = Sink::new(File::create(&path).unwrap(), 100);
        assert!(sink.ring.is_none());
        let mut spare = [0u8; 100];
        sink.send(3, &mut spare, |b| b.copy_from_slice(b"abc"))
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
    }
}
