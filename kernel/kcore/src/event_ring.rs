//! The event bus's ring (`EVENT`, docs/abi.md, "Events"): the last
//! [`RING_EVENTS`] events (and at most [`RING_BYTES`] of their bodies),
//! numbered from 1 without gaps, each with its publication time. Readers
//! keep their own position (the last id they read); the oldest events
//! make room for new ones, so a slow reader misses some, never a
//! publisher's call.

use aether_abi::event::{BODY_POSTCARD_MAX, EventBody, RING_EVENTS, RecordHeader};
use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// Bytes of bodies kept at most (with [`RING_EVENTS`], whichever binds
/// first): 4096 events of the largest body would be 14 MiB of kernel heap.
pub const RING_BYTES: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventError {
    /// Longer than [`BODY_POSTCARD_MAX`].
    TooLarge,
    /// Not exactly one postcard [`EventBody`].
    BadFrame,
    /// The first event to read does not fit the reader's buffer.
    TooSmall,
    NoMemory,
}

/// `bytes` in a new vector (an error, not a panic, when memory is short).
fn copied(bytes: &[u8]) -> Result<Vec<u8>, EventError> {
    let mut v = Vec::new();
    v.try_reserve_exact(bytes.len()).map_err(|_| EventError::NoMemory)?;
    v.extend_from_slice(bytes);
    Ok(v)
}

struct Stored {
    id: u64,
    ts_ns: u64,
    body: Vec<u8>,
}

pub struct EventRing {
    events: VecDeque<Stored>,
    /// Bytes of the bodies in `events`.
    bytes: usize,
    next_id: u64,
    max_events: usize,
    max_bytes: usize,
}

impl Default for EventRing {
    fn default() -> Self {
        EventRing::new(RING_EVENTS, RING_BYTES)
    }
}

impl EventRing {
    pub const fn new(max_events: usize, max_bytes: usize) -> EventRing {
        EventRing {
            events: VecDeque::new(),
            bytes: 0,
            next_id: 1,
            max_events,
            max_bytes,
        }
    }

    /// The id of the newest event (0: none yet).
    pub fn latest(&self) -> u64 {
        self.next_id - 1
    }

