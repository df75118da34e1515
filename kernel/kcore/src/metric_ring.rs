//! The kernel's buffer of emitted metric points (`METRIC`, docs/abi.md,
//! "Metrics"): one byte ring, bounded in bytes, of whole drain records
//! ([`DrainHeader`] + the point's postcard bytes as the emitter encoded
//! them), oldest first, waiting for opsd's drain.
//!
//! An emit is all or nothing: every point of the batch is decoded and
//! checked (as `MetricPoint::check` does) in one pass that writes the records
//! after the ring's end as it goes; the first bad point, or a batch that
//! does not fit, takes the ring's end back where it was. Points refused
//! because the ring was full are counted for the next drain. No allocation
//! per point: the ring's bytes are reserved once, at the first emit.

use aether_abi::metric::{
    BUCKETS_MAX, DrainHeader, EMIT_BYTES_MAX, EMIT_POINTS_MAX, MetricError, MetricKind, NAME_MAX, TAG_KEY_MAX,
    TAG_VALUE_MAX, TAGS_MAX, check_name, check_point, check_value,
};
use alloc::vec::Vec;

/// A [`MetricPoint`](aether_abi::metric::MetricPoint) as it travels, read
/// in place: names and tags borrowed from the batch instead of copied
/// into a 1.3 KiB struct, by a reader of exactly its postcard encoding
/// (postcard wire format v1: varint lengths and enum tags, `Option` as a
/// 0/1 byte, `f64` as 8 bytes little endian). Under TCG, serde's
/// generic decoding was most of an emit's cost. What `MetricPoint`'s types
/// bound (string lengths, tag and bucket counts, UTF-8) is refused here
/// too; a test holds both decodings equal on random and damaged points.
struct PointRef<'a> {
    name: &'a str,
    kind: MetricKind,
    value: f64,
    /// The tags' bytes (checked: `tag_count` pairs of bounded UTF-8
    /// strings), read again only by [`PointRef::check`] of a tagged point.
    tags: &'a [u8],
    tag_count: usize,
    /// The bounds, 8 bytes each.
    buckets: &'a [u8],
}

/// The bytes not read yet.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// A varint of at most `max` bytes whose last byte is at most `last`
    /// (postcard's bounds: 10 and 0x01 for u64, 5 and 0x0f for u32).
    fn varint(&mut self, max: usize, last: u8) -> Option<u64> {
        let mut out = 0u64;
        for i in 0..max {
            let b = self.byte()?;
            out |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return (i < max - 1 || b <= last).then_some(out);
            }
        }
        None
    }

    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.varint(10, 0x01)?).ok()
    }

    fn str(&mut self, max: usize) -> Option<&'a str> {
        let n = self.len()?;
        if n > max {
            return None;
        }
        core::str::from_utf8(self.take(n)?).ok()
    }

    fn f64(&mut self) -> Option<f64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(f64::from_le_bytes(a))
    }
}

impl<'a> PointRef<'a> {
    /// The first point of `bytes` and the rest; None where decoding a
    /// `MetricPoint` fails. (Slices, not arrays: returning 500 bytes of
    /// tag and bucket arrays was most of the decoding's time.)
    fn decode(bytes: &'a [u8]) -> Option<(PointRef<'a>, &'a [u8])> {
        let mut r = Reader(bytes);
        let name = r.str(NAME_MAX)?;
        let kind = match r.varint(5, 0x0f)? {
            0 => MetricKind::Counter,
            1 => MetricKind::Gauge,
            2 => MetricKind::Histogram,
            _ => return None,
        };
        let value = r.f64()?;
        match r.byte()? {
            0 => {}
            1 => {
                r.varint(10, 0x01)?;
            }
            _ => return None,
        }
        let tag_count = r.len()?;
        if tag_count > TAGS_MAX {
            return None;
        }
        let tags_start = r.0;
        for _ in 0..tag_count {
            r.str(TAG_KEY_MAX)?;
            r.str(TAG_VALUE_MAX)?;
        }
        let tags = &tags_start[..tags_start.len() - r.0.len()];
        let n = r.len()?;
        if n > BUCKETS_MAX {
            return None;
        }
        let buckets = r.take(n * 8)?;
        let point = PointRef {
            name,
            kind,
            value,
            tags,
            tag_count,
            buckets,
        };
        Some((point, r.0))
    }

