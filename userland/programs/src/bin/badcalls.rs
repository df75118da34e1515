//! Ring-3 checks of the syscall boundary (docs/abi.md): one call per class of
//! bad input, each asserting the exact error the kernel defines for it
//! (`kernel/src/syscall.rs`, `kernel/src/mm/user.rs`). Prints
//! `badcalls: ok <name>` or `badcalls: FAIL <name>: expected X got Y` per
//! check, then `badcalls: N passed, M failed`; exits 0 only if all passed.
//!
//! `badcalls abi` and `badcalls exit` are the children of the `abi_child`
//! and `exit_high_bits` checks; they cannot print, their exit code reports.
//!
//! The raw calls pass pointers the kernel must refuse (kernel half,
//! non-canonical, unmapped, read-only, wrapping, straddling the end of a
//! mapping) or buffers this program owns: a correct kernel never writes
//! through the former, so no Rust object changes behind the compiler's back.
#![no_std]
#![no_main]

extern crate alloc;

use core::fmt;

use aether_abi::syscall::{
    self as abi, ABI_VERSION, CONSOLE_IO_MAX, CONSOLE_READ_NONBLOCK, DEFAULT_PRIORITY, Errno, ExitStatus, GroupChoice,
    PROC_RESPONSE_MAX, ProcRequest, ProcResponse, REQUEST_MAX, Target, WaitTarget, WatchdogAction, WatchdogKind, nr,
};
use aether_rt::{Args, entry, println, proc, sys};
use alloc::vec;

entry!(main);

const PAGE: u64 = 4096;
/// The start of the kernel half.
const KERNEL_PTR: u64 = 0xffff_8000_0000_0000;
/// The first address above the lower canonical half.
const NONCANONICAL_PTR: u64 = 0x0000_8000_0000_0000;
/// User space, but far from the program, its heap and its stack.
const UNMAPPED_PTR: u64 = 0x7000_0000_0000;
/// The end of user space (`mm::user::USER_END`); its last page is never mapped.
const USER_END: u64 = 0x7fff_ffff_f000;
/// A pid (and pgid) no process has: pids count up from 1, one per spawn.
const NO_PID: u32 = 99_999;
/// The exit code `badcalls exit` asks for, in the low half of `rdi`.
const EXIT_CODE: i32 = 7;

/// Read-only data: the kernel must refuse to write here.
static RODATA: [u8; 64] = [0x5a; 64];

type Ret = Result<u64, Errno>;

fn main(args: Args) -> i32 {
    match args.get(1) {
        None => {}
        Some("abi") => return abi_child(),
        Some("exit") => exit_child(),
        Some(other) => {
            println!("badcalls: unknown argument '{other}'; usage: badcalls");
            return 2;
        }
    }
    let me = sys::getpid();
    let t0 = sys::clock_ns();
    let top = stack_top(&args);
    let mut c = Checks { passed: 0, failed: 0 };

    // First, while this process has no children.
    waits(&mut c, me);
    unknown_numbers(&mut c);
    console_write(&mut c, top);
    console_read(&mut c, top);
    framed(&mut c, top);
    processes(&mut c, me);
    mailbox(&mut c, me);
    memory(&mut c);
    metrics(&mut c);
    events(&mut c);
    watchdogs(&mut c, me);
    if let Err(code) = abi_rehello(&mut c) {
        // The kernel refuses everything (printing included) from now on.
        return code;
    }
    children(&mut c);

    // Nothing above ended or stalled this process, and time goes on.
    sys::sleep_ms(2);
    let t1 = sys::clock_ns();
    let pid = sys::getpid();
    c.check(
        "alive",
        t1 >= t0 + 2_000_000 && pid == me,
        format_args!("pid {me}, clock past {}", t0 + 2_000_000),
        format_args!("pid {pid}, clock {t1}"),
    );

    println!("badcalls: {} passed, {} failed", c.passed, c.failed);
    if c.failed == 0 { 0 } else { 1 }
}

/// The check results, printed as they come.
struct Checks {
    passed: u32,
    failed: u32,
}

impl Checks {
    fn check(&mut self, name: impl fmt::Display, ok: bool, expected: impl fmt::Display, got: impl fmt::Display) {
        if ok {
            self.passed += 1;
            println!("badcalls: ok {name}");
        } else {
            self.failed += 1;
            println!("badcalls: FAIL {name}: expected {expected} got {got}");
        }
    }

    /// `got` must be exactly the error `want`.
    fn err<T: fmt::Debug>(&mut self, name: impl fmt::Display, got: &Result<T, Errno>, want: Errno) {
        let ok = matches!(got, Err(e) if *e == want);
        self.check(name, ok, format_args!("{want:?}"), Show(got));
    }

    /// `got` must be one of the errors `wants`.
    fn err_any<T: fmt::Debug>(&mut self, name: impl fmt::Display, got: &Result<T, Errno>, wants: &[Errno]) {
        let ok = matches!(got, Err(e) if wants.contains(e));
        self.check(name, ok, OneOf(wants), Show(got));
    }