    /// The oldest id still kept (the next id to be given when none is).
    pub fn oldest(&self) -> u64 {
        self.events.front().map_or(self.next_id, |e| e.id)
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Publishes an encoded body (checked: at most [`BODY_POSTCARD_MAX`]
    /// bytes that decode as exactly one [`EventBody`]); its id.
    pub fn publish(&mut self, body: &[u8], ts_ns: u64) -> Result<u64, EventError> {
        if body.len() > BODY_POSTCARD_MAX {
            return Err(EventError::TooLarge);
        }
        aether_abi::syscall::decode::<EventBody>(body).map_err(|_| EventError::BadFrame)?;
        self.push(copied(body)?, ts_ns)
    }

    /// Publishes a body the caller made (the kernel's own events); its id.
    pub fn publish_body(&mut self, body: &EventBody, ts_ns: u64) -> Result<u64, EventError> {
        let mut buf = [0u8; BODY_POSTCARD_MAX];
        let n = postcard::to_slice(body, &mut buf)
            .map_err(|_| EventError::TooLarge)?
            .len();
        self.push(copied(&buf[..n])?, ts_ns)
    }

    fn push(&mut self, body: Vec<u8>, ts_ns: u64) -> Result<u64, EventError> {
        self.events.try_reserve(1).map_err(|_| EventError::NoMemory)?;
        while !self.events.is_empty()
            && (self.events.len() >= self.max_events || self.bytes + body.len() > self.max_bytes)
        {
            if let Some(old) = self.events.pop_front() {
                self.bytes -= old.body.len();
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.bytes += body.len();
        self.events.push_back(Stored { id, ts_ns, body });
        Ok(id)
    }

    /// Writes the events with ids above `after`, oldest first, as
    /// [`RecordHeader`] + body, while whole records fit in `cap` bytes.
    /// `TooSmall` when there is one and it alone does not fit.
    pub fn read(&self, after: u64, out: &mut Vec<u8>, cap: usize) -> Result<(), EventError> {
        let Some(first) = after.checked_add(1) else {
            return Ok(());
        };
        // Ids are consecutive: the first to read is at `first - oldest`.
        let skip = first.saturating_sub(self.oldest());
        let Ok(skip) = usize::try_from(skip) else {
            return Ok(());
        };
        for (i, e) in self.events.iter().skip(skip).enumerate() {
            let record = RecordHeader::LEN + e.body.len();
            if out.len() + record > cap {
                return if i == 0 { Err(EventError::TooSmall) } else { Ok(()) };
            }
            let mut h = [0u8; RecordHeader::LEN];
            RecordHeader {
                id: e.id,
                ts_ns: e.ts_ns,
                len: e.body.len() as u16,
            }
            .write(&mut h);
            out.try_reserve(record).map_err(|_| EventError::NoMemory)?;
            out.extend_from_slice(&h);
            out.extend_from_slice(&e.body);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_abi::event::{EventKind, Severity, records};

    fn body(n: u64) -> EventBody {
        EventBody::new(EventKind::Fault, Severity::Warning, 0, "kernel")
            .label("pid", &alloc::format!("{n}"))
            .field("message", "page fault")
    }

    fn read_all(r: &EventRing, after: u64) -> Vec<aether_abi::event::Event> {
        let mut out = Vec::new();
        r.read(after, &mut out, usize::MAX).unwrap();
        records(&out).collect()
    }

    #[test]
    fn ids_count_from_one_and_reads_start_after_the_given_id() {
        let mut r = EventRing::default();
        assert_eq!((r.latest(), r.oldest()), (0, 1));
        for n in 1..=5 {
            assert_eq!(r.publish_body(&body(n), n * 10), Ok(n));
        }
        let got = read_all(&r, 2);
        assert_eq!(got.iter().map(|e| e.id).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(got[0].ts_ns, 30);
        assert_eq!(got[0].body, body(3));
        assert!(read_all(&r, 5).is_empty());
        assert!(read_all(&r, u64::MAX).is_empty());
        assert_eq!(read_all(&r, 0).len(), 5);
    }

    #[test]
    fn the_oldest_events_make_room_and_readers_see_the_gap() {
        let mut r = EventRing::new(4, RING_BYTES);
        for n in 1..=10 {
            r.publish_body(&body(n), 0).unwrap();
        }
        assert_eq!((r.len(), r.oldest(), r.latest()), (4, 7, 10));
        // A reader at 2 missed oldest - after - 1 = 4 events.
        assert_eq!(read_all(&r, 2).first().map(|e| e.id), Some(7));
        // By bytes too.
        let mut enc = [0u8; BODY_POSTCARD_MAX];
        let len = postcard::to_slice(&body(1), &mut enc).unwrap().len();
        let mut r = EventRing::new(100, len * 3);
        for n in 1..=10 {
            r.publish_body(&body(1), n).unwrap();
        }
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn a_read_takes_whole_records_and_too_small_only_for_the_first() {
        let mut r = EventRing::default();
        for n in 1..=3 {
            r.publish_body(&body(n), 0).unwrap();
        }
        let mut out = Vec::new();
        r.read(0, &mut out, 1).unwrap_err();
        assert_eq!(r.read(0, &mut out, 10), Err(EventError::TooSmall));
        let mut one = Vec::new();
        r.read(0, &mut one, usize::MAX).unwrap();
        let record = one.len() / 3;
        let mut out = Vec::new();
        r.read(0, &mut out, record * 2 + 5).unwrap();
        assert_eq!(out.len(), record * 2);
        // Nothing to read is never too small.
        let mut out = Vec::new();
        assert_eq!(r.read(3, &mut out, 0), Ok(()));
    }

    #[test]
    fn bodies_are_checked() {
        let mut r = EventRing::default();
        assert_eq!(r.publish(&[0xff; 16], 0), Err(EventError::BadFrame));
        assert_eq!(r.publish(&[], 0), Err(EventError::BadFrame));
        assert_eq!(
            r.publish(&alloc::vec![0; BODY_POSTCARD_MAX + 1], 0),
            Err(EventError::TooLarge)
        );
        let mut enc = [0u8; BODY_POSTCARD_MAX + 1];
        let n = postcard::to_slice(&body(1), &mut enc).unwrap().len();
        // Trailing bytes.
        assert_eq!(r.publish(&enc[..n + 1], 0), Err(EventError::BadFrame));
        assert_eq!(r.publish(&enc[..n], 0), Ok(1));
        assert!(r.latest() == 1 && r.len() == 1);
    }
}
