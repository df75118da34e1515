//! Scheduling policy for a single-CPU preemptive priority scheduler.
//!
//! This module only decides; the kernel owns the task structures and does the
//! context switches. Ready tasks wait in one FIFO queue per priority level
//! (round robin within a level), with a `u32` bitmap of non-empty levels so the
//! best level is found in O(1). Sleeping tasks wait ordered by wake time, ties
//! broken by the order they went to sleep. A task is in at most one queue at a
//! time: queueing an id that is already queued first takes it out of where it
//! was. The running task is in no queue; the kernel describes it with
//! [`Running`] when it asks whether to preempt or when to arm the timer.

use alloc::collections::{BTreeMap, VecDeque};

/// Number of priority levels: 0 is the highest, 31 the lowest.
pub const PRIORITY_LEVELS: usize = 32;

/// A task, as the kernel names it.
pub type TaskId = u32;

/// A priority level, `0` (highest) to `31` (lowest).
///
/// Ordering compares levels, so a *more urgent* priority compares *less*:
/// `Priority::HIGHEST < Priority::LOWEST`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u8);

impl Priority {
    /// The most urgent level, 0.
    pub const HIGHEST: Priority = Priority(0);
    /// The least urgent level, 31.
    pub const LOWEST: Priority = Priority(PRIORITY_LEVELS as u8 - 1);

    /// The priority at `level`, or `None` if `level >= PRIORITY_LEVELS`.
    pub const fn new(level: u8) -> Option<Priority> {
        if (level as usize) < PRIORITY_LEVELS {
            Some(Priority(level))
        } else {
            None
        }
    }

    /// The level number, 0 (highest) to 31 (lowest).
    pub const fn level(self) -> u8 {
        self.0
    }
}

/// What is running now, as the policy needs to know it.
#[derive(Clone, Copy, Debug)]
pub struct Running {
    /// The running task.
    pub id: TaskId,
    /// Its priority.
    pub priority: Priority,
    /// When its current time slice began (monotonic ns).
    pub slice_start_ns: u64,
}

/// Where a queued task is waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// In the ready queue of this level.
    Ready(Priority),
    /// Asleep, under this key of `Scheduler::sleepers`.
    Sleeping(SleepKey),
}

/// Orders sleepers by wake time, then by when they went to sleep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SleepKey {
    wake_ns: u64,
    seq: u64,
}

/// The run queues and the sleep queue.
pub struct Scheduler {
    slice_ns: u64,
    /// One FIFO per level; the front runs next.
    ready: [VecDeque<TaskId>; PRIORITY_LEVELS],
    /// Bit `n` is set iff `ready[n]` is non-empty.
    nonempty: u32,
    /// Sleepers in wake order, with the priority they wake at.
    sleepers: BTreeMap<SleepKey, (TaskId, Priority)>,
    /// Sequence number for the next sleeper (tie-break on equal wake times).
    next_seq: u64,
    /// Every queued task and where it is.
    index: BTreeMap<TaskId, Place>,
}

impl Scheduler {
    /// An empty scheduler giving each task `slice_ns` nanoseconds before
    /// another task of its level may take the CPU.
    pub const fn new(slice_ns: u64) -> Self {
        Scheduler {
            slice_ns,
            ready: [const { VecDeque::new() }; PRIORITY_LEVELS],
            nonempty: 0,
            sleepers: BTreeMap::new(),
            next_seq: 0,
            index: BTreeMap::new(),
        }
    }

    /// The time-slice length, ns.
    pub fn slice_ns(&self) -> u64 {
        self.slice_ns
    }

    /// Appends `id` to the back of its level (a task that used up its slice,
    /// or a new or woken one). If `id` is already queued (ready or asleep) it
    /// is first removed, so this also wakes a sleeper early or changes a ready
    /// task's priority.
    pub fn make_ready(&mut self, id: TaskId, priority: Priority) {
        self.remove(id);
        self.ready[priority.0 as usize].push_back(id);
        self.nonempty |= 1 << priority.0;
        self.index.insert(id, Place::Ready(priority));
    }

    /// Puts `id` at the front of its level, so it runs before the others of
    /// that level (a preempted task that still has slice left). If `id` is
    /// already queued it is first removed.
    pub fn make_ready_front(&mut self, id: TaskId, priority: Priority) {
        self.remove(id);
        self.ready[priority.0 as usize].push_front(id);
        self.nonempty |= 1 << priority.0;
        self.index.insert(id, Place::Ready(priority));
    }

