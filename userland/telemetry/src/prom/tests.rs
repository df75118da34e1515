//! The exposition, byte for byte.

use alloc::string::String;
use alloc::vec::Vec;

use super::*;
use crate::metrics::{Point, Registry};

/// A registry with a bit of everything: two jobs, every kind, tags that
/// need escaping, NaN and infinities.
fn sample_registry() -> Registry {
    let mut r = Registry::default();
    let bounds = [0.1, 0.5, 1.0, 2.5];
    let points: [(u64, Point<'_>); 12] = [
        (2, Point::gauge("loss", 0.25, 1_700_000_000_500).with_step(20)),
        (
            1,
            Point::gauge("loss", 0.42, 1_700_000_000_000)
                .with_step(10)
                .with_tags(&[("split", "train")]),
        ),
        (
            1,
            Point::gauge("loss", f64::NAN, 1_700_000_000_100).with_tags(&[("split", "val")]),
        ),
        (1, Point::counter("tokens_total", 1024.0, 1_700_000_000_000)),
        (1, Point::counter("tokens_total", 4096.0, 1_700_000_000_200)),
        (1, Point::gauge("lr", f64::INFINITY, 1_700_000_000_000)),
        (2, Point::gauge("grad_norm", f64::NEG_INFINITY, 1_700_000_000_000)),
        (
            1,
            Point::gauge("eval:note", 1.0, 1_700_000_000_000)
                .with_tags(&[("path", "C:\\runs\\\"best\"\nv2"), ("a", "x")]),
        ),
        (
            1,
            Point::histogram("batch_seconds", 0.05, 1_700_000_000_000).with_buckets(&bounds),
        ),
        (1, Point::histogram("batch_seconds", 0.5, 1_700_000_000_001)),
        (1, Point::histogram("batch_seconds", 0.7, 1_700_000_000_002)),
        (1, Point::histogram("batch_seconds", 3.0, 1_700_000_000_003)),
    ];
    for (job, p) in &points {
        assert_eq!(r.add(*job, *p), Ok(()), "{p:?}");
    }
    r
}

const ALL: &str = r#"# HELP batch_seconds histogram reported by AetherOS jobs
# TYPE batch_seconds histogram
batch_seconds_bucket{job_id="1",le="0.1"} 1
batch_seconds_bucket{job_id="1",le="0.5"} 2
batch_seconds_bucket{job_id="1",le="1"} 3
batch_seconds_bucket{job_id="1",le="2.5"} 3
batch_seconds_bucket{job_id="1",le="+Inf"} 4
batch_seconds_sum{job_id="1"} 4.25
batch_seconds_count{job_id="1"} 4
# HELP eval:note gauge reported by AetherOS jobs
# TYPE eval:note gauge
eval:note{job_id="1",a="x",path="C:\\runs\\\"best\"\nv2"} 1
# HELP grad_norm gauge reported by AetherOS jobs
# TYPE grad_norm gauge
grad_norm{job_id="2"} -Inf
# HELP loss gauge reported by AetherOS jobs
# TYPE loss gauge
loss{job_id="1",split="train"} 0.42
loss{job_id="1",split="val"} NaN
loss{job_id="2"} 0.25
# HELP lr gauge reported by AetherOS jobs
# TYPE lr gauge
lr{job_id="1"} +Inf
# HELP tokens_total counter reported by AetherOS jobs
# TYPE tokens_total counter
tokens_total{job_id="1"} 4096
"#;

#[test]
fn prom_golden_all_jobs() {
    assert_eq!(render_to_string(&sample_registry(), Options::ALL), ALL);
}

#[test]
fn prom_golden_one_job_with_timestamps() {
    let expected = r#"# HELP grad_norm gauge reported by AetherOS jobs
# TYPE grad_norm gauge
grad_norm{job_id="2"} -Inf 1700000000000
# HELP loss gauge reported by AetherOS jobs
# TYPE loss gauge
loss{job_id="2"} 0.25 1700000000500
"#;
    let r = sample_registry();
    assert_eq!(render_to_string(&r, Options::job(2).with_timestamps()), expected);
    assert_eq!(render_to_string(&r, Options::job(3)), "", "a job without series");
    assert_eq!(render_to_string(&Registry::default(), Options::ALL), "");
}

#[test]
fn prom_histogram_timestamps_are_the_last_observation() {
    let one = render_to_string(&sample_registry(), Options::job(1).with_timestamps());
    let lines: Vec<&str> = one.lines().filter(|l| l.starts_with("batch_seconds")).collect();
    assert_eq!(lines.len(), 7);
    assert!(lines.iter().all(|l| l.ends_with(" 1700000000003")), "{lines:?}");
    assert!(one.contains("tokens_total{job_id=\"1\"} 4096 1700000000200\n"));
}

#[test]
fn prom_output_is_deterministic_whatever_the_insertion_order() {
    let mut backward = Registry::default();
    let points = [
        (3, Point::gauge("b", 1.0, 0).with_tags(&[("z", "1"), ("a", "2")])),
        (3, Point::gauge("b", 2.0, 0).with_tags(&[("a", "1")])),
        (1, Point::gauge("b", 3.0, 0)),
        (2, Point::gauge("a", 4.0, 0)),
    ];
    for (job, p) in points.iter().rev() {
        assert_eq!(backward.add(*job, *p), Ok(()));
    }
    let mut again = Registry::default();
    for (job, p) in &points {
        assert_eq!(again.add(*job, *p), Ok(()));
    }
    let text = render_to_string(&backward, Options::ALL);
    assert_eq!(text, render_to_string(&again, Options::ALL));
    let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        samples,
        vec![
            r#"a{job_id="2"} 4"#,
            r#"b{job_id="1"} 3"#,
            r#"b{job_id="3",a="1"} 2"#,
            r#"b{job_id="3",a="2",z="1"} 1"#,
        ]
    );
}

