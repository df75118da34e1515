//! The serial console, in ring 3: reads the console line byte by byte, edits
//! it with `console::line`, parses it with `console::command` and runs the
//! command through the `PROC` syscall. Jobs started with `run` are reaped
//! before every prompt (docs/console.md).
#![no_std]
#![no_main]

use aether_abi::boot::{ConsoleReady, PROMPT};
use aether_abi::console::{CommandHelp, MemReport, UptimeReport};
use aether_abi::syscall::{
    EVENTS_PAGE, Errno, ExitRecord, ExitStatus, PS_PAGE, Pgid, Pid, ProcInfo, ProcRequest, ProcResponse, SystemInfo,
    Target, WaitTarget, WatchdogAction, WatchdogEvent, WatchdogKind,
};
use aether_rt::{Args, entry, print, println, proc, sys};
use console::command::{self, COMMANDS, Command, Run, WatchdogSetting};
use console::line::{LineEditor, LineEvent};
use core::fmt;
use kcore::rtc::DateTime;
use serde::Serialize;

entry!(main);

fn main(args: Args) -> i32 {
    let ready = ConsoleReady {
        entry_to_prompt_ns: sys::clock_ns(),
    };
    println!("{ready}");
    // The boot benchmark (kernel `mode=bench`): ready is all it measures.
    if args.iter().any(|a| a == "--boot-bench") {
        let _ = proc::request(&ProcRequest::Shutdown);
        return 1;
    }
    prompt();
    let mut editor = LineEditor::new();
    let mut buf = [0u8; 256];
    loop {
        let n = match sys::console_read(&mut buf, false) {
            Ok(n) => n.min(buf.len()),
            Err(_) => {
                // Not expected from a blocking read; do not spin on it.
                sys::sleep_ms(10);
                continue;
            }
        };
        for &byte in &buf[..n] {
            match editor.feed(byte, &mut |echo| {
                let _ = sys::console_write(echo);
            }) {
                Some(LineEvent::Submitted) => {
                    execute(editor.line());
                    prompt();
                }
                Some(LineEvent::Cancelled) => prompt(),
                None => {}
            }
        }
    }
}

/// One JSON document on its own line.
fn json_line(value: &impl Serialize) {
    let mut buf = [0u8; 512];
    match serde_json_core::to_slice(value, &mut buf) {
        Ok(n) => {
            let _ = sys::console_write(buf.get(..n).unwrap_or_default());
            let _ = sys::console_write(b"\r\n");
        }
        Err(_) => println!("error: report does not fit the JSON buffer"),
    }
}

/// Nanoseconds as milliseconds with three decimals: `1.234`.
struct Ms(u64);

impl fmt::Display for Ms {
    /// Milliseconds with three decimals, honouring width and alignment.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s: heapless::String<32> = heapless::String::new();
        let _ = fmt::Write::write_fmt(
            &mut s,
            format_args!("{}.{:03}", self.0 / 1_000_000, self.0 % 1_000_000 / 1_000),
        );
        f.pad(&s)
    }
}

/// The line that reports how a process ended.
struct ExitLine<'a>(&'a ExitRecord);

impl fmt::Display for ExitLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(f, "[pid {}] ", r.pid)?;
        match r.status {
            ExitStatus::Exited(code) => write!(
                f,
                "exited with code {code} (cpu {} ms, ran {} ms)",
                Ms(r.cpu_ns),
                Ms(r.runtime_ns)
            ),
            ExitStatus::Killed => f.write_str("killed (forced)"),
            ExitStatus::Watchdog => f.write_str("killed by watchdog"),
            ExitStatus::Faulted(fault) => {
                f.write_str(fault.kind.as_str())?;
                if let aether_abi::syscall::FaultKind::Other(vector) = fault.kind {
                    write!(f, " {vector}")?;
                }
                if fault.kind == aether_abi::syscall::FaultKind::PageFault {
                    write!(f, " at {:#x}", fault.addr)?;
                }
                write!(f, " (rip {:#x})", fault.rip)
            }
        }
    }
}

struct TargetName(Target);

impl fmt::Display for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Target::Process(pid) => write!(f, "process {pid}"),
            Target::Group(pgid) => write!(f, "group {pgid}"),
        }
    }
}

struct KindName(WatchdogKind);

impl fmt::Display for KindName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            WatchdogKind::Heartbeat { period_ms } => write!(f, "heartbeat {period_ms} ms"),
            WatchdogKind::Deadline { within_ms } => write!(f, "deadline {within_ms} ms"),
        }
    }
}

struct ActionName(WatchdogAction);

impl fmt::Display for ActionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            WatchdogAction::Warn => f.write_str("warn"),
            WatchdogAction::Stop { grace_ms } => write!(f, "stop (grace {grace_ms} ms)"),
            WatchdogAction::Kill => f.write_str("kill"),
        }
    }
}

