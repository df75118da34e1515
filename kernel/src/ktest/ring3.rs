//! Kernel tests of ring 3: user programs from the boot image run in their
//! own address spaces under the scheduler; faults end only the faulting
//! process; priorities preempt; group kills leave no member; watchdogs fire
//! on time; bad syscalls are errors (the `badcalls` and `fuzz` programs).

use alloc::format;
use alloc::vec::Vec;

use aether_abi::syscall::{
    CAPTURE_MAX, DEFAULT_PRIORITY, Errno, ExitRecord, ExitStatus, FaultKind, GroupChoice, ProcResponse, Target,
    WaitTarget, WatchdogAction, WatchdogKind,
};

use super::{TestResult, ensure};
use crate::task::{self, SLICE_NS};
use crate::time;

fn spawn(program: &str, args: &[&str], priority: u8, group: GroupChoice) -> Result<(u32, u32), alloc::string::String> {
    task::spawn(program, args, priority, group).map_err(|e| format!("spawn {program}: {e}"))
}

// Answers stay in their boxes: a ProcResponse is several KiB, and the
// kernel stacks are 64 KiB.
fn wait_pid(pid: u32) -> Result<ExitRecord, alloc::string::String> {
    match task::wait(WaitTarget::Process(pid)).as_deref() {
        Ok(ProcResponse::Exited(r)) => Ok(*r),
        other => Err(format!("wait {pid}: {other:?}")),
    }
}

fn wait_group(pgid: u32) -> Result<(bool, Vec<ExitRecord>), alloc::string::String> {
    match task::wait(WaitTarget::Group(pgid)).as_deref() {
        Ok(ProcResponse::GroupExited { forced, members, .. }) => Ok((*forced, members.iter().copied().collect())),
        other => Err(format!("wait group {pgid}: {other:?}")),
    }
}

fn sleep_ms(ms: u64) {
    task::sleep_until(time::now_ns() + ms * 1_000_000);
}

pub fn ring3_hello_exits_zero() -> TestResult {
    let (pid, pgid) = spawn("hello", &["a", "b"], DEFAULT_PRIORITY, GroupChoice::New)?;
    ensure!(
        pid == pgid,
        "a new group is led by its first process: pid {pid} pgid {pgid}"
    );
    let r = wait_pid(pid)?;
    ensure!(r.status == ExitStatus::Exited(0), "hello ended with {:?}", r.status);
    ensure!(!r.forced && !r.stop_requested, "{r:?}");
    ensure!(r.runtime_ns > 0, "no runtime recorded: {r:?}");
    Ok(())
}

pub fn ring3_faults_end_only_the_process() -> TestResult {
    let cases = [
        ("kernel", FaultKind::PageFault),
        ("null", FaultKind::PageFault),
        ("ud", FaultKind::InvalidOpcode),
        ("gp", FaultKind::GeneralProtection),
        ("de", FaultKind::DivideError),
    ];
    for (arg, kind) in cases {
        let (pid, _) = spawn("fault", &[arg], DEFAULT_PRIORITY, GroupChoice::New)?;
        let r = wait_pid(pid)?;
        match r.status {
            ExitStatus::Faulted(f) => {
                ensure!(f.kind == kind, "fault {arg}: {:?}, expected {kind:?}", f.kind);
                if arg == "kernel" {
                    ensure!(f.addr == 0xffff_8000_0000_0000, "fault kernel: addr {:#x}", f.addr);
                }
            }
            other => return Err(format!("fault {arg} ended with {other:?}")),
        }
    }
    // The kernel and new processes go on.
    let (pid, _) = spawn("hello", &[], DEFAULT_PRIORITY, GroupChoice::New)?;
    ensure!(wait_pid(pid)?.status == ExitStatus::Exited(0), "hello after faults");
    Ok(())
}

