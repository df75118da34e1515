//! `fuzz [N] [SEED]`: N (default 100000) random syscalls with random
//! arguments from ring 3 (xorshift64*, a fixed default seed), biased towards
//! interesting values: 0, 1, all ones, kernel and non-canonical addresses,
//! unmapped and read-only user addresses, ranges straddling the end of a
//! mapping, this program's own buffers, huge lengths, random framed requests.
//!
//! It avoids what would end or stall it or touch other processes: no EXIT,
//! sleeps and receives of at most ~100 us, console reads only non-blocking,
//! mailbox words only to itself or to pids nobody has, bounded heap growth,
//! and framed PROC requests are decoded here first: spawn, kill, shutdown,
//! watchdog arming, blocking waits and waits or disarms aimed at other
//! processes are skipped. The kernel writes only to buffers this program
//! owns or through pointers it must refuse. A wrong ABI_HELLO is undone at
//! once. Valid console writes are at most 8 dots.
//!
//! Where the kernel's answer is defined (a refused pointer, an unknown
//! number, a frame that does not decode, getpid...), it is checked: a wrong
//! one prints `fuzz: ANOMALY ...` (the first few) and makes the exit code 1.
//! Prints `fuzz: <n> calls` every 20000 calls and finally
//! `fuzz: N calls, K ok, E errors (<errno> <count>, ...)`.
#![no_std]
#![no_main]

extern crate alloc;

use core::fmt;

use aether_abi::syscall::{
    self as abi, ABI_VERSION, CONSOLE_IO_MAX, CONSOLE_READ_NONBLOCK, Errno, GroupChoice, PROC_RESPONSE_MAX,
    ProcRequest, ProcResponse, REQUEST_MAX, Target, WaitTarget, WatchdogAction, WatchdogKind, nr,
};
use aether_rt::{Args, entry, print, println, proc, sys};
use alloc::vec;
use alloc::vec::Vec;

entry!(main);

const DEFAULT_CALLS: u64 = 100_000;
const DEFAULT_SEED: u64 = 0x9e37_79b9_7f4a_7c15;
const PROGRESS_EVERY: u64 = 20_000;
/// The longest a sleep or receive may block.
const MAX_BLOCK_NS: u64 = 100_000;
/// How much the heap may really grow in all (beyond, only refused sizes).
const HEAP_BUDGET: u64 = 4 << 20;
/// Larger than any heap may be (`loader::HEAP_MAX` is 64 MiB): refused.
const HEAP_REFUSED: u64 = 1 << 27;
/// Pids and pgids from here on exist nowhere (pids count up from 1).
const NO_PID: u32 = 0x1000_0000;
/// Anomalies printed in full.
const ANOMALIES_SHOWN: u64 = 20;

const PAGE: u64 = 4096;
const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;
const USER_START: u64 = 0x1000;
/// `mm::user::USER_END`: its last page is never mapped.
const USER_END: u64 = 0x7fff_ffff_f000;
/// The program is loaded at 0x40_0000; nothing is mapped below it.
const PROGRAM_BASE: u64 = 0x40_0000;
/// Far above the program and its heap (64 MiB at most), far below the stack.
const UNMAPPED_LOW: u64 = 0x1_0000_0000;
const UNMAPPED_HIGH: u64 = 0x7000_0000_0000;

static RODATA: [u8; 256] = [0xa5; 256];

/// Values that tend to find off-by-ones.
const INTERESTING: [u64; 24] = [
    0,
    1,
    2,
    7,
    8,
    15,
    16,
    0x7f,
    0x80,
    0xff,
    PAGE - 1,
    PAGE,
    PAGE + 1,
    CONSOLE_IO_MAX as u64 + 1,
    REQUEST_MAX as u64,
    REQUEST_MAX as u64 + 1,
    PROC_RESPONSE_MAX as u64 - 1,
    PROC_RESPONSE_MAX as u64,
    u32::MAX as u64,
    1 << 32,
    i64::MAX as u64,
    1 << 63,
    u64::MAX - 1,
    u64::MAX,
];

/// Integer calls whose numbers with high bits set are still safe to try
/// (were the kernel to drop the high bits, none of them ends or blocks).
const HARMLESS: [u64; 8] = [
    nr::YIELD,
    nr::CLOCK,
    nr::GETPID,
    nr::GETPPID,
    nr::HEARTBEAT,
    nr::STOP_REQUESTED,
    14,
    21,
];

fn main(args: Args) -> i32 {
    let calls = match args.get(1).map(str::parse::<u64>) {
        None => DEFAULT_CALLS,
        Some(Ok(n)) => n,
        Some(Err(_)) => return usage(),
    };
    let seed = match args.get(2).map(parse_seed) {
        None => DEFAULT_SEED,
        Some(Some(s)) => s,
        Some(None) => return usage(),
    };
    let Some(mut f) = Fuzzer::new(&args, seed) else {
        println!("fuzz: cannot set up (no heap or own pid)");
        return 2;
    };
    println!("fuzz: {calls} calls, seed {seed:#x}, pid {}", f.me);
    let stopped = f.run(calls);
    f.report(stopped);
    if f.stats.anomalies == 0 { 0 } else { 1 }
}

fn usage() -> i32 {
    println!("fuzz: usage: fuzz [CALLS] [SEED]");
    2
}

