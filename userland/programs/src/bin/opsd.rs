//! opsd, the ops daemon (docs/jobs.md): the `JOB` server. It owns the job
//! table (`opsd-core`), answers the console's (and, through the bridge,
//! HTTP's) job requests, runs native jobs as process groups, and talks to
//! the host bridge over the link (`aether-link` frames over the kernel's
//! `link_read`/`link_write`). One loop, never blocking for long: a request
//! (waiting at most `TICK_NS`), the link, timers, native exits.
//!
//! With a disk, the table is kept under `/ops` (docs/jobs.md,
//! "Persistence"): `opsd-core` decides what is written when and what a
//! boot brings back; [`Files`] here only makes the file calls.
#![no_std]
#![no_main]

extern crate alloc;

use aether_abi::fs::{FileKind, FsError};
use aether_abi::job::{self, JOB_RESPONSE_MAX, JobKind, JobReply};
use aether_abi::link::{LinkMessage, LinkSplitter};
use aether_abi::syscall::{
    self as abi, Errno, ExitStatus, GroupChoice, ProcRequest, ProcResponse, Target, WaitTarget, nr,
};
use aether_abi::telemetry::{TelemetryRequest, TelemetryResponse};
use aether_link::{Config as LinkConfig, Endpoint};
use aether_rt::fs::{self, File};
use aether_rt::{Args, entry, event, metric, println, proc, sys};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use opsd_core::clock::WallClock;
use opsd_core::telemetry::{ROUTES_PATH, RULES_PATH};
use opsd_core::{Action, Config, Handled, Jobs, Store};

entry!(main);

/// How long one wait for a request lasts before the link gets a turn (the
/// link is polled: ivshmem-plain has no interrupt).
const LINK_TICK_NS: u64 = 2_000_000;
/// The same while the link is busy (bytes moved in the last
/// [`LINK_BUSY_NS`]): polled faster while traffic flows, as NAPI does
/// (an HTTP status call back to back: 2.1 ms -> 0.6 ms median).
const LINK_BUSY_TICK_NS: u64 = 500_000;
const LINK_BUSY_NS: u64 = 50_000_000;
/// The same while native jobs run (their ends are polled).
const NATIVE_TICK_NS: u64 = 10_000_000;
/// The longest wait when nothing else needs attention.
const IDLE_TICK_NS: u64 = 1_000_000_000;
/// Encoded frames waiting for room on the link, at most.
const PENDING_MAX: usize = 256 * 1024;

