//! The panic path: message, location and a best-effort backtrace on COM1
//! (without locks: the panicking code may hold them), then exit QEMU with
//! the failure code (`panic=exit`, test runs) or halt (interactive runs).

use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use aether_abi::boot::OnPanic;
use aether_abi::ktest::QemuExitCode;

use crate::arch::{backtrace, cpu, power, serial::EmergencyWriter};
use crate::{config, ktest};

static PANICKING: AtomicBool = AtomicBool::new(false);

fn finish() -> ! {
    match config::args().on_panic {
        OnPanic::Exit => power::qemu_exit(QemuExitCode::Failure),
        OnPanic::Halt => cpu::halt_forever(),
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    cpu::disable_interrupts();
    if PANICKING.swap(true, Ordering::Relaxed) {
        let _ = EmergencyWriter.write_str("\r\nPANIC while panicking\r\n");
        finish();
    }
    let mut w = EmergencyWriter;
    let _ = write!(w, "\r\nPANIC: {}\r\n", info.message());
    if let Some(loc) = info.location() {
        let _ = write!(w, "  at {}:{}:{}\r\n", loc.file(), loc.line(), loc.column());
    }
    backtrace::print(&mut w, cpu::frame_pointer());
    ktest::on_panic(&mut w);
    match config::args().on_panic {
        OnPanic::Exit => {}
        OnPanic::Halt => {
            let _ = w.write_str("system halted\r\n");
        }
    }
    finish()
}
