//! The telemetry commands: `events`, `metrics`, `alerts` (docs/console.md,
//! "Telemetry"). `events` reads the kernel's event bus; `metrics` and
//! `alerts` ask opsd.

use aether_abi::artifact::{ArtifactInfo, ArtifactKind};
use aether_abi::event::{self, Event, RecordHeader};
use aether_abi::job::{JobRequest, JobResponse};
use aether_abi::metric::Tag;
use aether_abi::telemetry::{HistoryRange, SeriesInfo, TelemetryRequest, TelemetryResponse};
use aether_rt::{event as bus, println, sys};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write as _;
use serde::Serialize;

use super::{JobFail, UNEXPECTED, interrupted, job_call, job_error};
use console::command::ArtifactSpec;

/// How long one wait of `events --follow` lasts before Ctrl-C is checked.
const FOLLOW_WAIT_NS: u64 = 200_000_000;

/// `events [--after ID] [--follow] [--json]`.
pub fn events(mut after: u64, follow: bool, json: bool) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let deadline = if follow { sys::clock_ns() + FOLLOW_WAIT_NS } else { 0 };
        let (n, oldest) = match bus::read(&mut buf, after, deadline) {
            Ok(r) => r,
            Err(e) => return println!("error: events: {e}"),
        };
        if oldest > after.saturating_add(1) && n > 0 {
            let missed = oldest - after - 1;
            if json {
                println!("{{\"missed\":{missed}}}");
            } else {
                println!("[events: {missed} older events are no longer kept]");
            }
        }
        let mut last = after;
        for e in event::records(&buf[..n]) {
            last = e.id;
            print_event(&e, json);
        }
        after = last;
        if n == 0 {
            if !follow {
                return;
            }
            if interrupted() {
                println!("^C");
                return;
            }
        }
    }
}

fn print_event(e: &Event, json: bool) {
    let b = &e.body;
    let mut out = String::new();
    if json {
        let _ = write!(
            out,
            "{{\"id\":{},\"ts_ns\":{},\"kind\":\"{}\",\"severity\":\"{}\",\"job_id\":{},\"source\":",
            e.id, e.ts_ns, b.kind, b.severity, b.job_id
        );
        aether_abi::json::string(&mut out, &b.source);
        for (key, pairs) in [("labels", &b.labels[..]), ("fields", &b.fields[..])] {
            let _ = write!(out, ",\"{key}\":{{");
            for (i, p) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                aether_abi::json::string(&mut out, &p.key);
                out.push(':');
                aether_abi::json::string(&mut out, &p.value);
            }
            out.push('}');
        }
        out.push('}');
    } else {
        let _ = write!(out, "#{} {} ms {} {}", e.id, e.ts_ns / 1_000_000, b.severity, b.kind);
        if b.job_id != 0 {
            let _ = write!(out, " job {}", b.job_id);
        }
        for p in &b.labels {
            let _ = write!(out, " {}={}", p.key, p.value);
        }
        if let Some(summary) = b.get_field("summary").or(b.get_field("message")) {
            let _ = write!(out, ": {summary}");
        } else {
            for p in &b.fields {
                let _ = write!(out, " {}={}", p.key, p.value);
            }
        }
    }
    println!("{out}");
}

fn telemetry_call(request: TelemetryRequest) -> Result<TelemetryResponse, JobFail> {
    match job_call(&JobRequest::Telemetry(request))? {
        JobResponse::Telemetry(t) => Ok(t),
        _ => Err(JobFail::Sys(UNEXPECTED)),
    }
}

/// Every series matching, page by page.
fn all_series(job_id: Option<u64>, name: Option<&str>) -> Result<Vec<SeriesInfo>, JobFail> {
    let name = match name {
        Some(n) => Some(heapless::String::try_from(n).map_err(|_| JobFail::Sys(aether_abi::syscall::Errno::TooLarge))?),
        None => None,
    };
    let mut out = Vec::new();
    loop {
        let request = TelemetryRequest::Series {
            job_id,
            name: name.clone(),
            after: out.len() as u32,
        };
        match telemetry_call(request)? {
            TelemetryResponse::Series { entries, more } => {
                let empty = entries.is_empty();
                out.extend(entries);
                if !more || empty {
                    return Ok(out);
                }
            }
            _ => return Err(JobFail::Sys(UNEXPECTED)),
        }
    }
}

