//! Tasks and processes: the task table, the scheduling mechanism around the
//! policy in `kcore::sched`, blocking and waking, and the process model
//! (spawn, exit, wait, process groups, kill with grace, watchdogs, faults).
//!
//! One CPU. All state is in one [`Kernel`] behind a spin lock that is only
//! taken with interrupts off. Kernel code is never preempted: a switch
//! happens when a task blocks, yields or exits, or from an interrupt that
//! arrived in ring 3 or in the idle task. See docs/processes.md.

pub mod init;
pub mod loader;
mod process;
pub use process::PROCESS_EXITS;
pub mod service;
mod watchdog;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use aether_abi::syscall::{Name, Pgid, Pid, ProcState};
use kcore::sched::{Priority, Running, Scheduler};
use spin::Mutex;

use crate::arch::{context, cpu, gdt, idt, serial, syscall};
use crate::mm::kstack::KernelStack;
use crate::mm::user::{self, AddressSpace};
use crate::time;

pub use loader::{init as init_programs, unpack};
pub use process::{Process, spawn, wait};

/// The idle task: the boot thread, never queued, run when nothing else is.
pub const IDLE: Pid = 0;
/// Tasks (kernel tasks, processes and zombies) at most.
pub const MAX_TASKS: usize = 256;
/// The round-robin time slice.
pub const SLICE_NS: u64 = 10_000_000;
/// The timer fires at least this often (CPU accounting, deadlines).
const MAX_TIMER_GAP_NS: u64 = 10_000_000;

/// Why a task is not runnable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// In `sleep_until`.
    Sleep,
    /// Waiting for a process, group or child to end.
    Wait,
    /// Waiting for console input.
    ConsoleRead,
    /// Waiting for a mailbox word.
    Recv,
    /// A server waiting for its next request.
    Serve,
    /// A client waiting for a service's answer.
    Call,
    /// Waiting for the disk's interrupt.
    Disk,
    /// Waiting for an event on the bus (`event_read`).
    Event,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Running,
    Ready,
    Blocked(Block),
    Zombie,
}

/// What a task runs when it first gets the CPU.
#[derive(Clone, Copy)]
enum Start {
    Kernel(fn()),
    User { rip: u64, rsp: u64, args: [u64; 3] },
}

pub struct Task {
    pub id: Pid,
    pub name: Name,
    pub priority: Priority,
    pub state: State,
    pub cpu_ns: u64,
    /// The saved kernel rsp while switched out (written by `switch`; the
    /// task is boxed so this slot never moves).
    saved_rsp: u64,
    start: Start,
    /// None for the idle task (it runs on the boot stack) and once dead.
    kstack: Option<KernelStack>,
    /// None for kernel tasks and once dead.
    space: Option<AddressSpace>,
    /// Process state (None for kernel tasks).
    pub process: Option<Process>,
}

impl Task {
    pub fn is_alive(&self) -> bool {
        self.state != State::Zombie
    }

    pub fn ps_state(&self) -> ProcState {
        match self.state {
            State::Running => ProcState::Running,
            State::Ready => ProcState::Ready,
            State::Blocked(Block::Sleep) => ProcState::Sleeping,
            State::Blocked(_) => ProcState::Blocked,
            State::Zombie => ProcState::Zombie,
        }
    }

    pub fn pgid(&self) -> Pgid {
        self.process.as_ref().map_or(0, |p| p.pgid)
    }
}

pub struct Kernel {
    pub tasks: BTreeMap<Pid, Box<Task>>,
    pub sched: Scheduler,
    pub current: Pid,
    /// When the current task got the CPU (accounting, time slice).
    slice_start_ns: u64,
    next_pid: Pid,
    /// Dead tasks whose stack and address space wait to be freed (the task
    /// was running on them when it died).
    release: Vec<Pid>,
    pub groups: BTreeMap<Pgid, process::GroupKill>,
    pub watchdogs: watchdog::Watchdogs,
    pub services: service::Services,
    /// Captured console output, by the pid it was made for.
    pub captures: BTreeMap<Pid, process::CaptureEntry>,
    /// The event bus (`crate::telemetry`: under this lock, as the fault
    /// and timer paths publish and readers block on it).
    pub events: kcore::event_ring::EventRing,
}

