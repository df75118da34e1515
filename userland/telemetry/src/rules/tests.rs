//! The engine's acceptance scenarios (docs/telemetry.md, issue 6), the rule
//! file's errors, `replace`, and random inputs.

use std::collections::HashSet;
use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use super::*;

const S: u64 = 1000;
const MIN: u64 = 60 * S;

fn engine(text: &str) -> Rules {
    Rules::new(parse(text).unwrap())
}

/// A point without tags.
fn point(r: &mut Rules, now_ms: u64, job: u64, name: &str, value: f64, step: u64) -> Vec<Alert> {
    r.on_point(now_ms, job, name, &[], value, Some(step))
}

/// `(rule, state)` of each alert.
fn brief(alerts: &[Alert]) -> Vec<(&str, AlertState)> {
    alerts.iter().map(|a| (a.rule.as_str(), a.state)).collect()
}

use AlertState::{Firing, Resolved};

// ---- new_best and plateau ----

#[test]
fn improving_three_times_then_flat_is_three_new_bests_then_one_plateau() {
    let mut r = engine(
        "best: new_best val_loss min_delta=0.001\n\
         flat: plateau val_loss patience=3 labels: severity=warning\n",
    );
    // The first value is the initial best: nothing.
    assert!(point(&mut r, 0, 1, "val_loss", 1.0, 100).is_empty());
    let mut bests = Vec::new();
    for (i, v) in [0.8, 0.6, 0.5].into_iter().enumerate() {
        let alerts = point(&mut r, (i as u64 + 1) * S, 1, "val_loss", v, 200 + 100 * i as u64);
        assert_eq!(brief(&alerts), [("best", Firing)]);
        assert_eq!(alerts[0].kind, RuleType::NewBest);
        assert_eq!(alerts[0].value, Some(v));
        bests.extend(alerts);
    }
    assert_eq!(bests.len(), 3);
    assert_eq!(bests[2].summary, "job 1 val_loss: new best 0.5 at step 400 (was 0.6)");
    // Flat: nothing below 0.5 (plateau's min_delta is 0, so any lower value
    // would be a new best for it).
    assert!(point(&mut r, 10 * S, 1, "val_loss", 0.5, 500).is_empty());
    assert!(point(&mut r, 11 * S, 1, "val_loss", 0.52, 600).is_empty());
    let alerts = point(&mut r, 12 * S, 1, "val_loss", 0.51, 700);
    assert_eq!(brief(&alerts), [("flat", Firing)]);
    let plateau = &alerts[0];
    assert_eq!(plateau.kind, RuleType::Plateau);
    assert_eq!(plateau.job_id, 1);
    assert_eq!(plateau.metric, "val_loss");
    assert_eq!(
        (plateau.value, plateau.step, plateau.at_ms),
        (Some(0.51), Some(700), 12 * S)
    );
    assert_eq!(plateau.labels, [("severity".to_string(), "warning".to_string())]);
    assert_eq!(
        plateau.summary,
        "job 1 val_loss: no new best for 3 points (best 0.5 at step 400)"
    );
    // Once: further flat points say nothing.
    for i in 0..20 {
        assert!(point(&mut r, (13 + i) * S, 1, "val_loss", 0.55, 800 + i).is_empty());
    }
    assert_eq!(r.firing(), 1);
    // A new best is an event and resolves the plateau.
    let alerts = point(&mut r, 40 * S, 1, "val_loss", 0.4, 2000);
    assert_eq!(brief(&alerts), [("best", Firing), ("flat", Resolved)]);
    assert_eq!(r.firing(), 0);
}

#[test]
fn new_best_follows_mode_and_min_delta() {
    let mut r = engine("acc: new_best val_acc mode=max min_delta=0.01");
    assert!(point(&mut r, 0, 1, "val_acc", 0.5, 1).is_empty());
    assert!(point(&mut r, 1, 1, "val_acc", 0.505, 2).is_empty(), "within min_delta");
    assert!(
        point(&mut r, 2, 1, "val_acc", 0.51, 3).is_empty(),
        "exactly min_delta is not more"
    );
    assert_eq!(brief(&point(&mut r, 3, 1, "val_acc", 0.52, 4)), [("acc", Firing)]);
    assert!(
        point(&mut r, 4, 1, "val_acc", 0.1, 5).is_empty(),
        "lower is worse for max"
    );
    // Non-finite values are anomaly's business: no best.
    assert!(point(&mut r, 5, 1, "val_acc", f64::INFINITY, 6).is_empty());
    assert!(point(&mut r, 6, 1, "val_acc", f64::NAN, 7).is_empty());
    assert_eq!(brief(&point(&mut r, 7, 1, "val_acc", 0.6, 8)), [("acc", Firing)]);
    // No new_best alert is ever resolved.
    assert!(!RuleType::NewBest.resolves());
    assert!(r.on_job_ended(8, 1).is_empty());
}

#[test]
fn plateau_with_a_duration_fires_on_tick() {
    let mut r = engine("flat: plateau val_loss patience=30s");
    assert_eq!(r.next_deadline(), None, "no point, no clock");
    assert!(point(&mut r, 10 * S, 1, "val_loss", 1.0, 1).is_empty());
    assert_eq!(r.next_deadline(), Some(40 * S));
    assert!(point(&mut r, 20 * S, 1, "val_loss", 1.1, 2).is_empty());
    assert!(r.tick(39 * S).is_empty());
    let alerts = r.tick(40 * S);
    assert_eq!(brief(&alerts), [("flat", Firing)]);
    assert_eq!(alerts[0].value, Some(1.1), "the last value");
    assert_eq!(
        alerts[0].summary,
        "job 1 val_loss: no new best for 30s (best 1 at step 1)"
    );
    assert_eq!(r.next_deadline(), None);
    assert!(r.tick(100 * S).is_empty());
    assert!(point(&mut r, 101 * S, 1, "val_loss", 1.2, 3).is_empty());
    assert_eq!(
        brief(&point(&mut r, 102 * S, 1, "val_loss", 0.9, 4)),
        [("flat", Resolved)]
    );
    assert_eq!(r.next_deadline(), Some(132 * S));
    // A point past the patience fires without waiting for a tick.
    assert_eq!(
        brief(&point(&mut r, 140 * S, 1, "val_loss", 0.95, 5)),
        [("flat", Firing)]
    );
}