/// Any answer but the expected one is a protocol error.
const UNEXPECTED: Errno = Errno::BadFrame;

fn system_info() -> Result<SystemInfo, Errno> {
    match proc::request(&ProcRequest::SystemInfo)? {
        ProcResponse::SystemInfo(info) => Ok(info),
        _ => Err(UNEXPECTED),
    }
}

/// One page of the process table after `after`.
fn ps_page(after: Pid) -> Result<(heapless::Vec<ProcInfo, PS_PAGE>, bool), Errno> {
    match proc::request(&ProcRequest::Ps { after })? {
        ProcResponse::Procs { entries, more } => Ok((entries, more)),
        _ => Err(UNEXPECTED),
    }
}

fn events_page(after: u64) -> Result<(heapless::Vec<WatchdogEvent, EVENTS_PAGE>, bool), Errno> {
    match proc::request(&ProcRequest::WatchdogEvents { after })? {
        ProcResponse::WatchdogEvents { events, more } => Ok((events, more)),
        _ => Err(UNEXPECTED),
    }
}

/// Reports finished background jobs, then prints the prompt.
fn prompt() {
    reap();
    print!("{PROMPT}");
}

/// Collects every child that has ended, without blocking.
fn reap() {
    loop {
        match proc::request(&ProcRequest::Wait {
            target: WaitTarget::AnyChild,
            block: false,
        }) {
            Ok(ProcResponse::Exited(record)) => println!("{}", ExitLine(&record)),
            // NotYet, NothingToWait (no children), an error: nothing more now.
            _ => return,
        }
    }
}

/// The group of process `pid`, from the process table.
fn pgid_of(pid: Pid) -> Option<Pgid> {
    let mut after = 0;
    loop {
        let (entries, more) = ps_page(after).ok()?;
        if let Some(p) = entries.iter().find(|p| p.pid == pid) {
            return Some(p.pgid);
        }
        let last = entries.last()?.pid;
        if !more || last <= after {
            return None;
        }
        after = last;
    }
}

fn execute(line: &str) {
    match command::parse(line) {
        Ok(Command::Nothing) => {}
        Ok(Command::Help { json }) => help(json),
        Ok(Command::Uptime { json }) => uptime(json),
        Ok(Command::Mem { json }) => mem(json),
        Ok(Command::Echo { rest }) => println!("{rest}"),
        Ok(Command::Shutdown) => {
            println!("powering off");
            if let Err(e) = proc::request(&ProcRequest::Shutdown) {
                println!("error: shutdown: {e}");
            }
        }
        Ok(Command::Ps { json }) => ps(json),
        Ok(Command::Run(spec)) => run(&spec),
        Ok(Command::Kill { target, grace_ms }) => kill(target, grace_ms),
        Ok(Command::Watchdog { pgid, setting }) => watchdog(pgid, setting),
        Ok(Command::Events { json }) => events(json),
        Err(e) => println!("error: {e}"),
    }
}

/// Stops a process or group and waits for the end (the console refuses to
/// stop itself: nothing would be left to type at).
fn kill(target: Target, grace_ms: u32) {
    let me = sys::getpid();
    let suicide = match target {
        Target::Process(pid) => pid == me,
        Target::Group(pgid) => pgid_of(me) == Some(pgid),
    };
    if suicide {
        return match target {
            Target::Process(pid) => println!("error: kill: pid {pid} is the console itself"),
            Target::Group(pgid) => println!("error: kill: group {pgid} holds the console"),
        };
    }
    let members = match proc::kill(target, grace_ms) {
        Ok(n) => n,
        Err(e) => return println!("error: kill: {e}"),
    };
    println!("stopping {members} process(es), grace {grace_ms} ms");
    match target {
        Target::Process(pid) => match proc::wait(pid) {
            Ok(record) => println!("{}", ExitLine(&record)),
            Err(e) => println!("error: kill: {e}"),
        },
        Target::Group(pgid) => match proc::request(&ProcRequest::Wait {
            target: WaitTarget::Group(pgid),
            block: true,
        }) {
            Ok(ProcResponse::GroupExited { pgid, forced, members }) => {
                println!("group {pgid}: {} member(s) ended, forced={forced}", members.len());
                for record in &members {
                    println!("{}", ExitLine(record));
                }
            }
            Ok(_) => println!("error: kill: {UNEXPECTED}"),
            Err(e) => println!("error: kill: {e}"),
        },
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
            println!("  {:<18} {}", c.usage, c.summary);
        }
    }
}

fn uptime(json: bool) {
    let info = match system_info() {
        Ok(info) => info,
        Err(e) => return println!("error: uptime: {e}"),
    };
    let report = UptimeReport {
        uptime_ns: info.uptime_ns,
        boot_unix_s: info.boot_unix_s,
    };
    if json {
        return json_line(&report);
    }
    let ns = report.uptime_ns;
    print!("up {}.{:09} s ({} ns), ", ns / 1_000_000_000, ns % 1_000_000_000, ns);
    match report.boot_unix_s {
        0 => println!("boot time unknown (no RTC)"),
        t => println!("booted {}", DateTime::from_unix_seconds(t)),
    }
}

