//! The global physical frame allocator: a `kcore::frames::FrameBitmap`
//! whose storage is carved out of usable RAM at boot.

use kcore::frames::{FRAME_SIZE, FrameBitmap, FrameStats, Layout, PREFERRED_START, Region};
use spin::Mutex;
use x86_64::PhysAddr;
use x86_64::structures::paging::{FrameAllocator, PhysFrame, Size4KiB};

use super::{InitError, phys};

static FRAMES: Mutex<Option<FrameBitmap<'static>>> = Mutex::new(None);

pub fn init<I: Iterator<Item = Region> + Clone>(usable: impl Fn() -> I) -> Result<(), InitError> {
    let layout = Layout::for_regions(usable()).map_err(InitError::Frames)?;
    let bytes = layout.bytes().next_multiple_of(FRAME_SIZE);
    // Like allocation, prefer memory above PREFERRED_START (see there).
    let fits = |r: &Region| r.end.saturating_sub(r.start) >= bytes;
    let aligned = || usable().map(|r| Region::new(r.start.next_multiple_of(FRAME_SIZE), r.end));
    let high = aligned()
        .map(|r| Region::new(r.start.max(PREFERRED_START), r.end))
        .find(fits);
    let home = high.or_else(|| aligned().find(fits)).ok_or(InitError::NoBitmapSpace)?;
    // SAFETY: `home.start..home.start + bytes` is usable RAM (from the
    // memory map) that nothing has claimed yet: the allocator that would
    // hand it out is the one being built, and it reserves the range below
    // before giving out any frame. The offset mapping covers all RAM, and
    // the start is page-aligned, so the u64 slice is aligned and in bounds.
    let storage = unsafe { core::slice::from_raw_parts_mut(phys::to_virt(home.start) as *mut u64, layout.words) };
    let mut bitmap = FrameBitmap::new(storage, usable()).map_err(InitError::Frames)?;
    bitmap.reserve(home.start, home.start + bytes);
    // Physical page 0 is never handed out: device drivers (virtio-drivers)
    // and null checks take address 0 for "none".
    bitmap.reserve(0, FRAME_SIZE);
    *FRAMES.lock() = Some(bitmap);
    Ok(())
}

/// Writes to free frames, a few at a time, in the idle loop: the host backs
/// a guest page with memory at its first write, and under TCG on these
/// machines that costs microseconds a page, paid by the first device read
/// into it (a page cache filling 256 MiB of fresh memory ran at a third of
/// its speed on warm memory: docs/benchmarks.md, "Files"). Free frames'
/// contents are nobody's, so a zero in their first word harms nothing.
///
/// The host's first write to a 2 MiB stretch of guest memory stalls the
/// whole virtual CPU for about 5 ms on these machines (it backs guest RAM
/// with transparent huge pages), and nothing in the guest runs meanwhile:
/// while warming lasts (about 1.5 s after boot with 512 MiB), a wakeup can
/// be that late. [`warming`] says whether it is still going on.
pub struct Warmer {
    next: u64,
    touched: u64,
}

/// True until the idle loop has touched every free frame once.
static WARMING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(true);

/// Whether free memory is still being warmed (see [`Warmer`]).
pub fn warming() -> bool {
    WARMING.load(core::sync::atomic::Ordering::Relaxed)
}

impl Warmer {
    pub const fn new() -> Warmer {
        Warmer { next: 0, touched: 0 }
    }

    /// Frames touched so far.
    pub fn touched(&self) -> u64 {
        self.touched
    }

    /// Touches the next free frame; false once every frame has been passed
    /// (frames freed later were touched by their last owner). One frame a
    /// call: interrupts are off meanwhile, so a task made ready waits for
    /// one write (16 at a time, a wakeup could wait 0.2 ms and more).
    pub fn step(&mut self) -> bool {
        let next = with(|b| {
            let (addr, i) = b.next_free(self.next)?;
            // SAFETY: the frame is free (the bitmap, under its lock, with
            // interrupts off: nothing allocates it meanwhile), so no one
            // holds or reads it; the offset mapping covers all RAM.
            unsafe { (phys::to_virt(addr) as *mut u64).write_volatile(0) };
            Some(i + 1)
        })
        .flatten();
        match next {
            Some(at) => {
                self.next = at;
                self.touched += 1;
                true
            }
            None => {
                WARMING.store(false, core::sync::atomic::Ordering::Relaxed);
                false
            }
        }
    }
}

