//! An alert's labels, their fingerprint, matching globs, and the
//! Alertmanager spelling of a label set (`{a="b", c="d"}`).

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::rules::Alert;

use super::{LABEL_NAME_MAX, LABEL_VALUE_MAX, LABELS_MAX};

/// Labels sorted by name, names unique, values not empty.
pub type Labels = Vec<(String, String)>;

/// The value of the label `name`.
pub fn label<'a>(labels: &'a [(String, String)], name: &str) -> Option<&'a str> {
    labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// An alert's labels (see the module header of `routes`): the tags, then
/// the rule's labels over them, then `alertname`, `job_id` and `metric`
/// over both; empty values left out.
pub fn alert_labels(alert: &Alert) -> Labels {
    let mut set: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, v) in alert.tags.iter().chain(&alert.labels) {
        set.insert(k, v);
    }
    let job_id = alert.job_id.to_string();
    set.insert("alertname", &alert.rule);
    set.insert("job_id", &job_id);
    set.insert("metric", &alert.metric);
    set.into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// [`alert_labels`] when they are within [`LABELS_MAX`], [`LABEL_NAME_MAX`]
/// and [`LABEL_VALUE_MAX`] (checked before anything is copied).
pub(super) fn checked_alert_labels(alert: &Alert) -> Option<Labels> {
    let fits = |(k, v): &(String, String)| k.len() <= LABEL_NAME_MAX && v.len() <= LABEL_VALUE_MAX;
    let ok = alert.tags.len().saturating_add(alert.labels.len()) <= LABELS_MAX - 3
        && alert.tags.iter().chain(&alert.labels).all(fits)
        && alert.rule.len() <= LABEL_VALUE_MAX
        && alert.metric.len() <= LABEL_VALUE_MAX;
    ok.then(|| alert_labels(alert))
}

/// FNV-1a 64 (offset basis and prime of the FNV spec, draft-eastlake-fnv).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Between a name and its value and after each value (Prometheus'
/// `model.SeparatorByte`: no label holds it, as it is not UTF-8).
const SEPARATOR: u8 = 0xff;

/// The fingerprint of `labels` (sorted by name): FNV-1a 64 over each name
/// and value, each followed by 0xff, as Prometheus' `LabelSet.Fingerprint`.
pub fn fingerprint(labels: &[(String, String)]) -> u64 {
    let mut hash = FNV_OFFSET;
    for (name, value) in labels {
        for part in [name, value] {
            for byte in part.bytes().chain([SEPARATOR]) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(FNV_PRIME);
            }
        }
    }
    hash
}

/// Whether all of `text` matches `pattern`, where `*` is any run of bytes
/// (none included) and every other byte is itself. Iterative (the last
/// `*` is retried one byte further on a mismatch): at most `O(len(pattern)
/// x len(text))` steps, no recursion. Byte-wise is right for UTF-8: a
/// literal matches only whole characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // After the last `*` seen: where the pattern goes on, and the text
    // position that `*` has eaten up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                pi += 1;
                star = Some((pi, ti));
            }
            Some(&c) if c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((after, eaten)) => {
                    pi = after;
                    ti = eaten + 1;
                    star = Some((after, eaten + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// `"value"` with `"` and `\` escaped by a backslash, and newlines as `\n`
/// (Go's `%q` for what labels hold).
pub(super) fn write_quoted(f: &mut impl fmt::Write, value: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in value.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// `{a="b", c="d"}`: Alertmanager's `LabelSet.String()`.
pub(super) fn label_set_string(labels: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(k);
        out.push('=');
        let _ = write_quoted(&mut out, v);
    }
    out.push('}');
    out
}

/// `{a="b",c=~"d*"}`: Alertmanager's `Matchers.String()`, a route's part
/// of its key.
pub(super) fn matchers_string(matchers: &[super::Matcher]) -> String {
    let mut out = String::from("{");
    for (i, m) in matchers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = fmt::write(&mut out, format_args!("{m}"));
    }
    out.push('}');
    out
}
