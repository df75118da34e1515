//! Alert rules (docs/telemetry.md, "Alert rules"): the rule types, the
//! rule file's parser ([`parse`]) and the engine ([`Rules`]) that turns
//! metric points, job output and time into [`Alert`]s. Pure: no I/O, no
//! clock (every input carries `now_ms`, unix ms, opsd's clock), no panics on
//! any input, bounded memory.
//!
//! # Inputs and outputs
//!
//! [`Rules`] takes
//!
//! * metric points ([`Rules::on_point`]: job, name, tags, value, step),
//! * any log output of a job ([`Rules::on_output`]),
//! * a job's life ([`Rules::on_job_started`], [`Rules::on_job_ended`]),
//! * time ([`Rules::tick`]; [`Rules::next_deadline`] says when it is due),
//! * new rules ([`Rules::replace`], after [`parse`] accepted a whole file),
//!
//! and answers each with the [`Alert`]s it caused, in rule order: a
//! `Firing` when a condition starts to hold, a `Resolved` when it stops.
//!
//! # Semantics
//!
//! A rule watches every series (job, metric name, tags) whose name is the
//! rule's (or any name, for [`ANY_METRIC`]) and whose tags include the
//! rule's matchers; each series has its own state. A rule that fires does
//! not fire again while its condition holds (dedup).
//!
//! * `new_best`: the first finite value is the initial best (no alert);
//!   each later value that beats the best by more than `min_delta` (`<
//!   best - min_delta` for `min`, `> best + min_delta` for `max`) is a new
//!   best: one `Firing` each, never resolved ([`RuleType::resolves`]).
//! * `plateau`: the same notion of a new best; fires once when `patience`
//!   finite points (or that many ms) have gone by since the last new best
//!   (or the first point), resolves on a new best.
//! * `stall`: per running job, fires once when the job has had no output
//!   and no matching metric for `after`; resolves on output or a matching
//!   metric. Jobs that were never started (or have ended) do not stall.
//! * `sustained_dip`: the baseline is the mean of the previous
//!   `baseline_points` values; once it is full, a value below `factor x
//!   baseline` starts a dip, which fires once it has lasted `for_` (points
//!   below, or ms since the first one below); a value at or above resolves.
//! * `anomaly`: a point is flagged when it is NaN or infinite (`nan`),
//!   outside `lo..=hi` (`range`; NaN is outside too), or `|x - mean| > z *
//!   sd` over the previous `window` points (`zscore`, population standard
//!   deviation; a flat window flags any other value). Fires once on the
//!   first flagged point, resolves on the first point no check flags.
//! * `divergence`: fires once when a value is above `above` (`+inf`
//!   included), resolves on a value at or below it.
//!
//! # Decisions (where the design is silent)
//!
//! * **Non-finite values** are the business of `anomaly` alone: the other
//!   rules ignore NaN and infinities (no best, no patience point, no
//!   baseline value, no resolve), except that `+inf` is above any
//!   `divergence` threshold. An `anomaly` rule without `nan` and without a
//!   `range` ignores a NaN (its `zscore` cannot judge one).
//! * **Baselines learn only from normal points**: a `sustained_dip` value
//!   below the threshold (pending or firing) never enters the baseline, and
//!   a point an `anomaly` rule flags never enters its z-score window. A
//!   long dip therefore cannot drag its own baseline down and resolve
//!   itself; the price is that a permanent drop stays firing until the job
//!   ends (which it is: the series is below what it used to be).
//! * **An ended job's firing alerts resolve** ([`Rules::on_job_ended`]
//!   returns them, the summary says the job ended) and its state is freed:
//!   an alert nobody can resolve any more would stay open on every
//!   receiver. The newest [`Limits::ended_remembered`] ended job ids are
//!   remembered, and late points or output for them are ignored (counted),
//!   so a late NaN cannot open an alert that never closes. Starting the
//!   id again forgets that it ended.
//! * **Starting a running job again** (a retry's new attempt) restarts its
//!   stall clocks (resolving a firing stall) and keeps its series: the best
//!   so far carries on, like the job's metrics do.
//! * **Points of jobs never started** are evaluated by every rule but
//!   `stall`: the engine does not insist on seeing the start.
//! * **Replacing rules** ([`Rules::replace`]) keeps the state of every rule
//!   whose definition (name, metric, kind with its parameters, labels) is
//!   unchanged, wherever it moved in the list; a rule that was removed or
//!   changed resolves its firing alerts ("rule removed or changed") and its
//!   replacement starts afresh.
//! * **Time going backwards** never panics and never fires early:
//!   elapsed times saturate at 0, and the newest input's `now_ms` becomes
//!   the reference of whatever it resets.
//! * **Labels** on an alert are the rule's own (`labels:` in the file);
//!   `alertname`, `job_id` and the tags are fields the router adds.
//!
//! # Bounds
//!
//! Each tracked series (and each stall clock of a running job) counts
//! against [`Limits::series`] (default 4096): beyond it a new series is not
//! tracked and each point that would have made one is counted
//! ([`Stats::series_refused`]). A series holds a few numbers, its tags (at
//! most [`TAGS_MAX`] of at most [`TAG_KEY_MAX`] + [`TAG_VALUE_MAX`] bytes;
//! larger points are refused and counted) and, for `sustained_dip` and
//! `zscore`, a window of at most [`WINDOW_MAX`] values. Running jobs are at
//! most [`Limits::running_jobs`]. A rule file has at most [`RULES_MAX`]
//! rules.
//!
//! # The rule file
//!
//! One rule per line; `#` starts a comment (at the start of a line or
//! after a space); blank lines are ignored:
//!
//! ```text
//! NAME: RULE METRIC [key=value ...] [labels: k=v,k=v]
//!
//! # examples
//! val_best:    new_best val_loss{split=val} mode=min min_delta=0.001
//! val_flat:    plateau val_loss patience=10 min_delta=0.001 labels: severity=warning
//! val_flat_t:  plateau val_acc mode=max patience=30m
//! hung:        stall * after=10m labels: severity=critical
//! slow:        sustained_dip samples_per_s factor=0.5 baseline=20 for=2m
//! loss_nan:    anomaly * nan=true labels: severity=critical
//! gates:       anomaly gate_saturation zscore=3@50 range=0..1
//! exploding:   divergence train_loss above=100
//! ```
//!
//! [`parse`] documents every parameter; a file with any error is refused
//! whole ([`RuleError`] names the line and the reason).

