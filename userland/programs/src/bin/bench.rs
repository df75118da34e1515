//! In-guest micro-benchmarks, printed as `BENCH <name> <value> <unit>` lines
//! with the names and units of the Linux-guest baseline
//! (`/work/shared/bench/linux-guest`), then `BENCH_DONE`.
//!
//! `bench [quick]`: `quick` divides every iteration count by 10 (for tests).
//! Run it from the console as `run --prio 1 bench`. The hog timer figures need
//! this process at a higher priority (a smaller number) than the hog's 30 (the
//! default 16 qualifies too), and so does `group_kill_64` (its 64 spinners run
//! at 30): both are skipped with a `BENCHERR ... priority` otherwise. The
//! ping-pong partner runs at this process's own priority, read from `Ps`.
//! Any failure prints `BENCHERR <name> <what>` (`<what>` is an errno name such
//! as `TimedOut`), the run goes on with the next figure, and the exit code is 1.
//!
//! `ctxsw_pipe_roundtrip` is the figure compared with Linux's pipe ping-pong:
//! two processes exchange a word through the kernel, each message one
//! `send_recv` call (a request and the wait for its answer, as the pipe
//! benchmark's write then read). `ctxsw_send_then_recv_roundtrip` does the
//! same with separate `send` and `recv` calls (four calls a round trip).
//! `bench --pong` / `--pong-separate` is the partner: it answers every
//! mailbox word to its sender until it receives [`PONG_QUIT`].
#![no_std]
#![no_main]

extern crate alloc;

use core::fmt;

use aether_abi::syscall::{
    DEFAULT_PRIORITY, Errno, ExitStatus, GroupChoice, Pgid, Pid, ProcRequest, ProcResponse, Target, WaitTarget,
};
use aether_rt::{Args, entry, println, proc, sys};
use alloc::vec::Vec;

entry!(main);

/// The priority of the CPU hogs (timer under load, group kill).
const HOG_PRIORITY: u8 = 30;
/// Processes in the group of `group_kill_64`.
const GROUP_KILL_N: usize = 64;
/// The word that ends `bench --pong` (words are 64 bits, returned in `rdx`).
const PONG_QUIT: u64 = u64::MAX;
/// How long the ping-pong may take in all before it counts as hung.
const PINGPONG_TIMEOUT_NS: u64 = 60_000_000_000;
const MS: u64 = 1_000_000;
/// The longest [`Bench::settle`] waits for the end of memory warming.
const SETTLE_TIMEOUT_NS: u64 = 30_000_000_000;
/// Points per call of `metric_emit_per_s_batched`, and its calls.
const METRIC_BATCH: usize = 256;
const METRIC_BATCHES: u64 = 128;
/// Calls (one point each) of `metric_emit_per_s_single`. Both runs'
/// points (about 57 000 of 44 bytes each in the kernel, warm-ups
/// included) fit in the kernel's 4 MiB buffer with nothing draining it.
const METRIC_SINGLES: u64 = 20_000;
/// Untimed calls before each run.
const METRIC_WARMUP: u64 = 16;

fn main(args: Args) -> i32 {
    let div = match args.get(1) {
        None => 1,
        Some("quick") => 10,
        Some("--pong") => return pong(Ipc::SendRecv),
        Some("--pong-separate") => return pong(Ipc::SendThenRecv),
        Some(other) => {
            println!("bench: unknown argument '{other}'; usage: bench [quick]");
            return 2;
        }
    };
    let mut b = Bench { failed: false };
    let me = sys::getpid();
    let my_prio = match own_priority(me) {
        Ok(p) => Some(p),
        Err(e) => {
            b.err("priority", e);
            None
        }
    };

    // Every figure is the steady state: after the idle loop's first pass
    // over free memory, whose host page faults stall the CPU for ms at a
    // time in the first seconds after boot (docs/boot.md, "Boot time").
    b.settle();
    b.getppid(100_000 / div);
    b.postcard(20_000 / div);
    let prio = my_prio.unwrap_or(DEFAULT_PRIORITY);
    b.pingpong(20_000 / div, 1000 / div, prio, Ipc::SendRecv);
    b.pingpong(20_000 / div, 1000 / div, prio, Ipc::SendThenRecv);
    b.timer("timer_1ms", 500 / div);
    b.metric_emit(METRIC_BATCHES / div, METRIC_BATCH);
    b.metric_emit(METRIC_SINGLES / div, 1);
    // Both need to preempt processes at HOG_PRIORITY: at a priority not above
    // theirs this process would starve (the group kill could never start).
    let above_hogs = my_prio.is_some_and(|p| p < HOG_PRIORITY);
    if above_hogs {
        b.timer_hog(500 / div);
        b.group_kill();
    } else {
        b.fail("timer_1ms_hog", "priority");
        b.fail("group_kill_64", "priority");
    }

    println!("BENCH_DONE");
    if b.failed { 1 } else { 0 }
}

