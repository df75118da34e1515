//! Alert routing (docs/telemetry.md, "Routing"): Alertmanager's route tree,
//! grouping, dedup by fingerprint and a token-bucket rate limit per
//! receiver turn the rule engine's [`Alert`](crate::rules::Alert)s into [`Notification`]s; the
//! route file's parser ([`parse`]); the bodies receivers send
//! ([`alertmanager_json`], [`chat_body`], [`console_line`], [`render`]).
//! Pure: no I/O, no clock (every input carries `now_ms`, unix ms, opsd's
//! clock), no panics on any input, bounded memory.
//!
//! # Inputs and outputs
//!
//! [`Router`] takes
//!
//! * alerts ([`Router::on_alert`]: a `Firing` or a `Resolved` from
//!   [`crate::rules::Rules`]),
//! * time ([`Router::tick`], which answers with the notifications that are
//!   due; [`Router::next_deadline`] says when the next one is),
//! * a new configuration ([`Router::replace`], after [`parse`] accepted a
//!   whole file: a file with an error is refused and the old configuration
//!   stays),
//!
//! and opsd hands each [`Notification`] to [`render`], which gives the
//! console line, the file's JSON line or the webhook's URL and body.
//!
//! # Semantics (Alertmanager's, `alertmanager/dispatch`)
//!
//! * **Labels.** An alert's labels are the rule's labels, the series' tags,
//!   `alertname` (the rule's name), `job_id` (decimal) and `metric` (the
//!   series' metric name); where names collide the fixed three win over
//!   the rule's labels, which win over the tags (a trainer's tag cannot
//!   change an alert's `severity`). Empty values are left out, as
//!   Alertmanager treats an empty label as an absent one. The alert's one
//!   annotation is `summary`.
//! * **Fingerprint**: [`fingerprint`], FNV-1a 64 over the labels sorted by
//!   name, each name and value followed by the byte 0xff: the same
//!   function as Prometheus' `model.LabelSet.Fingerprint`
//!   (`prometheus/common`, `model/labelset.go`, `signature.go`), so the
//!   `fingerprint` in a webhook body is the one Alertmanager would show.
//! * **Routing**: the root matches every alert; a route that matches tries
//!   its children in order, and the alert goes to every matching child up
//!   to and including the first one without `continue`; a route none of
//!   whose children matched takes the alert itself. So a child is more
//!   specific than its parent, the first match wins, and `continue` lets
//!   later siblings see the alert too.
//! * **Inheritance**: a child's unset `receiver`, `group_by`,
//!   `group_wait`, `group_interval` and `repeat_interval` are its
//!   parent's (so, through the tree, the root's); the root's unset timings
//!   are Alertmanager's defaults ([`DEFAULT_GROUP_WAIT_MS`],
//!   [`DEFAULT_GROUP_INTERVAL_MS`], [`DEFAULT_REPEAT_INTERVAL_MS`]), its
//!   unset `group_by` is no labels (one group per route). `continue` is
//!   never inherited.
//! * **Groups**: per route and per the values of its `group_by` labels (a
//!   label the alert lacks is left out; [`GroupBy::All`], `...` in the
//!   file, groups by every label: one group per alert). The first alert
//!   of a new group waits `group_wait`, so the alerts that come with it go
//!   out together; after that a group with changes is sent at most every
//!   `group_interval` (at the first tick at or after its last flush plus
//!   `group_interval`); a group without changes that still has firing
//!   alerts is sent again `repeat_interval` after it was last sent (and not
//!   sooner than `group_interval` after its last flush).
//! * **Changes** are what a receiver has not heard: a firing alert no
//!   notification of the group announced yet, or an announced one that has
//!   resolved. A notification carries the group's alerts, changes first,
//!   then the others (each part by start time, then fingerprint); its
//!   status is `firing` when any alert in it fires.
//! * **Dedup**: an alert whose fingerprint already fires in a group is not
//!   a new alert: its summary is updated (the next notification shows the
//!   latest) and nothing is due. A resolve marks it resolved (`endsAt` =
//!   the resolve's time); a firing again before that resolve was sent
//!   makes it firing again (a new `startsAt`) and, the receiver having
//!   heard `firing` last, is no change: a flap inside one interval is not
//!   sent.
//! * **Resolved alerts are sent once, then dropped** from the group; a
//!   group without alerts is dropped. An alert that resolves before any
//!   notification announced it is never sent (a receiver is not told that
//!   something it never heard of is over): the group's next flush drops
//!   it. Until then the group keeps its timing, so an alert that flaps
//!   through its `group_wait` is reported as it is at the flush.
//!
//! # Decisions (where the design is silent)
//!
//! * **Events**: alerts of rules that never resolve (`new_best`,
//!   [`crate::rules::RuleType::resolves`]) are sent once like resolved
//!   ones and then dropped, never repeated; a second new best before the
//!   first was sent is the same fingerprint and updates it (the
//!   notification shows the latest summary).
//! * **Rate limit** ([`RateLimit`]): one token bucket per receiver holding
//!   at most `burst` notifications, one back every `per_ms` (so at most
//!   `burst + T / per_ms` notifications in any time `T`). A due
//!   notification the bucket refuses is dropped and counted
//!   ([`Stats::suppressed`]); the group stays as it was (its changes are
//!   still changes), so it is tried again `group_interval` later with the
//!   state it has then, and the receiver catches up once tokens come back.
//!   The number of notifications the receiver lost since its last one
//!   rides on the next one that passes ([`Notification::suppressed`]: an
//!   extra `suppressedNotifications` field in the Alertmanager body, a
//!   line in the chat body).
//! * **Truncation**: a receiver's `max_alerts` caps the alerts of one
//!   notification (Alertmanager's `max_alerts`; the rest are counted in
//!   [`Notification::truncated`], `truncatedAlerts`). Changes go first and
//!   only the alerts sent are marked as heard, so the changes left out go
//!   in the next notification, `group_interval` later.
//! * **Group keys** read as Alertmanager's: the route's key (`{}` for the
//!   root, then `/` and each route's matchers, `/N` added for a route with
//!   a sibling of the same matchers), `:` and the group's labels:
//!   `{}/{severity="critical"}:{alertname="val_flat", job_id="3"}`.
//! * **Replacing the configuration** ([`Router::replace`]) routes every
//!   alert the router holds through the new tree. A group whose key and
//!   receiver both exist in the old and the new tree keeps its timing and
//!   what it announced (no repeat, no resend); other groups start afresh
//!   (their firing alerts are sent after `group_wait`, as Alertmanager does
//!   on a reload); a receiver of the same name keeps its bucket and its
//!   count of suppressed notifications.
//! * **Time going backwards** never panics and never sends early: every
//!   deadline is an absolute time, the bucket only refills forwards.
//! * **Timestamps**: `startsAt` is the `Firing` alert's `at_ms`, `endsAt`
//!   the `Resolved` one's; a group's timings use `now_ms`.
//!
//! # Bounds
//!
//! [`Limits`]: groups (default 1024), alerts in all groups (an alert in
//! two groups counts twice; default 4096) and alerts per group (default
//! 256); an alert that would go beyond one of them is not kept there and
//! counted ([`Stats::dropped`]). An alert with more than [`LABELS_MAX`]
//! labels, a label name over [`LABEL_NAME_MAX`] or a value over
//! [`LABEL_VALUE_MAX`] bytes is refused and counted ([`Stats::refused`]);
//! summaries are cut at [`SUMMARY_MAX`] bytes. A configuration has at most
//! [`ROUTES_MAX`] routes, [`DEPTH_MAX`] levels and [`RECEIVERS_MAX`]
//! receivers; a notification holds at most `max_alerts` alerts (at most
//! [`MAX_ALERTS_MAX`]). [`Router::tick`] returns at most one notification
//! per group.
//!
//! # The route file
//!
//! One item per line; `#` at the start of a line or of a word (outside
//! quotes) starts a comment; blank lines are ignored:
//!
//! ```text
//! # receivers: receiver NAME KIND [key=value ...]
//! receiver console  console
//! receiver log      file path=/ops/alerts.jsonl rate=off
//! receiver hook     webhook url=http://10.0.2.2:8080/alerts max_alerts=16
//! receiver phone    webhook url=https://graph.facebook.com/v21.0/1234/messages body=chat to=15551234567 template="[{status}] {alertname} job {job_id}: {summary}" burst=3 rate=1/1m
//!
//! # the route tree: route [{MATCHERS}] [key=value ...] [continue],
//! # children indented under their parent
//! route receiver=console group_by=alertname,job_id group_wait=30s group_interval=5m repeat_interval=4h
//!   route {severity=critical} receiver=phone group_wait=0s continue
//!   route {alertname=~val_*, job_id!=7} receiver=hook group_by=...
//!     route {metric!~*_loss} receiver=log
//!   route {severity!=info} receiver=log
//! ```
//!
//! [`parse`] documents every key; a file with any error is refused whole
//! ([`ConfigError`] names the line and the reason).