    /// `got` must be exactly `Ok(want)`.
    fn ok(&mut self, name: impl fmt::Display, got: Ret, want: u64) {
        self.check(name, got == Ok(want), format_args!("Ok({want})"), Show(&got));
    }
}

/// A result as `Ok(value)` or the errno's name.
struct Show<'a, T>(&'a Result<T, Errno>);

impl<T: fmt::Debug> fmt::Display for Show<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(v) => write!(f, "Ok({v:?})"),
            Err(e) => write!(f, "{e:?}"),
        }
    }
}

struct OneOf<'a>(&'a [Errno]);

impl fmt::Display for OneOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            write!(f, "{e:?}")?;
        }
        Ok(())
    }
}

/// A syscall with explicit registers, decoded.
///
/// # Safety
/// Whatever the kernel may write through a pointer argument must be memory
/// this program owns and does not otherwise use during the call.
unsafe fn sc(n: u64, a: [u64; 6]) -> Ret {
    // SAFETY: the caller's contract.
    Errno::from_ret(unsafe { sys::raw(n, a) }.0)
}

/// An address in this program's code: mapped for ring 3, read-only.
fn code_addr() -> u64 {
    main as *const () as u64
}

/// `console_write(ptr, len)` with any pointer: the kernel only reads.
fn write_raw(ptr: u64, len: u64) -> Ret {
    // SAFETY: console_write only reads user memory, never writes it.
    unsafe { sc(nr::CONSOLE_WRITE, [ptr, len, 0, 0, 0, 0]) }
}

/// A framed PROC call with bytes and a response buffer this program owns.
fn proc_bytes(req: &[u8]) -> Ret {
    let mut resp = vec![0u8; PROC_RESPONSE_MAX];
    sys::framed(nr::PROC, req, &mut resp).map(|n| n as u64)
}

/// The top of the user stack: the kernel puts the argument block just below
/// it (docs/abi.md, "Process start"), so it is the page end after the last
/// argument's NUL. `None` if that does not look like this stack's top.
fn stack_top(args: &Args) -> Option<u64> {
    let last = args.iter().last()?;
    let top = (last.as_ptr() as u64 + last.len() as u64 + 1).next_multiple_of(PAGE);
    let local = 0u8;
    let sp = core::hint::black_box(&local) as *const u8 as u64;
    (sp < top && top - sp < (1 << 20) && top < USER_END).then_some(top)
}

fn waits(c: &mut Checks, me: u32) {
    let wait = |target, block| proc::request(&ProcRequest::Wait { target, block });
    c.err(
        "wait_any_child_none",
        &wait(WaitTarget::AnyChild, true),
        Errno::NothingToWait,
    );
    c.err(
        "wait_any_child_none_nonblocking",
        &wait(WaitTarget::AnyChild, false),
        Errno::NothingToWait,
    );
    c.err(
        "wait_no_such_pid",
        &wait(WaitTarget::Process(NO_PID), true),
        Errno::NoSuchProcess,
    );
    // Not blocking: a kernel that let a process wait for itself would hang it.
    c.err("wait_self", &wait(WaitTarget::Process(me), false), Errno::NoSuchProcess);
    c.err(
        "wait_no_such_group",
        &wait(WaitTarget::Group(NO_PID), true),
        Errno::NoSuchGroup,
    );
}

