//! The registry in the Prometheus text exposition format 0.0.4 (Prometheus
//! docs, "Exposition formats", text-based format): what `GET /metrics` and
//! `GET /jobs/{id}/metrics` answer (docs/telemetry.md, "Exposition").
//!
//! * One family per metric name, sorted by name: `# HELP name ...`,
//!   `# TYPE name counter|gauge|histogram`, then one sample per series
//!   (by job id, then tags), labelled `job_id="N"` and the series' tags
//!   (sorted by key, values escaped: `\\`, `\"`, `\n`). The output is a
//!   function of the registry alone: the same registry gives the same bytes.
//! * Names are written as given: the registry only takes names that are
//!   valid Prometheus names already, so nothing is sanitised. Counters get
//!   no `_total` appended: format 0.0.4 writes a counter's sample under the
//!   family name (as client_golang, the reference, does); it is OpenMetrics
//!   that puts `_total` on a counter's samples, and Prometheus's naming
//!   convention asks whoever names a counter to end it in `_total`
//!   (`tokens_total`). Parsers that turn 0.0.4 into the OpenMetrics model
//!   (Python's `prometheus_client`) report a counter `x`'s sample as
//!   `x_total`, and a family `x_total` as `x`.
//! * A counter's or a gauge's sample is its last value. A histogram's are
//!   `name_bucket{...,le="B"}` per bound, cumulative, ending
//!   `le="+Inf"` (the count), then `name_sum` and `name_count`; its min and
//!   max have no place in the format.
//! * Values: shortest round-trip decimals (an exponent below 1e-4 and from
//!   1e15 on), `NaN`, `+Inf`, `-Inf`; bucket counts and `_count` as
//!   integers. `le` bounds are written the same way.
//! * Timestamps (optional, [`Options::timestamps`]): the last point's
//!   `ts_ms`, in ms, on each sample of the series (left out for a `ts_ms`
//!   beyond `i64::MAX`, which the format cannot carry).

use alloc::string::String;
use core::fmt::{self, Write};

use crate::metrics::{Kind, Registry, SeriesRef};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What to render.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Only this job's series (`GET /jobs/{id}/metrics`); `None` for all
    /// (`GET /metrics`).
    pub job_id: Option<u64>,
    /// Write each sample's timestamp (the series' last `ts_ms`).
    pub timestamps: bool,
}

impl Options {
    /// Every job, no timestamps.
    pub const ALL: Options = Options {
        job_id: None,
        timestamps: false,
    };

    /// One job's series, no timestamps.
    pub const fn job(job_id: u64) -> Options {
        Options {
            job_id: Some(job_id),
            timestamps: false,
        }
    }

    pub const fn with_timestamps(self) -> Options {
        Options {
            timestamps: true,
            ..self
        }
    }
}

/// Writes the registry (or one job of it) into `out`. A family without a
/// series to show (another job's) is left out whole.
pub fn render<W: Write + ?Sized>(registry: &Registry, options: Options, out: &mut W) -> fmt::Result {
    for (name, kind) in registry.families() {
        let mut series = registry
            .family(name)
            .filter(|s| options.job_id.is_none_or(|job| s.job_id == job))
            .peekable();
        if series.peek().is_none() {
            continue;
        }
        // Names are [a-zA-Z_:][a-zA-Z0-9_:]* and the text is ours: nothing
        // to escape in HELP.
        writeln!(out, "# HELP {name} {kind} reported by AetherOS jobs")?;
        writeln!(out, "# TYPE {name} {kind}")?;
        for s in series {
            write_series(out, s, kind, options.timestamps)?;
        }
    }
    Ok(())
}

/// [`render`] into a new string.
pub fn render_to_string(registry: &Registry, options: Options) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail, and render only fails when `out`
    // does.
    let _ = render(registry, options, &mut out);
    out
}

fn write_series<W: Write + ?Sized>(out: &mut W, s: SeriesRef<'_>, kind: Kind, timestamps: bool) -> fmt::Result {
    let ts = if timestamps {
        i64::try_from(s.series.last().ts_ms).ok()
    } else {
        None
    };
    match (kind, s.series.histogram()) {
        (Kind::Histogram, Some(h)) => {
            for (bound, count) in h.cumulative() {
                write_head(out, s, "_bucket", Some(bound))?;
                write!(out, "{count}")?;
                write_end(out, ts)?;
            }
            write_head(out, s, "_sum", None)?;
            write_float(out, h.sum())?;
            write_end(out, ts)?;
            write_head(out, s, "_count", None)?;
            write!(out, "{}", h.count())?;
            write_end(out, ts)
        }
        // A histogram always has its buckets (the registry makes it with
        // them); a counter or a gauge shows its last value.
        (Kind::Histogram, None) => Ok(()),
        (Kind::Counter | Kind::Gauge, _) => {
            write_head(out, s, "", None)?;
            write_float(out, s.series.last().value)?;
            write_end(out, ts)
        }
    }
}

/// `name{job_id="N",k="v",...[,le="B"]} ` (up to the value).
fn write_head<W: Write + ?Sized>(out: &mut W, s: SeriesRef<'_>, suffix: &str, le: Option<f64>) -> fmt::Result {
    write!(out, "{}{suffix}{{job_id=\"{}\"", s.name, s.job_id)?;
    for (key, value) in s.series.tags() {
        write!(out, ",{key}=\"")?;
        write_escaped(out, value)?;
        out.write_char('"')?;
    }
    if let Some(bound) = le {
        out.write_str(",le=\"")?;
        write_float(out, bound)?;
        out.write_char('"')?;
    }
    out.write_str("} ")
}

fn write_end<W: Write + ?Sized>(out: &mut W, ts: Option<i64>) -> fmt::Result {
    match ts {
        Some(ts) => writeln!(out, " {ts}"),
        None => out.write_char('\n'),
    }
}

/// A label value: backslash, double quote and line feed escaped (format
/// 0.0.4, "Text format details"); everything else as it is.
pub fn write_escaped<W: Write + ?Sized>(out: &mut W, value: &str) -> fmt::Result {
    let mut rest = value;
    while let Some(at) = rest.find(['\\', '"', '\n']) {
        let (plain, tail) = rest.split_at(at);
        out.write_str(plain)?;
        let mut chars = tail.chars();
        match chars.next() {
            Some('\\') => out.write_str("\\\\")?,
            Some('"') => out.write_str("\\\"")?,
            Some('\n') => out.write_str("\\n")?,
            _ => {}
        }
        rest = chars.as_str();
    }
    out.write_str(rest)
}

/// A float as Go's `ParseFloat` (Prometheus) and Python's `float` read it:
/// `NaN`, `+Inf`, `-Inf`, or the shortest decimal that reads back exactly.
pub fn write_float<W: Write + ?Sized>(out: &mut W, value: f64) -> fmt::Result {
    if value.is_nan() {
        return out.write_str("NaN");
    }
    if value.is_infinite() {
        return out.write_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    }
    let magnitude = value.abs();
    if magnitude == 0.0 || (1e-4..1e15).contains(&magnitude) {
        write!(out, "{value}")
    } else {
        write!(out, "{value:e}")
    }
}

#[cfg(test)]
mod tests;