static KERNEL: Mutex<Option<Kernel>> = Mutex::new(None);

/// Whether the running task is a process that passed the ABI handshake:
/// kept current at every switch and handshake, so the syscall path checks
/// it without the lock.
static CURRENT_ABI_OK: AtomicBool = AtomicBool::new(false);

impl Kernel {
    /// How deep the running task's kernel stack has been used (bytes; 0
    /// for a task on the boot stack).
    pub fn current_kstack_high_water(&self) -> u64 {
        self.tasks
            .get(&self.current)
            .and_then(|t| t.kstack.as_ref())
            .map_or(0, KernelStack::high_water)
    }
}

pub fn current_abi_ok() -> bool {
    CURRENT_ABI_OK.load(Ordering::Relaxed)
}

/// Records the running process's handshake (the `abi_hello` syscall).
pub fn set_current_abi_ok(ok: bool) {
    CURRENT_ABI_OK.store(ok, Ordering::Relaxed);
}

/// Runs `f` on the kernel state with interrupts off.
pub fn with<R>(f: impl FnOnce(&mut Kernel) -> R) -> R {
    cpu::without_interrupts(|| {
        let mut guard = KERNEL.lock();
        match guard.as_mut() {
            Some(k) => f(k),
            None => panic!("task::with before task::init"),
        }
    })
}

/// Makes the boot thread the idle task and hooks the scheduler into the
/// timer, interrupts, faults and syscalls.
pub fn init() {
    let idle = Box::new(Task {
        id: IDLE,
        name: Name::try_from("[idle]").unwrap_or_default(),
        priority: Priority::LOWEST,
        state: State::Running,
        cpu_ns: 0,
        saved_rsp: 0,
        start: Start::Kernel(|| {}),
        kstack: None,
        space: None,
        process: None,
    });
    let mut tasks = BTreeMap::new();
    tasks.insert(IDLE, idle);
    *KERNEL.lock() = Some(Kernel {
        tasks,
        sched: Scheduler::new(SLICE_NS),
        current: IDLE,
        slice_start_ns: time::now_ns(),
        next_pid: 1,
        release: Vec::new(),
        groups: BTreeMap::new(),
        watchdogs: watchdog::Watchdogs::new(),
        services: service::Services::new(),
        captures: BTreeMap::new(),
        events: kcore::event_ring::EventRing::default(),
    });
    user::init_shared();
    idt::set_preempt_hook(on_interrupt);
    idt::set_user_fault_handler(process::on_user_fault);
    syscall::init(crate::syscall::dispatch);
    time::use_oneshot(on_timer);
}

impl Kernel {
    fn alloc_pid(&mut self) -> Option<Pid> {
        for _ in 0..=MAX_TASKS * 4 {
            let pid = self.next_pid;
            self.next_pid = self.next_pid.checked_add(1).unwrap_or(1).max(1);
            if !self.tasks.contains_key(&pid) {
                return Some(pid);
            }
        }
        None
    }

    pub fn current_task(&mut self) -> &mut Task {
        let cur = self.current;
        match self.tasks.get_mut(&cur) {
            Some(t) => t,
            None => panic!("current task {cur} missing from the table"),
        }
    }

    /// Makes a blocked (or sleeping) task runnable.
    pub fn wake(&mut self, id: Pid) {
        if let Some(t) = self.tasks.get_mut(&id)
            && let State::Blocked(_) = t.state
        {
            self.sched.remove(id);
            t.state = State::Ready;
            self.sched.make_ready(id, t.priority);
        }
    }