fn unknown_numbers(c: &mut Checks) {
    // Reserved and unassigned numbers, and a valid number (CLOCK) with high
    // bits set: the kernel must look at all 64 bits of rax.
    let numbers = [14, 21, 255, (1 << 32) | nr::CLOCK, u64::MAX];
    for n in numbers {
        // SAFETY: no pointer arguments (all zero).
        let got = unsafe { sc(n, [0; 6]) };
        c.err(format_args!("unknown_syscall_{n:#x}"), &got, Errno::UnknownSyscall);
    }
    // A service call with no server (nothing registered it in this test).
    // SAFETY: no pointer arguments (all zero).
    let got = unsafe { sc(nr::TEST_SERVICE, [0; 6]) };
    c.err(
        format_args!("no_service_{}", nr::TEST_SERVICE),
        &got,
        Errno::NoSuchService,
    );
    // FS is the kernel's: a call without room for the answer, a request
    // over the limit, garbage, and a bad answer pointer.
    // SAFETY: no pointer arguments (all zero).
    let got = unsafe { sc(nr::FS, [0; 6]) };
    c.err("fs_no_answer_room", &got, Errno::ResponseTooSmall);
    let mut answer = alloc::vec![0u8; aether_abi::fs::FS_RESPONSE_MAX];
    let garbage = [0xffu8; 8];
    let cases: [(&str, u64, Errno); 2] = [
        (
            "fs_too_large",
            aether_abi::syscall::REQUEST_MAX as u64 + 1,
            Errno::TooLarge,
        ),
        ("fs_garbage", garbage.len() as u64, Errno::BadFrame),
    ];
    for (name, len, want) in cases {
        // SAFETY: `garbage` is readable for its length (the over-long case
        // is refused before anything is read) and `answer` writable.
        let got = unsafe {
            sc(
                nr::FS,
                [
                    garbage.as_ptr() as u64,
                    len,
                    answer.as_mut_ptr() as u64,
                    answer.len() as u64,
                    0,
                    0,
                ],
            )
        };
        c.err(name, &got, want);
    }
    // SAFETY: the answer pointer is a kernel address: refused, not written.
    let got = unsafe {
        sc(
            nr::FS,
            [
                garbage.as_ptr() as u64,
                1,
                0xffff_8000_0000_0000,
                answer.len() as u64,
                0,
                0,
            ],
        )
    };
    c.err("fs_answer_in_kernel", &got, Errno::BadAddress);
    // SAFETY: no pointer arguments.
    let got = unsafe { sc(nr::SERVE_REGISTER, [nr::FS, 4096, 4096, 0, 0, 0]) };
    c.err("serve_register_kernel_call", &got, Errno::InvalidArgument);
    // A reply to a call that does not exist, and a next without registering.
    // SAFETY: no pointer arguments.
    let got = unsafe { sc(nr::SERVE_REPLY, [12345, 0, 0, 0, 0, 0]) };
    c.err("serve_reply_no_call", &got, Errno::InvalidArgument);
    // SAFETY: no pointer arguments.
    let got = unsafe { sc(nr::SERVE_NEXT, [nr::FS, 0, 0, 0, 0, 0]) };
    c.err("serve_next_unregistered", &got, Errno::NoSuchService);
    // SAFETY: no pointer arguments.
    let got = unsafe { sc(nr::SERVE_REGISTER, [nr::FS, 0, 16, 0, 0, 0]) };
    c.err("serve_register_zero_limit", &got, Errno::InvalidArgument);
    // The link: no device in plain runs, and never for a non-server.
    let mut byte = [0u8; 1];
    c.err_any(
        "link_write_not_owner",
        &sys::link_write(b"x"),
        &[Errno::NoDevice, Errno::NotPermitted],
    );
    c.err_any(
        "link_read_not_owner",
        &sys::link_read(&mut byte),
        &[Errno::NoDevice, Errno::NotPermitted],
    );
}

/// `METRIC` (kernel-served): bad batches keep nothing and name the point;
/// the drain is opsd's. Two good points are accepted (the kernel test
/// that runs this program counts them in the kernel's buffer: exactly two
/// from this process, so nothing of a refused batch was kept).
fn metrics(c: &mut Checks) {
    use aether_abi::metric::{EMIT_BYTES_MAX, MetricError, MetricKind, MetricPoint, encode_batch};
    use aether_rt::metric::{self, EmitError};
    let point = |name: &str, kind, value| MetricPoint::new(name, kind, value);
    let (Some(a), Some(b), Some(nan)) = (
        point("badcalls_a", MetricKind::Gauge, 1.0),
        point("badcalls_b", MetricKind::Gauge, 2.0),
        point("badcalls_seen", MetricKind::Counter, f64::NAN),
    ) else {
        c.check("metric_points", false, "points", "a name refused");
        return;
    };
    let got = metric::emit_encoded(&[0xff; 16]);
    c.check(
        "metric_garbage",
        got == Err(EmitError::BadFrame { index: 0 }),
        "BadFrame at 0",
        format_args!("{got:?}"),
    );
    let mut buf = vec![0u8; EMIT_BYTES_MAX + 1];
    let n = encode_batch([&a], &mut buf).unwrap_or(0);
    buf[n..n + 4].copy_from_slice(&[0xff; 4]);
    let got = metric::emit_encoded(&buf[..n + 4]);
    c.check(
        "metric_garbage_after_a_point",
        got == Err(EmitError::BadFrame { index: 1 }),
        "BadFrame at 1",
        format_args!("{got:?}"),
    );
    let got = metric::emit(&[a.clone(), b.clone(), nan]);
    c.check(
        "metric_nan_counter_at_2",
        got == Err(EmitError::BadMetric {
            index: 2,
            error: MetricError::NanInCounter,
        }),
        "BadMetric at 2 (NanInCounter)",
        format_args!("{got:?}"),
    );
    let got = metric::emit_encoded(&buf);
    c.check(
        "metric_too_large",
        got == Err(EmitError::Refused(Errno::TooLarge)),
        "TooLarge",
        format_args!("{got:?}"),
    );
    let got = metric::emit_encoded(&[]);
    c.check(
        "metric_empty",
        got == Err(EmitError::Refused(Errno::InvalidArgument)),
        "InvalidArgument",
        format_args!("{got:?}"),
    );
    // SAFETY: the kernel only reads the pointer of an emit (and refuses it).
    let got = unsafe { sc(nr::METRIC, [KERNEL_PTR, 16, 0, 0, 0, 0]) };
    c.err("metric_emit_kernel_pointer", &got, Errno::BadAddress);
    // SAFETY: no pointer arguments.
    let got = unsafe { sc(nr::METRIC, [0, 0, 7, 0, 0, 0]) };
    c.err("metric_unknown_op", &got, Errno::InvalidArgument);
    let mut out = vec![0u8; 4096];
    c.err("metric_drain_not_server", &metric::drain(&mut out), Errno::NotPermitted);
    // SAFETY: no pointer arguments.
    let got = unsafe { sc(nr::SERVE_REGISTER, [nr::METRIC, 4096, 4096, 0, 0, 0]) };
    c.err("serve_register_metric", &got, Errno::InvalidArgument);
    c.ok(
        "metric_emit_two",
        metric::emit(&[a, b]).map(|n| n as u64).map_err(|e| e.errno()),
        2,
    );
}

