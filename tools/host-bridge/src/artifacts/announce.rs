//! What names a job's artifact: the announce line on its stdout
//! (`{"aether_artifact": {...}}`, parsed in the style of the metric
//! lines), the sidecar `<file>.meta.json`, and the kind and name a file in
//! `$AETHER_ARTIFACT_DIR` gets from where it lies (docs/telemetry.md,
//! "Artifact transfer (the bridge)").
//!
//! ```json
//! {"aether_artifact": {"path": "ckpt.pt", "kind": "model", "name": "ckpt", "step": 1200, "metrics": {"val_loss": 0.25}}}
//! ```
//!
//! * `path`: a non-empty string, relative to the job's cwd or absolute.
//! * `kind` (optional): `model`, `report`, `plot`, `pdf` or `other`; by
//!   default the directory's kind (`$AETHER_ARTIFACT_DIR/<kind>/<file>`) or
//!   the one guessed from the extension ([`guess_kind`]).
//! * `name` (optional): 1 to 64 bytes of `[A-Za-z0-9_.-]`, not starting
//!   with `.` or `-`; by default the file's name.
//! * `step` (optional): a non-negative integer; `metrics` (optional): an
//!   object of at most 16 numbers (or `"NaN"`, `"Infinity"`,
//!   `"-Infinity"`), names of at most 64 bytes.
//!
//! Other keys are ignored, `null` is a missing key. A line that starts with
//! `{` and mentions `"aether_artifact"` but is not valid JSON or has a bad
//! payload is malformed (reported with the reason, never fatal); a line
//! that does not is plain log.

use std::path::{Component, Path, PathBuf};

use crate::metric::number;
use aether_abi::artifact::{ArtifactKind, ArtifactMetric, METRICS_MAX, NAME_MAX};
use serde_json::{Map, Value};

/// The key that marks an announce line.
pub const KEY: &str = "aether_artifact";
/// What a sidecar's name adds to its file's.
pub const SIDECAR_SUFFIX: &str = ".meta.json";
/// A sidecar is read only up to this size.
pub const SIDECAR_MAX: u64 = 64 * 1024;

/// The metrics of one version.
pub type Metrics = heapless::Vec<ArtifactMetric, METRICS_MAX>;

/// One announce line, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Announce {
    /// As written (relative to the job's cwd, or absolute).
    pub path: PathBuf,
    pub kind: Option<ArtifactKind>,
    pub name: Option<String>,
    pub step: Option<u64>,
    pub metrics: Metrics,
}

/// `Some` if the line is an announce line: the announcement, or why it is
/// malformed. Lines are as the metric parser gets them (no `\n`).
pub fn classify(line: &[u8]) -> Option<Result<Announce, String>> {
    let line = line.trim_ascii();
    if line.first() != Some(&b'{') || !line.windows(KEY.len() + 2).any(|w| w == b"\"aether_artifact\"") {
        return None;
    }
    let value: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => return Some(Err(format!("not valid JSON: {e}"))),
    };
    let payload = value.as_object().and_then(|o| o.get(KEY))?;
    Some(parse_payload(payload))
}

fn parse_payload(payload: &Value) -> Result<Announce, String> {
    let obj = payload.as_object().ok_or("\"aether_artifact\" is not an object")?;
    let field = |key: &str| obj.get(key).filter(|v| !v.is_null());
    let path = match field("path") {
        Some(Value::String(s)) if !s.is_empty() => PathBuf::from(s),
        Some(_) => return Err("\"path\" is not a non-empty string".into()),
        None => return Err("\"path\" is missing".into()),
    };
    let kind =
        match field("kind") {
            None => None,
            Some(Value::String(s)) => Some(ArtifactKind::from_name(s).ok_or_else(|| {
                format!("\"kind\" is {s:?}, not \"model\", \"report\", \"plot\", \"pdf\" or \"other\"")
            })?),
            Some(_) => return Err("\"kind\" is not a string".into()),
        };
    let name = match field("name") {
        None => None,
        Some(Value::String(s)) => {
            check_name(s)?;
            Some(s.clone())
        }
        Some(_) => return Err("\"name\" is not a string".into()),
    };
    let (step, metrics) = step_and_metrics(obj)?;
    Ok(Announce {
        path,
        kind,
        name,
        step,
        metrics,
    })
}

