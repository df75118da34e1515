//! The local APIC (Intel SDM Vol. 3A §11): enable, EOI, and its timer, used
//! one-shot (masked) during calibration and periodic afterwards.

use spin::Once;

use super::idt;

// Register offsets (SDM Vol. 3A Table 11-1).
const ID: usize = 0x20;
const TPR: usize = 0x80;
const EOI: usize = 0xb0;
const SVR: usize = 0xf0;
const LVT_TIMER: usize = 0x320;
const TIMER_INITIAL: usize = 0x380;
const TIMER_CURRENT: usize = 0x390;
const TIMER_DIVIDE: usize = 0x3e0;

const SVR_ENABLE: u32 = 1 << 8;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
/// Divide configuration value for "divide by 16" (SDM Figure 11-10).
const DIVIDE_BY_16: u32 = 0b0011;

/// IA32_APIC_BASE (SDM Vol. 4 Table 2-2).
const IA32_APIC_BASE: u32 = 0x1b;

struct LocalApic {
    base: *mut u32,
}

// SAFETY: the register block is per-CPU MMIO; with one CPU, every access is
// from this CPU, and each register access is a single volatile load/store.
unsafe impl Send for LocalApic {}
// SAFETY: as above.
unsafe impl Sync for LocalApic {}

impl LocalApic {
    fn read(&self, reg: usize) -> u32 {
        // SAFETY: `base` maps the 4 KiB register page uncached (see `init`),
        // `reg` is one of the register offsets above (16-byte aligned, inside
        // the page), and registers are read as aligned 32-bit words.
        unsafe { self.base.byte_add(reg).read_volatile() }
    }

    fn write(&self, reg: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { self.base.byte_add(reg).write_volatile(value) }
    }
}

static LAPIC: Once<LocalApic> = Once::new();

/// Physical base address of the local APIC from IA32_APIC_BASE.
pub fn physical_base() -> u64 {
    // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC (CPUID.1:EDX.APIC,
    // present on all x86_64 CPUs); reading it has no side effects.
    let value = unsafe { x86_64::registers::model_specific::Msr::new(IA32_APIC_BASE).read() };
    value & 0x000f_ffff_ffff_f000
}

/// Enables the local APIC whose registers are mapped (uncached) at `mmio`.
///
/// # Safety
/// `mmio` must be a virtual address mapping the local APIC's 4 KiB register
/// page, uncached, for the rest of the kernel's life.
pub unsafe fn init(mmio: u64) {
    let apic = LAPIC.call_once(|| LocalApic { base: mmio as *mut u32 });
    apic.write(TPR, 0);
    apic.write(LVT_TIMER, LVT_MASKED | idt::TIMER_VECTOR as u32);
    apic.write(SVR, SVR_ENABLE | idt::SPURIOUS_VECTOR as u32);
}

fn lapic() -> Option<&'static LocalApic> {
    LAPIC.get()
}

pub fn id() -> u8 {
    lapic().map_or(0, |a| (a.read(ID) >> 24) as u8)
}

/// Signals end of interrupt.
pub fn eoi() {
    if let Some(a) = lapic() {
        a.write(EOI, 0);
    }
}

/// Starts the timer counting down from `u32::MAX`, masked, for calibration.
pub fn start_free_running() {
    if let Some(a) = lapic() {
        a.write(TIMER_DIVIDE, DIVIDE_BY_16);
        a.write(LVT_TIMER, LVT_MASKED | idt::TIMER_VECTOR as u32);
        a.write(TIMER_INITIAL, u32::MAX);
    }
}

/// The timer's current count (counts down).
pub fn timer_count() -> u32 {
    lapic().map_or(0, |a| a.read(TIMER_CURRENT))
}

/// Fires [`idt::TIMER_VECTOR`] every `count` timer ticks.
pub fn start_periodic(count: u32) {
    if let Some(a) = lapic() {
        a.write(TIMER_DIVIDE, DIVIDE_BY_16);
        a.write(LVT_TIMER, LVT_PERIODIC | idt::TIMER_VECTOR as u32);
        a.write(TIMER_INITIAL, count);
    }
}

/// Puts the timer in one-shot mode (divide by 16), stopped.
pub fn set_oneshot() {
    if let Some(a) = lapic() {
        a.write(TIMER_DIVIDE, DIVIDE_BY_16);
        a.write(LVT_TIMER, idt::TIMER_VECTOR as u32);
        a.write(TIMER_INITIAL, 0);
    }
}

/// In one-shot mode: fires [`idt::TIMER_VECTOR`] once, after `count` ticks
/// (a new count replaces a pending one; SDM Vol. 3A §11.5.4). One register
/// write: device accesses are costly under emulation.
pub fn arm_oneshot(count: u32) {
    if let Some(a) = lapic() {
        a.write(TIMER_INITIAL, count.max(1));
    }
}