mod body;
mod bucket;
mod config;
mod json;
mod labels;
mod router;
#[cfg(test)]
mod tests;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use body::{
    CHAT_BODY_MAX, DEFAULT_CHAT_TEMPLATE, Delivery, PLACEHOLDERS, alertmanager_json, chat_body, console_line, render,
    rfc3339,
};
pub use config::{ConfigError, LINE_MAX, Reason, parse};
pub use labels::{Labels, alert_labels, fingerprint, glob_match, label};
pub use router::{Limits, Notification, NotifiedAlert, Router, Stats};

/// The root's `group_wait` when the file leaves it out (Alertmanager's).
pub const DEFAULT_GROUP_WAIT_MS: u64 = 30_000;
/// The root's `group_interval` when the file leaves it out.
pub const DEFAULT_GROUP_INTERVAL_MS: u64 = 5 * 60_000;
/// The root's `repeat_interval` when the file leaves it out.
pub const DEFAULT_REPEAT_INTERVAL_MS: u64 = 4 * 3_600_000;
/// A receiver's `max_alerts` when the file leaves it out: an Alertmanager
/// body of 32 alerts stays around 20 KiB.
pub const DEFAULT_MAX_ALERTS: usize = 32;

/// Routes in a configuration at most (the root included).
pub const ROUTES_MAX: usize = 256;
/// Levels of the route tree at most (the root is level 1).
pub const DEPTH_MAX: usize = 16;
/// Receivers at most.
pub const RECEIVERS_MAX: usize = 64;
/// Matchers of one route, labels of one `group_by`, at most.
pub const MATCHERS_MAX: usize = 16;
/// A receiver's name's bytes at most.
pub const NAME_MAX: usize = 64;
/// A webhook URL's bytes at most.
pub const URL_MAX: usize = 512;
/// A file receiver's path's bytes at most.
pub const PATH_MAX: usize = 256;
/// A chat template's bytes at most.
pub const TEMPLATE_MAX: usize = 512;
/// A chat recipient's (`to`) bytes at most.
pub const TO_MAX: usize = 64;
/// A receiver's `max_alerts` at most.
pub const MAX_ALERTS_MAX: usize = 1024;
/// A `burst` at most.
pub const BURST_MAX: u32 = 10_000;
/// Labels of one alert at most.
pub const LABELS_MAX: usize = 32;
/// A label name's bytes at most.
pub const LABEL_NAME_MAX: usize = 64;
/// A label value's (and a matcher value's) bytes at most.
pub const LABEL_VALUE_MAX: usize = 256;
/// A summary's bytes at most (longer ones are cut at a character).
pub const SUMMARY_MAX: usize = 1024;