mod engine;
mod parse;
mod series;
#[cfg(test)]
mod tests;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use engine::{Limits, Rules, Stats};
pub use parse::{LINE_MAX, Reason, RuleError, parse};

/// Values a `sustained_dip` baseline or a `zscore` window holds at most
/// (larger counts are refused by [`parse`] and clamped by the engine).
pub const WINDOW_MAX: usize = 256;
/// Rules a file holds at most.
pub const RULES_MAX: usize = 256;
/// A rule name's bytes at most.
pub const RULE_NAME_MAX: usize = 64;
/// A metric name's bytes at most (as the registry's).
pub const METRIC_NAME_MAX: usize = 64;
/// Tags of a point, tag matchers of a rule, labels of a rule: at most.
pub const TAGS_MAX: usize = 8;
/// A tag's or a label's key bytes at most.
pub const TAG_KEY_MAX: usize = 32;
/// A tag's or a label's value bytes at most.
pub const TAG_VALUE_MAX: usize = 64;
/// The metric name that matches every metric.
pub const ANY_METRIC: &str = "*";

/// Which way is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Lower is better (losses).
    Min,
    /// Higher is better (accuracies).
    Max,
}

impl Mode {
    /// Whether `value` beats `best` by more than `min_delta`.
    pub fn improves(self, value: f64, best: f64, min_delta: f64) -> bool {
        match self {
            Mode::Min => value < best - min_delta,
            Mode::Max => value > best + min_delta,
        }
    }

