//! Syscall wrappers: the raw `syscall` instruction (numbers and registers
//! per `aether_abi::syscall`) and one safe function per call.

use core::arch::asm;

use aether_abi::syscall::{self as abi, Errno, nr};

/// The raw call: `rax` = number, arguments in `rdi, rsi, rdx, r10, r8, r9`;
/// returns `rax` and `rdx`. The kernel clobbers `rcx` and `r11` only.
///
/// # Safety
/// Pointer arguments must be valid for what the call does with them (the
/// kernel checks them, but it will write through a valid writable one).
#[inline(always)]
pub unsafe fn raw(n: u64, a: [u64; 6]) -> (i64, u64) {
    let ret: i64;
    let rdx: u64;
    // SAFETY: `syscall` enters the kernel, which preserves every register but
    // rax, rdx (results), rcx and r11 (used by syscall/sysret), and touches
    // only memory the caller passed per this function's contract.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n as i64 => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            inlateout("rdx") a[2] => rdx,
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    (ret, rdx)
}

/// A call that passes only integers.
#[inline(always)]
fn call(n: u64, a0: u64, a1: u64, a2: u64) -> Result<u64, Errno> {
    // SAFETY: no pointer arguments.
    let (ret, _) = unsafe { raw(n, [a0, a1, a2, 0, 0, 0]) };
    Errno::from_ret(ret)
}

pub fn exit(code: i32) -> ! {
    let _ = call(nr::EXIT, code as u32 as u64, 0, 0);
    // The kernel never returns from exit; if it did, spin rather than run on.
    loop {
        core::hint::spin_loop();
    }
}

pub fn abi_hello(version: u32) -> Result<(), Errno> {
    call(nr::ABI_HELLO, version as u64, 0, 0).map(|_| ())
}

pub fn yield_now() {
    let _ = call(nr::YIELD, 0, 0, 0);
}

/// Monotonic nanoseconds since boot.
pub fn clock_ns() -> u64 {
    call(nr::CLOCK, 0, 0, 0).unwrap_or(0)
}

pub fn sleep_until(ns: u64) {
    let _ = call(nr::SLEEP_UNTIL, ns, 0, 0);
}

pub fn sleep_ms(ms: u64) {
    sleep_until(clock_ns().saturating_add(ms.saturating_mul(1_000_000)));
}

pub fn getpid() -> u32 {
    call(nr::GETPID, 0, 0, 0).unwrap_or(0) as u32
}

pub fn getppid() -> u32 {
    call(nr::GETPPID, 0, 0, 0).unwrap_or(0) as u32
}

/// Feeds heartbeat watchdogs; returns whether a stop was requested.
pub fn heartbeat() -> bool {
    call(nr::HEARTBEAT, 0, 0, 0).unwrap_or(0) != 0
}

pub fn stop_requested() -> bool {
    call(nr::STOP_REQUESTED, 0, 0, 0).unwrap_or(0) != 0
}

/// Maps `bytes` (rounded up to pages) of zeroed memory at the end of the
/// heap; returns where the new memory starts.
pub fn heap_grow(bytes: usize) -> Result<usize, Errno> {
    call(nr::HEAP_GROW, bytes as u64, 0, 0).map(|v| v as usize)
}

/// Writes all of `bytes` to the console (or, for a process whose output is
/// captured, to its capture: docs/processes.md, "Captured output").
pub fn console_write(bytes: &[u8]) -> Result<usize, Errno> {
    let mut done = 0;
    while done < bytes.len() {
        let chunk = &bytes[done..bytes.len().min(done + abi::CONSOLE_IO_MAX)];
        // SAFETY: `chunk` is readable for its length.
        let (ret, _) = unsafe {
            raw(
                nr::CONSOLE_WRITE,
                [chunk.as_ptr() as u64, chunk.len() as u64, 0, 0, 0, 0],
            )
        };
        match Errno::from_ret(ret)? as usize {
            // A captured output's buffer is full: its reader drains it
            // soon; wait a little rather than spin.
            0 => sleep_ms(1),
            n => done += n,
        }
    }
    Ok(done)
}

/// Reads what the console has (at least one byte, blocking unless
/// `nonblocking`).
pub fn console_read(buf: &mut [u8], nonblocking: bool) -> Result<usize, Errno> {
    let flags = if nonblocking { abi::CONSOLE_READ_NONBLOCK } else { 0 };
    let len = buf.len().min(abi::CONSOLE_IO_MAX);
    // SAFETY: `buf` is writable for `len` bytes.
    let (ret, _) = unsafe { raw(nr::CONSOLE_READ, [buf.as_mut_ptr() as u64, len as u64, flags, 0, 0, 0]) };
    Errno::from_ret(ret).map(|v| v as usize)
}

/// Posts one word to `pid`'s mailbox.
pub fn send(pid: u32, word: u64) -> Result<(), Errno> {
    call(nr::SEND, pid as u64, word, 0).map(|_| ())
}