// ---- stall ----

#[test]
fn a_trainer_that_stops_printing_stalls_once_and_resolves_on_output() {
    let mut r = engine("hung: stall * after=10m labels: severity=critical");
    assert!(r.on_job_started(0, 7).is_empty());
    assert_eq!(r.next_deadline(), Some(10 * MIN));
    assert!(r.on_output(4 * MIN, 7).is_empty());
    assert!(point(&mut r, 5 * MIN, 7, "loss", 0.3, 50).is_empty());
    assert_eq!(r.next_deadline(), Some(15 * MIN));
    assert!(r.tick(15 * MIN - 1).is_empty());
    let alerts = r.tick(15 * MIN);
    assert_eq!(brief(&alerts), [("hung", Firing)]);
    let a = &alerts[0];
    assert_eq!((a.kind, a.job_id, a.value, a.step), (RuleType::Stall, 7, None, None));
    assert_eq!(a.metric, "*");
    assert_eq!(a.summary, "job 7: no output and no metric for 10m");
    assert!(r.tick(60 * MIN).is_empty(), "once");
    assert_eq!(r.next_deadline(), None);
    let alerts = r.on_output(61 * MIN, 7);
    assert_eq!(brief(&alerts), [("hung", Resolved)]);
    assert_eq!(alerts[0].summary, "job 7: output again");
    assert!(r.on_output(62 * MIN, 7).is_empty());
    assert_eq!(r.next_deadline(), Some(72 * MIN));
    // A metric resolves it too.
    assert_eq!(brief(&r.tick(72 * MIN)), [("hung", Firing)]);
    assert_eq!(
        brief(&point(&mut r, 73 * MIN, 7, "loss", 0.2, 60)),
        [("hung", Resolved)]
    );
}

#[test]
fn only_running_jobs_stall() {
    let mut r = engine("hung: stall * after=1m");
    // Never started: its points make no stall clock.
    assert!(point(&mut r, 0, 1, "loss", 1.0, 1).is_empty());
    assert!(r.on_output(0, 1).is_empty());
    assert_eq!(r.next_deadline(), None);
    assert!(r.tick(10 * MIN).is_empty());
    // Started then ended (a crash is not a stall).
    r.on_job_started(0, 2);
    assert!(r.on_job_ended(30 * S, 2).is_empty());
    assert_eq!(r.next_deadline(), None);
    assert!(r.tick(10 * MIN).is_empty());
    assert_eq!(r.tracked(), 0);
    // A stalled job that ends resolves its stall.
    r.on_job_started(0, 3);
    assert_eq!(brief(&r.tick(MIN)), [("hung", Firing)]);
    let alerts = r.on_job_ended(2 * MIN, 3);
    assert_eq!(brief(&alerts), [("hung", Resolved)]);
    assert_eq!(alerts[0].summary, "job 3: job ended");
    // A retry's new attempt restarts the clock.
    r.on_job_started(0, 4);
    assert_eq!(brief(&r.tick(MIN)), [("hung", Firing)]);
    assert_eq!(brief(&r.on_job_started(2 * MIN, 4)), [("hung", Resolved)]);
    assert_eq!(r.next_deadline(), Some(3 * MIN));
}

#[test]
fn a_stall_on_a_metric_counts_that_metric_and_any_output() {
    let mut r = engine("quiet: stall train_loss{split=train} after=1m");
    r.on_job_started(0, 1);
    point(&mut r, 50 * S, 1, "accuracy", 0.5, 1);
    r.on_point(50 * S, 1, "train_loss", &[("split", "val")], 0.5, Some(1));
    assert_eq!(r.next_deadline(), Some(MIN), "other metrics do not count");
    r.on_point(
        55 * S,
        1,
        "train_loss",
        &[("rank", "0"), ("split", "train")],
        0.5,
        Some(1),
    );
    assert_eq!(r.next_deadline(), Some(55 * S + MIN));
    r.on_output(70 * S, 1);
    assert_eq!(r.next_deadline(), Some(70 * S + MIN));
}

#[test]
fn time_going_backwards_never_fires_early() {
    let mut r = engine("hung: stall * after=1m\nflat: plateau loss patience=1m");
    r.on_job_started(100 * MIN, 1);
    point(&mut r, 100 * MIN, 1, "loss", 1.0, 1);
    assert!(r.tick(50 * MIN).is_empty());
    assert!(point(&mut r, 10 * MIN, 1, "loss", 2.0, 2).is_empty());
    // Output with an older clock restarts the stall from that clock.
    r.on_output(10 * MIN, 1);
    assert_eq!(r.next_deadline(), Some(11 * MIN));
    assert!(r.tick(0).is_empty());
    assert!(r.tick(u64::MAX).len() == 2);
}

// ---- sustained_dip ----

/// Points of one series of job 1, one a second.
#[derive(Default)]
struct Feed {
    t: u64,
    step: u64,
}

impl Feed {
    fn run(&mut self, r: &mut Rules, name: &str, value: f64, seconds: u64) -> Vec<Alert> {
        let mut out = Vec::new();
        for _ in 0..seconds {
            out.extend(point(r, self.t, 1, name, value, self.step));
            self.t += S;
            self.step += 1;
        }
        out
    }
}

