//! Typed process calls over the framed [`nr::PROC`] syscall.

use aether_abi::syscall::{
    self as abi, Errno, ExitRecord, GroupChoice, Pgid, Pid, ProcRequest, ProcResponse, Target, WaitTarget, nr,
};
use alloc::vec;

/// Sends one request and decodes the answer.
pub fn request(req: &ProcRequest) -> Result<ProcResponse, Errno> {
    let mut out = [0u8; abi::PROC_REQUEST_MAX];
    let bytes = abi::encode(req, &mut out)?;
    // The biggest answer (a whole group's exit records) is a few KiB: keep
    // it off the user stack.
    let mut answer = vec![0u8; abi::PROC_RESPONSE_MAX];
    let n = crate::sys::framed(nr::PROC, bytes, &mut answer)?;
    abi::decode(answer.get(..n).ok_or(Errno::BadFrame)?)
}

/// Spawns `program` with `args`.
pub fn spawn(program: &str, args: &[&str], priority: u8, group: GroupChoice) -> Result<(Pid, Pgid), Errno> {
    spawn_with(program, args, priority, group, false)
}

/// Spawns `program` with `args`, its console output (and that of the
/// processes it starts) kept for this process to read with
/// [`read_output`].
pub fn spawn_captured(program: &str, args: &[&str], priority: u8, group: GroupChoice) -> Result<(Pid, Pgid), Errno> {
    spawn_with(program, args, priority, group, true)
}

/// The next captured output of `pid` (spawned with [`spawn_captured`]):
/// the bytes (empty: nothing new) and whether it has ended (no writer
/// left and everything read).
pub fn read_output(pid: Pid) -> Result<(heapless::Vec<u8, { abi::OUTPUT_PAGE }>, bool), Errno> {
    match request(&ProcRequest::ReadOutput { pid })? {
        ProcResponse::Output { bytes, ended } => Ok((bytes, ended)),
        _ => Err(Errno::BadFrame),
    }
}

fn spawn_with(
    program: &str,
    args: &[&str],
    priority: u8,
    group: GroupChoice,
    capture: bool,
) -> Result<(Pid, Pgid), Errno> {
    let mut list = heapless::Vec::new();
    for a in args {
        list.push(abi::Arg::try_from(*a).map_err(|_| Errno::TooLarge)?)
            .map_err(|_| Errno::TooLarge)?;
    }
    let req = ProcRequest::Spawn {
        program: abi::Name::try_from(program).map_err(|_| Errno::NoSuchProgram)?,
        args: list,
        priority,
        group,
        capture,
    };
    match request(&req)? {
        ProcResponse::Spawned { pid, pgid } => Ok((pid, pgid)),
        _ => Err(Errno::BadFrame),
    }
}

/// Waits for one process to end.
pub fn wait(pid: Pid) -> Result<ExitRecord, Errno> {
    match request(&ProcRequest::Wait {
        target: WaitTarget::Process(pid),
        block: true,
    })? {
        ProcResponse::Exited(r) => Ok(r),
        _ => Err(Errno::BadFrame),
    }
}

/// Stops a process or group: a stop request, then termination after `grace_ms`.
pub fn kill(target: Target, grace_ms: u32) -> Result<u32, Errno> {
    match request(&ProcRequest::Kill { target, grace_ms })? {
        ProcResponse::KillStarted { members } => Ok(members),
        _ => Err(Errno::BadFrame),
    }
}
