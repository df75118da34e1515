//! The serial console, in ring 3: reads the console line byte by byte, edits
//! it with `console::line`, parses it with `console::command` and runs the
//! command through the `PROC` syscall. Jobs started with `run` are reaped
//! before every prompt (docs/console.md). `job ...` commands are requests
//! to opsd through the `JOB` service call.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "console/files.rs"]
mod files;
#[path = "console/telemetry.rs"]
mod telemetry;

use aether_abi::boot::{ConsoleReady, PROMPT};
use aether_abi::console::{CommandHelp, MemReport, UptimeReport};
use aether_abi::job::{
    self, Arg, JOB_RESPONSE_MAX, JobError, JobName, JobRecord, JobReply, JobRequest, JobResponse, JobSpec,
    LOG_CHUNK_MAX, Stream,
};
use aether_abi::syscall::{
    EVENTS_PAGE, Errno, ExitRecord, ExitStatus, PS_PAGE, Pgid, Pid, ProcInfo, ProcRequest, ProcResponse, SystemInfo,
    Target, WaitTarget, WatchdogAction, WatchdogEvent, WatchdogKind, decode, encode, nr,
};
use aether_abi::telemetry::{HistoryRange, TelemetryRequest};
use aether_rt::{Args, entry, print, println, proc, sys};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use console::command::{self, COMMANDS, Command, JobCommand, JobStart, Run, WatchdogSetting};
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

/// One JSON document on its own line, of any size up to 16 KiB.
fn json_line_sized(value: &impl Serialize) {
    for size in [1024, 16 * 1024] {
        let mut buf = vec![0u8; size];
        if let Ok(n) = serde_json_core::to_slice(value, &mut buf) {
            let _ = sys::console_write(buf.get(..n).unwrap_or_default());
            let _ = sys::console_write(b"\r\n");
            return;
        }
    }
    println!("error: the JSON line is longer than 16 KiB");
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
        Ok(Command::WatchdogLog { json }) => watchdog_log(json),
        Ok(Command::Events { after, follow, json }) => telemetry::events(after, follow, json),
        Ok(Command::Metrics {
            job_id,
            name,
            history,
            steps,
            time,
            json,
        }) => {
            let range = match (steps, time) {
                (Some((from, to)), _) => HistoryRange::Steps { from, to },
                (None, Some((from_ms, to_ms))) => HistoryRange::Time { from_ms, to_ms },
                (None, None) => HistoryRange::All,
            };
            telemetry::metrics(job_id, name, history.then_some(range), json)
        }
        Ok(Command::Alerts { json }) => telemetry::alerts(json),
        Ok(Command::AlertsReload) => telemetry::reload(TelemetryRequest::ReloadRules),
        Ok(Command::Routes { json }) => telemetry::routes(json),
        Ok(Command::RoutesReload) => telemetry::reload(TelemetryRequest::ReloadRoutes),
        Ok(Command::ArtifactsList { job_id, json }) => telemetry::artifacts_ls(job_id, json),
        Ok(Command::Artifact { spec, pin, json }) => telemetry::artifact(&spec, pin, json),
        Ok(Command::ArtifactsReload) => telemetry::reload(TelemetryRequest::ReloadArtifactPolicy),
        Ok(Command::Job(cmd)) => job_command(&cmd),
        Ok(Command::Ls { path, json }) => files::ls(path, json),
        Ok(Command::Cat { path }) => files::cat(path),
        Ok(Command::Stat { path, json }) => files::stat(path, json),
        Ok(Command::Df { json }) => files::df(json),
        Ok(Command::Cache { json }) => files::cache(json),
        Ok(Command::DropCache) => files::drop_cache(),
        Ok(Command::Mkdir { path }) => files::mkdir(path),
        Ok(Command::Rm { path }) => files::rm(path),
        Ok(Command::Mv { from, to }) => files::mv(from, to),
        Ok(Command::Write { path, append, text }) => files::write(path, append, text),
        Ok(Command::Sync) => files::sync(),
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
        memory_warming: info.memory_warming,
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
    if report.memory_warming {
        println!("free memory is still being warmed after boot: wakeups may be late by a few ms");
    }
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

fn watchdog_log(json: bool) {
    let mut after = 0;
    loop {
        let (page, more) = match events_page(after) {
            Ok(page) => page,
            Err(e) => return println!("error: watchdog log: {e}"),
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

/// Why a `job` request failed: the service call itself, or opsd's answer.
enum JobFail {
    Sys(Errno),
    Job(JobError),
}

impl fmt::Display for JobFail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobFail::Sys(Errno::NoSuchService) => f.write_str("the ops daemon (opsd) is not running"),
            JobFail::Sys(e) => write!(f, "{e}"),
            // `as_str`, with the detail (`(SUCCEEDED)`, the spec problem).
            JobFail::Job(e) => write!(f, "{e}"),
        }
    }
}

/// One `JOB` service call: a postcard `JobRequest` in, a `JobReply` out.
/// Both buffers are on the heap (16 KiB and `JOB_RESPONSE_MAX`).
fn job_call(request: &JobRequest) -> Result<JobResponse, JobFail> {
    let mut out = vec![0u8; job::REQUEST_MAX];
    let bytes = encode(request, &mut out).map_err(JobFail::Sys)?;
    let mut answer = vec![0u8; JOB_RESPONSE_MAX];
    let n = sys::framed(nr::JOB, bytes, &mut answer).map_err(JobFail::Sys)?;
    let reply: JobReply = decode(answer.get(..n).ok_or(JobFail::Sys(Errno::BadFrame))?).map_err(JobFail::Sys)?;
    reply.map_err(JobFail::Job)
}

fn job_error(e: JobFail) {
    println!("error: job: {e}");
}

/// A record as one JSON line. A record's JSON is about 2 KiB at most
/// (escaped names and messages can make it longer: then a bigger buffer).
fn job_json(record: &JobRecord) {
    for size in [4096, 16 * 1024] {
        let mut buf = vec![0u8; size];
        if let Ok(n) = serde_json_core::to_slice(record, &mut buf) {
            let _ = sys::console_write(buf.get(..n).unwrap_or_default());
            let _ = sys::console_write(b"\r\n");
            return;
        }
    }
    println!("error: job: record does not fit the JSON buffer");
}

/// Milliseconds as seconds with three decimals, `-` for none.
struct Secs(Option<u64>);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s: heapless::String<32> = heapless::String::new();
        let _ = match self.0 {
            Some(ms) => fmt::Write::write_fmt(&mut s, format_args!("{}.{:03}s", ms / 1000, ms % 1000)),
            None => fmt::Write::write_str(&mut s, "-"),
        };
        f.pad(&s)
    }
}

