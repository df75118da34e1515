//! Benchmarks: boots the image N times in the benchmark QEMU configuration
//! (shared/bench/linux-guest, plus the VGA card the BIOS bootloader needs)
//! and prints `BENCH` lines and their medians.
//!
//!   cargo run --release --bin bench -- [--runs N] [--linux] [--guest]
//!
//! `--guest` also runs the in-guest `bench` program at the console of each
//! boot (syscall, context switch, timer, group kill figures).
//! `--link-probe` instead measures a candidate link transport (docs/jobs.md):
//! an `ivshmem-plain` shared-memory device backed by a file in /dev/shm,
//! written and read by the guest, then checked from the host.
//! `--jobs` instead measures the job runner through QEMU, opsd, the link
//! and the real host bridge's HTTP API (see `jobs.rs`).
//! `--storage` measures the block layer (see `storage.rs`); with `--linux`
//! its figures are set beside the Linux guest's direct reads.
//! `--files` measures files, the page cache, mmap and async IO from user
//! space (see `files.rs`); with `--linux`, each figure beside the Linux
//! guest's of the same name, with the issue's target ratio.
//! `--linux` interleaves boots of the Linux baseline guest
//! (../shared/bench/linux-guest/run.sh) and prints the ratio of medians for
//! every figure both kernels report.

mod files;
mod jobs;
mod storage;
mod telemetry;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use aether_abi::boot::{BootArgs, CONSOLE_READY_MARKER, ConsoleReady, LogLevel, Mode, OnPanic, PROMPT};
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
        extra: Vec::new(),
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

/// `BENCH name value unit` lines in `text`.
fn bench_lines(text: &str) -> Vec<(String, f64, String)> {
    text.lines()
        .filter_map(|l| {
            let rest = &l[l.find("BENCH ")? + "BENCH ".len()..];
            let mut w = rest.split_whitespace();
            let (name, value, unit) = (w.next()?, w.next()?.parse().ok()?, w.next()?);
            Some((name.to_string(), value, unit.to_string()))
        })
        .collect()
}

/// Starts a guest for a benchmark: BIOS, the serial line piped, `mode`
/// and `log` on its command line, `extra` QEMU arguments (devices), a
/// hard deadline of `limit`.
pub fn spawn_guest(
    qemu: &Qemu,
    mode: Mode<'_>,
    log: LogLevel,
    extra: Vec<String>,
    limit: Duration,
) -> Result<Session, String> {
    let args = BootArgs {
        mode,
        on_panic: OnPanic::Exit,
        log,
    };
    let launch = Launch {
        cpu: Default::default(),
        extra,
        firmware: Firmware::Bios,
        serial: Serial::Piped,
        cmdline: args.to_string(),
    };
    let cmd = qemu.command(&aetheros::images(), &launch).map_err(|e| e.to_string())?;
    Session::spawn(cmd, limit).map_err(|e| e.to_string())
}

