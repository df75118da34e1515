//! The rule file (`/ops/rules.conf`): one rule per line, refused whole on
//! the first error, which names the line and the reason.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use super::{
    ANY_METRIC, METRIC_NAME_MAX, MetricMatch, Mode, Patience, RULE_NAME_MAX, RULES_MAX, Rule, RuleKind, RuleType,
    TAG_KEY_MAX, TAG_VALUE_MAX, TAGS_MAX, WINDOW_MAX,
};

/// A line's bytes at most (without its end).
pub const LINE_MAX: usize = 1024;

// The reasons below spell these bounds out.
const _: () = assert!(WINDOW_MAX == 256 && METRIC_NAME_MAX == 64 && TAGS_MAX == 8);
const _: () = assert!(TAG_KEY_MAX == 32 && TAG_VALUE_MAX == 64);

/// Why a rule file was refused: the line (from 1) and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    pub line: usize,
    pub reason: Reason,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// What is wrong with a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Longer than [`LINE_MAX`] bytes.
    LineTooLong,
    /// More than [`RULES_MAX`] rules.
    TooManyRules,
    /// No `:` after the name.
    MissingColon,
    /// Nothing before the `:`.
    EmptyName,
    /// A name that is not `[A-Za-z_][A-Za-z0-9_.-]*` of at most
    /// [`RULE_NAME_MAX`] bytes.
    BadName(String),
    /// The name of an earlier rule.
    DuplicateName {
        name: String,
        first_line: usize,
    },
    /// Nothing after the `:`.
    MissingRule,
    UnknownRule(String),
    MissingMetric,
    /// A metric that is not `NAME`, `NAME{k=v,...}` or `*`: why.
    BadMetric {
        metric: String,
        why: &'static str,
    },
    /// A word that is not `key=value`.
    NotKeyValue(String),
    UnknownParameter {
        rule: RuleType,
        param: String,
    },
    DuplicateParameter(String),
    MissingParameter {
        rule: RuleType,
        param: &'static str,
    },
    /// A value that does not read as a number.
    BadNumber {
        param: &'static str,
        value: String,
    },
    /// `nan` where a threshold belongs.
    NanThreshold {
        param: &'static str,
    },
    /// A value that reads but is not allowed: why.
    BadValue {
        param: &'static str,
        value: String,
        why: &'static str,
    },
    /// An `anomaly` with none of `nan=true`, `range`, `zscore`.
    NoAnomalyCheck,
    /// A label that is not `key=value` with a valid key: why.
    BadLabel {
        label: String,
        why: &'static str,
    },
    DuplicateLabel(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::LineTooLong => write!(f, "longer than {LINE_MAX} bytes"),
            Reason::TooManyRules => write!(f, "more than {RULES_MAX} rules"),
            Reason::MissingColon => f.write_str("expected `NAME: RULE METRIC [key=value ...] [labels: k=v,...]`"),
            Reason::EmptyName => f.write_str("empty rule name"),
            Reason::BadName(name) => write!(
                f,
                "bad rule name `{name}` (letters, digits, `_`, `.`, `-`, at most {RULE_NAME_MAX} bytes, \
                 not starting with a digit, `.` or `-`)"
            ),
            Reason::DuplicateName { name, first_line } => {
                write!(f, "duplicate rule name `{name}` (first on line {first_line})")
            }
            Reason::MissingRule => f.write_str("missing the rule after the name (new_best, plateau, stall, ...)"),
            Reason::UnknownRule(rule) => write!(
                f,
                "unknown rule `{rule}` (new_best, plateau, stall, sustained_dip, anomaly, divergence)"
            ),
            Reason::MissingMetric => f.write_str("missing the metric after the rule"),
            Reason::BadMetric { metric, why } => write!(f, "bad metric `{metric}`: {why}"),
            Reason::NotKeyValue(word) => write!(f, "`{word}` is not key=value"),
            Reason::UnknownParameter { rule, param } => write!(
                f,
                "unknown parameter `{param}` for {rule} (it takes {})",
                allowed(*rule).join(", ")
            ),
            Reason::DuplicateParameter(param) => write!(f, "duplicate parameter `{param}`"),
            Reason::MissingParameter { rule, param } => write!(f, "{rule} needs `{param}=`"),
            Reason::BadNumber { param, value } => write!(f, "{param}: `{value}` is not a number"),
            Reason::NanThreshold { param } => write!(f, "{param}: NaN is not a threshold"),
            Reason::BadValue { param, value, why } => write!(f, "{param}: `{value}`: {why}"),
            Reason::NoAnomalyCheck => f.write_str("anomaly needs at least one of nan=true, range=, zscore="),
            Reason::BadLabel { label, why } => write!(f, "bad label `{label}`: {why}"),
            Reason::DuplicateLabel(key) => write!(f, "duplicate label `{key}`"),
        }
    }
}

