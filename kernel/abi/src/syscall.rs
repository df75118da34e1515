//! The syscall ABI between ring-3 programs and the kernel (docs/abi.md).
//!
//! Entry is the `syscall` instruction: the number in `rax`, integer
//! arguments in `rdi, rsi, rdx, r10, r8, r9`, the result in `rax` as an
//! `i64`: zero or positive is a value, negative is `-(Errno as i64)`.
//!
//! A small fixed set of numbers takes only integers ([`nr`]). Everything
//! richer travels through one of the *framed* numbers: the request is one
//! postcard-encoded enum in a user buffer (`rdi` = pointer, `rsi` = length),
//! the answer is one postcard-encoded enum written to a user buffer
//! (`rdx` = pointer, `r10` = capacity), and `rax` is the answer's length.
//! Each message type has a compile-time maximum size ([`MaxSize`]), so both
//! sides size their buffers statically and the kernel copies a request in
//! exactly once. Later issues add their own framed numbers (jobs, metrics,
//! events, files) with their own request/response enums.

use core::fmt;

use heapless::{String, Vec};
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change to numbers, framing or messages. A
/// program announces the version it was built against with
/// [`nr::ABI_HELLO`] before anything else; the kernel refuses every other
/// call (with [`Errno::AbiMismatch`]) until the versions agree.
pub const ABI_VERSION: u32 = 3;

/// Syscall numbers. The gaps are deliberate: 0-15 integer calls (14 free),
/// 16-31 framed calls (one per subsystem), 32-47 more integer calls, the
/// rest reserved. The framed numbers after `PROC` are *service calls*: a
/// user process (opsd for `JOB`) answers them, the kernel carries the bytes.
pub mod nr {
    /// `exit(code: i32) -> !`.
    pub const EXIT: u64 = 0;
    /// `yield()`: give up the rest of the time slice.
    pub const YIELD: u64 = 1;
    /// `clock() -> ns`: monotonic nanoseconds since boot.
    pub const CLOCK: u64 = 2;
    /// `sleep_until(ns)`: block until the monotonic clock reaches `ns`.
    pub const SLEEP_UNTIL: u64 = 3;
    /// `getpid() -> pid`.
    pub const GETPID: u64 = 4;
    /// `getppid() -> pid`: the null syscall of the benchmarks.
    pub const GETPPID: u64 = 5;
    /// `console_write(ptr, len) -> len`.
    pub const CONSOLE_WRITE: u64 = 6;
    /// `console_read(ptr, cap, flags) -> len`: blocks for at least one
    /// byte unless `flags` has [`super::CONSOLE_READ_NONBLOCK`].
    pub const CONSOLE_READ: u64 = 7;
    /// `heartbeat() -> stop_requested (0/1)`: feeds heartbeat watchdogs.
    pub const HEARTBEAT: u64 = 8;
    /// `stop_requested() -> 0/1`: whether a stop (kill with grace) is pending.
    pub const STOP_REQUESTED: u64 = 9;
    /// `heap_grow(bytes) -> old_end`: maps zeroed pages at the heap's end.
    pub const HEAP_GROW: u64 = 10;
    /// `send(pid, word)`: post one word to a process's mailbox.
    pub const SEND: u64 = 11;
    /// `recv(deadline_ns) -> sender`, the word (all 64 bits) in `rdx`:
    /// blocks for a word (0 = no deadline); [`super::Errno::TimedOut`] past
    /// the deadline.
    pub const RECV: u64 = 12;
    /// `send_recv(pid, word, deadline_ns) -> sender`, the word in `rdx`:
    /// `send` then `recv` in one call (a request and its answer: the
    /// ping-pong of two processes costs two calls a round trip, not four).
    /// A failed send returns its error without waiting.
    pub const SEND_RECV: u64 = 13;
    /// `abi_hello(version)`: must be the first call of every program.
    pub const ABI_HELLO: u64 = 15;
    /// Framed: [`super::ProcRequest`] -> [`super::ProcResponse`].
    pub const PROC: u64 = 16;
    /// Framed service call: the job runner (served by opsd).
    pub const JOB: u64 = 17;
    /// Metrics, served by the kernel: `metric_emit(ptr, len, 0)` and
    /// opsd's `metric_drain(ptr, cap, METRIC_DRAIN)` ([`crate::metric`]).
    pub const METRIC: u64 = 18;
    /// The event bus, served by the kernel: `event_publish(ptr, len, 0)`
    /// and `event_read(ptr, cap, EVENT_READ, after_id, deadline_ns)`
    /// ([`crate::event`]).
    pub const EVENT: u64 = 19;
    /// Framed: files, served by the kernel ([`crate::fs::FsRequest`] ->
    /// [`crate::fs::FsResponse`]).
    pub const FS: u64 = 20;
    /// Framed service call for tests of the mechanism (the `svc` program).
    pub const TEST_SERVICE: u64 = 31;
    /// `serve_register(service, request_max, response_max)`: the caller
    /// answers that service's calls from now on (one server per service).
    pub const SERVE_REGISTER: u64 = 32;
    /// `serve_next(service, buf, cap, deadline_ns) -> len`, the call id in
    /// `rdx`: blocks for the next request (until the deadline, 0 = none:
    /// then `TimedOut`); `cap` must hold the declared `request_max`.
    pub const SERVE_NEXT: u64 = 33;
    /// `serve_reply(call, buf, len)`: the answer (at most `response_max`).
    pub const SERVE_REPLY: u64 = 34;
    /// `link_write(ptr, len) -> n`: bytes queued for the host (0: the ring
    /// is full). Only the `JOB` server (opsd) may use the link.
    pub const LINK_WRITE: u64 = 35;
    /// `link_read(ptr, cap) -> n`: bytes from the host (0: none waiting).
    pub const LINK_READ: u64 = 36;
}

