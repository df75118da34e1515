//! User address spaces: one PML4 per process whose lower half (entries
//! 0..256) belongs to the process and whose upper half is the kernel's,
//! shared (the entries are copied; the tables below them are common, see
//! `paging`). User pages are mapped with the USER bit at every level and
//! the paging flags `Flags` allow (never writable and executable).
//!
//! The kernel reads and writes user memory only through the physical-memory
//! window, after checking each page's flags in the process's own tables: it
//! never dereferences a user address, so SMAP needs no exceptions and a
//! user pointer cannot reach kernel memory.

use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::mapper::TranslateResult;
use x86_64::structures::paging::{
    Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

use super::frames::{self, PageTableFrames};
use super::paging::{Flags, MapError};
use super::phys;

pub const PAGE: u64 = 4096;
/// User addresses are `USER_START..USER_END`. The last page below the
/// canonical hole is never mapped: a `syscall` at its very end would return
/// (through `sysretq`) to a non-canonical address, which faults in ring 0
/// (Intel SDM Vol. 2B SYSRET).
pub const USER_START: u64 = 0x1000;
pub const USER_END: u64 = 0x0000_7fff_ffff_f000;

/// Software bit (SDM Vol. 3A Table 4-19, bits 9-11 ignored): the frame
/// belongs to this address space and is freed with it.
const OWNED: PageTableFlags = PageTableFlags::BIT_9;
/// Flags of the intermediate tables in the user half: the leaf decides.
const TABLE_FLAGS: PageTableFlags = PageTableFlags::PRESENT
    .union(PageTableFlags::WRITABLE)
    .union(PageTableFlags::USER_ACCESSIBLE);

/// Why a user memory access was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessError {
    /// Outside the user range, or wrapping around.
    OutOfRange,
    /// A page is not mapped, or not for ring 3, or not writable (writes).
    NotMapped,
}

pub struct AddressSpace {
    root: PhysFrame,
}

fn table_at(frame: PhysFrame) -> *mut PageTable {
    phys::to_virt(frame.start_address().as_u64()) as *mut PageTable
}

impl AddressSpace {
    /// An empty lower half with the kernel's upper half.
    pub fn new() -> Result<Self, MapError> {
        let kernel = super::paging::kernel_root()?;
        let root = frames::alloc_zeroed().ok_or(MapError::OutOfFrames)?;
        // SAFETY: both frames hold page tables (the kernel's live PML4 and a
        // fresh zeroed frame) and the physical window maps them; we only
        // read the kernel's and write the new one, which nothing else uses.
        unsafe {
            let (src, dst) = (&*table_at(kernel), &mut *table_at(root));
            for i in 256..512 {
                dst[i] = src[i].clone();
            }
        }
        Ok(AddressSpace { root })
    }