#[test]
fn a_throughput_that_halves_for_the_duration_dips_then_recovers() {
    let mut r = engine("slow: sustained_dip samples_per_s factor=0.6 baseline=10 for=1m");
    let mut feed = Feed::default();
    assert!(feed.run(&mut r, "samples_per_s", 100.0, 30).is_empty());
    // Halved for 59 s: not yet.
    assert!(feed.run(&mut r, "samples_per_s", 50.0, 60).is_empty());
    assert_eq!(r.next_deadline(), Some(90 * S));
    let alerts = feed.run(&mut r, "samples_per_s", 50.0, 30);
    assert_eq!(brief(&alerts), [("slow", Firing)], "once");
    assert_eq!(alerts[0].at_ms, 90 * S);
    assert_eq!(
        alerts[0].summary,
        "job 1 samples_per_s: 50 below 0.6 x the baseline 100 for 1m"
    );
    // The dip never entered the baseline: recovering to 100 resolves.
    let alerts = feed.run(&mut r, "samples_per_s", 100.0, 5);
    assert_eq!(brief(&alerts), [("slow", Resolved)]);
    assert_eq!(alerts[0].value, Some(100.0));
    // A short dip does not fire; a tick fires a long one without points.
    assert!(feed.run(&mut r, "samples_per_s", 50.0, 30).is_empty());
    assert!(feed.run(&mut r, "samples_per_s", 100.0, 1).is_empty());
    feed.run(&mut r, "samples_per_s", 50.0, 1);
    let start = feed.t - S;
    assert_eq!(r.next_deadline(), Some(start + MIN));
    assert_eq!(brief(&r.tick(start + MIN)), [("slow", Firing)]);
}

#[test]
fn a_dip_counted_in_points_and_a_baseline_that_must_fill() {
    let mut r = engine("slow: sustained_dip tok_s factor=0.5 baseline=4 for=3");
    // Nothing before the baseline is full, however low.
    for (i, v) in [10.0, 0.0, 10.0, 10.0].into_iter().enumerate() {
        assert!(point(&mut r, 0, 1, "tok_s", v, i as u64).is_empty());
    }
    // Baseline 7.5: threshold 3.75.
    assert!(point(&mut r, 0, 1, "tok_s", 3.0, 4).is_empty());
    assert!(point(&mut r, 0, 1, "tok_s", f64::NAN, 5).is_empty(), "NaN is ignored");
    assert!(point(&mut r, 0, 1, "tok_s", 3.0, 6).is_empty());
    assert_eq!(brief(&point(&mut r, 0, 1, "tok_s", 3.0, 7)), [("slow", Firing)]);
    assert_eq!(r.next_deadline(), None);
    assert_eq!(
        brief(&point(&mut r, 0, 1, "tok_s", 3.75, 8)),
        [("slow", Resolved)],
        "at is back"
    );
}

// ---- anomaly ----

#[test]
fn a_nan_loss_raises_one_anomaly_not_one_per_point_then_resolves() {
    let mut r = engine("nan: anomaly * nan=true labels: severity=critical");
    assert!(point(&mut r, 0, 1, "loss", 1.0, 1).is_empty());
    let alerts = point(&mut r, 1, 1, "loss", f64::NAN, 2);
    assert_eq!(brief(&alerts), [("nan", Firing)]);
    assert_eq!(alerts[0].summary, "job 1 loss: value NaN");
    assert!(alerts[0].value.is_some_and(f64::is_nan));
    for (i, v) in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::NAN]
        .into_iter()
        .enumerate()
    {
        assert!(point(&mut r, 2, 1, "loss", v, 3 + i as u64).is_empty(), "dedup");
    }
    // Another series of the same job has its own alert.
    assert_eq!(
        brief(&point(&mut r, 3, 1, "grad_norm", f64::INFINITY, 3)),
        [("nan", Firing)]
    );
    assert_eq!(r.firing(), 2);
    let alerts = point(&mut r, 4, 1, "loss", 0.9, 8);
    assert_eq!(brief(&alerts), [("nan", Resolved)]);
    assert_eq!(alerts[0].summary, "job 1 loss: normal value 0.9");
    assert!(point(&mut r, 5, 1, "loss", 0.8, 9).is_empty());
    assert_eq!(r.firing(), 1);
}

#[test]
fn a_range_flags_values_outside_and_nan() {
    let mut r = engine("frac: anomaly dead_frac range=0..1");
    assert!(point(&mut r, 0, 1, "dead_frac", 0.0, 1).is_empty(), "inclusive");
    assert!(point(&mut r, 0, 1, "dead_frac", 1.0, 2).is_empty(), "inclusive");
    let alerts = point(&mut r, 0, 1, "dead_frac", -0.1, 3);
    assert_eq!(brief(&alerts), [("frac", Firing)]);
    assert_eq!(alerts[0].summary, "job 1 dead_frac: value -0.1 outside 0..1");
    assert!(point(&mut r, 0, 1, "dead_frac", f64::NAN, 4).is_empty(), "still firing");
    assert_eq!(brief(&point(&mut r, 0, 1, "dead_frac", 0.5, 5)), [("frac", Resolved)]);
    assert_eq!(
        brief(&point(&mut r, 0, 1, "dead_frac", f64::NAN, 6)),
        [("frac", Firing)]
    );
}

#[test]
fn gate_saturation_beyond_the_zscore_over_a_full_window() {
    let mut r = engine("gates: anomaly gate_saturation zscore=3@20");
    let mut step = 0;
    let mut feed = |r: &mut Rules, v: f64| {
        step += 1;
        r.on_point(step * S, 4, "gate_saturation", &[("layer", "12")], v, Some(step))
    };
    // The window must be full: a jump at point 10 says nothing (and joins
    // the window).
    for i in 0..19 {
        let v = if i == 9 { 0.5 } else { 0.1 + 0.01 * f64::from(i % 3) };
        assert!(feed(&mut r, v).is_empty(), "point {i}");
    }
    assert!(feed(&mut r, 0.1).is_empty());
    // Window full: mean ~0.13, sd ~0.09; 0.12 is normal, 0.9 is not.
    assert!(feed(&mut r, 0.12).is_empty());
    let alerts = feed(&mut r, 0.9);
    assert_eq!(brief(&alerts), [("gates", Firing)]);
    assert_eq!(alerts[0].tags, [("layer".to_string(), "12".to_string())]);
    assert_eq!(
        alerts[0].summary,
        "job 4 gate_saturation{layer=12}: value 0.9: z 9.0307 beyond 3 over the last 20 points (mean 0.13)"
    );
    // Saturated points stay out of the window: still anomalous, no repeat.
    for _ in 0..30 {
        assert!(feed(&mut r, 0.9).is_empty());
    }
    assert_eq!(brief(&feed(&mut r, 0.11)), [("gates", Resolved)]);
    // A NaN means nothing to a zscore-only rule.
    assert!(feed(&mut r, f64::NAN).is_empty());
    assert!(feed(&mut r, f64::INFINITY).len() == 1, "infinitely far from the mean");
}