/// One `metrics --json` line.
#[derive(Serialize)]
struct SeriesLine<'a> {
    job_id: u64,
    name: &'a str,
    kind: &'static str,
    tags: &'a [Tag],
    count: u64,
    last: Option<f64>,
    last_step: Option<u64>,
    last_ts_ms: u64,
    min: Option<f64>,
    max: Option<f64>,
    best: Option<f64>,
    best_step: Option<u64>,
    objective: &'static str,
}

fn num(v: Option<f64>) -> String {
    match v {
        Some(v) => alloc::format!("{v}"),
        None => String::from("-"),
    }
}

fn tags_text(tags: &[Tag]) -> String {
    if tags.is_empty() {
        return String::new();
    }
    let mut s = String::from("{");
    for (i, t) in tags.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{}={}", t.key, t.value);
    }
    s.push('}');
    s
}

/// `metrics [JOB] [NAME] [--history] [--json]`.
pub fn metrics(job_id: Option<u64>, name: Option<&str>, history: Option<HistoryRange>, json: bool) {
    let series = match all_series(job_id, name) {
        Ok(s) => s,
        Err(e) => return job_error(e),
    };
    if series.is_empty() {
        if !json {
            println!("no metrics");
        }
        return;
    }
    if let Some(range) = history {
        for s in &series {
            print_history(s, range, json);
        }
        return;
    }
    if !json {
        println!(
            "{:>4} {:<32} {:<9} {:>8} {:>12} {:>8} {:>12} {:>12}",
            "JOB", "SERIES", "KIND", "COUNT", "LAST", "STEP", "BEST", "BEST_STEP"
        );
    }
    for s in &series {
        if json {
            super::json_line_sized(&SeriesLine {
                job_id: s.job_id,
                name: &s.name,
                kind: s.kind.as_str(),
                tags: &s.tags,
                count: s.count,
                // NaN has no JSON spelling: null.
                last: Some(s.last).filter(|v| v.is_finite()),
                last_step: s.last_step,
                last_ts_ms: s.last_ts_ms,
                min: s.min,
                max: s.max,
                best: s.best,
                best_step: s.best_step,
                objective: if s.minimize { "min" } else { "max" },
            });
            continue;
        }
        let mut label = String::from(s.name.as_str());
        label.push_str(&tags_text(&s.tags));
        println!(
            "{:>4} {:<32} {:<9} {:>8} {:>12} {:>8} {:>12} {:>12}",
            s.job_id,
            label,
            s.kind.as_str(),
            s.count,
            num(Some(s.last)),
            s.last_step.map_or(String::from("-"), |v| alloc::format!("{v}")),
            num(s.best),
            s.best_step.map_or(String::from("-"), |v| alloc::format!("{v}")),
        );
    }
}

#[derive(Serialize)]
struct SampleLine<'a> {
    job_id: u64,
    name: &'a str,
    step: Option<u64>,
    ts_ms: u64,
    value: Option<f64>,
}

fn print_history(s: &SeriesInfo, range: HistoryRange, json: bool) {
    if !json {
        println!("job {} {}{}:", s.job_id, s.name, tags_text(&s.tags));
    }
    let mut after = 0u32;
    loop {
        let request = TelemetryRequest::History {
            job_id: s.job_id,
            name: s.name.clone(),
            tags: s.tags.clone(),
            range,
            after,
        };
        let (samples, more) = match telemetry_call(request) {
            Ok(TelemetryResponse::History { samples, more }) => (samples, more),
            Ok(_) => return job_error(JobFail::Sys(UNEXPECTED)),
            Err(e) => return job_error(e),
        };
        for p in &samples {
            if json {
                super::json_line_sized(&SampleLine {
                    job_id: s.job_id,
                    name: &s.name,
                    step: p.step,
                    ts_ms: p.ts_ms,
                    value: Some(p.value).filter(|v| v.is_finite()),
                });
            } else {
                let step = p.step.map_or(String::from("-"), |v| alloc::format!("{v}"));
                println!("  step {step:>8}  {}", p.value);
            }
        }
        after += samples.len() as u32;
        if !more || samples.is_empty() {
            return;
        }
    }
}

#[derive(Serialize)]
struct RuleLine<'a> {
    name: &'a str,
    rule: &'a str,
    firing: u32,
}