/// The parameters each rule takes, in the file.
fn allowed(rule: RuleType) -> &'static [&'static str] {
    match rule {
        RuleType::NewBest => &["mode", "min_delta"],
        RuleType::Plateau => &["mode", "patience", "min_delta"],
        RuleType::Stall => &["after"],
        RuleType::SustainedDip => &["factor", "baseline", "for"],
        RuleType::Anomaly => &["nan", "range", "zscore"],
        RuleType::Divergence => &["above"],
    }
}

/// Reads a rule file: all its rules, or the first error (a file with an
/// error is refused whole).
///
/// A line is `NAME: RULE METRIC [key=value ...] [labels: k=v,k=v]`:
///
/// * `NAME`: `[A-Za-z_][A-Za-z0-9_.-]*`, at most [`RULE_NAME_MAX`] bytes,
///   unique in the file.
/// * `METRIC`: a metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`, at most
///   [`METRIC_NAME_MAX`] bytes) or `*` (any metric), optionally with tag
///   matchers `{k=v,k="v"}` (no spaces inside; at most [`TAGS_MAX`]).
/// * parameters, in any order, each at most once:
///
///   | rule | parameters |
///   | --- | --- |
///   | `new_best` | `mode=min\|max`, `min_delta=X` (default 0) |
///   | `plateau` | `mode=min\|max`, `patience=N` (points) or `patience=D` (a duration), `min_delta=X` (default 0) |
///   | `stall` | `after=D` |
///   | `sustained_dip` | `factor=K` (> 0), `baseline=N` (points, 1..=[`WINDOW_MAX`]), `for=N` or `for=D` |
///   | `anomaly` | `nan=true\|false` (default false), `range=LO..HI` (inclusive, LO <= HI, `inf` allowed), `zscore=Z@N` (Z > 0, N in 2..=[`WINDOW_MAX`]); at least one check |
///   | `divergence` | `above=X` |
///
///   `mode` may be left out when the metric's name ends in `loss` (then
///   `min`). Numbers are decimal (`1e-3` too), finite, not NaN; `N` is a
///   whole number >= 1; a duration `D` is a whole number >= 1 with a unit,
///   `ms`, `s`, `m` or `h` (`500ms`, `30s`, `10m`, `2h`).
/// * `labels:` then `key=value` pairs separated by commas (spaces around
///   commas allowed; keys `[a-zA-Z_][a-zA-Z0-9_]*` of at most
///   [`TAG_KEY_MAX`] bytes, values without spaces or commas of 1 to
///   [`TAG_VALUE_MAX`] bytes, at most [`TAGS_MAX`] labels).
///
/// `#` at the start of a line or after a space begins a comment; blank
/// lines are ignored. Lines end with `\n` or `\r\n`.
pub fn parse(text: &str) -> Result<Vec<Rule>, RuleError> {
    let mut rules = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |reason| RuleError { line, reason };
        if raw.len() > LINE_MAX {
            return Err(err(Reason::LineTooLong));
        }
        let body = strip_comment(raw).trim();
        if body.is_empty() {
            continue;
        }
        let rule = parse_line(body).map_err(err)?;
        if let Some(&first_line) = names.get(&rule.name) {
            return Err(err(Reason::DuplicateName {
                name: rule.name,
                first_line,
            }));
        }
        if rules.len() >= RULES_MAX {
            return Err(err(Reason::TooManyRules));
        }
        names.insert(rule.name.clone(), line);
        rules.push(rule);
    }
    Ok(rules)
}

