//! `[init]`: the kernel task that keeps the system's own processes running:
//! opsd (the ops daemon, the `JOB` server) and the ring-3 console. It
//! starts them as its children and, whenever one ends (killed by another
//! process, a fault), logs how and starts a new one, like a getty.

use aether_abi::syscall::{GroupChoice, Pid, ProcResponse, WaitTarget};

use super::{sleep_until, wait, with};
use crate::time;

/// The console's priority: above every job's default, so it stays responsive.
pub const CONSOLE_PRIORITY: u8 = 2;
/// opsd's: just below the console.
pub const OPSD_PRIORITY: u8 = 3;
/// Pause before a restart, so a program that dies at once cannot spin.
const RESTART_PAUSE_NS: u64 = 200_000_000;

/// What `[init]` keeps running, in start order.
const KEPT: [(&str, u8); 2] = [("opsd", OPSD_PRIORITY), ("console", CONSOLE_PRIORITY)];

/// Starts `program` as a child of the calling kernel task.
fn start(program: &str, priority: u8) -> Option<Pid> {
    match with(|k| {
        let me = k.current;
        k.spawn(me, program, &[], priority, GroupChoice::New)
    }) {
        Ok((pid, _)) => Some(pid),
        Err(e) => {
            log::error!("cannot start {program}: {e}");
            None
        }
    }
}

/// Waits (a little) until opsd serves `JOB`, so the console never offers a
/// prompt whose `job` commands would find no ops daemon.
fn await_job_service() {
    let deadline = time::now_ns() + 2_000_000_000;
    while with(|k| k.service_limits(aether_abi::syscall::nr::JOB).is_err()) && time::now_ns() < deadline {
        sleep_until(time::now_ns() + 1_000_000);
    }
}

/// The body of the `[init]` kernel task.
pub fn run() {
    let mut pids: [Option<Pid>; 2] = [None; 2];
    loop {
        for (i, (program, priority)) in KEPT.iter().enumerate() {
            if pids[i].is_none() {
                pids[i] = start(program, *priority);
                if *program == "opsd" && pids[i].is_some() {
                    await_job_service();
                }
            }
        }
        if pids.iter().all(Option::is_none) {
            sleep_until(time::now_ns() + RESTART_PAUSE_NS);
            continue;
        }
        match wait(WaitTarget::AnyChild).as_deref() {
            Ok(ProcResponse::Exited(r)) => {
                if let Some(i) = pids.iter().position(|p| *p == Some(r.pid)) {
                    log::warn!(
                        "{} (pid {}) ended: {:?}; starting a new one",
                        KEPT[i].0,
                        r.pid,
                        r.status
                    );
                    pids[i] = None;
                }
            }
            other => log::warn!("init: wait answered {other:?}"),
        }
        sleep_until(time::now_ns() + RESTART_PAUSE_NS);
    }
}