    /// Wakes every task blocked for `why`.
    pub fn wake_all(&mut self, why: Block) {
        let ids: Vec<Pid> = self
            .tasks
            .values()
            .filter(|t| t.state == State::Blocked(why))
            .map(|t| t.id)
            .collect();
        for id in ids {
            self.wake(id);
        }
    }

    /// Marks the current task blocked; the caller then calls [`schedule`].
    /// With `until`, the timer makes it runnable again at that time.
    pub fn block_current(&mut self, why: Block, until: Option<u64>) {
        let cur = self.current;
        let t = self.current_task();
        t.state = State::Blocked(why);
        let prio = t.priority;
        if let Some(at) = until {
            self.sched.sleep_until(cur, prio, at);
            self.arm_timer();
        }
    }

    /// The running task as the policy sees it: only processes, as kernel
    /// tasks are never preempted (so their slice never matters).
    fn running(&self) -> Option<Running> {
        let t = self.tasks.get(&self.current)?;
        (t.process.is_some() && t.state == State::Running).then_some(Running {
            id: self.current,
            priority: t.priority,
            slice_start_ns: self.slice_start_ns,
        })
    }

    /// The next time the timer must fire.
    fn next_deadline(&self, now: u64) -> u64 {
        let mut at = now + MAX_TIMER_GAP_NS;
        if let Some(d) = self.sched.next_deadline(self.running().as_ref()) {
            at = at.min(d);
        }
        if let Some(d) = self.kill_deadline() {
            at = at.min(d);
        }
        if let Some(d) = self.watchdogs.next_deadline() {
            at = at.min(d);
        }
        at
    }

    /// Frees what dead tasks left that nobody runs on any more.
    fn release_dead(&mut self) {
        let cur = self.current;
        let mut keep = Vec::new();
        for id in core::mem::take(&mut self.release) {
            if id == cur {
                keep.push(id);
            } else if let Some(t) = self.tasks.get_mut(&id) {
                t.kstack = None;
                t.space = None;
                // Nobody waits for a kernel task: forget it entirely.
                if t.process.is_none() {
                    self.tasks.remove(&id);
                }
            }
        }
        RELEASE_PENDING.store(!keep.is_empty(), Ordering::Relaxed);
        self.release = keep;
    }

    /// Re-arms the one-shot timer for the earliest deadline (after one was
    /// added or moved earlier: a sleep, a kill, a watchdog).
    pub fn arm_timer(&self) {
        let now = time::now_ns();
        time::arm_timer(self.next_deadline(now));
    }

    /// Queues a dead task's stack and space for freeing after the switch.
    pub(super) fn release_later(&mut self, id: Pid) {
        self.release.push(id);
        RELEASE_PENDING.store(true, Ordering::Relaxed);
    }

    /// Charges the running task for its CPU time up to `now`.
    pub(super) fn charge(&mut self, now: u64) {
        let spent = now.saturating_sub(self.slice_start_ns);
        self.current_task().cpu_ns += spent;
        self.slice_start_ns = now;
    }

    /// Adds a task; it runs when the scheduler picks it.
    fn insert(&mut self, task: Box<Task>) {
        let (id, prio) = (task.id, task.priority);
        self.tasks.insert(id, task);
        self.sched.make_ready(id, prio);
    }
}

