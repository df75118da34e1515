//! The kernel address space: the bootloader's 4-level page table, edited
//! through `x86_64`'s `OffsetPageTable`, with a typed API that refuses
//! writable+executable mappings and makes the caller handle TLB flushes
//! (`MapperFlush` is `#[must_use]`).
//!
//! Three top-level (PML4) slots of the upper half that the bootloader left
//! empty are taken at boot: the heap, MMIO mappings and task kernel stacks
//! (Intel SDM Vol. 3A §4.5). Their next-level tables are created at once,
//! so every user address space, which shares the kernel's upper-half PML4
//! entries (`mm::user`), sees later kernel mappings too.

use bitflags::bitflags;
use spin::Mutex;
use x86_64::structures::paging::mapper::{MapToError, MapperFlush, TranslateResult, UnmapError};
use x86_64::structures::paging::{
    Mapper, OffsetPageTable, Page, PageSize, PageTable, PageTableFlags, PhysFrame, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

use super::frames::{self, PageTableFrames};
use super::phys;

/// Bytes covered by one PML4 entry.
const SLOT_SIZE: u64 = 1 << 39;

bitflags! {
    /// What a mapping allows. Absent flags mean read-only, not executable,
    /// kernel-only, cached.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Flags: u8 {
        const WRITABLE = 1 << 0;
        const EXECUTABLE = 1 << 1;
        const USER = 1 << 2;
        /// Uncached (for device registers).
        const UNCACHED = 1 << 3;
    }
}

impl Flags {
    pub(super) fn to_entry_flags(self) -> Result<PageTableFlags, MapError> {
        if self.contains(Flags::WRITABLE | Flags::EXECUTABLE) {
            return Err(MapError::WritableAndExecutable);
        }
        let mut f = PageTableFlags::PRESENT;
        if self.contains(Flags::WRITABLE) {
            f |= PageTableFlags::WRITABLE;
        }
        if !self.contains(Flags::EXECUTABLE) {
            f |= PageTableFlags::NO_EXECUTE;
        }
        if self.contains(Flags::USER) {
            f |= PageTableFlags::USER_ACCESSIBLE;
        }
        if self.contains(Flags::UNCACHED) {
            f |= PageTableFlags::NO_CACHE | PageTableFlags::WRITE_THROUGH;
        }
        Ok(f)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    NotInitialised,
    AlreadyMapped,
    NotMapped,
    OutOfFrames,
    WritableAndExecutable,
    /// The address is inside a huge-page mapping, which this API does not
    /// split.
    HugePage,
    /// No free top-level slot for a kernel window.
    NoFreeSlot,
    /// The MMIO window is full.
    WindowFull,
    /// Not a valid physical address (beyond 52 bits), e.g. from a corrupt
    /// firmware table.
    BadPhysicalAddress(u64),
}

impl From<MapToError<Size4KiB>> for MapError {
    fn from(e: MapToError<Size4KiB>) -> Self {
        match e {
            MapToError::FrameAllocationFailed => MapError::OutOfFrames,
            MapToError::ParentEntryHugePage => MapError::HugePage,
            MapToError::PageAlreadyMapped(_) => MapError::AlreadyMapped,
        }
    }
}

impl From<UnmapError> for MapError {
    fn from(e: UnmapError) -> Self {
        match e {
            UnmapError::ParentEntryHugePage => MapError::HugePage,
            UnmapError::PageNotMapped | UnmapError::InvalidFrameAddress(_) => MapError::NotMapped,
        }
    }
}

struct KernelSpace {
    table: OffsetPageTable<'static>,
    root: PhysFrame,
    heap_base: u64,
    kstack_base: u64,
    mmio_next: u64,
    mmio_end: u64,
}

static SPACE: Mutex<Option<KernelSpace>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut KernelSpace) -> Result<R, MapError>) -> Result<R, MapError> {
    x86_64::instructions::interrupts::without_interrupts(|| f(SPACE.lock().as_mut().ok_or(MapError::NotInitialised)?))
}

pub fn init(offset: u64) -> Result<(), MapError> {
    let (root, _) = x86_64::registers::control::Cr3::read();
    // SAFETY: CR3 holds the active PML4, which the bootloader built in
    // memory it reserved for us; the offset mapping covers it. This is the
    // only `&mut` to it: all later page-table edits go through SPACE.
    let l4: &'static mut PageTable = unsafe { &mut *(phys::to_virt(root.start_address().as_u64()) as *mut PageTable) };
    let mut free = (256..512).filter(|&i| l4[i].is_unused());
    let heap_slot = free.next().ok_or(MapError::NoFreeSlot)?;
    let mmio_slot = free.next().ok_or(MapError::NoFreeSlot)?;
    let kstack_slot = free.next().ok_or(MapError::NoFreeSlot)?;
    for slot in [heap_slot, mmio_slot, kstack_slot] {
        let pdpt = frames::alloc_zeroed().ok_or(MapError::OutOfFrames)?;
        l4[slot].set_frame(pdpt, PageTableFlags::PRESENT | PageTableFlags::WRITABLE);
    }
    let slot_base = |i: usize| VirtAddr::new_truncate(i as u64 * SLOT_SIZE).as_u64();
    // SAFETY: `l4` is the active PML4 and `offset` maps all physical memory
    // (bootloader `physical_memory` mapping), as OffsetPageTable requires.
    let table = unsafe { OffsetPageTable::new(l4, VirtAddr::new(offset)) };
    *SPACE.lock() = Some(KernelSpace {
        table,
        root,
        heap_base: slot_base(heap_slot),
        kstack_base: slot_base(kstack_slot),
        mmio_next: slot_base(mmio_slot),
        mmio_end: slot_base(mmio_slot) + SLOT_SIZE,
    });
    log::debug!(
        "heap window {:#x}, mmio window {:#x}",
        slot_base(heap_slot),
        slot_base(mmio_slot)
    );
    Ok(())
}

