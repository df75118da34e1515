//! Syscall dispatch (docs/abi.md): the number and integer arguments from
//! the saved registers, framed requests copied in once from the caller's
//! buffer and decoded, every user pointer checked against the caller's own
//! page tables. Bad input is an `Errno`, never a panic; a process that
//! ended during its call (exit, its group killed) is switched away from.

use alloc::vec;
use alloc::vec::Vec;

use aether_abi::syscall::{
    self as abi, ABI_VERSION, CONSOLE_IO_MAX, CONSOLE_READ_NONBLOCK, Errno, ExitStatus, PROC_RESPONSE_MAX, ProcRequest,
    ProcResponse, REQUEST_MAX, SystemInfo, nr,
};
use kcore::frames::FRAME_SIZE;

use crate::arch::serial;
use crate::arch::syscall::SyscallFrame;
use crate::mm::user::AccessError;
use crate::task::{self, Block, State, schedule, with};
use crate::{mm, platform, time};

type Result<T> = core::result::Result<T, Errno>;

/// Console input drops already reported.
static DROPPED_SEEN: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

impl From<AccessError> for Errno {
    fn from(_: AccessError) -> Self {
        Errno::BadAddress
    }
}

/// The entry point the arch layer calls for every `syscall`.
pub fn dispatch(frame: &mut SyscallFrame) {
    let n = frame.rax;
    // The integer calls that only read or touch the caller's own state take
    // the kernel lock once (the null-syscall path, see docs/benchmarks.md).
    if let Some(result) = quick(n) {
        frame.rax = ret(result);
        return;
    }
    let result = handle(frame);
    frame.rax = ret(result);
    // Only these can end the caller and still return here (exit, a kill
    // of its own group or pid with no grace).
    if (n == nr::EXIT || n == nr::PROC) && with(|k| k.current_task().state == State::Zombie) {
        schedule();
        panic!("a dead process returned from a syscall");
    }
}

fn ret(result: Result<u64>) -> u64 {
    match result {
        Ok(v) => v.min(i64::MAX as u64),
        Err(e) => e.to_ret() as u64,
    }
}

/// The calls answered under one lock, with the ABI check; None for others.
fn quick(n: u64) -> Option<Result<u64>> {
    if !matches!(
        n,
        nr::CLOCK | nr::GETPID | nr::GETPPID | nr::HEARTBEAT | nr::STOP_REQUESTED
    ) {
        return None;
    }
    Some(with(|k| {
        let cur = k.current;
        let p = k.current_task().process.as_mut().ok_or(Errno::InvalidArgument)?;
        if !task::current_abi_ok() {
            return Err(Errno::AbiMismatch);
        }
        match n {
            nr::CLOCK => Ok(time::now_ns()),
            nr::GETPID => Ok(cur as u64),
            nr::GETPPID => Ok(p.ppid as u64),
            nr::STOP_REQUESTED => Ok(p.stop_requested as u64),
            _ => {
                let now = time::now_ns();
                p.last_heartbeat_ns = now;
                let (pgid, stop) = (p.pgid, p.stop_requested);
                k.watchdogs.heartbeat(cur, pgid, now);
                Ok(stop as u64)
            }
        }
    }))
}

fn current_pid() -> u32 {
    with(|k| k.current)
}

/// Reads user memory of the calling process.
fn read_user(va: u64, dst: &mut [u8]) -> Result<()> {
    with(|k| match k.current_task_space() {
        Some(space) => space.read(va, dst).map_err(Errno::from),
        None => Err(Errno::BadAddress),
    })
}

fn write_user(va: u64, src: &[u8]) -> Result<()> {
    with(|k| match k.current_task_space() {
        Some(space) => space.write(va, src).map_err(Errno::from),
        None => Err(Errno::BadAddress),
    })
}

fn check_user(va: u64, len: usize, write: bool) -> Result<()> {
    with(|k| match k.current_task_space() {
        Some(space) => space.check(va, len, write).map_err(Errno::from),
        None => Err(Errno::BadAddress),
    })
}

