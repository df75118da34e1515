//! The engine: rules, per-(rule, job, series) state and the inputs that
//! move it (the semantics and decisions are in the header of `rules`).

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use super::series::{Change, State, owned_tags};
use super::{
    Alert, AlertState, METRIC_NAME_MAX, Mode, Rule, RuleKind, TAG_KEY_MAX, TAG_VALUE_MAX, TAGS_MAX, write_tags,
};

/// The engine's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Series (and stall clocks of running jobs) tracked at most.
    pub series: usize,
    /// Running jobs tracked at most (their stall clocks).
    pub running_jobs: usize,
    /// Ended job ids remembered (their late input is ignored).
    pub ended_remembered: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            series: 4096,
            running_jobs: 1024,
            ended_remembered: 256,
        }
    }
}

/// Counters since the engine was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Points (and job starts' stall clocks) that would have made a series
    /// beyond [`Limits::series`] (not tracked).
    pub series_refused: u64,
    /// Points refused for their size (a name over [`METRIC_NAME_MAX`]
    /// bytes, more than [`TAGS_MAX`] tags, a tag too long).
    pub points_refused: u64,
    /// Points and output of jobs that had ended (ignored).
    pub after_end: u64,
    /// Job starts beyond [`Limits::running_jobs`] (no stall clocks).
    pub jobs_refused: u64,
}

/// One series of one job under one rule.
struct Series {
    metric: String,
    /// Sorted by key.
    tags: Vec<(String, String)>,
    /// The last point's value and step.
    last: Option<(f64, Option<u64>)>,
    state: State,
}

/// What the engine keeps of a job.
#[derive(Default)]
struct Job {
    running: bool,
    /// Per rule (indexed like [`Rules::rules`]): the job's series under it,
    /// by [`series_key`]; a stall rule's one clock has the key "".
    series: Vec<BTreeMap<String, Series>>,
}

impl Job {
    fn is_empty(&self) -> bool {
        !self.running && self.series.iter().all(BTreeMap::is_empty)
    }
}

/// The rule engine: see the module header of `rules`.
pub struct Rules {
    rules: Vec<Rule>,
    limits: Limits,
    jobs: BTreeMap<u64, Job>,
    /// The newest ended job ids, oldest first.
    ended: VecDeque<u64>,
    /// Series in all jobs.
    tracked: usize,
    running: usize,
    stats: Stats,
}

impl Rules {
    /// An engine for `rules` with the default [`Limits`]. Rules from
    /// [`super::parse`] are valid; others are taken as they are (a NaN
    /// threshold never compares true, a window of 0 never fills, windows
    /// over [`super::WINDOW_MAX`] are clamped), and never panic.
    pub fn new(rules: Vec<Rule>) -> Self {
        Rules::with_limits(rules, Limits::default())
    }

