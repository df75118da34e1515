//! One series' state under one rule, and what a point, a tick or activity
//! does to it (the semantics in the module header of `rules`).

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::{AlertState, Patience, RuleKind, WINDOW_MAX, write_duration};

/// What happened to a series' alert, with the words for people.
pub(super) struct Change {
    pub state: AlertState,
    pub text: String,
}

fn firing(text: String) -> Option<Change> {
    Some(Change {
        state: AlertState::Firing,
        text,
    })
}

fn resolved(text: String) -> Option<Change> {
    Some(Change {
        state: AlertState::Resolved,
        text,
    })
}

/// The newest values of a series, at most `cap` (at most [`WINDOW_MAX`]).
pub(super) struct Window {
    values: VecDeque<f64>,
    cap: usize,
}

impl Window {
    fn new(cap: usize) -> Self {
        Window {
            values: VecDeque::new(),
            cap: cap.min(WINDOW_MAX),
        }
    }

    fn push(&mut self, value: f64) {
        if self.cap == 0 {
            return;
        }
        if self.values.len() >= self.cap {
            self.values.pop_front();
        }
        self.values.push_back(value);
    }

    /// Holds `cap` values (a window of 0 never does).
    fn is_full(&self) -> bool {
        self.cap > 0 && self.values.len() >= self.cap
    }

    fn mean(&self) -> f64 {
        self.values.iter().sum::<f64>() / self.values.len() as f64
    }

    /// `(mean, population variance)`, two passes (simple and exact enough
    /// for a few hundred values).
    fn mean_variance(&self) -> (f64, f64) {
        let mean = self.mean();
        let var = self.values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / self.values.len() as f64;
        (mean, var)
    }
}

/// The per-kind part of a series' state.
pub(super) enum State {
    NewBest {
        best: Option<f64>,
    },
    Plateau {
        best: Option<(f64, Option<u64>)>,
        /// When the best was set (or the first point came).
        best_ms: u64,
        /// Finite points since then.
        since_best: u64,
        firing: bool,
    },
    Stall {
        /// The last output or matching metric (or the start).
        last_ms: u64,
        firing: bool,
    },
    Dip {
        baseline: Window,
        /// When the first value of the current dip came.
        since_ms: Option<u64>,
        /// Values of the current dip.
        points: u64,
        firing: bool,
    },
    Anomaly {
        window: Option<Window>,
        firing: bool,
    },
    Divergence {
        firing: bool,
    },
}

impl State {
    /// A fresh state for a rule of `kind` (`now_ms` starts a stall clock).
    pub fn new(kind: &RuleKind, now_ms: u64) -> Self {
        match *kind {
            RuleKind::NewBest { .. } => State::NewBest { best: None },
            RuleKind::Plateau { .. } => State::Plateau {
                best: None,
                best_ms: now_ms,
                since_best: 0,
                firing: false,
            },
            RuleKind::Stall { .. } => State::Stall {
                last_ms: now_ms,
                firing: false,
            },
            RuleKind::SustainedDip { baseline_points, .. } => State::Dip {
                baseline: Window::new(baseline_points),
                since_ms: None,
                points: 0,
                firing: false,
            },
            RuleKind::Anomaly { zscore, .. } => State::Anomaly {
                window: zscore.map(|(_, n)| Window::new(n)),
                firing: false,
            },
            RuleKind::Divergence { .. } => State::Divergence { firing: false },
        }
    }

    /// Whether an alert of this series is firing (and so owes a resolve).
    pub fn is_firing(&self) -> bool {
        match *self {
            State::NewBest { .. } => false,
            State::Plateau { firing, .. }
            | State::Stall { firing, .. }
            | State::Dip { firing, .. }
            | State::Anomaly { firing, .. }
            | State::Divergence { firing } => firing,
        }
    }

    /// Output or a matching metric of the job: restarts a stall clock.
    pub fn on_activity(&mut self, now_ms: u64) -> Option<Change> {
        let State::Stall { last_ms, firing } = self else {
            return None;
        };
        *last_ms = now_ms;
        if core::mem::take(firing) {
            return resolved(String::from("output again"));
        }
        None
    }

