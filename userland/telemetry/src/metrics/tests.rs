//! The registry on the host: every refusal, the history's bounds, the
//! summaries, the queries and the limits.

use super::*;

fn reg() -> Registry {
    Registry::default()
}

fn gauge(name: &str, value: f64, step: u64) -> Point<'_> {
    Point::gauge(name, value, 1_000 + step).with_step(step)
}

const BOUNDS: [f64; 3] = [0.5, 1.0, 2.5];

// --- Validation: every error class ---------------------------------------

#[test]
fn metrics_names_are_prometheus_names_of_at_most_64_bytes() {
    let mut r = reg();
    for ok in ["loss", "_x", ":a:b", "eval:accuracy_top1", "A9_:"] {
        assert_eq!(r.add(1, Point::gauge(ok, 1.0, 0)), Ok(()), "{ok}");
    }
    for bad in ["", "1loss", "eval/accuracy", "val-loss", "loss ", "lóss", "a.b", "{x}"] {
        assert_eq!(
            r.add(1, Point::gauge(bad, 1.0, 0)),
            Err(MetricError::NameInvalid),
            "{bad:?}"
        );
    }
    let longest = "a".repeat(NAME_MAX);
    assert_eq!(r.add(1, Point::gauge(&longest, 1.0, 0)), Ok(()));
    let too_long = "a".repeat(NAME_MAX + 1);
    assert_eq!(r.add(1, Point::gauge(&too_long, 1.0, 0)), Err(MetricError::NameTooLong));
    // Too long and invalid: the length is what is named.
    let both = "/".repeat(NAME_MAX + 1);
    assert_eq!(check_name(&both), Err(MetricError::NameTooLong));
}

#[test]
fn metrics_at_most_8_tags() {
    let keys = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    let tags: Vec<(&str, &str)> = keys.iter().map(|k| (*k, "v")).collect();
    let mut r = reg();
    assert_eq!(r.add(1, Point::gauge("m", 1.0, 0).with_tags(&tags[..8])), Ok(()));
    assert_eq!(
        r.add(1, Point::gauge("m", 1.0, 0).with_tags(&tags)),
        Err(MetricError::TooManyTags)
    );
}

#[test]
fn metrics_tag_keys_32_and_values_64_bytes_never_cut() {
    let key32 = "k".repeat(TAG_KEY_MAX);
    let key33 = "k".repeat(TAG_KEY_MAX + 1);
    let value64 = "v".repeat(TAG_VALUE_MAX);
    let value65 = "v".repeat(TAG_VALUE_MAX + 1);
    let mut r = reg();
    let fits = [(key32.as_str(), value64.as_str())];
    assert_eq!(r.add(1, Point::gauge("m", 1.0, 0).with_tags(&fits)), Ok(()));
    let series = r.series(1, "m", &fits).expect("series");
    assert_eq!(
        series.tags().collect::<Vec<_>>(),
        vec![(key32.as_str(), value64.as_str())]
    );
    for tags in [[(key33.as_str(), "v")], [("k", value65.as_str())]] {
        assert_eq!(
            r.add(1, Point::gauge("m", 1.0, 0).with_tags(&tags)),
            Err(MetricError::TagTooLong)
        );
    }
    // A value's bytes count, not its characters: 32 two-byte characters fit,
    // 33 do not.
    let wide = "é".repeat(33);
    assert_eq!(
        r.add(1, Point::gauge("m", 1.0, 0).with_tags(&[("k", &wide)])),
        Err(MetricError::TagTooLong)
    );
}

#[test]
fn metrics_tag_keys_are_label_names_not_reserved() {
    let mut r = reg();
    for ok in ["split", "_a", "A1_b", "jobid", "le_"] {
        assert_eq!(
            r.add(1, Point::gauge("m", 1.0, 0).with_tags(&[(ok, "v")])),
            Ok(()),
            "{ok}"
        );
    }
    for bad in ["", "1a", "a-b", "a:b", "a.b", "__name__", "__x", "job_id", "le", "é"] {
        assert_eq!(
            r.add(1, Point::gauge("m", 1.0, 0).with_tags(&[(bad, "v")])),
            Err(MetricError::TagKeyInvalid),
            "{bad:?}"
        );
    }
}