pub fn ring3_priority_preempts_a_spinning_process() -> TestResult {
    let (spin, spin_group) = spawn("spin", &[], 20, GroupChoice::New)?;
    // Let it take the CPU (this task blocks, spin runs).
    sleep_ms(30);
    let (pid, _) = spawn("hello", &[], 0, GroupChoice::New)?;
    let r = wait_pid(pid)?;
    ensure!(r.status == ExitStatus::Exited(0), "hello: {:?}", r.status);
    let spin_cpu = task::with(|k| k.tasks.get(&spin).map(|t| t.cpu_ns)).ok_or("spin vanished")?;
    ensure!(spin_cpu > 0, "spin never ran");
    task::with(|k| k.kill(Target::Group(spin_group), 0)).map_err(|e| format!("kill spin: {e}"))?;
    let (forced, members) = wait_group(spin_group)?;
    ensure!(forced && members.len() == 1, "spin group: forced {forced}, {members:?}");
    Ok(())
}

pub fn ring3_round_robin_shares_a_level() -> TestResult {
    let (a, g) = spawn("spin", &[], 20, GroupChoice::New)?;
    let (b, _) = spawn("spin", &[], 20, GroupChoice::Join(g))?;
    sleep_ms(200);
    let cpu = |pid| task::with(|k| k.tasks.get(&pid).map_or(0, |t| t.cpu_ns));
    let (ca, cb) = (cpu(a), cpu(b));
    task::with(|k| k.kill(Target::Group(g), 0)).map_err(|e| format!("kill: {e}"))?;
    wait_group(g)?;
    // Both got a fair share: neither less than a quarter of the other.
    ensure!(ca > 0 && cb > 0, "cpu a={ca} b={cb}");
    ensure!(ca * 4 > cb && cb * 4 > ca, "unfair: cpu a={ca} b={cb}");
    Ok(())
}

pub fn ring3_group_kill_forces_every_member() -> TestResult {
    let (leader, pgid) = spawn("forker", &["4"], DEFAULT_PRIORITY, GroupChoice::New)?;
    sleep_ms(100);
    let members = task::with(|k| k.kill(Target::Group(pgid), 300)).map_err(|e| format!("kill -g: {e}"))?;
    ensure!(members == 5, "stop request reached {members} processes, expected 5");
    let start = time::now_ns();
    let (forced, records) = wait_group(pgid)?;
    let waited = time::now_ns() - start;
    ensure!(forced, "group kill not forced");
    // The leader, 4 children, and the one it spawned during the grace.
    ensure!(records.len() == 6, "{} members reported: {records:?}", records.len());
    for r in &records {
        ensure!(r.forced && r.stop_requested && r.status == ExitStatus::Killed, "{r:?}");
    }
    ensure!(records.iter().any(|r| r.pid == leader), "leader missing");
    ensure!(waited >= 250_000_000, "killed before the grace: {waited} ns");
    let left = task::with(|k| k.tasks.values().filter(|t| t.pgid() == pgid).count());
    ensure!(left == 0, "{left} members left in the table");
    // The group is gone: killing it again is an error.
    ensure!(
        task::with(|k| k.kill(Target::Group(pgid), 0)) == Err(Errno::NoSuchGroup),
        "second kill of an empty group"
    );
    Ok(())
}

pub fn ring3_group_kill_of_64_is_fast() -> TestResult {
    let (_, pgid) = spawn("spin", &[], 30, GroupChoice::New)?;
    for _ in 1..64 {
        spawn("spin", &[], 30, GroupChoice::Join(pgid))?;
    }
    let start = time::now_ns();
    task::with(|k| k.kill(Target::Group(pgid), 0)).map_err(|e| format!("kill: {e}"))?;
    let (forced, records) = wait_group(pgid)?;
    let took = time::now_ns() - start;
    ensure!(
        forced && records.len() == 64,
        "forced {forced}, {} members",
        records.len()
    );
    log::info!("group of 64 killed in {} us", took / 1000);
    Ok(())
}

