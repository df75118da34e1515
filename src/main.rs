//! `cargo run`: boots AetherOS in QEMU with the serial console on this
//! terminal. `cargo run -- --help` lists the options.

use std::process::ExitCode;

use aether_abi::boot::{BootArgs, LogLevel, Mode, OnPanic};
use aetheros::runner::{Firmware, Launch, Serial, checked_cmdline};

const USAGE: &str = "\
usage: cargo run [--release] -- [--uefi] [--test [NAMES]] [--log LEVEL]

Boots AetherOS under QEMU (TCG, q35) with the serial console on this
terminal. Type `help` at the `aether> ` prompt; `shutdown` powers off;
Ctrl-A X quits QEMU at any time.

  --uefi          boot the UEFI image with OVMF (default: BIOS)
  --test [NAMES]  run the in-kernel tests (all, or the comma-separated names)
                  and exit with QEMU's pass/fail status
  --log LEVEL     kernel log level: error, warn, info (default), debug, trace
  -h, --help      this text";

struct Options {
    firmware: Firmware,
    tests: Option<Option<String>>,
    log: LogLevel,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        firmware: Firmware::Bios,
        tests: None,
        log: LogLevel::Info,
    };
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--uefi" => o.firmware = Firmware::Uefi,
            "--bios" => o.firmware = Firmware::Bios,
            "--test" => o.tests = Some(args.next_if(|n| !n.starts_with('-'))),
            "--log" => {
                let level = args.next().ok_or("--log needs a level")?;
                let line = format!("log={level}");
                o.log = BootArgs::parse(&line)
                    .map_err(|_| format!("unknown log level '{level}'"))?
                    .log;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("error: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let qemu = match aetheros::locate_qemu() {
        Ok(q) => q,
        Err(code) => return code,
    };
    let mode = match &opts.tests {
        None => Mode::Console,
        Some(names) => Mode::Test(names.as_deref()),
    };
    let on_panic = if opts.tests.is_some() {
        OnPanic::Exit
    } else {
        OnPanic::Halt
    };
    let args = BootArgs {
        mode,
        on_panic,
        log: opts.log,
    };
    let cmdline = match checked_cmdline(&args) {
        Ok(line) => line,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let launch = Launch {
        cpu: Default::default(),
        extra: Vec::new(),
        firmware: opts.firmware,
        serial: Serial::Terminal,
        cmdline,
    };
    let mut cmd = match qemu.command(&aetheros::images(), &launch) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(127);
        }
    };
    eprintln!(
        "AetherOS: booting ({:?}); `shutdown` powers off, Ctrl-A X quits QEMU",
        opts.firmware
    );
    match cmd.status() {
        Ok(status) => match status.code() {
            // ACPI power-off, or the isa-debug-exit pass code.
            Some(0) | Some(33) => ExitCode::SUCCESS,
            Some(35) => {
                eprintln!("AetherOS: the kernel reported a failure (QEMU exit status 35)");
                ExitCode::FAILURE
            }
            code => {
                eprintln!("AetherOS: QEMU exited with {code:?}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("error: could not start {}: {e}", qemu.program().display());
            ExitCode::from(127)
        }
    }
}
