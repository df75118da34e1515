//! The store's configuration (monitors, retention, limits), the ranking
//! behind `best` and `top_k`, and the retention decision for one artifact
//! (the precedence rules are in the header of `artifacts`).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use super::{Digest, Key, Kind, Mode, VERSIONS_MAX, Version};

/// Which metric makes a version `best`, and which way is better.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Monitor {
    pub metric: String,
    pub mode: Mode,
}

impl Monitor {
    pub fn new(metric: &str, mode: Mode) -> Monitor {
        Monitor {
            metric: String::from(metric),
            mode,
        }
    }
}

/// The `k` best versions by `metric` (ties: the older first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopK {
    pub k: u32,
    pub metric: String,
    pub mode: Mode,
}

impl TopK {
    pub fn new(k: u32, metric: &str, mode: Mode) -> TopK {
        TopK {
            k,
            metric: String::from(metric),
            mode,
        }
    }
}

/// What GC keeps of each artifact of a kind. All `None` (the default)
/// keeps everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep the `n` newest versions.
    pub keep_last_n: Option<u32>,
    /// Keep the `k` best by a metric.
    pub top_k: Option<TopK>,
    /// The artifact's versions' sizes may add up to this at most.
    pub max_bytes: Option<u64>,
    /// A version lives this long at most after it was offered.
    pub ttl_ms: Option<u64>,
}

/// The store's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Artifacts (job, kind, name) at most.
    pub artifacts: usize,
    /// Versions of one artifact at most (at most [`VERSIONS_MAX`], which
    /// larger values are cut to).
    pub versions: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            artifacts: 16384,
            versions: VERSIONS_MAX,
        }
    }
}

/// Monitors, retention and limits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    /// By kind and name; a `None` name is the kind's default.
    monitors: BTreeMap<(Kind, Option<String>), Monitor>,
    retention: BTreeMap<Kind, Retention>,
    pub limits: Limits,
}

impl Config {
    /// The monitor of the artifacts `name` of `kind`, or of every artifact
    /// of `kind` without its own when `name` is `None`.
    pub fn with_monitor(mut self, kind: Kind, name: Option<&str>, monitor: Monitor) -> Config {
        self.monitors.insert((kind, name.map(String::from)), monitor);
        self
    }

    pub fn with_retention(mut self, kind: Kind, retention: Retention) -> Config {
        self.retention.insert(kind, retention);
        self
    }

    pub fn with_limits(mut self, limits: Limits) -> Config {
        self.limits = limits;
        self
    }

    /// The monitor of `(kind, name)`: its own, else the kind's default.
    pub fn monitor(&self, kind: Kind, name: &str) -> Option<&Monitor> {
        self.monitors
            .get(&(kind, Some(String::from(name))))
            .or_else(|| self.monitors.get(&(kind, None)))
    }

    pub fn retention(&self, kind: Kind) -> Option<&Retention> {
        self.retention.get(&kind)
    }

    /// [`Limits::versions`] within [`VERSIONS_MAX`].
    pub(super) fn versions_max(&self) -> u32 {
        self.limits.versions.min(VERSIONS_MAX)
    }
}

/// What GC drops: versions, and the objects no remaining version refers
/// to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gc {
    /// Sorted.
    pub drop_versions: Vec<(Key, u32)>,
    /// Sorted.
    pub drop_objects: Vec<Digest>,
    /// The dropped objects' bytes.
    pub freed_bytes: u64,
}

impl Gc {
    pub fn is_empty(&self) -> bool {
        self.drop_versions.is_empty() && self.drop_objects.is_empty()
    }
}

/// Versions that have `metric` (not NaN), best first; ties keep version
/// order (the older first).
pub(super) fn ranked<'a>(
    versions: &'a BTreeMap<u32, Version>,
    metric: &'a str,
    mode: Mode,
) -> impl Iterator<Item = u32> + 'a {
    let mut scored: Vec<(u32, f64)> = versions
        .iter()
        .filter_map(|(&v, version)| version.metric(metric).filter(|x| !x.is_nan()).map(|x| (v, x)))
        .collect();
    // A stable sort: equal values stay in version order.
    scored.sort_by(|a, b| match mode {
        Mode::Min => a.1.total_cmp(&b.1),
        Mode::Max => b.1.total_cmp(&a.1),
    });
    scored.into_iter().map(|(v, _)| v)
}

/// The version the monitor makes `best`, if any.
pub(super) fn best(versions: &BTreeMap<u32, Version>, monitor: Option<&Monitor>) -> Option<u32> {
    monitor.and_then(|m| ranked(versions, &m.metric, m.mode).next())
}

/// The versions of one artifact that retention drops, oldest first.
/// `protected` are never dropped.
pub(super) fn drops(
    versions: &BTreeMap<u32, Version>,
    protected: &BTreeSet<u32>,
    retention: &Retention,
    now_ms: u64,
) -> Vec<u32> {
    let is_protected = |v: &u32| protected.contains(v);

    // Selection: the union of what keep_last_n and top_k name, when either
    // is set; everything otherwise.
    let selects = retention.keep_last_n.is_some() || retention.top_k.is_some();
    let mut selected: BTreeSet<u32> = BTreeSet::new();
    if let Some(n) = retention.keep_last_n {
        selected.extend(versions.keys().rev().take(n as usize));
    }
    if let Some(top) = &retention.top_k {
        selected.extend(ranked(versions, &top.metric, top.mode).take(top.k as usize));
    }
    let mut kept: BTreeSet<u32> = versions
        .keys()
        .copied()
        .filter(|v| is_protected(v) || !selects || selected.contains(v))
        .collect();

    // Age.
    if let Some(ttl) = retention.ttl_ms {
        kept.retain(|v| {
            is_protected(v)
                || versions
                    .get(v)
                    .is_some_and(|x| now_ms.saturating_sub(x.created_at_ms) < ttl)
        });
    }

    // Space: the oldest unprotected survivors go until the rest fit.
    if let Some(max) = retention.max_bytes {
        // u128: no sum of u64 sizes overflows it.
        let size = |v: &u32| versions.get(v).map_or(0, |x| u128::from(x.size));
        let mut total: u128 = kept.iter().map(size).sum();
        let oldest_first: Vec<u32> = kept.iter().copied().filter(|v| !is_protected(v)).collect();
        for v in oldest_first {
            if total <= u128::from(max) {
                break;
            }
            kept.remove(&v);
            total -= size(&v);
        }
    }

    versions.keys().copied().filter(|v| !kept.contains(v)).collect()
}
