//! Physical memory as seen through the bootloader's offset mapping of all
//! RAM (and the low 4 GiB), for reading firmware tables.

use core::sync::atomic::{AtomicU64, Ordering};

use kcore::acpi::PhysMemory;
use x86_64::PhysAddr;
use x86_64::structures::paging::PhysFrame;

use super::frames;

static OFFSET: AtomicU64 = AtomicU64::new(0);
/// End of what the offset mapping covers.
static LIMIT: AtomicU64 = AtomicU64::new(0);

/// The bootloader maps every physical address below
/// `max(highest RAM address, 4 GiB)` at `offset`.
pub fn init(offset: u64, highest_ram: u64) {
    OFFSET.store(offset, Ordering::Relaxed);
    LIMIT.store(highest_ram.max(1 << 32), Ordering::Relaxed);
}

pub fn offset() -> u64 {
    OFFSET.load(Ordering::Relaxed)
}

/// The virtual address of physical address `phys` in the offset mapping.
pub fn to_virt(phys: u64) -> u64 {
    offset() + phys
}

/// The physical address of `virt..virt + len` when the range lies in the
/// offset mapping (physically contiguous by construction).
pub fn window_to_phys(virt: u64, len: u64) -> Option<u64> {
    let off = offset();
    let phys = virt.checked_sub(off)?;
    (off != 0 && phys.checked_add(len)? <= LIMIT.load(Ordering::Relaxed)).then_some(phys)
}

/// Read-only access to firmware-owned physical memory (ACPI tables): any
/// range that touches usable RAM (which the kernel allocates and writes) is
/// refused, so a corrupt table pointer cannot expose kernel memory.
pub struct FirmwareMemory;

impl PhysMemory for FirmwareMemory {
    fn slice(&self, phys: u64, len: usize) -> Option<&[u8]> {
        let end = phys.checked_add(len as u64)?;
        if offset() == 0 || end > LIMIT.load(Ordering::Relaxed) {
            return None;
        }
        let mut frame = phys & !0xfff;
        while frame < end {
            if frames::is_used(PhysFrame::containing_address(PhysAddr::new(frame))).is_some() {
                return None;
            }
            frame += 0x1000;
        }
        // SAFETY: `phys..end` lies below LIMIT, so the bootloader's offset
        // mapping covers it, and none of it is usable RAM (checked above):
        // it is firmware memory no one writes, so a shared slice of it is
        // sound for any lifetime.
        Some(unsafe { core::slice::from_raw_parts(to_virt(phys) as *const u8, len) })
    }
}

/// The boot image's ramdisk (the program archive), mapped by the
/// bootloader read-only at `addr` for the kernel's lifetime.
pub fn ramdisk(addr: u64, len: u64) -> &'static [u8] {
    if addr == 0 || len == 0 || addr.checked_add(len).is_none() {
        return &[];
    }
    // SAFETY: the bootloader maps the ramdisk at `addr..addr+len` (BootInfo
    // `ramdisk_addr`/`ramdisk_len`) and never unmaps it; the kernel never
    // writes it, so a shared 'static slice is sound.
    unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) }
}