/// How a matcher compares a label's value (a missing label is `""`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`: equal.
    Eq,
    /// `!=`: not equal.
    Ne,
    /// `=~`: the whole value matches a glob where `*` is any run of
    /// characters (none included) and every other character is itself
    /// ([`glob_match`]).
    Glob,
    /// `!~`: the glob does not match.
    NotGlob,
}

impl MatchOp {
    /// `=`, `!=`, `=~` or `!~`, as in the file.
    pub const fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Glob => "=~",
            MatchOp::NotGlob => "!~",
        }
    }
}

/// One condition on an alert's labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    pub value: String,
}

impl Matcher {
    pub fn new(label: &str, op: MatchOp, value: &str) -> Self {
        Matcher {
            label: String::from(label),
            op,
            value: String::from(value),
        }
    }

    /// Whether `labels` (sorted or not) satisfy it; a missing label reads
    /// as `""`, as in Alertmanager.
    pub fn matches(&self, labels: &[(String, String)]) -> bool {
        let value = label(labels, &self.label).unwrap_or("");
        match self.op {
            MatchOp::Eq => value == self.value,
            MatchOp::Ne => value != self.value,
            MatchOp::Glob => glob_match(&self.value, value),
            MatchOp::NotGlob => !glob_match(&self.value, value),
        }
    }
}