/// `console_read` flag: return [`Errno::WouldBlock`] instead of blocking.
pub const CONSOLE_READ_NONBLOCK: u64 = 1;
/// The most bytes one `console_write` or `console_read` moves.
pub const CONSOLE_IO_MAX: usize = 4096;
/// The most a framed request may be, whatever its type (kernel copy-in buffer).
pub const REQUEST_MAX: usize = 1024;

/// Why a syscall failed: `rax = -(errno as i64)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
#[repr(u16)]
pub enum Errno {
    /// A pointer or length names memory the program may not use.
    BadAddress = 1,
    /// An argument is out of range.
    InvalidArgument = 2,
    /// The request did not decode as a message of this call.
    BadFrame = 3,
    /// A request or length above the call's maximum.
    TooLarge = 4,
    /// No such syscall number.
    UnknownSyscall = 5,
    /// [`nr::ABI_HELLO`] missing or with another version.
    AbiMismatch = 6,
    NoSuchProcess = 7,
    NoSuchGroup = 8,
    /// No program of that name in the boot image.
    NoSuchProgram = 9,
    /// The kernel is out of memory for this request.
    NoMemory = 10,
    /// Nothing to return yet (non-blocking call).
    WouldBlock = 11,
    /// A limit was reached (processes, group size, mailbox).
    LimitReached = 12,
    /// The response buffer is smaller than the response.
    ResponseTooSmall = 13,
    /// The program's ELF file is not loadable.
    BadProgram = 14,
    /// A deadline passed.
    TimedOut = 15,
    /// The group was killed (its grace is over) and takes no new members.
    GroupStopping = 16,
    /// Nothing to wait for (no such child or group member).
    NothingToWait = 17,
    /// No process serves this call (or its server ended).
    NoSuchService = 18,
    /// The machine lacks the device (no link).
    NoDevice = 19,
    /// The caller may not do this (the link belongs to the `JOB` server).
    NotPermitted = 20,
    /// A metric point failed a check (`METRIC`): `rdx` says which point and
    /// why ([`crate::metric::parse_emit_fault`]).
    BadMetric = 21,
}

