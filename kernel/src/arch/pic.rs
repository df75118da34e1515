//! The legacy 8259A PIC pair: remapped away from the exception vectors and
//! fully masked, since interrupts arrive through the IOAPIC instead.

use x86_64::instructions::port::Port;

use super::idt::PIC_BASE;

const MASTER_CMD: u16 = 0x20;
const MASTER_DATA: u16 = 0x21;
const SLAVE_CMD: u16 = 0xa0;
const SLAVE_DATA: u16 = 0xa1;

/// Remaps to vectors `PIC_BASE..PIC_BASE + 16` and masks every line.
pub fn disable() {
    // SAFETY: ports 0x20/0x21/0xa0/0xa1 are the 8259A pair on every PC
    // platform; the ICW1-ICW4 sequence (8259A datasheet) remaps them so a
    // spurious IRQ cannot land on an exception vector, and OCW1 = 0xff masks
    // all lines. No other code drives the PIC.
    unsafe {
        let mut mc = Port::<u8>::new(MASTER_CMD);
        let mut md = Port::<u8>::new(MASTER_DATA);
        let mut sc = Port::<u8>::new(SLAVE_CMD);
        let mut sd = Port::<u8>::new(SLAVE_DATA);
        mc.write(0x11); // ICW1: init, expect ICW4
        sc.write(0x11);
        md.write(PIC_BASE); // ICW2: vector base
        sd.write(PIC_BASE + 8);
        md.write(4); // ICW3: slave on IRQ2
        sd.write(2);
        md.write(1); // ICW4: 8086 mode
        sd.write(1);
        md.write(0xff); // OCW1: mask all
        sd.write(0xff);
    }
}

/// A spurious IRQ 15 still needs an EOI at the master (for the cascade); a
/// spurious IRQ 7 needs none. With every line masked, the in-service
/// register tells which: read it and acknowledge the cascade if the master
/// shows IRQ 2 in service.
pub fn acknowledge_spurious_slave_if_needed() {
    // SAFETY: OCW3 0x0b selects the in-service register for the next read of
    // the command port; writing 0x20 (EOI) to the master only clears its
    // highest in-service bit, which is the cascade here.
    unsafe {
        let mut mc = Port::<u8>::new(MASTER_CMD);
        mc.write(0x0b);
        if mc.read() & (1 << 2) != 0 {
            mc.write(0x20);
        }
    }
}