/// Waits at the console (`mem --json`) until the kernel has warmed its free
/// memory after boot: until then a wakeup can be late by a host page fault
/// of about 5 ms (docs/boot.md, "The first seconds after boot"), and the
/// figures are steady-state ones.
pub fn settle(session: &mut Session) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = session
            .command("mem --json", PROMPT, Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let report = text
            .lines()
            .find_map(|l| serde_json::from_str::<aether_abi::console::MemReport>(l.trim()).ok())
            .ok_or_else(|| format!("mem --json: no report in {text:?}"))?;
        if !report.memory_warming {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("free memory still warming 60 s after boot".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One boot of the Linux baseline: every figure it prints.
fn linux_once(script: &PathBuf) -> Result<Vec<(String, f64, String)>, String> {
    let out = Command::new("bash")
        .arg(script)
        .arg("1")
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines = bench_lines(&text);
    if !lines.iter().any(|(n, _, _)| n == "boot_host_qemu_start_to_userspace") {
        return Err(format!("no boot figure from the Linux guest:\n{text}"));
    }
    Ok(lines)
}

/// Boots the console and runs the in-guest `bench` program.
fn guest_once(qemu: &Qemu) -> Result<Vec<(String, f64, String)>, String> {
    let mut s = spawn_guest(
        qemu,
        Mode::Console,
        LogLevel::Warn,
        Vec::new(),
        Duration::from_secs(300),
    )?;
    s.expect(PROMPT, LIMIT).map_err(|e| e.to_string())?;
    // Above opsd (3) and the console (2), so neither shares its CPU, and
    // above the hog of the timer figure (30).
    let text = s
        .command("run --prio 1 bench", PROMPT, Duration::from_secs(240))
        .map_err(|e| e.to_string())?;
    if !text.contains("BENCH_DONE") || text.contains("BENCHERR") {
        return Err(format!("the in-guest bench failed:\n{text}"));
    }
    let _ = s.send("shutdown\r");
    let _ = s.wait(LIMIT);
    Ok(bench_lines(&text))
}

/// The shared-memory transport probe: one boot with an ivshmem-plain
/// device over a /dev/shm file; the guest's figures, and the host's check
/// that it sees what the guest wrote.
fn link_probe(qemu: &Qemu) -> Result<Vec<(String, f64, String)>, String> {
    let shm = PathBuf::from(format!("/dev/shm/aether-link-probe-{}", std::process::id()));
    let s = spawn_guest(
        qemu,
        Mode::Test(Some("link_ivshmem_bandwidth")),
        LogLevel::Info,
        aetheros::runner::link_device_args(&shm, 4096),
        LIMIT,
    )?;
    let (status, out) = s.wait(LIMIT).map_err(|e| e.to_string())?;
    let seen = std::fs::read(&shm).map_err(|e| format!("{}: {e}", shm.display()));
    let _ = std::fs::remove_file(&shm);
    if status.code() != Some(33) {
        return Err(format!("the probe failed ({status}):\n{out}"));
    }
    let seen = seen?;
    if seen.get(..8) != Some(&b"AETHSHM1"[..]) {
        return Err("the host does not see the guest's marker in the shared file".into());
    }
    Ok(bench_lines(&out))
}

/// Adds `lines` to the per-figure samples.
fn collect(all: &mut Vec<(String, String, Vec<f64>)>, lines: Vec<(String, f64, String)>) {
    for (name, value, unit) in lines {
        match all.iter_mut().find(|(n, _, _)| *n == name) {
            Some((_, _, v)) => v.push(value),
            None => all.push((name, unit, vec![value])),
        }
    }
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
    let mut guest = false;
    let mut probe = false;
    let mut jobs = false;
    let mut storage = false;
    let mut files = false;
    let mut telemetry = false;
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
            "--guest" => guest = true,
            "--link-probe" => probe = true,
            "--jobs" => jobs = true,
            "--storage" => storage = true,
            "--files" => files = true,
            "--telemetry" => telemetry = true,
            "-h" | "--help" => {
                println!(
                    "usage: cargo run --release --bin bench -- [--runs N] [--linux] [--guest] | --link-probe | --jobs | --storage [--linux] | --files [--linux] | --telemetry"
                );
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
    if probe || jobs || storage || files || telemetry {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/linux-guest/run.sh");
        let mut all = vec![];
        let mut theirs = vec![];
        for i in 0..runs {
            if (storage || files) && linux {
                match linux_once(&script) {
                    Ok(lines) => collect(&mut theirs, lines),
                    Err(e) => {
                        eprintln!("error: Linux baseline boot failed: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            let result = if jobs {
                jobs::once(&qemu)
            } else if telemetry {
                telemetry::once(&qemu)
            } else if storage {
                storage::once(&qemu)
            } else if files {
                files::once(&qemu)
            } else {
                link_probe(&qemu)
            };
            match result {
                Ok(lines) => {
                    for (n, v, u) in &lines {
                        println!("BENCH {n} {v:.2} {u}");
                    }
                    collect(&mut all, lines);
                }
                Err(e) => {
                    eprintln!("error: run {} failed: {e}", i + 1);
                    return ExitCode::FAILURE;
                }
            }
        }
        for (name, unit, v) in &mut all {
            let m = median(v);
            println!(
                "SUMMARY {name} {unit} median={m:.1} min={:.1} max={:.1} n={}",
                v[0],
                v[v.len() - 1],
                v.len()
            );
        }
        // The kernel's stream of 1 MiB requests beside Linux's 1 MiB
        // O_DIRECT reads of the same disk (the user-space async path, with
        // the Linux name, comes with the async IO syscalls).
        let find = |set: &mut Vec<(String, String, Vec<f64>)>, n: &str| {
            set.iter_mut().find(|(name, _, _)| name == n).map(|(_, _, v)| median(v))
        };
        for (ours, base, target) in files::TARGETS {
            if let (Some(a), Some(b)) = (find(&mut all, ours), find(&mut theirs, base)) {
                let ratio = a / b;
                println!(
                    "COMPARE {ours}/linux_{base} aether={a:.1} linux={b:.1} ratio={ratio:.2} target={target} {}",
                    if ratio >= *target { "met" } else { "MISSED" }
                );
            }
        }
        if let (Some(a), Some(b)) = (
            find(&mut all, "blk_seq_read_kernel_1m_q16"),
            find(&mut theirs, "blk_seq_read_direct_c"),
        ) {
            println!(
                "COMPARE blk_seq_read_kernel_1m_q16/linux_blk_seq_read_direct_c aether={a:.1} linux={b:.1} ratio={:.2}",
                a / b
            );
        }
        return ExitCode::SUCCESS;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/linux-guest/run.sh");
    let (mut host, mut kernel, mut lin) = (vec![], vec![], vec![]);
    let (mut ours, mut theirs) = (vec![], vec![]);
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
        if guest {
            match guest_once(&qemu) {
                Ok(lines) => {
                    for (n, v, u) in &lines {
                        println!("BENCH {n} {v:.3} {u}");
                    }
                    collect(&mut ours, lines);
                }
                Err(e) => {
                    eprintln!("error: in-guest bench {} failed: {e}", i + 1);
                    return ExitCode::FAILURE;
                }
            }
        }
        if linux {
            match linux_once(&script) {
                Ok(lines) => {
                    for (n, v, _) in &lines {
                        if n == "boot_host_qemu_start_to_userspace" {
                            println!("BENCH linux_boot_host_qemu_start_to_userspace {v:.1} ms");
                            lin.push(*v);
                        }
                    }
                    collect(&mut theirs, lines);
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
    for (name, unit, v) in &mut ours {
        let m = median(v);
        println!(
            "SUMMARY {name} {unit} median={m:.3} min={:.3} max={:.3} n={}",
            v[0],
            v[v.len() - 1],
            v.len()
        );
    }
    if linux {
        let l = summary("linux_boot_host_qemu_start_to_userspace", &mut lin);
        println!("RATIO linux_userspace/aether_prompt {:.2}", l / h);
        for (name, unit, v) in &mut ours {
            if let Some((_, _, w)) = theirs.iter_mut().find(|(n, _, _)| n == name) {
                let (a, b) = (median(v), median(w));
                println!("COMPARE {name} {unit} aether={a:.3} linux={b:.3} ratio={:.3}", a / b);
            }
        }
    }
    ExitCode::SUCCESS
}