impl Errno {
    pub const ALL: [Errno; 21] = [
        Errno::BadAddress,
        Errno::InvalidArgument,
        Errno::BadFrame,
        Errno::TooLarge,
        Errno::UnknownSyscall,
        Errno::AbiMismatch,
        Errno::NoSuchProcess,
        Errno::NoSuchGroup,
        Errno::NoSuchProgram,
        Errno::NoMemory,
        Errno::WouldBlock,
        Errno::LimitReached,
        Errno::ResponseTooSmall,
        Errno::BadProgram,
        Errno::TimedOut,
        Errno::GroupStopping,
        Errno::NothingToWait,
        Errno::NoSuchService,
        Errno::NoDevice,
        Errno::NotPermitted,
        Errno::BadMetric,
    ];

    /// The `rax` value for this error.
    pub const fn to_ret(self) -> i64 {
        -(self as i64)
    }

    /// Decodes a raw `rax`: `Ok(value)` or the error (an unknown negative
    /// value maps to [`Errno::InvalidArgument`], never a panic).
    pub fn from_ret(ret: i64) -> Result<u64, Errno> {
        if ret >= 0 {
            return Ok(ret as u64);
        }
        let code = ret.unsigned_abs();
        Err(Self::ALL
            .iter()
            .copied()
            .find(|e| *e as u64 == code)
            .unwrap_or(Errno::InvalidArgument))
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Errno::BadAddress => "bad address",
            Errno::InvalidArgument => "invalid argument",
            Errno::BadFrame => "malformed request",
            Errno::TooLarge => "too large",
            Errno::UnknownSyscall => "unknown syscall",
            Errno::AbiMismatch => "ABI version mismatch",
            Errno::NoSuchProcess => "no such process",
            Errno::NoSuchGroup => "no such process group",
            Errno::NoSuchProgram => "no such program",
            Errno::NoMemory => "out of memory",
            Errno::WouldBlock => "would block",
            Errno::LimitReached => "limit reached",
            Errno::ResponseTooSmall => "response buffer too small",
            Errno::BadProgram => "program is not a loadable ELF",
            Errno::TimedOut => "timed out",
            Errno::GroupStopping => "process group is being stopped",
            Errno::NothingToWait => "nothing to wait for",
            Errno::NoSuchService => "no such service",
            Errno::NoDevice => "no such device",
            Errno::NotPermitted => "not permitted",
            Errno::BadMetric => "bad metric point",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub type Pid = u32;
pub type Pgid = u32;

/// Program names, as in the boot image's archive.
pub const NAME_MAX: usize = 32;
pub type Name = String<NAME_MAX>;
/// Arguments to a spawned program: at most [`ARGS_MAX`] of [`ARG_MAX`] bytes.
pub const ARGS_MAX: usize = 8;
pub const ARG_MAX: usize = 64;
pub type Arg = String<ARG_MAX>;
/// The most members a process group holds at once.
pub const GROUP_MAX: usize = 128;
/// Processes per `Ps` page.
pub const PS_PAGE: usize = 16;
/// Watchdog events per `WatchdogEvents` page.
pub const EVENTS_PAGE: usize = 16;

/// Priorities: 0 is the highest, 31 the lowest.
pub const PRIORITY_LEVELS: u8 = 32;
/// A spawn's priority when the caller does not choose.
pub const DEFAULT_PRIORITY: u8 = 16;

/// Which group a spawned process joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum GroupChoice {
    /// The caller's group.
    Inherit,
    /// A new group led by the new process (pgid = its pid).
    New,
    /// An existing group.
    Join(Pgid),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum Target {
    Process(Pid),
    Group(Pgid),
}

/// What to wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum WaitTarget {
    /// One process (any process, not only a child).
    Process(Pid),
    /// Every member of a group: answered once the group is empty.
    Group(Pgid),
    /// Whichever child of the caller ends first.
    AnyChild,
}

/// A CPU exception raised in ring 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum FaultKind {
    DivideError,
    Debug,
    Breakpoint,
    Overflow,
    BoundRange,
    InvalidOpcode,
    DeviceNotAvailable,
    GeneralProtection,
    StackSegment,
    SegmentNotPresent,
    PageFault,
    AlignmentCheck,
    FloatingPoint,
    SimdFloatingPoint,
    Other(u8),
}