    fn with_table<R>(&mut self, f: impl FnOnce(&mut OffsetPageTable<'_>) -> R) -> R {
        // SAFETY: `root` is this space's PML4, reachable through the physical
        // window at `phys::offset()`; `&mut self` makes this the only
        // reference to it for the closure's duration (the CPU may walk it
        // concurrently, which page-table edits allow).
        let mut table = unsafe { OffsetPageTable::new(&mut *table_at(self.root), VirtAddr::new(phys::offset())) };
        f(&mut table)
    }

    /// Maps a fresh zeroed frame at the page `va` for ring 3.
    pub fn map_zeroed(&mut self, va: u64, flags: Flags) -> Result<(), MapError> {
        if !(USER_START..USER_END).contains(&va) || !va.is_multiple_of(PAGE) {
            return Err(MapError::NotMapped);
        }
        let entry = (flags | Flags::USER).to_entry_flags()? | OWNED;
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
        let frame = frames::alloc_zeroed().ok_or(MapError::OutOfFrames)?;
        self.with_table(|t| {
            // SAFETY: the frame is fresh and owned by this mapping only; the
            // page is in the user half of a space that is not yet running
            // code that could hold references into it (and user code holds
            // no Rust references at all).
            match unsafe { t.map_to_with_table_flags(page, frame, entry, TABLE_FLAGS, &mut PageTableFrames) } {
                // Not the active table (or, when it is, a new mapping of an
                // unmapped page needs no flush: SDM Vol. 3A §4.10.4.3).
                Ok(flush) => {
                    flush.ignore();
                    Ok(())
                }
                Err(e) => {
                    let _ = frames::free(frame);
                    Err(MapError::from(e))
                }
            }
        })
    }

    /// The frame and flags of the page holding `va`.
    fn lookup(&mut self, va: u64) -> Option<(u64, PageTableFlags)> {
        let addr = VirtAddr::try_new(va).ok()?;
        self.with_table(|t| match t.translate(addr) {
            TranslateResult::Mapped { frame, flags, .. } => Some((frame.start_address().as_u64(), flags)),
            _ => None,
        })
    }

    /// Checks that `va..va+len` is user memory mapped for ring 3 (and
    /// writable if `write`), then runs `f` on each piece as a kernel slice
    /// through the physical window, in address order.
    fn each_piece(
        &mut self,
        va: u64,
        len: usize,
        write: bool,
        mut f: impl FnMut(*mut u8, usize, usize),
    ) -> Result<(), AccessError> {
        // An empty range touches nothing: valid wherever it points.
        if len == 0 {
            return Ok(());
        }
        let end = va.checked_add(len as u64).ok_or(AccessError::OutOfRange)?;
        if va < USER_START || end > USER_END {
            return Err(AccessError::OutOfRange);
        }
        let mut need = PageTableFlags::PRESENT | PageTableFlags::USER_ACCESSIBLE;
        if write {
            need |= PageTableFlags::WRITABLE;
        }
        // Check every page first, so a refused access changes nothing.
        let mut page = va & !(PAGE - 1);
        while page < end {
            match self.lookup(page) {
                Some((_, flags)) if flags.contains(need) => {}
                _ => return Err(AccessError::NotMapped),
            }
            page += PAGE;
        }
        let mut at = va;
        let mut done = 0usize;
        while at < end {
            let in_page = ((PAGE - at % PAGE) as usize).min((end - at) as usize);
            let (frame, _) = self.lookup(at).ok_or(AccessError::NotMapped)?;
            f(phys::to_virt(frame + at % PAGE) as *mut u8, done, in_page);
            at += in_page as u64;
            done += in_page;
        }
        Ok(())
    }

    /// Whether `va..va+len` is ring-3 memory (writable too if `write`).
    pub fn check(&mut self, va: u64, len: usize, write: bool) -> Result<(), AccessError> {
        self.each_piece(va, len, write, |_, _, _| {})
    }

    /// Copies user memory at `va` into `dst`.
    pub fn read(&mut self, va: u64, dst: &mut [u8]) -> Result<(), AccessError> {
        let len = dst.len();
        self.each_piece(va, len, false, |src, at, n| {
            // SAFETY: `src..src+n` is inside one mapped user frame (checked by
            // `each_piece`), seen through the physical window; `at + n <= len`.
            unsafe { core::ptr::copy_nonoverlapping(src, dst.as_mut_ptr().add(at), n) }
        })
    }

    /// Copies `src` into user memory at `va` (which must be writable for ring 3).
    pub fn write(&mut self, va: u64, src: &[u8]) -> Result<(), AccessError> {
        self.each_piece(va, src.len(), true, |dst, at, n| {
            // SAFETY: as in `read`, with the page checked writable for ring 3;
            // the frame belongs to the process, not to any kernel object.
            unsafe { core::ptr::copy_nonoverlapping(src.as_ptr().add(at), dst, n) }
        })
    }

    /// Copies `src` into memory this space maps at `va` whatever its flags
    /// (loading a program's read-only and executable segments).
    pub fn fill(&mut self, va: u64, src: &[u8]) -> Result<(), AccessError> {
        let end = va.checked_add(src.len() as u64).ok_or(AccessError::OutOfRange)?;
        if va < USER_START || end > USER_END {
            return Err(AccessError::OutOfRange);
        }
        let mut at = va;
        let mut done = 0usize;
        while at < end {
            let n = ((PAGE - at % PAGE) as usize).min((end - at) as usize);
            let (frame, _) = self.lookup(at).ok_or(AccessError::NotMapped)?;
            let dst = phys::to_virt(frame + at % PAGE) as *mut u8;
            // SAFETY: `dst..dst+n` lies in one frame owned by this space (it
            // maps it in the user half), seen through the physical window.
            unsafe { core::ptr::copy_nonoverlapping(src.as_ptr().add(done), dst, n) };
            at += n as u64;
            done += n;
        }
        Ok(())
    }

    /// Makes this space the active one.
    pub fn activate(&self) {
        let (current, _) = Cr3::read();
        if current != self.root {
            // SAFETY: the PML4 maps the kernel's upper half exactly as the
            // kernel's own does, so the running kernel code, stack and data
            // stay mapped across the switch.
            unsafe { Cr3::write(self.root, Cr3Flags::empty()) };
        }
    }
}

/// Switches to the kernel's own page table (for kernel tasks).
pub fn activate_kernel() {
    if let Ok(root) = super::paging::kernel_root() {
        let (current, _) = Cr3::read();
        if current != root {
            // SAFETY: the kernel's PML4 maps everything the kernel uses.
            unsafe { Cr3::write(root, Cr3Flags::empty()) };
        }
    }
}

/// Frees the frames owned by a table tree below `frame` (level 3 = PDPT).
fn free_tree(frame: PhysFrame, level: u8) {
    // SAFETY: `frame` is a page table of a user half being torn down: no CPU
    // uses it (the space is not active) and nothing else refers to it.
    let table = unsafe { &mut *table_at(frame) };
    for entry in table.iter_mut() {
        if entry.is_unused() || !entry.flags().contains(PageTableFlags::PRESENT) {
            continue;
        }
        let child = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(entry.addr().as_u64()));
        if level > 1 {
            free_tree(child, level - 1);
        } else if entry.flags().contains(OWNED) {
            let _ = frames::free(child);
        }
        entry.set_unused();
    }
    let _ = frames::free(frame);
}

impl Drop for AddressSpace {
    /// Frees every frame of the user half and the tables. The space must not
    /// be active (the scheduler drops a dead process's space only after it
    /// switched away from it).
    fn drop(&mut self) {
        let (current, _) = Cr3::read();
        if current == self.root {
            activate_kernel();
        }
        // SAFETY: as in `free_tree`: the space is inactive and being dropped.
        let root = unsafe { &mut *table_at(self.root) };
        for i in 0..256 {
            let entry = &mut root[i];
            if entry.flags().contains(PageTableFlags::PRESENT) {
                free_tree(PhysFrame::containing_address(entry.addr()), 3);
                entry.set_unused();
            }
        }
        let _ = frames::free(self.root);
    }
}
