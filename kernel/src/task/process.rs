//! The process model on top of tasks: spawn from the boot image, exit,
//! wait (process, group, any child), process groups and kill with grace,
//! and the end of a process that faulted in ring 3.

use alloc::boxed::Box;
use alloc::vec::Vec;

use aether_abi::syscall::{
    CAPTURE_MAX, Errno, ExitRecord, ExitStatus, Fault, FaultKind, GROUP_MAX, GroupChoice, OUTPUT_PAGE, PS_PAGE, Pgid,
    Pid, ProcInfo, ProcResponse, Target, WaitTarget,
};
use heapless::Deque;
use kcore::capture::Capture;
use kcore::sched::Priority;

use super::{Block, Kernel, MAX_TASKS, Start, State, loader, new_task, schedule, with};
use crate::arch::idt::UserFault;
use crate::mm::user::PAGE;
use crate::time;

/// Words a mailbox holds before `send` reports `LimitReached`.
pub const MAILBOX: usize = 16;
/// Captures (`Spawn { capture: true }`) alive at once, at most.
pub const CAPTURES_MAX: usize = 64;

/// The console output of a captured process tree, kept for its spawner.
pub struct CaptureEntry {
    /// Who may read it (and whose end removes it).
    pub owner: Pid,
    pub bytes: Capture,
}

/// Processes ended since boot (the file layer sweeps their descriptors,
/// mappings and async queues when it moves: `fs::sweeper`).
pub static PROCESS_EXITS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// What a task has when it is a user process.
pub struct Process {
    pub ppid: Pid,
    pub pgid: Pgid,
    /// `abi_hello` with the right version was called.
    pub abi_ok: bool,
    pub stop_requested: bool,
    /// When a kill of this process alone turns forced.
    pub kill_deadline: Option<u64>,
    pub spawned_ns: u64,
    pub heap_start: u64,
    pub heap_end: u64,
    pub mailbox: Deque<(Pid, u64), MAILBOX>,
    pub last_heartbeat_ns: u64,
    /// Where its console output goes instead of the serial line: the
    /// capture of this id (the pid it was made for), if any.
    pub capture: Option<Pid>,
    /// Set once it ended.
    pub exit: Option<ExitRecord>,
}

/// A group being killed: every member still alive at `deadline_ns` is
/// terminated, including members that joined during the grace.
#[derive(Clone, Copy, Debug)]
pub struct GroupKill {
    pub deadline_ns: u64,
    /// The deadline passed and the members were terminated.
    pub forced: bool,
}

/// Which faults end a process, by vector (Intel SDM Vol. 3A Table 6-1).
fn fault_kind(vector: u8) -> FaultKind {
    match vector {
        0 => FaultKind::DivideError,
        1 => FaultKind::Debug,
        3 => FaultKind::Breakpoint,
        4 => FaultKind::Overflow,
        5 => FaultKind::BoundRange,
        6 => FaultKind::InvalidOpcode,
        7 => FaultKind::DeviceNotAvailable,
        11 => FaultKind::SegmentNotPresent,
        12 => FaultKind::StackSegment,
        13 => FaultKind::GeneralProtection,
        14 => FaultKind::PageFault,
        16 => FaultKind::FloatingPoint,
        17 => FaultKind::AlignmentCheck,
        19 => FaultKind::SimdFloatingPoint,
        v => FaultKind::Other(v),
    }
}

/// An exception in ring 3: the process ends with the fault recorded; the
/// kernel and every other process go on.
pub fn on_user_fault(f: UserFault) -> ! {
    let fault = Fault {
        kind: fault_kind(f.vector),
        rip: f.rip,
        addr: f.addr,
        error_code: f.error_code,
    };
    with(|k| {
        let cur = k.current;
        log::warn!(
            "pid {cur} ({}): {} at rip {:#x} addr {:#x} error {:#x}; process ended",
            k.current_task().name,
            fault.kind.as_str(),
            fault.rip,
            fault.addr,
            fault.error_code
        );
        let pgid = k.current_task().pgid();
        let event = k.fault_event(cur, pgid, &fault);
        k.publish_kernel_event(&event);
        k.terminate(cur, ExitStatus::Faulted(fault), false);
    });
    schedule();
    panic!("a faulted process was scheduled again")
}

