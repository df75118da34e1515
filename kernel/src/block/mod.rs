//! The block layer (docs/storage.md): one trait for block devices, and the
//! machine's disk, found at boot. The page cache and the file system (next)
//! sit on this trait, not on virtio.

use spin::Mutex;

use crate::arch::virtio::VirtioBlk;
pub use crate::arch::virtio::{BlkError, DmaBuf, SECTOR};

/// A device of 512-byte sectors. Buffers are [`DmaBuf`]s (the device
/// reads and writes them directly); `len` is whole sectors.
pub trait BlockDevice {
    /// Capacity in sectors.
    fn sectors(&self) -> u64;
    fn read_only(&self) -> bool;
    /// `len` bytes from `sector` into `buf[at..]`.
    fn read(&mut self, sector: u64, buf: &mut DmaBuf, at: usize, len: usize) -> Result<(), BlkError>;
    /// `buf[at..at + len]` to `sector`; [`BlkError::ReadOnly`] on a
    /// read-only device.
    fn write(&mut self, sector: u64, buf: &DmaBuf, at: usize, len: usize) -> Result<(), BlkError>;
    /// Everything written before is on stable storage when this returns.
    fn flush(&mut self) -> Result<(), BlkError>;
}

impl BlockDevice for VirtioBlk {
    fn sectors(&self) -> u64 {
        VirtioBlk::sectors(self)
    }
    fn read_only(&self) -> bool {
        VirtioBlk::read_only(self)
    }
    fn read(&mut self, sector: u64, buf: &mut DmaBuf, at: usize, len: usize) -> Result<(), BlkError> {
        VirtioBlk::read(self, sector, buf, at, len)
    }
    fn write(&mut self, sector: u64, buf: &DmaBuf, at: usize, len: usize) -> Result<(), BlkError> {
        VirtioBlk::write(self, sector, buf, at, len)
    }
    fn flush(&mut self) -> Result<(), BlkError> {
        VirtioBlk::flush(self)
    }
}

/// The machine's disk, if it has one.
static DISK: Mutex<Option<VirtioBlk>> = Mutex::new(None);

/// Looks for a virtio-blk device (at boot). A machine without one is not an
/// error: storage is then absent.
pub fn init() {
    match VirtioBlk::probe() {
        Ok(dev) => {
            log::info!(
                "virtio-blk: {} MiB{}, {}",
                (dev.sectors() * SECTOR as u64) >> 20,
                if dev.read_only() { ", read-only" } else { "" },
                if dev.has_msix() { "MSI-X" } else { "polled" }
            );
            *DISK.lock() = Some(dev);
        }
        Err(BlkError::NoDevice) => {}
        Err(e) => log::warn!("virtio-blk: {e:?}; no disk"),
    }
}

/// Runs `f` on the disk; [`BlkError::NoDevice`] without one.
pub fn with_disk<R>(f: impl FnOnce(&mut dyn BlockDevice) -> Result<R, BlkError>) -> Result<R, BlkError> {
    let mut disk = DISK.lock();
    match disk.as_mut() {
        Some(dev) => f(dev),
        None => Err(BlkError::NoDevice),
    }
}

/// Streams `bytes` of the disk from `start` (sectors) through `sink`, with
/// `depth` requests of `req_bytes` in flight (docs/storage.md).
pub fn read_stream(
    start: u64,
    bytes: u64,
    req_bytes: usize,
    depth: usize,
    sink: impl FnMut(u64, &[u8]),
) -> Result<(), BlkError> {
    match DISK.lock().as_mut() {
        // The waiting task sleeps until the disk interrupts (the lock stays
        // held: one stream at a time until the page cache's request queue).
        Some(dev) => dev.read_stream(start, bytes, req_bytes, depth, sink, &mut crate::task::wait_disk_irq),
        None => Err(BlkError::NoDevice),
    }
}

/// Interrupts the disk has signalled so far.
pub fn interrupts() -> u64 {
    crate::arch::virtio::blk_irqs()
}

/// A queued read ([`submit_read`]), to [`wait`] for.
#[must_use]
pub struct Ticket(u64);

impl Ticket {
    /// The read's number (never reused while the kernel runs).
    pub fn id(&self) -> u64 {
        self.0
    }
}

/// Sleeps until the disk's next interrupt (or briefly yields without
/// MSI-X), having seen interrupt count `seen`.
fn wait_for_disk(seen: u64, msix: bool) {
    if msix {
        crate::task::wait_disk_irq(seen);
    } else {
        crate::task::sleep_until(crate::time::now_ns() + 100_000);
    }
}

/// Queues a read of `len` bytes from `sector` into `buf` (whole sectors):
/// the request goes to the device now, the caller goes on. When the
/// device's queue is full, waits for room (completions by other waiters
/// or by [`wait`]).
pub fn submit_read(sector: u64, buf: DmaBuf, len: usize) -> Result<Ticket, BlkError> {
    let mut buf = buf;
    loop {
        let (seen, r, msix) = reap_then(move |dev| dev.submit_read(sector, buf, len))?;
        match r {
            Ok(id) => return Ok(Ticket(id)),
            Err((BlkError::QueueFull, back)) => {
                buf = back;
                wait_for_disk(seen, msix);
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Queues a read like [`submit_read`], but does not wait for room: a full
/// queue gives the buffer back (the caller starts it later).
pub fn try_submit_read(sector: u64, buf: DmaBuf, len: usize) -> Result<Ticket, (BlkError, Option<DmaBuf>)> {
    match reap_then(move |dev| dev.submit_read(sector, buf, len)) {
        Ok((_, Ok(id), _)) => Ok(Ticket(id)),
        Ok((_, Err((e, back)), _)) => Err((e, Some(back))),
        Err(e) => Err((e, None)),
    }
}

/// Under the disk's lock: completes every finished queued read, then runs
/// `f`. Returns the interrupt count read before the reap (to sleep on),
/// `f`'s result and whether the disk has MSI-X.
fn reap_then<R>(f: impl FnOnce(&mut VirtioBlk) -> R) -> Result<(u64, R, bool), BlkError> {
    // Read before reaping: an interrupt after the reap moves it, and a
    // sleep on it returns at once.
    let seen = interrupts();
    let mut disk = DISK.lock();
    let dev = disk.as_mut().ok_or(BlkError::NoDevice)?;
    dev.reap();
    Ok((seen, f(dev), dev.has_msix()))
}

/// The buffer of a queued read if it has finished, else the ticket back
/// (never waits).
pub fn poll(ticket: Ticket) -> Result<Result<DmaBuf, BlkError>, Ticket> {
    match reap_then(|dev| dev.take(ticket.0)) {
        Ok((_, Some(r), _)) => Ok(r),
        Ok((_, None, _)) => Err(ticket),
        Err(e) => Ok(Err(e)),
    }
}

/// Sleeps until the disk interrupts after `seen` ([`interrupts`], read
/// before the caller polled its tickets), or a short while without MSI-X.
pub fn wait_any(seen: u64) {
    let msix = DISK.lock().as_ref().is_some_and(|d| d.has_msix());
    wait_for_disk(seen, msix);
}

/// The buffer of a queued read once it has finished; the caller sleeps
/// meanwhile, without holding the disk (other tasks queue and wait too).
pub fn wait(ticket: Ticket) -> Result<DmaBuf, BlkError> {
    loop {
        let (seen, r, msix) = reap_then(|dev| dev.take(ticket.0))?;
        if let Some(r) = r {
            return r;
        }
        wait_for_disk(seen, msix);
    }
}