/// `step` and `metrics` of an announce payload or a sidecar.
fn step_and_metrics(obj: &Map<String, Value>) -> Result<(Option<u64>, Metrics), String> {
    let field = |key: &str| obj.get(key).filter(|v| !v.is_null());
    let step = match field("step") {
        None => None,
        Some(v) => Some(v.as_u64().ok_or("\"step\" is not a non-negative integer")?),
    };
    let mut metrics = Metrics::new();
    match field("metrics") {
        None => {}
        Some(Value::Object(m)) => {
            if m.len() > METRICS_MAX {
                return Err(format!("more than {METRICS_MAX} metrics"));
            }
            for (k, v) in m {
                let name = heapless::String::try_from(k.as_str())
                    .ok()
                    .filter(|n: &heapless::String<64>| !n.is_empty())
                    .ok_or_else(|| format!("the metric name {k:?} is empty or over 64 bytes"))?;
                let value = number(v).map_err(|e| format!("the metric {k:?} {e}"))?;
                // Cannot fail: at most METRICS_MAX names.
                let _ = metrics.push(ArtifactMetric { name, value });
            }
        }
        Some(_) => return Err("\"metrics\" is not an object".into()),
    }
    Ok((step, metrics))
}

/// A sidecar's `{"step": N, "metrics": {...}}` (other keys ignored).
pub fn parse_sidecar(bytes: &[u8]) -> Result<(Option<u64>, Metrics), String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let obj = value.as_object().ok_or("not a JSON object")?;
    step_and_metrics(obj)
}

/// The sidecar of `file`, if there is one: its step and metrics, or why
/// they cannot be used.
pub fn read_sidecar(file: &Path) -> Option<Result<(Option<u64>, Metrics), String>> {
    let mut name = file.file_name()?.to_os_string();
    name.push(SIDECAR_SUFFIX);
    let path = file.with_file_name(name);
    let meta = std::fs::metadata(&path).ok()?;
    if meta.len() > SIDECAR_MAX {
        return Some(Err(format!("{} is over {SIDECAR_MAX} bytes", path.display())));
    }
    Some(match std::fs::read(&path) {
        Ok(bytes) => parse_sidecar(&bytes).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
    })
}

/// An artifact name: 1 to [`NAME_MAX`] bytes of `[A-Za-z0-9_.-]`, not
/// starting with `.` or `-` (the rule opsd applies).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && !name.starts_with(['.', '-'])
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the name {name:?} is not 1 to {NAME_MAX} bytes of [A-Za-z0-9_.-] not starting with . or -"
        ))
    }
}

/// The kind of a file by its extension (case-insensitive): `.pdf` pdf;
/// `.png`, `.svg`, `.jpg`, `.jpeg` plot; `.pt`, `.pth`, `.ckpt`,
/// `.safetensors`, `.bin` model; `.html`, `.md`, `.txt`, `.json` report;
/// anything else other.
pub fn guess_kind(file_name: &str) -> ArtifactKind {
    let ext = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => ArtifactKind::Pdf,
        "png" | "svg" | "jpg" | "jpeg" => ArtifactKind::Plot,
        "pt" | "pth" | "ckpt" | "safetensors" | "bin" => ArtifactKind::Model,
        "html" | "md" | "txt" | "json" => ArtifactKind::Report,
        _ => ArtifactKind::Other,
    }
}

/// Whether a file of this name is ever offered: not a temporary
/// (`*.tmp`), not hidden (`.*`), not a sidecar (`*.meta.json`).
pub fn offerable(file_name: &str) -> bool {
    !file_name.starts_with('.') && !file_name.ends_with(".tmp") && !file_name.ends_with(SIDECAR_SUFFIX)
}