    /// Takes the highest-priority ready task off its queue (FIFO within the
    /// level). `None` means nothing is ready: run the idle loop.
    pub fn pick_next(&mut self) -> Option<TaskId> {
        let level = self.best_ready()?.0 as usize;
        let id = self.ready[level].pop_front();
        if self.ready[level].is_empty() {
            self.nonempty &= !(1 << level);
        }
        if let Some(id) = id {
            self.index.remove(&id);
        }
        id
    }

    /// The priority of the best ready task, if any.
    pub fn best_ready(&self) -> Option<Priority> {
        if self.nonempty == 0 {
            None
        } else {
            Some(Priority(self.nonempty.trailing_zeros() as u8))
        }
    }

    /// Puts `id` to sleep until `wake_ns` (monotonic ns); it wakes at
    /// `priority`. Sleepers with the same wake time wake in the order they
    /// went to sleep. If `id` is already queued it is first removed.
    pub fn sleep_until(&mut self, id: TaskId, priority: Priority, wake_ns: u64) {
        self.remove(id);
        let key = SleepKey {
            wake_ns,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.sleepers.insert(key, (id, priority));
        self.index.insert(id, Place::Sleeping(key));
    }

    /// Moves every sleeper with `wake_ns <= now_ns` to the back of its ready
    /// level, in wake order, and returns how many woke.
    pub fn wake_due(&mut self, now_ns: u64) -> usize {
        self.wake_due_each(now_ns, |_| {})
    }

    /// Like [`Scheduler::wake_due`], telling `woke` each task it woke, in
    /// wake order (the kernel updates its task states from it).
    pub fn wake_due_each(&mut self, now_ns: u64, mut woke: impl FnMut(TaskId)) -> usize {
        let mut woken = 0;
        while let Some((&key, _)) = self.sleepers.first_key_value() {
            if key.wake_ns > now_ns {
                break;
            }
            if let Some((_, (id, priority))) = self.sleepers.pop_first() {
                self.index.remove(&id);
                self.make_ready(id, priority);
                woke(id);
                woken += 1;
            }
        }
        woken
    }

    /// Takes `id` out of whichever queue holds it, ready or sleeping; returns
    /// whether it was queued. Used by kill and by early wake-ups.
    pub fn remove(&mut self, id: TaskId) -> bool {
        match self.index.remove(&id) {
            None => false,
            Some(Place::Ready(priority)) => {
                let level = priority.0 as usize;
                let queue = &mut self.ready[level];
                if let Some(pos) = queue.iter().position(|&t| t == id) {
                    queue.remove(pos);
                }
                if queue.is_empty() {
                    self.nonempty &= !(1 << level);
                }
                true
            }
            Some(Place::Sleeping(key)) => {
                self.sleepers.remove(&key);
                true
            }
        }
    }

    /// Whether `running` should be preempted at `now_ns`: a strictly
    /// higher-priority task is ready, or its slice has expired
    /// (`slice_start_ns + slice_ns <= now_ns`) and a task of the same or
    /// higher priority is ready. A task alone at its level is never preempted
    /// by slice expiry.
    pub fn should_preempt(&self, running: &Running, now_ns: u64) -> bool {
        let Some(best) = self.best_ready() else {
            return false;
        };
        best < running.priority || (best == running.priority && self.slice_end(running) <= now_ns)
    }

    /// The next moment the timer must fire (for a one-shot timer): the
    /// earliest sleeper's wake time and, if `running` is given and a task of
    /// the same or higher priority is ready, the end of its slice, whichever
    /// is earlier. The slice end may already be past; the caller should then
    /// fire at once. `None`: nothing to wait for.
    pub fn next_deadline(&self, running: Option<&Running>) -> Option<u64> {
        let wake = self.sleepers.first_key_value().map(|(key, _)| key.wake_ns);
        let slice = running.filter(|r| self.best_ready().is_some_and(|best| best <= r.priority));
        let slice_end = slice.map(|r| self.slice_end(r));
        match (wake, slice_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How many tasks are ready (not counting the running one).
    pub fn ready_len(&self) -> usize {
        self.ready.iter().map(VecDeque::len).sum()
    }

    /// How many tasks are asleep.
    pub fn sleeping_len(&self) -> usize {
        self.sleepers.len()
    }

    /// Whether `id` is in a ready queue or asleep.
    pub fn is_queued(&self, id: TaskId) -> bool {
        self.index.contains_key(&id)
    }

    /// When `running`'s slice ends (saturating).
    fn slice_end(&self, running: &Running) -> u64 {
        running.slice_start_ns.saturating_add(self.slice_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const SLICE: u64 = 10_000_000;

    fn p(level: u8) -> Priority {
        Priority::new(level).unwrap()
    }

    fn run(id: TaskId, level: u8, slice_start_ns: u64) -> Running {
        Running {
            id,
            priority: p(level),
            slice_start_ns,
        }
    }

    fn drain(s: &mut Scheduler) -> Vec<TaskId> {
        core::iter::from_fn(|| s.pick_next()).collect()
    }

    /// The index, the queues and the bitmap agree.
    fn check_invariants(s: &Scheduler) {
        for (level, queue) in s.ready.iter().enumerate() {
            assert_eq!(s.nonempty & (1 << level) != 0, !queue.is_empty(), "bitmap bit {level}");
            for &id in queue {
                assert_eq!(s.index.get(&id), Some(&Place::Ready(p(level as u8))), "ready task {id}");
            }
        }
        for (key, &(id, _)) in &s.sleepers {
            assert_eq!(s.index.get(&id), Some(&Place::Sleeping(*key)), "sleeper {id}");
        }
        assert_eq!(
            s.index.len(),
            s.ready_len() + s.sleeping_len(),
            "a task is queued twice"
        );
    }

    #[test]
    fn priority_bounds() {
        assert_eq!(Priority::new(0), Some(Priority::HIGHEST));
        assert_eq!(Priority::new(31), Some(Priority::LOWEST));
        assert_eq!(Priority::new(32), None);
        assert_eq!(Priority::new(255), None);
        assert_eq!(Priority::LOWEST.level(), 31);
        assert!(Priority::HIGHEST < Priority::LOWEST);
    }

    #[test]
    fn empty_scheduler() {
        let mut s = Scheduler::new(SLICE);
        assert_eq!(s.slice_ns(), SLICE);
        assert_eq!(s.pick_next(), None);
        assert_eq!(s.best_ready(), None);
        assert_eq!(s.ready_len(), 0);
        assert_eq!(s.sleeping_len(), 0);
        assert_eq!(s.wake_due(u64::MAX), 0);
        assert_eq!(s.next_deadline(None), None);
        assert_eq!(s.next_deadline(Some(&run(1, 0, 0))), None);
        assert!(!s.should_preempt(&run(1, 31, 0), u64::MAX));
        assert!(!s.remove(1));
        assert!(!s.is_queued(1));
    }

    #[test]
    fn picks_highest_priority_first() {
        let mut s = Scheduler::new(SLICE);
        s.make_ready(1, p(20));
        s.make_ready(2, p(5));
        s.make_ready(3, Priority::LOWEST);
        s.make_ready(4, Priority::HIGHEST);
        s.make_ready(5, p(5));
        assert_eq!(s.best_ready(), Some(Priority::HIGHEST));
        assert_eq!(s.ready_len(), 5);
        check_invariants(&s);
        assert_eq!(drain(&mut s), [4, 2, 5, 1, 3]);
        assert_eq!(s.best_ready(), None);
        check_invariants(&s);
    }

    #[test]
    fn best_ready_tracks_emptied_levels() {
        let mut s = Scheduler::new(SLICE);
        s.make_ready(1, p(3));
        s.make_ready(2, p(7));
        assert_eq!(s.best_ready(), Some(p(3)));
        assert_eq!(s.pick_next(), Some(1));
        assert_eq!(s.best_ready(), Some(p(7)));
        assert_eq!(s.pick_next(), Some(2));
        assert_eq!(s.best_ready(), None);
    }

    #[test]
    fn round_robin_within_a_level() {
        let mut s = Scheduler::new(SLICE);
        for id in 1..=3 {
            s.make_ready(id, p(10));
        }
        let mut order = Vec::new();
        for _ in 0..9 {
            let id = s.pick_next().unwrap();
            order.push(id);
            s.make_ready(id, p(10)); // used up its slice
        }
        assert_eq!(order, [1, 2, 3, 1, 2, 3, 1, 2, 3]);
        check_invariants(&s);
    }

    #[test]
    fn make_ready_front_runs_before_its_level() {
        let mut s = Scheduler::new(SLICE);
        s.make_ready(1, p(10));
        s.make_ready(2, p(10));
        s.make_ready_front(3, p(10));
        s.make_ready(4, p(9));
        check_invariants(&s);
        assert_eq!(drain(&mut s), [4, 3, 1, 2]);
    }

    #[test]
    fn make_ready_twice_does_not_duplicate() {
        let mut s = Scheduler::new(SLICE);
        s.make_ready(1, p(10));
        s.make_ready(2, p(10));
        s.make_ready(1, p(10)); // moves to the back
        assert_eq!(s.ready_len(), 2);
        check_invariants(&s);
        assert_eq!(drain(&mut s), [2, 1]);

        s.make_ready(1, p(10));
        s.make_ready(2, p(10));
        s.make_ready_front(2, p(10));
        assert_eq!(s.ready_len(), 2);
        assert_eq!(drain(&mut s), [2, 1]);
    }

    #[test]
    fn make_ready_changes_priority() {
        let mut s = Scheduler::new(SLICE);
        s.make_ready(1, p(10));
        s.make_ready(2, p(5));
        s.make_ready(1, p(2));
        assert_eq!(s.ready_len(), 2);
        check_invariants(&s);
        assert_eq!(s.nonempty, (1 << 2) | (1 << 5), "level 10 emptied");
        assert_eq!(drain(&mut s), [1, 2]);
    }

    #[test]
    fn slice_expiry_preempts_only_with_a_peer() {
        let mut s = Scheduler::new(SLICE);
        let r = run(1, 10, 1_000);
        // Alone: never preempted, however long it runs.
        assert!(!s.should_preempt(&r, 1_000 + SLICE));
        assert!(!s.should_preempt(&r, u64::MAX));
        // A lower-priority task does not preempt it either.
        s.make_ready(2, p(11));
        assert!(!s.should_preempt(&r, u64::MAX));
        // A peer at the same level: preempted exactly when the slice ends.
        s.make_ready(3, p(10));
        assert!(!s.should_preempt(&r, 1_000));
        assert!(!s.should_preempt(&r, 1_000 + SLICE - 1));
        assert!(s.should_preempt(&r, 1_000 + SLICE));
        assert!(s.should_preempt(&r, 1_000 + 5 * SLICE));
    }

    #[test]
    fn higher_priority_preempts_at_once() {
        let mut s = Scheduler::new(SLICE);
        let r = run(1, 10, 1_000);
        s.make_ready(2, p(9));
        assert!(s.should_preempt(&r, 1_000));
        assert!(s.should_preempt(&r, 0), "even before the slice began");
    }

    #[test]
    fn slice_end_saturates() {
        let mut s = Scheduler::new(u64::MAX);
        let r = run(1, 10, 5);
        s.make_ready(2, p(10));
        assert!(!s.should_preempt(&r, u64::MAX - 1));
        assert!(s.should_preempt(&r, u64::MAX));
        assert_eq!(s.next_deadline(Some(&r)), Some(u64::MAX));
    }

    #[test]
    fn zero_slice_expires_immediately() {
        let mut s = Scheduler::new(0);
        s.make_ready(2, p(10));
        assert!(s.should_preempt(&run(1, 10, 100), 100));
    }

    #[test]
    fn wake_due_each_reports_every_woken_task_in_order() {
        let mut s = Scheduler::new(10);
        let p = Priority::new(3).unwrap();
        s.sleep_until(1, p, 30);
        s.sleep_until(2, p, 10);
        s.sleep_until(3, p, 99);
        let mut woken = std::vec::Vec::new();
        assert_eq!(s.wake_due_each(50, |id| woken.push(id)), 2);
        assert_eq!(woken, [2, 1]);
        assert_eq!(s.sleeping_len(), 1);
    }

    #[test]
    fn sleepers_wake_in_wake_time_order() {
        let mut s = Scheduler::new(SLICE);
        s.sleep_until(1, p(10), 300);
        s.sleep_until(2, p(10), 100);
        s.sleep_until(3, p(10), 200);
        assert_eq!(s.sleeping_len(), 3);
        assert_eq!(s.ready_len(), 0);
        check_invariants(&s);
        assert_eq!(s.wake_due(99), 0);
        assert_eq!(s.wake_due(1_000), 3);
        assert_eq!(s.sleeping_len(), 0);
        check_invariants(&s);
        assert_eq!(drain(&mut s), [2, 3, 1]);
    }

    #[test]
    fn equal_wake_times_keep_insertion_order() {
        let mut s = Scheduler::new(SLICE);
        for id in [5, 3, 9, 1, 7] {
            s.sleep_until(id, p(4), 500);
        }
        assert_eq!(s.wake_due(500), 5);
        assert_eq!(drain(&mut s), [5, 3, 9, 1, 7]);
    }

    #[test]
    fn wake_due_wakes_only_due_sleepers() {
        let mut s = Scheduler::new(SLICE);
        s.sleep_until(1, p(10), 100);
        s.sleep_until(2, p(10), 200);
        s.sleep_until(3, p(10), 201);
        assert_eq!(s.wake_due(200), 2, "wake_ns == now is due");
        assert!(s.is_queued(3));
        assert_eq!(s.sleeping_len(), 1);
        assert_eq!(s.ready_len(), 2);
        check_invariants(&s);
        assert_eq!(s.wake_due(200), 0);
        assert_eq!(s.wake_due(201), 1);
        assert_eq!(drain(&mut s), [1, 2, 3]);
    }

    #[test]
    fn woken_tasks_join_the_back_of_their_level() {
        let mut s = Scheduler::new(SLICE);
        s.make_ready(1, p(10));
        s.sleep_until(2, p(10), 100);
        s.sleep_until(3, p(2), 100);
        s.wake_due(100);
        assert_eq!(drain(&mut s), [3, 1, 2]);
    }

    #[test]
    fn wake_up_preempts_lower_priority_running_task() {
        let mut s = Scheduler::new(SLICE);
        let r = run(1, 10, 0);
        s.sleep_until(2, p(3), 500);
        assert!(!s.should_preempt(&r, 499));
        assert_eq!(s.wake_due(499), 0);
        assert!(!s.should_preempt(&r, 499));
        assert_eq!(s.wake_due(500), 1);
        assert!(s.should_preempt(&r, 500));
        assert_eq!(s.pick_next(), Some(2));
    }

    #[test]
    fn wake_up_of_lower_priority_does_not_preempt() {
        let mut s = Scheduler::new(SLICE);
        let r = run(1, 10, 0);
        s.sleep_until(2, p(11), 500);
        s.wake_due(500);
        assert!(!s.should_preempt(&r, 500));
        assert!(!s.should_preempt(&r, u64::MAX));
    }

    #[test]
    fn wake_up_of_peer_preempts_only_after_slice() {
        let mut s = Scheduler::new(SLICE);
        let r = run(1, 10, 0);
        s.sleep_until(2, p(10), 500);
        s.wake_due(500);
        assert!(!s.should_preempt(&r, 500));
        assert!(s.should_preempt(&r, SLICE));
    }

    #[test]
    fn sleep_until_twice_reschedules() {
        let mut s = Scheduler::new(SLICE);
        s.sleep_until(1, p(10), 100);
        s.sleep_until(2, p(10), 200);
        s.sleep_until(1, p(10), 300);
        assert_eq!(s.sleeping_len(), 2);
        check_invariants(&s);
        assert_eq!(s.next_deadline(None), Some(200));
        assert_eq!(s.wake_due(250), 1);
        assert_eq!(s.pick_next(), Some(2));
        assert_eq!(s.wake_due(300), 1);
        assert_eq!(s.pick_next(), Some(1));
    }

    #[test]
    fn moving_between_ready_and_sleeping() {
        let mut s = Scheduler::new(SLICE);
        s.make_ready(1, p(10));
        s.sleep_until(1, p(10), 100);
        assert_eq!((s.ready_len(), s.sleeping_len()), (0, 1));
        assert_eq!(s.best_ready(), None, "bitmap cleared when the level emptied");
        check_invariants(&s);
        // Early wake-up: make_ready takes it off the sleep queue.
        s.make_ready(1, p(10));
        assert_eq!((s.ready_len(), s.sleeping_len()), (1, 0));
        check_invariants(&s);
        assert_eq!(s.wake_due(u64::MAX), 0);
        assert_eq!(drain(&mut s), [1]);
    }

    #[test]
    fn remove_ready_task() {
        let mut s = Scheduler::new(SLICE);
        s.make_ready(1, p(10));
        s.make_ready(2, p(10));
        s.make_ready(3, p(10));
        s.make_ready(4, p(2));
        assert!(s.remove(2));
        assert!(!s.is_queued(2));
        assert!(!s.remove(2), "already gone");
        check_invariants(&s);
        assert!(s.remove(4));
        assert_eq!(s.best_ready(), Some(p(10)));
        check_invariants(&s);
        assert_eq!(drain(&mut s), [1, 3]);
    }

    #[test]
    fn remove_last_ready_task_clears_level() {
        let mut s = Scheduler::new(SLICE);
        s.make_ready(1, p(0));
        s.make_ready(2, p(31));
        assert!(s.remove(1));
        assert_eq!(s.best_ready(), Some(p(31)));
        assert!(s.remove(2));
        assert_eq!(s.best_ready(), None);
        assert_eq!(s.pick_next(), None);
        check_invariants(&s);
    }

    #[test]
    fn remove_sleeping_task() {
        let mut s = Scheduler::new(SLICE);
        s.sleep_until(1, p(10), 100);
        s.sleep_until(2, p(10), 200);
        assert!(s.remove(1));
        assert!(!s.is_queued(1));
        assert_eq!(s.sleeping_len(), 1);
        assert_eq!(s.next_deadline(None), Some(200));
        check_invariants(&s);
        assert_eq!(s.wake_due(u64::MAX), 1);
        assert_eq!(drain(&mut s), [2]);
    }

    #[test]
    fn remove_unknown_task() {
        let mut s = Scheduler::new(SLICE);
        s.make_ready(1, p(10));
        assert!(!s.remove(2));
        assert_eq!(s.ready_len(), 1);
    }

    #[test]
    fn is_queued_follows_the_task() {
        let mut s = Scheduler::new(SLICE);
        assert!(!s.is_queued(7));
        s.make_ready(7, p(1));
        assert!(s.is_queued(7));
        assert_eq!(s.pick_next(), Some(7));
        assert!(!s.is_queued(7), "running task is in no queue");
        s.sleep_until(7, p(1), 10);
        assert!(s.is_queued(7));
        s.wake_due(10);
        assert!(s.is_queued(7));
    }

    #[test]
    fn next_deadline_is_earliest_sleeper() {
        let mut s = Scheduler::new(SLICE);
        s.sleep_until(1, p(10), 700);
        s.sleep_until(2, p(10), 300);
        s.sleep_until(3, p(10), 500);
        assert_eq!(s.next_deadline(None), Some(300));
        // Running alone at its level: no slice end.
        assert_eq!(s.next_deadline(Some(&run(9, 10, 0))), Some(300));
        s.wake_due(300);
        assert_eq!(s.next_deadline(None), Some(500));
    }

    #[test]
    fn next_deadline_includes_slice_end_with_a_peer() {
        let mut s = Scheduler::new(1_000);
        let r = run(9, 10, 100);
        s.make_ready(1, p(10));
        assert_eq!(s.next_deadline(Some(&r)), Some(1_100));
        assert_eq!(s.next_deadline(None), None, "no running task, no slice");
        s.sleep_until(2, p(10), 5_000);
        assert_eq!(s.next_deadline(Some(&r)), Some(1_100));
        s.sleep_until(3, p(10), 600);
        assert_eq!(s.next_deadline(Some(&r)), Some(600));
    }

    #[test]
    fn next_deadline_ignores_slice_without_peer() {
        let mut s = Scheduler::new(1_000);
        let r = run(9, 10, 100);
        s.make_ready(1, p(11));
        assert_eq!(
            s.next_deadline(Some(&r)),
            None,
            "lower priority never preempts by slice"
        );
        s.sleep_until(2, p(10), 5_000);
        assert_eq!(s.next_deadline(Some(&r)), Some(5_000));
    }

    #[test]
    fn next_deadline_with_expired_slice_is_in_the_past() {
        let mut s = Scheduler::new(1_000);
        let r = run(9, 10, 100);
        s.make_ready(1, p(10));
        assert_eq!(
            s.next_deadline(Some(&r)),
            Some(1_100),
            "slice end, already past at 5000"
        );
        assert!(s.should_preempt(&r, 5_000));
    }

    #[test]
    fn thousand_tasks_across_levels() {
        let mut s = Scheduler::new(SLICE);
        for id in 0..1000u32 {
            s.make_ready(id, p((id % 32) as u8));
        }
        assert_eq!(s.ready_len(), 1000);
        check_invariants(&s);
        let order = drain(&mut s);
        let mut expected: Vec<TaskId> = (0..1000).collect();
        expected.sort_by_key(|&id| (id % 32, id));
        assert_eq!(order, expected);
        assert_eq!(s.ready_len(), 0);
        check_invariants(&s);
    }

    #[test]
    fn thousand_sleepers_wake_in_order() {
        let mut s = Scheduler::new(SLICE);
        // Wake times out of order, with many ties.
        let wake = |id: u32| u64::from((id * 7919) % 100) * 1_000;
        for id in 0..1000u32 {
            s.sleep_until(id, p(5), wake(id));
        }
        assert_eq!(s.sleeping_len(), 1000);
        assert_eq!(s.next_deadline(None), Some(0));
        check_invariants(&s);
        let mut woken = 0;
        let mut order = Vec::new();
        for t in 0..100u64 {
            woken += s.wake_due(t * 1_000 + 999);
            order.extend(drain(&mut s));
        }
        assert_eq!(woken, 1000);
        let mut expected: Vec<TaskId> = (0..1000).collect();
        expected.sort_by_key(|&id| (wake(id), id));
        assert_eq!(order, expected);
        assert_eq!(s.sleeping_len(), 0);
        check_invariants(&s);
    }

    #[test]
    fn thousand_tasks_round_robin_is_fair() {
        let mut s = Scheduler::new(SLICE);
        for id in 0..1000u32 {
            s.make_ready(id, p(16));
        }
        let mut runs = [0u32; 1000];
        for _ in 0..10_000 {
            let id = s.pick_next().unwrap();
            runs[id as usize] += 1;
            s.make_ready(id, p(16));
        }
        assert!(runs.iter().all(|&n| n == 10));
    }

    #[test]
    fn thousand_removals() {
        let mut s = Scheduler::new(SLICE);
        for id in 0..1000u32 {
            if id % 2 == 0 {
                s.make_ready(id, p((id % 32) as u8));
            } else {
                s.sleep_until(id, p(0), u64::from(id));
            }
        }
        for id in (0..1000u32).filter(|id| id % 3 == 0) {
            assert!(s.remove(id));
        }
        check_invariants(&s);
        let remaining = (0..1000u32).filter(|id| id % 3 != 0);
        assert_eq!(s.ready_len() + s.sleeping_len(), remaining.clone().count());
        for id in remaining {
            assert!(s.is_queued(id));
        }
    }

    /// Random operations, checked against the invariants and a simple model
    /// of which tasks are queued.
    #[test]
    fn random_operations_keep_invariants() {
        let mut s = Scheduler::new(100);
        let mut queued = [false; 64];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as u32
        };
        let mut now = 0u64;
        for _ in 0..20_000 {
            let id = next() % 64;
            let prio = p((next() % 32) as u8);
            match next() % 6 {
                0 | 1 => {
                    s.make_ready(id, prio);
                    queued[id as usize] = true;
                }
                2 => {
                    s.make_ready_front(id, prio);
                    queued[id as usize] = true;
                }
                3 => {
                    s.sleep_until(id, prio, now + u64::from(next() % 1_000));
                    queued[id as usize] = true;
                }
                4 => {
                    assert_eq!(s.remove(id), queued[id as usize]);
                    queued[id as usize] = false;
                }
                _ => {
                    now += u64::from(next() % 200);
                    s.wake_due(now);
                    let best = s.best_ready();
                    if let Some(picked) = s.pick_next() {
                        assert!(queued[picked as usize]);
                        queued[picked as usize] = false;
                        assert!(best.is_some());
                    } else {
                        assert_eq!(best, None);
                    }
                }
            }
            check_invariants(&s);
            for (id, &q) in queued.iter().enumerate() {
                assert_eq!(s.is_queued(id as TaskId), q);
            }
            assert_eq!(s.next_deadline(None).is_some(), s.sleeping_len() > 0);
        }
    }
}