/// `EVENT` (kernel-served): anyone reads, only opsd publishes.
fn events(c: &mut Checks) {
    use aether_abi::event::{EVENT_READ, EventBody, EventKind, Severity};
    use aether_rt::event;
    let body = EventBody::new(EventKind::Job, Severity::Info, 1, "badcalls");
    c.err("event_publish_not_server", &event::publish(&body), Errno::NotPermitted);
    let mut buf = vec![0u8; 4096];
    let got = event::read(&mut buf, u64::MAX, 0);
    c.check(
        "event_read_after_max",
        matches!(got, Ok((0, _))),
        "Ok(0 bytes)",
        format_args!("{got:?}"),
    );
    for (name, ptr) in [
        ("event_read_kernel_pointer", KERNEL_PTR),
        ("event_read_unmapped", UNMAPPED_PTR),
        ("event_read_readonly", RODATA.as_ptr() as u64),
    ] {
        // SAFETY: pointers the kernel must refuse (never written).
        let got = unsafe { sc(nr::EVENT, [ptr, 64, EVENT_READ, 0, 0, 0]) };
        c.err(name, &got, Errno::BadAddress);
    }
    // SAFETY: no pointer arguments.
    let got = unsafe { sc(nr::EVENT, [0, 0, 9, 0, 0, 0]) };
    c.err("event_unknown_op", &got, Errno::InvalidArgument);
    // SAFETY: no pointer arguments.
    let got = unsafe { sc(nr::SERVE_REGISTER, [nr::EVENT, 4096, 4096, 0, 0, 0]) };
    c.err("serve_register_event", &got, Errno::InvalidArgument);
}

fn console_write(c: &mut Checks, top: Option<u64>) {
    use Errno::{BadAddress, TooLarge};
    let bad = [
        ("kernel", KERNEL_PTR, 16),
        ("kernel_top", 0xffff_ffff_ffff_f000, 16),
        ("noncanonical", NONCANONICAL_PTR, 16),
        ("null", 0, 16),
        ("null_page", 0xff8, 8),
        ("unmapped", UNMAPPED_PTR, 16),
        ("wrap", u64::MAX - 10, 100),
        ("past_user_end", USER_END - 8, 16),
    ];
    for (name, ptr, len) in bad {
        c.err(format_args!("console_write_{name}"), &write_raw(ptr, len), BadAddress);
    }
    // Mapped for 8 bytes, then an unmapped page: refused as a whole.
    match top {
        Some(top) => c.err("console_write_straddle", &write_raw(top - 8, 16), BadAddress),
        None => println!("badcalls: skip console_write_straddle (stack top not found)"),
    }
    // Lengths are checked before the pointer. If the kernel took this one,
    // it prints CONSOLE_IO_MAX + 1 dots (from memory this program owns).
    let dots = vec![b'.'; CONSOLE_IO_MAX + 1];
    c.err(
        "console_write_too_large",
        &write_raw(dots.as_ptr() as u64, dots.len() as u64),
        TooLarge,
    );
    c.err("console_write_len_max", &write_raw(KERNEL_PTR, u64::MAX), TooLarge);
    c.ok("console_write_empty", write_raw(dots.as_ptr() as u64, 0), 0);
    // An empty range touches no memory: accepted wherever it points.
    c.ok("console_write_empty_kernel_ptr", write_raw(KERNEL_PTR, 0), 0);
    c.ok("console_write_empty_null", write_raw(0, 0), 0);
    c.ok("console_write_empty_unaligned", write_raw(0x7000_0000_0001, 0), 0);
}

fn console_read(c: &mut Checks, top: Option<u64>) {
    let bad = [
        ("code", code_addr()),
        ("rodata", RODATA.as_ptr() as u64),
        ("kernel", KERNEL_PTR),
        ("null", 0),
        ("unmapped", UNMAPPED_PTR),
        ("wrap", u64::MAX - 10),
        ("past_user_end", USER_END - 8),
    ];
    for (name, ptr) in bad {
        // SAFETY: each pointer is read-only, outside user space or unmapped
        // for the first of the 16 bytes: the kernel must refuse it before
        // taking any input, and writes nothing. NONBLOCK: never waits.
        let got = unsafe { sc(nr::CONSOLE_READ, [ptr, 16, CONSOLE_READ_NONBLOCK, 0, 0, 0]) };
        c.err(format_args!("console_read_{name}"), &got, Errno::BadAddress);
    }
    match top {
        Some(top) => {
            // SAFETY: the range ends 8 bytes into the unmapped page above the
            // stack: the kernel checks every page first and writes nothing
            // (at worst, if it did, the 8 bytes are padding or the copied-in
            // argument block, which `Args` only reads and `main` has parsed).
            let got = unsafe { sc(nr::CONSOLE_READ, [top - 8, 16, CONSOLE_READ_NONBLOCK, 0, 0, 0]) };
            c.err("console_read_straddle", &got, Errno::BadAddress);
        }
        None => println!("badcalls: skip console_read_straddle (stack top not found)"),
    }
    // A valid buffer with no input pending: WouldBlock (if somebody typed,
    // the bytes are consumed and the check is skipped).
    let mut buf = vec![0u8; CONSOLE_IO_MAX];
    match sys::console_read(&mut buf, true) {
        Ok(n) => println!("badcalls: skip console_read_nonblocking ({n} bytes of input were pending)"),
        got => c.err("console_read_nonblocking", &got, Errno::WouldBlock),
    }
}