pub fn ring3_watchdog_kills_a_silent_process() -> TestResult {
    // Heartbeats every 50 ms for 1 s, then silence.
    let (pid, pgid) = spawn("sleeper", &["1", "50"], 1, GroupChoice::New)?;
    let _ = pid;
    task::with(|k| {
        k.arm_watchdog(
            Target::Group(pgid),
            WatchdogKind::Heartbeat { period_ms: 200 },
            WatchdogAction::Kill,
        )
    })
    .map_err(|e| format!("arm: {e}"))?;
    let (forced, records) = wait_group(pgid)?;
    ensure!(forced && records.len() == 1, "{records:?}");
    ensure!(records[0].status == ExitStatus::Watchdog, "{:?}", records[0].status);
    let events = match task::with(|k| k.watchdog_events(0)) {
        ProcResponse::WatchdogEvents { events, .. } => events,
        _ => return Err("no events answer".into()),
    };
    let e = events
        .iter()
        .rev()
        .find(|e| e.target == Target::Group(pgid))
        .ok_or("no watchdog event recorded")?;
    let since_beat = e.fired_ns - e.last_heartbeat_ns;
    ensure!(
        (200_000_000..=200_000_000 + SLICE_NS).contains(&since_beat),
        "killed {since_beat} ns after the last heartbeat (limit 200 ms + one slice)"
    );
    Ok(())
}

pub fn ring3_watchdog_deadline_stops_with_grace() -> TestResult {
    let (pid, pgid) = spawn("spin", &["--polite"], 25, GroupChoice::New)?;
    task::with(|k| {
        k.arm_watchdog(
            Target::Process(pid),
            WatchdogKind::Deadline { within_ms: 50 },
            WatchdogAction::Stop { grace_ms: 1000 },
        )
    })
    .map_err(|e| format!("arm: {e}"))?;
    let r = wait_pid(pid)?;
    // `spin --polite` exits 0 on a stop request: not forced.
    ensure!(
        r.status == ExitStatus::Exited(0) && r.stop_requested && !r.forced,
        "{r:?}"
    );
    let _ = pgid;
    Ok(())
}

/// Four processes use the same virtual addresses and switch back and forth
/// (yield) hundreds of times: each must only ever see its own memory (the
/// lazy invalidation of `mm::user` leaves no stale translation).
pub fn ring3_address_spaces_stay_isolated_across_switches() -> TestResult {
    let (first, pgid) = spawn("memcheck", &["200"], 20, GroupChoice::New)?;
    let mut pids = alloc::vec![first];
    for _ in 0..3 {
        pids.push(spawn("memcheck", &["200"], 20, GroupChoice::Join(pgid))?.0);
    }
    let (forced, records) = wait_group(pgid)?;
    ensure!(!forced && records.len() == 4, "forced {forced}, {records:?}");
    for r in &records {
        ensure!(r.status == ExitStatus::Exited(0), "memcheck {}: {:?}", r.pid, r.status);
    }
    Ok(())
}