/// The line up to a `#` that starts it or follows whitespace.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let at = (0..bytes.len()).find(|&i| bytes[i] == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()));
    match at {
        Some(i) => &line[..i],
        None => line,
    }
}

/// Where a word `word` starts in `text` (at its start or after whitespace).
fn find_word(text: &str, word: &str) -> Option<usize> {
    text.match_indices(word)
        .map(|(at, _)| at)
        .find(|&at| at == 0 || text.as_bytes()[at - 1].is_ascii_whitespace())
}

fn parse_line(line: &str) -> Result<Rule, Reason> {
    let (name, rest) = line.split_once(':').ok_or(Reason::MissingColon)?;
    let name = name.trim();
    if name.is_empty() {
        return Err(Reason::EmptyName);
    }
    if !valid_rule_name(name) {
        return Err(Reason::BadName(name.to_string()));
    }
    let (body, labels) = match find_word(rest, "labels:") {
        Some(at) => (&rest[..at], Some(&rest[at + "labels:".len()..])),
        None => (rest, None),
    };
    let mut words = body.split_ascii_whitespace();
    let rule_word = words.next().ok_or(Reason::MissingRule)?;
    let rule = RuleType::from_name(rule_word).ok_or_else(|| Reason::UnknownRule(rule_word.to_string()))?;
    let metric = parse_metric(words.next().ok_or(Reason::MissingMetric)?)?;
    let params = Params::read(rule, words)?;
    let kind = parse_kind(rule, &metric, &params)?;
    let labels = match labels {
        Some(text) => parse_labels(text)?,
        None => Vec::new(),
    };
    Ok(Rule {
        name: name.to_string(),
        metric,
        kind,
        labels,
    })
}

fn valid_rule_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= RULE_NAME_MAX
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A metric name as the registry takes it: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// A tag or label key: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn valid_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    key.len() <= TAG_KEY_MAX
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn parse_metric(word: &str) -> Result<MetricMatch, Reason> {
    let bad = |why| Reason::BadMetric {
        metric: word.to_string(),
        why,
    };
    let (name, matchers) = match word.split_once('{') {
        Some((name, rest)) => {
            let inner = rest
                .strip_suffix('}')
                .ok_or(bad("unclosed `{` (no spaces inside the braces)"))?;
            (name, Some(inner))
        }
        None => (word, None),
    };
    if name.len() > METRIC_NAME_MAX {
        return Err(bad("name longer than 64 bytes"));
    }
    if name != ANY_METRIC && !valid_metric_name(name) {
        return Err(bad("a name is [a-zA-Z_:][a-zA-Z0-9_:]*, or `*` for any metric"));
    }
    let mut tags: Vec<(String, String)> = Vec::new();
    for pair in matchers
        .into_iter()
        .flat_map(|m| m.split(','))
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').ok_or(bad("a tag matcher is key=value"))?;
        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
        if !valid_key(k) {
            return Err(bad("a tag key is [a-zA-Z_][a-zA-Z0-9_]*, at most 32 bytes"));
        }
        if v.is_empty() || v.len() > TAG_VALUE_MAX || v.contains(['{', '}', '"', '=']) {
            return Err(bad("a tag value has 1 to 64 bytes, without `{}\"=`"));
        }
        if tags.iter().any(|(key, _)| key == k) {
            return Err(bad("duplicate tag matcher"));
        }
        if tags.len() >= TAGS_MAX {
            return Err(bad("more than 8 tag matchers"));
        }
        tags.push((k.to_string(), v.to_string()));
    }
    Ok(MetricMatch {
        name: name.to_string(),
        tags,
    })
}

