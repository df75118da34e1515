//! Best-effort backtraces by walking frame pointers (the kernel is built
//! with `-C force-frame-pointers=yes`). Each frame is `[rbp] = caller's rbp`,
//! `[rbp + 8] = return address`. Only frames inside a known stack are
//! followed, so a corrupt chain ends the walk instead of faulting.

use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

const MAX_FRAMES: usize = 32;

static STACK_LOW: AtomicU64 = AtomicU64::new(0);
static STACK_HIGH: AtomicU64 = AtomicU64::new(0);

/// Records the kernel stack's bounds: `top` is the stack pointer at kernel
/// entry, `size` the stack size the bootloader was asked for.
pub fn init(top: u64, size: u64) {
    STACK_HIGH.store(top, Ordering::Relaxed);
    STACK_LOW.store(top.saturating_sub(size), Ordering::Relaxed);
}

/// Which known stack holds the 16 bytes at `addr` (0 = kernel, 1 = the
/// double-fault stack).
fn stack_of(addr: u64) -> Option<usize> {
    let (lo, hi) = super::gdt::double_fault_stack();
    let stacks = [
        STACK_LOW.load(Ordering::Relaxed)..STACK_HIGH.load(Ordering::Relaxed),
        lo..hi,
    ];
    if !addr.is_multiple_of(8) {
        return None;
    }
    stacks.iter().position(|r| r.contains(&addr) && r.contains(&(addr + 8)))
}

/// Prints up to 32 return addresses starting from frame pointer `rbp`.
pub fn print(w: &mut impl Write, mut rbp: u64) {
    let _ = write!(w, "backtrace (return addresses):\r\n");
    for i in 0..MAX_FRAMES {
        let Some(stack) = stack_of(rbp) else {
            if i == 0 {
                let _ = write!(w, "  (frame pointer {rbp:#x} is not on a known stack)\r\n");
            }
            return;
        };
        // SAFETY: `rbp` and `rbp + 8` are 8-aligned addresses inside a mapped
        // kernel stack (checked above); reading them cannot fault, and a
        // stale value only makes the backtrace wrong, never unsafe.
        let (next, ret) = unsafe { ((rbp as *const u64).read(), ((rbp + 8) as *const u64).read()) };
        if ret == 0 {
            return;
        }
        let _ = write!(w, "  #{i:<2} {ret:#018x}\r\n");
        if stack_of(next) == Some(stack) && next <= rbp {
            return; // on one stack, frames must move up
        }
        rbp = next;
    }
}