#[test]
fn metrics_tag_keys_unique_and_values_not_empty() {
    let mut r = reg();
    assert_eq!(
        r.add(
            1,
            Point::gauge("m", 1.0, 0).with_tags(&[("a", "1"), ("b", "2"), ("a", "3")])
        ),
        Err(MetricError::TagKeyDuplicate)
    );
    assert_eq!(
        r.add(1, Point::gauge("m", 1.0, 0).with_tags(&[("a", "")])),
        Err(MetricError::TagValueEmpty)
    );
    assert_eq!(r.series_count(), 0);
}

#[test]
fn metrics_counters_refuse_nan_and_decreases() {
    let mut r = reg();
    assert_eq!(
        r.add(1, Point::counter("c", f64::NAN, 0)),
        Err(MetricError::NanInCounter)
    );
    assert_eq!(
        r.add(1, Point::counter("c", -1.0, 0)),
        Err(MetricError::CounterDecreased)
    );
    assert_eq!(
        r.add(1, Point::counter("c", f64::NEG_INFINITY, 0)),
        Err(MetricError::CounterDecreased)
    );
    assert_eq!(r.series_count(), 0, "a refused first point makes no series");
    assert_eq!(r.add(1, Point::counter("c", 0.0, 0)), Ok(()));
    assert_eq!(r.add(1, Point::counter("c", 5.0, 1)), Ok(()));
    assert_eq!(r.add(1, Point::counter("c", 5.0, 2)), Ok(()), "equal is not a decrease");
    assert_eq!(
        r.add(1, Point::counter("c", 4.5, 3)),
        Err(MetricError::CounterDecreased)
    );
    assert_eq!(
        r.add(1, Point::counter("c", f64::NAN, 4)),
        Err(MetricError::NanInCounter)
    );
    let s = r.series(1, "c", &[]).expect("series");
    assert_eq!((s.count(), s.last().value, s.last().ts_ms), (3, 5.0, 2));
    assert_eq!(s.history().len(), 3, "refused points are not kept");
    // Gauges take anything.
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1e300] {
        assert_eq!(r.add(1, Point::gauge("g", v, 0)), Ok(()));
    }
}

#[test]
fn metrics_histograms_refuse_non_finite_observations() {
    let mut r = reg();
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(
            r.add(1, Point::histogram("h", v, 0).with_buckets(&BOUNDS)),
            Err(MetricError::NonFiniteInHistogram)
        );
    }
    assert_eq!(r.add(1, Point::histogram("h", 0.7, 0).with_buckets(&BOUNDS)), Ok(()));
    assert_eq!(
        r.add(1, Point::histogram("h", f64::NAN, 1)),
        Err(MetricError::NonFiniteInHistogram)
    );
}

#[test]
fn metrics_a_name_keeps_its_kind_across_series_and_jobs() {
    let mut r = reg();
    assert_eq!(r.add(1, Point::gauge("m", 1.0, 0)), Ok(()));
    assert_eq!(r.add(1, Point::counter("m", 1.0, 0)), Err(MetricError::KindChanged));
    let tagged = [("split", "train")];
    assert_eq!(
        r.add(1, Point::counter("m", 1.0, 0).with_tags(&tagged)),
        Err(MetricError::KindChanged),
        "another series of the same family"
    );
    assert_eq!(
        r.add(2, Point::histogram("m", 1.0, 0).with_buckets(&BOUNDS)),
        Err(MetricError::KindChanged),
        "another job: one exposition, one TYPE per name"
    );
    assert_eq!(r.add(2, Point::gauge("m", 1.0, 0).with_tags(&tagged)), Ok(()));
    // Once every series of it is gone, the name is free again.
    assert_eq!(r.remove_job(1), 1);
    assert_eq!(r.add(1, Point::counter("m", 1.0, 0)), Err(MetricError::KindChanged));
    assert_eq!(r.remove_job(2), 1);
    assert_eq!(r.add(1, Point::counter("m", 1.0, 0)), Ok(()));
}