/// Start of the heap's (512 GiB) virtual window.
pub fn heap_window() -> Result<u64, MapError> {
    with(|s| Ok(s.heap_base))
}

/// Start of the kernel stacks' (512 GiB) virtual window.
pub fn kstack_window() -> Result<u64, MapError> {
    with(|s| Ok(s.kstack_base))
}

/// The kernel's PML4 frame (kernel tasks run on it; user address spaces
/// copy its upper half).
pub fn kernel_root() -> Result<PhysFrame, MapError> {
    with(|s| Ok(s.root))
}

/// Maps a fresh zeroed frame at `page`. The frame belongs to the mapping
/// until [`unmap_and_free`].
pub fn map_new(page: Page, flags: Flags) -> Result<MapperFlush<Size4KiB>, MapError> {
    let entry_flags = flags.to_entry_flags()?;
    with(|s| {
        if s.table.translate_page(page).is_ok() {
            return Err(MapError::AlreadyMapped);
        }
        let frame = frames::alloc_zeroed().ok_or(MapError::OutOfFrames)?;
        // SAFETY: the frame is newly allocated and owned by this mapping
        // alone, and the page was unmapped (checked above), so no existing
        // reference is redirected and no memory is aliased.
        let result = unsafe { s.table.map_to(page, frame, entry_flags, &mut PageTableFrames) };
        result.map_err(|e| {
            let _ = frames::free(frame);
            MapError::from(e)
        })
    })
}

/// Unmaps `page` and frees its frame.
///
/// # Safety
/// The page must have been mapped by [`map_new`], and no reference into it
/// may be used afterwards.
pub unsafe fn unmap_and_free(page: Page) -> Result<MapperFlush<Size4KiB>, MapError> {
    with(|s| {
        let (frame, flush) = s.table.unmap(page)?;
        let _ = frames::free(frame);
        Ok(flush)
    })
}

/// Maps `len` bytes of device memory at physical `phys` into the MMIO
/// window, uncached and not executable; returns the virtual address of
/// `phys`.
///
/// # Safety
/// `phys..phys + len` must be device registers (not RAM in use), which the
/// caller then accesses only with volatile operations.
pub unsafe fn map_mmio(phys: u64, len: u64) -> Result<u64, MapError> {
    let flags = (Flags::WRITABLE | Flags::UNCACHED).to_entry_flags()?;
    let end = phys
        .checked_add(len.max(1) - 1)
        .ok_or(MapError::BadPhysicalAddress(phys))?;
    let first = PhysAddr::try_new(phys).map_err(|_| MapError::BadPhysicalAddress(phys))?;
    let last = PhysAddr::try_new(end).map_err(|_| MapError::BadPhysicalAddress(end))?;
    with(|s| {
        let first = PhysFrame::<Size4KiB>::containing_address(first);
        let last = PhysFrame::<Size4KiB>::containing_address(last);
        let pages = (last.start_address() - first.start_address()) / Size4KiB::SIZE + 1;
        let base = s.mmio_next;
        if base + pages * Size4KiB::SIZE > s.mmio_end {
            return Err(MapError::WindowFull);
        }
        for (i, frame) in PhysFrame::range_inclusive(first, last).enumerate() {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(base + i as u64 * Size4KiB::SIZE));
            // SAFETY: the page is fresh in our own MMIO window (bump-allocated,
            // never reused) and the frame is device memory (caller's promise),
            // so no RAM is aliased with a different cache type.
            unsafe { s.table.map_to(page, frame, flags, &mut PageTableFrames) }?.flush();
        }
        s.mmio_next += pages * Size4KiB::SIZE;
        Ok(base + (phys - first.start_address().as_u64()))
    })
}

/// The physical address `virt` maps to.
pub fn translate(virt: u64) -> Option<u64> {
    let addr = VirtAddr::try_new(virt).ok()?;
    with(|s| Ok(s.table.translate_addr(addr)))
        .ok()
        .flatten()
        .map(|p| p.as_u64())
}

/// The entry flags of the 4 KiB mapping holding `virt`.
pub fn entry_flags(virt: u64) -> Option<PageTableFlags> {
    let addr = VirtAddr::try_new(virt).ok()?;
    with(|s| match s.table.translate(addr) {
        TranslateResult::Mapped { flags, .. } => Ok(Some(flags)),
        _ => Ok(None),
    })
    .ok()?
}
