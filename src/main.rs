//! `cargo run`: boots AetherOS in QEMU with the serial console on this
//! terminal. `cargo run -- --help` lists the options.

use std::process::ExitCode;

use aether_abi::boot::{BootArgs, LogLevel, Mode, OnPanic};
use aetheros::runner::{Firmware, Launch, Serial, checked_cmdline};

const USAGE: &str = "\
usage: cargo run [--release] -- [--uefi] [--test [NAMES]] [--log LEVEL] [--no-bridge] [--no-disk]

Boots AetherOS under QEMU (TCG, q35) with the serial console on this
terminal, with the host bridge beside it (host jobs, HTTP API on
127.0.0.1:7878). Type `help` at the `aether> ` prompt; `shutdown` powers
off; Ctrl-A X quits QEMU at any time.

  --uefi          boot the UEFI image with OVMF (default: BIOS)
  --test [NAMES]  run the in-kernel tests (all, or the comma-separated names)
                  and exit with QEMU's pass/fail status
  --log LEVEL     kernel log level: error, warn, info (default), debug, trace
  --no-bridge     no host bridge (and no link device)
  --no-disk       no disk (default: ~/.local/state/aetheros/disk.img, or
                  $AETHER_DISK, made as an empty 256 MiB file system on
                  first use)
  -h, --help      this text";

struct Options {
    firmware: Firmware,
    tests: Option<Option<String>>,
    log: LogLevel,
    no_bridge: bool,
    no_disk: bool,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        firmware: Firmware::Bios,
        tests: None,
        log: LogLevel::Info,
        no_bridge: false,
        no_disk: false,
    };
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--uefi" => o.firmware = Firmware::Uefi,
            "--bios" => o.firmware = Firmware::Bios,
            "--no-bridge" => o.no_bridge = true,
            "--no-disk" => o.no_disk = true,
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
    // The console gets the host bridge beside it, over a shared-memory link
    // (docs/jobs.md); kernel test runs do not need it.
    let bridge = if opts.tests.is_none() && !opts.no_bridge {
        match HostBridge::start() {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("AetherOS: no host bridge ({e}); host jobs will wait");
                None
            }
        }
    } else {
        None
    };
    // The console gets a disk too (docs/storage.md), made on first use.
    let disk = if opts.tests.is_none() && !opts.no_disk {
        match default_disk() {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("AetherOS: no disk ({e})");
                None
            }
        }
    } else {
        None
    };
    let mut extra = bridge.as_ref().map(HostBridge::qemu_args).unwrap_or_default();
    if let Some((path, _)) = &disk {
        extra.extend(aetheros::runner::blk_device_args(path, false));
    }
    let launch = Launch {
        cpu: Default::default(),
        extra,
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
    if let Some(b) = &bridge {
        b.banner();
    }
    if let Some((path, made)) = &disk {
        eprintln!(
            "AetherOS: disk {}{}",
            path.display(),
            if *made {
                " (new: with the sample dataset /datasets/sample.bin)"
            } else {
                ""
            }
        );
    }
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

/// The console's disk: `$AETHER_DISK` or `~/.local/state/aetheros/disk.img`,
/// made when it does not exist as a 512 MiB file system (sparse) holding
/// the 256 MiB sample dataset `/datasets/sample.bin` (`tools/aether-disk`).
/// An existing disk that would not mount is attached as it is (never
/// replaced: it may hold someone's data), with a warning saying how to get
/// a fresh one. Whether it was just made.
fn default_disk() -> Result<(std::path::PathBuf, bool), String> {
    let path = match std::env::var_os("AETHER_DISK") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
            .join(".local/state/aetheros/disk.img"),
    };
    if path.exists() {
        if let Err(e) = aether_disk::mount(&path, false) {
            eprintln!(
                "warning: {} does not mount ({e}); the kernel will refuse it. Move it away to get a fresh disk.",
                path.display()
            );
        }
        return Ok((path, false));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    eprintln!("making {} (512 MiB, with a 256 MiB sample dataset)...", path.display());
    aether_disk::default_disk(&path, 512 << 20).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((path, true))
}

/// The host bridge (`tools/host-bridge`) running beside QEMU for the
/// console: its process, the link's shared-memory file and its state.
struct HostBridge {
    child: std::process::Child,
    shm: std::path::PathBuf,
    state: std::path::PathBuf,
}

impl HostBridge {
    /// The HTTP API's port (the bridge's default).
    const PORT: u16 = 7878;

    fn start() -> std::io::Result<HostBridge> {
        let shm = std::path::PathBuf::from(format!("/dev/shm/aetheros-link-{}", std::process::id()));
        // One state directory per run: opsd keeps no jobs across boots yet
        // (job ids start again at 1), so a bridge must not take a new boot's
        // job 1 for the last one's. Within the run, a restarted bridge
        // re-adopts from it.
        let base = match std::env::var_os("AETHER_BRIDGE_STATE") {
            Some(dir) => std::path::PathBuf::from(dir),
            None => std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                .join(".local/state/aetheros/bridge"),
        };
        let state = base.join(format!("run-{}", std::process::id()));
        std::fs::create_dir_all(&state)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state.join("bridge.log"))?;
        let child = aetheros::bridge::serve(&shm, &state, Self::PORT, log)?;
        Ok(HostBridge { child, shm, state })
    }

    /// QEMU's side of the link: an ivshmem-plain device over the file.
    fn qemu_args(&self) -> Vec<String> {
        aetheros::runner::link_device_args(&self.shm, 1024)
    }

    fn banner(&self) {
        eprintln!(
            "AetherOS: host bridge: HTTP API on http://127.0.0.1:{}, bearer token in {}, log in {}",
            Self::PORT,
            self.state.join("token").display(),
            self.state.join("bridge.log").display()
        );
    }
}

impl Drop for HostBridge {
    /// The guest is gone for good: the bridge stops its jobs (SIGTERM:
    /// each job gets its grace, docs/jobs.md) and exits; one that has not
    /// exited by then is killed. (A bridge that crashes instead leaves its
    /// jobs running, for a new bridge on the same state to re-adopt.)
    fn drop(&mut self) {
        let running = self.child.try_wait().is_ok_and(|s| s.is_none());
        if running {
            eprintln!("AetherOS: stopping the host bridge and its jobs (each within its grace)");
            if !aetheros::bridge::shut_down(&mut self.child, std::time::Duration::from_secs(40)) {
                eprintln!(
                    "AetherOS: the host bridge did not shut down cleanly; see {}",
                    self.state.join("bridge.log").display()
                );
            }
        }
        let _ = std::fs::remove_file(&self.shm);
    }
}