fn mem(json: bool) {
    let info = match system_info() {
        Ok(info) => info,
        Err(e) => return println!("error: mem: {e}"),
    };
    let report = MemReport {
        frame_size: info.frame_size,
        frames_total: info.frames_total,
        frames_used: info.frames_used,
        frames_free: info.frames_total.saturating_sub(info.frames_used),
        heap_size: info.heap_size,
        heap_used: info.heap_used,
        heap_free: info.heap_size.saturating_sub(info.heap_used),
        heap_limit: info.heap_limit,
    };
    if json {
        return json_line(&report);
    }
    let kib = |frames: u64| frames.saturating_mul(report.frame_size) / 1024;
    println!(
        "frames: {} used, {} free, {} total ({} KiB used, {} KiB free)",
        report.frames_used,
        report.frames_free,
        report.frames_total,
        kib(report.frames_used),
        kib(report.frames_free)
    );
    println!(
        "heap:   {} bytes used, {} free, {} mapped (grows to {})",
        report.heap_used, report.heap_free, report.heap_size, report.heap_limit
    );
}

fn ps(json: bool) {
    let mut after = 0;
    let mut first = true;
    loop {
        let (entries, more) = match ps_page(after) {
            Ok(page) => page,
            Err(e) => return println!("error: ps: {e}"),
        };
        if first && !json {
            println!(
                "{:>5} {:>5} {:>4} {:<8} {:>12} NAME",
                "PID", "PGID", "PRIO", "STATE", "CPU(ms)"
            );
        }
        first = false;
        for p in &entries {
            if json {
                json_line(p);
            } else {
                let stopping = if p.stopping { " (stopping)" } else { "" };
                println!(
                    "{:>5} {:>5} {:>4} {:<8} {:>12} {}{stopping}",
                    p.pid,
                    p.pgid,
                    p.priority,
                    p.state.as_str(),
                    Ms(p.cpu_ns),
                    p.name.as_str()
                );
            }
        }
        // Pids grow along the table; stop on a page that does not advance.
        match entries.last() {
            Some(last) if more && last.pid > after => after = last.pid,
            _ => return,
        }
    }
}

fn run(spec: &Run) {
    let (pid, pgid) = match proc::spawn(spec.program, spec.args.as_slice(), spec.priority, spec.group) {
        Ok(ids) => ids,
        Err(e) => return println!("error: run: {e}"),
    };
    if spec.background {
        return println!("[pid {pid} pgid {pgid}] started");
    }
    match proc::wait(pid) {
        Ok(record) => println!("{}", ExitLine(&record)),
        Err(e) => println!("error: run: {e}"),
    }
}

fn watchdog(pgid: Pgid, setting: WatchdogSetting) {
    let target = Target::Group(pgid);
    match setting {
        WatchdogSetting::Arm { kind, action } => {
            match proc::request(&ProcRequest::ArmWatchdog { target, kind, action }) {
                Ok(ProcResponse::WatchdogArmed) => println!(
                    "watchdog armed on group {pgid}: {}, action {}",
                    KindName(kind),
                    ActionName(action)
                ),
                Ok(_) => println!("error: watchdog: {UNEXPECTED}"),
                Err(e) => println!("error: watchdog: {e}"),
            }
        }
        WatchdogSetting::Off => match proc::request(&ProcRequest::DisarmWatchdog { target }) {
            Ok(ProcResponse::WatchdogDisarmed) => println!("watchdog disarmed on group {pgid}"),
            Ok(_) => println!("error: watchdog: {UNEXPECTED}"),
            Err(e) => println!("error: watchdog: {e}"),
        },
    }
}

fn events(json: bool) {
    let mut after = 0;
    loop {
        let (page, more) = match events_page(after) {
            Ok(page) => page,
            Err(e) => return println!("error: events: {e}"),
        };
        for e in &page {
            if json {
                json_line(e);
                continue;
            }
            print!(
                "#{} {} {} lapsed: late {} ms, ",
                e.seq,
                TargetName(e.target),
                KindName(e.kind),
                Ms(e.fired_ns.saturating_sub(e.deadline_ns))
            );
            if let WatchdogKind::Heartbeat { .. } = e.kind {
                match e.last_heartbeat_ns {
                    0 => print!("no heartbeat yet, "),
                    t => print!("last heartbeat at {} ms, ", Ms(t)),
                }
            }
            println!("action {}", ActionName(e.action));
        }
        match page.last() {
            Some(last) if more && last.seq > after => after = last.seq,
            _ => break,
        }
    }
}