#[test]
fn metrics_histogram_sample_names_are_taken() {
    let mut r = reg();
    assert_eq!(r.add(1, Point::histogram("h", 1.0, 0).with_buckets(&BOUNDS)), Ok(()));
    for taken in ["h_bucket", "h_sum", "h_count"] {
        assert_eq!(
            r.add(1, Point::gauge(taken, 1.0, 0)),
            Err(MetricError::NameClash),
            "{taken}"
        );
        assert_eq!(
            r.add(2, Point::histogram(taken, 1.0, 0).with_buckets(&BOUNDS)),
            Err(MetricError::NameClash),
            "{taken}"
        );
    }
    assert_eq!(r.add(1, Point::gauge("h_total", 1.0, 0)), Ok(()));
    assert_eq!(r.add(1, Point::counter("g_count", 1.0, 0)), Ok(()));
    assert_eq!(
        r.add(1, Point::histogram("g", 1.0, 0).with_buckets(&BOUNDS)),
        Err(MetricError::NameClash),
        "g_count exists: a histogram g would write it too"
    );
    assert_eq!(r.add(1, Point::gauge("g", 1.0, 0)), Ok(()), "a gauge g writes only g");
}

#[test]
fn metrics_a_new_histogram_series_needs_buckets() {
    let mut r = reg();
    for bounds in [None, Some(&[][..]), Some(&[f64::INFINITY][..])] {
        let point = Point {
            buckets: bounds,
            ..Point::histogram("h", 1.0, 0)
        };
        assert_eq!(r.add(1, point), Err(MetricError::HistogramWithoutBuckets), "{bounds:?}");
    }
    assert_eq!(r.add(1, Point::histogram("h", 1.0, 0).with_buckets(&BOUNDS)), Ok(()));
    assert_eq!(
        r.add(1, Point::histogram("h", 2.0, 1)),
        Ok(()),
        "later points may leave them out"
    );
    let other = [("split", "val")];
    assert_eq!(
        r.add(1, Point::histogram("h", 2.0, 1).with_tags(&other)),
        Err(MetricError::HistogramWithoutBuckets),
        "every series gets its bounds with its first point"
    );
}

#[test]
fn metrics_buckets_only_on_histograms() {
    let mut r = reg();
    assert_eq!(
        r.add(1, Point::gauge("g", 1.0, 0).with_buckets(&BOUNDS)),
        Err(MetricError::BucketsWithoutHistogram)
    );
    assert_eq!(
        r.add(1, Point::counter("c", 1.0, 0).with_buckets(&BOUNDS)),
        Err(MetricError::BucketsWithoutHistogram)
    );
}

#[test]
fn metrics_buckets_strictly_increasing_finite_at_most_32() {
    let mut r = reg();
    let unsorted: [&[f64]; 6] = [
        &[1.0, 0.5],
        &[0.5, 0.5, 1.0],
        &[f64::NAN, 1.0],
        &[0.5, f64::NAN],
        &[f64::NEG_INFINITY, 1.0],
        &[0.5, f64::INFINITY, f64::INFINITY],
    ];
    for bounds in unsorted {
        assert_eq!(
            r.add(1, Point::histogram("h", 1.0, 0).with_buckets(bounds)),
            Err(MetricError::BucketsUnsorted),
            "{bounds:?}"
        );
    }
    let many: Vec<f64> = (0..=BUCKETS_MAX).map(|i| i as f64).collect();
    assert_eq!(
        r.add(1, Point::histogram("h", 1.0, 0).with_buckets(&many)),
        Err(MetricError::TooManyBuckets)
    );
    let mut most = many[..BUCKETS_MAX].to_vec();
    most.push(f64::INFINITY);
    assert_eq!(
        r.add(1, Point::histogram("h", 1.0, 0).with_buckets(&most)),
        Ok(()),
        "32 bounds and the explicit +Inf"
    );
    assert_eq!(
        r.series(1, "h", &[])
            .and_then(Series::histogram)
            .map(|h| h.bounds().len()),
        Some(32)
    );
}

