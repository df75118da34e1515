//! Kernel tests of the block layer, run by tests/storage.rs with a disk
//! image attached whose sector `i` starts with `i` (u64 LE) and the tag
//! `AETHBLK1`, followed by the byte pattern `(i * 7 + j) % 251`.

use alloc::format;

use super::{TestResult, ensure};
use crate::block::{self, BlkError, DmaBuf, SECTOR};

/// Where the read-write test writes (the host checks it afterwards).
pub const WRITE_SECTOR: u64 = 2000;
pub const WRITE_TAG: &[u8; 8] = b"GUESTWR1";

fn check_sector(bytes: &[u8], i: u64) -> TestResult {
    ensure!(
        bytes[..8] == i.to_le_bytes(),
        "sector {i}: starts with {:?}",
        &bytes[..8]
    );
    ensure!(&bytes[8..16] == b"AETHBLK1", "sector {i}: tag {:?}", &bytes[8..16]);
    for (j, &b) in bytes.iter().enumerate().skip(16) {
        let want = ((i * 7 + j as u64) % 251) as u8;
        ensure!(b == want, "sector {i} byte {j}: {b:#x}, expected {want:#x}");
    }
    Ok(())
}

pub fn virtio_blk_reads_writes_and_flushes() -> TestResult {
    let mut buf = DmaBuf::new(64 * 1024).ok_or("no DMA memory")?;
    block::with_disk(|d| {
        let sectors = d.sectors();
        ensure_blk(sectors >= 4096, "a disk of at least 2 MiB")?;
        ensure_blk(!d.read_only(), "a writable disk")?;
        // One sector, a 64 KiB run, and the last sector.
        for (start, count) in [(0u64, 1usize), (128, 128), (sectors - 1, 1)] {
            d.read(start, &mut buf, count * SECTOR)?;
            for k in 0..count {
                let bytes = &buf.as_slice()[k * SECTOR..(k + 1) * SECTOR];
                check_sector(bytes, start + k as u64).map_err(logged)?;
            }
        }
        // Outside the device, not whole sectors, longer than the buffer.
        ensure_blk(
            d.read(sectors, &mut buf, SECTOR) == Err(BlkError::BadRange),
            "a read past the end",
        )?;
        ensure_blk(
            d.read(sectors - 1, &mut buf, 2 * SECTOR) == Err(BlkError::BadRange),
            "a read across the end",
        )?;
        ensure_blk(d.read(0, &mut buf, 100) == Err(BlkError::BadRange), "a partial sector")?;
        ensure_blk(d.read(0, &mut buf, 0) == Err(BlkError::BadRange), "an empty read")?;
        ensure_blk(
            d.read(0, &mut buf, 65 * 1024) == Err(BlkError::BadRange),
            "a read beyond the buffer",
        )?;
        Ok(())
    })
    .map_err(|e| format!("{e:?}"))?;
    // The whole disk as a stream: 64 KiB requests, 4 in flight, handed
    // over in order; then 3-sector requests (not a divisor of the disk).
    for (req, depth) in [(64 * 1024usize, 4usize), (3 * SECTOR, 3)] {
        let mut expected = 0u64;
        let mut bad = None;
        let sectors = block::with_disk(|d| Ok(d.sectors())).map_err(|e| format!("{e:?}"))?;
        let bytes = sectors * SECTOR as u64;
        block::read_stream(0, bytes, req, depth, |off, b| {
            if off != expected && bad.is_none() {
                bad = Some(format!("chunk at {off}, expected {expected}"));
            }
            expected = off + b.len() as u64;
            for (k, sector) in b.chunks(SECTOR).enumerate() {
                if bad.is_none()
                    && let Err(e) = check_sector(sector, off / SECTOR as u64 + k as u64)
                {
                    bad = Some(e);
                }
            }
        })
        .map_err(|e| format!("stream {req}x{depth}: {e:?}"))?;
        ensure!(bad.is_none(), "stream {req}x{depth}: {}", bad.unwrap_or_default());
        ensure!(expected == bytes, "stream {req}x{depth}: {expected} of {bytes} bytes");
    }
    ensure!(
        block::read_stream(0, 1 << 40, 4096, 2, |_, _| {}) == Err(BlkError::BadRange),
        "a stream past the end"
    );
    // The streams' waits slept until the device's interrupt.
    ensure!(block::interrupts() > 0, "no disk interrupt arrived");
    block::with_disk(|d| {
        // Write, flush, read back.
        let bytes = buf.as_mut_slice();
        bytes[..SECTOR].fill(0x5a);
        bytes[..8].copy_from_slice(WRITE_TAG);
        d.write(WRITE_SECTOR, &buf, SECTOR)?;
        d.flush()?;
        buf.as_mut_slice()[..SECTOR].fill(0);
        d.read(WRITE_SECTOR, &mut buf, SECTOR)?;
        let back = &buf.as_slice()[..SECTOR];
        ensure_blk(
            &back[..8] == WRITE_TAG && back[8..].iter().all(|&b| b == 0x5a),
            "the sector written",
        )?;
        Ok(())
    })
    .map_err(|e| format!("{e:?}"))
}

pub fn virtio_blk_read_only_refuses_writes() -> TestResult {
    let mut buf = DmaBuf::new(4096).ok_or("no DMA memory")?;
    let r = block::with_disk(|d| {
        ensure_blk(d.read_only(), "a read-only disk")?;
        d.read(5, &mut buf, SECTOR)?;
        check_sector(&buf.as_slice()[..SECTOR], 5).map_err(logged)?;
        Ok(d.write(WRITE_SECTOR, &buf, SECTOR))
    })
    .map_err(|e| format!("{e:?}"))?;
    ensure!(r == Err(BlkError::ReadOnly), "a write to a read-only disk: {r:?}");
    Ok(())
}

