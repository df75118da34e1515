//! Watchdogs: a deadline armed on a process or group (a heartbeat at least
//! every T ms, or "ended within T ms"). When one lapses the kernel records
//! an event (who, which deadline, how late) and applies the action chosen
//! at arm time: warn, stop with grace, or kill.

use aether_abi::syscall::{
    EVENTS_PAGE, Errno, ExitStatus, Pid, ProcResponse, Target, WatchdogAction, WatchdogEvent, WatchdogKind,
};
use alloc::vec::Vec;
use heapless::Deque;

use super::Kernel;

/// Watchdogs armed at once, at most.
pub const MAX_WATCHDOGS: usize = 64;
/// Events kept for `WatchdogEvents` (the oldest are dropped, and counted).
pub const EVENT_LOG: usize = 64;

#[derive(Clone, Copy, Debug)]
struct Watchdog {
    target: Target,
    kind: WatchdogKind,
    action: WatchdogAction,
    deadline_ns: u64,
    last_heartbeat_ns: u64,
}

pub struct Watchdogs {
    armed: Vec<Watchdog>,
    events: Deque<WatchdogEvent, EVENT_LOG>,
    next_seq: u64,
    /// Events pushed out of the log before anyone read them.
    pub dropped: u64,
}

fn ms(ms: u32) -> u64 {
    ms as u64 * 1_000_000
}

impl Watchdogs {
    pub const fn new() -> Self {
        Watchdogs {
            armed: Vec::new(),
            events: Deque::new(),
            next_seq: 1,
            dropped: 0,
        }
    }

    pub fn next_deadline(&self) -> Option<u64> {
        self.armed.iter().map(|w| w.deadline_ns).min()
    }

    /// Drops the watchdog of a target that is gone.
    pub fn forget(&mut self, target: Target) {
        self.armed.retain(|w| w.target != target);
    }

    /// A heartbeat from `pid` (member of `pgid`) at `now`.
    pub fn heartbeat(&mut self, pid: Pid, pgid: u32, now: u64) {
        for w in &mut self.armed {
            if w.target == Target::Process(pid) || w.target == Target::Group(pgid) {
                w.last_heartbeat_ns = now;
                if let WatchdogKind::Heartbeat { period_ms } = w.kind {
                    w.deadline_ns = now + ms(period_ms);
                }
            }
        }
    }

    fn record(&mut self, w: &Watchdog, now: u64) -> WatchdogEvent {
        let event = WatchdogEvent {
            seq: self.next_seq,
            target: w.target,
            kind: w.kind,
            action: w.action,
            deadline_ns: w.deadline_ns,
            fired_ns: now,
            last_heartbeat_ns: w.last_heartbeat_ns,
        };
        self.next_seq += 1;
        if self.events.is_full() {
            self.events.pop_front();
            self.dropped += 1;
        }
        let _ = self.events.push_back(event);
        event
    }

    /// Events after `seq`, one page.
    pub fn events_after(&self, seq: u64) -> ProcResponse {
        let mut events = heapless::Vec::new();
        let mut more = false;
        for e in self.events.iter().filter(|e| e.seq > seq) {
            if events.push(*e).is_err() {
                more = true;
                break;
            }
        }
        debug_assert!(events.len() <= EVENTS_PAGE);
        ProcResponse::WatchdogEvents { events, more }
    }
}

impl Kernel {
    fn target_alive(&self, target: Target) -> bool {
        self.tasks.values().any(|t| {
            t.is_alive()
                && t.process.is_some()
                && match target {
                    Target::Process(pid) => t.id == pid,
                    Target::Group(pgid) => t.pgid() == pgid,
                }
        })
    }

    /// Arms (or replaces) the watchdog of `target`.
    pub fn arm_watchdog(&mut self, target: Target, kind: WatchdogKind, action: WatchdogAction) -> Result<(), Errno> {
        if !self.target_alive(target) {
            return Err(match target {
                Target::Process(_) => Errno::NoSuchProcess,
                Target::Group(_) => Errno::NoSuchGroup,
            });
        }
        let period = match kind {
            WatchdogKind::Heartbeat { period_ms } | WatchdogKind::Deadline { within_ms: period_ms } => period_ms,
        };
        if period == 0 {
            return Err(Errno::InvalidArgument);
        }
        let wd = &mut self.watchdogs;
        wd.forget(target);
        if wd.armed.len() >= MAX_WATCHDOGS {
            return Err(Errno::LimitReached);
        }
        let now = crate::time::now_ns();
        wd.armed.push(Watchdog {
            target,
            kind,
            action,
            deadline_ns: now + ms(period),
            last_heartbeat_ns: now,
        });
        self.arm_timer();
        Ok(())
    }

    pub fn disarm_watchdog(&mut self, target: Target) -> Result<(), Errno> {
        let before = self.watchdogs.armed.len();
        self.watchdogs.forget(target);
        if self.watchdogs.armed.len() == before {
            return Err(Errno::InvalidArgument);
        }
        Ok(())
    }

    /// Fires every lapsed watchdog.
    pub fn check_watchdogs(&mut self, now: u64) {
        let lapsed: Vec<Watchdog> = self
            .watchdogs
            .armed
            .iter()
            .filter(|w| w.deadline_ns <= now)
            .copied()
            .collect();
        for w in lapsed {
            if !self.target_alive(w.target) {
                // It ended (a group's zombies may not be collected yet).
                self.watchdogs.forget(w.target);
                continue;
            }
            let event = self.watchdogs.record(&w, now);
            let late = now.saturating_sub(w.deadline_ns);
            let (what, period) = match w.kind {
                WatchdogKind::Heartbeat { period_ms } => ("heartbeat", period_ms),
                WatchdogKind::Deadline { within_ms } => ("deadline", within_ms),
            };
            let (kind, id) = match w.target {
                Target::Process(p) => ("pid", p),
                Target::Group(g) => ("pgid", g),
            };
            log::warn!(
                "watchdog #{}: {kind} {id} missed its {what} of {period} ms: late {}.{:03} ms, last heartbeat {}.{:03} ms before, action {:?}",
                event.seq,
                late / 1_000_000,
                late / 1_000 % 1_000,
                now.saturating_sub(w.last_heartbeat_ns) / 1_000_000,
                now.saturating_sub(w.last_heartbeat_ns) / 1_000 % 1_000,
                w.action,
            );
            let body = self.watchdog_event(w.target, w.kind, w.action, late);
            self.publish_kernel_event(&body);
            match (w.action, w.kind) {
                (WatchdogAction::Warn, WatchdogKind::Heartbeat { period_ms }) => {
                    // Warn again one period later if it stays silent.
                    for a in &mut self.watchdogs.armed {
                        if a.target == w.target {
                            a.deadline_ns = now + ms(period_ms);
                        }
                    }
                }
                (WatchdogAction::Warn, WatchdogKind::Deadline { .. }) => self.watchdogs.forget(w.target),
                (WatchdogAction::Stop { grace_ms }, _) => {
                    self.watchdogs.forget(w.target);
                    let _ = self.kill(w.target, grace_ms);
                }
                (WatchdogAction::Kill, _) => {
                    self.watchdogs.forget(w.target);
                    match w.target {
                        Target::Process(pid) => self.terminate(pid, ExitStatus::Watchdog, true),
                        Target::Group(pgid) => self.force_group(pgid, ExitStatus::Watchdog),
                    }
                }
            }
        }
    }

    /// Recorded events after `seq`.
    pub fn watchdog_events(&self, seq: u64) -> ProcResponse {
        self.watchdogs.events_after(seq)
    }
}