fn parse_seed(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// xorshift64* (Vigna): never zero, good enough to pick arguments.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(if seed == 0 { DEFAULT_SEED } else { seed })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }

    /// True with probability `num / den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

#[derive(Default)]
struct Stats {
    calls: u64,
    ok: u64,
    /// Indexed by errno value (1..=17).
    errors: [u64; Errno::ALL.len() + 1],
    /// Negative values that are no errno.
    unknown_errors: u64,
    skipped: u64,
    anomalies: u64,
    /// Framed requests that decoded (and were sent).
    valid_frames: u64,
    /// Console input bytes read (typed while fuzzing).
    input_bytes: u64,
}

/// What a call must return, where the kernel defines it.
#[derive(Clone, Copy)]
enum Expect {
    /// Anything (but checked for sanity by the caller, if at all).
    Any,
    Err(Errno),
    /// One of two errors.
    Either(Errno, Errno),
    Ok(u64),
    /// Success, any value.
    AnyOk,
    /// `Ok(0)` or `BadAddress`: a zero-length range at a refused address.
    EmptyRange,
}

impl Expect {
    fn holds(self, got: Result<u64, Errno>) -> bool {
        match self {
            Expect::Any => true,
            Expect::Err(e) => got == Err(e),
            Expect::Either(a, b) => got == Err(a) || got == Err(b),
            Expect::Ok(v) => got == Ok(v),
            Expect::AnyOk => got.is_ok(),
            Expect::EmptyRange => got == Ok(0) || got == Err(Errno::BadAddress),
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Any => f.write_str("anything"),
            Expect::Err(e) => write!(f, "{e:?}"),
            Expect::Either(a, b) => write!(f, "{a:?}|{b:?}"),
            Expect::Ok(v) => write!(f, "Ok({v})"),
            Expect::AnyOk => f.write_str("Ok(_)"),
            Expect::EmptyRange => f.write_str("Ok(0)|BadAddress"),
        }
    }
}

/// How a buffer pointer was chosen.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ptr {
    /// Refused whatever the length (`len > 0`).
    Bad,
    /// Mapped for `.1` bytes, then unmapped or outside user space: refused
    /// for longer lengths.
    Straddle(u64),
    /// Mapped for ring 3 but read-only: refused for writes (`len > 0`).
    ReadOnly,
}

struct Fuzzer {
    rng: Rng,
    me: u32,
    ppid: u32,
    pgid: u32,
    stack_top: Option<u64>,
    /// Bytes of dots for valid console writes.
    text: [u8; 64],
    /// A console read buffer of `CONSOLE_IO_MAX`.
    rx: Vec<u8>,
    /// Framed request bytes (up to `REQUEST_MAX + 16`).
    req: Vec<u8>,
    /// The framed response buffer (`PROC_RESPONSE_MAX`).
    resp: Vec<u8>,
    heap_grown: u64,
    heap_end: u64,
    last_clock: u64,
    /// Dots on the current output line.
    dirty: bool,
    stats: Stats,
}

impl Fuzzer {
    fn new(args: &Args, seed: u64) -> Option<Self> {
        let me = sys::getpid();
        // This process's group, for waits on it.
        let pgid = match proc::request(&ProcRequest::Ps {
            after: me.saturating_sub(1),
        }) {
            Ok(ProcResponse::Procs { entries, .. }) => entries.iter().find(|p| p.pid == me)?.pgid,
            _ => return None,
        };
        let mut f = Fuzzer {
            rng: Rng::new(seed),
            me,
            ppid: sys::getppid(),
            pgid,
            stack_top: stack_top(args),
            text: [b'.'; 64],
            // Everything allocated up front: the heap never has to grow
            // while the fuzzer moves the heap's end itself.
            rx: vec![0u8; CONSOLE_IO_MAX],
            req: vec![0u8; REQUEST_MAX + 16],
            resp: vec![0u8; PROC_RESPONSE_MAX],
            heap_grown: 0,
            heap_end: 0,
            last_clock: sys::clock_ns(),
            dirty: false,
            stats: Stats::default(),
        };
        f.heap_end = sys::heap_grow(0).ok()? as u64;
        Some(f)
    }

    /// Prints a line of its own (after any dots).
    fn line(&mut self, args: fmt::Arguments) {
        if self.dirty {
            println!();
            self.dirty = false;
        }
        println!("{args}");
    }

    /// Runs `calls` calls; true if stopped early by a stop request.
    fn run(&mut self, calls: u64) -> bool {
        let mut next_progress = PROGRESS_EVERY;
        let mut iterations = 0u64;
        while self.stats.calls < calls {
            iterations += 1;
            if iterations.is_multiple_of(1024) && sys::stop_requested() {
                return true;
            }
            self.one();
            if self.stats.calls >= next_progress {
                self.line(format_args!("fuzz: {next_progress} calls"));
                next_progress += PROGRESS_EVERY;
            }
        }
        false
    }

    fn report(&mut self, stopped: bool) {
        if stopped {
            self.line(format_args!("fuzz: stop requested, ending early"));
        }
        let s = &self.stats;
        let errors: u64 = s.errors.iter().sum::<u64>() + s.unknown_errors;
        if self.dirty {
            println!();
        }
        print!("fuzz: {} calls, {} ok, {} errors (", s.calls, s.ok, errors);
        let mut first = true;
        for e in Errno::ALL {
            let n = s.errors[e as usize];
            if n > 0 {
                print!("{}{e:?} {n}", if first { "" } else { ", " });
                first = false;
            }
        }
        if s.unknown_errors > 0 {
            print!("{}unknown {}", if first { "" } else { ", " }, s.unknown_errors);
        }
        println!(")");
        println!(
            "fuzz: {} skipped, {} valid frames sent, {} input bytes read, {} anomalies",
            s.skipped, s.valid_frames, s.input_bytes, s.anomalies
        );
    }