fn parse_labels(text: &str) -> Result<Vec<(String, String)>, Reason> {
    let mut labels: Vec<(String, String)> = Vec::new();
    if text.trim().is_empty() {
        return Err(Reason::BadLabel {
            label: String::new(),
            why: "no labels after `labels:`",
        });
    }
    for pair in text.split(',').map(str::trim) {
        let bad = |why| Reason::BadLabel {
            label: pair.to_string(),
            why,
        };
        let (k, v) = pair.split_once('=').ok_or(bad("a label is key=value"))?;
        if !valid_key(k) {
            return Err(bad("a label key is [a-zA-Z_][a-zA-Z0-9_]*, at most 32 bytes"));
        }
        if v.is_empty() || v.len() > TAG_VALUE_MAX || v.contains(|c: char| c.is_whitespace() || c == '=') {
            return Err(bad("a label value has 1 to 64 bytes, without spaces or `=`"));
        }
        if labels.iter().any(|(key, _)| key == k) {
            return Err(Reason::DuplicateLabel(k.to_string()));
        }
        if labels.len() >= TAGS_MAX {
            return Err(bad("more than 8 labels"));
        }
        labels.push((k.to_string(), v.to_string()));
    }
    Ok(labels)
}

/// A line's `key=value` words, checked against what its rule takes.
struct Params<'a> {
    rule: RuleType,
    items: Vec<(&'a str, &'a str)>,
}

impl<'a> Params<'a> {
    fn read(rule: RuleType, words: impl Iterator<Item = &'a str>) -> Result<Self, Reason> {
        let mut items: Vec<(&'a str, &'a str)> = Vec::new();
        for word in words {
            let (key, value) = word
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| Reason::NotKeyValue(word.to_string()))?;
            if !allowed(rule).contains(&key) {
                return Err(Reason::UnknownParameter {
                    rule,
                    param: key.to_string(),
                });
            }
            if items.iter().any(|(k, _)| *k == key) {
                return Err(Reason::DuplicateParameter(key.to_string()));
            }
            items.push((key, value));
        }
        Ok(Params { rule, items })
    }

    fn get(&self, param: &'static str) -> Option<&'a str> {
        self.items.iter().find(|(k, _)| *k == param).map(|&(_, v)| v)
    }

    fn required(&self, param: &'static str) -> Result<&'a str, Reason> {
        self.get(param)
            .ok_or(Reason::MissingParameter { rule: self.rule, param })
    }
}

fn parse_kind(rule: RuleType, metric: &MetricMatch, p: &Params<'_>) -> Result<RuleKind, Reason> {
    let mode = |p: &Params<'_>| -> Result<Mode, Reason> {
        match p.get("mode") {
            Some("min") => Ok(Mode::Min),
            Some("max") => Ok(Mode::Max),
            Some(other) => Err(bad_value("mode", other, "min or max")),
            None if metric.name.ends_with("loss") => Ok(Mode::Min),
            None => Err(Reason::MissingParameter { rule, param: "mode" }),
        }
    };
    let min_delta = |p: &Params<'_>| -> Result<f64, Reason> {
        match p.get("min_delta") {
            Some(v) => at_least_zero("min_delta", v),
            None => Ok(0.0),
        }
    };
    Ok(match rule {
        RuleType::NewBest => RuleKind::NewBest {
            mode: mode(p)?,
            min_delta: min_delta(p)?,
        },
        RuleType::Plateau => RuleKind::Plateau {
            mode: mode(p)?,
            patience: patience("patience", p.required("patience")?)?,
            min_delta: min_delta(p)?,
        },
        RuleType::Stall => RuleKind::Stall {
            after_ms: duration("after", p.required("after")?)?,
        },
        RuleType::SustainedDip => {
            let factor_text = p.required("factor")?;
            let factor = number("factor", factor_text)?;
            if factor <= 0.0 {
                return Err(bad_value("factor", factor_text, "must be more than 0"));
            }
            let baseline_text = p.required("baseline")?;
            let baseline = count("baseline", baseline_text)?;
            if baseline as usize > WINDOW_MAX {
                return Err(bad_value("baseline", baseline_text, "at most 256 points"));
            }
            RuleKind::SustainedDip {
                factor,
                baseline_points: baseline as usize,
                for_: patience("for", p.required("for")?)?,
            }
        }
        RuleType::Anomaly => {
            let nan = match p.get("nan") {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => return Err(bad_value("nan", other, "true or false")),
            };
            let range = p.get("range").map(range).transpose()?;
            let zscore = p.get("zscore").map(zscore).transpose()?;
            if !nan && range.is_none() && zscore.is_none() {
                return Err(Reason::NoAnomalyCheck);
            }
            RuleKind::Anomaly { nan, range, zscore }
        }
        RuleType::Divergence => RuleKind::Divergence {
            above: number("above", p.required("above")?)?,
        },
    })
}

