//! Leaving the machine: QEMU's `isa-debug-exit` device and the ACPI PM1
//! control register write that enters S5 (soft off).

use aether_abi::ktest::QemuExitCode;
use x86_64::instructions::port::Port;

/// Exits QEMU with status `(code << 1) | 1` (when the runner added
/// `-device isa-debug-exit,iobase=0xf4,iosize=0x04`); otherwise halts.
pub fn qemu_exit(code: QemuExitCode) -> ! {
    // SAFETY: port 0xf4 is the isa-debug-exit device the runner adds; on a
    // machine without it the write goes nowhere and we halt below.
    unsafe { Port::<u32>::new(QemuExitCode::PORT).write(code as u32) };
    super::cpu::halt_forever()
}

/// Writes `value` to the PM1 control block at `port` (from the FADT).
pub fn write_pm1_control(port: u16, value: u16) {
    // SAFETY: `port` is the PM1a/PM1b control block the firmware's FADT
    // names; writing SLP_TYP|SLP_EN asks the chipset to power off, which is
    // what the caller wants.
    unsafe { Port::<u16>::new(port).write(value) }
}
