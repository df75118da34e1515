//! The I/O APIC (Intel 82093AA datasheet §3.2): indirect register access and
//! redirection-table entries routing a GSI to a vector on a local APIC.

use spin::{Mutex, Once};

const IOREGSEL: usize = 0x00;
const IOWIN: usize = 0x10;
const REG_VERSION: u32 = 0x01;
const REG_REDIRECTION: u32 = 0x10;

const MASKED: u64 = 1 << 16;
const LEVEL: u64 = 1 << 15;
const ACTIVE_LOW: u64 = 1 << 13;

struct IoApic {
    base: *mut u32,
    gsi_base: u32,
    entries: u32,
}

// SAFETY: the register window is only used under the `IOAPIC` mutex, so the
// select-then-access pairs never interleave.
unsafe impl Send for IoApic {}

impl IoApic {
    fn read(&mut self, reg: u32) -> u32 {
        // SAFETY: `base` maps the IOAPIC's register window uncached (see
        // `init`); IOREGSEL and IOWIN are aligned 32-bit registers in it.
        unsafe {
            self.base.byte_add(IOREGSEL).write_volatile(reg);
            self.base.byte_add(IOWIN).read_volatile()
        }
    }

    fn write(&mut self, reg: u32, value: u32) {
        // SAFETY: as in `read`.
        unsafe {
            self.base.byte_add(IOREGSEL).write_volatile(reg);
            self.base.byte_add(IOWIN).write_volatile(value);
        }
    }

    fn set_entry(&mut self, index: u32, entry: u64) {
        // Mask first, so the entry is never live half-written.
        self.write(REG_REDIRECTION + 2 * index, MASKED as u32);
        self.write(REG_REDIRECTION + 2 * index + 1, (entry >> 32) as u32);
        self.write(REG_REDIRECTION + 2 * index, entry as u32);
    }
}

static IOAPIC: Once<Mutex<IoApic>> = Once::new();

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    NotInitialised,
    /// The GSI is not served by this IOAPIC.
    NoSuchGsi(u32),
}

/// Takes over the IOAPIC mapped at `mmio` and masks every entry.
///
/// # Safety
/// `mmio` must map the IOAPIC's register window (at least 0x20 bytes),
/// uncached, for the rest of the kernel's life.
pub unsafe fn init(mmio: u64, gsi_base: u32) -> u32 {
    let mut apic = IoApic {
        base: mmio as *mut u32,
        gsi_base,
        entries: 0,
    };
    apic.entries = ((apic.read(REG_VERSION) >> 16) & 0xff) + 1;
    for i in 0..apic.entries {
        apic.set_entry(i, MASKED);
    }
    let entries = apic.entries;
    IOAPIC.call_once(|| Mutex::new(apic));
    entries
}

/// Routes `gsi` to `vector` on the local APIC `dest`, unmasked, fixed
/// delivery, physical destination mode.
pub fn route(gsi: u32, vector: u8, dest: u8, active_low: bool, level: bool) -> Result<(), RouteError> {
    let apic = IOAPIC.get().ok_or(RouteError::NotInitialised)?;
    super::cpu::without_interrupts(|| {
        let mut apic = apic.lock();
        let index = gsi
            .checked_sub(apic.gsi_base)
            .filter(|&i| i < apic.entries)
            .ok_or(RouteError::NoSuchGsi(gsi))?;
        let mut entry = vector as u64 | ((dest as u64) << 56);
        if active_low {
            entry |= ACTIVE_LOW;
        }
        if level {
            entry |= LEVEL;
        }
        apic.set_entry(index, entry);
        Ok(())
    })
}
