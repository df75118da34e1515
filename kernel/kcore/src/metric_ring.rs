//! The kernel's buffer of emitted metric points (`METRIC`, docs/abi.md,
//! "Metrics"): one byte ring, bounded in bytes, of whole drain records
//! ([`DrainHeader`] + the point's postcard bytes as the emitter encoded
//! them), oldest first, waiting for opsd's drain.
//!
//! An emit is all or nothing: every point of the batch is decoded and
//! checked ([`MetricPoint::check`]) in one pass that writes the records
//! after the ring's end as it goes; the first bad point, or a batch that
//! does not fit, takes the ring's end back where it was. Points refused
//! because the ring was full are counted for the next drain. No allocation
//! per point: the ring's bytes are allocated once, at the first emit.

use aether_abi::metric::{DrainHeader, EMIT_BYTES_MAX, EMIT_POINTS_MAX, MetricError, MetricPoint};
use alloc::vec::Vec;

/// Why an emit kept nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitError {
    /// No bytes, more than [`EMIT_BYTES_MAX`] bytes or more than
    /// [`EMIT_POINTS_MAX`] points.
    Size,
    /// Point `index` does not decode.
    BadFrame { index: usize },
    /// Point `index` fails a check.
    Point { index: usize, error: MetricError },
    /// The batch (`points` points, all valid) does not fit: counted as
    /// dropped.
    Full { points: usize },
    /// The ring's memory could not be allocated.
    NoMemory,
}

pub struct MetricRing {
    /// Empty until the first emit, then `cap` bytes.
    buf: Vec<u8>,
    cap: usize,
    /// Where the oldest record starts.
    head: usize,
    /// Bytes of whole records from `head` (wrapping).
    used: usize,
    /// Records held.
    records: usize,
    /// Points refused for want of room since the last drain.
    dropped: u64,
}

impl MetricRing {
    /// A ring of `cap` bytes (allocated at the first emit).
    pub const fn new(cap: usize) -> MetricRing {
        MetricRing {
            buf: Vec::new(),
            cap,
            head: 0,
            used: 0,
            records: 0,
            dropped: 0,
        }
    }

