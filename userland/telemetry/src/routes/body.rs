//! What receivers send: the Alertmanager webhook body, a chat message, a
//! console line, and [`render`], which picks one by the receiver's kind.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

use crate::rules::AlertState;

use super::json;
use super::labels::label;
use super::router::{Notification, NotifiedAlert};
use super::{Labels, Receiver, ReceiverKind, WebhookBody};

/// A chat body's characters at most (WhatsApp Cloud API's limit for a text
/// message's `body`); a longer one is cut and ends with `…`.
pub const CHAT_BODY_MAX: usize = 4096;

/// The chat template when the file gives none.
pub const DEFAULT_CHAT_TEMPLATE: &str = "[{status}] {alertname} (job {job_id}): {summary}";

/// The placeholders a chat template may use ([`chat_body`]).
pub const PLACEHOLDERS: [&str; 10] = [
    "status",
    "alertname",
    "job_id",
    "summary",
    "count",
    "firing",
    "resolved",
    "suppressed",
    "truncated",
    "receiver",
];

/// `startsAt`/`endsAt` of what has not ended (Go's zero `time.Time`).
const NOT_ENDED: &str = "0001-01-01T00:00:00Z";

/// `ms` after the unix epoch as RFC 3339 in UTC, as Alertmanager writes
/// times (Go's `time.RFC3339Nano`: `2024-03-01T12:00:00.25Z`); times after
/// 9999-12-31T23:59:59.999Z are written as it.
pub fn rfc3339(ms: u64) -> String {
    let mut out = String::new();
    json::rfc3339(&mut out, ms);
    out
}

/// The Alertmanager webhook body, version 4 (Alertmanager's
/// `notify/webhook` `Message`, its fields in Alertmanager's order):
///
/// ```text
/// {"receiver":"hook","status":"firing","alerts":[{"status":"firing",
///  "labels":{...},"annotations":{"summary":"..."},"startsAt":"...",
///  "endsAt":"0001-01-01T00:00:00Z","generatorURL":"...","fingerprint":
///  "1f2e3d4c5b6a7988"}],"groupLabels":{...},"commonLabels":{...},
///  "commonAnnotations":{...},"externalURL":"...","version":"4",
///  "groupKey":"{}:{alertname=\"x\"}","truncatedAlerts":0}
/// ```
///
/// `generatorURL` is `<external_url>/jobs/<job_id>/metrics` (the bridge's
/// page of the job's metrics) for an alert with a numeric `job_id`, else
/// `external_url`. When the rate limit dropped notifications before this
/// one, a last field `"suppressedNotifications":N` says how many
/// (receivers ignore fields they do not know). One line, no newline at the
/// end: a file receiver's JSON line.
pub fn alertmanager_json(n: &Notification, external_url: &str) -> String {
    let mut out = String::with_capacity(512 + 384 * n.alerts.len());
    out.push_str("{\"receiver\":");
    json::string(&mut out, &n.receiver);
    out.push_str(",\"status\":");
    json::string(&mut out, n.status.as_str());
    out.push_str(",\"alerts\":[");
    let base = external_url.trim_end_matches('/');
    for (i, a) in n.alerts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"status\":");
        json::string(&mut out, a.state.as_str());
        out.push_str(",\"labels\":");
        json::object(&mut out, pairs(&a.labels));
        out.push_str(",\"annotations\":");
        json::object(&mut out, pairs(&a.annotations));
        out.push_str(",\"startsAt\":\"");
        json::rfc3339(&mut out, a.starts_at_ms);
        out.push_str("\",\"endsAt\":\"");
        match a.ends_at_ms {
            Some(ms) => json::rfc3339(&mut out, ms),
            None => out.push_str(NOT_ENDED),
        }
        out.push_str("\",\"generatorURL\":");
        match label(&a.labels, "job_id").filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())) {
            Some(job) if !base.is_empty() => {
                let mut url = String::from(base);
                let _ = write!(url, "/jobs/{job}/metrics");
                json::string(&mut out, &url);
            }
            _ => json::string(&mut out, external_url),
        }
        let _ = write!(out, ",\"fingerprint\":\"{:016x}\"}}", a.fingerprint);
    }
    out.push_str("],\"groupLabels\":");
    json::object(&mut out, pairs(&n.group_labels));
    out.push_str(",\"commonLabels\":");
    json::object(&mut out, common(&n.alerts, |a| &a.labels));
    out.push_str(",\"commonAnnotations\":");
    json::object(&mut out, common(&n.alerts, |a| &a.annotations));
    out.push_str(",\"externalURL\":");
    json::string(&mut out, external_url);
    out.push_str(",\"version\":\"4\",\"groupKey\":");
    json::string(&mut out, &n.group_key);
    let _ = write!(out, ",\"truncatedAlerts\":{}", n.truncated);
    if n.suppressed > 0 {
        let _ = write!(out, ",\"suppressedNotifications\":{}", n.suppressed);
    }
    out.push('}');
    out
}

