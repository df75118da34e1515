//! Metric points (docs/telemetry.md, "Metrics"): the type a native
//! program emits with the `METRIC` call and the bridge sends for a
//! trainer's metric line, and the checks that need no series (names, tags,
//! bucket bounds, a value against its kind). The kernel runs them on every
//! emitted point, the bridge on every line, opsd's registry
//! (`telemetry-core`) on everything it is given; the checks that need a
//! series (a counter going down, a name changing kind) are the registry's.
//!
//! # The `METRIC` call (kernel-served)
//!
//! `metric_emit(ptr, len, 0) -> accepted`: the buffer is one or more
//! postcard-encoded [`MetricPoint`]s back to back (at most
//! [`EMIT_BYTES_MAX`] bytes, [`EMIT_POINTS_MAX`] points). Every point is
//! checked first; the first bad one fails the whole call with
//! [`Errno::BadMetric`](crate::syscall::Errno::BadMetric), `rdx` =
//! [`emit_fault`] of its index and [`MetricError`], and nothing of the
//! batch is kept. A full buffer fails the call with `LimitReached`
//! (nothing kept: emit again later). Accepted points are stamped with the
//! monotonic clock and the caller's process and group, and wait in the
//! kernel for opsd.
//!
//! `metric_drain(ptr, cap, METRIC_DRAIN) -> len` (the `JOB` server only):
//! moves waiting points into the buffer as [`DrainHeader`] + point bytes,
//! oldest first, whole records only; `rdx` = points refused because the
//! kernel's buffer was full since the last drain.

use core::fmt;

use heapless::{String, Vec};
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

/// Metric names: at most 64 bytes (the ABI's bound for the names a job
/// record carries).
pub const NAME_MAX: usize = crate::job::METRIC_NAME_MAX;
/// Tags per point (and so per series).
pub const TAGS_MAX: usize = 8;
/// Bytes of a tag's key.
pub const TAG_KEY_MAX: usize = 32;
/// Bytes of a tag's value.
pub const TAG_VALUE_MAX: usize = 64;
/// Explicit bucket bounds of a histogram (the `+Inf` bucket comes on top).
pub const BUCKETS_MAX: usize = 32;

/// Label names the exposition writes itself, so no tag may take them:
/// `job_id` on every sample, `le` on histogram buckets (Prometheus text
/// format 0.0.4; names starting with `__` are Prometheus's own).
pub const RESERVED_TAG_KEYS: [&str; 2] = ["job_id", "le"];

/// What a metric measures (Prometheus metric types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, MaxSize)]
pub enum MetricKind {
    /// Monotonic: never NaN, never below 0, never below its last value.
    Counter,
    /// Any value, NaN and the infinities included.
    Gauge,
    /// Observations counted into explicit buckets; finite values only.
    Histogram,
}

