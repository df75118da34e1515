//! COM1 (16550 UART at 0x3f8, via `uart_16550`): locked output for the log
//! and the console, an interrupt-fed input queue, and an unlocked emergency
//! writer for the panic path.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use heapless::Deque;
use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::spec::registers::{FifoTriggerLevel, IER};
use uart_16550::{BaudRate, Config, Uart16550};

use super::cpu::without_interrupts;

const COM1: u16 = 0x3f8;
/// ISA IRQ line of COM1.
pub const COM1_IRQ: u8 = 4;
/// Bytes of typed-ahead input kept; more are dropped and counted.
const INPUT_CAPACITY: usize = 1024;

const fn com1() -> Uart16550<PioBackend> {
    // SAFETY: 0x3f8..0x3ff is COM1 on the PC platform and only this module
    // (and the emergency writer, once the kernel is dying) drives it.
    match unsafe { Uart16550::new_port(COM1) } {
        Ok(uart) => uart,
        Err(_) => panic!("0x3f8 is a valid port base"),
    }
}

static UART: Mutex<Uart16550<PioBackend>> = Mutex::new(com1());
static INPUT: Mutex<Deque<u8, INPUT_CAPACITY>> = Mutex::new(Deque::new());
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Programs COM1: 115200 8N1, FIFO on with the receive interrupt at every
/// byte (a console wants keystrokes now, not in batches of 14).
pub fn init() -> Result<(), uart_16550::InitError> {
    let config = Config {
        baud_rate: BaudRate::Baud115200,
        fifo_trigger_level: Some(FifoTriggerLevel::One),
        ..Config::DEFAULT
    };
    without_interrupts(|| UART.lock().init(config))
}

/// Enables the receive interrupt; the IOAPIC must route [`COM1_IRQ`] to
/// [`on_interrupt`] first.
pub fn enable_receive_interrupt() {
    without_interrupts(|| UART.lock().enable_interrupts(IER::DATA_READY));
}

/// Turns the UART's internal loopback on or off (for testing the receive
/// path without a host: what we send comes back as input).
pub fn set_loopback(on: bool) {
    without_interrupts(|| {
        let mut uart = UART.lock();
        let mcr = uart.mcr();
        let loop_bit = uart_16550::spec::registers::MCR::LOOP_BACK;
        let mcr = if on { mcr | loop_bit } else { mcr - loop_bit };
        // SAFETY: MCR is at offset 4 of COM1; only the loopback bit changes,
        // OUT2 (which gates the IRQ line on PCs) stays as init set it.
        unsafe { x86_64::instructions::port::Port::<u8>::new(COM1 + 4).write(mcr.bits()) };
    });
}

/// The COM1 interrupt handler: drains the receive FIFO into the input queue.
pub fn on_interrupt() {
    let mut uart = UART.lock();
    let mut input = INPUT.lock();
    while let Ok(byte) = uart.try_receive_byte() {
        if input.push_back(byte).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The next received byte, if any.
pub fn read_byte() -> Option<u8> {
    without_interrupts(|| INPUT.lock().pop_front())
}

pub fn input_pending() -> bool {
    without_interrupts(|| !INPUT.lock().is_empty())
}

/// Input bytes dropped because the queue was full.
pub fn dropped_input() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

pub fn write_bytes(bytes: &[u8]) {
    without_interrupts(|| UART.lock().send_bytes_exact(bytes));
}

/// A `fmt::Write` over the locked port, translating `\n` to `\r\n`.
pub struct Writer;

impl fmt::Write for Writer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        without_interrupts(|| {
            let mut uart = UART.lock();
            write_crlf(s, |b| uart.send_bytes_exact(b));
        });
        Ok(())
    }
}

fn write_crlf(s: &str, mut out: impl FnMut(&[u8])) {
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out(b"\r\n");
        }
        out(line.as_bytes());
    }
}

/// Writes without taking the lock, for the panic and fault path only (the
/// lock may be held by the code that faulted, which will never run again).
pub struct EmergencyWriter;

impl fmt::Write for EmergencyWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut uart = com1();
        write_crlf(s, |b| uart.send_bytes_exact(b));
        Ok(())
    }
}
