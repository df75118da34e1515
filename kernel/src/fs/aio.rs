//! Async I/O (docs/storage.md, "Async IO"): a submission and a completion
//! queue per process, io_uring in spirit. `Submit` queues a batch;
//! `Complete` polls or waits for what finished. Cached reads and writes
//! are done at submission (the page cache makes them quick) and complete
//! at once; direct reads go to the device and complete when it is done,
//! many in flight: into a `MAP_DMA` mapping the device writes the
//! caller's memory itself (no copy), elsewhere through a bounce buffer
//! copied out at completion.

use aether_abi::fs::{AIO_BATCH, AIO_INFLIGHT_MAX, AioOp, Cqe, FsError, FsResponse, O_READ, Sqe};
use aether_abi::syscall::Pid;
use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::store::SECTORS_PER_BLOCK;
use super::{Fail, Storage, mmap};
use crate::block::{self, DmaBuf, SECTOR, Ticket};

/// The largest device request of a direct read.
const PART_MAX: u64 = 1 << 20;
/// The longest direct read one entry may ask for.
const DIRECT_MAX: u64 = 16 << 20;
const BS: u64 = 4096;

/// One device request of a direct read.
struct Part {
    ticket: Option<Ticket>,
    /// A bounce buffer's destination: the caller's address and length.
    bounce: Option<(u64, usize)>,
}

struct Pending {
    user_data: u64,
    parts: Vec<Part>,
    /// What the completion reports (bytes up to the end of the file).
    bytes: u64,
    error: Option<FsError>,
}

/// A process's queues.
#[derive(Default)]
pub struct Aio {
    pending: Vec<Pending>,
    done: VecDeque<Cqe>,
}

impl Aio {
    fn inflight(&self) -> usize {
        self.pending.len() + self.done.len()
    }
}

impl Storage {
    /// Whether `pid` has direct reads in flight.
    pub(super) fn aio_busy(&self, pid: Pid) -> bool {
        self.aio.get(&pid).is_some_and(|a| !a.pending.is_empty())
    }

    /// Drops the queues of processes that have ended, once their requests
    /// have finished (their buffers may be freed after that).
    pub(super) fn sweep_aio(&mut self) {
        let dead: Vec<Pid> = self
            .aio
            .keys()
            .copied()
            .filter(|pid| !crate::task::with(|k| k.process_alive(*pid)))
            .collect();
        for pid in dead {
            if let Some(aio) = self.aio.remove(&pid) {
                for part in aio.pending.into_iter().flat_map(|p| p.parts) {
                    if let Some(t) = part.ticket {
                        let _ = block::wait(t);
                    }
                }
            }
        }
    }

    /// Starts a direct read: device requests of up to [`PART_MAX`] along
    /// the file's extents.
    fn start_direct(&mut self, pid: Pid, sqe: &Sqe) -> Result<Pending, FsError> {
        let of = self.files.get(&(pid, sqe.fd)).ok_or(FsError::BadFd)?;
        if of.flags & O_READ == 0 {
            return Err(FsError::BadFd);
        }
        let ino = of.ino;
        let sector = SECTOR as u64;
        if !sqe.offset.is_multiple_of(sector) || !sqe.len.is_multiple_of(sector) || sqe.len == 0 || sqe.len > DIRECT_MAX
        {
            return Err(FsError::InvalidArgument);
        }
        let st = super::stat(&mut self.fs, ino)?;
        if st.kind == aether_abi::fs::FileKind::Dir {
            return Err(FsError::IsDir);
        }
        // The caller's memory must take the whole read (checked now, not
        // when a bounced read lands).
        if super::user_check(sqe.buf, sqe.len, true).is_err() {
            return Err(FsError::InvalidArgument);
        }
        let size = st.size;
        let mut pending = Pending {
            user_data: sqe.user_data,
            parts: Vec::new(),
            bytes: 0,
            error: None,
        };
        if sqe.offset >= size {
            return Ok(pending);
        }
        // What the cache holds dirty must reach the disk first.
        self.sync_data()?;
        let end = (sqe.offset + sqe.len).min(size.next_multiple_of(sector));
        pending.bytes = end.min(size) - sqe.offset;
        let mut pos = sqe.offset;
        while pos < end {
            let fb = pos / BS;
            let (dev, run) = super::map(&mut self.fs, ino, fb)?.ok_or(FsError::Corrupt)?;
            let run_end = (fb + run) * BS;
            let len = (run_end.min(end) - pos).min(PART_MAX);
            let va = sqe.buf + (pos - sqe.offset);
            let dev_sector = dev * SECTORS_PER_BLOCK + (pos % BS) / sector;
            let (buf, bounce) = match mmap::dma_view(pid, va, len) {
                // Straight into the process's MAP_DMA mapping (the view
                // keeps its frames alive until the request is done).
                Some(view) => (view, None),
                None => (
                    DmaBuf::for_device_writes(len as usize).ok_or(FsError::NoMemory)?,
                    Some((va, len as usize)),
                ),
            };
            let ticket = block::submit_read(dev_sector, buf, len as usize).map_err(|_| FsError::Io)?;
            pending.parts.push(Part {
                ticket: Some(ticket),
                bounce,
            });
            pos += len;
        }
        Ok(pending)
    }

