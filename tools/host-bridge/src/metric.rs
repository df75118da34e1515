//! Metric lines: a stdout line that is a JSON object with the key
//! `"aether_metric"`:
//!
//! ```json
//! {"aether_metric": {"name": "loss", "value": 0.42, "step": 120, "tags": {"split": "train"}}}
//! {"aether_metric": {"name": "samples", "kind": "counter", "value": 5120}}
//! {"aether_metric": {"name": "batch_s", "kind": "histogram", "value": 0.21, "buckets": [0.1, 0.25, 1]}}
//! ```
//!
//! * `name`: a non-empty string. Trainers write `eval/accuracy` or
//!   `train.loss`: each `/`, `.`, `-` and space becomes `_`
//!   (`eval_accuracy`); the result must then be a Prometheus name,
//!   `[a-zA-Z_:][a-zA-Z0-9_:]*` of at most 64 bytes, or the line is
//!   malformed (any other character is refused, never replaced).
//! * `value`: a JSON number, or one of the strings `"NaN"`, `"Infinity"`,
//!   `"-Infinity"` (JSON has no literal for them and a diverging loss is
//!   worth reporting).
//! * `kind` (optional): `"counter"`, `"gauge"` (the default) or
//!   `"histogram"`.
//! * `buckets` (optional, histograms only): the bucket bounds, numbers (or
//!   the strings above) strictly increasing; a last `"Infinity"` may be
//!   given and is dropped (the exposition always writes `+Inf`).
//! * `step` (optional): a non-negative integer; `tags` (optional): an
//!   object whose values are strings (numbers and booleans are kept as
//!   their JSON text).
//!
//! Other keys are ignored; `null` is the same as a missing key. The point
//! is then checked with [`MetricPoint::check`] (the ABI's stateless
//! checks, the ones the kernel runs on a native program's points): a
//! counter that is NaN or negative, a histogram observation that is not
//! finite, more than 8 tags, a tag key that is not a label name (or is
//! `job_id` or `le`), a key over 32 or a value over 64 bytes, an empty
//! value, bounds on a counter or a gauge, bounds not strictly increasing
//! or more than 32 of them. The checks that need the series (a counter
//! going down, a name changing kind) are opsd's.
//!
//! A line that does not mention `"aether_metric"` at the top level of a
//! JSON object is plain log. A line that starts with `{` and mentions
//! `"aether_metric"` but is not valid JSON or has an invalid payload is
//! *malformed*, with the reason (the ABI error's text for a failed
//! check): reported and counted, never fatal. Every line, metric or not,
//! stays in the log.

use aether_abi::metric::{BUCKETS_MAX, MetricError, MetricKind, MetricPoint, TAGS_MAX, Tag};
use serde_json::{Map, Value};

/// The key that marks a metric line.
pub const KEY: &str = "aether_metric";
/// Lines longer than this are never metric lines (the supervisor does not
/// buffer more than this of one line).
pub const MAX_LINE: usize = 64 * 1024;
/// The characters of trainers' names that become `_`.
pub const NAME_SEPARATORS: [char; 4] = ['/', '.', '-', ' '];

/// One metric point of a job's stdout.
#[derive(Clone, Debug, PartialEq)]
pub struct JobMetric {
    pub job_id: u64,
    /// Byte offset of the line in the job's stdout (identifies the point:
    /// a point re-read after a restart has the same offset).
    pub offset: u64,
    /// Boxed: a point is over 1 KiB, the events beside it are small.
    pub point: Box<MetricPoint>,
}

/// What a line is.
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    Log,
    /// A checked metric point (boxed, as in [`JobMetric`]).
    Metric(Box<MetricPoint>),
    /// It tried to be a metric line; why it is not one.
    Malformed(String),
}