#[test]
fn metrics_buckets_fixed_by_the_first_point() {
    let mut r = reg();
    assert_eq!(r.add(1, Point::histogram("h", 1.0, 0).with_buckets(&BOUNDS)), Ok(()));
    assert_eq!(
        r.add(
            1,
            Point::histogram("h", 1.0, 1).with_buckets(&[0.5, 1.0, 2.5, f64::INFINITY])
        ),
        Ok(()),
        "the same bounds with the implicit +Inf spelled out"
    );
    assert_eq!(
        r.add(1, Point::histogram("h", 1.0, 2).with_buckets(&[0.5, 1.0])),
        Err(MetricError::BucketsChanged)
    );
    assert_eq!(
        r.add(1, Point::histogram("h", 1.0, 2).with_buckets(&[1.0, 2.0, 3.0])),
        Err(MetricError::BucketsChanged)
    );
    assert_eq!(r.series(1, "h", &[]).map(Series::count), Some(2));
}

#[test]
fn metrics_too_many_series_refused_and_counted() {
    let mut r = Registry::new(Limits {
        max_series_per_job: 2,
        max_series: 3,
    });
    let tag = |v: &'static str| [("i", v)];
    assert_eq!(r.add(1, Point::gauge("m", 1.0, 0).with_tags(&tag("a"))), Ok(()));
    assert_eq!(r.add(1, Point::gauge("m", 1.0, 0).with_tags(&tag("b"))), Ok(()));
    assert_eq!(
        r.add(1, Point::gauge("m", 1.0, 0).with_tags(&tag("c"))),
        Err(MetricError::TooManySeries),
        "the job's limit"
    );
    assert_eq!(r.add(1, Point::gauge("other", 1.0, 0)), Err(MetricError::TooManySeries));
    assert_eq!(
        r.add(1, Point::gauge("m", 2.0, 1).with_tags(&tag("a"))),
        Ok(()),
        "existing series go on"
    );
    assert_eq!(r.add(2, Point::gauge("m", 1.0, 0)), Ok(()));
    assert_eq!(
        r.add(3, Point::gauge("m", 1.0, 0)),
        Err(MetricError::TooManySeries),
        "the registry's limit"
    );
    assert_eq!(r.series_count(), 3);
    assert_eq!(
        (r.series_count_of(1), r.series_count_of(2), r.series_count_of(3)),
        (2, 1, 0)
    );
    assert_eq!(
        r.job_ids().collect::<Vec<_>>(),
        vec![1, 2],
        "a refused series makes no job"
    );
    assert_eq!(
        r.stats(),
        Stats {
            accepted: 4,
            refused: 3,
            too_many_series: 3
        }
    );
    // Removing a job makes room.
    assert_eq!(r.remove_job(1), 2);
    assert_eq!(r.add(3, Point::gauge("m", 1.0, 0)), Ok(()));
    assert_eq!(r.stats().refused, 3);
}

#[test]
fn metrics_errors_have_a_text() {
    use core::fmt::Write;
    let mut s = String::new();
    let _ = write!(s, "{}", MetricError::TooManySeries);
    assert_eq!(s, "too many series (of the job or in all)");
}

// --- Series identity and batches ------------------------------------------