    /// `min` or `max`, as in the file.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Min => "min",
            Mode::Max => "max",
        }
    }
}

/// How long a condition must last: a number of points or a duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Patience {
    /// That many points (finite values) in a row.
    Points(u32),
    /// That many milliseconds of opsd's clock.
    Millis(u64),
}

/// What a rule watches: a metric name (or [`ANY_METRIC`]) and tags the
/// series must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricMatch {
    pub name: String,
    /// `key = value` pairs the point's tags must include (other tags may
    /// be present).
    pub tags: Vec<(String, String)>,
}

impl MetricMatch {
    /// A matcher of `name` without tag matchers.
    pub fn named(name: &str) -> Self {
        MetricMatch {
            name: String::from(name),
            tags: Vec::new(),
        }
    }

    /// Whether a point named `name` with `tags` is watched.
    pub fn matches(&self, name: &str, tags: &[(&str, &str)]) -> bool {
        (self.name == ANY_METRIC || self.name == name)
            && self
                .tags
                .iter()
                .all(|(k, v)| tags.iter().any(|(tk, tv)| tk == k && tv == v))
    }
}

/// One rule: a line of the rule file.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Unique in a file; the alert's name.
    pub name: String,
    pub metric: MetricMatch,
    pub kind: RuleKind,
    /// Extra labels every alert of the rule carries (`severity=critical`).
    pub labels: Vec<(String, String)>,
}

/// What a rule checks, with its parameters (the module header gives the
/// semantics, [`parse`] the parameters' names in the file).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RuleKind {
    NewBest {
        mode: Mode,
        min_delta: f64,
    },
    Plateau {
        mode: Mode,
        patience: Patience,
        min_delta: f64,
    },
    Stall {
        after_ms: u64,
    },
    SustainedDip {
        factor: f64,
        baseline_points: usize,
        for_: Patience,
    },
    Anomaly {
        nan: bool,
        /// Inclusive bounds.
        range: Option<(f64, f64)>,
        /// `(z, window)`.
        zscore: Option<(f64, usize)>,
    },
    Divergence {
        above: f64,
    },
}

impl RuleKind {
    /// The rule's type, without its parameters.
    pub const fn rule_type(&self) -> RuleType {
        match self {
            RuleKind::NewBest { .. } => RuleType::NewBest,
            RuleKind::Plateau { .. } => RuleType::Plateau,
            RuleKind::Stall { .. } => RuleType::Stall,
            RuleKind::SustainedDip { .. } => RuleType::SustainedDip,
            RuleKind::Anomaly { .. } => RuleType::Anomaly,
            RuleKind::Divergence { .. } => RuleType::Divergence,
        }
    }
}

/// A rule's type, as named in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RuleType {
    NewBest,
    Plateau,
    Stall,
    SustainedDip,
    Anomaly,
    Divergence,
}

impl RuleType {
    pub const ALL: [RuleType; 6] = [
        RuleType::NewBest,
        RuleType::Plateau,
        RuleType::Stall,
        RuleType::SustainedDip,
        RuleType::Anomaly,
        RuleType::Divergence,
    ];

    /// The name in the rule file (`new_best`, `sustained_dip`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            RuleType::NewBest => "new_best",
            RuleType::Plateau => "plateau",
            RuleType::Stall => "stall",
            RuleType::SustainedDip => "sustained_dip",
            RuleType::Anomaly => "anomaly",
            RuleType::Divergence => "divergence",
        }
    }

    /// The type named `name` in the rule file.
    pub fn from_name(name: &str) -> Option<RuleType> {
        RuleType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Whether its alerts are ever resolved: `new_best` alerts are events
    /// (a `Firing` each, nothing to resolve); every other type's firing
    /// alert is resolved exactly once.
    pub const fn resolves(self) -> bool {
        !matches!(self, RuleType::NewBest)
    }
}

