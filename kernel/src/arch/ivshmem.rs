//! The `ivshmem-plain` device (QEMU docs/specs/ivshmem-spec.rst): a PCI
//! function (1af4:1110) whose BAR2 is memory shared with the host, here the
//! link's transport (docs/jobs.md). This module finds it, maps the region
//! and gives it to `aether_abi::shm_ring` as a [`Shared`] mapping.

use core::sync::atomic::{AtomicU64, Ordering};

use aether_abi::shm_ring::Shared;
use kcore::pci::{Bar, bar_size, decode_bar};

use super::pci;
use crate::mm::paging;

const VENDOR: u16 = 0x1af4;
const DEVICE: u16 = 0x1110;
/// Larger regions are refused (the MMIO window is shared with devices).
const MAX_SIZE: u64 = 64 << 20;

/// The mapped shared region.
pub struct Region {
    base: u64,
    size: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IvshmemError {
    NoDevice,
    BadBar,
    TooLarge(u64),
    Map(paging::MapError),
}

/// Finds the device on bus 0 and maps its shared memory.
pub fn probe() -> Result<Region, IvshmemError> {
    let dev = pci::scan_bus0()
        .into_iter()
        .find(|f| f.header.vendor == VENDOR && f.header.device == DEVICE && f.header.kind == 0)
        .ok_or(IvshmemError::NoDevice)?;
    let bar_off = 0x10 + 4 * 2;
    let bars: [u32; 6] = core::array::from_fn(|i| pci::read(dev.addr, 0x10 + 4 * i as u16));
    let Some(Ok(Bar::Memory { addr, wide, .. })) = decode_bar(&bars, 2) else {
        return Err(IvshmemError::BadBar);
    };
    let command = pci::read(dev.addr, 4);
    // Size the BAR (PCI 3.0 §6.2.5.1): decoding off, all ones written,
    // read back, the original restored, then memory decoding on.
    // SAFETY: the standard sizing sequence on a BAR of a device nothing else
    // uses; memory decoding is off while the BAR holds all ones, and the
    // firmware's address is written back before it is turned on.
    let size = unsafe {
        pci::write(dev.addr, 4, command & !0x3);
        pci::write(dev.addr, bar_off, u32::MAX);
        let low = pci::read(dev.addr, bar_off);
        pci::write(dev.addr, bar_off, bars[2]);
        let high = if wide {
            pci::write(dev.addr, bar_off + 4, u32::MAX);
            let h = pci::read(dev.addr, bar_off + 4);
            pci::write(dev.addr, bar_off + 4, bars[3]);
            Some(h)
        } else {
            None
        };
        pci::write(dev.addr, 4, command | 0x2);
        bar_size(low, high, false)
    }
    .ok_or(IvshmemError::BadBar)?;
    if size > MAX_SIZE {
        return Err(IvshmemError::TooLarge(size));
    }
    // SAFETY: BAR2 is the device's shared memory (no registers), `size`
    // long as just measured; only the link uses it, through `Region`.
    let base = unsafe { paging::map_mmio(addr, size) }.map_err(IvshmemError::Map)?;
    Ok(Region {
        base,
        size: size as usize,
    })
}

impl Region {
    fn check(&self, off: usize, len: usize) {
        assert!(
            off.checked_add(len).is_some_and(|end| end <= self.size),
            "ivshmem access out of the region"
        );
    }
}

impl Shared for Region {
    fn size(&self) -> usize {
        self.size
    }

    fn load(&self, off: usize) -> u64 {
        self.check(off, 8);
        assert!(off % 8 == 0, "unaligned ivshmem counter");
        // SAFETY: inside the mapped region (checked) and 8-byte aligned; the
        // host changes the word concurrently, which is what atomics are for.
        unsafe { AtomicU64::from_ptr((self.base + off as u64) as *mut u64).load(Ordering::Acquire) }
    }

    fn store(&self, off: usize, value: u64) {
        self.check(off, 8);
        assert!(off % 8 == 0, "unaligned ivshmem counter");
        // SAFETY: as in `load`.
        unsafe { AtomicU64::from_ptr((self.base + off as u64) as *mut u64).store(value, Ordering::Release) }
    }

    fn read(&self, off: usize, dst: &mut [u8]) {
        self.check(off, dst.len());
        // SAFETY: inside the mapped region (checked); the bytes are ones the
        // producer finished writing before publishing `head` (shm_ring).
        unsafe { core::ptr::copy_nonoverlapping((self.base + off as u64) as *const u8, dst.as_mut_ptr(), dst.len()) }
    }

    fn write(&self, off: usize, src: &[u8]) {
        self.check(off, src.len());
        // SAFETY: inside the mapped region (checked); the consumer reads
        // these bytes only after `head` is published.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), (self.base + off as u64) as *mut u8, src.len()) }
    }
}