    /// `MetricPoint::check` of the same point (`check_point`; without tags
    /// its tag checks pass, so a point without tags skips them).
    fn check(&self) -> Result<(), MetricError> {
        let mut bounds: heapless::Vec<f64, BUCKETS_MAX> = heapless::Vec::new();
        for bytes in self.buckets.as_chunks::<8>().0 {
            let _ = bounds.push(f64::from_le_bytes(*bytes));
        }
        let buckets = (!bounds.is_empty()).then_some(&bounds[..]);
        if self.tag_count == 0 {
            check_name(self.name)?;
            return check_value(self.kind, self.value, buckets).map(|_| ());
        }
        let mut tags: heapless::Vec<(&str, &str), TAGS_MAX> = heapless::Vec::new();
        let mut r = Reader(self.tags);
        for _ in 0..self.tag_count {
            // Checked by `decode`.
            let (Some(key), Some(value)) = (r.str(TAG_KEY_MAX), r.str(TAG_VALUE_MAX)) else {
                return Err(MetricError::TagTooLong);
            };
            let _ = tags.push((key, value));
        }
        check_point(self.name, self.kind, self.value, &tags, buckets)
    }
}

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
    /// Empty until the first emit, then reserved for `cap` bytes and
    /// filled up to them as records come.
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

    /// Reserves the ring's bytes (once). They are not zeroed: records are
    /// appended until the ring first wraps, and only written bytes are
    /// ever read.
    fn allocate(&mut self) -> Result<(), EmitError> {
        if self.buf.capacity() >= self.cap {
            return Ok(());
        }
        self.buf.try_reserve_exact(self.cap).map_err(|_| EmitError::NoMemory)
    }

    /// Writes `bytes` at buffer index `at`, appending what lies past the
    /// bytes written so far (`at` is never beyond them: records are
    /// written one after the other from 0; within the reserved capacity).
    fn write_at(&mut self, at: usize, bytes: &[u8]) {
        if at > self.buf.len() {
            self.buf.resize(at, 0);
        }
        let inside = (self.buf.len() - at).min(bytes.len());
        self.buf[at..at + inside].copy_from_slice(&bytes[..inside]);
        self.buf.extend_from_slice(&bytes[inside..]);
    }

    /// The buffer index `offset` bytes after the oldest record (`offset`
    /// is below `cap`; no division on the emit path).
    fn wrap(&self, offset: usize) -> usize {
        let at = self.head + offset;
        if at >= self.cap { at - self.cap } else { at }
    }

    /// Copies `bytes` into the ring at `offset` bytes after the oldest
    /// record (wrapping); the caller checked that they fit.
    fn put(&mut self, offset: usize, bytes: &[u8]) {
        let at = self.wrap(offset);
        let first = bytes.len().min(self.cap - at);
        self.write_at(at, &bytes[..first]);
        if first < bytes.len() {
            self.write_at(0, &bytes[first..]);
        }
    }

    /// Copies ring bytes from `offset` after the oldest record into `out`.
    fn get(&self, offset: usize, out: &mut [u8]) {
        let at = self.wrap(offset);
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
            let (point, tail) = PointRef::decode(rest).ok_or(EmitError::BadFrame { index: n })?;
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
    use aether_abi::metric::{MetricPoint, Tag, drained, emit_fault, encode_batch, parse_emit_fault};
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

    /// The borrowed decoding accepts exactly the bytes `MetricPoint`'s
    /// does, consumes as many, and checks alike: random points (valid and
    /// not, every bound crossed), each also cut and with bytes changed.
    #[test]
    fn the_borrowed_point_decodes_and_checks_as_metric_point() {
        let mut rng = crate::testing::splitmix(99);
        let text = |max: usize, rng: &mut dyn FnMut() -> u64| {
            let len = (rng() % (max as u64 + 2)) as usize;
            let pool = ["a", "Z", "_", ":", "9", "é", "/", ""];
            let mut s = alloc::string::String::new();
            while s.len() < len {
                s.push_str(pool[(rng() % pool.len() as u64) as usize]);
                if s.is_empty() {
                    break;
                }
            }
            s
        };
        let mut enc = vec![0u8; 4096];
        let mut compared = 0;
        for _ in 0..3000 {
            let kind = [MetricKind::Counter, MetricKind::Gauge, MetricKind::Histogram][(rng() % 3) as usize];
            let value = [0.5, -1.0, f64::NAN, f64::INFINITY, 3.0][(rng() % 5) as usize];
            let Ok(name) = heapless::String::try_from(text(NAME_MAX, &mut rng).as_str()) else {
                continue;
            };
            let mut p = MetricPoint {
                name,
                kind,
                value,
                step: (rng() % 2 == 0).then_some(rng()),
                tags: heapless::Vec::new(),
                buckets: heapless::Vec::new(),
            };
            for _ in 0..rng() % (TAGS_MAX as u64 + 1) {
                let (Ok(key), Ok(value)) = (
                    heapless::String::try_from(text(TAG_KEY_MAX, &mut rng).as_str()),
                    heapless::String::try_from(text(TAG_VALUE_MAX, &mut rng).as_str()),
                ) else {
                    continue;
                };
                let _ = p.tags.push(Tag { key, value });
            }
            for i in 0..rng() % 5 {
                let _ = p
                    .buckets
                    .push([i as f64, 1.0, f64::NAN, f64::INFINITY][(rng() % 4) as usize]);
            }
            let n = postcard::to_slice(&p, &mut enc).unwrap().len();
            let mut bytes = enc[..n].to_vec();
            bytes.extend_from_slice(&[1, 2, 3]);
            let mut cases = alloc::vec![bytes.clone(), bytes[..(rng() as usize % n)].to_vec()];
            for _ in 0..4 {
                let mut b = bytes.clone();
                let i = rng() as usize % b.len();
                b[i] = rng() as u8;
                cases.push(b);
            }
            // Over-long strings and too many items, as encoded lengths.
            let mut long = bytes.clone();
            long[0] = (NAME_MAX + 1) as u8;
            cases.push(long);
            // Short random bytes (a name of 0..3 bytes, then anything).
            let mut random: Vec<u8> = (0..rng() % 48).map(|_| rng() as u8).collect();
            if let Some(b) = random.first_mut() {
                *b %= 4;
            }
            cases.push(random);
            for b in cases {
                let full = postcard::take_from_bytes::<MetricPoint>(&b).ok();
                let borrowed = PointRef::decode(&b);
                assert_eq!(full.is_some(), borrowed.is_some(), "{b:?}");
                if let (Some((fp, frest)), Some((bp, brest))) = (full, borrowed) {
                    assert_eq!(frest.len(), brest.len());
                    assert_eq!(fp.check(), bp.check(), "{fp:?}");
                    compared += 1;
                }
            }
        }
        assert!(compared > 3000, "{compared}");
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
