//! The x86_64 hardware base: CPU tables, interrupt controllers, timers and
//! ports. With `mm` and `platform` it holds all the kernel's `unsafe` (kernel
//! tests aside), each block with a `// SAFETY:` note. Nothing in `arch` knows about
//! the console, the clock policy or tests; layers above register the
//! interrupt handlers they need (`idt::set_irq_handler`).

pub mod apic;
pub mod backtrace;
pub mod cmos;
pub mod context;
pub mod cpu;
pub mod fwcfg;
pub mod gdt;
pub mod idt;
pub mod ioapic;
pub mod ivshmem;
pub mod pci;
pub mod pic;
pub mod pit;
pub mod pmtimer;
pub mod power;
pub mod serial;
pub mod syscall;
pub mod virtio;