/// Service calls (task::service): a user server answers a client through
/// the kernel; limits hold; one server per service; a server's death fails
/// its pending calls with `NoSuchService` instead of hanging the client.
pub fn ring3_service_calls() -> TestResult {
    let exit0 = |r: ExitRecord, what: &str| -> TestResult {
        ensure!(r.status == ExitStatus::Exited(0), "{what}: {:?}", r.status);
        Ok(())
    };
    let (none, _) = spawn("svc", &["none"], DEFAULT_PRIORITY, GroupChoice::New)?;
    exit0(wait_pid(none)?, "call with no server")?;

    let (server, _) = spawn("svc", &["serve"], DEFAULT_PRIORITY, GroupChoice::New)?;
    sleep_ms(20);
    let (second, _) = spawn("svc", &["serve"], DEFAULT_PRIORITY, GroupChoice::New)?;
    let r = wait_pid(second)?;
    ensure!(
        r.status == ExitStatus::Exited(3),
        "a second server registered: {:?}",
        r.status
    );
    let (client, _) = spawn("svc", &["call", "200"], DEFAULT_PRIORITY, GroupChoice::New)?;
    exit0(wait_pid(client)?, "200 calls")?;
    exit0(wait_pid(server)?, "server after quit")?;

    let (server, _) = spawn("svc", &["serve"], DEFAULT_PRIORITY, GroupChoice::New)?;
    sleep_ms(20);
    let (hang, _) = spawn("svc", &["hang"], DEFAULT_PRIORITY, GroupChoice::New)?;
    sleep_ms(50);
    task::with(|k| k.kill(Target::Process(server), 0)).map_err(|e| format!("kill server: {e}"))?;
    exit0(wait_pid(hang)?, "client of a killed server")?;
    let r = wait_pid(server)?;
    ensure!(r.status == ExitStatus::Killed, "server: {:?}", r.status);
    Ok(())
}

/// opsd serves JOB: a native job started through it runs as a process and
/// ends SUCCEEDED (hello exits 0), or FAILED with the program's exit code.
pub fn ring3_opsd_runs_native_jobs() -> TestResult {
    let (opsd, _) = spawn("opsd", &[], 3, GroupChoice::New)?;
    sleep_ms(50);
    // Its output is captured as the job's log (not printed).
    let (client, _) = spawn(
        "svc",
        &["job", "hello", "-", "hello from ring 3: pid"],
        DEFAULT_PRIORITY,
        GroupChoice::New,
    )?;
    let r = wait_pid(client)?;
    ensure!(r.status == ExitStatus::Exited(0), "native hello job: {:?}", r.status);
    // `svc` with no arguments prints its usage and exits 2.
    let (client, _) = spawn("svc", &["job", "svc", "2"], DEFAULT_PRIORITY, GroupChoice::New)?;
    let r = wait_pid(client)?;
    ensure!(
        r.status == ExitStatus::Exited(0),
        "native job exiting 2: {:?}",
        r.status
    );
    task::with(|k| k.kill(Target::Process(opsd), 0)).map_err(|e| format!("kill opsd: {e}"))?;
    wait_pid(opsd)?;
    Ok(())
}