#[test]
fn metrics_series_keyed_by_job_name_and_sorted_tags() {
    let mut r = reg();
    let ab = [("a", "1"), ("b", "2")];
    let ba = [("b", "2"), ("a", "1")];
    assert_eq!(r.add(1, gauge("m", 1.0, 1).with_tags(&ab)), Ok(()));
    assert_eq!(r.add(1, gauge("m", 2.0, 2).with_tags(&ba)), Ok(()));
    assert_eq!(r.add(1, gauge("m", 3.0, 3).with_tags(&[("a", "1")])), Ok(()));
    assert_eq!(r.add(2, gauge("m", 4.0, 4).with_tags(&ab)), Ok(()));
    assert_eq!(r.series_count(), 3);
    assert_eq!(r.series(1, "m", &ba).map(Series::count), Some(2));
    assert_eq!(r.latest(1, "m", &ab).map(|s| s.value), Some(2.0));
    assert_eq!(r.latest(2, "m", &ba).map(|s| s.value), Some(4.0));
    assert!(r.series(1, "m", &[]).is_none());
    assert!(r.series(3, "m", &ab).is_none());
    assert!(
        r.series(1, "m", &[("a", "1"), ("a", "1")]).is_none(),
        "an invalid key finds nothing"
    );
}

#[test]
fn metrics_batches_take_what_they_can() {
    let mut r = reg();
    let points = [
        Point::counter("c", 1.0, 0),
        Point::counter("c", 0.5, 1),
        Point::gauge("bad/name", 1.0, 2),
        Point::counter("c", 2.0, 3),
    ];
    assert_eq!(
        r.add_batch(7, &points),
        BatchOutcome {
            taken: 2,
            first_error: Some((1, MetricError::CounterDecreased)),
        }
    );
    assert_eq!(r.latest(7, "c", &[]).map(|s| s.value), Some(2.0));
    assert_eq!(
        r.add_batch(7, &points[3..]),
        BatchOutcome {
            taken: 1,
            first_error: None
        }
    );
    assert_eq!(r.stats().refused, 2);
}

#[test]
fn metrics_lists_series_of_a_job_and_of_all() {
    let mut r = reg();
    let points = [
        (2, Point::gauge("z", 1.0, 0)),
        (1, Point::gauge("loss", 1.0, 0).with_tags(&[("split", "val")])),
        (1, Point::gauge("loss", 1.0, 0).with_tags(&[("split", "train")])),
        (1, Point::counter("a", 1.0, 0)),
        (2, Point::gauge("loss", 1.0, 0)),
    ];
    for (job, p) in &points {
        assert_eq!(r.add(*job, *p), Ok(()));
    }
    let of_job_1: Vec<_> = r
        .series_of_job(1)
        .map(|s| (s.name, s.series.tags().map(|(_, v)| v).collect::<Vec<_>>()))
        .collect();
    assert_eq!(
        of_job_1,
        vec![("a", vec![]), ("loss", vec!["train"]), ("loss", vec!["val"])]
    );
    let all: Vec<_> = r.all_series().map(|s| (s.job_id, s.name)).collect();
    assert_eq!(all, vec![(1, "a"), (1, "loss"), (1, "loss"), (2, "loss"), (2, "z")]);
    let family: Vec<_> = r.family("loss").map(|s| s.job_id).collect();
    assert_eq!(family, vec![1, 1, 2]);
    let families: Vec<_> = r.families().collect();
    assert_eq!(
        families,
        vec![("a", Kind::Counter), ("loss", Kind::Gauge), ("z", Kind::Gauge)]
    );
    assert_eq!(r.series_of_job(3).count(), 0);
    assert_eq!(r.remove_job(2), 2);
    assert_eq!(r.families().map(|(n, _)| n).collect::<Vec<_>>(), vec!["a", "loss"]);
    assert_eq!(r.remove_job(2), 0);
}

// --- Summaries -------------------------------------------------------------