fn handle(frame: &mut SyscallFrame) -> Result<u64> {
    let (n, a0, a1, a2, a3) = (frame.rax, frame.rdi, frame.rsi, frame.rdx, frame.r10);
    if n == nr::ABI_HELLO {
        return with(|k| {
            let p = k.current_task().process.as_mut().ok_or(Errno::InvalidArgument)?;
            p.abi_ok = a0 == ABI_VERSION as u64;
            task::set_current_abi_ok(p.abi_ok);
            if p.abi_ok {
                Ok(ABI_VERSION as u64)
            } else {
                Err(Errno::AbiMismatch)
            }
        });
    }
    if !task::current_abi_ok() && n != nr::EXIT {
        return Err(Errno::AbiMismatch);
    }
    match n {
        nr::EXIT => {
            with(|k| {
                let cur = k.current;
                k.terminate(cur, ExitStatus::Exited(a0 as u32 as i32), false)
            });
            Ok(0)
        }
        nr::YIELD => {
            schedule();
            Ok(0)
        }
        nr::SLEEP_UNTIL => {
            if a0 > time::now_ns() {
                with(|k| k.block_current(Block::Sleep, Some(a0)));
                schedule();
            }
            Ok(0)
        }
        nr::CONSOLE_WRITE => console_write(a0, a1),
        nr::CONSOLE_READ => console_read(a0, a1, a2),
        nr::HEAP_GROW => with(|k| k.heap_grow(a0)),
        nr::SEND => send(a0, a1),
        nr::RECV => recv(a0, frame),
        nr::SEND_RECV => {
            send(a0, a1)?;
            recv(a2, frame)
        }
        nr::PROC => framed_proc(a0, a1, a2, a3),
        nr::FS => framed_fs(a0, a1, a2, a3),
        nr::METRIC => metric(a0, a1, a2, frame),
        nr::EVENT => event(a0, a1, a2, a3, frame.r8, frame),
        nr::JOB | nr::TEST_SERVICE => service_call(n, a0, a1, a2, a3),
        // Only the service numbers can be served (FS, PROC, METRIC and
        // EVENT are the kernel's own).
        nr::SERVE_REGISTER if !matches!(a0, nr::JOB | nr::TEST_SERVICE) => Err(Errno::InvalidArgument),
        nr::SERVE_REGISTER => with(|k| k.serve_register(a0, a1 as usize, a2 as usize)).map(|()| 0),
        nr::SERVE_NEXT => serve_next(a0, a1, a2, a3, frame),
        nr::SERVE_REPLY => serve_reply(a0, a1, a2),
        nr::LINK_WRITE => link_write(a0, a1),
        nr::LINK_READ => link_read(a0, a1),
        _ => Err(Errno::UnknownSyscall),
    }
}

fn console_write(ptr: u64, len: u64) -> Result<u64> {
    if len > CONSOLE_IO_MAX as u64 {
        return Err(Errno::TooLarge);
    }
    let mut buf = [0u8; CONSOLE_IO_MAX];
    let buf = &mut buf[..len as usize];
    read_user(ptr, buf)?;
    // A captured process's output goes to its capture; fewer bytes than
    // asked (0 when full) tell the writer to try the rest again.
    if let Some(n) = with(|k| k.capture_write(buf)) {
        return Ok(n as u64);
    }
    serial::write_bytes(buf);
    Ok(len)
}