fn main(_args: Args) -> i32 {
    if let Err(e) = sys::serve_register(nr::JOB, job::REQUEST_MAX, JOB_RESPONSE_MAX) {
        println!("opsd: cannot serve JOB: {e}");
        return 1;
    }
    // The RTC's boot time, corrected by the bridge's timestamps.
    let mut clock = WallClock::new(boot_unix_ms());
    let mono_ms = || sys::clock_ns() / 1_000_000;
    // The jobs stored on the disk, if there is one (memory only if not).
    let mut jobs = Box::new(Jobs::restore(Config::default(), Box::new(Files), clock.now(mono_ms())));
    print_warnings(&mut jobs);
    // The alert rules on the disk, if any (a bad file: said once, no rules).
    if let TelemetryResponse::RulesRejected { line, reason } =
        jobs.telemetry_request(TelemetryRequest::ReloadRules, clock.now(mono_ms()))
    {
        println!("opsd: {RULES_PATH} line {line}: {reason}: no alert rules loaded");
    }
    if let TelemetryResponse::RulesRejected { line, reason } =
        jobs.telemetry_request(TelemetryRequest::ReloadRoutes, clock.now(mono_ms()))
    {
        println!("opsd: {ROUTES_PATH} line {line}: {reason}: alerts go to the event bus only");
    }
    let mut drain = vec![0u8; aether_abi::metric::EMIT_BYTES_MAX];
    // Points came from the kernel until then: drain faster.
    let mut metrics_busy_until = 0;
    let mut link = Link::open(clock.now(mono_ms()));
    let mut request = vec![0u8; job::REQUEST_MAX];
    let mut answer = vec![0u8; JOB_RESPONSE_MAX];
    // Waits on live jobs: (call id, job id), answered when the job ends.
    let mut waits: Vec<(u64, u64)> = Vec::new();
    // Native jobs: (pid, job id).
    let mut native: Vec<(u32, u64)> = Vec::new();
    // No banner: it would land in the middle of the console's output
    // (one serial line); `ps` shows opsd, `job` commands reach it.
    // The link moved bytes until then: poll it faster.
    let mut link_busy_until = 0;
    loop {
        let tick = if sys::clock_ns() < metrics_busy_until {
            METRICS_BUSY_TICK_NS
        } else if link.is_some() {
            if sys::clock_ns() < link_busy_until {
                LINK_BUSY_TICK_NS
            } else {
                LINK_TICK_NS
            }
        } else if !native.is_empty() {
            NATIVE_TICK_NS
        } else {
            // Until the table's next timer (timeouts, stalls), if sooner.
            let until_ms = jobs
                .next_deadline()
                .map_or(u64::MAX, |d| d.saturating_sub(clock.now(mono_ms())));
            IDLE_TICK_NS.min(until_ms.saturating_mul(1_000_000)).max(1_000_000)
        };
        match sys::serve_next(nr::JOB, &mut request, sys::clock_ns() + tick) {
            Ok((call, len)) => {
                let reply: JobReply = match abi::decode(&request[..len]) {
                    Ok(req) => match jobs.handle(req, clock.now(mono_ms())) {
                        Handled::Reply(r) => r,
                        Handled::Pending(job_id) => {
                            waits.push((call, job_id));
                            continue;
                        }
                    },
                    // Not a JobRequest: answered, never a crash.
                    Err(_) => Err(job::JobError::BadRequest),
                };
                answer_call(call, &reply, &mut answer);
            }
            Err(Errno::TimedOut) => {}
            Err(e) => {
                println!("opsd: serve_next: {e}");
                sys::sleep_ms(10);
            }
        }
        let now = clock.now(mono_ms());
        if let Some(l) = link.as_mut()
            && l.pump(&mut jobs, now, &mut clock)
        {
            link_busy_until = sys::clock_ns() + LINK_BUSY_NS;
        }
        jobs.tick(now);
        while let Some(action) = jobs.pop_action() {
            run_action(action, &mut jobs, &mut native, now);
        }
        if drain_metrics(&mut jobs, &native, &clock, &mut drain) {
            metrics_busy_until = sys::clock_ns() + LINK_BUSY_NS;
        }
        reap_native(&mut jobs, &mut native, now);
        publish_events(&mut jobs);
        print_warnings(&mut jobs);
        waits.retain(|&(call, job_id)| match jobs.wait_reply(job_id) {
            Some(reply) => {
                answer_call(call, &reply, &mut answer);
                false
            }
            None => true,
        });
        // State changes reach the bus through the telemetry (as events
        // with labels `from` and `to`).
        jobs.drain_events().for_each(drop);
    }
}

/// Rounds of [`drain_metrics`] per loop at most (each up to
/// `EMIT_BYTES_MAX` of records), so requests and the link get their turn.
const DRAIN_ROUNDS: usize = 16;
/// The loop's wait while native points flow.
const METRICS_BUSY_TICK_NS: u64 = 500_000;

/// Moves the points native programs emitted (kept by the kernel) into the
/// registry: a native job's by its group, others under job 0. Whether
/// there were any.
fn drain_metrics(jobs: &mut Jobs, native: &[(u32, u64)], clock: &WallClock, buf: &mut [u8]) -> bool {
    let mut any = false;
    for _ in 0..DRAIN_ROUNDS {
        let (n, dropped) = match metric::drain(buf) {
            Ok(r) => r,
            Err(e) => {
                println!("opsd: metric drain: {e}");
                return any;
            }
        };
        if dropped > 0 {
            jobs.telemetry_mut().kernel_dropped(dropped);
        }
        if n == 0 {
            break;
        }
        any = true;
        let now = clock.now(sys::clock_ns() / 1_000_000);
        for (h, point) in aether_abi::metric::drained(&buf[..n]) {
            let ts = clock.now(h.mono_ns / 1_000_000);
            match native.iter().find(|(pid, _)| *pid == h.group) {
                Some(&(_, job_id)) => jobs.native_metric(job_id, ts, &point, now),
                None => jobs.system_metric(ts, &point, now),
            }
        }
    }
    any
}

/// What the table has to say on the event bus.
fn publish_events(jobs: &mut Jobs) {
    let bodies: Vec<_> = jobs.telemetry_mut().drain_published().collect();
    let mut failed = 0;
    for body in &bodies {
        if event::publish(body).is_err() {
            failed += 1;
        }
    }
    if failed > 0 {
        jobs.telemetry_mut().publish_failed(failed);
    }
    // The console receiver's notifications.
    for line in jobs.telemetry_mut().drain_console() {
        println!("{line}");
    }
}