#[test]
fn a_flat_window_flags_any_other_value() {
    let mut r = engine("flat: anomaly x zscore=2@3");
    for _ in 0..3 {
        assert!(point(&mut r, 0, 1, "x", 5.0, 0).is_empty());
    }
    assert!(point(&mut r, 0, 1, "x", 5.0, 0).is_empty());
    let alerts = point(&mut r, 0, 1, "x", 5.5, 0);
    assert_eq!(brief(&alerts), [("flat", Firing)]);
    assert!(alerts[0].summary.contains("z inf"), "{}", alerts[0].summary);
}

// ---- divergence ----

#[test]
fn divergence_fires_above_and_resolves_at_or_below() {
    let mut r = engine("boom: divergence train_loss above=10");
    assert!(point(&mut r, 0, 1, "train_loss", 10.0, 1).is_empty(), "at is not above");
    let alerts = point(&mut r, 1, 1, "train_loss", 11.0, 2);
    assert_eq!(brief(&alerts), [("boom", Firing)]);
    assert_eq!(alerts[0].summary, "job 1 train_loss: value 11 above 10");
    assert!(point(&mut r, 2, 1, "train_loss", 1e300, 3).is_empty());
    assert!(
        point(&mut r, 3, 1, "train_loss", f64::NAN, 4).is_empty(),
        "NaN neither fires nor resolves"
    );
    assert_eq!(r.firing(), 1);
    assert_eq!(brief(&point(&mut r, 4, 1, "train_loss", 10.0, 5)), [("boom", Resolved)]);
    assert_eq!(
        brief(&point(&mut r, 5, 1, "train_loss", f64::INFINITY, 6)),
        [("boom", Firing)]
    );
}

// ---- series, jobs, bounds ----

#[test]
fn each_job_and_tag_set_is_its_own_series() {
    let mut r = engine("boom: divergence loss{split=val} above=1");
    assert!(r.on_point(0, 1, "loss", &[("split", "train")], 5.0, None).is_empty());
    assert!(r.on_point(0, 1, "loss", &[], 5.0, None).is_empty());
    let a = r.on_point(0, 1, "loss", &[("split", "val"), ("rank", "0")], 5.0, None);
    assert_eq!(brief(&a), [("boom", Firing)]);
    assert_eq!(
        a[0].tags,
        [("rank".into(), "0".into()), ("split".into(), "val".into())],
        "sorted"
    );
    assert_eq!(a[0].summary, "job 1 loss{rank=0,split=val}: value 5 above 1");
    // Same tags in another order: the same series (dedup).
    assert!(
        r.on_point(0, 1, "loss", &[("rank", "0"), ("split", "val")], 6.0, None)
            .is_empty()
    );
    // Another rank, another job: their own.
    assert_eq!(
        r.on_point(0, 1, "loss", &[("split", "val"), ("rank", "1")], 5.0, None)
            .len(),
        1
    );
    assert_eq!(
        r.on_point(0, 2, "loss", &[("split", "val"), ("rank", "0")], 5.0, None)
            .len(),
        1
    );
    assert_eq!((r.tracked(), r.firing()), (3, 3));
}

#[test]
fn an_ended_jobs_alerts_resolve_and_its_late_points_are_ignored() {
    let mut r = engine("boom: divergence loss above=1\nnan: anomaly loss nan=true");
    r.on_job_started(0, 1);
    assert_eq!(point(&mut r, 0, 1, "loss", f64::INFINITY, 1).len(), 2);
    let alerts = r.on_job_ended(5, 1);
    assert_eq!(brief(&alerts), [("boom", Resolved), ("nan", Resolved)]);
    assert_eq!(alerts[0].summary, "job 1 loss: job ended");
    assert_eq!(
        (alerts[0].value, alerts[0].step, alerts[0].at_ms),
        (Some(f64::INFINITY), Some(1), 5)
    );
    assert_eq!((r.tracked(), r.firing()), (0, 0));
    assert!(point(&mut r, 6, 1, "loss", f64::NAN, 2).is_empty());
    assert!(r.on_output(6, 1).is_empty());
    assert_eq!(r.stats().after_end, 2);
    assert_eq!(r.tracked(), 0);
    // Started again (a retry after an end): watched again.
    r.on_job_started(7, 1);
    assert_eq!(point(&mut r, 8, 1, "loss", f64::NAN, 3).len(), 1);
}

#[test]
fn series_beyond_the_limit_are_refused_and_counted() {
    let limits = Limits {
        series: 2,
        running_jobs: 1,
        ended_remembered: 1,
    };
    let mut r = Rules::with_limits(
        parse("boom: divergence loss above=1\nhung: stall * after=1m").unwrap(),
        limits,
    );
    r.on_job_started(0, 1);
    assert_eq!(r.on_job_started(0, 2), vec![]);
    assert_eq!(r.stats().jobs_refused, 1);
    assert_eq!(point(&mut r, 0, 1, "loss", 5.0, 1).len(), 1);
    assert!(point(&mut r, 0, 3, "loss", 5.0, 1).is_empty());
    assert!(point(&mut r, 0, 3, "loss", 5.0, 2).is_empty());
    assert_eq!(r.stats().series_refused, 2);
    assert_eq!(r.tracked(), 2);
    r.on_job_ended(1, 1);
    assert_eq!(point(&mut r, 2, 3, "loss", 5.0, 3).len(), 1);
    // Only the newest ended id is remembered.
    r.on_job_ended(3, 4);
    assert!(point(&mut r, 4, 4, "loss", 5.0, 1).is_empty());
    assert_eq!(point(&mut r, 4, 1, "loss", 5.0, 1).len(), 1, "job 1 was forgotten");
}