    /// A point of the series (`kind` is the rule's, the one the state was
    /// made for; a mismatch does nothing).
    pub fn on_point(&mut self, kind: &RuleKind, now_ms: u64, value: f64, step: Option<u64>) -> Option<Change> {
        match (self, *kind) {
            (State::NewBest { best }, RuleKind::NewBest { mode, min_delta }) => {
                if !value.is_finite() {
                    return None;
                }
                match *best {
                    None => {
                        *best = Some(value);
                        None
                    }
                    Some(old) if mode.improves(value, old, min_delta) => {
                        *best = Some(value);
                        firing(format!("new best {value}{} (was {old})", at_step(step)))
                    }
                    Some(_) => None,
                }
            }
            (
                State::Plateau {
                    best,
                    best_ms,
                    since_best,
                    firing: is_firing,
                },
                RuleKind::Plateau {
                    mode,
                    patience,
                    min_delta,
                },
            ) => {
                if !value.is_finite() {
                    return None;
                }
                match *best {
                    Some((old, _)) if !mode.improves(value, old, min_delta) => {
                        *since_best += 1;
                        let passed = match patience {
                            Patience::Points(n) => *since_best >= u64::from(n),
                            Patience::Millis(ms) => now_ms.saturating_sub(*best_ms) >= ms,
                        };
                        if passed && !*is_firing {
                            *is_firing = true;
                            return firing(plateau_text(patience, *best));
                        }
                        None
                    }
                    _ => {
                        let first = best.is_none();
                        *best = Some((value, step));
                        *best_ms = now_ms;
                        *since_best = 0;
                        if !first && core::mem::take(is_firing) {
                            return resolved(format!("new best {value}{}", at_step(step)));
                        }
                        None
                    }
                }
            }
            (
                State::Dip {
                    baseline,
                    since_ms,
                    points,
                    firing: is_firing,
                },
                RuleKind::SustainedDip { factor, for_, .. },
            ) => {
                if !value.is_finite() {
                    return None;
                }
                if !baseline.is_full() {
                    baseline.push(value);
                    return None;
                }
                let mean = baseline.mean();
                let threshold = factor * mean;
                if value < threshold {
                    *points += 1;
                    let since = *since_ms.get_or_insert(now_ms);
                    let passed = match for_ {
                        Patience::Points(n) => *points >= u64::from(n),
                        Patience::Millis(ms) => now_ms.saturating_sub(since) >= ms,
                    };
                    if passed && !*is_firing {
                        *is_firing = true;
                        return firing(dip_text(value, factor, mean, for_));
                    }
                    return None;
                }
                baseline.push(value);
                *since_ms = None;
                *points = 0;
                if core::mem::take(is_firing) {
                    return resolved(format!(
                        "{value} is back at or above {factor} x the baseline {}",
                        Approx(mean)
                    ));
                }
                None
            }
            (
                State::Anomaly {
                    window,
                    firing: is_firing,
                },
                RuleKind::Anomaly { nan, range, zscore },
            ) => {
                if value.is_nan() && !nan && range.is_none() {
                    return None;
                }
                let mut flagged = None;
                if nan && !value.is_finite() {
                    flagged = Some(format!("value {value}"));
                }
                if flagged.is_none()
                    && let Some((lo, hi)) = range
                    && !(lo <= value && value <= hi)
                {
                    flagged = Some(format!("value {value} outside {lo}..{hi}"));
                }
                if flagged.is_none()
                    && let (Some((z, n)), Some(window)) = (zscore, window.as_ref())
                    && window.is_full()
                {
                    let (mean, var) = window.mean_variance();
                    let dev = value - mean;
                    if dev * dev > z * z * var {
                        let score = if var > 0.0 { dev / sqrt(var) } else { dev / 0.0 };
                        flagged = Some(format!(
                            "value {value}: z {} beyond {z} over the last {n} points (mean {})",
                            Approx(score),
                            Approx(mean)
                        ));
                    }
                }
                match flagged {
                    Some(text) => {
                        if !core::mem::replace(is_firing, true) {
                            return firing(text);
                        }
                        None
                    }
                    None => {
                        if let Some(window) = window
                            && value.is_finite()
                        {
                            window.push(value);
                        }
                        if core::mem::take(is_firing) {
                            return resolved(format!("normal value {value}"));
                        }
                        None
                    }
                }
            }
            (State::Divergence { firing: is_firing }, RuleKind::Divergence { above }) => {
                if value.is_nan() {
                    return None;
                }
                if value > above {
                    if !core::mem::replace(is_firing, true) {
                        return firing(format!("value {value} above {above}"));
                    }
                    return None;
                }
                if core::mem::take(is_firing) {
                    return resolved(format!("value {value} back at or below {above}"));
                }
                None
            }
            // Stall clocks are moved by `on_activity`; a state that does not
            // match its rule (never made so) does nothing.
            _ => None,
        }
    }