fn framed(c: &mut Checks, top: Option<u64>) {
    use Errno::{BadAddress, BadFrame, ResponseTooSmall, TooLarge};
    let mut resp = vec![0u8; PROC_RESPONSE_MAX];
    let resp_ptr = resp.as_mut_ptr() as u64;
    let cap = PROC_RESPONSE_MAX as u64;
    // A harmless valid request (an empty page of `ps`).
    let mut ps = [0u8; 16];
    let ps_len = abi::encode(&ProcRequest::Ps { after: u32::MAX }, &mut ps).map_or(0, |b| b.len());
    let ps_ptr = ps.as_ptr() as u64;

    let call = |req: u64, len: u64, resp_cap: u64| {
        // SAFETY: `resp` is this program's buffer of `PROC_RESPONSE_MAX`
        // bytes, not otherwise used during the call (and the kernel writes
        // at most that much); the request pointer is only read.
        unsafe { sc(nr::PROC, [req, len, resp_ptr, resp_cap, 0, 0]) }
    };

    // The control case: accepted, and the answer decodes.
    let got = call(ps_ptr, ps_len as u64, cap);
    let answer = got.map(|n| abi::decode::<ProcResponse>(&resp[..(n as usize).min(PROC_RESPONSE_MAX)]));
    let ok = matches!(&answer, Ok(Ok(ProcResponse::Procs { entries, more: false })) if entries.is_empty());
    c.check("proc_valid", ok, "an empty Procs page", Show(&answer));
    // A response capacity above the answer's maximum is fine.
    let got = call(ps_ptr, ps_len as u64, u64::MAX);
    c.check("proc_huge_capacity", got.is_ok(), "Ok(_)", Show(&got));

    c.err("proc_request_kernel", &call(KERNEL_PTR, 8, cap), BadAddress);
    c.err("proc_request_null", &call(0, 8, cap), BadAddress);
    c.err("proc_request_unmapped", &call(UNMAPPED_PTR, 8, cap), BadAddress);
    c.err("proc_request_wrap", &call(u64::MAX - 4, 16, cap), BadAddress);
    match top {
        Some(top) => c.err("proc_request_straddle", &call(top - 4, 16, cap), BadAddress),
        None => println!("badcalls: skip proc_request_straddle (stack top not found)"),
    }
    c.err(
        "proc_request_too_large",
        &call(ps_ptr, REQUEST_MAX as u64 + 1, cap),
        TooLarge,
    );
    c.err("proc_request_len_max", &call(ps_ptr, u64::MAX, cap), TooLarge);
    c.err(
        "proc_response_too_small",
        &call(ps_ptr, ps_len as u64, cap - 1),
        ResponseTooSmall,
    );
    c.err("proc_response_zero", &call(ps_ptr, ps_len as u64, 0), ResponseTooSmall);

    let mut bad_resp: heapless::Vec<(&str, u64), 8> = heapless::Vec::new();
    let _ = bad_resp.extend_from_slice(&[
        ("code", code_addr()),
        ("rodata", RODATA.as_ptr() as u64),
        ("kernel", KERNEL_PTR),
        ("null", 0),
        ("unmapped", UNMAPPED_PTR),
        ("wrap", u64::MAX - 100),
        ("past_user_end", USER_END - 64),
    ]);
    match top {
        // Mapped for its first 16 bytes only.
        Some(top) => {
            let _ = bad_resp.push(("straddle", top - 16));
        }
        None => println!("badcalls: skip proc_response_straddle (stack top not found)"),
    }
    for (name, ptr) in bad_resp {
        // SAFETY: each response pointer is read-only, outside user space,
        // unmapped, or (straddle) reaches into the unmapped page above the
        // stack: the kernel checks the whole response range before acting
        // and must refuse it, writing nothing (at worst, if it wrote the
        // straddle's first 16 bytes, they are padding or the argument block
        // that `main` has already parsed).
        let got = unsafe { sc(nr::PROC, [ps_ptr, ps_len as u64, ptr, cap, 0, 0]) };
        c.err(format_args!("proc_response_{name}"), &got, BadAddress);
    }

    // Frames that do not decode. The requests are harmless if a kernel
    // accepted them anyway (a nonexistent pid, an empty `ps` page).
    let mut kill = [0u8; 32];
    let kill_len = abi::encode(
        &ProcRequest::Kill {
            target: Target::Process(NO_PID),
            grace_ms: 500,
        },
        &mut kill,
    )
    .map_or(0, |b| b.len());
    let mut first_bad = None;
    for cut in 0..kill_len {
        let got = proc_bytes(&kill[..cut]);
        if got != Err(BadFrame) && first_bad.is_none() {
            first_bad = Some((cut, got));
        }
    }
    match first_bad {
        None => c.check("proc_truncated", kill_len > 1, "a Kill frame", "nothing encoded"),
        Some((cut, got)) => c.check(
            format_args!("proc_truncated_{cut}_of_{kill_len}"),
            false,
            "BadFrame",
            Show(&got),
        ),
    }
    c.err("proc_empty", &proc_bytes(&ps[..0]), BadFrame);
    c.err("proc_garbage", &proc_bytes(&[0xff; 16]), BadFrame);
    c.err("proc_garbage_max", &proc_bytes(&[0xff; REQUEST_MAX]), BadFrame);
    c.err("proc_unknown_variant", &proc_bytes(&[200, 1, 2]), BadFrame);
    let mut trailing = [0u8; 17];
    trailing[..ps_len].copy_from_slice(&ps[..ps_len]);
    c.err("proc_trailing_byte", &proc_bytes(&trailing[..ps_len + 1]), BadFrame);
    let mut info = [0u8; 8];
    let info_len = abi::encode(&ProcRequest::SystemInfo, &mut info).map_or(0, |b| b.len());
    c.err("proc_trailing_zeroes", &proc_bytes(&info[..info_len + 4]), BadFrame);
    // A u32 varint of more than 32 bits (Ps { after }).
    let ps_tag = ps[0];
    c.err(
        "proc_varint_overflow",
        &proc_bytes(&[ps_tag, 0x80, 0x80, 0x80, 0x80, 0x10]),
        BadFrame,
    );
    // A bool that is neither 0 nor 1 (Wait { AnyChild, block: 2 }).
    let mut wait = [0u8; 16];
    let wait_len = abi::encode(
        &ProcRequest::Wait {
            target: WaitTarget::AnyChild,
            block: false,
        },
        &mut wait,
    )
    .map_or(0, |b| b.len());
    wait[wait_len - 1] = 2;
    c.err("proc_bad_bool", &proc_bytes(&wait[..wait_len]), BadFrame);
    // Spawn with a program name longer than NAME_MAX, and one not UTF-8.
    let spawn = |name: &str| ProcRequest::Spawn {
        program: abi::Name::try_from(name).unwrap_or_default(),
        args: heapless::Vec::new(),
        priority: DEFAULT_PRIORITY,
        group: GroupChoice::New,
        capture: false,
    };
    let mut buf = [0u8; 128];
    let n = abi::encode(&spawn("abcd"), &mut buf).map_or(0, |b| b.len());
    let mut bad_utf8 = buf;
    bad_utf8[2..6].copy_from_slice(&[0xff, 0xfe, 0xc0, 0x80]);
    c.err("proc_name_not_utf8", &proc_bytes(&bad_utf8[..n]), BadFrame);
    let name_at = 2;
    let mut long = [0u8; 128];
    long[0] = buf[0];
    long[1] = abi::NAME_MAX as u8 + 1;
    long[name_at..name_at + abi::NAME_MAX + 1].fill(b'a');
    let rest = &buf[name_at + 4..n];
    let end = name_at + abi::NAME_MAX + 1;
    long[end..end + rest.len()].copy_from_slice(rest);
    c.err("proc_name_too_long", &proc_bytes(&long[..end + rest.len()]), BadFrame);
}