/// Classifies one line (without its `\n`; a trailing `\r` and surrounding
/// whitespace are ignored). Non-UTF-8 lines are log lines unless they
/// mention the key, in which case they are malformed.
pub fn classify(line: &[u8]) -> Line {
    let line = line.trim_ascii();
    if line.first() != Some(&b'{') || !contains(line, b"\"aether_metric\"") {
        return Line::Log;
    }
    let value: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => return Line::Malformed(format!("not valid JSON: {e}")),
    };
    let Some(payload) = value.as_object().and_then(|o| o.get(KEY)) else {
        // The key only appeared inside some string or nested value.
        return Line::Log;
    };
    match parse_payload(payload) {
        Ok(point) => Line::Metric(Box::new(point)),
        Err(e) => Line::Malformed(e),
    }
}

/// A trainer's name as a Prometheus name: [`NAME_SEPARATORS`] become `_`.
/// Other characters are kept (and refused by the check if invalid).
pub fn map_name(name: &str) -> String {
    name.chars()
        .map(|c| if NAME_SEPARATORS.contains(&c) { '_' } else { c })
        .collect()
}

/// The point of a payload, checked; the reason it is not one.
fn parse_payload(payload: &Value) -> Result<MetricPoint, String> {
    let obj = payload.as_object().ok_or("\"aether_metric\" is not an object")?;
    let field = |key: &str| obj.get(key).filter(|v| !v.is_null());
    let raw_name = match field("name") {
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(_) => return Err("\"name\" is not a non-empty string".into()),
        None => return Err("\"name\" is missing".into()),
    };
    let kind = match field("kind") {
        None => MetricKind::Gauge,
        Some(Value::String(s)) => MetricKind::from_name(s)
            .ok_or_else(|| format!("\"kind\" is {s:?}, not \"counter\", \"gauge\" or \"histogram\""))?,
        Some(_) => return Err("\"kind\" is not a string".into()),
    };
    let value = match field("value") {
        Some(v) => number(v).map_err(|e| format!("\"value\" {e}"))?,
        None => return Err("\"value\" is missing".into()),
    };
    let name = map_name(raw_name);
    let bad_name = |e: MetricError| format!("{e} (the name {raw_name:?}, with / . - and space mapped to _)");
    aether_abi::metric::check_name(&name).map_err(bad_name)?;
    let mut point = MetricPoint::new(&name, kind, value).ok_or_else(|| bad_name(MetricError::NameTooLong))?;
    point.step = match field("step") {
        None => None,
        Some(v) => Some(v.as_u64().ok_or("\"step\" is not a non-negative integer")?),
    };
    match field("tags") {
        None => {}
        Some(Value::Object(t)) => point.tags = tags(t)?,
        Some(_) => return Err("\"tags\" is not an object".into()),
    }
    match field("buckets") {
        None => {}
        Some(Value::Array(b)) => point.buckets = buckets(kind, b)?,
        Some(_) => return Err("\"buckets\" is not an array".into()),
    }
    point.check().map_err(|e| e.to_string())?;
    Ok(point)
}

/// A JSON number, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
pub(crate) fn number(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| "is not representable as f64".into()),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => Err(format!("is the string {s:?}, not a number")),
        },
        _ => Err("is not a number".into()),
    }
}

/// The tags of a payload (an object's keys come sorted and once each);
/// the ABI's capacities give the ABI's errors.
fn tags(obj: &Map<String, Value>) -> Result<heapless::Vec<Tag, TAGS_MAX>, String> {
    if obj.len() > TAGS_MAX {
        return Err(MetricError::TooManyTags.to_string());
    }
    let mut out = heapless::Vec::new();
    for (k, v) in obj {
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) => v.to_string(),
            _ => return Err(format!("tag {k:?} is not a string, number or boolean")),
        };
        let tag = match (
            heapless::String::try_from(k.as_str()),
            heapless::String::try_from(v.as_str()),
        ) {
            (Ok(key), Ok(value)) => Tag { key, value },
            _ => return Err(format!("{} (tag {k:?})", MetricError::TagTooLong)),
        };
        // Cannot fail: at most TAGS_MAX keys.
        let _ = out.push(tag);
    }
    Ok(out)
}