    /// The raw call, counted and checked.
    ///
    /// # Safety
    /// Whatever the kernel may write through a pointer argument must be
    /// memory this program owns and does not otherwise use during the call.
    unsafe fn call(&mut self, n: u64, a: [u64; 6], expect: Expect) -> (Result<u64, Errno>, u64) {
        // SAFETY: the caller's contract.
        let (ret, rdx) = unsafe { sys::raw(n, a) };
        let got = Errno::from_ret(ret);
        self.stats.calls += 1;
        match got {
            Ok(_) => self.stats.ok += 1,
            Err(_) => match self.stats.errors.get_mut(ret.unsigned_abs() as usize) {
                Some(count) => *count += 1,
                None => self.stats.unknown_errors += 1,
            },
        }
        if !expect.holds(got) {
            self.anomaly(n, a, expect, got);
        }
        (got, rdx)
    }

    /// A call whose pointer arguments the kernel never writes through (or
    /// which are refused, or are this program's scratch buffers).
    fn call_safe(&mut self, n: u64, a: [u64; 6], expect: Expect) -> Result<u64, Errno> {
        // SAFETY: every caller passes only integers, pointers the kernel only
        // reads, pointers it must refuse, or the scratch buffers `rx`/`resp`
        // (which nothing reads as anything but bytes).
        unsafe { self.call(n, a, expect) }.0
    }

    /// [`Self::call_safe`] when only the check matters.
    fn probe(&mut self, n: u64, a: [u64; 6], expect: Expect) {
        let _ = self.call_safe(n, a, expect);
    }

    fn anomaly(&mut self, n: u64, a: [u64; 6], expect: Expect, got: Result<u64, Errno>) {
        self.stats.anomalies += 1;
        if self.stats.anomalies <= ANOMALIES_SHOWN {
            let got = Show(got);
            let calls = self.stats.calls;
            self.line(format_args!(
                "fuzz: ANOMALY call {} nr {n:#x} args [{:#x}, {:#x}, {:#x}, {:#x}, {:#x}, {:#x}]: expected {expect} got {got}",
                calls, a[0], a[1], a[2], a[3], a[4], a[5]
            ));
        }
    }

    fn note(&mut self, what: fmt::Arguments) {
        self.stats.anomalies += 1;
        if self.stats.anomalies <= ANOMALIES_SHOWN {
            let calls = self.stats.calls;
            self.line(format_args!("fuzz: ANOMALY call {calls}: {what}"));
        }
    }

    /// One iteration: pick a number and arguments, make the call(s).
    fn one(&mut self) {
        let n = match self.rng.below(100) {
            0..70 => self.rng.below(25),
            70..85 => nr::PROC,
            85..95 => self.rng.next(),
            _ => ((self.rng.next() | 1) << 32) | self.rng.pick(&HARMLESS),
        };
        let mut a = [0u64; 6];
        for v in &mut a {
            *v = self.any();
        }
        match n {
            nr::EXIT => self.stats.skipped += 1,
            nr::YIELD => {
                self.probe(n, a, Expect::Ok(0));
            }
            nr::CLOCK => {
                let got = self.call_safe(n, a, Expect::AnyOk);
                if let Ok(t) = got {
                    if t < self.last_clock {
                        let last = self.last_clock;
                        self.note(format_args!("clock went back from {last} to {t}"));
                    }
                    self.last_clock = t;
                }
            }
            nr::SLEEP_UNTIL => {
                let now = sys::clock_ns();
                if a[0] > now + MAX_BLOCK_NS {
                    a[0] = if self.rng.chance(1, 2) {
                        self.rng.below(now.max(1))
                    } else {
                        now + self.rng.below(MAX_BLOCK_NS)
                    };
                }
                self.probe(n, a, Expect::Ok(0));
            }
            nr::GETPID => {
                self.probe(n, a, Expect::Ok(self.me as u64));
            }
            nr::GETPPID => {
                self.probe(n, a, Expect::Ok(self.ppid as u64));
            }
            nr::CONSOLE_WRITE => self.console_write(a),
            nr::CONSOLE_READ => self.console_read(a),
            nr::HEARTBEAT | nr::STOP_REQUESTED => {
                let got = self.call_safe(n, a, Expect::AnyOk);
                if !matches!(got, Ok(0 | 1)) {
                    self.note(format_args!("nr {n} returned {}", Show(got)));
                }
            }
            nr::HEAP_GROW => self.heap_grow(a),
            nr::SEND => self.send(a),
            nr::RECV => self.recv(a),
            nr::SEND_RECV => self.send_recv(a),
            nr::ABI_HELLO => self.abi_hello(a),
            nr::PROC => self.framed(a),
            nr::JOB..=nr::FS => self.reserved_framed(n, a),
            _ if n > u32::MAX as u64 && HARMLESS.contains(&(n & 0xffff_ffff)) => {
                self.probe(n, a, Expect::Err(Errno::UnknownSyscall));
            }
            // Unassigned: the kernel must not look at the arguments. Pointers
            // among them are never this program's live data (`any`).
            _ => {
                self.probe(n, a, Expect::Err(Errno::UnknownSyscall));
            }
        }
    }