struct Bench {
    /// A `BENCHERR` was printed.
    failed: bool,
}

impl Bench {
    /// A failed call: the errno's name (one word, like `TimedOut`).
    fn err(&mut self, name: &str, e: Errno) {
        self.fail(name, format_args!("{e:?}"));
    }

    fn fail(&mut self, name: &str, what: impl fmt::Display) {
        self.failed = true;
        println!("BENCHERR {name} {what}");
    }

    /// Waits (up to [`SETTLE_TIMEOUT_NS`]) until the kernel has warmed free
    /// memory.
    fn settle(&mut self) {
        let deadline = sys::clock_ns().saturating_add(SETTLE_TIMEOUT_NS);
        loop {
            match proc::request(&ProcRequest::SystemInfo) {
                Ok(ProcResponse::SystemInfo(info)) if !info.memory_warming => return,
                Ok(ProcResponse::SystemInfo(_)) => {}
                Ok(_) => return self.fail("settle", "answer"),
                Err(e) => return self.err("settle", e),
            }
            if sys::clock_ns() > deadline {
                return self.err("settle", Errno::TimedOut);
            }
            sys::sleep_ms(10);
        }
    }

    /// `syscall_getppid`: the null syscall.
    fn getppid(&mut self, n: u64) {
        for _ in 0..1000 {
            core::hint::black_box(sys::getppid());
        }
        let t0 = sys::clock_ns();
        for _ in 0..n {
            core::hint::black_box(sys::getppid());
        }
        let dt = sys::clock_ns().saturating_sub(t0);
        report("syscall_getppid", Fixed3::ratio(dt, n), "ns/call");
    }

    /// `metric_emit_per_s_batched` / `_single`: `calls` `METRIC` emits of
    /// `batch` points each (a gauge with a step, encoded by the runtime's
    /// `metric::emit` at each call), in points per second.
    fn metric_emit(&mut self, calls: u64, batch: usize) {
        use aether_abi::metric::{MetricKind, MetricPoint};
        use aether_rt::metric;
        let name = if batch == 1 {
            "metric_emit_per_s_single"
        } else {
            "metric_emit_per_s_batched"
        };
        let Some(point) = MetricPoint::new("bench_loss", MetricKind::Gauge, 0.5) else {
            return self.fail(name, "point");
        };
        let mut points: Vec<MetricPoint> = (0..batch as u64)
            .map(|i| MetricPoint {
                step: Some(i),
                ..point.clone()
            })
            .collect();
        // The first emit after boot reserves the kernel's 4 MiB buffer (the
        // heap maps and zeroes it): a one-time cost, not the rate.
        for _ in 0..METRIC_WARMUP {
            if let Err(e) = metric::emit(&points) {
                return self.err(name, e.errno());
            }
        }
        let t0 = sys::clock_ns();
        for c in 0..calls {
            if let Some(p) = points.first_mut() {
                p.value = c as f64;
            }
            match metric::emit(&points) {
                Ok(n) if n == batch => {}
                Ok(_) => return self.fail(name, "short"),
                Err(e) => return self.err(name, e.errno()),
            }
        }
        let dt = sys::clock_ns().saturating_sub(t0);
        let n = calls * batch as u64;
        report(
            name,
            Fixed3::ratio(n.saturating_mul(1_000_000_000), dt.max(1)),
            "points/s",
        );
    }

    /// `syscall_postcard_roundtrip`: one framed request with its encoding
    /// and decoding on both sides.
    fn postcard(&mut self, n: u64) {
        const NAME: &str = "syscall_postcard_roundtrip";
        let call = || match proc::request(&ProcRequest::SystemInfo) {
            Ok(ProcResponse::SystemInfo(info)) => {
                core::hint::black_box(info);
                Ok(())
            }
            Ok(_) => Err(Errno::BadFrame),
            Err(e) => Err(e),
        };
        for _ in 0..100 {
            if let Err(e) = call() {
                return self.err(NAME, e);
            }
        }
        let t0 = sys::clock_ns();
        for _ in 0..n {
            if let Err(e) = call() {
                return self.err(NAME, e);
            }
        }
        let dt = sys::clock_ns().saturating_sub(t0);
        report(NAME, Fixed3::ratio(dt, n), "ns/call");
    }

