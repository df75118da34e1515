//! The ACPI power-management timer (ACPI 6.5 §4.8.3.3): a free-running
//! 3.579545 MHz counter, at least 24 bits wide, read from the I/O port the
//! FADT names. Used as a reference clock independent of the PIT.

use x86_64::instructions::port::Port;

/// Counter bits guaranteed on every implementation.
pub const MASK: u32 = 0x00ff_ffff;

/// The current count (24 bits).
pub fn read(port: u16) -> u32 {
    // SAFETY: `port` is the PM timer block from the FADT; reading it has no
    // side effects.
    unsafe { Port::<u32>::new(port).read() & MASK }
}