#[test]
fn points_too_large_are_refused_and_counted() {
    let mut r = engine("nan: anomaly * nan=true");
    let long = "x".repeat(METRIC_NAME_MAX + 1);
    assert!(point(&mut r, 0, 1, &long, f64::NAN, 1).is_empty());
    let tags: Vec<(&str, &str)> = (0..TAGS_MAX + 1).map(|_| ("k", "v")).collect();
    assert!(r.on_point(0, 1, "loss", &tags, f64::NAN, None).is_empty());
    let value = "v".repeat(TAG_VALUE_MAX + 1);
    assert!(r.on_point(0, 1, "loss", &[("k", &value)], f64::NAN, None).is_empty());
    assert_eq!(r.stats().points_refused, 3);
    assert_eq!(r.tracked(), 0);
}

#[test]
fn the_objective_comes_from_the_rule_watching_the_metric() {
    let r = engine("a: divergence val_acc above=2\nb: plateau val_acc mode=max patience=3\nc: new_best val_loss");
    assert_eq!(r.objective("val_acc"), Some(Mode::Max));
    assert_eq!(r.objective("val_loss"), Some(Mode::Min));
    assert_eq!(r.objective("lr"), None);
}

// ---- replace ----

#[test]
fn replace_keeps_the_state_of_unchanged_rules() {
    let mut r = engine(
        "flat: plateau val_loss patience=3\n\
         boom: divergence val_loss above=5\n\
         gone: anomaly val_loss range=0..1\n",
    );
    r.on_job_started(0, 1);
    point(&mut r, 0, 1, "val_loss", 2.0, 1);
    point(&mut r, 1, 1, "val_loss", 2.5, 2);
    point(&mut r, 2, 1, "val_loss", 6.0, 3);
    assert_eq!(r.firing(), 2, "boom and gone");
    // flat moves and keeps its two points; boom changes; gone goes; a new
    // stall starts its clock for the running job.
    let rules = parse(
        "hung: stall * after=1m\n\
         flat: plateau val_loss patience=3\n\
         boom: divergence val_loss above=7\n",
    )
    .unwrap();
    let alerts = r.replace(100, rules);
    assert_eq!(brief(&alerts), [("boom", Resolved), ("gone", Resolved)]);
    assert!(
        alerts
            .iter()
            .all(|a| a.summary == "job 1 val_loss: rule removed or changed")
    );
    assert_eq!(r.rules().len(), 3);
    assert_eq!(r.next_deadline(), Some(100 + MIN));
    // The third point without a new best: flat fires; boom starts afresh.
    let alerts = point(&mut r, 200, 1, "val_loss", 6.5, 4);
    assert_eq!(brief(&alerts), [("flat", Firing)]);
    assert_eq!(brief(&point(&mut r, 300, 1, "val_loss", 8.0, 5)), [("boom", Firing)]);
    // The same rules again: nothing changes.
    let same = r.rules().to_vec();
    assert!(r.replace(400, same).is_empty());
    assert_eq!(r.firing(), 2);
    assert_eq!(
        brief(&point(&mut r, 500, 1, "val_loss", 1.0, 6)),
        [("flat", Resolved), ("boom", Resolved)]
    );
    // No rules: nothing tracked.
    assert!(r.replace(600, Vec::new()).is_empty());
    assert_eq!(r.tracked(), 0);
}

// ---- the rule file ----

const EXAMPLES: &str = "\
# examples
val_best:    new_best val_loss{split=val} mode=min min_delta=0.001
val_flat:    plateau val_loss patience=10 min_delta=0.001 labels: severity=warning
val_flat_t:  plateau val_acc mode=max patience=30m
hung:        stall * after=10m labels: severity=critical
slow:        sustained_dip samples_per_s factor=0.5 baseline=20 for=2m
loss_nan:    anomaly * nan=true labels: severity=critical
gates:       anomaly gate_saturation zscore=3@50 range=0..1
exploding:   divergence train_loss above=100
";

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn the_documented_examples_parse() {
    let rules = parse(EXAMPLES).unwrap();
    let kinds: Vec<RuleKind> = rules.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            RuleKind::NewBest {
                mode: Mode::Min,
                min_delta: 0.001
            },
            RuleKind::Plateau {
                mode: Mode::Min,
                patience: Patience::Points(10),
                min_delta: 0.001
            },
            RuleKind::Plateau {
                mode: Mode::Max,
                patience: Patience::Millis(30 * MIN),
                min_delta: 0.0
            },
            RuleKind::Stall { after_ms: 10 * MIN },
            RuleKind::SustainedDip {
                factor: 0.5,
                baseline_points: 20,
                for_: Patience::Millis(2 * MIN)
            },
            RuleKind::Anomaly {
                nan: true,
                range: None,
                zscore: None
            },
            RuleKind::Anomaly {
                nan: false,
                range: Some((0.0, 1.0)),
                zscore: Some((3.0, 50))
            },
            RuleKind::Divergence { above: 100.0 },
        ]
    );
    assert_eq!(rules[0].name, "val_best");
    assert_eq!(
        rules[0].metric,
        MetricMatch {
            name: "val_loss".into(),
            tags: labels(&[("split", "val")])
        }
    );
    assert_eq!(rules[1].labels, labels(&[("severity", "warning")]));
    assert_eq!(rules[3].metric, MetricMatch::named(ANY_METRIC));
}