/// The table's warnings (damaged files, failed writes) on the console log.
fn print_warnings(jobs: &mut Jobs) {
    for line in jobs.drain_warnings() {
        println!("opsd: {line}");
    }
}

/// The file calls behind the table's [`Store`]. Each call opens and closes
/// its file, so nothing stays open that a rename or an unlink would find
/// busy.
struct Files;

/// Writes all of `bytes` at the file's position.
fn write_all(file: &mut File, mut bytes: &[u8]) -> Result<(), FsError> {
    while !bytes.is_empty() {
        match file.write(bytes)? {
            0 => return Err(FsError::Io),
            n => bytes = &bytes[n.min(bytes.len())..],
        }
    }
    Ok(())
}

impl Store for Files {
    fn list(&mut self, dir: &str) -> Result<Vec<String>, FsError> {
        Ok(fs::read_dir(dir)?
            .into_iter()
            .map(|e| String::from(e.name.as_str()))
            .collect())
    }

    fn mkdir(&mut self, dir: &str) -> Result<(), FsError> {
        fs::mkdir(dir)
    }

    fn size(&mut self, path: &str) -> Result<u64, FsError> {
        let stat = fs::stat(path)?;
        if stat.kind == FileKind::Dir {
            return Err(FsError::IsDir);
        }
        Ok(stat.size)
    }

    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        File::open(path)?.pread(buf, offset)
    }

    fn append(&mut self, path: &str, bytes: &[u8]) -> Result<(), FsError> {
        write_all(&mut File::append(path)?, bytes)
    }

    fn write(&mut self, path: &str, bytes: &[u8]) -> Result<(), FsError> {
        write_all(&mut File::create(path)?, bytes)
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), FsError> {
        fs::rename(from, to)
    }

    fn remove(&mut self, path: &str) -> Result<(), FsError> {
        fs::unlink(path)
    }

    fn sync(&mut self) -> Result<(), FsError> {
        fs::sync()
    }
}

fn answer_call(call: u64, reply: &JobReply, buf: &mut [u8]) {
    match abi::encode(reply, buf) {
        Ok(bytes) => {
            let n = bytes.len();
            if let Err(e) = sys::serve_reply(call, &buf[..n]) {
                println!("opsd: reply: {e}");
            }
        }
        Err(e) => println!("opsd: encode reply: {e}"),
    }
}

/// Wall-clock Unix milliseconds at boot (the kernel's RTC reading).
fn boot_unix_ms() -> u64 {
    match proc::request(&ProcRequest::SystemInfo) {
        Ok(ProcResponse::SystemInfo(i)) => (i.boot_unix_s * 1000)
            .saturating_add(i.uptime_ns / 1_000_000)
            .saturating_sub(sys::clock_ns() / 1_000_000),
        _ => 0,
    }
}

fn run_action(action: Action, jobs: &mut Jobs, native: &mut Vec<(u32, u64)>, now: u64) {
    match action {
        Action::SpawnNative { job_id, spec } => {
            let Some(program) = spec.entrypoint.first() else {
                return jobs.native_spawn_failed(job_id, "empty entrypoint", now);
            };
            let args: Vec<&str> = spec.entrypoint.iter().skip(1).map(|a| a.as_str()).collect();
            if spec.kind != JobKind::Native {
                return;
            }
            // Its console output (and its children's) comes to opsd as the
            // job's stdout (AetherOS programs have one output stream).
            match proc::spawn_captured(program, &args, spec.priority.min(31), GroupChoice::New) {
                Ok((pid, _)) => {
                    native.push((pid, job_id));
                    jobs.native_started(job_id, pid, now);
                }
                Err(e) => jobs.native_spawn_failed(job_id, e.as_str(), now),
            }
        }
        Action::StopNative { job_id, grace_ms } => {
            if let Some(&(pid, _)) = native.iter().find(|(_, j)| *j == job_id) {
                // The job's group is led by its first process.
                let _ = proc::kill(Target::Group(pid), grace_ms);
            }
        }
    }
}

/// Moves a native job's captured output into its log; whether the
/// capture has ended (no writer left, all read).
fn drain_output(jobs: &mut Jobs, pid: u32, job_id: u64, now: u64) -> bool {
    loop {
        match proc::read_output(pid) {
            Ok((bytes, ended)) => {
                if !bytes.is_empty() {
                    jobs.native_output(job_id, job::Stream::Stdout, &bytes, now);
                }
                if ended {
                    return true;
                }
                if bytes.is_empty() {
                    return false;
                }
            }
            // Gone (read out before) or never made: nothing more to read.
            Err(_) => return true,
        }
    }
}