/// The bounds of a payload, a last `+Inf` dropped. Bounds given on a
/// counter or a gauge, or given on a histogram and empty, are refused
/// here (alone, a histogram point may come without bounds: only a
/// series' first needs them, which is opsd's to tell).
fn buckets(kind: MetricKind, raw: &[Value]) -> Result<heapless::Vec<f64, BUCKETS_MAX>, String> {
    if kind != MetricKind::Histogram {
        return Err(MetricError::BucketsWithoutHistogram.to_string());
    }
    let mut bounds = raw
        .iter()
        .enumerate()
        .map(|(i, v)| number(v).map_err(|e| format!("bucket bound {i} {e}")))
        .collect::<Result<Vec<f64>, String>>()?;
    if bounds.last() == Some(&f64::INFINITY) {
        bounds.pop();
    }
    // Checked here too: the ABI's check would drop a second last +Inf.
    if bounds.iter().any(|b| !b.is_finite()) {
        return Err(MetricError::BucketsUnsorted.to_string());
    }
    if bounds.is_empty() {
        return Err(MetricError::HistogramWithoutBuckets.to_string());
    }
    heapless::Vec::from_slice(&bounds).map_err(|_| MetricError::TooManyBuckets.to_string())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Splits a byte stream into lines, remembering where each starts. Bytes
/// of an unfinished line are kept (up to [`MAX_LINE`]; past that the line
/// is skipped up to its end: it cannot be a metric line).
#[derive(Debug, Default)]
pub struct LineSplitter {
    /// Offset in the stream of the first byte of the unfinished line.
    start: u64,
    /// Bytes of the unfinished line seen so far.
    pending: u64,
    /// Those bytes, unless `skipping`.
    partial: Vec<u8>,
    /// The unfinished line is longer than MAX_LINE.
    skipping: bool,
}

impl LineSplitter {
    /// A splitter whose next byte is at `offset`, the start of a line.
    pub fn at(offset: u64) -> LineSplitter {
        LineSplitter {
            start: offset,
            ..LineSplitter::default()
        }
    }

    /// A splitter for a stream read up to `start + pending`, where the
    /// unfinished line starts at `start` and begins with `head` (at most
    /// MAX_LINE + 1 of its `pending` bytes; fewer only if the file is short).
    pub fn resume(start: u64, head: &[u8], pending: u64) -> LineSplitter {
        let head = &head[..head.len().min(pending as usize)];
        let mut s = LineSplitter::at(start);
        if head.contains(&b'\n') || pending > MAX_LINE as u64 {
            // Not an unfinished line after all (should not happen), or one
            // too long to be a metric line: skip to the end of it.
            s.skipping = true;
        } else {
            s.partial = head.to_vec();
        }
        s.pending = pending;
        s
    }

    /// Where the unfinished line starts (a line boundary: resuming from it
    /// after a restart loses no line).
    pub fn line_start(&self) -> u64 {
        self.start
    }

    /// Feeds the next bytes; calls `line(offset, bytes)` for every
    /// complete line (without its `\n`) that is not longer than MAX_LINE.
    pub fn feed(&mut self, mut bytes: &[u8], mut line: impl FnMut(u64, &[u8])) {
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            let (head, tail) = (&bytes[..nl], &bytes[nl + 1..]);
            if !self.skipping && self.partial.len() + head.len() <= MAX_LINE {
                if self.partial.is_empty() {
                    line(self.start, head);
                } else {
                    self.partial.extend_from_slice(head);
                    line(self.start, &self.partial);
                }
            }
            self.start += self.pending + head.len() as u64 + 1;
            self.pending = 0;
            self.partial.clear();
            self.skipping = false;
            bytes = tail;
        }
        self.pending += bytes.len() as u64;
        if self.skipping {
            return;
        }
        if self.partial.len() + bytes.len() > MAX_LINE {
            self.skipping = true;
            self.partial = Vec::new();
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    /// The stream has ended: the unfinished line, if any, is a line too.
    pub fn finish(&mut self, mut line: impl FnMut(u64, &[u8])) {
        if self.pending > 0 && !self.skipping {
            line(self.start, &self.partial);
        }
        self.start += self.pending;
        self.pending = 0;
        self.partial.clear();
        self.skipping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(line: &str) -> MetricPoint {
        match classify(line.as_bytes()) {
            Line::Metric(m) => *m,
            other => panic!("{line}: {other:?}"),
        }
    }

    /// The reason a line is malformed.
    fn malformed(line: &str) -> String {
        match classify(line.as_bytes()) {
            Line::Malformed(reason) => reason,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn tag<'a>(m: &'a MetricPoint, key: &str) -> Option<&'a str> {
        m.tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
    }

    /// `{"aether_metric": {"name": "m", "value": 1, <fields>}}`
    fn with(fields: &str) -> String {
        format!(r#"{{"aether_metric": {{"name": "m", "value": 1, {fields}}}}}"#)
    }

    #[test]
    fn full_and_minimal_metric_lines() {
        let m =
            metric(r#"{"aether_metric": {"name": "loss", "value": 0.42, "step": 120, "tags": {"split": "train"}}}"#);
        assert_eq!(
            (m.name.as_str(), m.kind, m.value, m.step),
            ("loss", MetricKind::Gauge, 0.42, Some(120))
        );
        assert_eq!(tag(&m, "split"), Some("train"));
        assert!(m.buckets.is_empty());
        let m = metric("  {\"aether_metric\":{\"name\":\"lr\",\"value\":3}}\r");
        assert_eq!((m.name.as_str(), m.value, m.step, m.tags.len()), ("lr", 3.0, None, 0));
        let m = metric(r#"{"aether_metric": {"name": "loss", "value": "NaN", "tags": {"rank": 0, "ok": true}}}"#);
        assert!(m.value.is_nan());
        assert_eq!(tag(&m, "rank"), Some("0"));
        assert_eq!(tag(&m, "ok"), Some("true"));
        for (text, want) in [("Infinity", f64::INFINITY), ("-Infinity", f64::NEG_INFINITY)] {
            let m = metric(&format!(r#"{{"aether_metric": {{"name": "g", "value": "{text}"}}}}"#));
            assert_eq!(m.value, want);
        }
        // null is a missing key; other keys are ignored.
        let m = metric(&with(
            r#""step": null, "tags": null, "kind": null, "buckets": null, "unit": "s""#,
        ));
        assert_eq!(
            (m.kind, m.step, m.tags.len(), m.buckets.len()),
            (MetricKind::Gauge, None, 0, 0)
        );
    }

    #[test]
    fn kinds_and_buckets() {
        let m = metric(&with(r#""kind": "counter", "value": 5120"#));
        assert_eq!((m.kind, m.value), (MetricKind::Counter, 5120.0));
        assert_eq!(metric(&with(r#""kind": "gauge""#)).kind, MetricKind::Gauge);
        let m = metric(&with(r#""kind": "histogram", "value": 0.2, "buckets": [0.1, 0.25, 1]"#));
        assert_eq!(
            (m.kind, m.value, m.buckets.as_slice()),
            (MetricKind::Histogram, 0.2, &[0.1, 0.25, 1.0][..])
        );
        // A last +Inf is the exposition's own: dropped, and it does not
        // count towards the 32.
        let bounds: Vec<String> = (0..BUCKETS_MAX).map(|i| i.to_string()).collect();
        let line = with(&format!(
            r#""kind": "histogram", "buckets": [{}, "Infinity"]"#,
            bounds.join(", ")
        ));
        assert_eq!(metric(&line).buckets.len(), BUCKETS_MAX);
        // Alone, a histogram point may come without its bounds (a series'
        // later points): opsd tells a first one.
        assert!(metric(&with(r#""kind": "histogram""#)).buckets.is_empty());
        // The checks pass the extremes.
        assert_eq!(metric(&with(r#""kind": "counter", "value": 0"#)).value, 0.0);
        assert_eq!(
            metric(&with(r#""kind": "counter", "value": "Infinity""#)).value,
            f64::INFINITY
        );
        assert!(metric(&with(r#""value": "NaN", "kind": "gauge""#)).value.is_nan());
    }

    #[test]
    fn tags_at_their_limits_pass() {
        let mut tags: Vec<String> = (1..TAGS_MAX).map(|i| format!(r#""t{i}": {i}"#)).collect();
        tags.push(format!(r#""{}": "{}""#, "k".repeat(32), "v".repeat(64)));
        let m = metric(&with(&format!(r#""tags": {{{}}}"#, tags.join(", "))));
        assert_eq!(m.tags.len(), TAGS_MAX);
        assert_eq!(tag(&m, &"k".repeat(32)), Some("v".repeat(64).as_str()));
        assert_eq!(tag(&m, "t3"), Some("3"));
        assert_eq!(m.check(), Ok(()));
    }

    #[test]
    fn trainer_names_are_mapped_to_prometheus_names() {
        for (given, want) in [
            ("eval/accuracy", "eval_accuracy"),
            ("train.loss", "train_loss"),
            ("val-loss", "val_loss"),
            ("tokens per s", "tokens_per_s"),
            ("a/b.c-d e", "a_b_c_d_e"),
            ("/leading", "_leading"),
            ("ns:sub_name:x9", "ns:sub_name:x9"),
            ("_", "_"),
        ] {
            let m = metric(&format!(r#"{{"aether_metric": {{"name": "{given}", "value": 1}}}}"#));
            assert_eq!(m.name.as_str(), want, "{given}");
        }
        let longest = "a".repeat(aether_abi::metric::NAME_MAX);
        assert_eq!(
            metric(&format!(r#"{{"aether_metric": {{"name": "{longest}", "value": 1}}}}"#)).name,
            longest.as_str()
        );
        assert_eq!(map_name("eval/top-1 acc.mean"), "eval_top_1_acc_mean");
    }

    #[test]
    fn bad_names_are_malformed_with_the_reason() {
        let invalid = MetricError::NameInvalid.as_str();
        for bad in ["acc%", "1st", "9/eval", "λ", "a\tb", "a,b", "x{y}", "ünï", "a\"b"] {
            let line = format!(r#"{{"aether_metric": {{"name": {}, "value": 1}}}}"#, Value::from(bad));
            let reason = malformed(&line);
            assert!(reason.contains(invalid), "{bad}: {reason}");
            assert!(reason.contains(&format!("{bad:?}")), "names the given name: {reason}");
        }
        let long = "a".repeat(aether_abi::metric::NAME_MAX + 1);
        let reason = malformed(&format!(r#"{{"aether_metric": {{"name": "{long}", "value": 1}}}}"#));
        assert!(reason.contains(MetricError::NameTooLong.as_str()), "{reason}");
        // A mapped name is as long as the given one.
        let long = format!("a/{}", "b".repeat(aether_abi::metric::NAME_MAX - 1));
        let reason = malformed(&format!(r#"{{"aether_metric": {{"name": "{long}", "value": 1}}}}"#));
        assert!(reason.contains(MetricError::NameTooLong.as_str()), "{reason}");
        for bad in [r#""name": """#, r#""name": 5"#, r#""name": ["a"]"#, r#""name": null"#] {
            let reason = malformed(&format!(r#"{{"aether_metric": {{{bad}, "value": 1}}}}"#));
            assert!(reason.contains("\"name\""), "{bad}: {reason}");
        }
    }

    #[test]
    fn failed_checks_are_malformed_with_the_abi_error() {
        let tags9: Vec<String> = (0..TAGS_MAX + 1).map(|i| format!(r#""t{i}": "v""#)).collect();
        let tags9 = format!(r#""tags": {{{}}}"#, tags9.join(", "));
        let key33 = format!(r#""tags": {{"{}": "v"}}"#, "k".repeat(33));
        let value65 = format!(r#""tags": {{"k": "{}"}}"#, "v".repeat(65));
        let bounds33: Vec<String> = (0..BUCKETS_MAX + 1).map(|i| i.to_string()).collect();
        let bounds33 = format!(r#""kind": "histogram", "buckets": [{}]"#, bounds33.join(", "));
        let cases: Vec<(String, MetricError)> = vec![
            (with(r#""kind": "counter", "value": "NaN""#), MetricError::NanInCounter),
            (with(r#""kind": "counter", "value": -1"#), MetricError::CounterDecreased),
            (
                with(r#""kind": "histogram", "value": "NaN""#),
                MetricError::NonFiniteInHistogram,
            ),
            (
                with(r#""kind": "histogram", "value": "-Infinity""#),
                MetricError::NonFiniteInHistogram,
            ),
            (with(&tags9), MetricError::TooManyTags),
            (with(&key33), MetricError::TagTooLong),
            (with(&value65), MetricError::TagTooLong),
            (with(r#""tags": {"split": ""}"#), MetricError::TagValueEmpty),
            (with(r#""tags": {"job_id": "3"}"#), MetricError::TagKeyInvalid),
            (with(r#""tags": {"le": "1"}"#), MetricError::TagKeyInvalid),
            (with(r#""tags": {"__name": "x"}"#), MetricError::TagKeyInvalid),
            (with(r#""tags": {"a-b": "x"}"#), MetricError::TagKeyInvalid),
            (with(r#""tags": {"1a": "x"}"#), MetricError::TagKeyInvalid),
            (with(r#""tags": {"": "x"}"#), MetricError::TagKeyInvalid),
            (with(r#""buckets": [1, 2]"#), MetricError::BucketsWithoutHistogram),
            (
                with(r#""kind": "counter", "buckets": [1]"#),
                MetricError::BucketsWithoutHistogram,
            ),
            (
                with(r#""kind": "gauge", "buckets": []"#),
                MetricError::BucketsWithoutHistogram,
            ),
            (
                with(r#""kind": "histogram", "buckets": [2, 1]"#),
                MetricError::BucketsUnsorted,
            ),
            (
                with(r#""kind": "histogram", "buckets": [1, 1]"#),
                MetricError::BucketsUnsorted,
            ),
            (
                with(r#""kind": "histogram", "buckets": [1, "NaN"]"#),
                MetricError::BucketsUnsorted,
            ),
            (
                with(r#""kind": "histogram", "buckets": ["-Infinity", 1]"#),
                MetricError::BucketsUnsorted,
            ),
            (
                with(r#""kind": "histogram", "buckets": ["Infinity", "Infinity"]"#),
                MetricError::BucketsUnsorted,
            ),
            (with(&bounds33), MetricError::TooManyBuckets),
            (
                with(r#""kind": "histogram", "buckets": []"#),
                MetricError::HistogramWithoutBuckets,
            ),
            (
                with(r#""kind": "histogram", "buckets": ["Infinity"]"#),
                MetricError::HistogramWithoutBuckets,
            ),
        ];
        for (line, error) in cases {
            let reason = malformed(&line);
            assert!(reason.contains(error.as_str()), "{line}: {reason} (want {error:?})");
        }
        // The reason is the error's text itself where nothing is to add.
        assert_eq!(
            malformed(&with(r#""kind": "counter", "value": "NaN""#)),
            "a counter is NaN"
        );
    }

    #[test]
    fn bad_fields_are_malformed_with_the_field_named() {
        for (bad, field) in [
            (r#"{"aether_metric": {"name": "x"}}"#, "\"value\" is missing"),
            (
                r#"{"aether_metric": {"name": "x", "value": null}}"#,
                "\"value\" is missing",
            ),
            (
                r#"{"aether_metric": {"name": "x", "value": "high"}}"#,
                "\"value\" is the string",
            ),
            (
                r#"{"aether_metric": {"name": "x", "value": "nan"}}"#,
                "\"value\" is the string",
            ),
            (
                r#"{"aether_metric": {"name": "x", "value": true}}"#,
                "\"value\" is not a number",
            ),
            (
                r#"{"aether_metric": {"name": "x", "value": [1]}}"#,
                "\"value\" is not a number",
            ),
            (
                r#"{"aether_metric": {"name": "x", "value": 1, "step": -1}}"#,
                "\"step\"",
            ),
            (
                r#"{"aether_metric": {"name": "x", "value": 1, "step": 1.5}}"#,
                "\"step\"",
            ),
            (
                r#"{"aether_metric": {"name": "x", "value": 1, "step": "3"}}"#,
                "\"step\"",
            ),
            (
                r#"{"aether_metric": {"name": "x", "value": 1, "kind": "summary"}}"#,
                "\"kind\" is \"summary\"",
            ),
            (
                r#"{"aether_metric": {"name": "x", "value": 1, "kind": "Counter"}}"#,
                "\"kind\" is \"Counter\"",
            ),
            (
                r#"{"aether_metric": {"name": "x", "value": 1, "kind": 1}}"#,
                "\"kind\" is not a string",
            ),
            (
                r#"{"aether_metric": {"name": "x", "value": 1, "tags": {"a": [1]}}}"#,
                "tag \"a\"",
            ),
            (
                r#"{"aether_metric": {"name": "x", "value": 1, "tags": {"a": null}}}"#,
                "tag \"a\"",
            ),
            (
                r#"{"aether_metric": {"name": "x", "value": 1, "tags": {"a": {}}}}"#,
                "tag \"a\"",
            ),
            (
                r#"{"aether_metric": {"name": "x", "value": 1, "tags": ["a"]}}"#,
                "\"tags\" is not an object",
            ),
            (
                r#"{"aether_metric": {"name": "x", "value": 1, "kind": "histogram", "buckets": 1}}"#,
                "\"buckets\" is not an array",
            ),
            (
                r#"{"aether_metric": {"name": "x", "value": 1, "kind": "histogram", "buckets": [1, "2"]}}"#,
                "bucket bound 1 is the string",
            ),
            (
                r#"{"aether_metric": {"name": "x", "value": 1, "kind": "histogram", "buckets": [[1]]}}"#,
                "bucket bound 0 is not a number",
            ),
            (r#"{"aether_metric": 5}"#, "not an object"),
            (r#"{"aether_metric": null}"#, "not an object"),
            (r#"{"aether_metric": {"name": "loss", "value": }"#, "not valid JSON"),
        ] {
            let reason = malformed(bad);
            assert!(reason.contains(field), "{bad}: {reason}");
        }
        assert!(matches!(classify(b"{\"aether_metric\": \xff}"), Line::Malformed(_)));
    }

    #[test]
    fn log_lines() {
        for log in [
            "step 3 loss=0.1",
            "",
            "{\"other\": 1}",
            "{\"msg\": \"\\\"aether_metric\\\" is a key\"}",
            "{\"nested\": {\"aether_metric\": {\"name\": \"x\", \"value\": 1}}}",
            "[1, 2]",
            "aether_metric {\"aether_metric\": 1}",
        ] {
            assert_eq!(classify(log.as_bytes()), Line::Log, "{log}");
        }
        assert_eq!(classify(b"\xff\xfe not utf-8"), Line::Log);
    }

    #[test]
    fn splitter_reports_offsets_across_chunks() {
        let mut s = LineSplitter::at(100);
        let mut lines = Vec::new();
        s.feed(b"ab\ncd", |o, l| lines.push((o, l.to_vec())));
        s.feed(b"e\n\nf", |o, l| lines.push((o, l.to_vec())));
        assert_eq!(s.line_start(), 108);
        s.finish(|o, l| lines.push((o, l.to_vec())));
        assert_eq!(
            lines,
            vec![
                (100, b"ab".to_vec()),
                (103, b"cde".to_vec()),
                (107, b"".to_vec()),
                (108, b"f".to_vec())
            ]
        );
        assert_eq!(s.line_start(), 109);
    }

    #[test]
    fn splitter_skips_overlong_lines() {
        let mut s = LineSplitter::at(0);
        let mut lines = Vec::new();
        let long = vec![b'x'; MAX_LINE + 10];
        s.feed(&long[..MAX_LINE / 2], |o, l| lines.push((o, l.len())));
        s.feed(&long[MAX_LINE / 2..], |o, l| lines.push((o, l.len())));
        s.feed(b"\nok\n", |o, l| lines.push((o, l.len())));
        assert_eq!(lines, vec![((MAX_LINE + 11) as u64, 2)]);
    }
}
