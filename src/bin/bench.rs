//! Boot benchmark: boots the image N times in the benchmark QEMU
//! configuration (shared/bench/linux-guest, plus the VGA card the BIOS
//! bootloader needs) and prints `BENCH` lines and their medians.
//!
//!   cargo run --release --bin bench -- [--runs N] [--linux]
//!
//! `--linux` interleaves boots of the Linux baseline guest
//! (../shared/bench/linux-guest/run.sh) and prints the ratio of medians.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use aether_abi::boot::{BootArgs, CONSOLE_READY_MARKER, ConsoleReady, LogLevel, Mode, OnPanic};
use aetheros::runner::{Firmware, Launch, Qemu, Serial, Session};

const LIMIT: Duration = Duration::from_secs(60);

struct Boot {
    host_ms: f64,
    kernel_ms: f64,
    /// `BOOTPHASE name micros` lines the kernel prints after the marker.
    phases: Vec<(String, f64)>,
}

fn boot_once(qemu: &Qemu) -> Result<Boot, String> {
    let args = BootArgs {
        mode: Mode::Bench,
        on_panic: OnPanic::Exit,
        log: LogLevel::Info,
    };
    let launch = Launch {
        cpu: Default::default(),
        firmware: Firmware::Bios,
        serial: Serial::Piped,
        cmdline: args.to_string(),
    };
    let cmd = qemu.command(&aetheros::images(), &launch).map_err(|e| e.to_string())?;
    // Timed like run.sh: from just before QEMU starts to the marker line.
    let t0 = Instant::now();
    let mut s = Session::spawn(cmd, LIMIT).map_err(|e| e.to_string())?;
    s.expect(CONSOLE_READY_MARKER, LIMIT).map_err(|e| e.to_string())?;
    let host_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let rest = s.expect("\n", LIMIT).map_err(|e| e.to_string())?;
    let ready = ConsoleReady::find_in(&format!("{CONSOLE_READY_MARKER}{rest}")).ok_or("malformed marker line")?;
    let (status, out) = s.wait(LIMIT).map_err(|e| e.to_string())?;
    if status.code() != Some(0) {
        return Err(format!("QEMU exited with {status}:\n{out}"));
    }
    let phases = out
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("BOOTPHASE ")? + "BOOTPHASE ".len()..];
            let (name, us) = rest.trim_end().split_once(' ')?;
            Some((name.to_string(), us.parse::<f64>().ok()? / 1000.0))
        })
        .collect();
    Ok(Boot {
        host_ms,
        kernel_ms: ready.entry_to_prompt_ns as f64 / 1e6,
        phases,
    })
}

fn linux_once(script: &PathBuf) -> Result<f64, String> {
    let out = Command::new("bash")
        .arg(script)
        .arg("1")
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("BENCH boot_host_qemu_start_to_userspace "))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no boot figure from the Linux guest:\n{text}"))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn summary(name: &str, v: &mut [f64]) -> f64 {
    let m = median(v);
    println!(
        "SUMMARY {name} ms median={m:.2} min={:.2} max={:.2} n={}",
        v[0],
        v[v.len() - 1],
        v.len()
    );
    m
}

fn main() -> ExitCode {
    let mut runs = 5;
    let mut linux = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => match args.next().and_then(|n| n.parse().ok()).filter(|&n: &usize| n > 0) {
                Some(n) => runs = n,
                None => {
                    eprintln!("error: --runs needs a positive number");
                    return ExitCode::from(2);
                }
            },
            "--linux" => linux = true,
            "-h" | "--help" => {
                println!("usage: cargo run --release --bin bench -- [--runs N] [--linux]");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("error: unknown option '{other}' (try --help)");
                return ExitCode::from(2);
            }
        }
    }
    let qemu = match aetheros::locate_qemu() {
        Ok(q) => q,
        Err(code) => return code,
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/linux-guest/run.sh");
    let (mut host, mut kernel, mut lin) = (vec![], vec![], vec![]);
    let mut phases: Vec<(String, Vec<f64>)> = vec![];
    for i in 0..runs {
        match boot_once(&qemu) {
            Ok(b) => {
                println!("BENCH boot_host_qemu_start_to_prompt {:.1} ms", b.host_ms);
                println!("BENCH boot_kernel_entry_to_prompt {:.3} ms", b.kernel_ms);
                host.push(b.host_ms);
                kernel.push(b.kernel_ms);
                for (name, ms) in b.phases {
                    match phases.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, v)) => v.push(ms),
                        None => phases.push((name, vec![ms])),
                    }
                }
            }
            Err(e) => {
                eprintln!("error: boot {} failed: {e}", i + 1);
                return ExitCode::FAILURE;
            }
        }
        if linux {
            match linux_once(&script) {
                Ok(ms) => {
                    println!("BENCH linux_boot_host_qemu_start_to_userspace {ms:.1} ms");
                    lin.push(ms);
                }
                Err(e) => {
                    eprintln!("error: Linux baseline boot failed: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let h = summary("boot_host_qemu_start_to_prompt", &mut host);
    summary("boot_kernel_entry_to_prompt", &mut kernel);
    for (name, v) in &mut phases {
        summary(&format!("boot_phase_{name}"), v);
    }
    if linux {
        let l = summary("linux_boot_host_qemu_start_to_userspace", &mut lin);
        println!("RATIO linux_userspace/aether_prompt {:.2}", l / h);
    }
    ExitCode::SUCCESS
}