    /// Moves every finished direct read of `pid` to its completions.
    fn reap_aio(&mut self, pid: Pid) {
        let Some(aio) = self.aio.get_mut(&pid) else { return };
        let mut i = 0;
        while i < aio.pending.len() {
            let p = &mut aio.pending[i];
            for part in &mut p.parts {
                let Some(t) = part.ticket.take() else { continue };
                match block::poll(t) {
                    Err(t) => part.ticket = Some(t),
                    Ok(Ok(buf)) => {
                        // Unmapped since the submission: the request's error.
                        if let Some((va, len)) = part.bounce
                            && super::user_write(va, &buf.as_slice()[..len]).is_err()
                        {
                            p.error = Some(FsError::InvalidArgument);
                        }
                    }
                    Ok(Err(_)) => p.error = Some(FsError::Io),
                }
            }
            if p.parts.iter().all(|part| part.ticket.is_none()) {
                let p = aio.pending.swap_remove(i);
                aio.done.push_back(Cqe {
                    user_data: p.user_data,
                    result: p.error.map_or(Ok(p.bytes), Err),
                });
            } else {
                i += 1;
            }
        }
    }
}

/// `Submit`: how many entries were taken.
pub fn submit(pid: Pid, entries: &[Sqe]) -> Result<FsResponse, Fail> {
    let mut taken = 0;
    for sqe in entries {
        let full = super::with(|s| Ok(s.aio.entry(pid).or_default().inflight() >= AIO_INFLIGHT_MAX))?;
        if full {
            break;
        }
        let result = match sqe.op {
            AioOp::Read => super::read(pid, sqe.fd, Some(sqe.offset), sqe.buf, sqe.len),
            AioOp::Write => super::write(pid, sqe.fd, Some(sqe.offset), sqe.buf, sqe.len),
            AioOp::ReadDirect => {
                let started = super::with(|s| Ok(s.start_direct(pid, sqe)))?;
                match started {
                    Ok(p) => {
                        super::with(|s| {
                            s.aio.entry(pid).or_default().pending.push(p);
                            Ok(())
                        })?;
                        taken += 1;
                        continue;
                    }
                    Err(e) => Err(Fail::Fs(e)),
                }
            }
        };
        let result = match result {
            Ok(n) => Ok(n),
            Err(Fail::Fs(e)) => Err(e),
            // A bad buffer is the request's error, not the call's.
            Err(Fail::Sys(_)) => Err(FsError::InvalidArgument),
        };
        super::with(|s| {
            s.aio.entry(pid).or_default().done.push_back(Cqe {
                user_data: sqe.user_data,
                result,
            });
            Ok(())
        })?;
        taken += 1;
    }
    Ok(FsResponse::Submitted(taken))
}

/// `Complete`: up to [`AIO_BATCH`] completions, once `min` are there or
/// the timeout passed.
pub fn complete(pid: Pid, min: u32, timeout_ms: u32) -> Result<FsResponse, Fail> {
    let deadline = crate::time::now_ns() + timeout_ms as u64 * 1_000_000;
    loop {
        let seen = block::interrupts();
        let answer = {
            let mut g = super::lock();
            let s = g.as_mut().ok_or(FsError::NoFileSystem)?;
            s.reap_aio(pid);
            let aio = s.aio.entry(pid).or_default();
            let ready = aio.done.len();
            if ready >= (min as usize).min(AIO_BATCH) || aio.pending.is_empty() || crate::time::now_ns() >= deadline {
                let mut entries = heapless::Vec::new();
                while entries.len() < AIO_BATCH {
                    let Some(c) = aio.done.pop_front() else { break };
                    let _ = entries.push(c);
                }
                Some(FsResponse::Completions {
                    entries,
                    pending: (aio.pending.len() + aio.done.len()) as u32,
                })
            } else {
                None
            }
        };
        match answer {
            Some(a) => return Ok(a),
            None => block::wait_any(seen),
        }
    }
}