impl FaultKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            FaultKind::DivideError => "divide error",
            FaultKind::Debug => "debug",
            FaultKind::Breakpoint => "breakpoint",
            FaultKind::Overflow => "overflow",
            FaultKind::BoundRange => "bound range",
            FaultKind::InvalidOpcode => "invalid opcode",
            FaultKind::DeviceNotAvailable => "device not available",
            FaultKind::GeneralProtection => "general protection",
            FaultKind::StackSegment => "stack segment",
            FaultKind::SegmentNotPresent => "segment not present",
            FaultKind::PageFault => "page fault",
            FaultKind::AlignmentCheck => "alignment check",
            FaultKind::FloatingPoint => "x87 floating point",
            FaultKind::SimdFloatingPoint => "SIMD floating point",
            FaultKind::Other(_) => "exception",
        }
    }
}

/// The exception that ended a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct Fault {
    pub kind: FaultKind,
    /// Where it happened.
    pub rip: u64,
    /// The faulting address (page faults; 0 otherwise).
    pub addr: u64,
    pub error_code: u64,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum ExitStatus {
    /// It called `exit(code)` (possibly after a stop request).
    Exited(i32),
    /// Terminated by the kernel: the grace of a kill ran out.
    Killed,
    /// Terminated by a watchdog with the `kill` action.
    Watchdog,
    /// Terminated by a CPU exception.
    Faulted(Fault),
}

/// One ended process, as `wait` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct ExitRecord {
    pub pid: Pid,
    pub pgid: Pgid,
    pub status: ExitStatus,
    /// A stop was requested before it ended.
    pub stop_requested: bool,
    /// The kernel terminated it (grace over, watchdog kill).
    pub forced: bool,
    pub cpu_ns: u64,
    /// Spawn to end, monotonic.
    pub runtime_ns: u64,
}

/// A process's state, as `ps` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum ProcState {
    Running,
    Ready,
    Sleeping,
    /// Waiting for a child, a group, console input or a message.
    Blocked,
    /// Ended, not yet waited for.
    Zombie,
}

impl ProcState {
    pub const fn as_str(self) -> &'static str {
        match self {
            ProcState::Running => "running",
            ProcState::Ready => "ready",
            ProcState::Sleeping => "sleeping",
            ProcState::Blocked => "blocked",
            ProcState::Zombie => "zombie",
        }
    }
}

/// One row of `ps`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct ProcInfo {
    pub pid: Pid,
    pub ppid: Pid,
    pub pgid: Pgid,
    pub priority: u8,
    pub state: ProcState,
    pub cpu_ns: u64,
    /// A stop request is pending.
    pub stopping: bool,
    pub name: Name,
}

/// What a watchdog watches for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum WatchdogKind {
    /// A heartbeat at least every `period_ms` (from any member of a group).
    Heartbeat { period_ms: u32 },
    /// The target must have ended `within_ms` after arming.
    Deadline { within_ms: u32 },
}

/// What the kernel does when a watchdog lapses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum WatchdogAction {
    /// Record the event only (a heartbeat watchdog re-arms itself).
    Warn,
    /// Stop the group (or process) with this grace.
    Stop { grace_ms: u32 },
    /// Terminate at once.
    Kill,
}

/// A lapsed watchdog, as recorded by the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct WatchdogEvent {
    /// Sequence number, from 1, for paging with `WatchdogEvents`.
    pub seq: u64,
    pub target: Target,
    pub kind: WatchdogKind,
    pub action: WatchdogAction,
    /// When the deadline was (monotonic ns).
    pub deadline_ns: u64,
    /// When the kernel noticed: `fired_ns - deadline_ns` is how late.
    pub fired_ns: u64,
    /// The last heartbeat (heartbeat watchdogs; 0 if none).
    pub last_heartbeat_ns: u64,
}