#[test]
fn metrics_summary_exact_over_everything() {
    let mut r = reg();
    // 100 000 points: the extremes come early and leave the history's full
    // resolution (and are not among the kept points of the older tier).
    let n = 100_000u64;
    let value = |i: u64| match i {
        3 => -7.5,
        5 => 42.0,
        _ => (i % 100) as f64 / 10.0,
    };
    for i in 0..n {
        assert_eq!(r.add(1, gauge("accuracy", value(i), i)), Ok(()));
        assert_eq!(r.add(1, gauge("val_loss", value(i), i)), Ok(()));
    }
    let acc = r.summary(1, "accuracy", &[]).expect("summary");
    assert_eq!(
        acc,
        Summary {
            count: n,
            last: value(n - 1),
            last_step: Some(n - 1),
            last_ts_ms: 1_000 + n - 1,
            min: Some(-7.5),
            max: Some(42.0),
            best: Some(42.0),
            best_step: Some(5),
            objective: Objective::Max,
        }
    );
    let kept: Vec<u64> = r
        .series(1, "accuracy", &[])
        .expect("series")
        .history()
        .iter()
        .filter_map(|s| s.step)
        .collect();
    assert!(
        !kept.contains(&3) && !kept.contains(&5),
        "the extremes were downsampled away"
    );
    let loss = r.summary(1, "val_loss", &[]).expect("summary");
    assert_eq!(
        (loss.objective, loss.best, loss.best_step),
        (Objective::Min, Some(-7.5), Some(3))
    );
}

#[test]
fn metrics_summary_follows_the_objective_and_skips_nan() {
    let mut r = reg();
    let values = [f64::NAN, 3.0, 1.0, f64::NAN, 1.0, 5.0, 5.0, f64::NAN];
    for (i, v) in values.iter().enumerate() {
        assert_eq!(r.add(1, gauge("loss", *v, i as u64)), Ok(()));
    }
    let s = r.summary(1, "loss", &[]).expect("summary");
    assert_eq!(s.count, 8);
    assert!(s.last.is_nan());
    assert_eq!(s.last_step, Some(7));
    assert_eq!((s.min, s.max), (Some(1.0), Some(5.0)));
    assert_eq!(
        (s.objective, s.best, s.best_step),
        (Objective::Min, Some(1.0), Some(2)),
        "the first to reach it"
    );
    assert!(r.set_objective(1, "loss", &[], Objective::Max));
    let s = r.summary(1, "loss", &[]).expect("summary");
    assert_eq!((s.objective, s.best, s.best_step), (Objective::Max, Some(5.0), Some(5)));
    assert!(!r.set_objective(1, "nope", &[], Objective::Max));
    assert!(!r.set_objective(2, "loss", &[], Objective::Max));

    assert_eq!(r.add(1, Point::gauge("only_nan", f64::NAN, 0)), Ok(()));
    let s = r.summary(1, "only_nan", &[]).expect("summary");
    assert_eq!((s.min, s.max, s.best, s.best_step), (None, None, None, None));
    // Best without steps: the value, no step.
    assert_eq!(r.add(1, Point::gauge("acc", 0.5, 0)), Ok(()));
    let s = r.summary(1, "acc", &[]).expect("summary");
    assert_eq!((s.best, s.best_step, s.last_step), (Some(0.5), None, None));
}

#[test]
fn metrics_objective_defaults() {
    assert_eq!(Objective::default_for("loss"), Objective::Min);
    assert_eq!(Objective::default_for("val_loss"), Objective::Min);
    assert_eq!(Objective::default_for("train:loss"), Objective::Min);
    assert_eq!(Objective::default_for("loss_scale"), Objective::Max);
    assert_eq!(Objective::default_for("Loss"), Objective::Max, "case-sensitive");
    assert_eq!(Objective::default_for("accuracy"), Objective::Max);
}

// --- Histograms --------------------------------------------------------------

