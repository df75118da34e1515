//! A series' history: the newest points at full resolution and an older,
//! downsampled tier, both of bounded size.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::ops::RangeBounds;

/// Points kept at full resolution: the newest ones.
pub const RECENT_MAX: usize = 1024;
/// Points kept of everything older.
pub const OLDER_MAX: usize = 1024;

/// One kept point (32 bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub value: f64,
    pub step: Option<u64>,
    pub ts_ms: u64,
}

/// The history of one series, in arrival order (oldest first).
///
/// `recent` holds the newest [`RECENT_MAX`] points. A point pushed out of
/// it is numbered (0, 1, 2, ... in the order they leave) and goes to
/// `older` when its number is a multiple of `stride`; when `older` is full
/// ([`OLDER_MAX`]) every other point of it goes and `stride` doubles. So
/// `older` always holds the retired points numbered 0, `stride`,
/// 2 x `stride`, ...: evenly spaced over everything before `recent` (at
/// most `2 x stride - 1` retired points between two kept ones, with
/// `stride` about `retired / OLDER_MAX` rounded up to a power of two), and
/// the very first point is kept for good.
///
/// Memory: at most `(RECENT_MAX + OLDER_MAX) x 32` bytes = 64 KiB, whatever
/// the number of points; buffers grow by doubling up to their bound, so a
/// short series holds little.
#[derive(Clone, Debug)]
pub struct History {
    recent: VecDeque<Sample>,
    older: Vec<Sample>,
    /// Power of two: the spacing of `older`, in retired points.
    stride: u64,
    /// Points that have left `recent`.
    retired: u64,
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

impl History {
    pub const fn new() -> Self {
        History {
            recent: VecDeque::new(),
            older: Vec::new(),
            stride: 1,
            retired: 0,
        }
    }

    pub(crate) fn push(&mut self, sample: Sample) {
        if self.recent.len() == RECENT_MAX
            && let Some(oldest) = self.recent.pop_front()
        {
            self.retire(oldest);
        }
        if self.recent.len() == self.recent.capacity() {
            self.recent
                .reserve_exact(grown(self.recent.capacity(), RECENT_MAX).saturating_sub(self.recent.len()));
        }
        self.recent.push_back(sample);
    }

    fn retire(&mut self, sample: Sample) {
        let number = self.retired;
        self.retired = self.retired.saturating_add(1);
        if !number.is_multiple_of(self.stride) {
            return;
        }
        if self.older.len() == OLDER_MAX {
            // Keep positions 0, 2, 4, ...: the numbers that are multiples of
            // the doubled stride (`number`, OLDER_MAX x stride, is one).
            let mut position = 0usize;
            self.older.retain(|_| {
                let keep = position.is_multiple_of(2);
                position += 1;
                keep
            });
            self.stride = self.stride.saturating_mul(2);
        }
        if self.older.len() == self.older.capacity() {
            self.older
                .reserve_exact(grown(self.older.capacity(), OLDER_MAX).saturating_sub(self.older.len()));
        }
        self.older.push(sample);
    }

    /// Points kept (at most `RECENT_MAX + OLDER_MAX`).
    pub fn len(&self) -> usize {
        self.older.len() + self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }

    /// The kept points at full resolution (the newest).
    pub fn recent(&self) -> impl DoubleEndedIterator<Item = &Sample> + '_ {
        self.recent.iter()
    }

    /// The kept points of the downsampled tier (the oldest).
    pub fn older(&self) -> impl DoubleEndedIterator<Item = &Sample> + '_ {
        self.older.iter()
    }

    /// The spacing of the downsampled tier: it keeps one retired point in
    /// `stride`.
    pub fn stride(&self) -> u64 {
        self.stride
    }

    /// Every kept point, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Sample> + '_ {
        self.older.iter().chain(self.recent.iter())
    }

    /// The kept points whose step is in `steps` (points without a step are
    /// not), in arrival order.
    pub fn by_step<'a, R: RangeBounds<u64> + 'a>(&'a self, steps: R) -> impl Iterator<Item = &'a Sample> + 'a {
        self.iter()
            .filter(move |s| s.step.is_some_and(|step| steps.contains(&step)))
    }

    /// The kept points whose `ts_ms` is in `times`, in arrival order.
    pub fn by_time<'a, R: RangeBounds<u64> + 'a>(&'a self, times: R) -> impl Iterator<Item = &'a Sample> + 'a {
        self.iter().filter(move |s| times.contains(&s.ts_ms))
    }

    /// Bytes of the buffers (their capacities).
    pub fn heap_bytes(&self) -> usize {
        (self.recent.capacity() + self.older.capacity()) * size_of::<Sample>()
    }

    /// The buffers' capacities `(recent, older)`.
    pub fn capacities(&self) -> (usize, usize) {
        (self.recent.capacity(), self.older.capacity())
    }
}

/// The capacity a full buffer grows to: double (16 at least), at most `max`.
fn grown(capacity: usize, max: usize) -> usize {
    capacity.saturating_mul(2).clamp(16, max)
}