    /// Any argument, biased towards interesting values. Pointers among them
    /// are never to memory this program uses (only refused ones, code,
    /// read-only data, or the dots).
    fn any(&mut self) -> u64 {
        match self.rng.below(12) {
            0 => 0,
            1 => 1,
            2 => u64::MAX,
            3 | 4 => self.rng.pick(&INTERESTING),
            5 => self.bad_ptr(),
            6 => self.rng.range(USER_START, USER_END),
            7 => self.ro_ptr(),
            8 => self.text.as_ptr() as u64 + self.rng.below(64),
            9 => self.len_any(),
            10 => self.rng.below(4096),
            _ => self.rng.next(),
        }
    }

    /// Lengths: small, around the limits, or huge.
    fn len_any(&mut self) -> u64 {
        match self.rng.below(6) {
            0 => 0,
            1 => self.rng.below(17),
            2 => self.rng.below(CONSOLE_IO_MAX as u64 + 2),
            3 => self.rng.pick(&INTERESTING),
            4 => 1u64 << self.rng.below(64),
            _ => self.rng.next(),
        }
    }

    /// A pointer refused for any length > 0: its first byte is not user
    /// memory mapped for ring 3.
    fn bad_ptr(&mut self) -> u64 {
        match self.rng.below(10) {
            0 => 0,
            1 => self.rng.below(USER_START),
            2 => self.rng.range(USER_START, PROGRAM_BASE),
            3 => KERNEL_HALF + self.rng.below(1 << 46),
            4 => 0xffff_ffff_8000_0000 + self.rng.below(1 << 31),
            5 => self.rng.range(1 << 47, KERNEL_HALF),
            6 => self.rng.range(UNMAPPED_LOW, UNMAPPED_HIGH),
            7 => USER_END - 1 - self.rng.below(PAGE),
            8 => USER_END + self.rng.below(PAGE),
            _ => u64::MAX - self.rng.below(PAGE),
        }
    }

    /// Code or read-only data: mapped for ring 3, not writable.
    fn ro_ptr(&mut self) -> u64 {
        if self.rng.chance(1, 2) {
            main as *const () as u64 + self.rng.below(256)
        } else {
            RODATA.as_ptr() as u64 + self.rng.below(RODATA.len() as u64)
        }
    }

    /// A pointer the kernel must refuse for writes of `len > 0` bytes (for
    /// reads too, except `ReadOnly`), and `len` (`Straddle`: longer than
    /// the mapped part).
    fn refused(&mut self, writes: bool) -> (Ptr, u64) {
        let choice = self.rng.below(if writes { 4 } else { 3 });
        match (choice, self.stack_top) {
            (1, Some(top)) => {
                // The top page of the stack, then the unmapped page above it.
                let k = 1 + self.rng.below(64);
                (Ptr::Straddle(k), top - k)
            }
            (2, _) => {
                let k = 1 + self.rng.below(64);
                (Ptr::Straddle(k), USER_END - k)
            }
            (3, _) => (Ptr::ReadOnly, self.ro_ptr()),
            _ => (Ptr::Bad, self.bad_ptr()),
        }
    }

    /// A length that makes `kind` refused (`> 0`, beyond a straddle's part).
    fn refused_len(&mut self, kind: Ptr, max: u64) -> u64 {
        let min = match kind {
            Ptr::Straddle(k) => k + 1,
            Ptr::Bad | Ptr::ReadOnly => 1,
        };
        self.rng.range(min, max + 1)
    }

    fn console_write(&mut self, mut a: [u64; 6]) {
        let io_max = CONSOLE_IO_MAX as u64;
        match self.rng.below(10) {
            // The dots: at most 8 of them, inside the buffer.
            0 => {
                let len = self.rng.below(9);
                a[0] = self.text.as_ptr() as u64 + self.rng.below(64 - len + 1);
                a[1] = len;
                if len > 0 {
                    self.dirty = true;
                }
                self.probe(nr::CONSOLE_WRITE, a, Expect::Ok(len));
            }
            // Too long, whatever the pointer: refused before it is read.
            1 | 2 => {
                a[1] = match self.rng.below(3) {
                    0 => io_max + 1 + self.rng.below(16),
                    1 => 1 << self.rng.range(13, 64),
                    _ => self.rng.range(io_max + 1, u64::MAX),
                };
                self.probe(nr::CONSOLE_WRITE, a, Expect::Err(Errno::TooLarge));
            }
            // Refused pointers (read-only memory is readable: not here).
            _ => {
                let (kind, ptr) = self.refused(false);
                a[0] = ptr;
                let expect = if self.rng.chance(1, 16) {
                    a[1] = 0;
                    Expect::EmptyRange
                } else {
                    a[1] = self.refused_len(kind, io_max);
                    Expect::Err(Errno::BadAddress)
                };
                self.probe(nr::CONSOLE_WRITE, a, expect);
            }
        }
    }