/// How it exited: `0`, `sig 9` or `-`.
struct ExitCol<'a>(&'a JobRecord);

impl fmt::Display for ExitCol<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s: heapless::String<24> = heapless::String::new();
        let _ = match (self.0.exit_code, self.0.signal) {
            (Some(code), _) => fmt::Write::write_fmt(&mut s, format_args!("{code}")),
            (None, Some(sig)) => fmt::Write::write_fmt(&mut s, format_args!("sig {sig}")),
            (None, None) => fmt::Write::write_str(&mut s, "-"),
        };
        f.pad(&s)
    }
}

/// The one-line summary of a record (`job wait`, `job status`):
/// `job 3 (train): SUCCEEDED, exit code 0, exited, ran 1.234s`.
struct JobLine<'a>(&'a JobRecord);

impl fmt::Display for JobLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(f, "job {} ({}): {}", r.job_id, r.name.as_str(), r.status.as_str())?;
        if r.attempt > 1 {
            write!(f, ", attempt {}", r.attempt)?;
        }
        if let Some(code) = r.exit_code {
            write!(f, ", exit code {code}")?;
        }
        if let Some(sig) = r.signal {
            write!(f, ", signal {sig}")?;
        }
        if let Some(reason) = r.termination_reason {
            write!(f, ", {}", reason.as_str())?;
        }
        if r.forced_kill {
            f.write_str(", forced kill")?;
        }
        if r.runtime_ms.is_some() {
            write!(f, ", ran {}", Secs(r.runtime_ms))?;
        }
        if !r.message.is_empty() {
            write!(f, ": {}", r.message.as_str())?;
        }
        Ok(())
    }
}

