//! Metric lines: a stdout line that is a JSON object with the key
//! `"aether_metric"`:
//!
//! ```json
//! {"aether_metric": {"name": "loss", "value": 0.42, "step": 120, "tags": {"split": "train"}}}
//! ```
//!
//! * `name`: a non-empty string; `value`: a JSON number, or one of the
//!   strings `"NaN"`, `"Infinity"`, `"-Infinity"` (JSON has no literal for
//!   them and a diverging loss is worth reporting);
//! * `step` (optional): a non-negative integer; `tags` (optional): an
//!   object whose values are strings (numbers and booleans are kept as
//!   their JSON text). Other keys are ignored.
//!
//! A line that does not mention `"aether_metric"` at the top level of a
//! JSON object is plain log. A line that starts with `{` and mentions
//! `"aether_metric"` but is not valid JSON or has an invalid payload is
//! *malformed*: reported and counted, never fatal. Every line, metric or
//! not, stays in the log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The key that marks a metric line.
pub const KEY: &str = "aether_metric";
/// Lines longer than this are never metric lines (the supervisor does not
/// buffer more than this of one line).
pub const MAX_LINE: usize = 64 * 1024;

/// One metric point from a job's stdout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    pub job_id: u64,
    pub name: String,
    pub value: f64,
    pub step: Option<u64>,
    pub tags: BTreeMap<String, String>,
    /// Byte offset of the line in the job's stdout (identifies the point:
    /// a point re-read after a restart has the same offset).
    pub offset: u64,
}

/// What a line is.
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    Log,
    /// A metric (`job_id` and `offset` are filled in by the caller).
    Metric(MetricPoint),
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
        Ok(point) => Line::Metric(point),
        Err(e) => Line::Malformed(e),
    }
}

fn parse_payload(payload: &Value) -> Result<MetricPoint, String> {
    let obj = payload.as_object().ok_or("\"aether_metric\" is not an object")?;
    let name = match obj.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err("\"name\" is not a non-empty string".into()),
        None => return Err("\"name\" is missing".into()),
    };
    let value = match obj.get("value") {
        Some(Value::Number(n)) => n.as_f64().ok_or("\"value\" is not representable as f64")?,
        Some(Value::String(s)) => match s.as_str() {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            _ => return Err(format!("\"value\" is the string {s:?}, not a number")),
        },
        Some(_) => return Err("\"value\" is not a number".into()),
        None => return Err("\"value\" is missing".into()),
    };
    let step = match obj.get("step") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or("\"step\" is not a non-negative integer")?),
    };
    let mut tags = BTreeMap::new();
    match obj.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Object(t)) => {
            for (k, v) in t {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(_) | Value::Bool(_) => v.to_string(),
                    _ => return Err(format!("tag {k:?} is not a string, number or boolean")),
                };
                tags.insert(k.clone(), v);
            }
        }
        Some(_) => return Err("\"tags\" is not an object".into()),
    }
    Ok(MetricPoint {
        job_id: 0,
        name,
        value,
        step,
        tags,
        offset: 0,
    })
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
            Line::Metric(m) => m,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn full_and_minimal_metric_lines() {
        let m =
            metric(r#"{"aether_metric": {"name": "loss", "value": 0.42, "step": 120, "tags": {"split": "train"}}}"#);
        assert_eq!((m.name.as_str(), m.value, m.step), ("loss", 0.42, Some(120)));
        assert_eq!(m.tags.get("split").map(String::as_str), Some("train"));
        let m = metric("  {\"aether_metric\":{\"name\":\"lr\",\"value\":3}}\r");
        assert_eq!((m.name.as_str(), m.value, m.step, m.tags.len()), ("lr", 3.0, None, 0));
        let m = metric(r#"{"aether_metric": {"name": "loss", "value": "NaN", "tags": {"rank": 0, "ok": true}}}"#);
        assert!(m.value.is_nan());
        assert_eq!(m.tags.get("rank").map(String::as_str), Some("0"));
        assert_eq!(m.tags.get("ok").map(String::as_str), Some("true"));
    }

    #[test]
    fn log_lines_and_malformed_ones() {
        for log in [
            "step 3 loss=0.1",
            "",
            "{\"other\": 1}",
            "{\"msg\": \"\\\"aether_metric\\\" is a key\"}",
            "[1, 2]",
        ] {
            assert_eq!(classify(log.as_bytes()), Line::Log, "{log}");
        }
        assert_eq!(classify(b"\xff\xfe not utf-8"), Line::Log);
        for bad in [
            r#"{"aether_metric": {"name": "loss", "value": }"#,
            r#"{"aether_metric": {"value": 1}}"#,
            r#"{"aether_metric": {"name": "", "value": 1}}"#,
            r#"{"aether_metric": {"name": "x", "value": "high"}}"#,
            r#"{"aether_metric": {"name": "x", "value": 1, "step": -1}}"#,
            r#"{"aether_metric": {"name": "x", "value": 1, "tags": {"a": [1]}}}"#,
            r#"{"aether_metric": 5}"#,
        ] {
            assert!(matches!(classify(bad.as_bytes()), Line::Malformed(_)), "{bad}");
        }
        assert!(matches!(classify(b"{\"aether_metric\": \xff}"), Line::Malformed(_)));
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