/// Gives memory back under pressure (the page cache's clean folios):
/// asked for at least `frames`, it returns how many it freed.
pub type Reclaim = fn(frames: u64) -> u64;

static RECLAIM: spin::Once<Reclaim> = spin::Once::new();

pub fn set_reclaim(f: Reclaim) {
    RECLAIM.call_once(|| f);
}

/// Asks the reclaimer for `frames` (0 if there is none, or it is busy).
pub fn reclaim(frames: u64) -> u64 {
    RECLAIM.get().map_or(0, |f| f(frames))
}

/// `alloc`, and once more after a reclaim of `want` frames if it failed.
fn alloc_or_reclaim(want: u64, alloc: impl Fn(&mut FrameBitmap<'static>) -> Option<u64>) -> Option<u64> {
    match with(&alloc)? {
        Some(a) => Some(a),
        None if reclaim(want) > 0 => with(&alloc)?,
        None => None,
    }
}

fn with<R>(f: impl FnOnce(&mut FrameBitmap<'static>) -> R) -> Option<R> {
    x86_64::instructions::interrupts::without_interrupts(|| FRAMES.lock().as_mut().map(f))
}

pub fn stats() -> FrameStats {
    with(|b| b.stats()).unwrap_or_default()
}

/// One frame, zero-filled.
pub fn alloc_zeroed() -> Option<PhysFrame> {
    let addr = alloc_or_reclaim(256, |b| b.alloc())?;
    let words = phys::to_virt(addr) as *mut u64;
    for i in 0..(FRAME_SIZE / 8) as usize {
        // SAFETY: the frame was just allocated, so nothing else refers to
        // it, and the offset mapping covers all RAM. (Word stores: under
        // TCG the `rep stos` that `write_bytes` becomes is far slower.)
        unsafe { words.add(i).write_volatile(0) };
    }
    Some(PhysFrame::containing_address(PhysAddr::new(addr)))
}

/// `count` physically contiguous frames, zero-filled (DMA buffers); the
/// first one's physical address.
pub fn alloc_contiguous_zeroed(count: u64) -> Option<u64> {
    let addr = alloc_or_reclaim(count + 256, |b| b.alloc_contiguous(count, 1))?;
    let words = phys::to_virt(addr) as *mut u64;
    for i in 0..(count * FRAME_SIZE / 8) as usize {
        // SAFETY: the frames were just allocated, so nothing else refers to
        // them, and the offset mapping covers all RAM.
        unsafe { words.add(i).write_volatile(0) };
    }
    Some(addr)
}

/// `count` physically contiguous frames, not cleared: for buffers a device
/// fills before anyone reads them (zeroing 16 MiB costs tens of ms under
/// TCG). The first one's physical address.
pub fn alloc_contiguous(count: u64) -> Option<u64> {
    alloc_or_reclaim(count + 256, |b| b.alloc_contiguous(count, 1))
}

/// Returns `count` frames from [`alloc_contiguous_zeroed`] or
/// [`alloc_contiguous`] at `addr`.
pub fn free_contiguous(addr: u64, count: u64) {
    for i in 0..count {
        let _ = with(|b| b.free(addr + i * FRAME_SIZE));
    }
}

/// Returns a frame obtained from this module.
pub fn free(frame: PhysFrame) -> Result<(), kcore::frames::FrameError> {
    with(|b| b.free(frame.start_address().as_u64())).unwrap_or(Ok(()))
}

pub fn is_used(frame: PhysFrame) -> Option<bool> {
    with(|b| b.is_used(frame.start_address().as_u64())).flatten()
}

/// Feeds page-table frames to the `x86_64` mapper.
pub struct PageTableFrames;

// SAFETY: every frame returned is freshly allocated from the bitmap (so
// unused elsewhere) and zeroed, as a new page table requires.
unsafe impl FrameAllocator<Size4KiB> for PageTableFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        alloc_zeroed()
    }
}