#[test]
fn metrics_histogram_counts_le_buckets() {
    let mut r = reg();
    let observations = [0.1, 0.5, 0.7, 1.0, 2.0, 2.5, 3.0, 100.0, -4.0];
    for (i, v) in observations.iter().enumerate() {
        let p = Point::histogram("batch_seconds", *v, i as u64).with_buckets(&BOUNDS);
        assert_eq!(r.add(1, p), Ok(()));
    }
    let s = r.series(1, "batch_seconds", &[]).expect("series");
    let h = s.histogram().expect("histogram");
    assert_eq!(h.bounds(), &BOUNDS);
    // (..0.5]: 0.1 0.5 -4; (0.5, 1]: 0.7 1; (1, 2.5]: 2 2.5; above: 3 100.
    assert_eq!(h.bucket_counts(), &[3, 2, 2, 2]);
    assert_eq!(
        h.cumulative().collect::<Vec<_>>(),
        vec![(0.5, 3), (1.0, 5), (2.5, 7), (f64::INFINITY, 9)]
    );
    assert_eq!(h.count(), 9);
    assert_eq!(h.sum(), observations.iter().sum::<f64>());
    assert_eq!((h.min(), h.max()), (Some(-4.0), Some(100.0)));
    let summary = s.summary();
    assert_eq!(
        (summary.count, summary.last, summary.min, summary.max),
        (9, -4.0, Some(-4.0), Some(100.0))
    );
    assert_eq!(s.history().len(), 9, "each observation is a point of the history");
    assert!(r.series(1, "batch_seconds", &[]).is_some());
    assert!(r.series(1, "missing", &[]).and_then(Series::histogram).is_none());
}

// --- History: downsampling and queries ---------------------------------------

#[test]
fn metrics_history_keeps_the_newest_1024_then_every_stride_th() {
    let mut h = History::new();
    let n = 10_000u64;
    for i in 0..n {
        h.push(Sample {
            value: i as f64,
            step: Some(i),
            ts_ms: i,
        });
    }
    let recent: Vec<u64> = h.recent().filter_map(|s| s.step).collect();
    assert_eq!(recent, (n - RECENT_MAX as u64..n).collect::<Vec<_>>());
    // 8976 retired points; strides 1, 2, 4, 8 fill 1024 each before halving:
    // the tier holds the retired points 0, 16, 32, ... (stride 16).
    let retired = n - RECENT_MAX as u64;
    assert_eq!(h.stride(), 16);
    let older: Vec<u64> = h.older().filter_map(|s| s.step).collect();
    let expected: Vec<u64> = (0..retired).step_by(16).collect();
    assert_eq!(older, expected);
    assert!(older.len() <= OLDER_MAX);
    assert_eq!(h.len(), older.len() + RECENT_MAX);
    assert_eq!(h.iter().next().and_then(|s| s.step), Some(0), "the first point is kept");
}

#[test]
fn metrics_history_bounded_over_a_million_points() {
    let mut r = reg();
    let tags = [("split", "train"), ("host", "a")];
    let n = 1_000_000u64;
    for i in 0..n {
        assert_eq!(r.add(1, gauge("loss", i as f64, i).with_tags(&tags)), Ok(()));
    }
    let s = r.series(1, "loss", &tags).expect("series");
    let h = s.history();
    assert_eq!(h.recent().count(), RECENT_MAX);
    assert!(h.older().count() > OLDER_MAX / 2 && h.older().count() <= OLDER_MAX);
    assert_eq!(
        h.capacities(),
        (RECENT_MAX, OLDER_MAX),
        "the buffers never grew past their bounds"
    );
    // Everything kept is evenly spaced by the stride, from the first point.
    let older: Vec<u64> = h.older().filter_map(|p| p.step).collect();
    assert_eq!(older.first(), Some(&0));
    assert!(older.windows(2).all(|w| w[1] - w[0] == h.stride()));
    assert_eq!(h.stride(), 1024, "about (n - 1024) / 1024, a power of two");
    assert!(r.heap_bytes() <= Limits::SERIES_WORST_BYTES);
    assert!(s.heap_bytes() <= (RECENT_MAX + OLDER_MAX) * 32 + 256);
    assert_eq!(s.count(), n);
    assert_eq!(s.summary().min, Some(0.0));
}