/// Kind and name of `path` from where it lies under the artifact directory
/// `dir`: `dir/<name>` (kind guessed) or `dir/<kind>/<name>`; `None` for
/// a path elsewhere or deeper.
pub fn placement(dir: &Path, path: &Path) -> Option<(ArtifactKind, String)> {
    let rel = path.strip_prefix(dir).ok()?;
    let parts: Vec<&str> = rel
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        [name] => Some((guess_kind(name), (*name).to_string())),
        [kind, name] => Some((ArtifactKind::from_name(kind)?, (*name).to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let a = classify(br#"{"aether_artifact": {"path": "out/ckpt.pt", "kind": "model", "name": "ckpt", "step": 1200, "metrics": {"val_loss": 0.25, "acc": "NaN"}}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(a.path, PathBuf::from("out/ckpt.pt"));
        assert_eq!(a.kind, Some(ArtifactKind::Model));
        assert_eq!(a.name.as_deref(), Some("ckpt"));
        assert_eq!(a.step, Some(1200));
        assert_eq!(a.metrics.len(), 2);
        assert!(a.metrics.iter().any(|m| m.name == "val_loss" && m.value == 0.25));
        let bare = classify(br#" {"aether_artifact": {"path": "/x/r.pdf", "kind": null}} "#)
            .unwrap()
            .unwrap();
        assert_eq!((bare.kind, bare.name, bare.step), (None, None, None));
        assert_eq!(classify(b"hello"), None);
        assert_eq!(classify(br#"{"note": "see \"aether_artifact\""}"#), None);
        assert_eq!(classify(br#"{"aether_metric": {"name": "x", "value": 1}}"#), None);
        for (line, why) in [
            (&br#"{"aether_artifact": {"path": "a"}"#[..], "not valid JSON"),
            (br#"{"aether_artifact": 3}"#, "not an object"),
            (br#"{"aether_artifact": {}}"#, "\"path\" is missing"),
            (br#"{"aether_artifact": {"path": ""}}"#, "non-empty"),
            (
                br#"{"aether_artifact": {"path": "a", "kind": "checkpoint"}}"#,
                "\"kind\"",
            ),
            (br#"{"aether_artifact": {"path": "a", "name": "a/b"}}"#, "the name"),
            (br#"{"aether_artifact": {"path": "a", "name": ".x"}}"#, "the name"),
            (br#"{"aether_artifact": {"path": "a", "step": -1}}"#, "\"step\""),
            (
                br#"{"aether_artifact": {"path": "a", "metrics": {"x": "y"}}}"#,
                "the metric \"x\"",
            ),
            (br#"{"aether_artifact": {"path": "a", "metrics": [1]}}"#, "\"metrics\""),
        ] {
            let e = classify(line).unwrap().unwrap_err();
            assert!(e.contains(why), "{e} lacks {why}");
        }
        let many: Vec<String> = (0..17).map(|i| format!("\"m{i}\": {i}")).collect();
        let line = format!(
            r#"{{"aether_artifact": {{"path": "a", "metrics": {{{}}}}}}}"#,
            many.join(",")
        );
        assert!(classify(line.as_bytes()).unwrap().unwrap_err().contains("more than 16"));
    }

    #[test]
    fn names_kinds_and_places() {
        for good in ["ckpt", "model-1.pt", "a_b.C", &"x".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".hidden", "-x", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(guess_kind("r.PDF"), ArtifactKind::Pdf);
        assert_eq!(guess_kind("loss.svg"), ArtifactKind::Plot);
        assert_eq!(guess_kind("w.safetensors"), ArtifactKind::Model);
        assert_eq!(guess_kind("notes.md"), ArtifactKind::Report);
        assert_eq!(guess_kind("data.tar"), ArtifactKind::Other);
        assert_eq!(guess_kind("README"), ArtifactKind::Other);
        assert!(offerable("ckpt.pt"));
        for no in [".ckpt.pt", "ckpt.pt.tmp", "ckpt.pt.meta.json"] {
            assert!(!offerable(no), "{no}");
        }
        let dir = Path::new("/s/jobs/1/artifacts");
        assert_eq!(
            placement(dir, &dir.join("plot.png")),
            Some((ArtifactKind::Plot, "plot.png".into()))
        );
        assert_eq!(
            placement(dir, &dir.join("model/best")),
            Some((ArtifactKind::Model, "best".into()))
        );
        assert_eq!(placement(dir, &dir.join("checkpoints/best")), None);
        assert_eq!(placement(dir, &dir.join("model/a/b")), None);
        assert_eq!(placement(dir, Path::new("/elsewhere/x.pt")), None);
    }

    #[test]
    fn sidecars() {
        let (step, metrics) = parse_sidecar(br#"{"step": 7, "metrics": {"loss": 1.5}, "note": "x"}"#).unwrap();
        assert_eq!(step, Some(7));
        assert_eq!(metrics[0].name, "loss");
        assert!(parse_sidecar(b"[]").is_err());
        assert!(parse_sidecar(br#"{"step": "7"}"#).is_err());
    }
}
