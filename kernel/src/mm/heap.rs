//! The kernel heap: `linked_list_allocator` over a virtual window that is
//! mapped on demand. It starts at 64 KiB and grows (a whole number of pages,
//! at least 1 MiB at a time) up to half of usable RAM. An allocation that
//! cannot be met is logged with the heap's state and returns null, which
//! `alloc` turns into a reported panic (or an `Err` for `try_reserve`).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use linked_list_allocator::Heap;
use spin::Mutex;
use x86_64::VirtAddr;
use x86_64::structures::paging::{Page, Size4KiB};

use super::frames;
use super::paging::{self, Flags, MapError};

const PAGE: u64 = 4096;
const INITIAL: u64 = 64 << 10;
const GROW_MIN: u64 = 1 << 20;

struct State {
    heap: Heap,
    base: u64,
    /// Bytes mapped from `base`.
    mapped: u64,
    limit: u64,
}

static STATE: Mutex<State> = Mutex::new(State {
    heap: Heap::empty(),
    base: 0,
    mapped: 0,
    limit: 0,
});

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    pub size: u64,
    pub used: u64,
    pub free: u64,
    pub limit: u64,
}

impl State {
    /// Maps up to `bytes` more; returns how many were mapped.
    fn map_more(&mut self, bytes: u64) -> Result<u64, MapError> {
        let want = bytes.min(self.limit - self.mapped);
        let mut done = 0;
        while done < want {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(self.base + self.mapped + done));
            match paging::map_new(page, Flags::WRITABLE) {
                Ok(flush) => flush.flush(),
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
            done += PAGE;
        }
        Ok(done)
    }

    fn grow(&mut self, layout: Layout) -> bool {
        let need = (layout.size() as u64 + layout.align() as u64).next_multiple_of(PAGE);
        // Hopeless even if every free byte were at the top and the window
        // were mapped to the limit: do not map in vain.
        if need > self.limit - self.mapped + self.heap.free() as u64 {
            return false;
        }
        match self.map_more(need.max(GROW_MIN)) {
            Ok(got) if got > 0 => {
                self.mapped += got;
                // SAFETY: the `got` bytes right above the heap's top were just
                // mapped writable and belong to nothing else.
                unsafe { self.heap.extend(got as usize) };
                log::debug!("grew by {got} bytes to {}", self.mapped);
                true
            }
            _ => false,
        }
    }

    fn stats(&self) -> HeapStats {
        HeapStats {
            size: self.heap.size() as u64,
            used: self.heap.used() as u64,
            free: self.heap.free() as u64,
            limit: self.limit,
        }
    }
}

pub fn init() -> Result<(), MapError> {
    let base = paging::heap_window()?;
    let usable = frames::stats().total * PAGE;
    let mut s = STATE.lock();
    s.base = base;
    s.limit = (usable / 2).next_multiple_of(PAGE).max(INITIAL);
    let got = s.map_more(INITIAL)?;
    s.mapped = got;
    // SAFETY: `base..base + got` was just mapped writable, is used by
    // nothing else, and `init` runs once (before any allocation).
    unsafe { s.heap.init(base as *mut u8, got as usize) };
    Ok(())
}

pub fn stats() -> HeapStats {
    x86_64::instructions::interrupts::without_interrupts(|| STATE.lock().stats())
}

pub struct KernelHeap;

// SAFETY: allocation and deallocation go through `linked_list_allocator`'s
// `Heap` under a lock (taken with interrupts off, so an interrupt handler
// cannot deadlock on it); the memory it manages is mapped before the heap is
// told about it and never unmapped.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        x86_64::instructions::interrupts::without_interrupts(|| {
            let mut s = STATE.lock();
            loop {
                if let Ok(p) = s.heap.allocate_first_fit(layout) {
                    return p.as_ptr();
                }
                if !s.grow(layout) {
                    let st = s.stats();
                    log::error!(
                        "out of memory: {} bytes (align {}) requested; heap {} of {} used, limit {}; {} frames free",
                        layout.size(),
                        layout.align(),
                        st.used,
                        st.size,
                        st.limit,
                        frames::stats().free
                    );
                    return core::ptr::null_mut();
                }
            }
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            x86_64::instructions::interrupts::without_interrupts(|| {
                // SAFETY: `GlobalAlloc::dealloc`'s contract: `ptr` came from
                // `alloc` on this allocator with this `layout`.
                unsafe { STATE.lock().heap.deallocate(p, layout) }
            });
        }
    }
}

#[global_allocator]
static ALLOCATOR: KernelHeap = KernelHeap;