fn bad_value(param: &'static str, value: &str, why: &'static str) -> Reason {
    Reason::BadValue {
        param,
        value: value.to_string(),
        why,
    }
}

/// A number that may be infinite (a range's bound), never NaN.
fn number_or_inf(param: &'static str, value: &str) -> Result<f64, Reason> {
    let x: f64 = value.parse().map_err(|_| Reason::BadNumber {
        param,
        value: value.to_string(),
    })?;
    if x.is_nan() {
        return Err(Reason::NanThreshold { param });
    }
    Ok(x)
}

/// A finite number.
fn number(param: &'static str, value: &str) -> Result<f64, Reason> {
    let x = number_or_inf(param, value)?;
    if x.is_infinite() {
        return Err(bad_value(param, value, "must be finite"));
    }
    Ok(x)
}

fn at_least_zero(param: &'static str, value: &str) -> Result<f64, Reason> {
    let x = number(param, value)?;
    if x < 0.0 {
        return Err(bad_value(param, value, "must be 0 or more"));
    }
    Ok(x)
}

/// A whole number >= 1.
fn count(param: &'static str, value: &str) -> Result<u32, Reason> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Reason::BadNumber {
            param,
            value: value.to_string(),
        });
    }
    let n: u32 = value.parse().map_err(|_| bad_value(param, value, "too large"))?;
    if n == 0 {
        return Err(bad_value(param, value, "must be 1 or more"));
    }
    Ok(n)
}

/// A duration with a unit, in ms (>= 1).
fn duration(param: &'static str, value: &str) -> Result<u64, Reason> {
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = value.split_at(digits);
    let scale: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => return Err(bad_value(param, value, "a duration needs a unit: ms, s, m or h")),
        _ => {
            return Err(bad_value(
                param,
                value,
                "a duration is a whole number and ms, s, m or h",
            ));
        }
    };
    if number.is_empty() {
        return Err(bad_value(
            param,
            value,
            "a duration is a whole number and ms, s, m or h",
        ));
    }
    let ms = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or(bad_value(param, value, "too large"))?;
    if ms == 0 {
        return Err(bad_value(param, value, "must be more than 0"));
    }
    Ok(ms)
}

/// Points (a bare whole number) or a duration (with a unit).
fn patience(param: &'static str, value: &str) -> Result<Patience, Reason> {
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Patience::Points(count(param, value)?));
    }
    Ok(Patience::Millis(duration(param, value)?))
}

/// `LO..HI`, inclusive, LO <= HI.
fn range(value: &str) -> Result<(f64, f64), Reason> {
    let (lo, hi) = value
        .split_once("..")
        .ok_or(bad_value("range", value, "a range is LO..HI"))?;
    let (lo, hi) = (number_or_inf("range", lo)?, number_or_inf("range", hi)?);
    if lo > hi {
        return Err(bad_value("range", value, "LO must not be above HI"));
    }
    Ok((lo, hi))
}

/// `Z@N`: Z > 0, N in 2..=WINDOW_MAX.
fn zscore(value: &str) -> Result<(f64, usize), Reason> {
    let (z, n) = value.split_once('@').ok_or(bad_value(
        "zscore",
        value,
        "zscore is Z@N (3@50: |z| > 3 over 50 points)",
    ))?;
    let z = number("zscore", z)?;
    if z <= 0.0 {
        return Err(bad_value("zscore", value, "Z must be more than 0"));
    }
    let n = count("zscore", n)? as usize;
    if !(2..=WINDOW_MAX).contains(&n) {
        return Err(bad_value("zscore", value, "N is 2 to 256 points"));
    }
    Ok((z, n))
}
