//! Kernel tests of the block layer, run by tests/storage.rs with a test
//! image attached (`aether_abi::ktest::storage::sector`: every sector names
//! itself).

use alloc::format;

use aether_abi::ktest::storage::{PageSum, WRITE_FILL, WRITE_SECTOR, WRITE_TAG, sector};

use super::{TestResult, ensure};
use crate::block::{self, BlkError, DmaBuf, SECTOR};

/// Checks sector `i` of the test image (`aether_abi::ktest::storage`).
fn check_sector(bytes: &[u8], i: u64) -> TestResult {
    let want = sector(i);
    match bytes.iter().zip(want.iter()).position(|(a, b)| a != b) {
        None if bytes.len() == SECTOR => Ok(()),
        None => Err(format!("sector {i}: {} bytes", bytes.len())),
        Some(j) => Err(format!("sector {i} byte {j}: {:#x}, expected {:#x}", bytes[j], want[j])),
    }
}

pub fn virtio_blk_reads_writes_and_flushes() -> TestResult {
    let mut buf = DmaBuf::new(64 * 1024).ok_or("no DMA memory")?;
    block::with_disk(|d| {
        let sectors = d.sectors();
        ensure_blk(sectors >= 4096, "a disk of at least 2 MiB")?;
        ensure_blk(!d.read_only(), "a writable disk")?;
        // One sector, a 64 KiB run, and the last sector.
        for (start, count) in [(0u64, 1usize), (128, 128), (sectors - 1, 1)] {
            d.read(start, &mut buf, 0, count * SECTOR)?;
            for k in 0..count {
                let bytes = &buf.as_slice()[k * SECTOR..(k + 1) * SECTOR];
                check_sector(bytes, start + k as u64).map_err(logged)?;
            }
        }
        // Outside the device, not whole sectors, longer than the buffer.
        ensure_blk(
            d.read(sectors, &mut buf, 0, SECTOR) == Err(BlkError::BadRange),
            "a read past the end",
        )?;
        ensure_blk(
            d.read(sectors - 1, &mut buf, 0, 2 * SECTOR) == Err(BlkError::BadRange),
            "a read across the end",
        )?;
        ensure_blk(
            d.read(0, &mut buf, 0, 100) == Err(BlkError::BadRange),
            "a partial sector",
        )?;
        ensure_blk(d.read(0, &mut buf, 0, 0) == Err(BlkError::BadRange), "an empty read")?;
        ensure_blk(
            d.read(0, &mut buf, 0, 65 * 1024) == Err(BlkError::BadRange),
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
        bytes[..SECTOR].fill(WRITE_FILL);
        bytes[..8].copy_from_slice(WRITE_TAG);
        d.write(WRITE_SECTOR, &buf, 0, SECTOR)?;
        d.flush()?;
        buf.as_mut_slice()[..SECTOR].fill(0);
        d.read(WRITE_SECTOR, &mut buf, 0, SECTOR)?;
        let back = &buf.as_slice()[..SECTOR];
        ensure_blk(
            &back[..8] == WRITE_TAG && back[8..].iter().all(|&b| b == WRITE_FILL),
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
        d.read(5, &mut buf, 0, SECTOR)?;
        check_sector(&buf.as_slice()[..SECTOR], 5).map_err(logged)?;
        Ok(d.write(WRITE_SECTOR, &buf, 0, SECTOR))
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
        let mut sum = PageSum::default();
        let t0 = crate::time::now_ns();
        block::read_stream(0, bytes, req, depth, |off, b| sum.add(off, b)).map_err(|e| format!("{name}: {e:?}"))?;
        let ns = crate::time::now_ns() - t0;
        let mib_s = (bytes as f64 / (1 << 20) as f64) / (ns as f64 / 1e9);
        log::info!("BENCH {name} {mib_s:.1} MiB/s");
        log::info!("BLKSUM {name} {:016x} {bytes}", sum.value());
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
