//! A histogram series' state: explicit bounds, per-bucket counts, count,
//! sum, min, max (Prometheus histogram semantics: bucket `le = b` counts
//! the observations `<= b`).

use alloc::boxed::Box;

/// Observations of one histogram series.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// Strictly increasing, finite; the `+Inf` bucket is implicit.
    bounds: Box<[f64]>,
    /// Per bucket, not cumulative: `counts[i]` holds the observations in
    /// `(bounds[i - 1], bounds[i]]`, the last one those above every bound.
    counts: Box<[u64]>,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Histogram {
    /// An empty histogram over checked bounds
    /// ([`super::check_buckets`]).
    pub(crate) fn new(bounds: &[f64]) -> Self {
        Histogram {
            bounds: bounds.into(),
            counts: alloc::vec![0; bounds.len() + 1].into_boxed_slice(),
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Counts one finite observation.
    pub(crate) fn observe(&mut self, value: f64) {
        let bucket = self.bounds.partition_point(|b| *b < value);
        if let Some(c) = self.counts.get_mut(bucket) {
            *c = c.saturating_add(1);
        }
        self.count = self.count.saturating_add(1);
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// The explicit bounds (without `+Inf`).
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// Per-bucket counts (not cumulative), one more than [`Self::bounds`]:
    /// the last is the observations above every bound.
    pub fn bucket_counts(&self) -> &[u64] {
        &self.counts
    }

    /// `(upper bound, cumulative count)` per bucket, ending with
    /// `(+Inf, count)`: the exposition's `_bucket` samples.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let bounds = self.bounds.iter().copied().chain(core::iter::once(f64::INFINITY));
        bounds.zip(self.counts.iter()).scan(0u64, |total, (bound, count)| {
            *total = total.saturating_add(*count);
            Some((bound, *total))
        })
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// The smallest observation (`None` before the first).
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// Bytes of the buffers.
    pub fn heap_bytes(&self) -> usize {
        size_of_val(&*self.bounds) + size_of_val(&*self.counts)
    }
}