/// `alerts [--json]`: the rules, each with its firing alerts.
pub fn alerts(json: bool) {
    let mut after = 0u32;
    let mut any = false;
    loop {
        let (rules, more) = match telemetry_call(TelemetryRequest::Rules { after }) {
            Ok(TelemetryResponse::Rules { rules, more }) => (rules, more),
            Ok(_) => return job_error(JobFail::Sys(UNEXPECTED)),
            Err(e) => return job_error(e),
        };
        for r in &rules {
            any = true;
            if json {
                super::json_line_sized(&RuleLine {
                    name: &r.name,
                    rule: &r.text,
                    firing: r.firing,
                });
            } else {
                println!("{:<5} {}", if r.firing > 0 { "FIRE" } else { "ok" }, r.text);
                if r.firing > 1 {
                    println!("      ({} alerts firing)", r.firing);
                }
            }
        }
        after += rules.len() as u32;
        if !more || rules.is_empty() {
            break;
        }
    }
    if !any && !json {
        println!("no alert rules (write them to /ops/rules.conf, then `alerts reload`)");
    }
}

/// `alerts reload` and `routes reload`.
pub fn reload(request: TelemetryRequest) {
    let (cmd, path) = match request {
        TelemetryRequest::ReloadRoutes => ("routes reload", "/ops/routes.conf"),
        TelemetryRequest::ReloadArtifactPolicy => ("artifacts reload", "/ops/artifacts.conf"),
        _ => ("alerts reload", "/ops/rules.conf"),
    };
    match telemetry_call(request) {
        Ok(TelemetryResponse::Reloaded { rules }) => println!("{rules} rules loaded from {path}"),
        Ok(TelemetryResponse::RoutesLoaded { receivers, routes }) => {
            println!("{receivers} receivers and {routes} routes loaded from {path}")
        }
        Ok(TelemetryResponse::RulesRejected { line: 0, reason }) => {
            println!("error: {cmd}: {reason}; nothing changed")
        }
        Ok(TelemetryResponse::RulesRejected { line, reason }) => {
            println!("error: {cmd}: {path} line {line}: {reason}; nothing changed")
        }
        Ok(TelemetryResponse::PolicyLoaded { rules: 0 }) => {
            println!("no policy in {path} (or no such file): every version is kept, best by the first metric")
        }
        Ok(TelemetryResponse::PolicyLoaded { rules }) => println!("{rules} policy lines loaded from {path}"),
        Ok(TelemetryResponse::ArtifactError { reason }) => println!("error: {cmd}: {reason}"),
        Ok(TelemetryResponse::NoRuleFile | TelemetryResponse::NoRouteFile) => {
            println!("error: {cmd}: there is no {path} (mkdir /ops, then write {path} ...)")
        }
        Ok(_) => job_error(JobFail::Sys(UNEXPECTED)),
        Err(e) => job_error(e),
    }
}

#[derive(Serialize)]
struct RoutesLine<'a> {
    line: &'a str,
}

/// `routes [--json]`: the route file as loaded, and the delivery counts.
pub fn routes(json: bool) {
    let mut after = 0u32;
    let s = loop {
        let (lines, more, s) = match telemetry_call(TelemetryRequest::Routes { after }) {
            Ok(TelemetryResponse::Routes { lines, more, stats }) => (lines, more, stats),
            Ok(_) => return job_error(JobFail::Sys(UNEXPECTED)),
            Err(e) => return job_error(e),
        };
        for l in &lines {
            if json {
                super::json_line_sized(&RoutesLine { line: l });
            } else {
                println!("{l}");
            }
        }
        after += lines.len() as u32;
        if !more || lines.is_empty() {
            break s;
        }
    };
    if json {
        super::json_line_sized(&s);
    } else {
        if after == 0 {
            println!("no routes (write them to /ops/routes.conf, then `routes reload`): alerts go to `events` only");
        }
        println!(
            "notifications {} (rate-limited {}), webhooks delivered {} failed {}, undelivered {}",
            s.notifications, s.suppressed, s.webhooks_delivered, s.webhooks_failed, s.undelivered
        );
    }
}

#[derive(Serialize)]
struct ArtifactLine<'a> {
    job_id: u64,
    kind: &'static str,
    name: &'a str,
    version: u32,
    digest: &'a str,
    size: u64,
    created_ms: u64,
    step: Option<u64>,
    latest: bool,
    best: bool,
    pinned: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
}