    fn console_read(&mut self, mut a: [u64; 6]) {
        a[2] |= CONSOLE_READ_NONBLOCK;
        if self.rng.chance(1, 4) {
            // The read buffer, any capacity (the kernel moves at most
            // CONSOLE_IO_MAX bytes, the buffer's size).
            a[0] = self.rx.as_mut_ptr() as u64;
            a[1] = self.len_any();
            let expect = if a[1] == 0 { Expect::Ok(0) } else { Expect::Any };
            match self.call_safe(nr::CONSOLE_READ, a, expect) {
                Ok(n) if n > a[1].min(CONSOLE_IO_MAX as u64) => {
                    self.note(format_args!("console_read returned {n} for capacity {}", a[1]))
                }
                Ok(n) => self.stats.input_bytes += n,
                Err(Errno::WouldBlock) => {}
                Err(e) => self.note(format_args!("console_read into an own buffer: {e:?}")),
            }
            return;
        }
        let (kind, ptr) = self.refused(true);
        a[0] = ptr;
        let expect = if self.rng.chance(1, 16) {
            // Capacity 0 is answered before the pointer is looked at.
            a[1] = 0;
            Expect::Ok(0)
        } else if self.rng.chance(1, 4) && kind != Ptr::ReadOnly && !matches!(kind, Ptr::Straddle(_)) {
            // Any capacity > 0 (clamped to CONSOLE_IO_MAX by the kernel).
            a[1] = self.len_any().max(1);
            Expect::Err(Errno::BadAddress)
        } else {
            a[1] = self.refused_len(kind, CONSOLE_IO_MAX as u64);
            Expect::Err(Errno::BadAddress)
        };
        self.probe(nr::CONSOLE_READ, a, expect);
    }

    fn heap_grow(&mut self, mut a: [u64; 6]) {
        let bytes = a[0];
        let page_bytes = bytes.checked_next_multiple_of(PAGE);
        let granted = matches!(page_bytes, Some(p) if p <= HEAP_BUDGET - self.heap_grown.min(HEAP_BUDGET));
        if !granted && bytes < HEAP_REFUSED {
            // Would be mapped but is over this run's budget: make it refused.
            a[0] = HEAP_REFUSED + bytes;
        }
        let expect = if granted {
            Expect::Ok(self.heap_end)
        } else {
            Expect::Either(Errno::NoMemory, Errno::TooLarge)
        };
        // SAFETY: an integer argument; an accepted one maps fresh pages past
        // the heap's end, which the allocator treats as its own only once it
        // grows itself (everything here is allocated up front).
        let (got, _) = unsafe { self.call(nr::HEAP_GROW, a, expect) };
        if granted && got.is_ok() {
            let grown = page_bytes.unwrap_or(0);
            self.heap_grown += grown;
            self.heap_end += grown;
        } else if got.is_ok() {
            // Unexpectedly accepted: follow the heap's end anyway.
            if let Ok(end) = sys::heap_grow(0) {
                self.heap_end = end as u64;
            }
        }
    }

    fn send(&mut self, mut a: [u64; 6]) {
        let me = self.me as u64;
        let expect = match self.rng.below(4) {
            0 => {
                a[0] = me;
                Expect::Any
            }
            1 => {
                a[0] = ((self.rng.next() | 1) << 32) | me;
                Expect::Err(Errno::NoSuchProcess)
            }
            2 => {
                a[0] = self.rng.range(NO_PID as u64, u32::MAX as u64 + 1);
                Expect::Err(Errno::NoSuchProcess)
            }
            _ => {
                let high = self.rng.next() | (1 << 63);
                a[0] = self.rng.pick(&[0, u64::MAX, 1 << 32, high]);
                Expect::Err(Errno::NoSuchProcess)
            }
        };
        let got = self.call_safe(nr::SEND, a, expect);
        if a[0] == me && !matches!(got, Ok(0) | Err(Errno::LimitReached)) {
            self.note(format_args!("send to self: {}", Show(got)));
        }
    }

    /// `send_recv`: to itself (the word comes straight back) or to a pid
    /// nobody has (refused before any wait), with a short deadline.
    fn send_recv(&mut self, mut a: [u64; 6]) {
        let me = self.me as u64;
        let to_self = self.rng.chance(1, 2);
        a[0] = if to_self {
            me
        } else {
            self.rng.range(NO_PID as u64, u32::MAX as u64 + 1)
        };
        let now = sys::clock_ns();
        a[2] = now + 1 + self.rng.below(MAX_BLOCK_NS);
        // SAFETY: integer arguments only.
        let (got, _word) = unsafe { self.call(nr::SEND_RECV, a, Expect::Any) };
        match (to_self, got) {
            (true, Ok(from)) if from == me => {}
            // The mailbox may be full of earlier words to itself.
            (true, Err(Errno::LimitReached)) | (false, Err(Errno::NoSuchProcess)) => {}
            (_, other) => self.note(format_args!("send_recv to self={to_self}: {}", Show(other))),
        }
    }

    fn recv(&mut self, mut a: [u64; 6]) {
        let now = sys::clock_ns();
        if a[0] == 0 || a[0] > now + MAX_BLOCK_NS {
            a[0] = if self.rng.chance(1, 2) {
                1 + self.rng.below(now.max(1))
            } else {
                now + 1 + self.rng.below(MAX_BLOCK_NS)
            };
        }
        // The sender comes back in rax, the word in rdx.
        // SAFETY: integer arguments only.
        let (got, _word) = unsafe { self.call(nr::RECV, a, Expect::Any) };
        match got {
            Ok(from) if from != self.me as u64 => self.note(format_args!("recv: a word from {from}, not from self")),
            Ok(_) | Err(Errno::TimedOut) => {}
            Err(e) => self.note(format_args!("recv: {e:?}")),
        }
    }