fn processes(c: &mut Checks, me: u32) {
    use Errno::{InvalidArgument, NoSuchGroup, NoSuchProcess, NoSuchProgram};
    let spawn = |name, prio, group| {
        let got = proc::spawn(name, &[], prio, group);
        // Accepted after all: do not leave the child behind.
        if let Ok((pid, _)) = got {
            let _ = proc::wait(pid);
        }
        got
    };
    c.err(
        "spawn_no_such_program",
        &spawn("nosuchprogram", DEFAULT_PRIORITY, GroupChoice::New),
        NoSuchProgram,
    );
    c.err(
        "spawn_empty_name",
        &spawn("", DEFAULT_PRIORITY, GroupChoice::New),
        NoSuchProgram,
    );
    c.err(
        "spawn_priority_32",
        &spawn("hello", abi::PRIORITY_LEVELS, GroupChoice::New),
        InvalidArgument,
    );
    c.err(
        "spawn_priority_255",
        &spawn("hello", u8::MAX, GroupChoice::New),
        InvalidArgument,
    );
    c.err(
        "spawn_join_no_such_group",
        &spawn("hello", DEFAULT_PRIORITY, GroupChoice::Join(NO_PID)),
        NoSuchGroup,
    );
    c.err(
        "kill_no_such_pid",
        &proc::kill(Target::Process(NO_PID), 0),
        NoSuchProcess,
    );
    c.err(
        "kill_no_such_pid_grace",
        &proc::kill(Target::Process(NO_PID), 1000),
        NoSuchProcess,
    );
    c.err("kill_no_such_group", &proc::kill(Target::Group(NO_PID), 0), NoSuchGroup);
    c.err("send_no_such_pid", &sys::send(NO_PID, 1), NoSuchProcess);
    c.err("send_pid_zero", &sys::send(0, 1), NoSuchProcess);
    // This process's pid with high bits set: not this process.
    // SAFETY: integer arguments only.
    let got = unsafe { sc(nr::SEND, [(1 << 32) | me as u64, 1, 0, 0, 0, 0]) };
    c.err("send_pid_high_bits", &got, NoSuchProcess);
}