impl MetricKind {
    /// The name of the `# TYPE` line (and of the bridge's `"kind"` key).
    pub const fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }

    pub fn from_name(name: &str) -> Option<MetricKind> {
        [MetricKind::Counter, MetricKind::Gauge, MetricKind::Histogram]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One tag (a Prometheus label of the series).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct Tag {
    pub key: String<TAG_KEY_MAX>,
    pub value: String<TAG_VALUE_MAX>,
}

/// One metric point as a job reports it. Its time travels beside it (the
/// kernel's stamp for a native point, the bridge's for a trainer's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, MaxSize)]
pub struct MetricPoint {
    pub name: String<NAME_MAX>,
    pub kind: MetricKind,
    /// A counter's total, a gauge's reading, one histogram observation.
    pub value: f64,
    /// The training step, if the job counts them.
    pub step: Option<u64>,
    pub tags: Vec<Tag, TAGS_MAX>,
    /// Histograms: the bucket bounds (required on a series' first point,
    /// the same or none afterwards); empty for the other kinds.
    pub buckets: Vec<f64, BUCKETS_MAX>,
}

impl MetricPoint {
    /// A point without step, tags or buckets; `None` if the name is longer
    /// than [`NAME_MAX`].
    pub fn new(name: &str, kind: MetricKind, value: f64) -> Option<Self> {
        Some(MetricPoint {
            name: String::try_from(name).ok()?,
            kind,
            value,
            step: None,
            tags: Vec::new(),
            buckets: Vec::new(),
        })
    }

    /// The stateless checks of this point ([`check_point`]).
    pub fn check(&self) -> Result<(), MetricError> {
        let mut tags: Vec<(&str, &str), TAGS_MAX> = Vec::new();
        for t in &self.tags {
            // Cannot fail: both hold TAGS_MAX.
            let _ = tags.push((t.key.as_str(), t.value.as_str()));
        }
        let buckets = (!self.buckets.is_empty()).then_some(&self.buckets[..]);
        check_point(&self.name, self.kind, self.value, &tags, buckets)
    }
}

/// The most bytes one `metric_emit` takes.
pub const EMIT_BYTES_MAX: usize = 64 * 1024;
/// The most points one `metric_emit` takes.
pub const EMIT_POINTS_MAX: usize = 4096;
/// `metric_emit`'s third argument for a drain.
pub const METRIC_DRAIN: u64 = 1;
/// The most bytes one encoded point takes.
pub const POINT_POSTCARD_MAX: usize = MetricPoint::POSTCARD_MAX_SIZE;

/// `rdx` of a failed `metric_emit`: the bad point's index and why.
pub const fn emit_fault(index: usize, error: MetricError) -> u64 {
    ((index as u64) << 8) | error as u64
}

/// The index and the error of an [`emit_fault`] word.
pub fn parse_emit_fault(word: u64) -> Option<(usize, MetricError)> {
    Some(((word >> 8) as usize, MetricError::from_code((word & 0xff) as u8)?))
}

/// Why a batch was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchError {
    /// Point `index` does not decode.
    BadFrame { index: usize },
    /// Point `index` fails a check.
    Point { index: usize, error: MetricError },
    /// More than [`EMIT_BYTES_MAX`] bytes or [`EMIT_POINTS_MAX`] points,
    /// or none.
    Size,
}

/// Decodes and checks a whole batch; the number of points.
pub fn check_batch(bytes: &[u8]) -> Result<usize, BatchError> {
    if bytes.is_empty() || bytes.len() > EMIT_BYTES_MAX {
        return Err(BatchError::Size);
    }
    let mut rest = bytes;
    let mut n = 0;
    while !rest.is_empty() {
        if n == EMIT_POINTS_MAX {
            return Err(BatchError::Size);
        }
        let (point, tail) =
            postcard::take_from_bytes::<MetricPoint>(rest).map_err(|_| BatchError::BadFrame { index: n })?;
        point.check().map_err(|error| BatchError::Point { index: n, error })?;
        rest = tail;
        n += 1;
    }
    Ok(n)
}

/// The points of a checked batch, each with its encoded bytes.
pub fn batch_points(bytes: &[u8]) -> impl Iterator<Item = (MetricPoint, &[u8])> {
    let mut rest = bytes;
    core::iter::from_fn(move || {
        let (point, tail) = postcard::take_from_bytes::<MetricPoint>(rest).ok()?;
        let used = &rest[..rest.len() - tail.len()];
        rest = tail;
        Some((point, used))
    })
}

/// Encodes points back to back into `buf`; the bytes used.
pub fn encode_batch<'a>(points: impl IntoIterator<Item = &'a MetricPoint>, buf: &mut [u8]) -> Option<usize> {
    let mut used = 0;
    for p in points {
        used += postcard::to_slice(p, &mut buf[used..]).ok()?.len();
    }
    Some(used)
}

/// What precedes each drained point: who emitted it and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainHeader {
    pub pid: u32,
    /// The emitter's process group (a native job's group is its id's key
    /// in opsd).
    pub group: u32,
    /// Monotonic ns at the emit.
    pub mono_ns: u64,
    /// Bytes of the point after the header.
    pub len: u16,
}

impl DrainHeader {
    pub const LEN: usize = 18;

    pub fn write(&self, out: &mut [u8; Self::LEN]) {
        out[0..4].copy_from_slice(&self.pid.to_le_bytes());
        out[4..8].copy_from_slice(&self.group.to_le_bytes());
        out[8..16].copy_from_slice(&self.mono_ns.to_le_bytes());
        out[16..18].copy_from_slice(&self.len.to_le_bytes());
    }

    pub fn read(bytes: &[u8]) -> Option<DrainHeader> {
        let b = bytes.get(..Self::LEN)?;
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut ns = [0u8; 8];
        ns.copy_from_slice(&b[8..16]);
        Some(DrainHeader {
            pid: u32_at(0),
            group: u32_at(4),
            mono_ns: u64::from_le_bytes(ns),
            len: u16::from_le_bytes([b[16], b[17]]),
        })
    }
}

