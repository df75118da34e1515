//! The 8254 PIT, channel 2 only (its gate and output are visible at port
//! 0x61, so it can time a window without interrupts). Used as the reference
//! clock for calibrating the TSC and the APIC timer.

use x86_64::instructions::port::Port;

const CHANNEL2: u16 = 0x42;
const COMMAND: u16 = 0x43;
const PORT_B: u16 = 0x61;
/// Port B bit 0: channel 2 gate; bit 1: speaker enable; bit 5: channel 2 out.
const GATE: u8 = 1 << 0;
const SPEAKER: u8 = 1 << 1;
const OUT2: u8 = 1 << 5;
/// Channel 2, lobyte/hibyte access, mode 0 (interrupt on terminal count).
const CH2_MODE0: u8 = 0b1011_0000;

/// Counter-latch command for channel 2 (bits 7-6 = 10, access bits 00).
const CH2_LATCH: u8 = 0b1000_0000;

/// Free-running channel-2 counter for reading the PIT as a clock: counts
/// down from 0xffff once per PIT tick (wrapping after about 55 ms).
pub struct Countdown(());

impl Countdown {
    /// Starts channel 2 counting down from 0xffff.
    pub fn start() -> Self {
        // SAFETY: as in `time_window`: channel 2 and port B's gate/speaker
        // bits only.
        unsafe {
            let mut port_b = Port::<u8>::new(PORT_B);
            let b = port_b.read() & !(GATE | SPEAKER);
            port_b.write(b);
            Port::<u8>::new(COMMAND).write(CH2_MODE0);
            let mut ch2 = Port::<u8>::new(CHANNEL2);
            ch2.write(0xff);
            ch2.write(0xff);
            port_b.write(b | GATE);
        }
        Countdown(())
    }

    /// The current count (latched, so both bytes belong together).
    pub fn read(&self) -> u16 {
        // SAFETY: the latch command freezes channel 2's count for the two
        // byte reads that follow; nothing else uses channel 2.
        unsafe {
            Port::<u8>::new(COMMAND).write(CH2_LATCH);
            let mut ch2 = Port::<u8>::new(CHANNEL2);
            let lo = ch2.read() as u16;
            let hi = ch2.read() as u16;
            (hi << 8) | lo
        }
    }
}

impl Drop for Countdown {
    fn drop(&mut self) {
        // SAFETY: clears channel 2's gate, leaving the speaker off.
        unsafe {
            let mut port_b = Port::<u8>::new(PORT_B);
            let b = port_b.read() & !(GATE | SPEAKER);
            port_b.write(b);
        }
    }
}

/// Runs channel 2 down from `ticks` and returns `(before, after)` = the
/// values of `sample` right after the count starts and right after it ends.
pub fn time_window<T>(ticks: u16, mut sample: impl FnMut() -> T) -> (T, T) {
    // SAFETY: ports 0x42/0x43/0x61 are the PIT's channel 2 and the system
    // control port B on the PC platform; only the gate and speaker bits of
    // port B are changed (speaker off), and channel 2 drives nothing else.
    unsafe {
        let mut port_b = Port::<u8>::new(PORT_B);
        let mut cmd = Port::<u8>::new(COMMAND);
        let mut ch2 = Port::<u8>::new(CHANNEL2);
        let b = port_b.read() & !(GATE | SPEAKER);
        port_b.write(b);
        cmd.write(CH2_MODE0);
        ch2.write(ticks as u8);
        ch2.write((ticks >> 8) as u8);
        port_b.write(b | GATE);
        let before = sample();
        while port_b.read() & OUT2 == 0 {
            core::hint::spin_loop();
        }
        let after = sample();
        port_b.write(b);
        (before, after)
    }
}