#[test]
fn rules_print_as_lines_that_parse_back() {
    let rules = parse(EXAMPLES).unwrap();
    let text: String = rules.iter().map(|r| format!("{r}\n")).collect();
    assert_eq!(parse(&text).unwrap(), rules);
    assert_eq!(
        rules[1].to_string(),
        "val_flat: plateau val_loss mode=min patience=10 min_delta=0.001 labels: severity=warning"
    );
    assert_eq!(
        rules[4].to_string(),
        "slow: sustained_dip samples_per_s factor=0.5 baseline=20 for=2m"
    );
}

#[test]
fn comments_blank_lines_crlf_and_spelling_variants() {
    let text = "\r\n  # a comment\r\n\
                a: divergence loss{split=\"val\",rank=0} above=-1e-3   # why\r\n\
                \t\n\
                b: anomaly x range=-inf..1 nan=false labels: team=ml , page=#ops\n\
                c: plateau x mode=max patience=1500ms\n\
                d: stall x after=2h\n\
                e: sustained_dip x factor=2 baseline=1 for=1\n";
    let rules = parse(text).unwrap();
    assert_eq!(rules.len(), 5);
    assert_eq!(rules[0].metric.tags, labels(&[("split", "val"), ("rank", "0")]));
    assert_eq!(rules[0].kind, RuleKind::Divergence { above: -0.001 });
    assert_eq!(
        rules[1].kind,
        RuleKind::Anomaly {
            nan: false,
            range: Some((f64::NEG_INFINITY, 1.0)),
            zscore: None
        }
    );
    assert_eq!(
        rules[1].labels,
        labels(&[("team", "ml"), ("page", "#ops")]),
        "# inside a word"
    );
    assert!(matches!(
        rules[2].kind,
        RuleKind::Plateau {
            patience: Patience::Millis(1500),
            ..
        }
    ));
    assert_eq!(
        rules[3].kind,
        RuleKind::Stall {
            after_ms: 2 * 3_600_000
        }
    );
    assert_eq!(parse("").unwrap(), vec![]);
    assert_eq!(parse("# only\n\n").unwrap(), vec![]);
}

/// The error of `bad` placed on line 4, after a comment, a blank line and a
/// good rule.
fn error_on_line_4(bad: &str) -> RuleError {
    let text = format!("# rules\n\nok: divergence loss above=1\n{bad}\nlater: divergence loss above=2\n");
    let err = parse(&text).expect_err(bad);
    assert_eq!(err.line, 4, "{bad}: {err}");
    err
}