fn mailbox(c: &mut Checks, me: u32) {
    // Fill this process's own mailbox: a bounded queue.
    let mut sent = 0u64;
    let full = loop {
        match sys::send(me, sent) {
            Ok(()) if sent < 1024 => sent += 1,
            other => break other,
        }
    };
    c.check(
        "mailbox_full",
        sent > 0 && full == Err(Errno::LimitReached),
        "some sends, then LimitReached",
        format_args!("{sent} sends, then {}", Show(&full)),
    );
    let mut order = Ok(());
    for i in 0..sent {
        match sys::recv(sys::clock_ns() + 100_000_000) {
            Ok((from, word)) if from == me && word == i => {}
            other => {
                order = Err((i, other));
                break;
            }
        }
    }
    match order {
        Ok(()) => c.check("mailbox_fifo", true, "", ""),
        Err((i, got)) => c.check("mailbox_fifo", false, format_args!("Ok(({me}, {i}))"), Show(&got)),
    }
    c.err("recv_past_deadline", &sys::recv(1), Errno::TimedOut);
    // send_recv: a refused send returns at once, without waiting.
    c.err(
        "send_recv_no_such_pid",
        &sys::send_recv(99_999, 1, 0),
        Errno::NoSuchProcess,
    );
    let got = sys::send_recv(me, 0xfeed_0000_0000_beef, sys::clock_ns() + 100_000_000);
    c.check(
        "send_recv_self",
        got == Ok((me, 0xfeed_0000_0000_beef)),
        format_args!("Ok(({me}, 0xfeed00000000beef))"),
        Show(&got),
    );
    let deadline = sys::clock_ns() + 2_000_000;
    let got = sys::recv(deadline);
    let now = sys::clock_ns();
    c.check(
        "recv_deadline",
        got == Err(Errno::TimedOut) && now >= deadline,
        format_args!("TimedOut at or after {deadline}"),
        format_args!("{} at {now}", Show(&got)),
    );
}

fn memory(c: &mut Checks) {
    use Errno::{NoMemory, TooLarge};
    let grow = |bytes: u64| {
        // SAFETY: integer argument only; each size is refused (and even an
        // accepted one would only map fresh pages past the heap's end).
        unsafe { sc(nr::HEAP_GROW, [bytes, 0, 0, 0, 0, 0]) }
    };
    c.err_any("heap_grow_max", &grow(u64::MAX), &[TooLarge, NoMemory]);
    c.err_any("heap_grow_page_wrap", &grow(u64::MAX - PAGE + 1), &[TooLarge, NoMemory]);
    c.err_any("heap_grow_1tib", &grow(1 << 40), &[NoMemory, TooLarge]);
}

fn watchdogs(c: &mut Checks, me: u32) {
    use Errno::{InvalidArgument, NoSuchGroup, NoSuchProcess};
    let arm = |target, kind| {
        let got = proc::request(&ProcRequest::ArmWatchdog {
            target,
            kind,
            action: WatchdogAction::Warn,
        });
        if got.is_ok() {
            let _ = proc::request(&ProcRequest::DisarmWatchdog { target });
        }
        got
    };
    let me_t = Target::Process(me);
    c.err(
        "watchdog_heartbeat_period_0",
        &arm(me_t, WatchdogKind::Heartbeat { period_ms: 0 }),
        InvalidArgument,
    );
    c.err(
        "watchdog_deadline_0",
        &arm(me_t, WatchdogKind::Deadline { within_ms: 0 }),
        InvalidArgument,
    );
    let one_s = WatchdogKind::Deadline { within_ms: 1000 };
    c.err(
        "watchdog_no_such_pid",
        &arm(Target::Process(NO_PID), one_s),
        NoSuchProcess,
    );
    c.err(
        "watchdog_no_such_group",
        &arm(Target::Group(NO_PID), one_s),
        NoSuchGroup,
    );
    c.err(
        "watchdog_disarm_unarmed",
        &proc::request(&ProcRequest::DisarmWatchdog { target: me_t }),
        InvalidArgument,
    );
}