/// A captured process tree's console output reaches its spawner only, CR
/// LF as LF, in order, with `ended` once the writers are gone; a full
/// capture holds its writer back instead of losing bytes.
pub fn ring3_captured_output() -> TestResult {
    let (pid, _) = task::with(|k| k.spawn_with(0, "hello", &["a", "b"], DEFAULT_PRIORITY, GroupChoice::New, true))
        .map_err(|e| format!("spawn: {e}"))?;
    ensure!(
        task::with(|k| k.read_output(4242, pid)).err() == Some(Errno::NotPermitted),
        "another process read the capture"
    );
    let r = wait_pid(pid)?;
    ensure!(r.status == ExitStatus::Exited(0), "hello: {:?}", r.status);
    let mut out = Vec::new();
    loop {
        match task::with(|k| k.read_output(0, pid)).as_deref() {
            Ok(ProcResponse::Output { bytes, ended }) => {
                out.extend_from_slice(bytes);
                if *ended {
                    break;
                }
                ensure!(!bytes.is_empty(), "no writer left but not ended");
            }
            other => return Err(format!("read_output: {other:?}")),
        }
    }
    let text = core::str::from_utf8(&out).map_err(|e| format!("{e}"))?;
    let want_tail = "\narg 1: a\narg 2: b\n";
    ensure!(
        text.starts_with(&format!("hello from ring 3: pid {pid}")) && text.ends_with(want_tail),
        "captured {text:?}"
    );
    // Read out and ended: the capture is gone.
    ensure!(
        task::with(|k| k.read_output(0, pid)).err() == Some(Errno::NoSuchProcess),
        "the capture outlived its end"
    );
    // More than a capture holds: the writer waits for reads, and every
    // line arrives once, in order.
    const LINES: u32 = 12_000;
    let (pid, _) = task::with(|k| {
        k.spawn_with(
            0,
            "hello",
            &["--lines", "12000"],
            DEFAULT_PRIORITY,
            GroupChoice::New,
            true,
        )
    })
    .map_err(|e| format!("spawn: {e}"))?;
    let mut out = Vec::new();
    let (mut waited, mut full_seen) = (false, false);
    loop {
        match task::with(|k| k.read_output(0, pid)).as_deref() {
            Ok(ProcResponse::Output { bytes, ended }) => {
                out.extend_from_slice(bytes);
                if *ended {
                    break;
                }
                if !waited && !bytes.is_empty() {
                    // Let it fill the capture before reading on.
                    waited = true;
                    sleep_ms(300);
                    full_seen = task::with(|k| k.captures.get(&pid).is_some_and(|c| c.bytes.len() == CAPTURE_MAX));
                } else if bytes.is_empty() {
                    sleep_ms(2);
                }
            }
            other => return Err(format!("read_output: {other:?}")),
        }
    }
    ensure!(full_seen, "the capture never filled (the test proves nothing)");
    let want: alloc::string::String = (1..=LINES).map(|i| format!("line {i}\n")).collect();
    ensure!(
        out == want.as_bytes(),
        "{} bytes captured, {} expected",
        out.len(),
        want.len()
    );
    ensure!(wait_pid(pid)?.status == ExitStatus::Exited(0), "hello --lines");
    Ok(())
}

pub fn ring3_bad_syscalls_are_errors() -> TestResult {
    drain_metrics();
    let (pid, _) = spawn("badcalls", &[], DEFAULT_PRIORITY, GroupChoice::New)?;
    let r = wait_pid(pid)?;
    ensure!(r.status == ExitStatus::Exited(0), "badcalls: {:?}", r.status);
    // Its refused batches kept nothing: only the two good points are there.
    let names: Vec<_> = drain_metrics()
        .into_iter()
        .filter(|(h, _)| h.pid == pid)
        .map(|(_, p)| p.name)
        .collect();
    ensure!(
        names.len() == 2 && names[0] == "badcalls_a" && names[1] == "badcalls_b",
        "badcalls' points in the kernel: {names:?}"
    );
    Ok(())
}

/// Everything the kernel holds of emitted points, taken.
fn drain_metrics() -> Vec<(aether_abi::metric::DrainHeader, aether_abi::metric::MetricPoint)> {
    let mut out = Vec::new();
    crate::telemetry::METRICS.lock().drain(&mut out, usize::MAX);
    aether_abi::metric::drained(&out).collect()
}