#[test]
fn prom_floats_read_back_exactly() {
    let cases: [(f64, &str); 14] = [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (0.1, "0.1"),
        (0.1 + 0.2, "0.30000000000000004"),
        (-2.5, "-2.5"),
        (1e-4, "0.0001"),
        (9.9e-5, "9.9e-5"),
        (123456789012345.0, "123456789012345"),
        (1e15, "1e15"),
        (f64::MAX, "1.7976931348623157e308"),
        (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "+Inf"),
    ];
    for (value, text) in cases {
        let mut s = String::new();
        assert_eq!(write_float(&mut s, value), Ok(()));
        assert_eq!(s, text);
        if value.is_finite() {
            assert_eq!(s.parse::<f64>().map(f64::to_bits), Ok(value.to_bits()), "{s}");
        }
    }
    let mut s = String::new();
    assert_eq!(write_float(&mut s, f64::NEG_INFINITY), Ok(()));
    assert_eq!(s, "-Inf");
}

#[test]
fn prom_label_values_escaped() {
    let cases = [
        ("plain", "plain"),
        ("a\\b", "a\\\\b"),
        ("say \"hi\"", "say \\\"hi\\\""),
        ("two\nlines", "two\\nlines"),
        ("\\\n\"", "\\\\\\n\\\""),
        ("tab\tand cr\r stay", "tab\tand cr\r stay"),
        ("ünïcode ✓", "ünïcode ✓"),
        ("", ""),
    ];
    for (value, escaped) in cases {
        let mut s = String::new();
        assert_eq!(write_escaped(&mut s, value), Ok(()));
        assert_eq!(s, escaped, "{value:?}");
    }
}

#[test]
fn prom_counter_names_as_given() {
    let mut r = Registry::default();
    assert_eq!(r.add(1, Point::counter("steps", 3.0, 0)), Ok(()));
    let text = render_to_string(&r, Options::ALL);
    assert_eq!(
        text,
        "# HELP steps counter reported by AetherOS jobs\n# TYPE steps counter\nsteps{job_id=\"1\"} 3\n"
    );
}

#[test]
fn prom_timestamps_beyond_i64_left_out() {
    let mut r = Registry::default();
    assert_eq!(r.add(1, Point::gauge("g", 1.0, u64::MAX)), Ok(()));
    let text = render_to_string(&r, Options::ALL.with_timestamps());
    assert!(text.ends_with("g{job_id=\"1\"} 1\n"), "{text}");
}

/// A sink that fails after `room` bytes: the error comes back, nothing
/// panics.
struct Full {
    room: usize,
}

impl fmt::Write for Full {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.room = self.room.checked_sub(s.len()).ok_or(fmt::Error)?;
        Ok(())
    }
}

#[test]
fn prom_sink_errors_come_back() {
    let r = sample_registry();
    for room in [0, 10, 100, 500] {
        assert_eq!(render(&r, Options::ALL, &mut Full { room }), Err(fmt::Error));
    }
    assert_eq!(render(&r, Options::ALL, &mut Full { room: ALL.len() }), Ok(()));
}

#[test]
fn prom_content_type() {
    assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
}
