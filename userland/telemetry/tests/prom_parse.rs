//! The exposition read by another parser: Python's `prometheus_client`
//! (`prometheus_client.parser.text_string_to_metric_families`) parses what
//! `telemetry_core::prom` renders, and the families, sample names, labels,
//! values and timestamps it finds are the ones that were put in.
//!
//! Needs `python3` with `prometheus_client` (`pip install prometheus_client`;
//! 0.26.0 is the version this was written against). Without them the test
//! fails and says what to install: it never skips.
//!
//! `prometheus_client` reads format 0.0.4 into the OpenMetrics model: a
//! counter family `x_total` is reported as `x` with samples `x_total`, and a
//! counter family `x` (no `_total`: the name as the job gave it) keeps its
//! name while its samples become `x_total`. The expectations below say so.

use std::path::PathBuf;
use std::process::Command;

use telemetry_core::metrics::{Point, Registry};
use telemetry_core::prom::{Options, render_to_string};

/// Prints what the parser found, one line per family and per sample,
/// tab-separated; strings as hex of their UTF-8 bytes (nothing to escape),
/// numbers as Python's `repr`, which reads back exactly.
const PARSE: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
with open(sys.argv[1], encoding="utf-8") as f:
    text = f.read()
for family in text_string_to_metric_families(text):
    print("F", family.name, family.type, family.documentation.encode().hex(), sep="\t")
    for s in family.samples:
        labels = ",".join(k + "=" + v.encode().hex() for k, v in sorted(s.labels.items()))
        ts = "" if s.timestamp is None else repr(float(s.timestamp))
        print("S", s.name, labels, repr(float(s.value)), ts, sep="\t")
"#;

const INSTALL: &str = "install Python 3 and prometheus_client: `pip install prometheus_client` (0.26.0)";

#[derive(Debug, PartialEq)]
struct Family {
    name: String,
    kind: String,
    help: String,
    samples: Vec<Sample>,
}

#[derive(Debug)]
struct Sample {
    name: String,
    /// Sorted by name.
    labels: Vec<(String, String)>,
    value: f64,
    ts_ms: Option<u64>,
}

impl PartialEq for Sample {
    fn eq(&self, other: &Self) -> bool {
        let same_value = self.value == other.value || (self.value.is_nan() && other.value.is_nan());
        self.name == other.name && self.labels == other.labels && same_value && self.ts_ms == other.ts_ms
    }
}

fn family(name: &str, kind: &str, samples: Vec<Sample>) -> Family {
    Family {
        name: name.into(),
        kind: kind.into(),
        help: format!("{kind} reported by AetherOS jobs"),
        samples,
    }
}

fn sample(name: &str, labels: &[(&str, &str)], value: f64, ts_ms: u64) -> Sample {
    let mut labels: Vec<(String, String)> = labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    labels.sort();
    Sample {
        name: name.into(),
        labels,
        value,
        ts_ms: Some(ts_ms),
    }
}

/// Removes the file when the test ends, passed or not.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn require_python() {
    match Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .output()
    {
        Err(e) => panic!("cannot run python3 ({e}): {INSTALL}"),
        Ok(out) if !out.status.success() => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let why = stderr.lines().last().unwrap_or("no message");
            panic!("python3 cannot import prometheus_client ({why}): {INSTALL}")
        }
        Ok(_) => {}
    }
}

fn unhex(hex: &str) -> String {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex from the script"))
        .collect();
    String::from_utf8(bytes).expect("UTF-8 from the script")
}