impl Kernel {
    pub fn process(&self, pid: Pid) -> Option<&Process> {
        self.tasks.get(&pid)?.process.as_ref()
    }

    /// Whether `pid` is a user process that has not ended.
    pub fn process_alive(&self, pid: Pid) -> bool {
        self.tasks
            .get(&pid)
            .is_some_and(|t| t.is_alive() && t.process.is_some())
    }

    pub fn process_mut(&mut self, pid: Pid) -> Option<&mut Process> {
        self.tasks.get_mut(&pid)?.process.as_mut()
    }

    fn live_members(&self, pgid: Pgid) -> impl Iterator<Item = Pid> + '_ {
        self.tasks
            .values()
            .filter(move |t| t.is_alive() && t.process.as_ref().is_some_and(|p| p.pgid == pgid))
            .map(|t| t.id)
    }

    fn has_members(&self, pgid: Pgid) -> bool {
        self.tasks
            .values()
            .any(|t| t.process.as_ref().is_some_and(|p| p.pgid == pgid))
    }

    /// Frees an orphaned zombie (nobody can wait for it as a child) when
    /// the table is full.
    fn reclaim_orphan(&mut self) -> bool {
        let victim = self
            .tasks
            .values()
            .find(|t| t.state == State::Zombie && t.process.as_ref().is_some_and(|p| p.ppid == 0))
            .map(|t| t.id);
        match victim {
            Some(pid) => {
                self.reap(pid);
                true
            }
            None => false,
        }
    }

    /// Starts `program` as a child of `parent` (0 for the kernel).
    pub fn spawn(
        &mut self,
        parent: Pid,
        program: &str,
        args: &[&str],
        priority: u8,
        group: GroupChoice,
    ) -> Result<(Pid, Pgid), Errno> {
        self.spawn_with(parent, program, args, priority, group, false)
    }

    /// [`Kernel::spawn`], with the new process's console output captured
    /// for `parent` (`capture`) or, otherwise, going where the parent's
    /// goes.
    pub fn spawn_with(
        &mut self,
        parent: Pid,
        program: &str,
        args: &[&str],
        priority: u8,
        group: GroupChoice,
        capture: bool,
    ) -> Result<(Pid, Pgid), Errno> {
        if capture && self.captures.len() >= CAPTURES_MAX {
            return Err(Errno::LimitReached);
        }
        let priority = Priority::new(priority).ok_or(Errno::InvalidArgument)?;
        if self.tasks.len() >= MAX_TASKS && !self.reclaim_orphan() {
            return Err(Errno::LimitReached);
        }
        let parent_pgid = self.process(parent).map(|p| p.pgid);
        let join = match group {
            GroupChoice::New => None,
            GroupChoice::Inherit => parent_pgid,
            GroupChoice::Join(g) => {
                if self.live_members(g).next().is_none() {
                    // A group whose kill went through takes no one back.
                    if self.groups.get(&g).is_some_and(|k| k.forced) {
                        return Err(Errno::GroupStopping);
                    }
                    return Err(Errno::NoSuchGroup);
                }
                Some(g)
            }
        };
        let stopping = match join {
            Some(g) => {
                if self.live_members(g).count() >= GROUP_MAX {
                    return Err(Errno::LimitReached);
                }
                // Joining a group under a kill: allowed during the grace (the
                // member gets the stop request and the same deadline).
                self.groups.contains_key(&g)
            }
            None => false,
        };
        let loaded = loader::load(program, args)?;
        let pid = self.alloc_pid().ok_or(Errno::LimitReached)?;
        let start = Start::User {
            rip: loaded.entry,
            rsp: loaded.stack_pointer,
            args: loaded.args,
        };
        let mut task = new_task(pid, program, priority, start).map_err(|_| Errno::NoMemory)?;
        let now = time::now_ns();
        let pgid = join.unwrap_or(pid);
        let capture = if capture {
            self.captures.insert(
                pid,
                CaptureEntry {
                    owner: parent,
                    bytes: Capture::new(CAPTURE_MAX),
                },
            );
            Some(pid)
        } else {
            self.process(parent).and_then(|p| p.capture)
        };
        task.space = Some(loaded.space);
        task.process = Some(Process {
            ppid: parent,
            pgid,
            abi_ok: false,
            stop_requested: stopping,
            kill_deadline: None,
            spawned_ns: now,
            heap_start: loaded.heap_start,
            heap_end: loaded.heap_start,
            mailbox: Deque::new(),
            last_heartbeat_ns: now,
            capture,
            exit: None,
        });
        self.insert(task);
        log::debug!("spawned pid {pid} '{program}' pgid {pgid} prio {}", priority.level());
        Ok((pid, pgid))
    }

    /// Ends a process: records how, frees what it can, wakes waiters.
    pub fn terminate(&mut self, pid: Pid, status: ExitStatus, forced: bool) {
        let now = time::now_ns();
        let cur = self.current;
        if pid == cur && self.tasks.get(&pid).is_some_and(|t| t.is_alive()) {
            // Its CPU time up to now, before the record is taken.
            self.charge(now);
        }
        let Some(t) = self.tasks.get_mut(&pid) else { return };
        if !t.is_alive() {
            return;
        }
        let Some(p) = t.process.as_mut() else { return };
        p.exit = Some(ExitRecord {
            pid,
            pgid: p.pgid,
            status,
            stop_requested: p.stop_requested,
            forced,
            cpu_ns: t.cpu_ns,
            runtime_ns: now.saturating_sub(p.spawned_ns),
        });
        t.state = State::Zombie;
        PROCESS_EXITS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        self.sched.remove(pid);
        if pid == cur {
            // It runs on that stack and address space until switched away.
            self.release_later(pid);
        } else {
            t.kstack = None;
            t.space = None;
        }
        // Orphans: their exit records stay until a group wait (or a full
        // table) collects them.
        for child in self.tasks.values_mut() {
            if let Some(cp) = child.process.as_mut()
                && cp.ppid == pid
            {
                cp.ppid = 0;
            }
        }
        self.watchdogs.forget(Target::Process(pid));
        self.services_forget(pid);
        // Captures kept for it: no one is left to read them.
        self.captures.retain(|_, c| c.owner != pid);
        self.wake_all(Block::Wait);
    }

    /// Takes what fits of `bytes` into the running process's capture:
    /// `None` if its output is not captured (it goes to the console). A
    /// capture whose reader is gone takes everything and keeps nothing.
    pub fn capture_write(&mut self, bytes: &[u8]) -> Option<usize> {
        let id = self.process(self.current)?.capture?;
        Some(match self.captures.get_mut(&id) {
            Some(c) => c.bytes.write(bytes),
            None => bytes.len(),
        })
    }

    /// `ReadOutput { pid }` by `caller`: the next captured bytes; `ended`
    /// once no live process writes to the capture and it is read out
    /// (then it is removed).
    ///
    /// The answer is built in its box: a `ProcResponse` is several KiB, and
    /// copies of it on a 64 KiB kernel stack add up.
    pub fn read_output(&mut self, caller: Pid, pid: Pid) -> Result<Box<ProcResponse>, Errno> {
        let writers = self
            .tasks
            .values()
            .any(|t| t.is_alive() && t.process.as_ref().is_some_and(|p| p.capture == Some(pid)));
        let entry = self.captures.get_mut(&pid).ok_or(Errno::NoSuchProcess)?;
        if entry.owner != caller {
            return Err(Errno::NotPermitted);
        }
        let mut answer = Box::new(ProcResponse::Output {
            bytes: heapless::Vec::new(),
            ended: false,
        });
        let mut finished = false;
        if let ProcResponse::Output { bytes, ended } = &mut *answer {
            // The capacity is OUTPUT_PAGE: the resize cannot fail.
            let _ = bytes.resize_default(OUTPUT_PAGE);
            let n = entry.bytes.read(bytes, !writers);
            bytes.truncate(n);
            finished = !writers && entry.bytes.is_empty();
            *ended = finished;
        }
        if finished {
            self.captures.remove(&pid);
        }
        Ok(answer)
    }

    /// Removes a zombie from the table.
    fn reap(&mut self, pid: Pid) -> Option<ExitRecord> {
        let t = self.tasks.get(&pid)?;
        if t.is_alive() {
            return None;
        }
        let record = t.process.as_ref()?.exit;
        let pgid = t.pgid();
        self.tasks.remove(&pid);
        if !self.has_members(pgid) {
            self.groups.remove(&pgid);
            self.watchdogs.forget(Target::Group(pgid));
        }
        record
    }

    /// One non-blocking wait attempt: `Ok(Some(answer))`, `Ok(None)` (not
    /// yet) or an error (nothing to wait for).
    ///
    /// Answers come boxed (a `ProcResponse` is several KiB; a group's is
    /// filled in its box), so that no copy of one sits on a kernel stack.
    pub fn try_wait(&mut self, waiter: Pid, target: WaitTarget) -> Result<Option<Box<ProcResponse>>, Errno> {
        match target {
            WaitTarget::Process(pid) => {
                let t = self.tasks.get(&pid).ok_or(Errno::NoSuchProcess)?;
                if t.process.is_none() || pid == waiter {
                    return Err(Errno::NoSuchProcess);
                }
                if t.is_alive() {
                    return Ok(None);
                }
                Ok(self.reap(pid).map(|r| Box::new(ProcResponse::Exited(r))))
            }
            WaitTarget::AnyChild => {
                let mut has_child = false;
                let mut zombie = None;
                for t in self.tasks.values() {
                    if t.process.as_ref().is_some_and(|p| p.ppid == waiter) {
                        has_child = true;
                        if !t.is_alive() {
                            zombie = Some(t.id);
                            break;
                        }
                    }
                }
                match zombie {
                    Some(pid) => Ok(self.reap(pid).map(|r| Box::new(ProcResponse::Exited(r)))),
                    None if has_child => Ok(None),
                    None => Err(Errno::NothingToWait),
                }
            }
            WaitTarget::Group(pgid) => {
                if !self.has_members(pgid) {
                    return Err(Errno::NoSuchGroup);
                }
                if self.live_members(pgid).any(|pid| pid != waiter) {
                    return Ok(None);
                }
                let zombies: Vec<Pid> = self
                    .tasks
                    .values()
                    .filter(|t| !t.is_alive() && t.pgid() == pgid && t.process.is_some())
                    .map(|t| t.id)
                    .collect();
                let mut answer = Box::new(ProcResponse::GroupExited {
                    pgid,
                    forced: false,
                    members: heapless::Vec::new(),
                });
                let mut any = false;
                if let ProcResponse::GroupExited { forced, members, .. } = &mut *answer {
                    for pid in zombies {
                        if let Some(r) = self.reap(pid) {
                            *forced |= r.forced;
                            // The table holds at most GROUP_MAX live members,
                            // but zombies can pile up beyond that: the oldest
                            // fit.
                            let _ = members.push(r);
                        }
                    }
                    any = !members.is_empty();
                }
                if !any {
                    return Err(Errno::NothingToWait);
                }
                Ok(Some(answer))
            }
        }
    }

    /// Sends the stop request; termination follows after `grace_ms`.
    pub fn kill(&mut self, target: Target, grace_ms: u32) -> Result<u32, Errno> {
        let now = time::now_ns();
        let deadline = now + grace_ms as u64 * 1_000_000;
        match target {
            Target::Process(pid) => {
                let t = self.tasks.get_mut(&pid).ok_or(Errno::NoSuchProcess)?;
                if !t.is_alive() {
                    return Err(Errno::NoSuchProcess);
                }
                let p = t.process.as_mut().ok_or(Errno::NoSuchProcess)?;
                p.stop_requested = true;
                p.kill_deadline = Some(p.kill_deadline.map_or(deadline, |d| d.min(deadline)));
                if grace_ms == 0 {
                    self.terminate(pid, ExitStatus::Killed, true);
                } else {
                    self.arm_timer();
                }
                Ok(1)
            }
            Target::Group(pgid) => {
                let members: Vec<Pid> = self.live_members(pgid).collect();
                if members.is_empty() {
                    return Err(Errno::NoSuchGroup);
                }
                for &pid in &members {
                    if let Some(p) = self.process_mut(pid) {
                        p.stop_requested = true;
                    }
                }
                let entry = self.groups.entry(pgid).or_insert(GroupKill {
                    deadline_ns: deadline,
                    forced: false,
                });
                entry.deadline_ns = entry.deadline_ns.min(deadline);
                if grace_ms == 0 {
                    self.force_group(pgid, ExitStatus::Killed);
                } else {
                    self.arm_timer();
                }
                Ok(members.len() as u32)
            }
        }
    }

    /// Terminates every live member of a group.
    pub fn force_group(&mut self, pgid: Pgid, status: ExitStatus) {
        if let Some(g) = self.groups.get_mut(&pgid) {
            g.forced = true;
        }
        let members: Vec<Pid> = self.live_members(pgid).collect();
        for pid in members {
            self.terminate(pid, status, true);
        }
    }

    /// The earliest pending kill deadline.
    pub fn kill_deadline(&self) -> Option<u64> {
        let groups = self.groups.values().filter(|g| !g.forced).map(|g| g.deadline_ns);
        let procs = self
            .tasks
            .values()
            .filter(|t| t.is_alive())
            .filter_map(|t| t.process.as_ref()?.kill_deadline);
        groups.chain(procs).min()
    }

    /// Terminates what outlived its grace.
    pub fn enforce_kill_deadlines(&mut self, now: u64) {
        let groups: Vec<Pgid> = self
            .groups
            .iter()
            .filter(|(_, g)| !g.forced && g.deadline_ns <= now)
            .map(|(&id, _)| id)
            .collect();
        for g in groups {
            self.force_group(g, ExitStatus::Killed);
        }
        let procs: Vec<Pid> = self
            .tasks
            .values()
            .filter(|t| {
                t.is_alive()
                    && t.process
                        .as_ref()
                        .is_some_and(|p| p.kill_deadline.is_some_and(|d| d <= now))
            })
            .map(|t| t.id)
            .collect();
        for pid in procs {
            self.terminate(pid, ExitStatus::Killed, true);
        }
    }

    /// Processes with pid above `after`, one page.
    pub fn ps(&self, after: Pid) -> ProcResponse {
        let mut entries = heapless::Vec::new();
        let mut more = false;
        for t in self.tasks.range(after.saturating_add(1)..).map(|(_, t)| t) {
            let info = ProcInfo {
                pid: t.id,
                ppid: t.process.as_ref().map_or(0, |p| p.ppid),
                pgid: t.pgid(),
                priority: t.priority.level(),
                state: t.ps_state(),
                cpu_ns: t.cpu_ns
                    + if t.id == self.current {
                        time::now_ns().saturating_sub(self.slice_start_ns)
                    } else {
                        0
                    },
                stopping: t.process.as_ref().is_some_and(|p| p.stop_requested),
                name: t.name.clone(),
            };
            if entries.len() == PS_PAGE {
                more = true;
                break;
            }
            let _ = entries.push(info);
        }
        ProcResponse::Procs { entries, more }
    }

    /// Grows the current process's heap by `bytes` (rounded up to pages).
    pub fn heap_grow(&mut self, bytes: u64) -> Result<u64, Errno> {
        let t = self.current_task();
        let (Some(p), Some(space)) = (t.process.as_mut(), t.space.as_mut()) else {
            return Err(Errno::InvalidArgument);
        };
        let bytes = bytes.checked_next_multiple_of(PAGE).ok_or(Errno::TooLarge)?;
        let end = p.heap_end.checked_add(bytes).ok_or(Errno::TooLarge)?;
        if end - p.heap_start > loader::HEAP_MAX {
            return Err(Errno::NoMemory);
        }
        let old = p.heap_end;
        let mut page = old;
        while page < end {
            if space.map_zeroed(page, crate::mm::paging::Flags::WRITABLE).is_err() {
                // Keep what was mapped: the heap end moves to it.
                p.heap_end = page;
                return Err(Errno::NoMemory);
            }
            page += PAGE;
        }
        p.heap_end = end;
        Ok(old)
    }
}

/// Spawns from kernel code (the kernel tests, the first process).
pub fn spawn(program: &str, args: &[&str], priority: u8, group: GroupChoice) -> Result<(Pid, Pgid), Errno> {
    with(|k| k.spawn(0, program, args, priority, group))
}

/// Blocks the calling task until `target` ended; the answer of `Wait`.
pub fn wait(target: WaitTarget) -> Result<Box<ProcResponse>, Errno> {
    loop {
        let r = with(|k| {
            let me = k.current;
            match k.try_wait(me, target) {
                Ok(Some(answer)) => Some(Ok(answer)),
                Ok(None) => {
                    k.block_current(Block::Wait, None);
                    None
                }
                Err(e) => Some(Err(e)),
            }
        });
        match r {
            Some(answer) => return answer,
            None => schedule(),
        }
    }
}