/// METRIC and EVENT from ring 3: points come out stamped, in order; a
/// fault is an event a process reads; a reader blocks until a publish
/// (or its deadline) and the publish wakes it.
pub fn ring3_metrics_and_events() -> TestResult {
    use aether_abi::event::{EventBody, EventKind, Severity};
    drain_metrics();
    const N: u64 = 1000;
    let (pid, pgid) = spawn("telem", &["emit", "1000", "64"], DEFAULT_PRIORITY, GroupChoice::New)?;
    let r = wait_pid(pid)?;
    ensure!(r.status == ExitStatus::Exited(0), "telem emit: {:?}", r.status);
    let got = drain_metrics();
    ensure!(got.len() == N as usize, "{} points drained, {N} emitted", got.len());
    let mut last_ns = 0;
    for (i, (h, p)) in got.iter().enumerate() {
        ensure!(
            h.pid == pid && h.group == pgid && h.mono_ns >= last_ns && h.mono_ns <= time::now_ns(),
            "point {i}: {h:?} (pid {pid} pgid {pgid})"
        );
        ensure!(
            p.name == "telem_step" && p.step == Some(i as u64) && p.value == i as f64 && p.tags.len() == 1,
            "point {i}: {p:?}"
        );
        last_ns = h.mono_ns;
    }

    // A fault, read back as the kernel's event.
    let (fpid, _) = spawn("fault", &[], DEFAULT_PRIORITY, GroupChoice::New)?;
    ensure!(
        matches!(wait_pid(fpid)?.status, ExitStatus::Faulted(_)),
        "fault did not fault"
    );
    let arg = format!("{fpid}");
    let (pid, _) = spawn("telem", &["fault", &arg], DEFAULT_PRIORITY, GroupChoice::New)?;
    ensure!(
        wait_pid(pid)?.status == ExitStatus::Exited(0),
        "no fault event read for pid {fpid}"
    );

    // A waiting reader: its deadline, then a publish that wakes it.
    let latest = format!("{}", task::with(|k| k.events.latest()));
    let (pid, _) = spawn("telem", &["wait", &latest, "30"], DEFAULT_PRIORITY, GroupChoice::New)?;
    ensure!(
        wait_pid(pid)?.status == ExitStatus::Exited(3),
        "a read with nothing to read did not time out"
    );
    let (pid, _) = spawn("telem", &["wait", &latest, "5000"], DEFAULT_PRIORITY, GroupChoice::New)?;
    sleep_ms(30);
    let blocked = task::with(|k| k.tasks.get(&pid).map(|t| t.state));
    ensure!(
        blocked == Some(task::State::Blocked(task::Block::Event)),
        "the reader is {blocked:?}, not waiting for an event"
    );
    let t0 = time::now_ns();
    task::with(|k| {
        k.publish_kernel_event(&EventBody::new(EventKind::Job, Severity::Info, 0, "ktest"));
    });
    let r = wait_pid(pid)?;
    ensure!(r.status == ExitStatus::Exited(0), "the woken reader: {:?}", r.status);
    let took = time::now_ns() - t0;
    ensure!(took < 1_000_000_000, "the reader took {took} ns to wake");
    Ok(())
}

pub fn ring3_fuzz_100k_syscalls() -> TestResult {
    let (pid, _) = spawn("fuzz", &["100000"], DEFAULT_PRIORITY, GroupChoice::New)?;
    let r = wait_pid(pid)?;
    ensure!(r.status == ExitStatus::Exited(0), "fuzz: {:?}", r.status);
    let (pid, _) = spawn("hello", &[], DEFAULT_PRIORITY, GroupChoice::New)?;
    ensure!(wait_pid(pid)?.status == ExitStatus::Exited(0), "hello after the fuzz");
    Ok(())
}

/// Archive entries are hostile input: a corrupt compressed program is an
/// error, whatever its bytes.
pub fn ring3_corrupt_compressed_programs_are_refused() -> TestResult {
    let wrap = |raw: u64, block: &[u8]| [&aether_abi::initrd::lz4_header(raw)[..], block].concat();
    let mut buf = Vec::new();
    let mut cases: Vec<Vec<u8>> = alloc::vec![
        b"AELZ".to_vec(),                               // truncated header
        wrap(0, b"x"),                                  // zero length
        wrap(64 << 20, b"x"),                           // over RAW_MAX
        wrap(100, &[0xff; 16]),                         // garbage block
        wrap(100, &[0x10, b'a']),                       // truncated block
        wrap(4, &[0x40, b'a', b'b', b'c', b'd', 0x10]), // decodes past the length
    ];
    // A valid block whose declared length is wrong.
    cases.push(wrap(7, &[0x50, b'h', b'e', b'l', b'l', b'o']));
    for (i, c) in cases.iter().enumerate() {
        ensure!(
            task::unpack("test", c, &mut buf) == Err(Errno::BadProgram),
            "case {i} accepted"
        );
    }
    let good = wrap(5, &[0x50, b'h', b'e', b'l', b'l', b'o']);
    ensure!(
        task::unpack("test", &good, &mut buf) == Ok(&b"hello"[..]),
        "a valid block refused"
    );
    ensure!(
        task::unpack("test", b"\x7fELF", &mut buf) == Ok(&b"\x7fELF"[..]),
        "a plain entry changed"
    );
    Ok(())
}