impl fmt::Display for Matcher {
    /// `label="value"` (Alertmanager's form, the value quoted and escaped).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)?;
        f.write_str(self.op.as_str())?;
        labels::write_quoted(f, &self.value)
    }
}

/// Which labels split a route's alerts into groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// These labels' values (none: one group per route).
    Labels(Vec<String>),
    /// Every label (`...` in the file): one group per alert.
    All,
}

/// A node of the route tree, as written: `None` is unset (inherited from
/// the parent, see the module header).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    /// All must hold (none on the root, which matches every alert).
    pub matchers: Vec<Matcher>,
    /// A [`Receiver::name`]; the root must have one.
    pub receiver: Option<String>,
    pub group_by: Option<GroupBy>,
    pub group_wait_ms: Option<u64>,
    /// At least 1 ms when set.
    pub group_interval_ms: Option<u64>,
    /// At least 1 ms when set.
    pub repeat_interval_ms: Option<u64>,
    /// Whether later siblings are tried after this route matched.
    pub continue_: bool,
    /// Tried in order.
    pub routes: Vec<Route>,
    /// Its line in the file (0 for a route built in code): errors name it.
    pub line: usize,
}

/// A token bucket: at most `burst` notifications at once, then one every
/// `per_ms` (at most `burst + T / per_ms` in any time `T`). `per_ms == 0`
/// is no limit (`rate=off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// At least 1 (at most [`BURST_MAX`]).
    pub burst: u32,
    pub per_ms: u64,
}

impl RateLimit {
    /// No limit.
    pub const OFF: RateLimit = RateLimit { burst: 1, per_ms: 0 };
}

impl Default for RateLimit {
    /// 10 at once, then 10 a minute (`burst=10 rate=10/1m`).
    fn default() -> Self {
        RateLimit {
            burst: 10,
            per_ms: 6_000,
        }
    }
}

/// What a webhook POSTs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookBody {
    /// The Alertmanager webhook JSON, version 4 ([`alertmanager_json`]).
    Alertmanager,
    /// A chat message: [`chat_body`] renders `template` for the recipient
    /// `to`.
    Chat { to: String, template: String },
}

/// Where a receiver's notifications go (the bridge does the I/O).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiverKind {
    /// A line on opsd's console ([`console_line`]).
    Console,
    /// The Alertmanager JSON body, one line per notification (JSON lines).
    File { path: String },
    /// An HTTP POST by the bridge (`http://` or `https://`).
    Webhook { url: String, body: WebhookBody },
}

/// A named destination with its rate limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receiver {
    /// `[A-Za-z0-9_.-]`, 1 to [`NAME_MAX`] bytes, unique.
    pub name: String,
    pub kind: ReceiverKind,
    pub rate: RateLimit,
    /// Alerts in one notification at most (0: all the group holds).
    pub max_alerts: usize,
    /// Its line in the file (0 for a receiver built in code).
    pub line: usize,
}

impl Receiver {
    /// A receiver with the default rate limit and `max_alerts`.
    pub fn new(name: &str, kind: ReceiverKind) -> Self {
        Receiver {
            name: String::from(name),
            kind,
            rate: RateLimit::default(),
            max_alerts: DEFAULT_MAX_ALERTS,
            line: 0,
        }
    }
}

/// A whole route file: its receivers and its tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub receivers: Vec<Receiver>,
    pub root: Route,
}

impl Config {
    /// Whether the router can take it: what [`parse`] checks on each line
    /// and across the file (a configuration built in code gets the same
    /// checks from [`Router::new`] and [`Router::replace`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        config::validate(self)
    }

    /// The receiver named `name`.
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }
}