/// System figures for the console's `uptime` and `mem`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct SystemInfo {
    pub uptime_ns: u64,
    pub boot_unix_s: u64,
    pub frame_size: u64,
    pub frames_total: u64,
    pub frames_used: u64,
    pub heap_size: u64,
    pub heap_used: u64,
    pub heap_limit: u64,
    pub processes: u32,
    /// The idle loop is still writing to free memory once after boot
    /// (while it is, a wakeup can be late by a host page fault: docs/boot.md).
    pub memory_warming: bool,
}

/// Requests of [`nr::PROC`].
// Messages are sized by their largest variant on purpose (MaxSize sizes the
// buffers); the kernel keeps big ones on the heap, not on a task's stack.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum ProcRequest {
    /// Start a program from the boot image.
    Spawn {
        program: Name,
        args: Vec<Arg, ARGS_MAX>,
        /// 0 (highest) ..= 31.
        priority: u8,
        group: GroupChoice,
        /// Keep what the new process (and every process it starts) writes
        /// to the console for the caller, to read with `ReadOutput { pid }`,
        /// instead of printing it. Otherwise it inherits the caller's.
        capture: bool,
    },
    /// Captured output of the processes started by `Spawn { capture: true
    /// }` as `pid` (only their spawner may read it), oldest first.
    ReadOutput {
        pid: Pid,
    },
    /// Wait for an end; `block = false` answers `NotYet` at once.
    Wait {
        target: WaitTarget,
        block: bool,
    },
    /// Ask the target to stop; after `grace_ms` terminate whatever is left
    /// (every member of a group, including ones spawned during the grace).
    /// `grace_ms = 0` terminates at once.
    Kill {
        target: Target,
        grace_ms: u32,
    },
    /// One page of the process table: pids above `after`.
    Ps {
        after: Pid,
    },
    /// Arm (or replace) the watchdog of a process or group.
    ArmWatchdog {
        target: Target,
        kind: WatchdogKind,
        action: WatchdogAction,
    },
    /// Remove a watchdog.
    DisarmWatchdog {
        target: Target,
    },
    /// Watchdog events with `seq > after`, oldest first.
    WatchdogEvents {
        after: u64,
    },
    SystemInfo,
    /// Power the machine off.
    Shutdown,
}

/// Answers of [`nr::PROC`].
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum ProcResponse {
    Spawned {
        pid: Pid,
        pgid: Pgid,
    },
    /// One process ended (process or any-child waits).
    Exited(ExitRecord),
    /// Every member of the group ended; `forced` if any was terminated.
    GroupExited {
        pgid: Pgid,
        forced: bool,
        members: Vec<ExitRecord, GROUP_MAX>,
    },
    /// Non-blocking wait: nothing has ended yet.
    NotYet,
    /// A kill began: how many processes got the stop request.
    KillStarted {
        members: u32,
    },
    Procs {
        entries: Vec<ProcInfo, PS_PAGE>,
        /// More pids follow the last entry.
        more: bool,
    },
    WatchdogArmed,
    WatchdogDisarmed,
    WatchdogEvents {
        events: Vec<WatchdogEvent, EVENTS_PAGE>,
        more: bool,
    },
    SystemInfo(SystemInfo),
    /// Captured output (at most [`OUTPUT_PAGE`] bytes; empty: nothing new).
    /// `ended`: no process writes to this capture any more and everything
    /// has been read; the capture is gone after this answer.
    Output {
        bytes: Vec<u8, OUTPUT_PAGE>,
        ended: bool,
    },
}

/// The most bytes one `ReadOutput` answers with.
pub const OUTPUT_PAGE: usize = 2048;
/// Captured bytes kept per capture, unread, at most (writers wait beyond).
pub const CAPTURE_MAX: usize = 64 * 1024;

/// Buffer sizes for the framed calls, from the types.
pub const PROC_REQUEST_MAX: usize = ProcRequest::POSTCARD_MAX_SIZE;
pub const PROC_RESPONSE_MAX: usize = ProcResponse::POSTCARD_MAX_SIZE;
const _: () = assert!(PROC_REQUEST_MAX <= REQUEST_MAX);

/// Encodes `msg` into `buf`; the bytes used.
pub fn encode<'b, T: Serialize>(msg: &T, buf: &'b mut [u8]) -> Result<&'b mut [u8], Errno> {
    postcard::to_slice(msg, buf).map_err(|_| Errno::TooLarge)
}