/// Gives the CPU to the best runnable task (possibly the caller again).
/// The current task is re-queued if it is still running; a blocked or dead
/// one is not. Call with no lock held; interrupts may be on or off.
pub fn schedule() {
    cpu::without_interrupts(|| {
        let switch = {
            let mut guard = KERNEL.lock();
            let Some(k) = guard.as_mut() else { return };
            let now = time::now_ns();
            k.charge(now);
            let cur = k.current;
            if cur != IDLE {
                let t = k.current_task();
                if t.state == State::Running {
                    t.state = State::Ready;
                    let prio = t.priority;
                    k.sched.make_ready(cur, prio);
                }
            }
            let next = k.sched.pick_next().unwrap_or(IDLE);
            let Some(n) = k.tasks.get_mut(&next) else {
                panic!("scheduler picked unknown task {next}")
            };
            n.state = State::Running;
            if next == cur {
                None
            } else {
                if let Some(stack) = &n.kstack {
                    gdt::set_kernel_stack(stack.top());
                    syscall::set_kernel_stack(stack.top());
                }
                CURRENT_ABI_OK.store(n.process.as_ref().is_some_and(|p| p.abi_ok), Ordering::Relaxed);
                // Kernel tasks run with whatever user half is installed.
                if let Some(space) = &n.space {
                    space.install();
                }
                let load = n.saved_rsp;
                k.current = next;
                let save: *mut u64 = match k.tasks.get_mut(&cur) {
                    Some(c) => &mut c.saved_rsp,
                    None => panic!("current task {cur} missing"),
                };
                Some((save, load))
            }
        };
        if let Some((save, load)) = switch {
            // SAFETY: interrupts are off; `save` is the outgoing task's
            // saved-rsp slot inside its `Box<Task>`, which stays allocated
            // until the task is reaped, and a task is reaped only when it is
            // not running (so not before this write). `load` is the saved
            // rsp of a task that is not running: saved by an earlier
            // `switch` or built by `init_stack`, on its own kernel stack,
            // which is mapped while the task is alive.
            unsafe { context::switch(save, load) };
        }
        after_switch();
    })
}

/// Set when a dead task's stack or address space waits in `Kernel.release`.
static RELEASE_PENDING: AtomicBool = AtomicBool::new(false);

/// Runs on the task that just got the CPU: frees what dead tasks left (it
/// could not be freed while they ran on it). The timer is not touched here:
/// deadlines are armed where they are made (`Kernel::arm_timer`), and a
/// slice end is enforced by the timer's regular firing (at most 10 ms).
fn after_switch() {
    if RELEASE_PENDING.load(Ordering::Relaxed) {
        with(|k| k.release_dead());
    }
}

/// The idle loop (the boot thread ends here).
pub fn idle() -> ! {
    let mut warmer = crate::mm::frames::Warmer::new();
    loop {
        schedule();
        // Spare time warms free memory first, a frame at a time
        // (`Warmer::step`).
        while crate::mm::frames::warming() && !with(|k| k.sched.best_ready().is_some()) {
            if !warmer.step() {
                // Debug: at info it would land in the middle of whatever the
                // console prints a second after boot.
                log::debug!(
                    "mm: free memory warmed ({} frames by {} ms)",
                    warmer.touched(),
                    time::now_ns() / 1_000_000
                );
            }
        }
        // Nothing to run: wait for an interrupt (it preempts the idle task
        // when it makes something runnable).
        cpu::wait_until(|| with(|k| k.sched.best_ready().is_some()));
    }
}

/// The disk interrupt count when disk waiters were last woken.
static DISK_WOKEN: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Sleeps until the disk's interrupt count (`arch::virtio::blk_irqs`) moves
/// past `seen`, for 10 ms at most (a lost interrupt costs a poll, not a
/// hang). Returns at once if it has moved already, or before the scheduler
/// runs.
pub fn wait_disk_irq(seen: u64) {
    if cpu::without_interrupts(|| KERNEL.lock().is_none()) {
        return;
    }
    let deadline = time::now_ns() + 10_000_000;
    let blocked = with(|k| {
        if crate::arch::virtio::blk_irqs() != seen {
            return false;
        }
        k.block_current(Block::Disk, Some(deadline));
        true
    });
    if blocked {
        schedule();
    }
}

