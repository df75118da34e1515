//! `[init]`: the kernel task that keeps the console running. It spawns the
//! ring-3 console and, whenever that ends (killed by another process, a
//! fault), logs how and starts a new one, like a getty.

use aether_abi::syscall::{GroupChoice, ProcResponse, WaitTarget};

use super::{sleep_until, spawn, wait};
use crate::time;

/// The console's priority: above every job's default, so it stays responsive.
pub const CONSOLE_PRIORITY: u8 = 2;
/// Pause before a restart, so a console that dies at once cannot spin.
const RESTART_PAUSE_NS: u64 = 200_000_000;

/// The body of the `[init]` kernel task.
pub fn run() {
    loop {
        let pid = match spawn("console", &[], CONSOLE_PRIORITY, GroupChoice::New) {
            Ok((pid, _)) => pid,
            Err(e) => {
                log::error!("cannot start the console: {e}; retrying");
                sleep_until(time::now_ns() + RESTART_PAUSE_NS);
                continue;
            }
        };
        match wait(WaitTarget::Process(pid)).map(|b| *b) {
            Ok(ProcResponse::Exited(r)) => log::warn!("console (pid {pid}) ended: {:?}; starting a new one", r.status),
            other => log::warn!("console (pid {pid}): wait answered {other:?}; starting a new one"),
        }
        sleep_until(time::now_ns() + RESTART_PAUSE_NS);
    }
}