/// Decodes a whole message: trailing bytes are an error too.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Errno> {
    match postcard::take_from_bytes(bytes) {
        Ok((msg, [])) => Ok(msg),
        _ => Err(Errno::BadFrame),
    }
}

/// Program arguments as the kernel lays them out for `_start`: each
/// argument's bytes followed by a NUL, packed; `rdi` = pointer, `rsi` =
/// length, `rdx` = count. The first argument is the program name.
pub const ARGS_BLOCK_MAX: usize = (ARGS_MAX + 1) * (ARG_MAX + 1);

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    #[test]
    fn errno_round_trips_through_rax() {
        for e in Errno::ALL {
            assert_eq!(Errno::from_ret(e.to_ret()), Err(e));
        }
        assert_eq!(Errno::from_ret(5), Ok(5));
        assert_eq!(Errno::from_ret(-9999), Err(Errno::InvalidArgument));
        assert_eq!(Errno::from_ret(i64::MIN), Err(Errno::InvalidArgument));
    }

    #[test]
    fn largest_messages_fit_their_max_size() {
        let mut args = Vec::new();
        for _ in 0..ARGS_MAX {
            args.push(Arg::try_from("x".repeat(ARG_MAX).as_str()).unwrap()).unwrap();
        }
        let spawn = ProcRequest::Spawn {
            program: Name::try_from("p".repeat(NAME_MAX).as_str()).unwrap(),
            args,
            priority: u8::MAX,
            group: GroupChoice::Join(u32::MAX),
            capture: true,
        };
        let mut buf = [0u8; PROC_REQUEST_MAX];
        let n = encode(&spawn, &mut buf).unwrap().len();
        assert!(n <= PROC_REQUEST_MAX);
        assert_eq!(decode::<ProcRequest>(&buf[..n]), Ok(spawn));

        let record = ExitRecord {
            pid: u32::MAX,
            pgid: u32::MAX,
            status: ExitStatus::Faulted(Fault {
                kind: FaultKind::Other(255),
                rip: u64::MAX,
                addr: u64::MAX,
                error_code: u64::MAX,
            }),
            stop_requested: true,
            forced: true,
            cpu_ns: u64::MAX,
            runtime_ns: u64::MAX,
        };
        let mut members = Vec::new();
        for _ in 0..GROUP_MAX {
            members.push(record).unwrap();
        }
        let group = ProcResponse::GroupExited {
            pgid: u32::MAX,
            forced: true,
            members,
        };
        let mut out = std::vec![0u8; PROC_RESPONSE_MAX];
        let n = encode(&group, &mut out).unwrap().len();
        assert_eq!(decode::<ProcResponse>(&out[..n]), Ok(group));
    }

    #[test]
    fn garbage_and_truncated_frames_are_errors() {
        let req = ProcRequest::Kill {
            target: Target::Group(7),
            grace_ms: 500,
        };
        let mut buf = [0u8; 64];
        let n = encode(&req, &mut buf).unwrap().len();
        for cut in 0..n {
            assert_eq!(decode::<ProcRequest>(&buf[..cut]), Err(Errno::BadFrame));
        }
        // Trailing bytes.
        assert_eq!(decode::<ProcRequest>(&buf[..n + 1]), Err(Errno::BadFrame));
        // An unknown variant.
        assert_eq!(decode::<ProcRequest>(&[200, 1, 2]), Err(Errno::BadFrame));
        // A string longer than its bound.
        let mut long = std::vec![0u8, 33];
        long.extend(std::iter::repeat_n(b'a', 33));
        long.extend([0, 0, 0]);
        assert_eq!(decode::<ProcRequest>(&long), Err(Errno::BadFrame));
    }

    #[test]
    fn a_too_small_buffer_is_an_error() {
        let mut buf = [0u8; 2];
        assert_eq!(
            encode(&ProcResponse::KillStarted { members: 1_000_000 }, &mut buf).err(),
            Some(Errno::TooLarge)
        );
    }
}