fn console_read(ptr: u64, cap: u64, flags: u64) -> Result<u64> {
    if cap == 0 {
        return Ok(0);
    }
    let cap = cap.min(CONSOLE_IO_MAX as u64) as usize;
    // Check before taking input, so a bad buffer loses no typed byte.
    check_user(ptr, cap, true)?;
    loop {
        let mut buf = [0u8; CONSOLE_IO_MAX];
        let mut n = 0;
        while n < cap {
            match serial::read_byte() {
                Some(b) => {
                    buf[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        let dropped = serial::dropped_input();
        if dropped != DROPPED_SEEN.swap(dropped, core::sync::atomic::Ordering::Relaxed) {
            log::warn!("{dropped} console input bytes dropped so far (typed faster than read)");
        }
        if n > 0 {
            write_user(ptr, &buf[..n])?;
            return Ok(n as u64);
        }
        if flags & CONSOLE_READ_NONBLOCK != 0 {
            return Err(Errno::WouldBlock);
        }
        with(|k| {
            // Input may have arrived since the check above.
            if !serial::input_pending() {
                k.block_current(Block::ConsoleRead, None);
            }
        });
        schedule();
    }
}

fn send(pid: u64, word: u64) -> Result<u64> {
    let pid = u32::try_from(pid).map_err(|_| Errno::NoSuchProcess)?;
    with(|k| {
        let me = k.current;
        let t = k.tasks.get_mut(&pid).ok_or(Errno::NoSuchProcess)?;
        if !t.is_alive() {
            return Err(Errno::NoSuchProcess);
        }
        let p = t.process.as_mut().ok_or(Errno::NoSuchProcess)?;
        p.mailbox.push_back((me, word)).map_err(|_| Errno::LimitReached)?;
        if t.state == State::Blocked(Block::Recv) {
            k.wake(pid);
        }
        Ok(0)
    })
}

fn recv(deadline: u64, frame: &mut SyscallFrame) -> Result<u64> {
    loop {
        let got = with(|k| {
            let now = time::now_ns();
            let p = k.current_task().process.as_mut()?;
            if let Some(m) = p.mailbox.pop_front() {
                return Some(Ok(m));
            }
            if deadline != 0 && now >= deadline {
                return Some(Err(Errno::TimedOut));
            }
            k.block_current(Block::Recv, (deadline != 0).then_some(deadline));
            None
        });
        match got {
            Some(Ok((sender, word))) => {
                frame.rdx = word;
                return Ok(sender as u64);
            }
            Some(Err(e)) => return Err(e),
            None => schedule(),
        }
    }
}

/// A client's call of service `number`: the request copied in once and
/// queued, the caller blocked until the server answers (or ends).
fn service_call(number: u64, req_ptr: u64, req_len: u64, resp_ptr: u64, resp_cap: u64) -> Result<u64> {
    let (request_max, response_max) = with(|k| k.service_limits(number))?;
    if req_len > request_max as u64 {
        return Err(Errno::TooLarge);
    }
    // The answer must fit whatever it is, so none is lost after the
    // request took effect (as for PROC).
    if resp_cap < response_max as u64 {
        return Err(Errno::ResponseTooSmall);
    }
    check_user(resp_ptr, response_max, true)?;
    let mut request = vec![0u8; req_len as usize];
    read_user(req_ptr, &mut request)?;
    let id = with(|k| k.call_start(number, request))?;
    loop {
        let answer = with(|k| {
            let a = k.call_poll(id);
            if a.is_none() {
                k.block_current(Block::Call, None);
            }
            a
        });
        match answer {
            Some(Ok(bytes)) => {
                write_user(resp_ptr, &bytes)?;
                return Ok(bytes.len() as u64);
            }
            Some(Err(e)) => return Err(e),
            None => schedule(),
        }
    }
}

/// A server takes its next request (blocking until `deadline`, 0 = no
/// deadline): its length, the call id in `rdx`. The buffer is checked
/// first, so a bad one loses no request.
fn serve_next(number: u64, buf: u64, cap: u64, deadline: u64, frame: &mut SyscallFrame) -> Result<u64> {
    let (request_max, _) = with(|k| k.service_limits(number))?;
    if cap < request_max as u64 {
        return Err(Errno::ResponseTooSmall);
    }
    check_user(buf, request_max, true)?;
    loop {
        let next = with(|k| {
            let n = k.serve_take(number);
            if let Ok(None) = n {
                if deadline != 0 && time::now_ns() >= deadline {
                    return Err(Errno::TimedOut);
                }
                k.block_current(Block::Serve, (deadline != 0).then_some(deadline));
            }
            n
        })?;
        match next {
            Some((id, request)) => {
                write_user(buf, &request)?;
                frame.rdx = id;
                return Ok(request.len() as u64);
            }
            None => schedule(),
        }
    }
}

fn serve_reply(id: u64, buf: u64, len: u64) -> Result<u64> {
    if len > crate::task::service::MESSAGE_MAX as u64 {
        return Err(Errno::TooLarge);
    }
    let mut answer = vec![0u8; len as usize];
    read_user(buf, &mut answer)?;
    with(|k| k.serve_reply(id, answer)).map(|()| 0)
}

/// The link is opsd's: only the process serving `JOB` may move its bytes.
fn link_owner() -> Result<()> {
    if !crate::link::present() {
        return Err(Errno::NoDevice);
    }
    if !with(|k| k.serves(nr::JOB)) {
        return Err(Errno::NotPermitted);
    }
    Ok(())
}

fn link_write(ptr: u64, len: u64) -> Result<u64> {
    link_owner()?;
    let len = len.min(CONSOLE_IO_MAX as u64) as usize;
    let mut buf = [0u8; CONSOLE_IO_MAX];
    read_user(ptr, &mut buf[..len])?;
    crate::link::write(&buf[..len])
        .map(|n| n as u64)
        .map_err(|_| Errno::NoDevice)
}

fn link_read(ptr: u64, cap: u64) -> Result<u64> {
    link_owner()?;
    let cap = cap.min(CONSOLE_IO_MAX as u64) as usize;
    // Check before taking bytes off the ring, so none is lost.
    check_user(ptr, cap, true)?;
    let mut buf = [0u8; CONSOLE_IO_MAX];
    let n = crate::link::read(&mut buf[..cap]).map_err(|_| Errno::NoDevice)?;
    write_user(ptr, &buf[..n])?;
    Ok(n as u64)
}

/// `METRIC`: `metric_emit(ptr, len, 0)` or `metric_drain(ptr, cap,
/// METRIC_DRAIN)` (`aether_abi::metric`; the ring: `crate::telemetry`).
fn metric(ptr: u64, len: u64, op: u64, frame: &mut SyscallFrame) -> Result<u64> {
    use aether_abi::metric::{EMIT_BYTES_MAX, METRIC_DRAIN, emit_fault};
    use kcore::metric_ring::EmitError;
    match op {
        0 => {}
        METRIC_DRAIN => return metric_drain(ptr, len, frame),
        _ => return Err(Errno::InvalidArgument),
    }
    if len == 0 {
        return Err(Errno::InvalidArgument);
    }
    if len > EMIT_BYTES_MAX as u64 {
        return Err(Errno::TooLarge);
    }
    // A small batch (a point or a few) is copied to the stack, a larger
    // one to one heap buffer: no allocation per point. (Small: zeroing a
    // 4 KiB buffer was a tenth of a single point's emit under TCG.)
    let mut small = [0u8; 1024];
    let mut large = Vec::new();
    let bytes = if len as usize <= small.len() {
        &mut small[..len as usize]
    } else {
        large.try_reserve_exact(len as usize).map_err(|_| Errno::NoMemory)?;
        large.resize(len as usize, 0);
        &mut large[..]
    };
    // The copy and the caller's ids under one lock.
    let (pid, pgid) = with(|k| {
        let (pid, pgid) = (k.current, k.current_task().pgid());
        match k.current_task_space() {
            Some(space) => space.read(ptr, bytes).map(|()| (pid, pgid)).map_err(Errno::from),
            None => Err(Errno::BadAddress),
        }
    })?;
    let result = crate::telemetry::METRICS.lock().emit(bytes, pid, pgid, time::now_ns());
    match result {
        Ok(n) => Ok(n as u64),
        Err(EmitError::BadFrame { index }) => {
            frame.rdx = index as u64;
            Err(Errno::BadFrame)
        }
        Err(EmitError::Point { index, error }) => {
            frame.rdx = emit_fault(index, error);
            Err(Errno::BadMetric)
        }
        Err(EmitError::Size) => Err(Errno::TooLarge),
        Err(EmitError::Full { .. }) => Err(Errno::LimitReached),
        Err(EmitError::NoMemory) => Err(Errno::NoMemory),
    }
}

/// opsd's drain: whole records into the buffer, the refused points' count
/// since the last drain in `rdx`.
fn metric_drain(ptr: u64, cap: u64, frame: &mut SyscallFrame) -> Result<u64> {
    if !with(|k| k.serves(nr::JOB)) {
        return Err(Errno::NotPermitted);
    }
    let cap = cap.min(crate::telemetry::MOVE_MAX as u64) as usize;
    // Checked first: points taken off the ring are never lost to a bad
    // buffer.
    check_user(ptr, cap, true)?;
    let mut out = Vec::new();
    out.try_reserve_exact(cap).map_err(|_| Errno::NoMemory)?;
    let dropped = crate::telemetry::METRICS.lock().drain(&mut out, cap);
    write_user(ptr, &out)?;
    frame.rdx = dropped;
    Ok(out.len() as u64)
}

/// `EVENT`: `event_publish(ptr, len, 0)` (the `JOB` server only) or
/// `event_read(ptr, cap, EVENT_READ, after, deadline_ns)`
/// (`aether_abi::event`).
fn event(ptr: u64, len: u64, op: u64, after: u64, deadline: u64, frame: &mut SyscallFrame) -> Result<u64> {
    use aether_abi::event::{BODY_POSTCARD_MAX, EVENT_READ};
    use kcore::event_ring::EventError;
    match op {
        0 => {}
        EVENT_READ => return event_read(ptr, len, after, deadline, frame),
        _ => return Err(Errno::InvalidArgument),
    }
    if !with(|k| k.serves(nr::JOB)) {
        return Err(Errno::NotPermitted);
    }
    if len > BODY_POSTCARD_MAX as u64 {
        return Err(Errno::TooLarge);
    }
    let mut body = [0u8; BODY_POSTCARD_MAX];
    let body = &mut body[..len as usize];
    read_user(ptr, body)?;
    with(|k| k.publish_event(body)).map_err(|e| match e {
        EventError::TooLarge => Errno::TooLarge,
        EventError::BadFrame | EventError::TooSmall => Errno::BadFrame,
        EventError::NoMemory => Errno::NoMemory,
    })
}

/// Events with ids above `after` that fit in `cap` (waiting until there is
/// one or `deadline`, 0 = no wait); the oldest id kept in `rdx`.
fn event_read(ptr: u64, cap: u64, after: u64, deadline: u64, frame: &mut SyscallFrame) -> Result<u64> {
    use kcore::event_ring::EventError;
    let cap = cap.min(crate::telemetry::MOVE_MAX as u64) as usize;
    check_user(ptr, cap, true)?;
    let mut out = Vec::new();
    loop {
        let read = with(|k| {
            if k.events.latest() > after {
                return Some(k.events.read(after, &mut out, cap).map(|()| k.events.oldest()));
            }
            if deadline == 0 || time::now_ns() >= deadline {
                return Some(Ok(k.events.oldest()));
            }
            // Checked and blocked under the lock publishers wake under.
            k.block_current(Block::Event, Some(deadline));
            None
        });
        match read {
            Some(Ok(oldest)) => {
                write_user(ptr, &out)?;
                frame.rdx = oldest;
                return Ok(out.len() as u64);
            }
            Some(Err(EventError::TooSmall)) => return Err(Errno::ResponseTooSmall),
            Some(Err(EventError::NoMemory)) => return Err(Errno::NoMemory),
            Some(Err(_)) => return Err(Errno::InvalidArgument),
            None => schedule(),
        }
    }
}

/// Files: served by the kernel (`fs`), not a user server.
fn framed_fs(req_ptr: u64, req_len: u64, resp_ptr: u64, resp_cap: u64) -> Result<u64> {
    use aether_abi::fs::FS_RESPONSE_MAX;
    if req_len > REQUEST_MAX as u64 {
        return Err(Errno::TooLarge);
    }
    // Every answer fits: a call that took effect is never lost to a small
    // buffer.
    if resp_cap < FS_RESPONSE_MAX as u64 {
        return Err(Errno::ResponseTooSmall);
    }
    check_user(resp_ptr, FS_RESPONSE_MAX, true)?;
    let mut req = [0u8; REQUEST_MAX];
    let req = &mut req[..req_len as usize];
    read_user(req_ptr, req)?;
    let mut out: Vec<u8> = vec![0u8; FS_RESPONSE_MAX];
    let len = crate::fs::syscall(current_pid(), req, &mut out)?;
    write_user(resp_ptr, &out[..len])?;
    Ok(len as u64)
}

fn framed_proc(req_ptr: u64, req_len: u64, resp_ptr: u64, resp_cap: u64) -> Result<u64> {
    if req_len > REQUEST_MAX as u64 {
        return Err(Errno::TooLarge);
    }
    // The answer must always fit, so nothing (an exit record collected by a
    // wait) can be lost after the request took effect.
    if resp_cap < PROC_RESPONSE_MAX as u64 {
        return Err(Errno::ResponseTooSmall);
    }
    check_user(resp_ptr, PROC_RESPONSE_MAX, true)?;
    let mut req = [0u8; REQUEST_MAX];
    let req = &mut req[..req_len as usize];
    read_user(req_ptr, req)?;
    let request: ProcRequest = abi::decode(req)?;
    let answer = proc_request(request)?;
    let mut out: Vec<u8> = vec![0u8; PROC_RESPONSE_MAX];
    let len = abi::encode(&*answer, &mut out)?.len();
    write_user(resp_ptr, &out[..len])?;
    Ok(len as u64)
}

fn proc_request(request: ProcRequest) -> Result<alloc::boxed::Box<ProcResponse>> {
    use alloc::boxed::Box;
    let me = current_pid();
    let answer = match request {
        ProcRequest::Spawn {
            program,
            args,
            priority,
            group,
            capture,
        } => {
            let list: heapless::Vec<&str, { abi::ARGS_MAX }> = args.iter().map(|a| a.as_str()).collect();
            let (pid, pgid) = with(|k| k.spawn_with(me, &program, &list, priority, group, capture))?;
            ProcResponse::Spawned { pid, pgid }
        }
        ProcRequest::ReadOutput { pid } => return with(|k| k.read_output(me, pid)),
        ProcRequest::Wait { target, block: true } => return task::wait(target),
        ProcRequest::Wait { target, block: false } => {
            return Ok(with(|k| k.try_wait(me, target))?.unwrap_or_else(|| Box::new(ProcResponse::NotYet)));
        }
        ProcRequest::Kill { target, grace_ms } => ProcResponse::KillStarted {
            members: with(|k| k.kill(target, grace_ms))?,
        },
        ProcRequest::Ps { after } => with(|k| k.ps(after)),
        ProcRequest::ArmWatchdog { target, kind, action } => {
            with(|k| k.arm_watchdog(target, kind, action))?;
            ProcResponse::WatchdogArmed
        }
        ProcRequest::DisarmWatchdog { target } => {
            with(|k| k.disarm_watchdog(target))?;
            ProcResponse::WatchdogDisarmed
        }
        ProcRequest::WatchdogEvents { after } => with(|k| k.watchdog_events(after)),
        ProcRequest::SystemInfo => {
            let f = mm::frames::stats();
            let h = mm::heap::stats();
            ProcResponse::SystemInfo(SystemInfo {
                uptime_ns: time::now_ns(),
                boot_unix_s: time::boot_unix_s(),
                frame_size: FRAME_SIZE,
                frames_total: f.total,
                frames_used: f.used,
                heap_size: h.size,
                heap_used: h.used,
                heap_limit: h.limit,
                processes: with(|k| k.tasks.len() as u32),
                memory_warming: mm::frames::warming(),
            })
        }
        ProcRequest::Shutdown => {
            log::info!("shutdown requested by pid {me}");
            if crate::config::args().mode == aether_abi::boot::Mode::Bench {
                time::phases(|name, ns| log::info!("BOOTPHASE {name} {}", ns / 1_000));
            }
            platform::power_off()
        }
    };
    Ok(Box::new(answer))
}