fn job_command(cmd: &JobCommand) {
    match *cmd {
        JobCommand::Start(ref start) => job_start(start),
        JobCommand::List { json } => job_list(json),
        JobCommand::Status { job_id, json } => match job_call(&JobRequest::Status { job_id }) {
            Ok(JobResponse::Status(record)) if json => job_json(&record),
            Ok(JobResponse::Status(record)) => job_status(&record),
            Ok(_) => job_error(JobFail::Sys(UNEXPECTED)),
            Err(e) => job_error(e),
        },
        JobCommand::Logs {
            job_id,
            stream,
            offset,
            follow,
        } => job_logs(job_id, stream, offset, follow),
        JobCommand::Stop { job_id } => match job_call(&JobRequest::Stop { job_id }) {
            Ok(JobResponse::Stopping) => println!("job {job_id} stopping"),
            Ok(_) => job_error(JobFail::Sys(UNEXPECTED)),
            Err(e) => job_error(e),
        },
        JobCommand::Wait { job_id, json } => match job_call(&JobRequest::Wait { job_id }) {
            Ok(JobResponse::Ended(record)) if json => job_json(&record),
            Ok(JobResponse::Ended(record)) => println!("{}", JobLine(&record)),
            Ok(_) => job_error(JobFail::Sys(UNEXPECTED)),
            Err(e) => job_error(e),
        },
    }
}

fn job_start(start: &JobStart) {
    // The parser keeps to the spec's bounds; a failure here is a bug, not
    // a panic.
    let Ok(name) = JobName::try_from(start.name) else {
        return println!("error: job start: the name is longer than {} bytes", job::NAME_MAX);
    };
    let mut spec = JobSpec {
        name,
        kind: start.kind,
        grace_ms: start.grace_ms,
        timeout_ms: start.timeout_ms,
        stall_ms: start.stall_ms,
        max_retries: start.max_retries,
        ..JobSpec::default()
    };
    for word in start.argv.as_slice() {
        let fits = Arg::try_from(*word)
            .ok()
            .is_some_and(|a| spec.entrypoint.push(a).is_ok());
        if !fits {
            return println!("error: job start: the command does not fit a job spec");
        }
    }
    match job_call(&JobRequest::Start(spec)) {
        Ok(JobResponse::Started { job_id }) => println!("job {job_id} started"),
        Ok(_) => job_error(JobFail::Sys(UNEXPECTED)),
        Err(e) => job_error(e),
    }
}

fn job_list(json: bool) {
    let mut after = 0;
    let mut first = true;
    loop {
        let (entries, more) = match job_call(&JobRequest::List { after }) {
            Ok(JobResponse::Jobs { entries, more }) => (entries, more),
            Ok(_) => return job_error(JobFail::Sys(UNEXPECTED)),
            Err(e) => return job_error(e),
        };
        if first && !json {
            println!(
                "{:>5} {:<10} {:>7} {:>12} {:>7} NAME",
                "ID", "STATUS", "ATTEMPT", "RUNTIME", "EXIT"
            );
        }
        first = false;
        for r in &entries {
            if json {
                job_json(r);
            } else {
                println!(
                    "{:>5} {:<10} {:>7} {:>12} {:>7} {}",
                    r.job_id,
                    r.status.as_str(),
                    r.attempt,
                    Secs(r.runtime_ms),
                    ExitCol(r),
                    r.name.as_str()
                );
            }
        }
        // Ids grow along the table; stop on a page that does not advance.
        match entries.last() {
            Some(last) if more && last.job_id > after => after = last.job_id,
            _ => return,
        }
    }
}