/// Waits for a word (until `deadline_ns`, 0 = forever): `(sender, word)`.
pub fn recv(deadline_ns: u64) -> Result<(u32, u64), Errno> {
    // SAFETY: no pointer arguments.
    let (ret, word) = unsafe { raw(nr::RECV, [deadline_ns, 0, 0, 0, 0, 0]) };
    Errno::from_ret(ret).map(|sender| (sender as u32, word))
}

/// Posts `word` to `pid`, then waits for a word (until `deadline_ns`, 0 =
/// forever): `(sender, word)`. One call for a request and its answer.
pub fn send_recv(pid: u32, word: u64, deadline_ns: u64) -> Result<(u32, u64), Errno> {
    // SAFETY: no pointer arguments.
    let (ret, answer) = unsafe { raw(nr::SEND_RECV, [pid as u64, word, deadline_ns, 0, 0, 0]) };
    Errno::from_ret(ret).map(|sender| (sender as u32, answer))
}

/// Makes this process the server of service `number` (a framed number).
pub fn serve_register(number: u64, request_max: usize, response_max: usize) -> Result<(), Errno> {
    call(nr::SERVE_REGISTER, number, request_max as u64, response_max as u64).map(|_| ())
}

/// Waits for the next request of service `number` into `buf` (which must
/// hold the declared `request_max`), until `deadline_ns` (0: no deadline,
/// else `TimedOut`): `(call id, request length)`.
pub fn serve_next(number: u64, buf: &mut [u8], deadline_ns: u64) -> Result<(u64, usize), Errno> {
    let args = [number, buf.as_mut_ptr() as u64, buf.len() as u64, deadline_ns, 0, 0];
    // SAFETY: `buf` is writable for its length.
    let (ret, id) = unsafe { raw(nr::SERVE_NEXT, args) };
    Errno::from_ret(ret).map(|len| (id, len as usize))
}

/// Answers call `id`.
pub fn serve_reply(id: u64, answer: &[u8]) -> Result<(), Errno> {
    // SAFETY: `answer` is readable for its length.
    let (ret, _) = unsafe {
        raw(
            nr::SERVE_REPLY,
            [id, answer.as_ptr() as u64, answer.len() as u64, 0, 0, 0],
        )
    };
    Errno::from_ret(ret).map(|_| ())
}

/// Queues bytes for the host on the link (the `JOB` server only); how many
/// fitted (at most 4096 a call; 0 when the ring is full).
pub fn link_write(bytes: &[u8]) -> Result<usize, Errno> {
    // SAFETY: `bytes` is readable for its length.
    let (ret, _) = unsafe { raw(nr::LINK_WRITE, [bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0, 0]) };
    Errno::from_ret(ret).map(|n| n as usize)
}

/// Takes bytes from the host off the link; how many (0 when none wait).
pub fn link_read(buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is writable for its length.
    let (ret, _) = unsafe { raw(nr::LINK_READ, [buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0, 0]) };
    Errno::from_ret(ret).map(|n| n as usize)
}

/// A framed call (`PROC`, or a service call such as `JOB`): `request` in,
/// the answer written to `response`; the answer's length.
pub fn framed(number: u64, request: &[u8], response: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `request` is readable and `response` writable for their lengths.
    let (ret, _) = unsafe {
        raw(
            number,
            [
                request.as_ptr() as u64,
                request.len() as u64,
                response.as_mut_ptr() as u64,
                response.len() as u64,
                0,
                0,
            ],
        )
    };
    Errno::from_ret(ret).map(|v| v as usize)
}

/// Deliberate faults, for the `fault` program and the kernel's tests of
/// fault containment. Each one ends the calling process.
pub mod fault {
    /// Reads `addr` (e.g. a kernel or unmapped address).
    pub fn read(addr: usize) {
        // SAFETY: none in the usual sense: this read is meant to fault, and
        // the kernel ends the process; no Rust state depends on the result.
        let v = unsafe { core::ptr::read_volatile(addr as *const u64) };
        core::hint::black_box(v);
    }

    pub fn invalid_opcode() -> ! {
        // SAFETY: `ud2` raises #UD; the kernel ends the process.
        unsafe { core::arch::asm!("ud2", options(noreturn)) }
    }

    /// A privileged instruction in ring 3: #GP.
    pub fn privileged() -> ! {
        // SAFETY: `hlt` at CPL 3 raises #GP; the kernel ends the process.
        unsafe { core::arch::asm!("hlt", "ud2", options(noreturn)) }
    }

    pub fn divide_by_zero() -> ! {
        // SAFETY: `div` by zero raises #DE; the kernel ends the process.
        unsafe { core::arch::asm!("xor ecx, ecx", "div rcx", "ud2", options(noreturn)) }
    }
}
