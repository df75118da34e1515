//! User address spaces: each process has its own tables for the lower half
//! (PML4 entries 0..256). CR3 never changes: it always holds the kernel's
//! PML4, and a switch to another process *installs* that process's lower
//! half into it (copies its few PML4 entries) instead of loading a new CR3.
//! Under TCG a CR3 write flushes QEMU's whole soft TLB and jump cache, and
//! refilling them for the kernel's own pages was most of a context switch
//! (docs/benchmarks.md); so the kernel's translations stay, and only the
//! outgoing process's pages that the CPU actually used (accessed bit set)
//! are invalidated, one `invlpg` each, clearing the bit. The invariant:
//! every cached translation of a user page has its PTE's accessed bit set
//! (the walk that cached it set it), so after `retire` none is left.
//! User pages are mapped with the USER bit at every level and the paging
//! flags `Flags` allow (never writable and executable).
//!
//! The kernel reads and writes user memory only through the physical-memory
//! window, after checking each page's flags in the process's own tables: it
//! never dereferences a user address, so SMAP needs no exceptions and a
//! user pointer cannot reach kernel memory.

use spin::Mutex;
use x86_64::instructions::tlb;
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

/// Frames user mappings may never take (16 MiB): the kernel's heap, task
/// stacks and page tables still have room when processes exhaust memory,
/// so a process that maps all it can gets `NoMemory`, not a kernel panic.
pub const KERNEL_RESERVE_FRAMES: u64 = 4096;

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

/// `OutOfFrames` when taking a frame would eat into the kernel's reserve
/// (after asking the page cache for memory back).
fn reserve_kept() -> Result<(), MapError> {
    if frames::stats().free <= KERNEL_RESERVE_FRAMES && frames::reclaim(1024) == 0 {
        return Err(MapError::OutOfFrames);
    }
    if frames::stats().free <= KERNEL_RESERVE_FRAMES {
        return Err(MapError::OutOfFrames);
    }
    Ok(())
}

/// A page taken out of (or found in) a space by [`AddressSpace::unmap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unmapped {
    pub phys: u64,
    pub owned: bool,
    pub writable: bool,
}

pub struct AddressSpace {
    /// This space's own PML4; only its lower half is used (as the template
    /// `install` copies from).
    root: PhysFrame,
    /// Which lower-half PML4 entries are in use (bit i = entry i).
    slots: [u64; 4],
    /// Where pages are mapped, as page ranges: what `retire` looks at.
    ranges: Ranges,
}

/// The mapped page ranges of a space `[start, end)`, kept short by
/// extending the last range when the next page follows it (segments, the
/// stack and the heap are mapped in order). Past `RANGES`, `all` is set and
/// `retire` scans whole tables instead.
#[derive(Clone, Debug, Default)]
struct Ranges {
    list: heapless::Vec<(u64, u64), RANGES>,
    all: bool,
}

const RANGES: usize = 16;

impl Ranges {
    fn add_page(&mut self, va: u64) {
        if let Some(last) = self.list.last_mut()
            && last.1 == va
        {
            last.1 += PAGE;
            return;
        }
        if self.list.push((va, va + PAGE)).is_err() {
            self.all = true;
        }
    }
}

/// The space whose lower half is installed in the kernel's PML4 now.
struct Installed {
    root: Option<PhysFrame>,
    slots: [u64; 4],
    ranges: Ranges,
}

static INSTALLED: Mutex<Installed> = Mutex::new(Installed {
    root: None,
    slots: [0; 4],
    ranges: Ranges {
        list: heapless::Vec::new(),
        all: false,
    },
});

fn slot_of(va: u64) -> usize {
    ((va >> 39) & 0x1ff) as usize
}

fn table_at(frame: PhysFrame) -> *mut PageTable {
    phys::to_virt(frame.start_address().as_u64()) as *mut PageTable
}

impl AddressSpace {
    /// An empty lower half.
    pub fn new() -> Result<Self, MapError> {
        let root = frames::alloc_zeroed().ok_or(MapError::OutOfFrames)?;
        Ok(AddressSpace {
            root,
            slots: [0; 4],
            ranges: Ranges::default(),
        })
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
        reserve_kept()?;
        let frame = frames::alloc_zeroed().ok_or(MapError::OutOfFrames)?;
        self.map_frame(va, frame, flags, true).inspect_err(|_| {
            let _ = frames::free(frame);
        })
    }