/// The records of a drain buffer: header and point; a record that does
/// not decode ends the walk (the kernel writes whole checked records).
pub fn drained(bytes: &[u8]) -> impl Iterator<Item = (DrainHeader, MetricPoint)> + '_ {
    let mut rest = bytes;
    core::iter::from_fn(move || {
        let h = DrainHeader::read(rest)?;
        let end = DrainHeader::LEN + h.len as usize;
        let point = postcard::from_bytes(rest.get(DrainHeader::LEN..end)?).ok()?;
        rest = &rest[end..];
        Some((h, point))
    })
}

/// Why a point was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, MaxSize)]
#[repr(u8)]
pub enum MetricError {
    /// The name is empty or not `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    NameInvalid,
    /// The name is longer than [`NAME_MAX`] bytes.
    NameTooLong,
    /// More than [`TAGS_MAX`] tags.
    TooManyTags,
    /// A key longer than [`TAG_KEY_MAX`] or a value longer than
    /// [`TAG_VALUE_MAX`] bytes.
    TagTooLong,
    /// A key that is empty, not `[a-zA-Z_][a-zA-Z0-9_]*`, starts with `__`
    /// or is one of [`RESERVED_TAG_KEYS`].
    TagKeyInvalid,
    /// The same key twice.
    TagKeyDuplicate,
    /// An empty value (Prometheus treats a label with an empty value as
    /// absent: it would be another series under the same labels).
    TagValueEmpty,
    NanInCounter,
    /// A counter below its last value, or below 0.
    CounterDecreased,
    /// A histogram observation that is NaN or infinite (it would make the
    /// sum NaN or infinite for good).
    NonFiniteInHistogram,
    /// The name is a metric family of another kind already (in this or
    /// another series, of this or another job).
    KindChanged,
    /// The name's exposition would collide with another family's: a
    /// histogram `h` writes `h_bucket`, `h_sum` and `h_count`, so no other
    /// metric may be called so (nor may `h` be a histogram if one is).
    NameClash,
    /// The first point of a histogram series has no bucket bounds (or only
    /// `+Inf`).
    HistogramWithoutBuckets,
    /// Bucket bounds on a counter or a gauge.
    BucketsWithoutHistogram,
    /// Bucket bounds that are not strictly increasing finite numbers (a
    /// last `+Inf` aside).
    BucketsUnsorted,
    /// More than [`BUCKETS_MAX`] bounds.
    TooManyBuckets,
    /// Bounds other than the ones the series started with.
    BucketsChanged,
    /// The point would start a series beyond the job's or the registry's
    /// limit ([`Limits`]).
    TooManySeries,
}

impl MetricError {
    pub const ALL: [MetricError; 18] = [
        MetricError::NameInvalid,
        MetricError::NameTooLong,
        MetricError::TooManyTags,
        MetricError::TagTooLong,
        MetricError::TagKeyInvalid,
        MetricError::TagKeyDuplicate,
        MetricError::TagValueEmpty,
        MetricError::NanInCounter,
        MetricError::CounterDecreased,
        MetricError::NonFiniteInHistogram,
        MetricError::KindChanged,
        MetricError::NameClash,
        MetricError::HistogramWithoutBuckets,
        MetricError::BucketsWithoutHistogram,
        MetricError::BucketsUnsorted,
        MetricError::TooManyBuckets,
        MetricError::BucketsChanged,
        MetricError::TooManySeries,
    ];

    pub fn from_code(code: u8) -> Option<MetricError> {
        MetricError::ALL.into_iter().find(|e| *e as u8 == code)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            MetricError::NameInvalid => "the metric name is not [a-zA-Z_:][a-zA-Z0-9_:]*",
            MetricError::NameTooLong => "the metric name is longer than 64 bytes",
            MetricError::TooManyTags => "more than 8 tags",
            MetricError::TagTooLong => "a tag key is longer than 32 bytes or a value longer than 64",
            MetricError::TagKeyInvalid => "a tag key is not [a-zA-Z_][a-zA-Z0-9_]*, starts with __ or is job_id or le",
            MetricError::TagKeyDuplicate => "a tag key appears twice",
            MetricError::TagValueEmpty => "a tag value is empty",
            MetricError::NanInCounter => "a counter is NaN",
            MetricError::CounterDecreased => "a counter went below its last value or below 0",
            MetricError::NonFiniteInHistogram => "a histogram observation is NaN or infinite",
            MetricError::KindChanged => "the metric name has another kind already",
            MetricError::NameClash => "the name collides with a histogram's _bucket, _sum or _count",
            MetricError::HistogramWithoutBuckets => "a new histogram series has no bucket bounds",
            MetricError::BucketsWithoutHistogram => "bucket bounds on a counter or a gauge",
            MetricError::BucketsUnsorted => "bucket bounds are not strictly increasing finite numbers",
            MetricError::TooManyBuckets => "more than 32 bucket bounds",
            MetricError::BucketsChanged => "bucket bounds differ from the series' first ones",
            MetricError::TooManySeries => "too many series (of the job or in all)",
        }
    }
}