/// Collects native jobs' output, and the ended ones (their group leader's
/// exit, after the output it wrote).
fn reap_native(jobs: &mut Jobs, native: &mut Vec<(u32, u64)>, now: u64) {
    native.retain(|&(pid, job_id)| {
        drain_output(jobs, pid, job_id, now);
        match proc::request(&ProcRequest::Wait {
            target: WaitTarget::Process(pid),
            block: false,
        }) {
            Ok(ProcResponse::Exited(r)) => {
                // The job ends with its leader: what its group left behind
                // goes too (as the bridge does on the host), then the rest
                // of the output is read.
                let _ = proc::kill(Target::Group(pid), 0);
                drain_output(jobs, pid, job_id, now);
                let (code, signal) = match r.status {
                    ExitStatus::Exited(c) => (Some(c), None),
                    // No signals in AetherOS: a kill reads as SIGKILL (9), a
                    // fault as SIGSEGV (11), like a shell would report them.
                    ExitStatus::Killed | ExitStatus::Watchdog => (None, Some(9)),
                    ExitStatus::Faulted(_) => (None, Some(11)),
                };
                jobs.native_exited(job_id, code, signal, r.forced, now);
                false
            }
            Ok(_) => true,
            Err(_) => {
                // Gone without a record (reaped elsewhere): ended unknown.
                jobs.native_exited(job_id, None, Some(9), true, now);
                false
            }
        }
    });
}

/// The host's clock in a message of the bridge, if it carries it.
fn host_time(msg: &LinkMessage) -> Option<u64> {
    match msg {
        LinkMessage::Started { started_ms, .. } => Some(*started_ms),
        LinkMessage::Exited { ended_ms, .. } => Some(*ended_ms),
        LinkMessage::Log(chunk) => Some(chunk.ts_ms),
        LinkMessage::Metric { ts_ms, .. } => Some(*ts_ms),
        _ => None,
    }
}

/// The link to the host bridge, if this machine has one.
struct Link {
    endpoint: Endpoint,
    splitter: Box<LinkSplitter>,
    /// Encoded frames not yet taken by `link_write`.
    pending: Vec<u8>,
    connected: bool,
}

impl Link {
    fn open(now_ms: u64) -> Option<Link> {
        // Probe: no device, or not ours, means no link.
        if sys::link_read(&mut []).is_err() {
            return None;
        }
        Some(Link {
            endpoint: Endpoint::new(now_ms, LinkConfig::default()),
            splitter: Box::new(LinkSplitter::new()),
            pending: Vec::new(),
            connected: false,
        })
    }

    /// One round of link I/O; whether any bytes came in. The host's
    /// timestamps in what came correct `clock` (for the next round).
    fn pump(&mut self, jobs: &mut Jobs, now: u64, clock: &mut WallClock) -> bool {
        let mono = sys::clock_ns() / 1_000_000;
        // In: bytes -> frames -> messages -> the job table.
        let mut buf = [0u8; 4096];
        let mut moved = false;
        let (splitter, endpoint) = (&mut self.splitter, &mut self.endpoint);
        while let Ok(n) = sys::link_read(&mut buf) {
            if n == 0 {
                break;
            }
            moved = true;
            splitter.push(&buf[..n], |frame| {
                if let Some(msg) = endpoint.receive(frame, now) {
                    if let Some(host_ms) = host_time(&msg) {
                        clock.observe(host_ms, mono);
                    }
                    jobs.on_link(msg, now);
                }
            });
        }
        let up = self.endpoint.is_connected();
        if up && !self.connected {
            jobs.on_bridge_connected(now);
        } else if !up && self.connected {
            jobs.on_bridge_lost(now);
        }
        self.connected = up;
        // Out: the table's messages while the window has room.
        while self.endpoint.has_room() {
            let Some(msg) = jobs.pop_outbox() else { break };
            if self.endpoint.send(&msg).is_err() {
                break;
            }
        }
        if self.pending.len() < PENDING_MAX {
            let pending = &mut self.pending;
            self.endpoint
                .poll_transmit(now, |frame| pending.extend_from_slice(frame));
        }
        while !self.pending.is_empty() {
            match sys::link_write(&self.pending) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.pending.drain(..n);
                }
            }
        }
        moved
    }
}