    /// Bytes of the records waiting.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Records (points) waiting.
    pub fn len(&self) -> usize {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Points refused since the last drain.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn allocate(&mut self) -> Result<(), EmitError> {
        if self.buf.len() == self.cap {
            return Ok(());
        }
        self.buf.try_reserve_exact(self.cap).map_err(|_| EmitError::NoMemory)?;
        self.buf.resize(self.cap, 0);
        Ok(())
    }

    /// Copies `bytes` into the ring at `offset` bytes after the oldest
    /// record (wrapping); the caller checked that they fit.
    fn put(&mut self, offset: usize, bytes: &[u8]) {
        let at = (self.head + offset) % self.cap;
        let first = bytes.len().min(self.cap - at);
        self.buf[at..at + first].copy_from_slice(&bytes[..first]);
        self.buf[..bytes.len() - first].copy_from_slice(&bytes[first..]);
    }

    /// Copies ring bytes from `offset` after the oldest record into `out`.
    fn get(&self, offset: usize, out: &mut [u8]) {
        let at = (self.head + offset) % self.cap;
        let first = out.len().min(self.cap - at);
        let n = out.len();
        out[..first].copy_from_slice(&self.buf[at..at + first]);
        out[first..].copy_from_slice(&self.buf[..n - first]);
    }

    /// Takes a batch of postcard-encoded points (`aether_abi::metric`'s
    /// `metric_emit`), stamped with `pid`, `group` and `mono_ns`: the
    /// number of points, or why nothing was kept.
    pub fn emit(&mut self, batch: &[u8], pid: u32, group: u32, mono_ns: u64) -> Result<usize, EmitError> {
        if batch.is_empty() || batch.len() > EMIT_BYTES_MAX {
            return Err(EmitError::Size);
        }
        self.allocate()?;
        let mut end = self.used;
        let mut rest = batch;
        let mut n = 0;
        let mut fits = true;
        // Nothing before `self.used` changes, and `used`/`records` move only
        // at the end: an error simply leaves them.
        while !rest.is_empty() {
            if n == EMIT_POINTS_MAX {
                return Err(EmitError::Size);
            }
            let (point, tail) =
                postcard::take_from_bytes::<MetricPoint>(rest).map_err(|_| EmitError::BadFrame { index: n })?;
            point.check().map_err(|error| EmitError::Point { index: n, error })?;
            let encoded = &rest[..rest.len() - tail.len()];
            let record = DrainHeader::LEN + encoded.len();
            // A point is at most POINT_POSTCARD_MAX (about 1 KiB) bytes.
            let len = u16::try_from(encoded.len()).map_err(|_| EmitError::Size)?;
            if fits && self.cap - end >= record {
                let mut header = [0u8; DrainHeader::LEN];
                DrainHeader {
                    pid,
                    group,
                    mono_ns,
                    len,
                }
                .write(&mut header);
                self.put(end, &header);
                self.put(end + DrainHeader::LEN, encoded);
                end += record;
            } else {
                fits = false;
            }
            rest = tail;
            n += 1;
        }
        if !fits {
            self.dropped += n as u64;
            return Err(EmitError::Full { points: n });
        }
        self.used = end;
        self.records += n;
        Ok(n)
    }

    /// Moves the oldest whole records that fit in `cap` bytes to `out`;
    /// returns the points refused since the last drain (and counts from 0
    /// again).
    pub fn drain(&mut self, out: &mut Vec<u8>, cap: usize) -> u64 {
        let mut taken = 0;
        while self.used - taken >= DrainHeader::LEN {
            let mut h = [0u8; DrainHeader::LEN];
            self.get(taken, &mut h);
            let Some(header) = DrainHeader::read(&h) else { break };
            let record = DrainHeader::LEN + header.len as usize;
            if out.len() + record > cap || record > self.used - taken {
                break;
            }
            let start = out.len();
            out.resize(start + record, 0);
            self.get(taken, &mut out[start..]);
            taken += record;
            self.records -= 1;
        }
        if taken > 0 {
            self.head = (self.head + taken) % self.cap;
            self.used -= taken;
        }
        if self.used == 0 {
            self.head = 0;
        }
        core::mem::take(&mut self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_abi::metric::{MetricKind, drained, emit_fault, encode_batch, parse_emit_fault};
    use alloc::vec;

    fn point(name: &str, kind: MetricKind, value: f64) -> MetricPoint {
        MetricPoint::new(name, kind, value).unwrap()
    }

    fn batch(points: &[MetricPoint]) -> Vec<u8> {
        let mut buf = vec![0u8; EMIT_BYTES_MAX];
        let n = encode_batch(points, &mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    fn drain_all(r: &mut MetricRing) -> (Vec<(DrainHeader, MetricPoint)>, u64) {
        let mut out = Vec::new();
        let dropped = r.drain(&mut out, usize::MAX);
        (drained(&out).collect(), dropped)
    }

    #[test]
    fn an_emitted_batch_drains_stamped_and_in_order() {
        let mut r = MetricRing::new(4096);
        let pts = [
            point("loss", MetricKind::Gauge, 0.5),
            point("seen", MetricKind::Counter, 3.0),
        ];
        assert_eq!(r.emit(&batch(&pts), 7, 5, 1000), Ok(2));
        assert_eq!(r.emit(&batch(&pts[..1]), 8, 8, 2000), Ok(1));
        assert_eq!(r.len(), 3);
        let (got, dropped) = drain_all(&mut r);
        assert_eq!(dropped, 0);
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].0.pid, got[0].0.group, got[0].0.mono_ns), (7, 5, 1000));
        assert_eq!(got[1].1, pts[1]);
        assert_eq!((got[2].0.pid, got[2].0.mono_ns), (8, 2000));
        assert!(r.is_empty() && r.used() == 0);
    }

    #[test]
    fn a_bad_point_keeps_nothing_of_its_batch() {
        let mut r = MetricRing::new(4096);
        let pts = [
            point("a", MetricKind::Gauge, 1.0),
            point("b", MetricKind::Gauge, 2.0),
            point("c", MetricKind::Counter, f64::NAN),
        ];
        let err = r.emit(&batch(&pts), 1, 1, 0);
        assert_eq!(
            err,
            Err(EmitError::Point {
                index: 2,
                error: MetricError::NanInCounter
            })
        );
        assert_eq!(
            parse_emit_fault(emit_fault(2, MetricError::NanInCounter)),
            Some((2, MetricError::NanInCounter))
        );
        assert!(r.is_empty() && r.used() == 0);
        // Garbage after a good point: BadFrame at 1, nothing kept.
        let mut bytes = batch(&pts[..1]);
        bytes.extend_from_slice(&[0xff; 8]);
        assert_eq!(r.emit(&bytes, 1, 1, 0), Err(EmitError::BadFrame { index: 1 }));
        assert_eq!(r.emit(&[], 1, 1, 0), Err(EmitError::Size));
        assert_eq!(r.emit(&vec![0u8; EMIT_BYTES_MAX + 1], 1, 1, 0), Err(EmitError::Size));
        assert!(r.is_empty());
        assert_eq!(drain_all(&mut r), (Vec::new(), 0));
    }

    #[test]
    fn a_full_ring_refuses_whole_batches_and_counts_them() {
        let p = point("loss", MetricKind::Gauge, 0.5);
        let one = batch(core::slice::from_ref(&p));
        let record = DrainHeader::LEN + one.len();
        // Room for exactly 3 records.
        let mut r = MetricRing::new(record * 3 + record / 2);
        assert_eq!(r.emit(&one, 1, 1, 0), Ok(1));
        let two = batch(&[p.clone(), p.clone()]);
        assert_eq!(r.emit(&two, 1, 1, 0), Ok(2));
        assert_eq!(r.emit(&one, 1, 1, 0), Err(EmitError::Full { points: 1 }));
        assert_eq!(r.emit(&two, 1, 1, 0), Err(EmitError::Full { points: 2 }));
        assert_eq!(r.len(), 3);
        let (got, dropped) = drain_all(&mut r);
        assert_eq!((got.len(), dropped), (3, 3));
        // Reset by the drain.
        assert_eq!(drain_all(&mut r), (Vec::new(), 0));
    }

    #[test]
    fn a_drain_takes_whole_records_that_fit() {
        let p = point("loss", MetricKind::Gauge, 0.5);
        let one = batch(core::slice::from_ref(&p));
        let record = DrainHeader::LEN + one.len();
        let mut r = MetricRing::new(1 << 16);
        for _ in 0..5 {
            r.emit(&one, 1, 1, 0).unwrap();
        }
        let mut out = Vec::new();
        r.drain(&mut out, record - 1);
        assert!(out.is_empty());
        r.drain(&mut out, record * 2 + 1);
        assert_eq!(out.len(), record * 2);
        assert_eq!(r.len(), 3);
        assert_eq!(drained(&out).count(), 2);
    }

    /// Records wrap around the ring's end many times; what comes out is
    /// what went in, in order, and the ring never holds more than its size.
    #[test]
    fn records_survive_wrapping_against_a_model() {
        let mut rng = crate::testing::splitmix(42);
        let mut r = MetricRing::new(1000);
        let mut model = alloc::collections::VecDeque::new();
        let mut seq = 0u64;
        let mut model_dropped = 0;
        for _ in 0..20_000 {
            if rng() % 3 == 0 {
                let cap = (rng() % 400) as usize;
                let mut out = Vec::new();
                let dropped = r.drain(&mut out, cap);
                assert_eq!(dropped, core::mem::take(&mut model_dropped));
                assert!(out.len() <= cap);
                for (h, p) in drained(&out) {
                    let (want_seq, want_name): (u64, alloc::string::String) = model.pop_front().unwrap();
                    assert_eq!(h.mono_ns, want_seq);
                    assert_eq!(p.name.as_str(), want_name);
                }
            } else {
                let n = 1 + (rng() % 4) as usize;
                let pts: Vec<MetricPoint> = (0..n)
                    .map(|i| {
                        let name = alloc::format!("m{}", "x".repeat((rng() % 40) as usize + i));
                        point(&name, MetricKind::Gauge, 1.0)
                    })
                    .collect();
                seq += 1;
                match r.emit(&batch(&pts), 1, 2, seq) {
                    Ok(k) => {
                        assert_eq!(k, n);
                        for p in &pts {
                            model.push_back((seq, alloc::string::String::from(p.name.as_str())));
                        }
                    }
                    Err(EmitError::Full { points }) => {
                        assert_eq!(points, n);
                        model_dropped += n as u64;
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
            assert_eq!(r.len(), model.len());
            assert!(r.used() <= 1000);
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = crate::testing::splitmix(7);
        let mut r = MetricRing::new(1 << 12);
        for _ in 0..5000 {
            let len = 1 + (rng() % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng() as u8).collect();
            let _ = r.emit(&bytes, 1, 1, 0);
        }
        let mut out = Vec::new();
        r.drain(&mut out, usize::MAX);
        // Whatever was accepted reads back whole.
        let walked: usize = drained(&out).map(|(h, _)| DrainHeader::LEN + h.len as usize).sum();
        assert_eq!(walked, out.len());
    }
}