#[test]
fn metrics_registry_memory_bounded_when_full() {
    let limits = Limits {
        max_series_per_job: 8,
        max_series: 16,
    };
    let mut r = Registry::new(limits);
    let long_key = "k".repeat(TAG_KEY_MAX);
    let values: Vec<String> = (0..8)
        .map(|i| format!("{i}{}", "v".repeat(TAG_VALUE_MAX - 1)))
        .collect();
    let bounds: Vec<f64> = (0..BUCKETS_MAX).map(|i| i as f64).collect();
    for job in 0..4u64 {
        for (i, value) in values.iter().enumerate() {
            let name = format!("{}{i}", "m".repeat(NAME_MAX - 1));
            let tags = [(long_key.as_str(), value.as_str())];
            for step in 0..3_000u64 {
                let p = Point::histogram(&name, step as f64, step)
                    .with_step(step)
                    .with_tags(&tags)
                    .with_buckets(&bounds);
                // Jobs 2 and 3 are beyond the 16 series.
                let expected = if job < 2 {
                    Ok(())
                } else {
                    Err(MetricError::TooManySeries)
                };
                assert_eq!(r.add(job, p), expected);
            }
        }
    }
    assert_eq!(r.series_count(), 16);
    assert!(
        r.heap_bytes() <= limits.worst_case_bytes(),
        "{} > {}",
        r.heap_bytes(),
        limits.worst_case_bytes()
    );
    assert!(
        r.heap_bytes() >= 16 * (RECENT_MAX + OLDER_MAX / 2) * 32,
        "the histories are there"
    );
}

#[test]
fn metrics_default_limits_worst_case_documented() {
    // The figures in Limits' documentation: about 67 KiB a series, about
    // 34 MiB for the default 512 series.
    let per_series = Limits::SERIES_WORST_BYTES;
    assert!((64 * 1024..68 * 1024).contains(&per_series), "{per_series}");
    let all = Limits::DEFAULT.worst_case_bytes();
    assert!((32 << 20..35 << 20).contains(&all), "{all}");
}

#[test]
fn metrics_queries_by_step_and_time() {
    let mut r = reg();
    // Steps 0..3000 at ts 1000 + step; then points without a step.
    for i in 0..3_000u64 {
        assert_eq!(r.add(1, gauge("loss", i as f64, i)), Ok(()));
    }
    for i in 0..3u64 {
        assert_eq!(r.add(1, Point::gauge("loss", -1.0, 10_000 + i)), Ok(()));
    }
    let steps = |range: core::ops::RangeInclusive<u64>| -> Vec<u64> {
        r.history_by_step(1, "loss", &[], range)
            .expect("series")
            .filter_map(|s| s.step)
            .collect()
    };
    // Full resolution at the end: the newest 1024 points are steps
    // 1979..=2999 and the three without a step.
    assert_eq!(steps(2990..=2995), vec![2990, 2991, 2992, 2993, 2994, 2995]);
    // Older: downsampled (stride 2 after 1979 retired points).
    assert_eq!(steps(100..=106), vec![100, 102, 104, 106]);
    assert_eq!(steps(5_000..=6_000), Vec::<u64>::new());
    let s = r.series(1, "loss", &[]).expect("series");
    assert_eq!(
        s.history_by_step(..).count(),
        s.history().len() - 3,
        "points without a step are left out"
    );
    assert_eq!(s.history_by_step(2998..).count(), 2);
    let times: Vec<u64> = s.history_by_time(3_998..10_001).map(|p| p.ts_ms).collect();
    assert_eq!(times, vec![3_998, 3_999, 10_000]);
    assert_eq!(r.history_by_time(1, "loss", &[], 10_002..).map(|i| i.count()), Some(1));
    assert!(r.history_by_time(1, "nope", &[], ..).is_none());
}

#[test]
fn metrics_histories_keep_arrival_order() {
    // Steps that go back (a restarted trainer) are kept as they came.
    let mut r = reg();
    for step in [10, 20, 5, 15] {
        assert_eq!(r.add(1, gauge("loss", step as f64, step)), Ok(()));
    }
    let in_range: Vec<u64> = r
        .history_by_step(1, "loss", &[], 5..=15)
        .expect("series")
        .filter_map(|s| s.step)
        .collect();
    assert_eq!(in_range, vec![10, 5, 15]);
}