#[test]
fn every_error_names_its_line_and_reason() {
    use Reason::*;
    type Check = fn(&Reason) -> bool;
    let cases: &[(&str, Check)] = &[
        ("plateau loss patience=3", |r| *r == MissingColon),
        (": plateau loss patience=3", |r| *r == EmptyName),
        ("  :divergence loss above=1", |r| *r == EmptyName),
        ("9x: plateau loss patience=3", |r| matches!(r, BadName(n) if n == "9x")),
        ("my rule: plateau loss patience=3", |r| matches!(r, BadName(_))),
        (
            "ok: divergence loss above=3",
            |r| matches!(r, DuplicateName { name, first_line: 3 } if name == "ok"),
        ),
        ("a:", |r| *r == MissingRule),
        ("a: labels: x=y", |r| *r == MissingRule),
        ("a: platoo loss", |r| matches!(r, UnknownRule(n) if n == "platoo")),
        ("a: plateau", |r| *r == MissingMetric),
        (
            "a: plateau 9loss patience=3",
            |r| matches!(r, BadMetric { metric, .. } if metric == "9loss"),
        ),
        ("a: plateau lo-ss patience=3", |r| matches!(r, BadMetric { .. })),
        (
            "a: plateau loss{split=val patience=3",
            |r| matches!(r, BadMetric { why, .. } if why.contains("unclosed")),
        ),
        ("a: plateau loss{split} patience=3", |r| matches!(r, BadMetric { .. })),
        (
            "a: plateau loss{a=1,a=2} patience=3",
            |r| matches!(r, BadMetric { why, .. } if why.contains("duplicate")),
        ),
        (
            "a: plateau loss patience",
            |r| matches!(r, NotKeyValue(w) if w == "patience"),
        ),
        ("a: plateau loss =3", |r| matches!(r, NotKeyValue(_))),
        (
            "a: plateau loss patince=3",
            |r| matches!(r, UnknownParameter { rule: RuleType::Plateau, param } if param == "patince"),
        ),
        ("a: stall * after=1m mode=min", |r| matches!(r, UnknownParameter { .. })),
        (
            "a: plateau loss patience=3 patience=4",
            |r| matches!(r, DuplicateParameter(p) if p == "patience"),
        ),
        ("a: plateau loss", |r| {
            *r == MissingParameter {
                rule: RuleType::Plateau,
                param: "patience",
            }
        }),
        ("a: plateau acc patience=3", |r| {
            *r == MissingParameter {
                rule: RuleType::Plateau,
                param: "mode",
            }
        }),
        ("a: new_best acc", |r| {
            matches!(r, MissingParameter { param: "mode", .. })
        }),
        ("a: stall *", |r| matches!(r, MissingParameter { param: "after", .. })),
        ("a: sustained_dip x factor=0.5 for=3", |r| {
            matches!(r, MissingParameter { param: "baseline", .. })
        }),
        ("a: divergence loss", |r| {
            matches!(r, MissingParameter { param: "above", .. })
        }),
        ("a: plateau loss mode=lowest patience=3", |r| {
            matches!(r, BadValue { param: "mode", .. })
        }),
        (
            "a: divergence loss above=abc",
            |r| matches!(r, BadNumber { param: "above", value } if value == "abc"),
        ),
        ("a: divergence loss above=", |r| matches!(r, BadNumber { .. })),
        ("a: divergence loss above=nan", |r| {
            *r == NanThreshold { param: "above" }
        }),
        ("a: new_best loss min_delta=NaN", |r| {
            *r == NanThreshold { param: "min_delta" }
        }),
        ("a: anomaly x range=nan..1", |r| *r == NanThreshold { param: "range" }),
        ("a: divergence loss above=inf", |r| {
            matches!(
                r,
                BadValue {
                    why: "must be finite",
                    ..
                }
            )
        }),
        ("a: new_best loss min_delta=-1", |r| {
            matches!(r, BadValue { param: "min_delta", .. })
        }),
        ("a: plateau loss patience=0", |r| {
            matches!(r, BadValue { param: "patience", .. })
        }),
        ("a: plateau loss patience=3.5", |r| {
            matches!(r, BadValue { param: "patience", .. })
        }),
        ("a: plateau loss patience=99999999999", |r| {
            matches!(r, BadValue { why: "too large", .. })
        }),
        ("a: plateau loss patience=10d", |r| {
            matches!(r, BadValue { param: "patience", .. })
        }),
        (
            "a: stall * after=10",
            |r| matches!(r, BadValue { why, .. } if why.contains("unit")),
        ),
        ("a: stall * after=0s", |r| matches!(r, BadValue { param: "after", .. })),
        ("a: stall * after=s", |r| matches!(r, BadValue { param: "after", .. })),
        ("a: stall * after=99999999999999999h", |r| {
            matches!(r, BadValue { why: "too large", .. })
        }),
        ("a: sustained_dip x factor=0 baseline=5 for=3", |r| {
            matches!(r, BadValue { param: "factor", .. })
        }),
        ("a: sustained_dip x factor=0.5 baseline=300 for=3", |r| {
            matches!(r, BadValue { param: "baseline", .. })
        }),
        ("a: sustained_dip x factor=0.5 baseline=0 for=3", |r| {
            matches!(r, BadValue { param: "baseline", .. })
        }),
        ("a: anomaly x", |r| *r == NoAnomalyCheck),
        ("a: anomaly x nan=false", |r| *r == NoAnomalyCheck),
        ("a: anomaly x nan=yes", |r| matches!(r, BadValue { param: "nan", .. })),
        ("a: anomaly x range=2..1", |r| {
            matches!(r, BadValue { param: "range", .. })
        }),
        ("a: anomaly x range=1", |r| matches!(r, BadValue { param: "range", .. })),
        ("a: anomaly x zscore=3", |r| {
            matches!(r, BadValue { param: "zscore", .. })
        }),
        ("a: anomaly x zscore=3@1", |r| {
            matches!(r, BadValue { param: "zscore", .. })
        }),
        ("a: anomaly x zscore=0@10", |r| {
            matches!(r, BadValue { param: "zscore", .. })
        }),
        ("a: anomaly x zscore=3@x", |r| {
            matches!(r, BadNumber { param: "zscore", .. })
        }),
        ("a: divergence loss above=1 labels:", |r| matches!(r, BadLabel { .. })),
        (
            "a: divergence loss above=1 labels: sev",
            |r| matches!(r, BadLabel { label, .. } if label == "sev"),
        ),
        ("a: divergence loss above=1 labels: a=b,", |r| {
            matches!(r, BadLabel { .. })
        }),
        ("a: divergence loss above=1 labels: 1a=b", |r| {
            matches!(r, BadLabel { .. })
        }),
        ("a: divergence loss above=1 labels: a=b c=d", |r| {
            matches!(r, BadLabel { .. })
        }),
        (
            "a: divergence loss above=1 labels: a=b,a=c",
            |r| matches!(r, DuplicateLabel(k) if k == "a"),
        ),
    ];
    for (bad, check) in cases {
        let err = error_on_line_4(bad);
        assert!(check(&err.reason), "{bad}: {err:?}");
        // Every reason reads as words with the line in front.
        assert!(err.to_string().starts_with("line 4: "), "{err}");
    }
    let long = format!("a: divergence loss above=1 labels: note={}", "x".repeat(LINE_MAX));
    assert_eq!(error_on_line_4(&long).reason, LineTooLong);
}

#[test]
fn errors_read_as_words() {
    let err = parse("a: plateau loss patince=3").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1: unknown parameter `patince` for plateau (it takes mode, patience, min_delta)"
    );
    let err = parse("a: divergence l above=1\na: divergence l above=2").unwrap_err();
    assert_eq!(err.to_string(), "line 2: duplicate rule name `a` (first on line 1)");
    let err = parse("a: stall * after=10").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1: after: `10`: a duration needs a unit: ms, s, m or h"
    );
}

#[test]
fn a_file_holds_at_most_rules_max_rules() {
    let text: String = (0..=RULES_MAX)
        .map(|i| format!("r{i}: divergence loss above=1\n"))
        .collect();
    let err = parse(&text).unwrap_err();
    assert_eq!((err.line, err.reason), (RULES_MAX + 1, Reason::TooManyRules));
    let text: String = (0..RULES_MAX)
        .map(|i| format!("r{i}: divergence loss above=1\n"))
        .collect();
    assert_eq!(parse(&text).unwrap().len(), RULES_MAX);
}

#[test]
fn computed_numbers_print_short() {
    let show = |x: f64| series::Approx(x).to_string();
    assert_eq!(show(0.13000000000000006), "0.13");
    assert_eq!(show(-2.5), "-2.5");
    assert_eq!(show(100.0), "100");
    assert_eq!(show(9.030743760888582), "9.0307");
    assert_eq!(show(1.5e-7), "1.500e-7");
    assert_eq!(show(3e15), "3.000e15");
    assert_eq!(show(0.0), "0");
    assert_eq!(show(f64::NEG_INFINITY), "-inf");
    assert_eq!(show(f64::NAN), "NaN");
}

#[test]
fn sqrt_matches_std() {
    for x in [
        1e-300,
        1e-10,
        0.25,
        1.0,
        2.0,
        9.0,
        1e10,
        1e300,
        f64::MIN_POSITIVE / 4.0,
        5e-324,
    ] {
        let ours = series::sqrt(x);
        assert!((ours - x.sqrt()).abs() <= x.sqrt() * 1e-15, "{x}: {ours}");
    }
    assert_eq!(series::sqrt(0.0), 0.0);
    assert!(series::sqrt(-1.0).is_nan());
    assert!(series::sqrt(f64::NAN).is_nan());
    assert_eq!(series::sqrt(f64::INFINITY), f64::INFINITY);
}