impl fmt::Display for MetricError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`, at most [`NAME_MAX`]
/// bytes (Prometheus data model, "Metric names and labels").
pub fn check_name(name: &str) -> Result<(), MetricError> {
    if name.len() > NAME_MAX {
        return Err(MetricError::NameTooLong);
    }
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':');
    if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':') {
        return Err(MetricError::NameInvalid);
    }
    Ok(())
}

/// Checks one tag key as a Prometheus label name that the exposition does
/// not use itself.
fn check_tag_key(key: &str) -> Result<(), MetricError> {
    let mut bytes = key.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !first_ok
        || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        || key.starts_with("__")
        || RESERVED_TAG_KEYS.contains(&key)
    {
        return Err(MetricError::TagKeyInvalid);
    }
    Ok(())
}

/// Tags in the registry's order (sorted by key), after the checks.
pub type SortedTags<'a> = heapless::Vec<(&'a str, &'a str), TAGS_MAX>;

/// Checks a point's tags and sorts them by key: the order a series is known
/// by (and the exposition's label order).
pub fn sorted_tags<'a>(tags: &[(&'a str, &'a str)]) -> Result<SortedTags<'a>, MetricError> {
    let mut sorted = SortedTags::from_slice(tags).map_err(|_| MetricError::TooManyTags)?;
    for (key, value) in &sorted {
        if key.len() > TAG_KEY_MAX || value.len() > TAG_VALUE_MAX {
            return Err(MetricError::TagTooLong);
        }
        check_tag_key(key)?;
        if value.is_empty() {
            return Err(MetricError::TagValueEmpty);
        }
    }
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(MetricError::TagKeyDuplicate);
    }
    Ok(sorted)
}

/// Checks bucket bounds and returns the explicit ones (a last `+Inf`
/// removed: the exposition always writes it).
pub fn check_buckets(bounds: &[f64]) -> Result<&[f64], MetricError> {
    let explicit = match bounds.split_last() {
        Some((last, rest)) if *last == f64::INFINITY => rest,
        _ => bounds,
    };
    if explicit.is_empty() {
        return Err(MetricError::HistogramWithoutBuckets);
    }
    if explicit.len() > BUCKETS_MAX {
        return Err(MetricError::TooManyBuckets);
    }
    if !explicit.iter().all(|b| b.is_finite()) || !explicit.windows(2).all(|w| w[0] < w[1]) {
        return Err(MetricError::BucketsUnsorted);
    }
    Ok(explicit)
}

/// The checks that need no series: the name, the tags, the value against
/// its kind, the bounds.
pub fn check_point(
    name: &str,
    kind: MetricKind,
    value: f64,
    tags: &[(&str, &str)],
    buckets: Option<&[f64]>,
) -> Result<(), MetricError> {
    check_name(name)?;
    sorted_tags(tags)?;
    check_value(kind, value, buckets).map(|_| ())
}

/// The value against its kind, and the bounds; the explicit bounds.
pub fn check_value(kind: MetricKind, value: f64, buckets: Option<&[f64]>) -> Result<Option<&[f64]>, MetricError> {
    match kind {
        MetricKind::Counter if value.is_nan() => return Err(MetricError::NanInCounter),
        MetricKind::Counter if value < 0.0 => return Err(MetricError::CounterDecreased),
        MetricKind::Histogram if !value.is_finite() => return Err(MetricError::NonFiniteInHistogram),
        _ => {}
    }
    match (kind, buckets) {
        (_, None) => Ok(None),
        (MetricKind::Histogram, Some(bounds)) => check_buckets(bounds).map(Some),
        (MetricKind::Counter | MetricKind::Gauge, Some(_)) => Err(MetricError::BucketsWithoutHistogram),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A point of the largest encoding.
    pub(crate) fn largest_point() -> MetricPoint {
        fn s<const N: usize>() -> String<N> {
            String::try_from("x".repeat(N).as_str()).unwrap()
        }
        MetricPoint {
            name: s(),
            kind: MetricKind::Histogram,
            value: f64::MAX,
            step: Some(u64::MAX),
            tags: (0..TAGS_MAX).map(|_| Tag { key: s(), value: s() }).collect(),
            buckets: (0..BUCKETS_MAX).map(|i| i as f64).collect(),
        }
    }

    fn point(name: &str, kind: MetricKind, value: f64) -> MetricPoint {
        MetricPoint::new(name, kind, value).unwrap()
    }

    #[test]
    fn a_batch_round_trips_and_its_first_bad_point_is_named() {
        let mut h = point("lat", MetricKind::Histogram, 0.2);
        h.buckets = Vec::from_slice(&[0.1, 0.5, 1.0]).unwrap();
        h.step = Some(3);
        let good = [
            point("loss", MetricKind::Gauge, 0.5),
            h,
            point("seen", MetricKind::Counter, 10.0),
        ];
        let mut buf = [0u8; 4096];
        let n = encode_batch(&good, &mut buf).unwrap();
        assert_eq!(check_batch(&buf[..n]), Ok(3));
        let back: alloc::vec::Vec<MetricPoint> = batch_points(&buf[..n]).map(|(p, _)| p).collect();
        assert_eq!(back, good);

        let bad = [good[0].clone(), point("seen", MetricKind::Counter, f64::NAN)];
        let n = encode_batch(&bad, &mut buf).unwrap();
        assert_eq!(
            check_batch(&buf[..n]),
            Err(BatchError::Point {
                index: 1,
                error: MetricError::NanInCounter
            })
        );
        let word = emit_fault(1, MetricError::NanInCounter);
        assert_eq!(parse_emit_fault(word), Some((1, MetricError::NanInCounter)));
        // A cut batch, an empty one, garbage: errors, never a panic.
        assert_eq!(check_batch(&buf[..n - 1]), Err(BatchError::BadFrame { index: 1 }));
        assert_eq!(check_batch(&[]), Err(BatchError::Size));
        assert!(check_batch(&[0xff; 64]).is_err());
    }

    #[test]
    fn the_stateless_checks_cover_names_tags_and_buckets() {
        let mut p = point("eval/accuracy", MetricKind::Gauge, 1.0);
        assert_eq!(p.check(), Err(MetricError::NameInvalid));
        p.name = String::try_from("acc").unwrap();
        p.tags
            .push(Tag {
                key: String::try_from("le").unwrap(),
                value: String::try_from("x").unwrap(),
            })
            .unwrap();
        assert_eq!(p.check(), Err(MetricError::TagKeyInvalid));
        let h = point("lat", MetricKind::Histogram, 1.0);
        // Bounds are required on a series' first point: that is the
        // registry's to say; alone, a point without bounds passes.
        assert_eq!(h.check(), Ok(()));
        let mut g = point("g", MetricKind::Gauge, 1.0);
        g.buckets.push(1.0).unwrap();
        assert_eq!(g.check(), Err(MetricError::BucketsWithoutHistogram));
        for e in MetricError::ALL {
            assert_eq!(MetricError::from_code(e as u8), Some(e));
        }
    }

    #[test]
    fn drained_records_walk_and_stop_at_damage() {
        let p = point("loss", MetricKind::Gauge, 0.5);
        let mut enc = [0u8; POINT_POSTCARD_MAX];
        let n = postcard::to_slice(&p, &mut enc).unwrap().len();
        let mut buf = alloc::vec::Vec::new();
        for pid in [5u32, 6] {
            let mut h = [0u8; DrainHeader::LEN];
            DrainHeader {
                pid,
                group: 5,
                mono_ns: 99,
                len: n as u16,
            }
            .write(&mut h);
            buf.extend_from_slice(&h);
            buf.extend_from_slice(&enc[..n]);
        }
        let got: alloc::vec::Vec<_> = drained(&buf).collect();
        assert_eq!(got.len(), 2);
        assert_eq!((got[1].0.pid, got[1].0.group, got[1].0.mono_ns), (6, 5, 99));
        assert_eq!(got[0].1, p);
        assert_eq!(drained(&buf[..buf.len() - 2]).count(), 1);
    }
}
