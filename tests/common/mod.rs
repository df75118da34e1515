//! Shared helpers for the integration tests: boot the real image in QEMU
//! with the serial port on pipes, under a hard deadline.

#![allow(dead_code)] // each test file uses a different subset

use std::time::Duration;

pub mod rig;

use aether_abi::boot::{BootArgs, CONSOLE_READY_MARKER, LogLevel, Mode, OnPanic, PROMPT};
use aetheros::runner::{Firmware, Launch, Qemu, Serial, Session};

/// Hard limit for one QEMU run (a hang fails the test, never the CI budget).
pub const RUN_LIMIT: Duration = Duration::from_secs(90);
/// How long one command may take to answer.
pub const REPLY: Duration = Duration::from_secs(10);
/// Boot to the prompt (UEFI firmware alone takes a few seconds under TCG).
pub const BOOT: Duration = Duration::from_secs(60);

pub fn console_cmdline() -> String {
    BootArgs {
        mode: Mode::Console,
        on_panic: OnPanic::Exit,
        log: LogLevel::Info,
    }
    .to_string()
}

/// Boots with `cmdline` (the raw fw_cfg string) and returns the session.
pub fn boot_with(firmware: Firmware, cmdline: &str) -> Session {
    boot_with_devices(firmware, cmdline, Vec::new())
}

/// [`boot_with`], with `extra` QEMU arguments (a disk, a link device).
pub fn boot_with_devices(firmware: Firmware, cmdline: &str, extra: Vec<String>) -> Session {
    let launch = Launch {
        cpu: Default::default(),
        extra,
        firmware,
        serial: Serial::Piped,
        cmdline: cmdline.into(),
    };
    let qemu = Qemu::locate().unwrap_or_else(|e| panic!("{e}"));
    let cmd = qemu
        .command(&aetheros::images(), &launch)
        .unwrap_or_else(|e| panic!("{e}"));
    Session::spawn(cmd, RUN_LIMIT).unwrap_or_else(|e| panic!("{e}"))
}

/// Boots the console and waits for the ready marker and the prompt.
pub fn boot_console(firmware: Firmware) -> Session {
    let mut s = boot_with(firmware, &console_cmdline());
    s.expect(CONSOLE_READY_MARKER, BOOT).unwrap_or_else(|e| panic!("{e}"));
    s.expect(PROMPT, REPLY).unwrap_or_else(|e| panic!("{e}"));
    s
}

/// Runs one console command; returns its output lines (without the echo of
/// the command itself).
pub fn run(s: &mut Session, line: &str) -> Vec<String> {
    let text = s
        .command(line, PROMPT, REPLY)
        .unwrap_or_else(|e| panic!("`{line}`: {e}"));
    let mut lines: Vec<String> = text.split("\r\n").map(str::to_string).collect();
    lines.remove(0); // the echo
    lines.retain(|l| !l.is_empty());
    lines
}
