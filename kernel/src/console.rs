//! The serial console (in the kernel until the ring-3 shell takes over):
//! reads COM1 input, edits lines with `console::line`, parses them with
//! `console::command`, and runs the commands.

use core::fmt::{self, Write};

use aether_abi::boot::{ConsoleReady, PROMPT};
use aether_abi::console::{CommandHelp, MemReport, UptimeReport};
use console::command::{self, COMMANDS, Command};
use console::line::{LineEditor, LineEvent};
use kcore::frames::FRAME_SIZE;
use kcore::rtc::DateTime;
use serde::Serialize;

use crate::arch::{cpu, serial};
use crate::{mm, platform, time};

fn print(args: fmt::Arguments) {
    let _ = serial::Writer.write_fmt(args);
}

macro_rules! out {
    ($($t:tt)*) => { print(format_args!($($t)*)) };
}

/// One JSON document on its own line.
fn json_line(value: &impl Serialize) {
    let mut buf = [0u8; 512];
    match serde_json_core::to_slice(value, &mut buf) {
        Ok(n) => {
            serial::write_bytes(&buf[..n]);
            serial::write_bytes(b"\r\n");
        }
        Err(_) => out!("error: report does not fit the JSON buffer\n"),
    }
}

fn help(json: bool) {
    for c in COMMANDS {
        if json {
            json_line(&CommandHelp {
                name: c.name,
                usage: c.usage,
                summary: c.summary,
            });
        } else {
            out!("  {:<18} {}\n", c.usage, c.summary);
        }
    }
}

fn uptime(json: bool) {
    let report = UptimeReport {
        uptime_ns: time::now_ns(),
        boot_unix_s: time::boot_unix_s(),
    };
    if json {
        return json_line(&report);
    }
    let ns = report.uptime_ns;
    out!("up {}.{:09} s ({} ns), ", ns / 1_000_000_000, ns % 1_000_000_000, ns);
    match report.boot_unix_s {
        0 => out!("boot time unknown (no RTC)\n"),
        t => out!("booted {}\n", DateTime::from_unix_seconds(t)),
    }
}

fn mem(json: bool) {
    let f = mm::frames::stats();
    let h = mm::heap::stats();
    let report = MemReport {
        frame_size: FRAME_SIZE,
        frames_total: f.total,
        frames_used: f.used,
        frames_free: f.free,
        heap_size: h.size,
        heap_used: h.used,
        heap_free: h.free,
        heap_limit: h.limit,
    };
    if json {
        return json_line(&report);
    }
    let kib = |frames: u64| frames * FRAME_SIZE / 1024;
    out!(
        "frames: {} used, {} free, {} total ({} KiB used, {} KiB free)\n",
        f.used,
        f.free,
        f.total,
        kib(f.used),
        kib(f.free)
    );
    out!(
        "heap:   {} bytes used, {} free, {} mapped (grows to {})\n",
        h.used,
        h.free,
        h.size,
        h.limit
    );
}

fn execute(line: &str) {
    match command::parse(line) {
        Ok(Command::Nothing) => {}
        Ok(Command::Help { json }) => help(json),
        Ok(Command::Uptime { json }) => uptime(json),
        Ok(Command::Mem { json }) => mem(json),
        Ok(Command::Echo { rest }) => out!("{rest}\n"),
        Ok(Command::Shutdown) => {
            out!("powering off\n");
            platform::power_off();
        }
        Err(e) => out!("error: {e}\n"),
    }
}

/// Announces readiness and serves the console forever.
pub fn run() -> ! {
    let ready = ConsoleReady {
        entry_to_prompt_ns: time::now_ns(),
    };
    out!("{ready}\n{PROMPT}");
    let mut editor = LineEditor::new();
    let mut dropped = 0;
    loop {
        cpu::wait_until(serial::input_pending);
        while let Some(byte) = serial::read_byte() {
            match editor.feed(byte, &mut serial::write_bytes) {
                Some(LineEvent::Submitted) => {
                    execute(editor.line());
                    out!("{PROMPT}");
                }
                Some(LineEvent::Cancelled) => out!("{PROMPT}"),
                None => {}
            }
        }
        let now = serial::dropped_input();
        if now != dropped {
            log::warn!("{} input bytes dropped (typed faster than read)", now - dropped);
            dropped = now;
        }
    }
}