    /// `ctxsw_pipe_roundtrip`: one word to a `bench --pong` child and back
    /// (two switches per round trip), both at `priority`.
    fn pingpong(&mut self, n: u64, warmup: u64, priority: u8, ipc: Ipc) {
        let (name, pong_arg) = match ipc {
            Ipc::SendRecv => ("ctxsw_pipe_roundtrip", "--pong"),
            Ipc::SendThenRecv => ("ctxsw_send_then_recv_roundtrip", "--pong-separate"),
        };
        let child = match proc::spawn("bench", &[pong_arg], priority, GroupChoice::Inherit) {
            Ok((pid, _)) => pid,
            Err(e) => return self.err(name, e),
        };
        // One deadline for the whole run, so a dead partner cannot hang the
        // benchmark, without a clock read per round trip.
        let deadline = sys::clock_ns().saturating_add(PINGPONG_TIMEOUT_NS);
        let mut result = ping(child, 0..warmup, deadline, ipc);
        let t0 = sys::clock_ns();
        if result.is_ok() {
            result = ping(child, warmup..warmup + n, deadline, ipc);
        }
        let dt = sys::clock_ns().saturating_sub(t0);
        // Stop the partner: tell it if all went well, else (or if it cannot be
        // told) terminate it, as it may be stuck.
        if result.is_err() || sys::send(child, PONG_QUIT).is_err() {
            let _ = proc::kill(Target::Process(child), 0);
        }
        let exit = proc::wait(child);
        match result {
            Ok(()) => report(name, Fixed3::ratio(dt, n), "ns/roundtrip"),
            Err(e) => return self.fail(name, e),
        }
        match exit {
            Ok(r) if r.status == ExitStatus::Exited(0) => {}
            Ok(r) => self.fail(name, format_args!("pong-ended-{:?}", r.status)),
            Err(e) => self.err(name, e),
        }
    }

    /// `<name>_{p50,p99,max}`: oversleep of `n` 1 ms sleeps, in µs.
    fn timer(&mut self, name: &str, n: u64) {
        let mut over: Vec<u64> = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let t0 = sys::clock_ns();
            let wake = t0.saturating_add(MS);
            sys::sleep_until(wake);
            over.push(sys::clock_ns().saturating_sub(wake));
        }
        over.sort_unstable();
        let len = over.len();
        let at = |i: usize| Fixed3::ratio(over.get(i).copied().unwrap_or(0), 1000);
        report_suffixed(name, "_p50", at(len / 2), "us");
        report_suffixed(name, "_p99", at(len * 99 / 100), "us");
        report_suffixed(name, "_max", at(len.saturating_sub(1)), "us");
    }

    /// `timer_1ms_hog_*`: the timer figures with a `spin` at a lower priority.
    fn timer_hog(&mut self, n: u64) {
        const NAME: &str = "timer_1ms_hog";
        let pgid = match proc::spawn("spin", &[], HOG_PRIORITY, GroupChoice::New) {
            Ok((_, pgid)) => pgid,
            Err(e) => return self.err(NAME, e),
        };
        // Let the hog get going (as the Linux baseline does).
        sys::sleep_ms(20);
        self.timer(NAME, n);
        if let Err(e) = end_group(pgid) {
            self.err(NAME, e);
        }
    }

    /// `group_kill_64`: kill a group of 64 spinning processes at once and
    /// wait until every member is reported ended, in ms.
    fn group_kill(&mut self) {
        const NAME: &str = "group_kill_64";
        let pgid = match spawn_spinners(GROUP_KILL_N) {
            Ok(pgid) => pgid,
            Err((e, None)) => return self.err(NAME, e),
            Err((e, Some(pgid))) => {
                self.fail(NAME, format_args!("spawn-{e:?}"));
                if let Err(e) = end_group(pgid) {
                    self.err(NAME, e);
                }
                return;
            }
        };
        let target = Target::Group(pgid);
        let t0 = sys::clock_ns();
        let killed = proc::kill(target, 0);
        let ended = proc::request(&ProcRequest::Wait {
            target: WaitTarget::Group(pgid),
            block: true,
        });
        let dt = sys::clock_ns().saturating_sub(t0);
        if let Err(e) = killed {
            return self.err(NAME, e);
        }
        match ended {
            Ok(ProcResponse::GroupExited { forced, members, .. }) => {
                report(NAME, Fixed3::ratio(dt, MS), "ms");
                if members.len() != GROUP_KILL_N {
                    self.fail(NAME, format_args!("members={}", members.len()));
                }
                let unforced = members.iter().filter(|m| !m.forced).count();
                if !forced || unforced > 0 {
                    self.fail(NAME, format_args!("forced={forced} unforced-members={unforced}"));
                }
            }
            Ok(_) => self.err(NAME, Errno::BadFrame),
            Err(e) => self.err(NAME, e),
        }
    }
}

