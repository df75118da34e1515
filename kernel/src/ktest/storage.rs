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
