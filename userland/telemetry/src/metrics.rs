//! The metrics registry (docs/telemetry.md, "Metrics"): points checked
//! against the Prometheus data model, series keyed by (job, name, tags),
//! each with its last point, a bounded history and an exact summary.
//!
//! The vocabulary is Prometheus's: a [`Kind`] is a metric type, a name is a
//! metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`), tags are labels
//! (`[a-zA-Z_][a-zA-Z0-9_]*`). A name has one kind in the whole registry
//! (one metric family, one `# TYPE` line in the exposition), as long as a
//! series of it exists.
//!
//! Every bad input is a [`MetricError`]: nothing is truncated, clamped or
//! dropped silently, nothing panics, and a refused point changes nothing
//! but the refusal counters ([`Stats`]).
//!
//! Histograms: a point of kind [`Kind::Histogram`] is one observation
//! (`value`); the first point of a series carries its bucket bounds
//! ([`Point::buckets`], Prometheus's `le` bounds: an observation counts in
//! every bucket whose bound it does not exceed); later points may repeat
//! the same bounds or leave them out. The series keeps per-bucket counts,
//! the count, the sum, the min and the max ([`Histogram`]).

mod histogram;
mod history;
mod registry;
mod series;
#[cfg(test)]
mod tests;

use core::fmt;

pub use histogram::Histogram;
pub use history::{History, OLDER_MAX, RECENT_MAX, Sample};
pub use registry::{BatchOutcome, Limits, Registry, SeriesRef, Stats};
pub use series::{Series, Summary};

/// Metric names: at most 64 bytes (the ABI's bound for the names a job
/// record carries).
pub const NAME_MAX: usize = aether_abi::job::METRIC_NAME_MAX;
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Monotonic: never NaN, never below 0, never below its last value.
    Counter,
    /// Any value, NaN and the infinities included.
    Gauge,
    /// Observations counted into explicit buckets; finite values only.
    Histogram,
}

impl Kind {
    /// The name of the `# TYPE` line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which way is better for a series' `best` (W&B's and Lightning's `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Objective {
    Min,
    Max,
}

impl Objective {
    /// `Min` for names ending in `loss` (exactly, case-sensitive: `loss`,
    /// `val_loss`), `Max` for the others. A rule watching the series may
    /// choose otherwise ([`Registry::set_objective`]).
    pub fn default_for(name: &str) -> Objective {
        if name.ends_with("loss") {
            Objective::Min
        } else {
            Objective::Max
        }
    }
}

/// One metric point as a job reports it (a trainer's line through the
/// bridge, or a native job's METRIC call). It borrows its strings: the
/// registry copies what it keeps, after the checks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point<'a> {
    pub name: &'a str,
    pub kind: Kind,
    /// The value (a counter's total, a gauge's reading, one observation of
    /// a histogram).
    pub value: f64,
    pub step: Option<u64>,
    /// When it was reported (unix ms).
    pub ts_ms: u64,
    /// At most [`TAGS_MAX`], in any order; keys unique.
    pub tags: &'a [(&'a str, &'a str)],
    /// Histograms only: the bucket bounds, strictly increasing and finite
    /// (a last `+Inf` may be given: it is the implicit one). Required on the
    /// first point of a series, optional (and then equal) afterwards.
    pub buckets: Option<&'a [f64]>,
}

impl<'a> Point<'a> {
    pub const fn new(name: &'a str, kind: Kind, value: f64, ts_ms: u64) -> Self {
        Point {
            name,
            kind,
            value,
            step: None,
            ts_ms,
            tags: &[],
            buckets: None,
        }
    }

    pub const fn counter(name: &'a str, value: f64, ts_ms: u64) -> Self {
        Point::new(name, Kind::Counter, value, ts_ms)
    }

    pub const fn gauge(name: &'a str, value: f64, ts_ms: u64) -> Self {
        Point::new(name, Kind::Gauge, value, ts_ms)
    }

    /// One observation `value` (add the bounds with [`Point::with_buckets`]
    /// on the first point of a series).
    pub const fn histogram(name: &'a str, value: f64, ts_ms: u64) -> Self {
        Point::new(name, Kind::Histogram, value, ts_ms)
    }

    pub const fn with_step(self, step: u64) -> Self {
        Point {
            step: Some(step),
            ..self
        }
    }

    pub const fn with_tags(self, tags: &'a [(&'a str, &'a str)]) -> Self {
        Point { tags, ..self }
    }

    pub const fn with_buckets(self, buckets: &'a [f64]) -> Self {
        Point {
            buckets: Some(buckets),
            ..self
        }
    }
}

/// Why a point was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// The checks that need no series: the value against its kind, and the
/// bounds. Returns the explicit bounds, if any.
fn check_value<'a>(point: &Point<'a>) -> Result<Option<&'a [f64]>, MetricError> {
    match point.kind {
        Kind::Counter if point.value.is_nan() => return Err(MetricError::NanInCounter),
        Kind::Counter if point.value < 0.0 => return Err(MetricError::CounterDecreased),
        Kind::Histogram if !point.value.is_finite() => return Err(MetricError::NonFiniteInHistogram),
        _ => {}
    }
    match (point.kind, point.buckets) {
        (_, None) => Ok(None),
        (Kind::Histogram, Some(bounds)) => check_buckets(bounds).map(Some),
        (Kind::Counter | Kind::Gauge, Some(_)) => Err(MetricError::BucketsWithoutHistogram),
    }
}