    /// A random version; a wrong one must make every call fail until the
    /// right one is announced again (done at once).
    fn abi_hello(&mut self, mut a: [u64; 6]) {
        if self.rng.chance(1, 8) {
            a[0] = ABI_VERSION as u64;
        }
        let right = a[0] == ABI_VERSION as u64;
        let expect = if right {
            Expect::Ok(ABI_VERSION as u64)
        } else {
            Expect::Err(Errno::AbiMismatch)
        };
        self.probe(nr::ABI_HELLO, a, expect);
        if right {
            return;
        }
        // Every call is refused, reported only after the fix below.
        let clock = self.call_safe(nr::CLOCK, [0; 6], Expect::Any);
        let back = self.call_safe(nr::ABI_HELLO, [ABI_VERSION as u64, 0, 0, 0, 0, 0], Expect::Any);
        if back != Ok(ABI_VERSION as u64) {
            // Nothing works any more, printing included.
            sys::exit(3);
        }
        if clock != Err(Errno::AbiMismatch) {
            self.note(format_args!(
                "clock after ABI_HELLO({:#x}): {} (AbiMismatch expected)",
                a[0],
                Show(clock)
            ));
        }
    }

    /// A random framed request: random bytes or a mutated valid encoding.
    /// Returns its length (in `self.req`).
    fn gen_request(&mut self) -> usize {
        let cap = self.req.len();
        if self.rng.chance(1, 3) {
            let len = match self.rng.below(4) {
                0 => self.rng.below(4),
                1 => self.rng.below(17),
                2 => self.rng.below(65),
                _ => self.rng.below(cap as u64 + 1),
            } as usize;
            for b in &mut self.req[..len] {
                *b = self.rng.next() as u8;
            }
            return len;
        }
        let msg = self.gen_valid();
        let Ok(bytes) = abi::encode(&msg, &mut self.req) else {
            return 0;
        };
        let mut len = bytes.len();
        if self.rng.chance(1, 4) {
            return len;
        }
        for _ in 0..1 + self.rng.below(3) {
            let at = self.rng.below(len.max(1) as u64) as usize;
            match self.rng.below(6) {
                0 if len > 0 => self.req[at] = self.rng.next() as u8,
                1 if len > 0 => self.req[at] ^= 1 << self.rng.below(8),
                2 if len > 0 => self.req[at] = self.rng.pick(&[0, 1, 0x7f, 0x80, 0xff]),
                3 => len = self.rng.below(len as u64 + 1) as usize,
                4 if len < cap => {
                    self.req[len] = self.rng.next() as u8;
                    len += 1;
                }
                _ if len < cap => {
                    self.req.copy_within(at..len, at + 1);
                    self.req[at] = self.rng.next() as u8;
                    len += 1;
                }
                _ => {}
            }
        }
        len
    }

    fn id(&mut self) -> u32 {
        match self.rng.below(6) {
            0 => self.me,
            1 => self.pgid,
            2 => self.rng.below(64) as u32,
            3 => u32::MAX,
            4 => NO_PID + self.rng.below(1 << 20) as u32,
            _ => self.rng.next() as u32,
        }
    }

    fn target(&mut self) -> Target {
        let id = self.id();
        if self.rng.chance(1, 2) {
            Target::Process(id)
        } else {
            Target::Group(id)
        }
    }

    fn gen_valid(&mut self) -> ProcRequest {
        let small = |r: &mut Rng| match r.below(3) {
            0 => r.below(1000) as u32,
            1 => 0,
            _ => r.next() as u32,
        };
        match self.rng.below(10) {
            0 => {
                let mut args = heapless::Vec::new();
                if self.rng.chance(1, 2) {
                    let _ = args.push(abi::Arg::try_from("x").unwrap_or_default());
                }
                let program = self.rng.pick(&["hello", "spin", "nosuch", ""]);
                ProcRequest::Spawn {
                    program: abi::Name::try_from(program).unwrap_or_default(),
                    args,
                    priority: self.rng.next() as u8,
                    group: match self.rng.below(3) {
                        0 => GroupChoice::Inherit,
                        1 => GroupChoice::New,
                        _ => GroupChoice::Join(self.id()),
                    },
                    capture: self.rng.chance(1, 2),
                }
            }
            1 | 2 => ProcRequest::Wait {
                target: match self.rng.below(3) {
                    0 => WaitTarget::Process(self.id()),
                    1 => WaitTarget::Group(self.id()),
                    _ => WaitTarget::AnyChild,
                },
                block: self.rng.chance(1, 3),
            },
            3 => ProcRequest::Kill {
                target: self.target(),
                grace_ms: small(&mut self.rng),
            },
            4 => ProcRequest::Ps { after: self.id() },
            5 => ProcRequest::ArmWatchdog {
                target: self.target(),
                kind: if self.rng.chance(1, 2) {
                    WatchdogKind::Heartbeat {
                        period_ms: small(&mut self.rng),
                    }
                } else {
                    WatchdogKind::Deadline {
                        within_ms: small(&mut self.rng),
                    }
                },
                action: match self.rng.below(3) {
                    0 => WatchdogAction::Warn,
                    1 => WatchdogAction::Stop {
                        grace_ms: small(&mut self.rng),
                    },
                    _ => WatchdogAction::Kill,
                },
            },
            6 => ProcRequest::DisarmWatchdog { target: self.target() },
            7 => ProcRequest::WatchdogEvents {
                after: {
                    let r = self.rng.next();
                    self.rng.pick(&[0, 1, u64::MAX, r])
                },
            },
            8 if self.rng.chance(1, 2) => ProcRequest::SystemInfo,
            8 => ProcRequest::ReadOutput { pid: self.id() },
            _ => ProcRequest::Shutdown,
        }
    }