/// Renders to a file, parses it with prometheus_client, reads its answer.
fn parse_with_python(text: &str, tag: &str) -> Vec<Family> {
    require_python();
    let file = TempFile(std::env::temp_dir().join(format!("telemetry-prom-parse-{}-{tag}.txt", std::process::id())));
    std::fs::write(&file.0, text).expect("write the exposition");
    let out = Command::new("python3")
        .args(["-c", PARSE])
        .arg(&file.0)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition:\n{}\n--- the text:\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut families: Vec<Family> = Vec::new();
    for line in String::from_utf8(out.stdout).expect("UTF-8").lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["F", name, kind, help] => families.push(Family {
                name: (*name).into(),
                kind: (*kind).into(),
                help: unhex(help),
                samples: Vec::new(),
            }),
            ["S", name, labels, value, ts] => {
                let labels = labels
                    .split(',')
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        let (k, v) = l.split_once('=').expect("k=v");
                        (k.to_string(), unhex(v))
                    })
                    .collect();
                let value: f64 = value.parse().expect("a float repr");
                let ts_ms = (!ts.is_empty()).then(|| {
                    let seconds: f64 = ts.parse().expect("a float repr");
                    (seconds * 1000.0).round() as u64
                });
                families.last_mut().expect("a family first").samples.push(Sample {
                    name: (*name).into(),
                    labels,
                    value,
                    ts_ms,
                });
            }
            _ => panic!("unexpected line from the script: {line:?}"),
        }
    }
    families
}

const T: u64 = 1_700_000_000_000;
const PATH: &str = "C:\\runs\\\"best\"\nv2";
const ODD: &str = "a,b=c} # {d";

fn registry() -> Registry {
    let mut r = Registry::default();
    let bounds = [0.1, 0.5, 1.0, 2.5];
    let train = [("split", "train")];
    let points: Vec<(u64, Point<'_>)> = vec![
        // Counters: one named as Prometheus asks (`_total`), one not.
        (1, Point::counter("steps_total", 10.0, T)),
        (1, Point::counter("steps_total", 25.0, T + 1)),
        (2, Point::counter("steps_total", 7.0, T + 2)),
        (1, Point::counter("tokens_seen", 4096.0, T + 3).with_tags(&train)),
        // Gauges, with NaN and the infinities.
        (1, Point::gauge("loss", 0.42, T + 4).with_step(10).with_tags(&train)),
        (1, Point::gauge("loss", f64::NAN, T + 5).with_tags(&[("split", "val")])),
        (2, Point::gauge("loss", 0.1 + 0.2, T + 6)),
        (1, Point::gauge("lr", f64::INFINITY, T + 7)),
        (2, Point::gauge("grad_norm", f64::NEG_INFINITY, T + 8)),
        (2, Point::gauge("tiny", 1.5e-300, T + 9)),
        // Tags that need escaping, and some that only look like syntax.
        (
            1,
            Point::gauge("eval:note", 1.0, T + 10).with_tags(&[("path", PATH), ("odd", ODD)]),
        ),
        // A histogram in two series, several buckets.
        (
            1,
            Point::histogram("batch_seconds", 0.05, T + 11)
                .with_tags(&train)
                .with_buckets(&bounds),
        ),
        (1, Point::histogram("batch_seconds", 0.5, T + 12).with_tags(&train)),
        (1, Point::histogram("batch_seconds", 0.75, T + 13).with_tags(&train)),
        (1, Point::histogram("batch_seconds", 2.0, T + 14).with_tags(&train)),
        (1, Point::histogram("batch_seconds", 9.0, T + 15).with_tags(&train)),
        (3, Point::histogram("batch_seconds", 1.0, T + 16).with_buckets(&bounds)),
    ];
    for (job, p) in &points {
        assert_eq!(r.add(*job, *p), Ok(()), "{p:?}");
    }
    r
}

fn bucket(job: &str, tags: &[(&str, &str)], le: &str, count: f64, ts: u64) -> Sample {
    let mut labels = vec![("job_id", job), ("le", le)];
    labels.extend_from_slice(tags);
    sample("batch_seconds_bucket", &labels, count, ts)
}

