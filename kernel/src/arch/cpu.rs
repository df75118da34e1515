//! CPU primitives: the time-stamp counter, interrupt flag, halting, and the
//! control-register features the kernel relies on.

use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};

/// Reads the time-stamp counter (Intel SDM Vol. 2B, RDTSC).
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects; CR4.TSD is clear (we never set it),
    // so it is allowed at CPL 0.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// What CPUID leaf 7 says about supervisor-mode protections (Intel SDM
/// Vol. 2A CPUID, leaf 07H: EBX bit 7 SMEP, bit 20 SMAP).
pub fn smep_smap_supported() -> (bool, bool) {
    // CPUID is available on every x86_64 CPU and has no side effects.
    let max_leaf = core::arch::x86_64::__cpuid(0).eax;
    if max_leaf < 7 {
        return (false, false);
    }
    let ebx = core::arch::x86_64::__cpuid_count(7, 0).ebx;
    (ebx & (1 << 7) != 0, ebx & (1 << 20) != 0)
}

/// Whether SMEP and SMAP are on (CR4).
pub fn smep_smap_enabled() -> (bool, bool) {
    let cr4 = Cr4::read();
    (
        cr4.contains(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION),
        cr4.contains(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION),
    )
}

/// Turns on no-execute pages (EFER.NXE) and write protection in ring 0
/// (CR0.WP), so the paging flags mean what they say, and SMEP/SMAP where
/// the CPU has them: ring 0 then can neither run nor touch user pages (the
/// kernel reaches user memory only through the physical window, mm::user).
pub fn enable_protection_features() {
    let (smep, smap) = smep_smap_supported();
    let mut cr4 = Cr4Flags::empty();
    if smep {
        cr4 |= Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION;
    }
    if smap {
        cr4 |= Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION;
    }
    // SAFETY: SMEP/SMAP only forbid ring 0 from executing or accessing pages
    // mapped for ring 3; the kernel never does either (no kernel code or data
    // is mapped USER, and user memory is copied through the physical window).
    unsafe { Cr4::update(|f| f.insert(cr4)) };
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