    /// Whether the kernel may run this request for the fuzzer: it must not
    /// start, stop or block anything, nor collect another process's exit.
    fn harmless(&self, req: &ProcRequest) -> bool {
        let nobody = |id: u32| id >= NO_PID;
        match *req {
            // Reading a capture: the fuzzer owns none, so every read is an
            // error (or, for a capture of its own, harmless).
            ProcRequest::Ps { .. }
            | ProcRequest::WatchdogEvents { .. }
            | ProcRequest::SystemInfo
            | ProcRequest::ReadOutput { .. } => true,
            ProcRequest::Wait { block: false, target } => match target {
                WaitTarget::AnyChild => true,
                WaitTarget::Process(pid) => pid == self.me || nobody(pid),
                // Its own group, while it is the group's only member.
                WaitTarget::Group(g) => nobody(g) || (g == self.pgid && self.pgid == self.me),
            },
            ProcRequest::DisarmWatchdog { target } => match target {
                Target::Process(pid) => pid == self.me || nobody(pid),
                Target::Group(g) => nobody(g),
            },
            ProcRequest::Spawn { .. }
            | ProcRequest::Kill { .. }
            | ProcRequest::ArmWatchdog { .. }
            | ProcRequest::Wait { block: true, .. }
            | ProcRequest::Shutdown => false,
        }
    }

    fn framed(&mut self, mut a: [u64; 6]) {
        let len = self.gen_request();
        let decoded = abi::decode::<ProcRequest>(&self.req[..len]);
        if let Ok(req) = &decoded
            && !self.harmless(req)
        {
            self.stats.skipped += 1;
            return;
        }
        let len = len as u64;
        let max = PROC_RESPONSE_MAX as u64;
        // The request: this buffer (checked above) or a refused pointer.
        let own_req = self.rng.below(8) != 0;
        if own_req {
            a[0] = self.req.as_ptr() as u64;
            a[1] = len;
        } else {
            let (kind, ptr) = self.refused(false);
            a[0] = ptr;
            // Any length only where no byte is readable: a straddle is
            // read (and decoded!) if the length fits its mapped part.
            a[1] = if kind == Ptr::Bad && self.rng.chance(1, 4) {
                self.len_any()
            } else {
                self.refused_len(kind, REQUEST_MAX as u64)
            };
        }
        // The response: the buffer (any capacity >= its size is fine, the
        // kernel writes at most PROC_RESPONSE_MAX), too small, or refused.
        let resp_ok = match self.rng.below(10) {
            0..6 => {
                a[2] = self.resp.as_mut_ptr() as u64;
                a[3] = max;
                true
            }
            6 => {
                a[2] = self.resp.as_mut_ptr() as u64;
                let r = self.rng.below(1 << 40);
                a[3] = max + self.rng.pick(&[1, PAGE, 1 << 20, u64::MAX - max, r]);
                true
            }
            7 => {
                a[2] = self.resp.as_mut_ptr() as u64;
                a[3] = self.rng.below(max);
                false
            }
            _ => {
                // Straddles too: their mapped part is shorter than an answer.
                a[2] = self.refused(true).1;
                a[3] = max;
                false
            }
        };
        let req_len = a[1];
        let expect = if req_len > REQUEST_MAX as u64 {
            Expect::Err(Errno::TooLarge)
        } else if a[3] < max {
            Expect::Err(Errno::ResponseTooSmall)
        } else if !resp_ok {
            Expect::Err(Errno::BadAddress)
        } else if !own_req {
            if req_len == 0 {
                // An empty range may pass the pointer check, then not decode.
                Expect::Either(Errno::BadAddress, Errno::BadFrame)
            } else {
                Expect::Err(Errno::BadAddress)
            }
        } else if decoded.is_err() {
            Expect::Err(Errno::BadFrame)
        } else {
            Expect::Any
        };
        let sent = own_req && resp_ok && req_len <= REQUEST_MAX as u64 && decoded.is_ok();
        if sent {
            self.stats.valid_frames += 1;
        }
        let got = self.call_safe(nr::PROC, a, expect);
        if let (true, Ok(req)) = (sent, &decoded) {
            self.check_answer(req, got);
        }
    }

    /// The answer to a harmless request that decoded.
    fn check_answer(&mut self, req: &ProcRequest, got: Result<u64, Errno>) {
        let answer = match got {
            Ok(n) if n as usize <= PROC_RESPONSE_MAX => abi::decode::<ProcResponse>(&self.resp[..n as usize]),
            Ok(n) => return self.note(format_args!("PROC answer of {n} bytes, above PROC_RESPONSE_MAX")),
            Err(Errno::BadFrame) => return self.note(format_args!("PROC refused a frame that decodes: {req:?}")),
            Err(_) => return,
        };
        let fits = matches!(
            (req, &answer),
            (ProcRequest::Ps { .. }, Ok(ProcResponse::Procs { .. }))
                | (
                    ProcRequest::WatchdogEvents { .. },
                    Ok(ProcResponse::WatchdogEvents { .. })
                )
                | (ProcRequest::SystemInfo, Ok(ProcResponse::SystemInfo(_)))
                | (ProcRequest::DisarmWatchdog { .. }, Ok(ProcResponse::WatchdogDisarmed))
                | (
                    ProcRequest::Wait { .. },
                    Ok(ProcResponse::NotYet | ProcResponse::Exited(_) | ProcResponse::GroupExited { .. })
                )
        );
        if !fits {
            self.note(format_args!("PROC {req:?} answered {answer:?}"));
        }
    }