fn job_status(r: &JobRecord) {
    println!("{}", JobLine(r));
    println!("  status:             {}", r.status.as_str());
    println!("  message:            {}", r.message.as_str());
    println!("  attempt:            {}", r.attempt);
    match r.runtime_ms {
        Some(ms) => println!("  runtime_ms:         {ms}"),
        None => println!("  runtime_ms:         -"),
    }
    match (r.exit_code, r.signal) {
        (Some(code), _) => println!("  exit_code:          {code}"),
        (None, Some(sig)) => println!("  signal:             {sig}"),
        (None, None) => println!("  exit_code:          -"),
    }
    match r.termination_reason {
        Some(reason) => println!("  termination_reason: {}", reason.as_str()),
        None => println!("  termination_reason: -"),
    }
    println!("  forced_kill:        {}", r.forced_kill);
    println!(
        "  output:             {} B stdout, {} B stderr",
        r.stdout_bytes, r.stderr_bytes
    );
    println!("  metric_points:      {}", r.metric_points);
    for m in &r.latest_metrics {
        match m.step {
            Some(step) => println!("  metric {}={} (step {step})", m.name.as_str(), m.value),
            None => println!("  metric {}={}", m.name.as_str(), m.value),
        }
    }
}

/// Prints log bytes: UTF-8 text as it is (tabs and line ends kept, other
/// control characters escaped), anything else as `\xNN`. A character cut
/// by a page boundary waits for the next page.
struct LogPrinter {
    carry: Vec<u8>,
    /// The last character printed ended a line (or nothing was printed).
    line_start: bool,
}

impl LogPrinter {
    fn feed(&mut self, bytes: &[u8], last: bool) {
        let mut all = core::mem::take(&mut self.carry);
        all.extend_from_slice(bytes);
        let mut out = String::with_capacity(all.len() + 16);
        let mut rest = all.as_slice();
        loop {
            match core::str::from_utf8(rest) {
                Ok(text) => {
                    escape_text(&mut out, text);
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    escape_text(&mut out, core::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            let (invalid, after) = bad.split_at(n.min(bad.len()));
                            escape_bytes(&mut out, invalid);
                            rest = after;
                        }
                        // An incomplete sequence at the end.
                        None if last => {
                            escape_bytes(&mut out, bad);
                            break;
                        }
                        None => {
                            self.carry = bad.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        if let Some(c) = out.chars().last() {
            self.line_start = c == '\n';
            print!("{out}");
        }
    }

    /// Flushes a cut character and ends the last line, so that the prompt
    /// starts a line of its own.
    fn finish(&mut self) {
        self.feed(&[], true);
        if !self.line_start {
            println!();
            self.line_start = true;
        }
    }
}

fn escape_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\n' | '\t' | '\r' => out.push(c),
            c if c.is_control() => {
                let mut b = [0u8; 4];
                escape_bytes(out, c.encode_utf8(&mut b).as_bytes());
            }
            c => out.push(c),
        }
    }
}

fn escape_bytes(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = fmt::Write::write_fmt(out, format_args!("\\x{b:02x}"));
    }
}

/// How long `job logs --follow` waits between polls that found nothing.
const FOLLOW_POLL_MS: u64 = 200;

fn job_logs(job_id: u64, stream: Stream, mut offset: u64, follow: bool) {
    let mut printer = LogPrinter {
        carry: Vec::new(),
        line_start: true,
    };
    loop {
        let request = JobRequest::Logs {
            job_id,
            stream,
            offset,
            max: LOG_CHUNK_MAX as u32,
        };
        let (at, bytes, eof) = match job_call(&request) {
            Ok(JobResponse::Logs { offset, bytes, eof, .. }) => (offset, bytes, eof),
            Ok(_) => return job_error(JobFail::Sys(UNEXPECTED)),
            Err(e) => {
                printer.finish();
                return job_error(e);
            }
        };
        if at > offset {
            printer.finish();
            println!("[job logs: bytes {offset}..{at} are no longer kept]");
        }
        offset = at.saturating_add(bytes.len() as u64);
        printer.feed(&bytes, eof);
        if eof {
            return printer.finish();
        }
        if bytes.is_empty() {
            if !follow {
                // At the current end of a live job's stream.
                return printer.finish();
            }
            if interrupted() {
                printer.finish();
                println!("^C");
                return;
            }
            sys::sleep_ms(FOLLOW_POLL_MS);
        }
    }
}

/// Whether Ctrl-C was typed (what else was typed meanwhile is dropped: a
/// command's output is not an input line).
fn interrupted() -> bool {
    let mut buf = [0u8; 64];
    let mut seen = false;
    while let Ok(n) = sys::console_read(&mut buf, true) {
        if n == 0 {
            break;
        }
        seen |= buf[..n].contains(&0x03);
    }
    seen
}
