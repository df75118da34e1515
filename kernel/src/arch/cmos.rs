//! The CMOS real-time clock registers (MC146818), read consistently.

use kcore::rtc::RtcRegisters;
use x86_64::instructions::port::Port;

const INDEX: u16 = 0x70;
const DATA: u16 = 0x71;
/// Index bit 7 keeps NMIs disabled while we talk to the CMOS; the last
/// access of `read_rtc` clears it again.
const NMI_OFF: u8 = 0x80;
const STATUS_A: u8 = 0x0a;
const UPDATE_IN_PROGRESS: u8 = 0x80;

fn read(reg: u8) -> u8 {
    // SAFETY: 0x70/0x71 are the CMOS index/data ports; selecting a register
    // and reading it has no effect beyond the (kept) NMI-disable bit.
    unsafe {
        Port::<u8>::new(INDEX).write(NMI_OFF | reg);
        Port::<u8>::new(DATA).read()
    }
}

fn snapshot() -> RtcRegisters {
    RtcRegisters {
        seconds: read(0x00),
        minutes: read(0x02),
        hours: read(0x04),
        day: read(0x07),
        month: read(0x08),
        year: read(0x09),
        century: read(0x32),
        status_b: read(0x0b),
    }
}

/// Re-enables NMIs: selects status register D with bit 7 clear.
fn enable_nmi() {
    // SAFETY: writing the CMOS index port only selects a register (D, which
    // is read-only) and sets the NMI-enable state.
    unsafe { Port::<u8>::new(INDEX).write(0x0d) };
}

/// Reads the clock, retrying until two snapshots taken outside an update
/// agree. `None` if it never settles (a broken or absent RTC).
pub fn read_rtc() -> Option<RtcRegisters> {
    let regs = read_consistent();
    enable_nmi();
    regs
}

fn read_consistent() -> Option<RtcRegisters> {
    for _ in 0..8 {
        let mut spins = 0;
        while read(STATUS_A) & UPDATE_IN_PROGRESS != 0 {
            spins += 1;
            if spins > 100_000 {
                return None;
            }
            core::hint::spin_loop();
        }
        let a = snapshot();
        let b = snapshot();
        if a == b {
            return Some(a);
        }
    }
    None
}