/// After every device interrupt: wake console readers if input arrived,
/// disk waiters if the disk interrupted, and preempt if the interrupted
/// code may be (ring 3, or the idle task).
fn on_interrupt(from_user: bool) {
    let now = time::now_ns();
    let preempt = with(|k| {
        if serial::input_pending() {
            k.wake_all(Block::ConsoleRead);
        }
        let disk = crate::arch::virtio::blk_irqs();
        if DISK_WOKEN.swap(disk, core::sync::atomic::Ordering::Relaxed) != disk {
            k.wake_all(Block::Disk);
        }
        let cur_alive = k.tasks.get(&k.current).is_some_and(|t| t.state == State::Running);
        if !from_user && k.current != IDLE {
            return false;
        }
        if !cur_alive {
            return true;
        }
        if k.current == IDLE {
            return k.sched.best_ready().is_some();
        }
        k.running().is_some_and(|r| k.sched.should_preempt(&r, now))
    });
    if preempt {
        schedule();
    }
}

/// The timer: wake sleepers, enforce kill deadlines and watchdogs, re-arm.
fn on_timer() {
    let now = time::now_ns();
    let deadline = with(|k| {
        let mut woken = Vec::new();
        k.sched.wake_due_each(now, |id| woken.push(id));
        for id in woken {
            if let Some(t) = k.tasks.get_mut(&id) {
                t.state = State::Ready;
            }
        }
        k.enforce_kill_deadlines(now);
        k.check_watchdogs(now);
        k.next_deadline(now)
    });
    time::arm_timer(deadline);
}

extern "C" fn task_entry(id: u64) -> ! {
    after_switch();
    let start = with(|k| k.tasks.get(&(id as Pid)).map(|t| t.start));
    match start {
        Some(Start::Kernel(f)) => {
            cpu::enable_interrupts();
            f();
            exit_current_kernel_task()
        }
        // SAFETY: `schedule` installed this task's address space (the loader
        // mapped `rip` executable and `rsp` writable for ring 3 in it) and
        // pointed rsp0 at this task's kernel stack before switching here.
        Some(Start::User { rip, rsp, args }) => unsafe { context::enter_user(rip, rsp, args) },
        None => panic!("task {id} started but is not in the table"),
    }
}

fn new_task(id: Pid, name: &str, priority: Priority, start: Start) -> Result<Box<Task>, crate::mm::paging::MapError> {
    let kstack = KernelStack::new()?;
    // SAFETY: the stack is freshly mapped, 16-byte aligned at its top, larger
    // than 128 bytes, and used by nothing else until this task runs.
    let saved_rsp = unsafe { context::init_stack(kstack.top(), task_entry, id as u64) };
    let mut n = Name::new();
    for c in name.chars() {
        if n.push(c).is_err() {
            break;
        }
    }
    Ok(Box::new(Task {
        id,
        name: n,
        priority,
        state: State::Ready,
        cpu_ns: 0,
        saved_rsp,
        start,
        kstack: Some(kstack),
        space: None,
        process: None,
    }))
}

/// Starts a kernel task running `f` (interrupts on, never preempted).
pub fn spawn_kernel(name: &str, priority: Priority, f: fn()) -> Option<Pid> {
    with(|k| {
        let id = k.alloc_pid()?;
        let task = new_task(id, name, priority, Start::Kernel(f)).ok()?;
        k.insert(task);
        Some(id)
    })
}

fn exit_current_kernel_task() -> ! {
    with(|k| {
        let cur = k.current;
        k.current_task().state = State::Zombie;
        k.release_later(cur);
    });
    schedule();
    panic!("a dead kernel task was scheduled again")
}

/// Blocks the current task until the monotonic clock reaches `ns`.
pub fn sleep_until(ns: u64) {
    with(|k| k.block_current(Block::Sleep, Some(ns)));
    schedule();
}

impl Kernel {
    /// The address space of the running process (None for kernel tasks).
    pub fn current_task_space(&mut self) -> Option<&mut AddressSpace> {
        self.current_task().space.as_mut()
    }
}