// ---- random inputs ----

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn value(&mut self) -> f64 {
        match self.below(10) {
            0 => f64::NAN,
            1 => [f64::INFINITY, f64::NEG_INFINITY, f64::MAX, f64::MIN, 1e308, 5e-324][self.below(6) as usize],
            2 => f64::from_bits(self.next()),
            _ => (self.below(2000) as f64 - 1000.0) / 100.0,
        }
    }
}

/// Rules of every type (some twice, with other parameters under the same
/// name, so `replace` sees changes).
const POOL: &str = "\
best: new_best loss min_delta=0.1
best2: new_best * mode=max
flat: plateau loss patience=3
flat_t: plateau acc mode=max patience=2s
hung: stall * after=3s
quiet: stall loss{split=val} after=500ms
dip: sustained_dip tput factor=0.5 baseline=4 for=3
dip_t: sustained_dip tput factor=0.8 baseline=3 for=1s
nan: anomaly * nan=true
odd: anomaly loss range=-5..5 zscore=2@5
z: anomaly acc zscore=1@3
boom: divergence * above=5
";

const POOL_CHANGED: &str = "\
flat: plateau loss patience=2
hung: stall * after=1s
dip: sustained_dip tput factor=0.9 baseline=2 for=2s
boom: divergence loss above=0
";

/// An open alert: rule, job, metric, tags.
type AlertKey = (String, u64, String, Vec<(String, String)>);

#[test]
fn random_inputs_never_panic_and_alerts_pair_up() {
    let pool = parse(POOL).unwrap();
    let changed = parse(POOL_CHANGED).unwrap();
    for seed in 1..=20u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let limits = Limits {
            series: 40,
            running_jobs: 3,
            ended_remembered: 2,
        };
        let mut r = Rules::with_limits(pool.clone(), limits);
        let mut open: HashSet<AlertKey> = HashSet::new();
        let mut now: u64 = 1_700_000_000_000;
        let names = ["loss", "acc", "tput", "x"];
        let tag_sets: [&[(&str, &str)]; 3] = [&[], &[("split", "val")], &[("split", "train"), ("rank", "1")]];
        for _ in 0..3000 {
            now = match rng.below(20) {
                0 => now.saturating_sub(rng.below(10_000)),
                1 => [0, u64::MAX, u64::MAX - 1][rng.below(3) as usize],
                2 => now.saturating_add(rng.below(100_000)),
                _ => now.saturating_add(rng.below(700)),
            };
            let job = rng.below(6);
            let op = rng.below(12);
            let ticked = matches!(op, 3 | 4);
            let alerts = match op {
                0 => r.on_job_started(now, job),
                1 => r.on_job_ended(now, job),
                2 => r.on_output(now, job),
                3 | 4 => r.tick(now),
                5 if rng.below(10) == 0 => {
                    let mut rules: Vec<Rule> = pool.iter().filter(|_| rng.below(3) != 0).cloned().collect();
                    for c in &changed {
                        if rng.below(2) == 0 {
                            rules.retain(|r| r.name != c.name);
                            rules.push(c.clone());
                        }
                    }
                    r.replace(now, rules)
                }
                _ => {
                    let name = names[rng.below(4) as usize];
                    let tags = tag_sets[rng.below(3) as usize];
                    let step = (rng.below(4) != 0).then(|| rng.next());
                    r.on_point(now, job, name, tags, rng.value(), step)
                }
            };
            for a in alerts {
                assert_eq!(a.at_ms, now);
                let key = (a.rule.clone(), a.job_id, a.metric.clone(), a.tags.clone());
                match (a.kind.resolves(), a.state) {
                    (false, Firing) => {}
                    (false, Resolved) => panic!("a new_best resolved: {a:?}"),
                    (true, Firing) => assert!(open.insert(key), "fired twice: {a:?}"),
                    (true, Resolved) => assert!(open.remove(&key), "resolved unopened: {a:?}"),
                }
            }
            assert_eq!(r.firing(), open.len(), "seed {seed}");
            assert!(r.tracked() <= limits.series);
            if ticked {
                // Whatever was due has fired.
                assert!(r.next_deadline().is_none_or(|at| at > now), "seed {seed}");
            }
        }
        // Every job's end closes everything it had open.
        for job in 0..6 {
            for a in r.on_job_ended(now, job) {
                assert_eq!(a.state, Resolved);
                assert!(open.remove(&(a.rule, a.job_id, a.metric, a.tags)));
            }
        }
        assert!(open.is_empty(), "seed {seed}: {open:?}");
        assert_eq!((r.firing(), r.tracked()), (0, 0));
    }
}

#[test]
fn random_text_never_panics_the_parser() {
    let mut rng = XorShift(0x1234_5678);
    let pieces = [
        "a",
        ":",
        " ",
        "plateau",
        "stall",
        "anomaly",
        "loss",
        "{",
        "}",
        "=",
        ",",
        "..",
        "@",
        "labels:",
        "#",
        "\n",
        "\r\n",
        "1",
        "-",
        "nan",
        "inf",
        "1e999",
        "ms",
        "é",
        "\u{0}",
        "patience=",
        "range=",
        "zscore=",
        "mode=max",
    ];
    for _ in 0..20_000 {
        let text: String = (0..rng.below(30))
            .map(|_| pieces[rng.below(pieces.len() as u64) as usize])
            .collect();
        if let Ok(rules) = parse(&text) {
            // Whatever it accepts prints back to the same rules.
            let printed: String = rules.iter().map(|r| format!("{r}\n")).collect();
            assert_eq!(parse(&printed).as_ref(), Ok(&rules), "{text:?}");
        }
    }
}
