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

pub use histogram::Histogram;
pub use history::{History, OLDER_MAX, RECENT_MAX, Sample};
pub use registry::{BatchOutcome, Limits, Registry, SeriesRef, Stats};
pub use series::{Series, Summary};

/// A metric's type (the ABI's [`aether_abi::metric::MetricKind`]).
pub use aether_abi::metric::MetricKind as Kind;
pub use aether_abi::metric::{
    BUCKETS_MAX, MetricError, NAME_MAX, RESERVED_TAG_KEYS, SortedTags, TAG_KEY_MAX, TAG_VALUE_MAX, TAGS_MAX,
    check_buckets, check_name, sorted_tags,
};

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

/// The checks that need no series: the value against its kind, and the
/// bounds. Returns the explicit bounds, if any.
fn check_value<'a>(point: &Point<'a>) -> Result<Option<&'a [f64]>, MetricError> {
    aether_abi::metric::check_value(point.kind, point.value, point.buckets)
}
