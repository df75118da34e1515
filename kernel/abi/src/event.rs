//! The event bus (docs/telemetry.md, "Events"): structured events that
//! the kernel keeps in one bounded ring, numbered from 1, and every
//! subscriber reads from where it is.
//!
//! # The `EVENT` call (kernel-served)
//!
//! * `event_publish(ptr, len, 0) -> id`: one postcard-encoded
//!   [`EventBody`] (the `JOB` server only: opsd publishes job state
//!   changes and alerts; the kernel itself publishes watchdog firings and
//!   faults). The kernel gives it the next id and the monotonic time.
//! * `event_read(ptr, cap, EVENT_READ, after, deadline_ns) -> len`, `rdx`
//!   = the oldest id still kept: the events with ids above `after`, oldest
//!   first, as [`RecordHeader`] + body, whole records only; waits until
//!   there is one or the deadline passes (0: do not wait; then `len` 0).
//!   Anyone may read. A reader that finds the oldest kept id above
//!   `after + 1` has missed `oldest - after - 1` events: the ring is
//!   bounded ([`RING_EVENTS`]) and a slow reader loses the oldest, never
//!   the publisher's call.

use core::fmt;

use heapless::{String, Vec};
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

/// `event_read`'s third argument.
pub const EVENT_READ: u64 = 1;
/// Events the kernel keeps.
pub const RING_EVENTS: usize = 4096;
/// Labels and fields per event, at most.
pub const LABELS_MAX: usize = 12;
pub const FIELDS_MAX: usize = 8;
pub const KEY_MAX: usize = 32;
pub const VALUE_MAX: usize = 128;
pub const SOURCE_MAX: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, MaxSize)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn from_name(name: &str) -> Option<Severity> {
        [Severity::Info, Severity::Warning, Severity::Critical]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, MaxSize)]
pub enum EventKind {
    /// A job changed state (labels `from`, `to`).
    Job,
    /// A watchdog fired on a process.
    Watchdog,
    /// A process faulted.
    Fault,
    /// An alert rule fired (label `state=firing`) or cleared
    /// (`state=resolved`).
    Alert,
    /// A metric point was refused by the registry (a counter going down, a
    /// name changing kind), once per series and error.
    Metric,
}

impl EventKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Job => "job",
            EventKind::Watchdog => "watchdog",
            EventKind::Fault => "fault",
            EventKind::Alert => "alert",
            EventKind::Metric => "metric",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A label or a field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, MaxSize)]
pub struct Pair {
    pub key: String<KEY_MAX>,
    pub value: String<VALUE_MAX>,
}

/// What a publisher says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, MaxSize)]
pub struct EventBody {
    pub kind: EventKind,
    pub severity: Severity,
    /// 0: no job.
    pub job_id: u64,
    /// Who noticed (`opsd`, `rules`, `kernel`).
    pub source: String<SOURCE_MAX>,
    /// What identifies it (an alert's labels: `alertname`, `metric`, ...).
    pub labels: Vec<Pair, LABELS_MAX>,
    /// What it says (`value`, `summary`, `message`).
    pub fields: Vec<Pair, FIELDS_MAX>,
}

impl EventBody {
    pub fn new(kind: EventKind, severity: Severity, job_id: u64, source: &str) -> Self {
        EventBody {
            kind,
            severity,
            job_id,
            source: truncated(source),
            labels: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// Adds a label (cut to the bounds; beyond [`LABELS_MAX`] dropped).
    pub fn label(mut self, key: &str, value: &str) -> Self {
        let _ = self.labels.push(Pair {
            key: truncated(key),
            value: truncated(value),
        });
        self
    }

    /// Adds a field (as [`EventBody::label`]).
    pub fn field(mut self, key: &str, value: &str) -> Self {
        let _ = self.fields.push(Pair {
            key: truncated(key),
            value: truncated(value),
        });
        self
    }

    pub fn get_label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|p| p.key == key).map(|p| p.value.as_str())
    }