fn artifact_line<'a>(a: &'a ArtifactInfo, digest: &'a str, path: Option<&'a str>) -> ArtifactLine<'a> {
    ArtifactLine {
        job_id: a.job_id,
        kind: a.kind.as_str(),
        name: &a.name,
        version: a.version,
        digest,
        size: a.size,
        created_ms: a.created_ms,
        step: a.step,
        latest: a.latest,
        best: a.best,
        pinned: a.pinned,
        path,
    }
}

fn aliases(a: &ArtifactInfo) -> String {
    let mut s = String::new();
    for (on, name) in [(a.latest, "latest"), (a.best, "best"), (a.pinned, "pinned")] {
        if on {
            if !s.is_empty() {
                s.push(',');
            }
            s.push_str(name);
        }
    }
    if s.is_empty() {
        s.push('-');
    }
    s
}

/// `artifacts ls [JOB] [--json]`.
pub fn artifacts_ls(job_id: Option<u64>, json: bool) {
    let mut after = 0u32;
    if !json {
        println!(
            "{:>4} {:<7} {:<24} {:>4} {:>10} {:>8} {:<18} DIGEST",
            "JOB", "KIND", "NAME", "VER", "SIZE", "STEP", "ALIASES"
        );
    }
    loop {
        let (entries, more) = match telemetry_call(TelemetryRequest::Artifacts { job_id, after }) {
            Ok(TelemetryResponse::Artifacts { entries, more }) => (entries, more),
            Ok(_) => return job_error(JobFail::Sys(UNEXPECTED)),
            Err(e) => return job_error(e),
        };
        for a in &entries {
            let digest = aether_abi::artifact::hex(&a.digest);
            if json {
                super::json_line_sized(&artifact_line(a, &digest, None));
            } else {
                println!(
                    "{:>4} {:<7} {:<24} {:>4} {:>10} {:>8} {:<18} {}",
                    a.job_id,
                    a.kind.as_str(),
                    a.name,
                    a.version,
                    a.size,
                    a.step.map_or(String::from("-"), |s| alloc::format!("{s}")),
                    aliases(a),
                    &digest[..16]
                );
            }
        }
        after += entries.len() as u32;
        if !more || entries.is_empty() {
            return;
        }
    }
}

/// `artifacts get|pin|unpin JOB/KIND/NAME[@SEL]`.
pub fn artifact(spec: &ArtifactSpec<'_>, pin: Option<bool>, json: bool) {
    let cmd = match pin {
        None => "artifacts get",
        Some(true) => "artifacts pin",
        Some(false) => "artifacts unpin",
    };
    let Some(kind) = ArtifactKind::from_name(spec.kind) else {
        return println!(
            "error: {cmd}: unknown kind '{}' (model, report, plot, pdf, other)",
            spec.kind
        );
    };
    let (Ok(name), Ok(selector)) = (
        heapless::String::try_from(spec.name),
        heapless::String::try_from(spec.selector),
    ) else {
        return println!("error: {cmd}: the name or the version is too long");
    };
    let request = match pin {
        None => TelemetryRequest::ArtifactCheck {
            job_id: spec.job_id,
            kind,
            name,
            selector,
        },
        Some(pin) => TelemetryRequest::ArtifactPin {
            job_id: spec.job_id,
            kind,
            name,
            selector,
            pin,
        },
    };
    match telemetry_call(request) {
        Ok(TelemetryResponse::Checked { info, path }) => {
            let digest = aether_abi::artifact::hex(&info.digest);
            if json {
                super::json_line_sized(&artifact_line(&info, &digest, Some(&path)));
            } else {
                println!(
                    "{}/{}/{} v{}: {} bytes, sha256 {digest} (checked), step {}, {}",
                    info.job_id,
                    info.kind.as_str(),
                    info.name,
                    info.version,
                    info.size,
                    info.step.map_or(String::from("-"), |s| alloc::format!("{s}")),
                    aliases(&info)
                );
                println!("at {path}");
            }
        }
        Ok(TelemetryResponse::Pinned { version, pinned }) => {
            println!("v{version} {}", if pinned { "pinned" } else { "unpinned" })
        }
        Ok(TelemetryResponse::ArtifactError { reason }) => println!("error: {cmd}: {reason}"),
        Ok(_) => job_error(JobFail::Sys(UNEXPECTED)),
        Err(e) => job_error(e),
    }
}

// The buffer `events` reads into holds at least one whole record.
const _: () = assert!(RecordHeader::LEN + event::BODY_POSTCARD_MAX <= 16 * 1024);