    /// An engine for `rules` with `limits`.
    pub fn with_limits(rules: Vec<Rule>, limits: Limits) -> Self {
        Rules {
            rules,
            limits,
            jobs: BTreeMap::new(),
            ended: VecDeque::new(),
            tracked: 0,
            running: 0,
            stats: Stats::default(),
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Series (and stall clocks) tracked now.
    pub fn tracked(&self) -> usize {
        self.tracked
    }

    /// Alerts firing now.
    pub fn firing(&self) -> usize {
        self.jobs
            .values()
            .flat_map(|job| job.series.iter().flat_map(BTreeMap::values))
            .filter(|s| s.state.is_firing())
            .count()
    }

    /// Alerts firing now, per rule (in the rules' order).
    pub fn firing_by_rule(&self) -> Vec<usize> {
        let mut n = alloc::vec![0; self.rules.len()];
        for job in self.jobs.values() {
            for (i, series) in job.series.iter().enumerate() {
                if let Some(slot) = n.get_mut(i) {
                    *slot += series.values().filter(|s| s.state.is_firing()).count();
                }
            }
        }
        n
    }

    /// The objective of `metric` for the registry's summary: the mode of
    /// the first `new_best` or `plateau` rule naming it.
    pub fn objective(&self, metric: &str) -> Option<Mode> {
        self.rules.iter().find_map(|r| match r.kind {
            RuleKind::NewBest { mode, .. } | RuleKind::Plateau { mode, .. } if r.metric.name == metric => Some(mode),
            _ => None,
        })
    }

    /// A job (or its new attempt) runs: its stall clocks start now. For a
    /// job already running they restart, resolving a firing stall.
    pub fn on_job_started(&mut self, now_ms: u64, job_id: u64) -> Vec<Alert> {
        self.ended.retain(|&id| id != job_id);
        let mut alerts = Vec::new();
        if self.jobs.get(&job_id).is_some_and(|j| j.running) {
            self.activity(now_ms, job_id, None, &mut alerts);
            return alerts;
        }
        if self.running >= self.limits.running_jobs {
            self.stats.jobs_refused += 1;
            return alerts;
        }
        self.running += 1;
        let n = self.rules.len();
        let job = self.jobs.entry(job_id).or_default();
        job.running = true;
        job.series.resize_with(n, BTreeMap::new);
        for (i, rule) in self.rules.iter().enumerate() {
            if matches!(rule.kind, RuleKind::Stall { .. }) {
                start_stall(&mut self.tracked, &self.limits, &mut self.stats, job, i, rule, now_ms);
            }
        }
        alerts
    }

    /// A job ended: its firing alerts resolve, its state is freed, and its
    /// late input is ignored from now on.
    pub fn on_job_ended(&mut self, now_ms: u64, job_id: u64) -> Vec<Alert> {
        let mut alerts = Vec::new();
        if let Some(job) = self.jobs.remove(&job_id) {
            if job.running {
                self.running -= 1;
            }
            for (rule, series) in self.rules.iter().zip(&job.series) {
                self.tracked -= series.len();
                for s in series.values().filter(|s| s.state.is_firing()) {
                    alerts.push(alert(
                        rule,
                        job_id,
                        s,
                        AlertState::Resolved,
                        s.last,
                        now_ms,
                        "job ended",
                    ));
                }
            }
        }
        if self.limits.ended_remembered > 0 && !self.ended.contains(&job_id) {
            if self.ended.len() >= self.limits.ended_remembered {
                self.ended.pop_front();
            }
            self.ended.push_back(job_id);
        }
        alerts
    }

    /// Some log output of a job: restarts its stall clocks.
    pub fn on_output(&mut self, now_ms: u64, job_id: u64) -> Vec<Alert> {
        let mut alerts = Vec::new();
        if self.ended.contains(&job_id) {
            self.stats.after_end += 1;
        } else {
            self.activity(now_ms, job_id, None, &mut alerts);
        }
        alerts
    }

    /// A metric point of a job (`tags` in any order): every matching rule
    /// evaluates it, and a matching stall rule's clock restarts.
    pub fn on_point(
        &mut self,
        now_ms: u64,
        job_id: u64,
        metric: &str,
        tags: &[(&str, &str)],
        value: f64,
        step: Option<u64>,
    ) -> Vec<Alert> {
        let mut alerts = Vec::new();
        if self.ended.contains(&job_id) {
            self.stats.after_end += 1;
            return alerts;
        }
        // Even a point too large to track shows the job is alive.
        self.activity(now_ms, job_id, Some((metric, tags)), &mut alerts);
        let too_large = metric.len() > METRIC_NAME_MAX
            || tags.len() > TAGS_MAX
            || tags
                .iter()
                .any(|(k, v)| k.len() > TAG_KEY_MAX || v.len() > TAG_VALUE_MAX);
        if too_large {
            self.stats.points_refused += 1;
            return alerts;
        }
        let n = self.rules.len();
        let mut key = None;
        for (i, rule) in self.rules.iter().enumerate() {
            if matches!(rule.kind, RuleKind::Stall { .. }) || !rule.metric.matches(metric, tags) {
                continue;
            }
            let key = key.get_or_insert_with(|| series_key(metric, tags));
            let existing = self
                .jobs
                .get(&job_id)
                .and_then(|j| j.series.get(i))
                .is_some_and(|m| m.contains_key(key.as_str()));
            if !existing && self.tracked >= self.limits.series {
                self.stats.series_refused += 1;
                continue;
            }
            let job = self.jobs.entry(job_id).or_default();
            job.series.resize_with(n, BTreeMap::new);
            let series = job.series[i].entry(key.clone()).or_insert_with(|| {
                self.tracked += 1;
                Series {
                    metric: String::from(metric),
                    tags: owned_tags(tags),
                    last: None,
                    state: State::new(&rule.kind, now_ms),
                }
            });
            series.last = Some((value, step));
            if let Some(change) = series.state.on_point(&rule.kind, now_ms, value, step) {
                alerts.push(change_alert(rule, job_id, series, change, Some((value, step)), now_ms));
            }
        }
        alerts
    }

    /// The passing of time: stalls, and `plateau` and `sustained_dip` with
    /// durations.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Alert> {
        let mut alerts = Vec::new();
        for (&job_id, job) in &mut self.jobs {
            for (rule, series) in self.rules.iter().zip(&mut job.series) {
                for s in series.values_mut() {
                    if let Some(change) = s.state.on_tick(&rule.kind, now_ms) {
                        alerts.push(change_alert(rule, job_id, s, change, s.last, now_ms));
                    }
                }
            }
        }
        alerts
    }

    /// When [`Rules::tick`] has something to do without further input (it
    /// may be in the past if the clock went back).
    pub fn next_deadline(&self) -> Option<u64> {
        self.jobs
            .values()
            .flat_map(|job| {
                self.rules
                    .iter()
                    .zip(&job.series)
                    .flat_map(|(rule, series)| series.values().filter_map(|s| s.state.deadline(&rule.kind)))
            })
            .min()
    }

    /// New rules (a whole file [`super::parse`] accepted): a rule whose
    /// definition is unchanged keeps its state wherever it moved; the
    /// firing alerts of rules removed or changed resolve; new stall rules
    /// start their clocks now for running jobs.
    pub fn replace(&mut self, now_ms: u64, rules: Vec<Rule>) -> Vec<Alert> {
        let mut taken = alloc::vec![false; rules.len()];
        let moved: Vec<Option<usize>> = self
            .rules
            .iter()
            .map(|old| {
                let j = rules.iter().enumerate().position(|(j, new)| !taken[j] && new == old)?;
                taken[j] = true;
                Some(j)
            })
            .collect();
        let mut alerts = Vec::new();
        for (&job_id, job) in &mut self.jobs {
            let mut series: Vec<BTreeMap<String, Series>> = Vec::new();
            series.resize_with(rules.len(), BTreeMap::new);
            for ((old, map), to) in self.rules.iter().zip(core::mem::take(&mut job.series)).zip(&moved) {
                match *to {
                    Some(j) => series[j] = map,
                    None => {
                        self.tracked -= map.len();
                        for s in map.values().filter(|s| s.state.is_firing()) {
                            let text = "rule removed or changed";
                            alerts.push(alert(old, job_id, s, AlertState::Resolved, s.last, now_ms, text));
                        }
                    }
                }
            }
            job.series = series;
            if job.running {
                for (j, rule) in rules.iter().enumerate() {
                    if !taken[j] && matches!(rule.kind, RuleKind::Stall { .. }) {
                        start_stall(&mut self.tracked, &self.limits, &mut self.stats, job, j, rule, now_ms);
                    }
                }
            }
        }
        self.jobs.retain(|_, job| !job.is_empty());
        self.rules = rules;
        alerts
    }

    /// Output (`point: None`) or a point of a running job: restarts the
    /// clocks of the stall rules it concerns.
    fn activity(&mut self, now_ms: u64, job_id: u64, point: Option<(&str, &[(&str, &str)])>, out: &mut Vec<Alert>) {
        let Some(job) = self.jobs.get_mut(&job_id).filter(|j| j.running) else {
            return;
        };
        for (rule, series) in self.rules.iter().zip(&mut job.series) {
            let concerned = point.is_none_or(|(name, tags)| rule.metric.matches(name, tags));
            if !matches!(rule.kind, RuleKind::Stall { .. }) || !concerned {
                continue;
            }
            if let Some(s) = series.get_mut("")
                && let Some(change) = s.state.on_activity(now_ms)
            {
                out.push(change_alert(rule, job_id, s, change, None, now_ms));
            }
        }
    }
}

/// Starts rule `i`'s stall clock in `job` if there is room.
fn start_stall(
    tracked: &mut usize,
    limits: &Limits,
    stats: &mut Stats,
    job: &mut Job,
    i: usize,
    rule: &Rule,
    now_ms: u64,
) {
    let Some(map) = job.series.get_mut(i) else {
        return;
    };
    if map.contains_key("") {
        return;
    }
    if *tracked >= limits.series {
        stats.series_refused += 1;
        return;
    }
    *tracked += 1;
    map.insert(
        String::new(),
        Series {
            metric: rule.metric.name.clone(),
            tags: Vec::new(),
            last: None,
            state: State::new(&rule.kind, now_ms),
        },
    );
}

/// A series' identity within a job and a rule: the metric name and the
/// sorted tags, each part length-prefixed (so no two series share a key,
/// whatever bytes they hold; never empty, unlike a stall clock's "").
fn series_key(metric: &str, tags: &[(&str, &str)]) -> String {
    let mut sorted: Vec<&(&str, &str)> = tags.iter().collect();
    sorted.sort_unstable();
    let mut key = String::new();
    for part in core::iter::once(metric).chain(sorted.into_iter().flat_map(|&(k, v)| [k, v])) {
        let _ = write!(key, "{}:{part}", part.len());
    }
    key
}

fn change_alert(
    rule: &Rule,
    job_id: u64,
    s: &Series,
    change: Change,
    point: Option<(f64, Option<u64>)>,
    now_ms: u64,
) -> Alert {
    alert(rule, job_id, s, change.state, point, now_ms, &change.text)
}

fn alert(
    rule: &Rule,
    job_id: u64,
    s: &Series,
    state: AlertState,
    point: Option<(f64, Option<u64>)>,
    now_ms: u64,
    text: &str,
) -> Alert {
    let mut summary = String::new();
    let _ = write!(summary, "job {job_id}");
    if !matches!(rule.kind, RuleKind::Stall { .. }) {
        let _ = write!(summary, " {}", s.metric);
        let _ = write_tags(&mut summary, s.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    let _ = write!(summary, ": {text}");
    Alert {
        rule: rule.name.clone(),
        kind: rule.kind.rule_type(),
        job_id,
        metric: s.metric.clone(),
        tags: s.tags.clone(),
        state,
        value: point.map(|(v, _)| v),
        step: point.and_then(|(_, s)| s),
        at_ms: now_ms,
        labels: rule.labels.clone(),
        summary,
    }
}