/// `ensure!` for closures that return `BlkError`: logs what failed.
fn ensure_blk(cond: bool, what: &str) -> Result<(), BlkError> {
    if cond {
        Ok(())
    } else {
        log::error!("storage test: expected {what}");
        Err(BlkError::Io)
    }
}

fn logged(message: alloc::string::String) -> BlkError {
    log::error!("storage test: {message}");
    BlkError::Io
}

/// A sparse checksum of a stream: FNV-1a over the first 8 bytes of every
/// 4 KiB page, with its offset (cheap under TCG; a misplaced, missing or
/// repeated page changes it). tests/storage.rs and the bench compute the
/// same over the image on the host.
pub struct PageSum(u64);

impl PageSum {
    pub fn new() -> PageSum {
        PageSum(0xcbf2_9ce4_8422_2325)
    }

    pub fn add(&mut self, offset: u64, bytes: &[u8]) {
        let mut at = 0;
        while at + 8 <= bytes.len() {
            let word = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
            for b in (word ^ (offset + at as u64)).to_le_bytes() {
                self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
            at += 4096;
        }
    }
}

/// Benchmark (opt-in, `bench --storage`): the whole disk read as a stream
/// of 1 MiB requests, 16 then 1 in flight, and of 64 KiB requests, 16 in
/// flight; MiB/s, polled, no copy. Prints the page checksum of the first
/// pass for the host to compare.
pub fn blk_bench_seq_read() -> TestResult {
    let bytes = block::with_disk(|d| Ok(d.sectors() * SECTOR as u64)).map_err(|e| format!("{e:?}"))?;
    let bytes = bytes & !(1024 * 1024 - 1);
    ensure!(bytes >= 16 << 20, "a disk of at least 16 MiB");
    for (name, req, depth) in [
        ("blk_seq_read_kernel_1m_q16", 1usize << 20, 16usize),
        ("blk_seq_read_kernel_1m_q1", 1 << 20, 1),
        ("blk_seq_read_kernel_64k_q16", 64 << 10, 16),
    ] {
        let mut sum = PageSum::new();
        let t0 = crate::time::now_ns();
        block::read_stream(0, bytes, req, depth, |off, b| sum.add(off, b)).map_err(|e| format!("{name}: {e:?}"))?;
        let ns = crate::time::now_ns() - t0;
        let mib_s = (bytes as f64 / (1 << 20) as f64) / (ns as f64 / 1e9);
        log::info!("BENCH {name} {mib_s:.1} MiB/s");
        log::info!("BLKSUM {name} {:016x} {bytes}", sum.0);
    }
    Ok(())
}

/// Readers done, and the first failure (0: none).
static QUEUE_DONE: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
static QUEUE_FAILED: spin::Mutex<Option<alloc::string::String>> = spin::Mutex::new(None);

/// One reader: sectors `first..first + 1024`, 8 requests of 8 sectors in
/// flight, each checked.
fn queue_reader(first: u64) {
    let run = || -> Result<(), alloc::string::String> {
        let mut tickets = alloc::collections::VecDeque::new();
        let mut next = first;
        let end = first + 1024;
        while next < end || !tickets.is_empty() {
            while next < end && tickets.len() < 8 {
                let buf = DmaBuf::new(8 * SECTOR).ok_or("no DMA memory")?;
                tickets.push_back((
                    next,
                    block::submit_read(next, buf, 8 * SECTOR).map_err(|e| format!("{e:?}"))?,
                ));
                next += 8;
            }
            if let Some((at, t)) = tickets.pop_front() {
                let buf = block::wait(t).map_err(|e| format!("sector {at}: {e:?}"))?;
                for k in 0..8 {
                    check_sector(&buf.as_slice()[k * SECTOR..(k + 1) * SECTOR], at + k as u64)?;
                }
            }
        }
        Ok(())
    };
    if let Err(e) = run() {
        QUEUE_FAILED.lock().get_or_insert(e);
    }
    QUEUE_DONE.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
}

fn queue_reader_a() {
    queue_reader(0);
}

fn queue_reader_b() {
    queue_reader(4096);
}

/// Two kernel tasks read through the request queue at once, each with
/// several requests in flight, sleeping (not holding the disk) while they
/// wait: every sector arrives, to the right reader.
pub fn virtio_blk_request_queue_serves_two_readers() -> TestResult {
    use core::sync::atomic::Ordering;
    QUEUE_DONE.store(0, Ordering::SeqCst);
    let irqs = block::interrupts();
    for f in [queue_reader_a as fn(), queue_reader_b] {
        crate::task::spawn_kernel("[blk-reader]", kcore::sched::Priority::new(16).ok_or("priority")?, f)
            .ok_or("spawn a reader")?;
    }
    let deadline = crate::time::now_ns() + 20_000_000_000;
    while QUEUE_DONE.load(Ordering::SeqCst) < 2 {
        ensure!(crate::time::now_ns() < deadline, "the readers did not finish");
        crate::task::sleep_until(crate::time::now_ns() + 5_000_000);
    }
    if let Some(e) = QUEUE_FAILED.lock().take() {
        return Err(e);
    }
    ensure!(block::interrupts() > irqs, "no interrupt woke a reader");
    Ok(())
}