/// Announces a wrong version (all 64 bits count), sees every call refused,
/// then announces the right one again. `Err(code)` if it cannot recover.
fn abi_rehello(c: &mut Checks) -> Result<(), i32> {
    // SAFETY: integer arguments only (and in the three calls below).
    let wrong = unsafe { sc(nr::ABI_HELLO, [(1 << 32) | ABI_VERSION as u64, 0, 0, 0, 0, 0]) };
    // SAFETY: as above.
    let refused = unsafe { sc(nr::CLOCK, [0; 6]) };
    // SAFETY: as above.
    let right = unsafe { sc(nr::ABI_HELLO, [ABI_VERSION as u64, 0, 0, 0, 0, 0]) };
    // SAFETY: as above.
    let clock = unsafe { sc(nr::CLOCK, [0; 6]) };
    if right.is_err() {
        return Err(3);
    }
    c.check(
        "abi_rehello",
        wrong == Err(Errno::AbiMismatch)
            && refused == Err(Errno::AbiMismatch)
            && right == Ok(ABI_VERSION as u64)
            && clock.is_ok(),
        format_args!("AbiMismatch, AbiMismatch, Ok({ABI_VERSION}), Ok(_)"),
        format_args!(
            "{}, {}, {}, {}",
            Show(&wrong),
            Show(&refused),
            Show(&right),
            Show(&clock)
        ),
    );
    Ok(())
}

/// The `badcalls abi` steps; bit `i` of its exit code = step `i` failed.
const ABI_STEPS: [&str; 7] = [
    "hello(version + 1)",
    "clock",
    "getpid",
    "console_write",
    "proc",
    "hello(0)",
    "heap_grow",
];

/// Spawns this program as its own checks' children and waits for them.
fn children(c: &mut Checks) {
    let name = "abi_child";
    match run_child("abi") {
        Ok(ExitStatus::Exited(0)) => c.check(name, true, "", ""),
        Ok(ExitStatus::Exited(bits)) => {
            let mut failed: heapless::String<128> = heapless::String::new();
            for (i, step) in ABI_STEPS.iter().enumerate() {
                if bits & (1 << i) != 0 {
                    let _ = failed.push_str(step);
                    let _ = failed.push(' ');
                }
            }
            c.check(
                name,
                false,
                "exit 0",
                format_args!("exit {bits:#x}: not refused: {failed}"),
            );
        }
        got => c.check(name, false, "Exited(0)", Show(&got)),
    }
    let got = run_child("exit");
    c.check(
        "exit_high_bits",
        got == Ok(ExitStatus::Exited(EXIT_CODE)),
        format_args!("Exited({EXIT_CODE})"),
        Show(&got),
    );
}

fn run_child(arg: &str) -> Result<ExitStatus, Errno> {
    let (pid, _) = proc::spawn("badcalls", &[arg], DEFAULT_PRIORITY, GroupChoice::Inherit)?;
    proc::wait(pid).map(|r| r.status)
}

/// `badcalls abi`: announces a wrong ABI version; then every call but EXIT
/// must fail with AbiMismatch. It cannot print (console_write is refused
/// too), so the exit code tells (see [`ABI_STEPS`]).
fn abi_child() -> i32 {
    // What needs memory first: the heap grows by syscall.
    let mut req = [0u8; 8];
    let req_len = abi::encode(&ProcRequest::SystemInfo, &mut req).map_or(0, |b| b.len());
    let mut resp = vec![0u8; PROC_RESPONSE_MAX];
    let msg = b"badcalls: FAIL abi_child: console_write accepted after a wrong ABI_HELLO\r\n";

    let mut bad = 0;
    let mut step = |i: usize, got: Ret| {
        if got != Err(Errno::AbiMismatch) {
            bad |= 1 << i;
        }
    };
    // SAFETY: integer arguments only.
    step(0, unsafe { sc(nr::ABI_HELLO, [ABI_VERSION as u64 + 1, 0, 0, 0, 0, 0]) });
    // SAFETY: no pointer arguments.
    step(1, unsafe { sc(nr::CLOCK, [0; 6]) });
    // SAFETY: no pointer arguments.
    step(2, unsafe { sc(nr::GETPID, [0; 6]) });
    step(3, sys::console_write(msg).map(|n| n as u64));
    step(4, sys::framed(nr::PROC, &req[..req_len], &mut resp).map(|n| n as u64));
    // SAFETY: integer arguments only.
    step(5, unsafe { sc(nr::ABI_HELLO, [0; 6]) });
    // SAFETY: integer argument only (fresh pages at the heap's end if taken).
    step(6, unsafe { sc(nr::HEAP_GROW, [PAGE, 0, 0, 0, 0, 0]) });
    // Returning exits (EXIT is the one call still allowed).
    bad
}

/// `badcalls exit`: exits with [`EXIT_CODE`] in the low 32 bits of `rdi`
/// and garbage above them.
fn exit_child() -> ! {
    // SAFETY: integer argument only.
    let _ = unsafe { sc(nr::EXIT, [0xdead_beef_0000_0000 | EXIT_CODE as u64, 0, 0, 0, 0, 0]) };
    // EXIT returned: a distinct code.
    sys::exit(99)
}