    /// Maps a fresh frame holding a copy of the page at physical `src` (a
    /// private mapping's write to a page of the cache).
    pub fn map_copy(&mut self, va: u64, src: u64, flags: Flags) -> Result<(), MapError> {
        reserve_kept()?;
        let frame = frames::alloc_contiguous(1).ok_or(MapError::OutOfFrames)?;
        // SAFETY: the new frame is ours alone; `src` is a whole page of RAM
        // (a cache page) seen through the physical window; no overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(
                phys::to_virt(src) as *const u8,
                phys::to_virt(frame) as *mut u8,
                PAGE as usize,
            )
        };
        let frame = PhysFrame::containing_address(PhysAddr::new(frame));
        self.map_frame(va, frame, flags, true).inspect_err(|_| {
            let _ = frames::free(frame);
        })
    }

    /// Maps the frame at physical `phys` at the page `va` for ring 3 without
    /// owning it: it is not freed with the space (a page of the page cache,
    /// pinned by the mapping that borrowed it).
    pub fn map_borrowed(&mut self, va: u64, phys: u64, flags: Flags) -> Result<(), MapError> {
        self.map_frame(va, PhysFrame::containing_address(PhysAddr::new(phys)), flags, false)
    }

    fn map_frame(&mut self, va: u64, frame: PhysFrame, flags: Flags, owned: bool) -> Result<(), MapError> {
        if !(USER_START..USER_END).contains(&va) || !va.is_multiple_of(PAGE) {
            return Err(MapError::NotMapped);
        }
        let mut entry = (flags | Flags::USER).to_entry_flags()?;
        if owned {
            entry |= OWNED;
        }
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
        self.with_table(|t| {
            // SAFETY: the frame is the mapping's (fresh, or a pinned cache
            // page); the page is in the user half, where user code holds no
            // Rust references.
            match unsafe { t.map_to_with_table_flags(page, frame, entry, TABLE_FLAGS, &mut PageTableFrames) } {
                // A new mapping of an unmapped page needs no flush (SDM Vol.
                // 3A §4.10.4.3: not-present entries are not cached).
                Ok(flush) => {
                    flush.ignore();
                    Ok(())
                }
                Err(e) => Err(MapError::from(e)),
            }
        })?;
        self.ranges.add_page(va);
        let slot = slot_of(va);
        let new_slot = self.slots[slot / 64] & (1 << (slot % 64)) == 0;
        self.slots[slot / 64] |= 1 << (slot % 64);
        let mut inst = INSTALLED.lock();
        if inst.root == Some(self.root) {
            inst.ranges = self.ranges.clone();
            // A new top-level entry while installed: the kernel's PML4 needs
            // it too (the tables below are shared, so deeper ones do not).
            if new_slot {
                copy_slot(self.root, slot);
                inst.slots[slot / 64] |= 1 << (slot % 64);
            }
        }
        Ok(())
    }

    /// Unmaps the page `va`: its frame and whether it was writable, or
    /// `None` if nothing was mapped there. A frame the space owned is freed
    /// (the caller gets `owned: true` and must not use it); a borrowed one
    /// is the lender's again.
    pub fn unmap(&mut self, va: u64) -> Option<Unmapped> {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::try_new(va).ok()?);
        let (phys, flags) = self.lookup(va)?;
        let owned = flags.contains(OWNED);
        self.with_table(|t| t.unmap(page).map(|(_, flush)| flush.ignore()))
            .ok()?;
        if INSTALLED.lock().root == Some(self.root) {
            tlb::flush(VirtAddr::new(va));
        }
        if owned {
            let _ = frames::free(PhysFrame::containing_address(PhysAddr::new(phys)));
        }
        Some(Unmapped {
            phys,
            owned,
            writable: flags.contains(PageTableFlags::WRITABLE),
        })
    }

    /// What is mapped at the page `va`: its frame, whether it is writable
    /// and whether the space owns it.
    pub fn mapped(&mut self, va: u64) -> Option<Unmapped> {
        self.lookup(va).map(|(phys, flags)| Unmapped {
            phys,
            owned: flags.contains(OWNED),
            writable: flags.contains(PageTableFlags::WRITABLE),
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
        let mut walk = Walk::new(self.root);
        let mut page = va & !(PAGE - 1);
        while page < end {
            match walk.pte(page) {
                Some((_, flags)) if flags.contains(need) => {}
                _ => return Err(AccessError::NotMapped),
            }
            page += PAGE;
        }
        let mut at = va;
        let mut done = 0usize;
        while at < end {
            let in_page = ((PAGE - at % PAGE) as usize).min((end - at) as usize);
            let (frame, _) = walk.pte(at).ok_or(AccessError::NotMapped)?;
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

    /// Makes this the user half the CPU sees (one CPU; interrupts off).
    /// A space already installed costs nothing, so a process that sleeps
    /// and wakes (or yields to kernel tasks) keeps its translations.
    pub fn install(&self) {
        let mut inst = INSTALLED.lock();
        if inst.root == Some(self.root) {
            return;
        }
        if let Some(old) = inst.root {
            retire(old, inst.slots, &inst.ranges);
        }
        let mut slots = inst.slots;
        for (w, word) in slots.iter_mut().enumerate() {
            *word |= self.slots[w];
        }
        for_each_slot(slots, |slot| copy_slot(self.root, slot));
        // Changed top-level entries: one invlpg also drops every cached
        // paging-structure entry (SDM Vol. 3A §4.10.4.1, INVLPG).
        tlb::flush(VirtAddr::new(USER_START));
        inst.root = Some(self.root);
        inst.slots = self.slots;
        inst.ranges = self.ranges.clone();
    }

    /// Takes this space out of the kernel's PML4 if it is installed.
    fn uninstall(&self) {
        let mut inst = INSTALLED.lock();
        if inst.root != Some(self.root) {
            return;
        }
        retire(self.root, inst.slots, &inst.ranges);
        for_each_slot(inst.slots, |slot| {
            if let Ok(k) = super::paging::kernel_root() {
                // SAFETY: the kernel's PML4 is live and reachable through the
                // physical window; its lower half belongs to the installed
                // space, which is being taken out.
                unsafe { (&mut *table_at(k))[slot].set_unused() };
            }
        });
        tlb::flush(VirtAddr::new(USER_START));
        inst.root = None;
        inst.slots = [0; 4];
        inst.ranges = Ranges::default();
    }
}

fn for_each_slot(slots: [u64; 4], mut f: impl FnMut(usize)) {
    for (w, &word) in slots.iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            f(w * 64 + b);
        }
    }
}

/// Copies entry `slot` of the space `from` into the kernel's PML4.
fn copy_slot(from: PhysFrame, slot: usize) {
    if let Ok(k) = super::paging::kernel_root() {
        // SAFETY: both are page tables reachable through the physical window;
        // only lower-half entries of the kernel's PML4 change, which belong to
        // user spaces (the kernel maps nothing there after `init_shared`).
        unsafe {
            let entry = (&*table_at(from))[slot].clone();
            (&mut *table_at(k))[slot] = entry;
        }
    }
}

/// Invalidates every translation the CPU may hold for the space `root`:
/// each mapped page whose PTE has the accessed bit set gets the bit
/// cleared and an `invlpg`. Only PTEs are looked at (upper-level accessed
/// bits are not relied on), along the space's mapped ranges, so the cost
/// follows what the process maps, not the size of its tables.
fn retire(root: PhysFrame, slots: [u64; 4], ranges: &Ranges) {
    if ranges.all {
        return retire_everything(root, slots);
    }
    for &(start, end) in &ranges.list {
        let mut va = start;
        while va < end {
            // One page table covers 2 MiB: walk to it once per chunk.
            let chunk_end = ((va | 0x1f_ffff) + 1).min(end);
            if let Some(pt) = leaf_table(root, va) {
                // SAFETY: a page table of the space being retired, through the
                // physical window; only accessed bits change (interrupts off,
                // one CPU).
                let l1 = unsafe { &mut *table_at(pt) };
                while va < chunk_end {
                    let e = &mut l1[((va >> 12) & 0x1ff) as usize];
                    let flags = e.flags();
                    if flags.contains(PageTableFlags::PRESENT | PageTableFlags::ACCESSED) {
                        e.set_flags(flags - PageTableFlags::ACCESSED);
                        tlb::flush(VirtAddr::new(va));
                    }
                    va += PAGE;
                }
            }
            va = chunk_end;
        }
    }
}

/// Page-table lookups along a range: the leaf table of the last 2 MiB is
/// kept, so the next page costs an index, not a walk (a 1 MiB read() into
/// a user buffer looked its 256 pages up twice, each a four-level walk:
/// under TCG, a fifth of the copy's time).
struct Walk {
    root: PhysFrame,
    cached: Option<(u64, PhysFrame)>,
}

impl Walk {
    fn new(root: PhysFrame) -> Walk {
        Walk { root, cached: None }
    }

    /// The frame and flags of the present page at `va`.
    fn pte(&mut self, va: u64) -> Option<(u64, PageTableFlags)> {
        let region = va & !0x1f_ffff;
        let pt = match self.cached {
            Some((r, pt)) if r == region => pt,
            _ => {
                let pt = leaf_table(self.root, va)?;
                self.cached = Some((region, pt));
                pt
            }
        };
        // SAFETY: a page table of this space (found by `leaf_table`), read
        // through the physical window while the space is borrowed mutably
        // by the caller, so no one changes it meanwhile.
        let e = &unsafe { &*table_at(pt) }[((va >> 12) & 0x1ff) as usize];
        let flags = e.flags();
        flags
            .contains(PageTableFlags::PRESENT)
            .then(|| (e.addr().as_u64(), flags))
    }
}

/// The page table (level 1) that maps `va` in the space `root`.
fn leaf_table(root: PhysFrame, va: u64) -> Option<PhysFrame> {
    let mut table = root;
    for shift in [39u64, 30, 21] {
        // SAFETY: a page table of a user space, read through the physical
        // window.
        let t = unsafe { &*table_at(table) };
        let e = &t[((va >> shift) & 0x1ff) as usize];
        if !e.flags().contains(PageTableFlags::PRESENT) || e.flags().contains(PageTableFlags::HUGE_PAGE) {
            return None;
        }
        table = PhysFrame::containing_address(e.addr());
    }
    Some(table)
}

/// [`retire`] for a space with too many ranges: every present PTE.
fn retire_everything(root: PhysFrame, slots: [u64; 4]) {
    for_each_slot(slots, |l4i| {
        // SAFETY: the tables belong to the space being retired, are reachable
        // through the physical window, and only their accessed bits change,
        // with interrupts off on the one CPU.
        let l4 = unsafe { &mut *table_at(root) };
        let e4 = &l4[l4i];
        if !e4.flags().contains(PageTableFlags::PRESENT) {
            return;
        }
        // SAFETY: as above (a PDPT of that space).
        let l3 = unsafe { &mut *table_at(PhysFrame::containing_address(e4.addr())) };
        for (l3i, e3) in l3.iter().enumerate() {
            if !e3.flags().contains(PageTableFlags::PRESENT) {
                continue;
            }
            // SAFETY: as above (a page directory of that space).
            let l2 = unsafe { &mut *table_at(PhysFrame::containing_address(e3.addr())) };
            for (l2i, e2) in l2.iter().enumerate() {
                if !e2.flags().contains(PageTableFlags::PRESENT) {
                    continue;
                }
                // SAFETY: as above (a page table of that space).
                let l1 = unsafe { &mut *table_at(PhysFrame::containing_address(e2.addr())) };
                for (l1i, e1) in l1.iter_mut().enumerate() {
                    let flags = e1.flags();
                    if flags.contains(PageTableFlags::PRESENT | PageTableFlags::ACCESSED) {
                        e1.set_flags(flags - PageTableFlags::ACCESSED);
                        let va =
                            ((l4i as u64) << 39) | ((l3i as u64) << 30) | ((l2i as u64) << 21) | ((l1i as u64) << 12);
                        tlb::flush(VirtAddr::new(va));
                    }
                }
            }
        }
    });
}

/// Clears what the bootloader left in the lower half of the kernel's PML4
/// (its identity-mapped hand-over code), which from now on holds the
/// installed process's entries. Call once, before the first process.
pub fn init_shared() {
    if let Ok(k) = super::paging::kernel_root() {
        // SAFETY: the kernel runs entirely in the upper half (the bootloader
        // was told to map everything there, `dynamic_range_start`); nothing
        // it uses lives in the lower half, which is unlinked (not freed: its
        // frames are the bootloader's).
        let l4 = unsafe { &mut *table_at(k) };
        for i in 0..256 {
            l4[i].set_unused();
        }
        tlb::flush_all();
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
    /// Takes the space out of the kernel's PML4 if it is there, then frees
    /// every frame of its lower half and its tables.
    fn drop(&mut self) {
        self.uninstall();
        // SAFETY: as in `free_tree`: the space is not installed any more.
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