fn pairs(labels: &Labels) -> impl Iterator<Item = (&str, &str)> {
    labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// The pairs every alert has with the same value (Alertmanager's
/// `commonLabels`, `commonAnnotations`); none without alerts.
fn common<'a>(
    alerts: &'a [NotifiedAlert],
    of: impl Fn(&'a NotifiedAlert) -> &'a Labels,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    let first: &[(String, String)] = alerts.first().map_or(&[], |a| of(a).as_slice());
    first
        .iter()
        .filter(move |(k, v)| alerts.iter().all(|a| label(of(a), k) == Some(v.as_str())))
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

/// Whether `template` is one [`chat_body`] reads as meant: every `{` opens
/// `{{` or a known placeholder (`Err` names what is wrong).
pub(super) fn check_template(template: &str) -> Result<(), &'static str> {
    for piece in Pieces(template) {
        if let Piece::Unknown(_) = piece {
            return Err(
                "a `{` opens `{{` or a placeholder: {status}, {alertname}, {job_id}, {summary}, {count}, \
                        {firing}, {resolved}, {suppressed}, {truncated}, {receiver}",
            );
        }
    }
    Ok(())
}

/// A part of a template.
enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
    /// A `{` that opens neither: written as it is.
    Unknown(&'a str),
}

/// A template cut into pieces: `{{` and `}}` are `{` and `}`, `{name}` a
/// placeholder when `name` is one of [`PLACEHOLDERS`].
struct Pieces<'a>(&'a str);

impl<'a> Iterator for Pieces<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        let s = self.0;
        if s.is_empty() {
            return None;
        }
        if let Some(rest) = s.strip_prefix("{{") {
            self.0 = rest;
            return Some(Piece::Text("{"));
        }
        if let Some(rest) = s.strip_prefix("}}") {
            self.0 = rest;
            return Some(Piece::Text("}"));
        }
        if let Some(inner) = s.strip_prefix('{') {
            let name = inner.split_once('}').map(|(name, _)| name);
            return match name {
                Some(name) if PLACEHOLDERS.contains(&name) => {
                    self.0 = &inner[name.len() + 1..];
                    Some(Piece::Placeholder(name))
                }
                _ => {
                    self.0 = inner;
                    Some(Piece::Unknown("{"))
                }
            };
        }
        // Up to the next brace after the first character (a lone `}` is
        // itself).
        let first = s.chars().next().map_or(1, char::len_utf8);
        let end = s[first..].find(['{', '}']).map_or(s.len(), |i| i + first);
        let (text, rest) = s.split_at(end);
        self.0 = rest;
        Some(Piece::Text(text))
    }
}

/// The distinct values of label `name` over `alerts`, in order, joined by
/// `, `.
fn distinct(alerts: &[NotifiedAlert], name: &str) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for v in alerts.iter().filter_map(|a| label(&a.labels, name)) {
        if !seen.contains(&v) {
            seen.push(v);
        }
    }
    seen.join(", ")
}

