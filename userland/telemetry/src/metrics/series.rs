//! One series: its tags, kind and objective, the last point, the history
//! and the exact summary (and a histogram's buckets).

use alloc::boxed::Box;
use core::ops::RangeBounds;

use super::{Histogram, History, Kind, MetricError, Objective, Point, Sample};

/// A series of one job: one metric name with one set of tags.
#[derive(Clone, Debug)]
pub struct Series {
    kind: Kind,
    /// Sorted by key.
    tags: Box<[(Box<str>, Box<str>)]>,
    objective: Objective,
    /// Points taken (all of them, not only those kept).
    count: u64,
    last: Sample,
    /// The smallest and the largest non-NaN values and their points (the
    /// first one reaching it).
    min: Option<Sample>,
    max: Option<Sample>,
    history: History,
    /// Histograms only.
    histogram: Option<Histogram>,
}

/// What a series has seen, exact over every point taken (not only the kept
/// ones). NaN values count in `count` and may be `last`, but are never a
/// `min`, `max` or `best`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub last: f64,
    pub last_step: Option<u64>,
    pub last_ts_ms: u64,
    /// `None` while every value was NaN.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// `min` or `max` by the objective, and the step of the first point
    /// that reached it.
    pub best: Option<f64>,
    pub best_step: Option<u64>,
    pub objective: Objective,
}

impl Series {
    /// A series from its first point, checked already: `bounds` are the
    /// checked explicit bounds of a histogram (`Some` for one).
    pub(crate) fn new(name: &str, tags: &[(&str, &str)], point: &Point<'_>, bounds: Option<&[f64]>) -> Self {
        let sample = sample_of(point);
        let mut series = Series {
            kind: point.kind,
            tags: tags.iter().map(|(k, v)| (Box::from(*k), Box::from(*v))).collect(),
            objective: Objective::default_for(name),
            count: 0,
            last: sample,
            min: None,
            max: None,
            history: History::new(),
            histogram: bounds.map(Histogram::new),
        };
        series.take(sample);
        series
    }

    /// Checks a further point against the series (its kind, a counter's
    /// last value, a histogram's bounds) and takes it. `bounds` are the
    /// point's checked explicit bounds, if it has some.
    pub(crate) fn record(&mut self, point: &Point<'_>, bounds: Option<&[f64]>) -> Result<(), MetricError> {
        if point.kind != self.kind {
            return Err(MetricError::KindChanged);
        }
        if self.kind == Kind::Counter && point.value < self.last.value {
            return Err(MetricError::CounterDecreased);
        }
        if let (Some(bounds), Some(histogram)) = (bounds, &self.histogram)
            && bounds != histogram.bounds()
        {
            return Err(MetricError::BucketsChanged);
        }
        self.take(sample_of(point));
        Ok(())
    }

    fn take(&mut self, sample: Sample) {
        self.count = self.count.saturating_add(1);
        self.last = sample;
        if !sample.value.is_nan() {
            if self.min.is_none_or(|m| sample.value < m.value) {
                self.min = Some(sample);
            }
            if self.max.is_none_or(|m| sample.value > m.value) {
                self.max = Some(sample);
            }
        }
        if let Some(histogram) = &mut self.histogram {
            histogram.observe(sample.value);
        }
        self.history.push(sample);
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The tags, sorted by key.
    pub fn tags(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.tags.iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn objective(&self) -> Objective {
        self.objective
    }

    pub(crate) fn set_objective(&mut self, objective: Objective) {
        self.objective = objective;
    }

    /// The last point taken.
    pub fn last(&self) -> &Sample {
        &self.last
    }

    /// Points taken in all.
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn summary(&self) -> Summary {
        let best = match self.objective {
            Objective::Min => self.min,
            Objective::Max => self.max,
        };
        Summary {
            count: self.count,
            last: self.last.value,
            last_step: self.last.step,
            last_ts_ms: self.last.ts_ms,
            min: self.min.map(|s| s.value),
            max: self.max.map(|s| s.value),
            best: best.map(|s| s.value),
            best_step: best.and_then(|s| s.step),
            objective: self.objective,
        }
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    /// The kept points with a step in `steps`, in arrival order.
    pub fn history_by_step<'a, R: RangeBounds<u64> + 'a>(&'a self, steps: R) -> impl Iterator<Item = &'a Sample> + 'a {
        self.history.by_step(steps)
    }

    /// The kept points with `ts_ms` in `times`, in arrival order.
    pub fn history_by_time<'a, R: RangeBounds<u64> + 'a>(&'a self, times: R) -> impl Iterator<Item = &'a Sample> + 'a {
        self.history.by_time(times)
    }

    /// A histogram's buckets (`None` for a counter or a gauge).
    pub fn histogram(&self) -> Option<&Histogram> {
        self.histogram.as_ref()
    }

    /// Orders the series' tags against `tags` (sorted): the order of a
    /// name's series.
    pub(crate) fn tags_cmp(&self, tags: &[(&str, &str)]) -> core::cmp::Ordering {
        self.tags().cmp(tags.iter().copied())
    }

    /// Bytes this series holds on the heap (its own struct aside).
    pub fn heap_bytes(&self) -> usize {
        let tags: usize = self.tags.iter().map(|(k, v)| k.len() + v.len()).sum();
        size_of_val(&*self.tags)
            + tags
            + self.history.heap_bytes()
            + self.histogram.as_ref().map_or(0, Histogram::heap_bytes)
    }
}

fn sample_of(point: &Point<'_>) -> Sample {
    Sample {
        value: point.value,
        step: point.step,
        ts_ms: point.ts_ms,
    }
}