    /// `METRIC` and `EVENT` (kernel-served): emits of this program's bytes
    /// (accepted or refused, anything but a crash), reads into its response
    /// buffer without waiting more than [`MAX_BLOCK_NS`]; the drain and
    /// publishing are the `JOB` server's, so `NotPermitted` here.
    fn telemetry(&mut self, n: u64, mut a: [u64; 6]) {
        a[2] = match self.rng.below(8) {
            0..4 => 0,
            4..7 => 1,
            _ => a[2],
        };
        if self.rng.chance(1, 2) {
            a[0] = self.req.as_ptr() as u64;
            a[1] = self.rng.below(self.req.len() as u64 + 1);
        }
        let expect = match (n, a[2]) {
            (_, 2..) => Expect::Err(Errno::InvalidArgument),
            (nr::METRIC, 1) | (nr::EVENT, 0) => Expect::Err(Errno::NotPermitted),
            (nr::EVENT, _) => {
                // A read writes records where it is pointed: into the
                // response buffer, or at memory it must refuse; never at
                // whatever else of this program a random pointer names (a
                // read into the fuzzer's own counters corrupted them).
                let refused = !self.rng.chance(1, 2);
                if refused {
                    let (kind, ptr) = self.refused(true);
                    a[0] = ptr;
                    a[1] = self.refused_len(kind, self.resp.len() as u64);
                } else {
                    a[0] = self.resp.as_mut_ptr() as u64;
                    a[1] = self.rng.below(self.resp.len() as u64 + 1);
                }
                a[4] = if self.rng.chance(1, 2) {
                    0
                } else {
                    sys::clock_ns() + self.rng.below(MAX_BLOCK_NS)
                };
                if refused {
                    Expect::Err(Errno::BadAddress)
                } else {
                    Expect::Any
                }
            }
            _ => Expect::Any,
        };
        self.probe(n, a, expect);
    }

    /// The reserved framed numbers, with framed-call pointers (the kernel
    /// writes, if ever, only into the response buffer or refuses).
    fn reserved_framed(&mut self, n: u64, mut a: [u64; 6]) {
        if n == nr::METRIC || n == nr::EVENT {
            return self.telemetry(n, a);
        }
        if self.rng.chance(1, 2) {
            a[0] = self.req.as_ptr() as u64;
            a[1] = self.rng.below(self.req.len() as u64 + 1);
        }
        if self.rng.chance(1, 2) {
            a[2] = self.resp.as_mut_ptr() as u64;
            a[3] = PROC_RESPONSE_MAX as u64;
        } else {
            a[2] = self.refused(true).1;
        }
        if n == nr::JOB {
            // opsd may serve JOB (it does under the console): a request that
            // would start, stop or wait for a job is skipped, like PROC's.
            if a[0] == self.req.as_ptr() as u64 {
                let len = (a[1] as usize).min(self.req.len());
                if let Ok(req) = aether_abi::syscall::decode::<aether_abi::job::JobRequest>(&self.req[..len]) {
                    use aether_abi::job::JobRequest as J;
                    if matches!(req, J::Start(_) | J::Stop { .. } | J::Wait { .. }) {
                        return;
                    }
                }
            }
            self.probe(n, a, Expect::Any);
            return;
        }
        if n == nr::FS {
            // The kernel's file calls: anything but a crash (mappings and
            // async requests skipped: they would hold memory past the run
            // until the sweep, and nothing here checks them).
            if a[0] == self.req.as_ptr() as u64 {
                let len = (a[1] as usize).min(self.req.len());
                if let Ok(req) = aether_abi::syscall::decode::<aether_abi::fs::FsRequest>(&self.req[..len]) {
                    use aether_abi::fs::FsRequest as F;
                    if matches!(req, F::Mmap { .. } | F::Munmap { .. } | F::Submit { .. }) {
                        return;
                    }
                }
            }
            self.probe(n, a, Expect::Any);
            return;
        }
        // The other service calls: nothing serves them during the fuzz run.
        self.probe(n, a, Expect::Err(Errno::NoSuchService));
    }
}

struct Show(Result<u64, Errno>);

impl fmt::Display for Show {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(v) => write!(f, "Ok({v})"),
            Err(e) => write!(f, "{e:?}"),
        }
    }
}

/// The top of the user stack (the page end after the argument block the
/// kernel puts just below it), if it looks like it.
fn stack_top(args: &Args) -> Option<u64> {
    let last = args.iter().last()?;
    let top = (last.as_ptr() as u64 + last.len() as u64 + 1).next_multiple_of(PAGE);
    let local = 0u8;
    let sp = core::hint::black_box(&local) as *const u8 as u64;
    (sp < top && top - sp < (1 << 20) && top < USER_END).then_some(top)
}