    /// The passing of time: duration patience of `plateau` and
    /// `sustained_dip`, and `stall`.
    pub fn on_tick(&mut self, kind: &RuleKind, now_ms: u64) -> Option<Change> {
        let due = self.deadline(kind).is_some_and(|at| now_ms >= at);
        if !due {
            return None;
        }
        match (self, *kind) {
            (
                State::Plateau {
                    best,
                    firing: is_firing,
                    ..
                },
                RuleKind::Plateau { patience, .. },
            ) => {
                *is_firing = true;
                firing(plateau_text(patience, *best))
            }
            (State::Stall { firing: is_firing, .. }, RuleKind::Stall { after_ms }) => {
                *is_firing = true;
                let mut text = String::from("no output and no metric for ");
                let _ = write_duration(&mut text, after_ms);
                firing(text)
            }
            (
                State::Dip {
                    baseline,
                    firing: is_firing,
                    ..
                },
                RuleKind::SustainedDip { factor, for_, .. },
            ) => {
                *is_firing = true;
                firing(format!(
                    "below {factor} x the baseline {} for {for_}",
                    Approx(baseline.mean())
                ))
            }
            _ => None,
        }
    }

    /// When [`State::on_tick`] will fire, if it will without further input.
    pub fn deadline(&self, kind: &RuleKind) -> Option<u64> {
        match (self, *kind) {
            (
                State::Plateau {
                    best: Some(_),
                    best_ms,
                    firing: false,
                    ..
                },
                RuleKind::Plateau {
                    patience: Patience::Millis(ms),
                    ..
                },
            ) => Some(best_ms.saturating_add(ms)),
            (State::Stall { last_ms, firing: false }, RuleKind::Stall { after_ms }) => {
                Some(last_ms.saturating_add(after_ms))
            }
            (
                State::Dip {
                    since_ms: Some(since),
                    firing: false,
                    ..
                },
                RuleKind::SustainedDip {
                    for_: Patience::Millis(ms),
                    ..
                },
            ) => Some(since.saturating_add(ms)),
            _ => None,
        }
    }
}

fn at_step(step: Option<u64>) -> String {
    step.map(|s| format!(" at step {s}")).unwrap_or_default()
}

fn plateau_text(patience: Patience, best: Option<(f64, Option<u64>)>) -> String {
    let unit = if matches!(patience, Patience::Points(_)) {
        " points"
    } else {
        ""
    };
    match best {
        Some((value, step)) => format!("no new best for {patience}{unit} (best {value}{})", at_step(step)),
        None => format!("no new best for {patience}{unit}"),
    }
}

fn dip_text(value: f64, factor: f64, mean: f64, for_: Patience) -> String {
    let unit = if matches!(for_, Patience::Points(_)) {
        " points"
    } else {
        ""
    };
    format!(
        "{value} below {factor} x the baseline {} for {for_}{unit}",
        Approx(mean)
    )
}

/// A number the engine computed (a mean, a z-score), for people: at most 4
/// decimals without trailing zeros, or 4 significant digits in exponent
/// form when tiny or huge. Values and thresholds print exactly instead.
pub(super) struct Approx(pub f64);

impl fmt::Display for Approx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        let magnitude = if x < 0.0 { -x } else { x };
        if !x.is_finite() || x == 0.0 {
            return write!(f, "{x}");
        }
        if !(1e-3..1e12).contains(&magnitude) {
            return write!(f, "{x:.3e}");
        }
        let text = format!("{x:.4}");
        f.write_str(text.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// √x for the summaries (`core` has no `f64::sqrt`): Newton's method from
/// an estimate with half the exponent, until it stops moving.
pub(super) fn sqrt(x: f64) -> f64 {
    if x == 0.0 || x == f64::INFINITY {
        return x;
    }
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    let mut r = f64::from_bits((x.to_bits() >> 1) + (0x3ff << 51));
    for _ in 0..64 {
        let next = 0.5 * (r + x / r);
        if next == r {
            break;
        }
        r = next;
    }
    r
}

/// A series' tags as owned pairs, sorted by key.
pub(super) fn owned_tags(tags: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut owned: Vec<(String, String)> = tags.iter().map(|(k, v)| (String::from(*k), String::from(*v))).collect();
    owned.sort_unstable();
    owned
}
