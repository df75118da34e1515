//! The program heap: a linked-list allocator that asks the kernel for more
//! pages (`heap_grow`) when it runs out.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use linked_list_allocator::Heap;
use spin::Mutex;

/// The least the heap grows by at once.
const GROW_MIN: usize = 64 * 1024;

struct Growing(Mutex<Option<Heap>>);

#[global_allocator]
static HEAP: Growing = Growing(Mutex::new(None));

impl Growing {
    /// Adds at least `bytes` to the heap; false if the kernel said no.
    fn grow(heap: &mut Option<Heap>, bytes: usize) -> bool {
        let bytes = bytes.max(GROW_MIN).next_multiple_of(4096);
        let Ok(start) = crate::sys::heap_grow(bytes) else {
            return false;
        };
        match heap {
            // SAFETY: the kernel mapped `bytes` of fresh memory right after
            // the heap's end (heap_grow's contract), and nothing else uses it.
            Some(h) => unsafe { h.extend(bytes) },
            None => {
                // SAFETY: as above; this is the heap's first block.
                *heap = Some(unsafe { Heap::new(start as *mut u8, bytes) });
            }
        }
        true
    }
}

// SAFETY: allocation goes through `linked_list_allocator::Heap`, which hands
// out disjoint blocks of the memory it was given; the mutex serialises it.
unsafe impl GlobalAlloc for Growing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut heap = self.0.lock();
        loop {
            if let Some(h) = heap.as_mut()
                && let Ok(p) = h.allocate_first_fit(layout)
            {
                return p.as_ptr();
            }
            // Room for the block, its alignment and the allocator's header.
            if !Self::grow(&mut heap, layout.size() + layout.align() + 64) {
                return core::ptr::null_mut();
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let (Some(h), Some(p)) = (self.0.lock().as_mut(), NonNull::new(ptr)) {
            // SAFETY: the caller returns a block this allocator handed out
            // with this layout (GlobalAlloc's contract).
            unsafe { h.deallocate(p, layout) }
        }
    }
}
