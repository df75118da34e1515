//! CPU primitives: the time-stamp counter, interrupt flag, halting, and the
//! control-register features the kernel relies on.

use x86_64::registers::control::{Cr0, Cr0Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};

/// Reads the time-stamp counter (Intel SDM Vol. 2B, RDTSC).
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects; CR4.TSD is clear (we never set it),
    // so it is allowed at CPL 0.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Turns on no-execute pages (EFER.NXE) and write protection in ring 0
/// (CR0.WP), so the paging flags mean what they say.
pub fn enable_protection_features() {
    // SAFETY: setting NXE only gives meaning to bit 63 of page-table entries,
    // which the bootloader's tables either leave clear or set for data
    // (it enables NXE itself); WP makes ring 0 honour read-only pages, and
    // nothing in the kernel writes to read-only mappings.
    unsafe {
        Efer::update(|f| f.insert(EferFlags::NO_EXECUTE_ENABLE));
        Cr0::update(|f| f.insert(Cr0Flags::WRITE_PROTECT));
    }
}

pub fn enable_interrupts() {
    x86_64::instructions::interrupts::enable();
}

pub fn disable_interrupts() {
    x86_64::instructions::interrupts::disable();
}

pub use x86_64::instructions::interrupts::without_interrupts;

/// Waits for work: waits for `ready` to hold, halting (with interrupts on)
/// between checks. The check runs with interrupts off, and `sti; hlt` is
/// atomic, so a wake-up between the check and the halt is not lost.
pub fn wait_until(mut ready: impl FnMut() -> bool) {
    loop {
        disable_interrupts();
        if ready() {
            enable_interrupts();
            return;
        }
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        disable_interrupts();
        x86_64::instructions::hlt();
    }
}

/// The current frame pointer (the kernel is built with frame pointers).
#[inline(always)]
pub fn frame_pointer() -> u64 {
    let rbp: u64;
    // SAFETY: reads a register; no memory access, no side effects.
    unsafe { core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags)) };
    rbp
}

/// The current stack pointer.
#[inline(always)]
pub fn stack_pointer() -> u64 {
    let rsp: u64;
    // SAFETY: reads a register; no memory access, no side effects.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    rsp
}

/// Raises a breakpoint exception (#BP, vector 3).
pub fn breakpoint() {
    x86_64::instructions::interrupts::int3();
}
