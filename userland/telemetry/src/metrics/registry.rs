//! The registry: every series of every job, the metric families (one kind
//! per name), the limits and the refusal counters.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ops::RangeBounds;

use super::{
    BUCKETS_MAX, Kind, MetricError, NAME_MAX, OLDER_MAX, Objective, Point, RECENT_MAX, Sample, Series, Summary,
    TAG_KEY_MAX, TAG_VALUE_MAX, TAGS_MAX, check_name, check_value, sorted_tags,
};

/// The sample names a histogram `h` writes besides its family name:
/// `h_bucket`, `h_sum`, `h_count` (Prometheus text format 0.0.4).
pub(crate) const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// How many series the registry takes.
///
/// Memory is bounded by the number of series: each holds at most
/// [`Limits::SERIES_WORST_BYTES`] (about 67 KiB: a 64 KiB history, its
/// tags, a histogram's buckets, and its share of the maps, each map entry
/// counted as a whole B-tree node), whatever the number of points. With
/// the defaults (512 series) that is at most about 34 MiB
/// ([`Limits::worst_case_bytes`]); a series with few points holds much less
/// (its history grows by doubling).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Series one job may have.
    pub max_series_per_job: usize,
    /// Series in all, every job together.
    pub max_series: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// A whole B-tree node for one entry of a map from `K` to `V`: 11 keys and
/// values, 12 edges, the header (a generous bound for `alloc`'s B-tree).
const fn map_entry_worst(key: usize, value: usize) -> usize {
    11 * (key + value) + 12 * size_of::<usize>() + 32
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_series_per_job: 64,
        max_series: 512,
    };

    /// The most heap one series can hold, everything it brings counted: its
    /// history, tags and histogram, its slot in its name's list, and an
    /// entry (with its name) in each of the three maps (jobs, the job's
    /// names, the families), as if it were the only one there.
    pub const SERIES_WORST_BYTES: usize = (RECENT_MAX + OLDER_MAX) * size_of::<Sample>()
        + TAGS_MAX * (size_of::<(Box<str>, Box<str>)>() + TAG_KEY_MAX + TAG_VALUE_MAX)
        + BUCKETS_MAX * size_of::<f64>()
        + (BUCKETS_MAX + 1) * size_of::<u64>()
        + size_of::<Series>()
        + map_entry_worst(size_of::<u64>(), size_of::<JobSeries>())
        + map_entry_worst(size_of::<Box<str>>(), size_of::<Vec<Series>>())
        + map_entry_worst(size_of::<Box<str>>(), size_of::<Family>())
        + 2 * NAME_MAX;

    /// The most heap the registry can hold under these limits.
    pub const fn worst_case_bytes(&self) -> usize {
        self.max_series.saturating_mul(Limits::SERIES_WORST_BYTES)
    }
}

/// Points taken and refused since the registry was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub accepted: u64,
    /// Every refused point, whatever the reason.
    pub refused: u64,
    /// Of `refused`, those that would have started a series beyond a limit.
    pub too_many_series: u64,
}

/// What [`Registry::add_batch`] did: every point is tried on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Points taken.
    pub taken: usize,
    /// The first refused point: its index in the batch and why.
    pub first_error: Option<(usize, MetricError)>,
}

/// A series with what it is known by.
#[derive(Clone, Copy, Debug)]
pub struct SeriesRef<'a> {
    pub job_id: u64,
    pub name: &'a str,
    pub series: &'a Series,
}

/// One job's series: per name, sorted by tags.
#[derive(Debug, Default)]
struct JobSeries {
    names: BTreeMap<Box<str>, Vec<Series>>,
    series: usize,
}

/// A metric name: its kind and how many series (of every job) have it.
#[derive(Clone, Copy, Debug)]
struct Family {
    kind: Kind,
    series: usize,
}

/// Every series of every job, keyed by (job id, name, sorted tags).
#[derive(Debug)]
pub struct Registry {
    limits: Limits,
    jobs: BTreeMap<u64, JobSeries>,
    families: BTreeMap<Box<str>, Family>,
    series: usize,
    stats: Stats,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new(Limits::DEFAULT)
    }
}

