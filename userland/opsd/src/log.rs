//! One stream of one job: the newest bytes kept, offsets counted from the
//! job's first byte, and when each chunk of them arrived.

use alloc::collections::VecDeque;

use aether_abi::job::LOG_CHUNK_MAX;
use heapless::Vec;

/// Arrival marks kept per stream, at most: beyond, the oldest go (the
/// oldest bytes' times become unknown rather than memory growing).
pub(crate) const MARKS_MAX: usize = 1024;

/// A job's stdout or stderr as opsd keeps it: `kept` holds the bytes at
/// `start..end` of the stream; everything before `start` was dropped (a
/// cap), but offsets go on counting.
///
/// Offsets are opsd's: a retry's attempt starts its own offsets at 0 on the
/// bridge (a fresh shim, fresh files), and `base` is where byte 0 of the
/// current attempt sits in opsd's stream, so a job's output reads as one
/// stream across its attempts.
#[derive(Debug, Default)]
pub(crate) struct StreamLog {
    kept: VecDeque<u8>,
    /// The offset of `kept[0]`.
    start: u64,
    /// Where the current attempt's byte 0 is.
    base: u64,
    /// The end a `LogResend` was asked for last (one per gap).
    pub(crate) asked_from: Option<u64>,
    /// `(offset, ts_ms)`: the bytes from `offset` on (to the next mark)
    /// arrived at `ts_ms`; one per appended chunk (chunks of the same
    /// millisecond share one), in offset order.
    marks: VecDeque<(u64, u64)>,
}

impl StreamLog {
    /// A stream that ended at `end` before this table was made (restored
    /// from the disk): nothing of it in memory, offsets going on from `end`.
    pub(crate) fn restored(end: u64) -> StreamLog {
        StreamLog {
            start: end,
            base: end,
            ..StreamLog::default()
        }
    }

    /// One past the last byte received.
    pub(crate) fn end(&self) -> u64 {
        self.start + self.kept.len() as u64
    }

    /// The offset of the oldest byte still kept.
    pub(crate) fn start(&self) -> u64 {
        self.start
    }

    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// Bytes held in memory.
    pub(crate) fn kept(&self) -> usize {
        self.kept.len()
    }

    /// The current end in the bridge's offsets (the current attempt's).
    pub(crate) fn attempt_end(&self) -> u64 {
        self.end() - self.base
    }

    /// A new attempt starts: its byte 0 goes at the current end.
    pub(crate) fn new_attempt(&mut self) {
        self.base = self.end();
        self.asked_from = None;
    }

    /// Appends at the end a chunk that arrived at `ts_ms`; then drops from
    /// the front beyond `cap` bytes. Returns the bytes dropped.
    pub(crate) fn append(&mut self, bytes: &[u8], cap: usize, ts_ms: u64) -> usize {
        if !bytes.is_empty() && self.marks.back().is_none_or(|&(_, t)| t != ts_ms) {
            if self.marks.len() == MARKS_MAX {
                self.marks.pop_front();
            }
            self.marks.push_back((self.end(), ts_ms));
        }
        // Only the newest `cap` bytes of `bytes` can stay: the rest is
        // dropped without being copied in.
        let skip = bytes.len().saturating_sub(cap);
        let mut dropped = 0;
        if skip > 0 {
            dropped = self.drop_front(usize::MAX) + skip;
            self.start += skip as u64;
        }
        let bytes = &bytes[skip..];
        let excess = (self.kept.len() + bytes.len()).saturating_sub(cap);
        dropped += self.drop_front(excess);
        self.kept.extend(bytes.iter().copied());
        dropped
    }

    /// Drops up to `n` of the oldest bytes kept; returns how many.
    pub(crate) fn drop_front(&mut self, n: usize) -> usize {
        let n = n.min(self.kept.len());
        self.kept.drain(..n);
        self.start += n as u64;
        // Marks of dropped bytes only (the one covering `start` stays).
        while self.marks.get(1).is_some_and(|&(at, _)| at <= self.start) {
            self.marks.pop_front();
        }
        if self.kept.is_empty() {
            // Give the memory back (a cap or a budget emptied it).
            self.kept = VecDeque::new();
        }
        n
    }

    /// The bytes kept from `offset` (at least `start`) to the end, as the
    /// two slices they are stored in.
    pub(crate) fn kept_from(&self, offset: u64) -> (&[u8], &[u8]) {
        // Clamped to `start..=end`: `at` is at most `kept.len()`.
        let at = (offset.clamp(self.start, self.end()) - self.start) as usize;
        let (a, b) = self.kept.as_slices();
        if at < a.len() {
            (&a[at..], b)
        } else {
            (&b[at - a.len()..], &[])
        }
    }

    /// When the byte at `offset` arrived, if known (its mark is kept).
    pub(crate) fn time_at(&self, offset: u64) -> Option<u64> {
        self.marks.iter().rev().find(|&&(at, _)| at <= offset).map(|&(_, t)| t)
    }

    /// Up to `max` bytes (at most [`LOG_CHUNK_MAX`]) from `offset`: a read
    /// below `start` begins at `start`, one beyond the end at the end.
    /// Returns where the bytes begin.
    pub(crate) fn read(&self, offset: u64, max: usize) -> (u64, Vec<u8, LOG_CHUNK_MAX>) {
        let from = offset.clamp(self.start, self.end());
        // `from - start` is at most `kept.len()`, a usize.
        let at = (from - self.start) as usize;
        let n = max.min(LOG_CHUNK_MAX).min(self.kept.len() - at);
        let mut bytes = Vec::new();
        for &b in self.kept.range(at..at + n) {
            // n <= LOG_CHUNK_MAX: never full.
            let _ = bytes.push(b);
        }
        (from, bytes)
    }
}