/// User mappings stop at the kernel's reserve: a space that maps every
/// page it can gets an error, the kernel still allocates, and dropping the
/// space gives every frame back.
pub fn ring3_user_memory_exhaustion_leaves_the_kernel_a_reserve() -> TestResult {
    use crate::mm::paging::{Flags, MapError};
    use crate::mm::user::{AddressSpace, KERNEL_RESERVE_FRAMES, PAGE};
    let before = crate::mm::frames::stats().free;
    let heap_before = crate::mm::heap::stats().size;
    let mut space = AddressSpace::new().map_err(|e| format!("new space: {e:?}"))?;
    let mut va = 0x1000_0000u64;
    let err = loop {
        if let Err(e) = space.map_zeroed(va, Flags::WRITABLE) {
            break e;
        }
        va += PAGE;
    };
    ensure!(err == MapError::OutOfFrames, "stopped with {err:?}");
    let free = crate::mm::frames::stats().free;
    ensure!(
        free >= KERNEL_RESERVE_FRAMES - 8,
        "only {free} frames left for the kernel"
    );
    // The kernel can still allocate (and so spawn, log, answer syscalls).
    let v: Vec<u8> = alloc::vec![7; 4 << 20];
    ensure!(v.iter().all(|&b| b == 7), "kernel allocation");
    drop(v);
    drop(space);
    // The kernel heap keeps what it grew by for the allocation above.
    let heap_grew = (crate::mm::heap::stats().size - heap_before) / PAGE;
    let after = crate::mm::frames::stats().free + heap_grew;
    ensure!(
        after + 16 >= before,
        "frames not given back: {before} before, {after} after"
    );
    Ok(())
}

pub fn ring3_spawn_and_kill_errors() -> TestResult {
    ensure!(
        task::spawn("no-such-program", &[], 1, GroupChoice::New) == Err(Errno::NoSuchProgram),
        "unknown program"
    );
    ensure!(
        task::spawn("hello", &[], 32, GroupChoice::New) == Err(Errno::InvalidArgument),
        "priority 32"
    );
    ensure!(
        task::spawn("hello", &[], 1, GroupChoice::Join(99_999)) == Err(Errno::NoSuchGroup),
        "join a missing group"
    );
    ensure!(
        task::with(|k| k.kill(Target::Process(99_999), 0)) == Err(Errno::NoSuchProcess),
        "kill a missing pid"
    );
    ensure!(
        task::wait(WaitTarget::Process(99_999)).err() == Some(Errno::NoSuchProcess),
        "wait for a missing pid"
    );
    Ok(())
}

/// The deepest use of any kernel stack so far (every task that ended, and
/// this test task's own) stays within three quarters of its 64 KiB: the
/// rest is headroom for an interrupt landing at the deepest point. Run
/// last, after the other tests have used their stacks.
pub fn kernel_stacks_keep_a_quarter_free() -> TestResult {
    use crate::mm::kstack::{STACK_BYTES, deepest_freed};
    let own = task::with(|k| k.current_kstack_high_water());
    let deepest = deepest_freed().max(own);
    log::info!(
        "kernel stacks: deepest use {} of {} KiB (this task {} KiB)",
        deepest / 1024,
        STACK_BYTES / 1024,
        own / 1024
    );
    ensure!(deepest > 0, "no stack use measured (the test proves nothing)");
    ensure!(
        deepest <= STACK_BYTES * 3 / 4,
        "a kernel stack was used {deepest} bytes deep, over 3/4 of {STACK_BYTES}"
    );
    Ok(())
}