    pub fn get_field(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|p| p.key == key).map(|p| p.value.as_str())
    }
}

/// `s` cut at a character boundary to fit `N` bytes.
pub fn truncated<const N: usize>(s: &str) -> String<N> {
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    String::try_from(&s[..end]).unwrap_or_default()
}

/// The most bytes of an encoded body.
pub const BODY_POSTCARD_MAX: usize = EventBody::POSTCARD_MAX_SIZE;

/// An event as read: its number and time, and the body.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: u64,
    /// Monotonic ns at publication.
    pub ts_ns: u64,
    pub body: EventBody,
}

/// What precedes each body in an `event_read` buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub id: u64,
    pub ts_ns: u64,
    pub len: u16,
}

impl RecordHeader {
    pub const LEN: usize = 18;

    pub fn write(&self, out: &mut [u8; Self::LEN]) {
        out[0..8].copy_from_slice(&self.id.to_le_bytes());
        out[8..16].copy_from_slice(&self.ts_ns.to_le_bytes());
        out[16..18].copy_from_slice(&self.len.to_le_bytes());
    }

    pub fn read(bytes: &[u8]) -> Option<RecordHeader> {
        let b = bytes.get(..Self::LEN)?;
        let mut id = [0u8; 8];
        let mut ts = [0u8; 8];
        id.copy_from_slice(&b[0..8]);
        ts.copy_from_slice(&b[8..16]);
        Some(RecordHeader {
            id: u64::from_le_bytes(id),
            ts_ns: u64::from_le_bytes(ts),
            len: u16::from_le_bytes([b[16], b[17]]),
        })
    }
}

/// The events of an `event_read` buffer; a record that does not decode
/// ends the walk.
pub fn records(bytes: &[u8]) -> impl Iterator<Item = Event> + '_ {
    let mut rest = bytes;
    core::iter::from_fn(move || {
        let h = RecordHeader::read(rest)?;
        let end = RecordHeader::LEN + h.len as usize;
        let body = postcard::from_bytes(rest.get(RecordHeader::LEN..end)?).ok()?;
        rest = &rest[end..];
        Some(Event {
            id: h.id,
            ts_ns: h.ts_ns,
            body,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_stop_at_damage() {
        let body = EventBody::new(EventKind::Alert, Severity::Warning, 7, "rules")
            .label("alertname", "val_best")
            .field("value", "0.25");
        let mut enc = [0u8; BODY_POSTCARD_MAX];
        let n = postcard::to_slice(&body, &mut enc).unwrap().len();
        let mut buf = alloc::vec::Vec::new();
        for id in [3u64, 4] {
            let mut h = [0u8; RecordHeader::LEN];
            RecordHeader {
                id,
                ts_ns: id * 10,
                len: n as u16,
            }
            .write(&mut h);
            buf.extend_from_slice(&h);
            buf.extend_from_slice(&enc[..n]);
        }
        let got: alloc::vec::Vec<Event> = records(&buf).collect();
        assert_eq!(got.len(), 2);
        assert_eq!((got[1].id, got[1].ts_ns), (4, 40));
        assert_eq!(got[0].body.get_label("alertname"), Some("val_best"));
        assert_eq!(got[0].body.get_field("value"), Some("0.25"));
        // A cut record ends the walk; nothing panics.
        assert_eq!(records(&buf[..buf.len() - 1]).count(), 1);
        assert_eq!(records(&buf[..5]).count(), 0);
    }

    #[test]
    fn labels_are_cut_to_their_bounds_at_char_boundaries() {
        let long = "é".repeat(100);
        let body = EventBody::new(EventKind::Job, Severity::Info, 1, &long).label(&long, &long);
        assert!(body.source.len() <= SOURCE_MAX && body.source.chars().all(|c| c == 'é'));
        assert!(body.labels[0].key.len() <= KEY_MAX);
        assert!(body.labels[0].value.len() <= VALUE_MAX);
    }
}