impl Registry {
    pub const fn new(limits: Limits) -> Self {
        Registry {
            limits,
            jobs: BTreeMap::new(),
            families: BTreeMap::new(),
            series: 0,
            stats: Stats {
                accepted: 0,
                refused: 0,
                too_many_series: 0,
            },
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Takes one point of job `job_id`, or refuses it (and counts the
    /// refusal): a refused point changes nothing else.
    pub fn add(&mut self, job_id: u64, point: Point<'_>) -> Result<(), MetricError> {
        let result = self.try_add(job_id, &point);
        match result {
            Ok(()) => self.stats.accepted = self.stats.accepted.saturating_add(1),
            Err(e) => {
                self.stats.refused = self.stats.refused.saturating_add(1);
                if e == MetricError::TooManySeries {
                    self.stats.too_many_series = self.stats.too_many_series.saturating_add(1);
                }
            }
        }
        result
    }

    /// Takes every point it can of a batch, in order: a refused point does
    /// not stop the ones after it.
    pub fn add_batch(&mut self, job_id: u64, points: &[Point<'_>]) -> BatchOutcome {
        let mut outcome = BatchOutcome {
            taken: 0,
            first_error: None,
        };
        for (i, point) in points.iter().enumerate() {
            match self.add(job_id, *point) {
                Ok(()) => outcome.taken += 1,
                Err(e) => {
                    outcome.first_error.get_or_insert((i, e));
                }
            }
        }
        outcome
    }

    fn try_add(&mut self, job_id: u64, point: &Point<'_>) -> Result<(), MetricError> {
        check_name(point.name)?;
        let tags = sorted_tags(point.tags)?;
        let bounds = check_value(point)?;
        if let Some(series) = self.find_mut(job_id, point.name, &tags) {
            return series.record(point, bounds);
        }
        if point.kind == Kind::Histogram && bounds.is_none() {
            return Err(MetricError::HistogramWithoutBuckets);
        }
        self.check_family(point.name, point.kind)?;
        let of_job = self.jobs.get(&job_id).map_or(0, |j| j.series);
        if of_job >= self.limits.max_series_per_job || self.series >= self.limits.max_series {
            return Err(MetricError::TooManySeries);
        }

        let series = Series::new(point.name, &tags, point, bounds);
        let job = self.jobs.entry(job_id).or_default();
        let list = job.names.entry(Box::from(point.name)).or_default();
        let at = match list.binary_search_by(|s| s.tags_cmp(&tags)) {
            Ok(i) | Err(i) => i,
        };
        // Series are made rarely: exact capacity keeps the bound exact.
        list.reserve_exact(1);
        list.insert(at, series);
        job.series += 1;
        self.series += 1;
        let family = self.families.entry(Box::from(point.name)).or_insert(Family {
            kind: point.kind,
            series: 0,
        });
        family.series += 1;
        Ok(())
    }

    /// Whether a new series of `name` may have `kind`: a name has one kind,
    /// and no name may be one a histogram's samples use.
    fn check_family(&self, name: &str, kind: Kind) -> Result<(), MetricError> {
        if let Some(family) = self.families.get(name) {
            return if family.kind == kind {
                Ok(())
            } else {
                Err(MetricError::KindChanged)
            };
        }
        for suffix in HISTOGRAM_SUFFIXES {
            let of_histogram = name
                .strip_suffix(suffix)
                .and_then(|base| self.families.get(base))
                .is_some_and(|f| f.kind == Kind::Histogram);
            let would_hide = kind == Kind::Histogram && self.families.contains_key(&*alloc::format!("{name}{suffix}"));
            if of_histogram || would_hide {
                return Err(MetricError::NameClash);
            }
        }
        Ok(())
    }

    fn find(&self, job_id: u64, name: &str, sorted: &[(&str, &str)]) -> Option<&Series> {
        let list = self.jobs.get(&job_id)?.names.get(name)?;
        let i = list.binary_search_by(|s| s.tags_cmp(sorted)).ok()?;
        list.get(i)
    }

    fn find_mut(&mut self, job_id: u64, name: &str, sorted: &[(&str, &str)]) -> Option<&mut Series> {
        let list = self.jobs.get_mut(&job_id)?.names.get_mut(name)?;
        let i = list.binary_search_by(|s| s.tags_cmp(sorted)).ok()?;
        list.get_mut(i)
    }

    /// The series of job `job_id` called `name` with exactly `tags` (in any
    /// order).
    pub fn series(&self, job_id: u64, name: &str, tags: &[(&str, &str)]) -> Option<&Series> {
        let sorted = sorted_tags(tags).ok()?;
        self.find(job_id, name, &sorted)
    }

    /// A series' last point.
    pub fn latest(&self, job_id: u64, name: &str, tags: &[(&str, &str)]) -> Option<&Sample> {
        self.series(job_id, name, tags).map(Series::last)
    }

    pub fn summary(&self, job_id: u64, name: &str, tags: &[(&str, &str)]) -> Option<Summary> {
        self.series(job_id, name, tags).map(Series::summary)
    }

    /// A series' kept points with a step in `steps`, in arrival order.
    pub fn history_by_step<'a, R: RangeBounds<u64> + 'a>(
        &'a self,
        job_id: u64,
        name: &str,
        tags: &[(&str, &str)],
        steps: R,
    ) -> Option<impl Iterator<Item = &'a Sample> + 'a> {
        self.series(job_id, name, tags).map(|s| s.history_by_step(steps))
    }

    /// A series' kept points with `ts_ms` in `times`, in arrival order.
    pub fn history_by_time<'a, R: RangeBounds<u64> + 'a>(
        &'a self,
        job_id: u64,
        name: &str,
        tags: &[(&str, &str)],
        times: R,
    ) -> Option<impl Iterator<Item = &'a Sample> + 'a> {
        self.series(job_id, name, tags).map(|s| s.history_by_time(times))
    }

    /// Chooses which way is better for a series' `best` (a rule watching
    /// it knows); `false` if there is no such series. The summary follows
    /// at once: `best` is the exact min or max over everything.
    #[must_use]
    pub fn set_objective(&mut self, job_id: u64, name: &str, tags: &[(&str, &str)], objective: Objective) -> bool {
        let Ok(sorted) = sorted_tags(tags) else {
            return false;
        };
        match self.find_mut(job_id, name, &sorted) {
            Some(series) => {
                series.set_objective(objective);
                true
            }
            None => false,
        }
    }

    /// A job's series, by name, then by tags.
    pub fn series_of_job(&self, job_id: u64) -> impl Iterator<Item = SeriesRef<'_>> + '_ {
        self.jobs
            .get(&job_id)
            .into_iter()
            .flat_map(move |job| series_of(job_id, job))
    }

    /// Every series, by job, then by name, then by tags.
    pub fn all_series(&self) -> impl Iterator<Item = SeriesRef<'_>> + '_ {
        self.jobs.iter().flat_map(|(job_id, job)| series_of(*job_id, job))
    }

    /// The series called `name`, by job, then by tags (one metric family).
    pub fn family<'a>(&'a self, name: &'a str) -> impl Iterator<Item = SeriesRef<'a>> + 'a {
        self.jobs.iter().flat_map(move |(job_id, job)| {
            job.names.get_key_value(name).into_iter().flat_map(move |(name, list)| {
                list.iter().map(move |series| SeriesRef {
                    job_id: *job_id,
                    name,
                    series,
                })
            })
        })
    }

    /// The metric names with their kinds, sorted by name.
    pub fn families(&self) -> impl Iterator<Item = (&str, Kind)> + '_ {
        self.families.iter().map(|(name, f)| (&**name, f.kind))
    }

    /// The jobs that have series, in order.
    pub fn job_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.jobs.keys().copied()
    }

    /// Forgets a job's series (opsd evicts a job); how many went.
    pub fn remove_job(&mut self, job_id: u64) -> usize {
        let Some(job) = self.jobs.remove(&job_id) else {
            return 0;
        };
        for (name, list) in &job.names {
            if let Some(family) = self.families.get_mut(name) {
                family.series = family.series.saturating_sub(list.len());
                if family.series == 0 {
                    self.families.remove(name);
                }
            }
        }
        self.series = self.series.saturating_sub(job.series);
        job.series
    }

    /// Series in all.
    pub fn series_count(&self) -> usize {
        self.series
    }

    pub fn series_count_of(&self, job_id: u64) -> usize {
        self.jobs.get(&job_id).map_or(0, |j| j.series)
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Bytes the registry holds on the heap: every buffer's capacity, the
    /// strings, and the maps' entries (not the B-trees' unused slots, which
    /// [`Limits::SERIES_WORST_BYTES`] counts).
    pub fn heap_bytes(&self) -> usize {
        let families: usize = self
            .families
            .keys()
            .map(|name| name.len() + size_of::<Box<str>>() + size_of::<Family>())
            .sum();
        let jobs: usize = self
            .jobs
            .values()
            .map(|job| {
                let names: usize = job
                    .names
                    .iter()
                    .map(|(name, list)| {
                        let series: usize = list.iter().map(Series::heap_bytes).sum();
                        name.len()
                            + size_of::<Box<str>>()
                            + size_of::<Vec<Series>>()
                            + list.capacity() * size_of::<Series>()
                            + series
                    })
                    .sum();
                size_of::<u64>() + size_of::<JobSeries>() + names
            })
            .sum();
        families + jobs
    }
}

fn series_of(job_id: u64, job: &JobSeries) -> impl Iterator<Item = SeriesRef<'_>> + '_ {
    job.names
        .iter()
        .flat_map(move |(name, list)| list.iter().map(move |series| SeriesRef { job_id, name, series }))
}

// The bound above and History's documentation count 32 bytes a sample.
const _: () = assert!(size_of::<Sample>() == 32);
