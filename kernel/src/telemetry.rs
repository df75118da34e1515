//! Telemetry in the kernel (docs/abi.md, "Metrics and events"): the
//! metric points processes emit, waiting for opsd's drain
//! (`kcore::metric_ring`), and the event bus (`kcore::event_ring`), with
//! the events the kernel publishes itself (watchdog firings, faults).
//!
//! Locks: the metric ring has its own lock, taken only from syscalls and
//! never with the kernel lock held (nor the kernel lock under it): an
//! emit decodes up to 64 KiB without keeping interrupts off. The event
//! ring lives in the kernel state ([`Kernel::events`]), under the kernel
//! lock, because it is published from the fault and timer paths (which
//! hold that lock) and a reader blocks on it: checking for an event and
//! blocking under one lock, as a publisher wakes readers under it, loses
//! no wake-up.

use aether_abi::event::{EventBody, EventKind, Severity};
use aether_abi::syscall::{Fault, Pgid, Pid, Target, WatchdogAction, WatchdogKind};
use alloc::format;
use kcore::metric_ring::MetricRing;
use spin::Mutex;

use crate::task::{Block, Kernel};

/// Bytes of points the kernel keeps for opsd (about 100 000 small points).
pub const METRIC_RING_BYTES: usize = 4 << 20;
/// The most bytes one drain or one event read moves.
pub const MOVE_MAX: usize = 256 * 1024;

/// Emitted points waiting for the drain (see the module's lock note).
pub static METRICS: Mutex<MetricRing> = Mutex::new(MetricRing::new(METRIC_RING_BYTES));

impl Kernel {
    /// Publishes one of the kernel's own events and wakes the readers
    /// waiting for one; its id (0 when memory is short: the event is lost
    /// and logged, the kernel goes on).
    pub fn publish_kernel_event(&mut self, body: &EventBody) -> u64 {
        match self.events.publish_body(body, crate::time::now_ns()) {
            Ok(id) => {
                self.wake_all(Block::Event);
                id
            }
            Err(e) => {
                log::warn!("event bus: a {} event lost ({e:?})", body.kind);
                0
            }
        }
    }

    /// Publishes a body a process sent (checked by the ring) and wakes the
    /// readers; its id.
    pub fn publish_event(&mut self, body: &[u8]) -> Result<u64, kcore::event_ring::EventError> {
        let id = self.events.publish(body, crate::time::now_ns())?;
        self.wake_all(Block::Event);
        Ok(id)
    }

    fn program_name(&self, pid: Pid) -> &str {
        self.tasks.get(&pid).map_or("", |t| t.name.as_str())
    }

    /// The event for a process that faulted in ring 3.
    pub fn fault_event(&self, pid: Pid, pgid: Pgid, fault: &Fault) -> EventBody {
        EventBody::new(EventKind::Fault, Severity::Warning, 0, "kernel")
            .label("pid", &format!("{pid}"))
            .label("group", &format!("{pgid}"))
            .label("program", self.program_name(pid))
            .field(
                "message",
                &format!(
                    "{} at rip {:#x} addr {:#x} error {:#x}; process ended",
                    fault.kind.as_str(),
                    fault.rip,
                    fault.addr,
                    fault.error_code
                ),
            )
    }

    /// The event for a watchdog that fired.
    pub fn watchdog_event(
        &self,
        target: Target,
        kind: WatchdogKind,
        action: WatchdogAction,
        late_ns: u64,
    ) -> EventBody {
        let (what, period) = match kind {
            WatchdogKind::Heartbeat { period_ms } => ("heartbeat", period_ms),
            WatchdogKind::Deadline { within_ms } => ("deadline", within_ms),
        };
        let body = EventBody::new(EventKind::Watchdog, Severity::Warning, 0, "kernel");
        let body = match target {
            Target::Process(pid) => {
                let pgid = self.tasks.get(&pid).map_or(0, |t| t.pgid());
                body.label("pid", &format!("{pid}"))
                    .label("group", &format!("{pgid}"))
                    .label("program", self.program_name(pid))
            }
            Target::Group(pgid) => body
                .label("group", &format!("{pgid}"))
                .label("program", self.program_name(pgid)),
        };
        body.field(
            "message",
            &format!(
                "missed its {what} of {period} ms by {}.{:03} ms; action {action:?}",
                late_ns / 1_000_000,
                late_ns / 1_000 % 1_000
            ),
        )
    }
}