/// `bench --pong`: echo every word to its sender until [`PONG_QUIT`].
fn pong(ipc: Ipc) -> i32 {
    let Ok((mut sender, mut word)) = sys::recv(0) else {
        return 2;
    };
    loop {
        if word == PONG_QUIT {
            return 0;
        }
        let next = match ipc {
            Ipc::SendRecv => sys::send_recv(sender, word, 0),
            Ipc::SendThenRecv => match sys::send(sender, word) {
                Ok(()) => sys::recv(0),
                Err(_) => return 3,
            },
        };
        match next {
            Ok((s, w)) => (sender, word) = (s, w),
            Err(_) => return 2,
        }
    }
}

/// How the two processes of the ping-pong talk: one `send_recv` call per
/// message (request and answer, as L4/seL4 `call`), or `send` then `recv`
/// (two calls, as a pipe's write then read).
#[derive(Clone, Copy)]
enum Ipc {
    SendRecv,
    SendThenRecv,
}

/// Round trips with `child`, one per word of `words`.
fn ping(child: Pid, words: core::ops::Range<u64>, deadline: u64, ipc: Ipc) -> Result<(), PingError> {
    for i in words {
        let answer = match ipc {
            Ipc::SendRecv => sys::send_recv(child, i, deadline),
            Ipc::SendThenRecv => {
                sys::send(child, i).map_err(PingError::Send)?;
                sys::recv(deadline)
            }
        };
        match answer {
            Ok((from, word)) if from == child && word == i => {}
            Ok((from, word)) => return Err(PingError::Unexpected(from, word)),
            Err(e) => return Err(PingError::Recv(e)),
        }
    }
    Ok(())
}

enum PingError {
    Send(Errno),
    Recv(Errno),
    /// A word from someone else, or not the one sent.
    Unexpected(Pid, u64),
}

impl fmt::Display for PingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PingError::Send(e) => write!(f, "{e:?}"),
            PingError::Recv(e) => write!(f, "{e:?}"),
            PingError::Unexpected(from, word) => write!(f, "unexpected-word-{word}-from-{from}"),
        }
    }
}

/// Spawns `n` `spin`s at [`HOG_PRIORITY`] into one new group. On an error,
/// the group if one was made (its members are still running).
fn spawn_spinners(n: usize) -> Result<Pgid, (Errno, Option<Pgid>)> {
    let (_, pgid) = proc::spawn("spin", &[], HOG_PRIORITY, GroupChoice::New).map_err(|e| (e, None))?;
    for _ in 1..n {
        proc::spawn("spin", &[], HOG_PRIORITY, GroupChoice::Join(pgid)).map_err(|e| (e, Some(pgid)))?;
    }
    Ok(pgid)
}

/// Terminates a group at once and waits until it is empty.
fn end_group(pgid: Pgid) -> Result<(), Errno> {
    proc::kill(Target::Group(pgid), 0)?;
    match proc::request(&ProcRequest::Wait {
        target: WaitTarget::Group(pgid),
        block: true,
    })? {
        ProcResponse::GroupExited { .. } => Ok(()),
        _ => Err(Errno::BadFrame),
    }
}

/// This process's priority, from the process table.
fn own_priority(me: Pid) -> Result<u8, Errno> {
    let mut after = 0;
    loop {
        let ProcResponse::Procs { entries, more } = proc::request(&ProcRequest::Ps { after })? else {
            return Err(Errno::BadFrame);
        };
        if let Some(p) = entries.iter().find(|p| p.pid == me) {
            return Ok(p.priority);
        }
        match entries.last() {
            Some(last) if more && last.pid > after => after = last.pid,
            _ => return Err(Errno::NoSuchProcess),
        }
    }
}

fn report(name: &str, value: Fixed3, unit: &str) {
    println!("BENCH {name} {value} {unit}");
}

fn report_suffixed(name: &str, suffix: &str, value: Fixed3, unit: &str) {
    println!("BENCH {name}{suffix} {value} {unit}");
}

/// A non-negative number printed with 3 decimals (as `%.3f`), kept as
/// thousandths: no floating point in this target.
#[derive(Clone, Copy)]
struct Fixed3(u128);

impl Fixed3 {
    /// `num / den`, rounded to the nearest thousandth (0 if `den` is 0).
    fn ratio(num: u64, den: u64) -> Self {
        if den == 0 {
            return Fixed3(0);
        }
        let den = den as u128;
        Fixed3((num as u128 * 1000 + den / 2) / den)
    }
}

impl fmt::Display for Fixed3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}