#[test]
fn prom_parse_every_kind_with_prometheus_client() {
    let r = registry();
    let text = render_to_string(&r, Options::ALL.with_timestamps());
    let train = [("split", "train")];
    let t1 = [("job_id", "1"), ("split", "train")];
    let ts_h1 = T + 15;
    let ts_h3 = T + 16;
    let expected = vec![
        family(
            "batch_seconds",
            "histogram",
            vec![
                bucket("1", &train, "0.1", 1.0, ts_h1),
                bucket("1", &train, "0.5", 2.0, ts_h1),
                bucket("1", &train, "1", 3.0, ts_h1),
                bucket("1", &train, "2.5", 4.0, ts_h1),
                bucket("1", &train, "+Inf", 5.0, ts_h1),
                sample("batch_seconds_sum", &t1, 0.05 + 0.5 + 0.75 + 2.0 + 9.0, ts_h1),
                sample("batch_seconds_count", &t1, 5.0, ts_h1),
                bucket("3", &[], "0.1", 0.0, ts_h3),
                bucket("3", &[], "0.5", 0.0, ts_h3),
                bucket("3", &[], "1", 1.0, ts_h3),
                bucket("3", &[], "2.5", 1.0, ts_h3),
                bucket("3", &[], "+Inf", 1.0, ts_h3),
                sample("batch_seconds_sum", &[("job_id", "3")], 1.0, ts_h3),
                sample("batch_seconds_count", &[("job_id", "3")], 1.0, ts_h3),
            ],
        ),
        family(
            "eval:note",
            "gauge",
            vec![sample(
                "eval:note",
                &[("job_id", "1"), ("odd", ODD), ("path", PATH)],
                1.0,
                T + 10,
            )],
        ),
        family(
            "grad_norm",
            "gauge",
            vec![sample("grad_norm", &[("job_id", "2")], f64::NEG_INFINITY, T + 8)],
        ),
        family(
            "loss",
            "gauge",
            vec![
                sample("loss", &t1, 0.42, T + 4),
                sample("loss", &[("job_id", "1"), ("split", "val")], f64::NAN, T + 5),
                sample("loss", &[("job_id", "2")], 0.1 + 0.2, T + 6),
            ],
        ),
        family(
            "lr",
            "gauge",
            vec![sample("lr", &[("job_id", "1")], f64::INFINITY, T + 7)],
        ),
        // `steps_total`: the parser drops `_total` from the family's name.
        family(
            "steps",
            "counter",
            vec![
                sample("steps_total", &[("job_id", "1")], 25.0, T + 1),
                sample("steps_total", &[("job_id", "2")], 7.0, T + 2),
            ],
        ),
        family(
            "tiny",
            "gauge",
            vec![sample("tiny", &[("job_id", "2")], 1.5e-300, T + 9)],
        ),
        // `tokens_seen` is rendered as given; the parser adds `_total` to
        // its samples.
        family(
            "tokens_seen",
            "counter",
            vec![sample("tokens_seen_total", &t1, 4096.0, T + 3)],
        ),
    ];
    let parsed = parse_with_python(&text, "all");
    assert_eq!(
        parsed.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        expected.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        "families"
    );
    for (got, want) in parsed.iter().zip(&expected) {
        assert_eq!(got, want, "family {}\n--- the text:\n{text}", want.name);
    }
    // What was rendered, to the letter, for the names the parser rewrites.
    assert!(text.contains("\n# TYPE steps_total counter\nsteps_total{job_id=\"1\"} 25 1700000000001\n"));
    assert!(text.contains("\n# TYPE tokens_seen counter\ntokens_seen{job_id=\"1\",split=\"train\"} 4096 "));
}

#[test]
fn prom_parse_one_job_without_timestamps() {
    let r = registry();
    let text = render_to_string(&r, Options::job(2));
    let no_ts = |mut s: Sample| {
        s.ts_ms = None;
        s
    };
    let expected = vec![
        family(
            "grad_norm",
            "gauge",
            vec![no_ts(sample("grad_norm", &[("job_id", "2")], f64::NEG_INFINITY, 0))],
        ),
        family(
            "loss",
            "gauge",
            vec![no_ts(sample("loss", &[("job_id", "2")], 0.1 + 0.2, 0))],
        ),
        family(
            "steps",
            "counter",
            vec![no_ts(sample("steps_total", &[("job_id", "2")], 7.0, 0))],
        ),
        family(
            "tiny",
            "gauge",
            vec![no_ts(sample("tiny", &[("job_id", "2")], 1.5e-300, 0))],
        ),
    ];
    assert_eq!(parse_with_python(&text, "job2"), expected, "--- the text:\n{text}");
}