impl fmt::Display for RuleType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an alert starts or ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertState {
    Firing,
    Resolved,
}

impl AlertState {
    /// `firing` or `resolved` (Alertmanager's words).
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// A rule's alert starting or ending for one series of one job.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// The rule's name.
    pub rule: String,
    pub kind: RuleType,
    pub job_id: u64,
    /// The series' metric name (the rule's metric for `stall`).
    pub metric: String,
    /// The series' tags, sorted by key (none for `stall`).
    pub tags: Vec<(String, String)>,
    pub state: AlertState,
    /// The value that caused it, or the series' last value for alerts of
    /// time and job ends (`None` for `stall`, or before any point).
    pub value: Option<f64>,
    pub step: Option<u64>,
    /// opsd's clock when it happened.
    pub at_ms: u64,
    /// The rule's labels.
    pub labels: Vec<(String, String)>,
    /// For people: `job 3 val_loss{split=val}: no new best for 10 points
    /// (best 0.25 at step 300)`.
    pub summary: String,
}

/// Writes a duration the way the rule file spells it (`90s`, `10m`,
/// `1500ms`).
pub(crate) fn write_duration(f: &mut impl fmt::Write, ms: u64) -> fmt::Result {
    match ms {
        0 => f.write_str("0ms"),
        _ if ms % 3_600_000 == 0 => write!(f, "{}h", ms / 3_600_000),
        _ if ms % 60_000 == 0 => write!(f, "{}m", ms / 60_000),
        _ if ms % 1000 == 0 => write!(f, "{}s", ms / 1000),
        _ => write!(f, "{ms}ms"),
    }
}

impl fmt::Display for Patience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Patience::Points(n) => write!(f, "{n}"),
            Patience::Millis(ms) => write_duration(f, ms),
        }
    }
}

impl fmt::Display for MetricMatch {
    /// `name` or `name{k=v,k=v}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        write_tags(f, self.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// Writes `{k=v,k=v}`, or nothing without tags.
pub(crate) fn write_tags<'a>(
    f: &mut impl fmt::Write,
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> fmt::Result {
    let mut first = true;
    for (k, v) in tags {
        f.write_str(if first { "{" } else { "," })?;
        write!(f, "{k}={v}")?;
        first = false;
    }
    if !first {
        f.write_str("}")?;
    }
    Ok(())
}

impl fmt::Display for Rule {
    /// The rule as a line of the rule file ([`parse`] reads it back).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} {}", self.name, self.kind.rule_type(), self.metric)?;
        match self.kind {
            RuleKind::NewBest { mode, min_delta } => write!(f, " mode={} min_delta={min_delta}", mode.as_str())?,
            RuleKind::Plateau {
                mode,
                patience,
                min_delta,
            } => write!(f, " mode={} patience={patience} min_delta={min_delta}", mode.as_str())?,
            RuleKind::Stall { after_ms } => {
                f.write_str(" after=")?;
                write_duration(f, after_ms)?;
            }
            RuleKind::SustainedDip {
                factor,
                baseline_points,
                for_,
            } => write!(f, " factor={factor} baseline={baseline_points} for={for_}")?,
            RuleKind::Anomaly { nan, range, zscore } => {
                if nan {
                    f.write_str(" nan=true")?;
                }
                if let Some((lo, hi)) = range {
                    write!(f, " range={lo}..{hi}")?;
                }
                if let Some((z, window)) = zscore {
                    write!(f, " zscore={z}@{window}")?;
                }
            }
            RuleKind::Divergence { above } => write!(f, " above={above}")?,
        }
        if !self.labels.is_empty() {
            f.write_str(" labels: ")?;
            for (i, (k, v)) in self.labels.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{k}={v}")?;
            }
        }
        Ok(())
    }
}