/// A chat message for the recipient `to`: WhatsApp Cloud API's text
/// message, `{"messaging_product":"whatsapp","to":"<to>","type":"text",
/// "text":{"body":"<the template rendered>"}}`.
///
/// The template is text with placeholders; `{{` and `}}` are literal
/// braces, and a `{` that opens neither is written as it is (the route
/// file refuses such templates):
///
/// | placeholder | becomes |
/// | --- | --- |
/// | `{status}` | `firing` or `resolved` (the notification's) |
/// | `{alertname}`, `{job_id}` | the alerts' distinct values, joined by `, ` |
/// | `{summary}` | each alert's summary, a line each (changes first) |
/// | `{count}` | the group's alerts (those sent and those truncated) |
/// | `{firing}`, `{resolved}` | the alerts sent, firing and resolved |
/// | `{suppressed}` | notifications the rate limit dropped before this one |
/// | `{truncated}` | alerts left out by `max_alerts` |
/// | `{receiver}` | the receiver's name |
///
/// A template without `{suppressed}` gets a last line `(N earlier
/// notifications suppressed by the rate limit)` when N > 0, and one
/// without `{truncated}` a line `(+N more alerts)` when N > 0. The body is
/// cut to [`CHAT_BODY_MAX`] characters.
pub fn chat_body(n: &Notification, to: &str, template: &str) -> String {
    let mut body = String::new();
    let firing = n.alerts.iter().filter(|a| a.state == AlertState::Firing).count();
    for piece in Pieces(template) {
        match piece {
            Piece::Text(text) | Piece::Unknown(text) => body.push_str(text),
            Piece::Placeholder(name) => match name {
                "status" => body.push_str(n.status.as_str()),
                "alertname" => body.push_str(&distinct(&n.alerts, "alertname")),
                "job_id" => body.push_str(&distinct(&n.alerts, "job_id")),
                "summary" => {
                    let summaries = n.alerts.iter().filter_map(|a| label(&a.annotations, "summary"));
                    body.push_str(&summaries.collect::<Vec<_>>().join("\n"));
                }
                "count" => body.push_str(&(n.alerts.len() + n.truncated).to_string()),
                "firing" => body.push_str(&firing.to_string()),
                "resolved" => body.push_str(&(n.alerts.len() - firing).to_string()),
                "suppressed" => body.push_str(&n.suppressed.to_string()),
                "truncated" => body.push_str(&n.truncated.to_string()),
                _ => body.push_str(&n.receiver),
            },
        }
    }
    let uses = |name: &str| Pieces(template).any(|p| matches!(p, Piece::Placeholder(p) if p == name));
    if n.truncated > 0 && !uses("truncated") {
        let _ = write!(body, "\n(+{} more alerts)", n.truncated);
    }
    if n.suppressed > 0 && !uses("suppressed") {
        let _ = write!(
            body,
            "\n({} earlier notifications suppressed by the rate limit)",
            n.suppressed
        );
    }
    if body.chars().count() > CHAT_BODY_MAX {
        // The first CHAT_BODY_MAX - 1 characters and `…`.
        if let Some((at, _)) = body.char_indices().nth(CHAT_BODY_MAX - 1) {
            body.truncate(at);
        }
        body.push('…');
    }
    let mut out = String::with_capacity(body.len() + 96);
    out.push_str("{\"messaging_product\":\"whatsapp\",\"to\":");
    json::string(&mut out, to);
    out.push_str(",\"type\":\"text\",\"text\":{\"body\":");
    json::string(&mut out, &body);
    out.push_str("}}");
    out
}

/// A line for opsd's console: `alert firing receiver=console alerts=2
/// truncated=0 suppressed=0 group={}:{...}: summary; summary` (the
/// key=value part for programs, the summaries for people; newlines in
/// summaries become spaces).
pub fn console_line(n: &Notification) -> String {
    let mut line = String::new();
    let _ = write!(
        line,
        "alert {} receiver={} alerts={} truncated={} suppressed={} group={}:",
        n.status.as_str(),
        n.receiver,
        n.alerts.len(),
        n.truncated,
        n.suppressed,
        n.group_key
    );
    for (i, a) in n.alerts.iter().enumerate() {
        line.push_str(if i == 0 { " " } else { "; " });
        let summary = label(&a.annotations, "summary").or(label(&a.labels, "alertname"));
        line.extend(
            summary
                .unwrap_or("")
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c }),
        );
    }
    line
}

/// What opsd does with a notification, by the receiver's kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Print this line on the console.
    Console { line: String },
    /// Append this JSON line (and a newline) to the file.
    File { path: String, line: String },
    /// Ask the bridge to POST this JSON body to the URL (with retries).
    Webhook { url: String, body: String },
}

/// The delivery of `n` to `receiver` (the one [`Notification::receiver`]
/// names: [`super::Router::receiver`]); `external_url` is the bridge's
/// address as receivers reach it (`generatorURL`, `externalURL`).
pub fn render(receiver: &Receiver, n: &Notification, external_url: &str) -> Delivery {
    match &receiver.kind {
        ReceiverKind::Console => Delivery::Console { line: console_line(n) },
        ReceiverKind::File { path } => Delivery::File {
            path: path.clone(),
            line: alertmanager_json(n, external_url),
        },
        ReceiverKind::Webhook { url, body } => Delivery::Webhook {
            url: url.clone(),
            body: match body {
                WebhookBody::Alertmanager => alertmanager_json(n, external_url),
                WebhookBody::Chat { to, template } => chat_body(n, to, template),
            },
        },
    }
}
