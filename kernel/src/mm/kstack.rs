//! Task kernel stacks: 64 KiB each (framed syscall answers are large values) in the kernel-stack window, with an
//! unmapped guard page below, so an overflow faults (and, on the IST stack,
//! is reported as a double fault) instead of corrupting a neighbour.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;
use x86_64::VirtAddr;
use x86_64::structures::paging::Page;

use super::paging::{self, Flags, MapError};

const PAGE: u64 = 4096;
pub const STACK_PAGES: u64 = 16;
/// Address space per stack: the stack and its guard page, rounded up.
const STRIDE: u64 = 32 * PAGE;

/// Stack slots given back, reused first; `NEXT` hands out new ones.
static FREE: Mutex<Vec<u64>> = Mutex::new(Vec::new());
static NEXT: Mutex<u64> = Mutex::new(0);
/// The deepest use of any kernel stack freed so far, in bytes.
static DEEPEST: AtomicU64 = AtomicU64::new(0);

/// Bytes in one kernel stack.
pub const STACK_BYTES: u64 = STACK_PAGES * PAGE;

/// The deepest use seen of any kernel stack freed so far (bytes).
pub fn deepest_freed() -> u64 {
    DEEPEST.load(Ordering::Relaxed)
}

/// A mapped kernel stack; unmapped and freed on drop.
#[derive(Debug)]
pub struct KernelStack {
    slot: u64,
    base: u64,
}

impl KernelStack {
    pub fn new() -> Result<Self, MapError> {
        let window = paging::kstack_window()?;
        let slot = crate::arch::cpu::without_interrupts(|| {
            FREE.lock().pop().unwrap_or_else(|| {
                let mut next = NEXT.lock();
                *next += 1;
                *next - 1
            })
        });
        // The slot's first page is the guard; the stack follows it.
        let base = window + slot * STRIDE + PAGE;
        for i in 0..STACK_PAGES {
            let page = Page::containing_address(VirtAddr::new(base + i * PAGE));
            match paging::map_new(page, Flags::WRITABLE) {
                Ok(flush) => flush.flush(),
                Err(e) => {
                    let partial = KernelStack { slot, base };
                    partial.release(i);
                    return Err(e);
                }
            }
        }
        Ok(KernelStack { slot, base })
    }

    /// The initial stack pointer (16-byte aligned).
    pub fn top(&self) -> u64 {
        self.base + STACK_PAGES * PAGE
    }

    /// How deep this stack has been used (bytes): its frames are zeroed
    /// when mapped, so the lowest non-zero word marks the deepest point.
    pub fn high_water(&self) -> u64 {
        let words = STACK_BYTES / 8;
        for i in 0..words {
            let addr = self.base + i * 8;
            // SAFETY: `addr` is inside this stack's mapped pages (base ..
            // base + STACK_BYTES), 8-byte aligned; a volatile read of a word
            // the owning task may write concurrently only yields a value.
            let word = unsafe { core::ptr::read_volatile(addr as *const u64) };
            if word != 0 {
                return STACK_BYTES - i * 8;
            }
        }
        0
    }

    /// Unmaps the first `mapped` pages and returns the slot.
    fn release(&self, mapped: u64) {
        for i in 0..mapped {
            let page = Page::containing_address(VirtAddr::new(self.base + i * PAGE));
            // SAFETY: the page was mapped by `map_new` in `new`, and the stack
            // is being dropped: its task is dead and not running on it.
            if let Ok(flush) = unsafe { paging::unmap_and_free(page) } {
                flush.flush();
            }
        }
        let slot = self.slot;
        crate::arch::cpu::without_interrupts(|| FREE.lock().push(slot));
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        DEEPEST.fetch_max(self.high_water(), Ordering::Relaxed);
        self.release(STACK_PAGES);
    }
}
