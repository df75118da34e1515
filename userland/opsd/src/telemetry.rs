//! opsd's telemetry (docs/telemetry.md): the metrics registry and the
//! alert rules of `telemetry-core`, fed by the job table, and what comes
//! out of them: events for the kernel's bus, answers to the console's
//! queries, the Prometheus text for the bridge's `GET /metrics`.
//!
//! [`crate::Jobs`] owns one [`Telemetry`] and feeds it every accepted
//! point ([`Telemetry::on_point`]), every output ([`Telemetry::on_output`])
//! and every state change ([`Telemetry::on_transition`]); opsd's binary
//! publishes what [`Telemetry::drain_published`] gives on the `EVENT` call.
//! Pure like the rest of the crate: the rule file is read through the
//! table's [`Store`].

use alloc::collections::{BTreeSet, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use aether_abi::event::{EventBody, EventKind, Severity, truncated};
use aether_abi::fs::FsError;
use aether_abi::job::JobState;
use aether_abi::link::{EXPORT_CHUNK_MAX, EXPORT_MAX, LinkMessage, NOTIFY_BODY_MAX};
use aether_abi::metric::{MetricError, MetricPoint, TAGS_MAX, Tag};
use aether_abi::telemetry::{
    HISTORY_PAGE, HistoryRange, RULES_PAGE, RouteStats, RuleInfo, SERIES_PAGE, SampleInfo, SeriesInfo,
    TelemetryRequest, TelemetryResponse, TelemetryStats,
};
use heapless::Vec as HVec;
use telemetry_core::metrics::{Objective, Point, Registry, SeriesRef};
use telemetry_core::prom;
use telemetry_core::routes::{self, Delivery, Router};
use telemetry_core::rules::{self, Alert, AlertState, Mode, RuleType, Rules};

use crate::metric_export::Exports;
use crate::persist::Store;

/// The rule file.
pub const RULES_PATH: &str = "/ops/rules.conf";
/// The route file.
pub const ROUTES_PATH: &str = "/ops/routes.conf";
/// What alert bodies name as the place to look (`externalURL`,
/// `generatorURL`): the bridge's HTTP API at its default address (the
/// port `cargo run` gives it).
pub const EXTERNAL_URL: &str = "http://127.0.0.1:7878";
/// Console lines, file lines and webhook requests waiting, at most each
/// (beyond: counted as undelivered).
const DELIVERIES_MAX: usize = 256;
/// The largest rule file read (256 rules of 1 KiB lines).
pub const RULES_FILE_MAX: u64 = 256 * 1024;
/// Events waiting to be published, at most (the oldest dropped, counted).
pub const PUBLISH_MAX: usize = 1024;
/// (job, series, error) refusals remembered so each is reported once.
const REFUSALS_MAX: usize = 1024;
/// Export chunks queued for the bridge at once, at most (two whole
/// exports; a request beyond is not answered, and the bridge times out).
const EXPORT_CHUNKS_MAX: usize = 2 * EXPORT_MAX / EXPORT_CHUNK_MAX;

/// The registry, the rules and their outputs.
pub struct Telemetry {
    registry: Registry,
    rules: Rules,
    published: VecDeque<EventBody>,
    refusals: BTreeSet<(u64, String, u8)>,
    exports: VecDeque<LinkMessage>,
    stats: TelemetryStats,
    /// `None`: no route file; alerts go to the bus only.
    router: Option<Router>,
    /// The route file's lines as loaded (for `routes`).
    route_lines: Vec<String>,
    route_stats: RouteStats,
    console: VecDeque<String>,
    files: VecDeque<(String, String)>,
    notifies: VecDeque<LinkMessage>,
    next_notify: u64,
    bridge: bool,
    /// The points as JSON lines on the disk.
    files_out: Exports,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl Telemetry {
    pub fn new() -> Self {
        Telemetry {
            registry: Registry::default(),
            rules: Rules::new(Vec::new()),
            published: VecDeque::new(),
            refusals: BTreeSet::new(),
            exports: VecDeque::new(),
            stats: TelemetryStats::default(),
            router: None,
            route_lines: Vec::new(),
            route_stats: RouteStats::default(),
            console: VecDeque::new(),
            files: VecDeque::new(),
            notifies: VecDeque::new(),
            next_notify: 1,
            bridge: false,
            files_out: Exports::default(),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    pub fn stats(&self) -> TelemetryStats {
        let r = self.registry.stats();
        TelemetryStats {
            series: self.registry.series_count() as u64,
            points: r.accepted,
            refused: r.refused,
            rules: self.rules.rules().len() as u64,
            exports_dropped: self.files_out.dropped,
            alerts_firing: self.rules.firing() as u64,
            heap_bytes: self.registry.heap_bytes() as u64,
            ..self.stats
        }
    }

    /// Points the kernel could not keep (its drain reports them).
    pub fn kernel_dropped(&mut self, points: u64) {
        self.stats.kernel_dropped += points;
    }

    /// Replaces the rules with those of `text` (a rule file); on an error
    /// the old rules stay. Alerts of removed or changed rules resolve.
    pub fn set_rules(&mut self, text: &str, now_ms: u64) -> Result<usize, rules::RuleError> {
        let parsed = rules::parse(text)?;
        let n = parsed.len();
        let alerts = self.rules.replace(now_ms, parsed);
        self.apply_objectives();
        self.alerts(alerts);
        Ok(n)
    }

    /// Reads [`RULES_PATH`] from `store` into the rules.
    pub fn load_rules(&mut self, store: &mut dyn Store, now_ms: u64) -> TelemetryResponse {
        let text = match read_text(store, RULES_PATH) {
            Ok(t) => t,
            Err(FsError::NotFound | FsError::NoFileSystem) => return TelemetryResponse::NoRuleFile,
            Err(e) => {
                return TelemetryResponse::RulesRejected {
                    line: 0,
                    reason: truncated(&format!("cannot read {RULES_PATH}: {e}")),
                };
            }
        };
        match self.set_rules(&text, now_ms) {
            Ok(n) => TelemetryResponse::Reloaded { rules: n as u32 },
            Err(e) => TelemetryResponse::RulesRejected {
                line: e.line as u32,
                reason: truncated(&format!("{}", e.reason)),
            },
        }
    }

    /// Reads [`ROUTES_PATH`] from `store` into the router (a file with an
    /// error is refused whole and the old routes stay).
    pub fn load_routes(&mut self, store: &mut dyn Store, now_ms: u64) -> TelemetryResponse {
        let text = match read_text(store, ROUTES_PATH) {
            Ok(t) => t,
            Err(FsError::NotFound | FsError::NoFileSystem) => return TelemetryResponse::NoRouteFile,
            Err(e) => {
                return TelemetryResponse::RulesRejected {
                    line: 0,
                    reason: truncated(&format!("cannot read {ROUTES_PATH}: {e}")),
                };
            }
        };
        self.set_routes(&text, now_ms)
    }

    /// Replaces the routes with those of `text` (a route file).
    pub fn set_routes(&mut self, text: &str, now_ms: u64) -> TelemetryResponse {
        let rejected = |e: routes::ConfigError| TelemetryResponse::RulesRejected {
            line: e.line as u32,
            reason: truncated(&format!("{}", e.reason)),
        };
        let config = match routes::parse(text) {
            Ok(c) => c,
            Err(e) => return rejected(e),
        };
        let receivers = config.receivers.len() as u32;
        let count = count_routes(&config.root);
        let result = match &mut self.router {
            Some(r) => r.replace(now_ms, config),
            None => Router::new(config).map(|r| self.router = Some(r)),
        };
        if let Err(e) = result {
            return rejected(e);
        }
        self.route_lines = text
            .lines()
            .map(|l| l.trim_end())
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(String::from)
            .collect();
        TelemetryResponse::RoutesLoaded {
            receivers,
            routes: count,
        }
    }

    /// The table has a disk: points are written to it as JSON lines.
    pub fn set_disk(&mut self, present: bool) {
        self.files_out.enabled = present;
    }

    /// Whether the bridge is there (webhooks go through it).
    pub fn set_bridge(&mut self, connected: bool) {
        self.bridge = connected;
    }

    /// Lines for the console receiver, oldest first.
    pub fn drain_console(&mut self) -> impl Iterator<Item = String> + '_ {
        self.console.drain(..)
    }

    /// A point of a job, checked already by its sender ([`MetricPoint::check`]).
    pub fn on_point(&mut self, job_id: u64, ts_ms: u64, point: &MetricPoint, now_ms: u64) {
        let mut tags: HVec<(&str, &str), TAGS_MAX> = HVec::new();
        for t in &point.tags {
            let _ = tags.push((t.key.as_str(), t.value.as_str()));
        }
        let p = Point {
            name: &point.name,
            kind: point.kind,
            value: point.value,
            step: point.step,
            ts_ms,
            tags: &tags,
            buckets: (!point.buckets.is_empty()).then_some(&point.buckets[..]),
        };
        let before = self.registry.series_count();
        if let Err(e) = self.registry.add(job_id, p) {
            self.refused(job_id, point, e);
            return;
        }
        if self.registry.series_count() != before
            && let Some(mode) = self.rules.objective(&point.name)
        {
            // The series was just made: it is there.
            let _ = self.registry.set_objective(job_id, &point.name, &tags, objective(mode));
        }
        self.files_out.add(job_id, ts_ms, point);
        let alerts = self
            .rules
            .on_point(now_ms, job_id, &point.name, &tags, point.value, point.step);
        self.alerts(alerts);
    }

    /// Output (a log chunk) of a job: its stall clocks restart.
    pub fn on_output(&mut self, job_id: u64, now_ms: u64) {
        let alerts = self.rules.on_output(now_ms, job_id);
        self.alerts(alerts);
    }

    /// A state change of a job: an event, and the rules learn that it runs
    /// or has ended.
    pub fn on_transition(&mut self, job_id: u64, from: JobState, to: JobState, now_ms: u64) {
        let severity = match to {
            JobState::Failed | JobState::Lost | JobState::TimedOut => Severity::Warning,
            _ => Severity::Info,
        };
        self.publish(
            EventBody::new(EventKind::Job, severity, job_id, "opsd")
                .label("from", from.as_str())
                .label("to", to.as_str()),
        );
        let alerts = if to == JobState::Running {
            self.rules.on_job_started(now_ms, job_id)
        } else if to.is_terminal() {
            self.files_out.job_ended();
            self.rules.on_job_ended(now_ms, job_id)
        } else {
            Vec::new()
        };
        self.alerts(alerts);
    }

    /// Time: the rules' timers, the router's due notifications, the file
    /// receivers' lines (written through `store`).
    pub fn tick(&mut self, now_ms: u64, store: Option<&mut dyn Store>) {
        let alerts = self.rules.tick(now_ms);
        self.alerts(alerts);
        let notifications = self.router.as_mut().map(|r| r.tick(now_ms)).unwrap_or_default();
        for n in &notifications {
            let Some(receiver) = self.router.as_ref().and_then(|r| r.receiver(&n.receiver)) else {
                continue;
            };
            let delivery = routes::render(receiver, n, EXTERNAL_URL);
            self.deliver(delivery);
        }
        if let Some(store) = store {
            self.files_out.flush(store, now_ms);
            while let Some((path, mut line)) = self.files.pop_front() {
                line.push('\n');
                if store.append(&path, line.as_bytes()).is_err() {
                    self.route_stats.undelivered += 1;
                }
            }
        } else {
            self.route_stats.undelivered += self.files.len() as u64;
            self.files.clear();
        }
    }

    fn deliver(&mut self, delivery: Delivery) {
        match delivery {
            Delivery::Console { line } if self.console.len() < DELIVERIES_MAX => self.console.push_back(line),
            Delivery::File { path, line } if self.files.len() < DELIVERIES_MAX => self.files.push_back((path, line)),
            Delivery::Webhook { url, body }
                if self.bridge && self.notifies.len() < DELIVERIES_MAX && body.len() <= NOTIFY_BODY_MAX =>
            {
                let (Ok(url), Ok(body)) = (
                    heapless::String::try_from(url.as_str()),
                    HVec::from_slice(body.as_bytes()),
                ) else {
                    self.route_stats.undelivered += 1;
                    return;
                };
                let id = self.next_notify;
                self.next_notify += 1;
                self.notifies.push_back(LinkMessage::Notify {
                    id,
                    url,
                    body: alloc::boxed::Box::new(body),
                });
            }
            _ => self.route_stats.undelivered += 1,
        }
    }

    pub fn next_deadline(&self) -> Option<u64> {
        let router = self.router.as_ref().and_then(Router::next_deadline);
        [self.rules.next_deadline(), router].into_iter().flatten().min()
    }

    /// A job's series go (its record was evicted).
    pub fn forget_job(&mut self, job_id: u64) {
        self.registry.remove_job(job_id);
        self.files_out.forget_job(job_id);
        self.refusals.retain(|(j, _, _)| *j != job_id);
    }

    /// The bridge's word on a webhook notification: a failure is an event.
    pub fn on_notified(&mut self, id: u64, delivered: bool, status: u16, attempts: u16, error: &str) {
        if delivered {
            self.route_stats.webhooks_delivered += 1;
            return;
        }
        self.route_stats.webhooks_failed += 1;
        self.publish(
            EventBody::new(EventKind::Alert, Severity::Warning, 0, "bridge")
                .label("notification", &format!("{id}"))
                .label("state", "undelivered")
                .field("status", &format!("{status}"))
                .field("attempts", &format!("{attempts}"))
                .field("message", error),
        );
    }

    /// Events to publish, oldest first.
    pub fn drain_published(&mut self) -> impl Iterator<Item = EventBody> + '_ {
        self.published.drain(..)
    }

    /// Events given back after a failed publication count as dropped.
    pub fn publish_failed(&mut self, n: u64) {
        self.stats.events_dropped += n;
    }

    /// Queues the Prometheus text of one job's series (or all) for the
    /// bridge, in `ExportChunk`s of `id`. A text over [`EXPORT_MAX`] is cut
    /// at a line's end and ends with a `# truncated` comment.
    pub fn export(&mut self, id: u32, job_id: Option<u64>) {
        let found = job_id.is_none_or(|j| self.registry.series_of_job(j).next().is_some());
        let mut text = if found {
            prom::render_to_string(
                &self.registry,
                prom::Options {
                    job_id,
                    timestamps: false,
                },
            )
        } else {
            String::new()
        };
        if text.len() > EXPORT_MAX {
            let cut = text[..EXPORT_MAX - 64].rfind('\n').map_or(0, |i| i + 1);
            text.truncate(cut);
            text.push_str("# truncated: the export is larger than opsd sends\n");
        }
        // Beyond the queue's bound: not answered (the bridge times out).
        if self.exports.len() + text.len() / EXPORT_CHUNK_MAX + 1 > EXPORT_CHUNKS_MAX {
            return;
        }
        let bytes = text.as_bytes();
        let mut chunks = bytes.chunks(EXPORT_CHUNK_MAX).peekable();
        if chunks.peek().is_none() {
            self.exports.push_back(export_chunk(id, true, found, &[]));
        }
        while let Some(c) = chunks.next() {
            let last = chunks.peek().is_none();
            self.exports.push_back(export_chunk(id, last, found, c));
        }
    }

    /// The next message for the bridge: a webhook request, else a part
    /// of an export.
    pub fn pop_link(&mut self) -> Option<LinkMessage> {
        self.notifies.pop_front().or_else(|| self.exports.pop_front())
    }

    /// Answers a query (`store`: the table's disk, for `ReloadRules`).
    pub fn handle(
        &mut self,
        request: TelemetryRequest,
        store: Option<&mut dyn Store>,
        now_ms: u64,
    ) -> TelemetryResponse {
        match request {
            TelemetryRequest::Series { job_id, name, after } => {
                let matches = |s: &SeriesRef<'_>| {
                    job_id.is_none_or(|j| s.job_id == j) && name.as_ref().is_none_or(|n| s.name == n.as_str())
                };
                let mut entries = HVec::new();
                let mut it = self.registry.all_series().filter(matches).skip(after as usize);
                for s in it.by_ref().take(SERIES_PAGE) {
                    let _ = entries.push(series_info(&s));
                }
                TelemetryResponse::Series {
                    entries,
                    more: it.next().is_some(),
                }
            }
            TelemetryRequest::History {
                job_id,
                name,
                tags,
                range,
                after,
            } => {
                let pairs: HVec<(&str, &str), TAGS_MAX> =
                    tags.iter().map(|t| (t.key.as_str(), t.value.as_str())).collect();
                let mut samples = HVec::new();
                let mut more = false;
                if let Some(series) = self.registry.series(job_id, &name, &pairs) {
                    let all: Vec<&telemetry_core::metrics::Sample> = match range {
                        HistoryRange::All => series.history().iter().collect(),
                        HistoryRange::Steps { from, to } => series.history_by_step(from..=to).collect(),
                        HistoryRange::Time { from_ms, to_ms } => series.history_by_time(from_ms..=to_ms).collect(),
                    };
                    let mut it = all.into_iter().skip(after as usize);
                    for s in it.by_ref().take(HISTORY_PAGE) {
                        let _ = samples.push(SampleInfo {
                            step: s.step,
                            ts_ms: s.ts_ms,
                            value: s.value,
                        });
                    }
                    more = it.next().is_some();
                }
                TelemetryResponse::History { samples, more }
            }
            TelemetryRequest::Rules { after } => {
                let firing = self.rules.firing_by_rule();
                let mut rules = HVec::new();
                let mut it = self.rules.rules().iter().enumerate().skip(after as usize);
                for (i, r) in it.by_ref().take(RULES_PAGE) {
                    let mut text = String::new();
                    let _ = write!(text, "{r}");
                    let _ = rules.push(RuleInfo {
                        name: truncated(&r.name),
                        text: truncated(&text),
                        firing: firing.get(i).copied().unwrap_or(0) as u32,
                    });
                }
                TelemetryResponse::Rules {
                    rules,
                    more: it.next().is_some(),
                }
            }
            TelemetryRequest::ReloadRules => match store {
                Some(store) => self.load_rules(store, now_ms),
                None => TelemetryResponse::NoRuleFile,
            },
            TelemetryRequest::Routes { after } => {
                let mut lines = HVec::new();
                let mut it = self.route_lines.iter().skip(after as usize);
                for l in it.by_ref().take(RULES_PAGE) {
                    let _ = lines.push(truncated(l));
                }
                TelemetryResponse::Routes {
                    lines,
                    more: it.next().is_some(),
                    stats: self.route_stats(),
                }
            }
            TelemetryRequest::ReloadRoutes => match store {
                Some(store) => self.load_routes(store, now_ms),
                None => TelemetryResponse::NoRouteFile,
            },
            TelemetryRequest::Stats => TelemetryResponse::Stats(self.stats()),
            // Answered by the artifact store (crate::artifacts) before this.
            TelemetryRequest::Artifacts { .. }
            | TelemetryRequest::ArtifactPin { .. }
            | TelemetryRequest::ArtifactCheck { .. }
            | TelemetryRequest::ReloadArtifactPolicy => TelemetryResponse::ArtifactError {
                reason: truncated("no artifact store"),
            },
        }
    }

    fn publish(&mut self, body: EventBody) {
        if self.published.len() >= PUBLISH_MAX {
            self.published.pop_front();
            self.stats.events_dropped += 1;
        }
        self.published.push_back(body);
    }

    /// A refused point: an event once per job, series name and error.
    fn refused(&mut self, job_id: u64, point: &MetricPoint, error: MetricError) {
        let key = (job_id, String::from(point.name.as_str()), error as u8);
        if self.refusals.contains(&key) || self.refusals.len() >= REFUSALS_MAX {
            return;
        }
        self.refusals.insert(key);
        self.publish(
            EventBody::new(EventKind::Metric, Severity::Warning, job_id, "opsd")
                .label("metric", &point.name)
                .label("error", error_name(error))
                .field("message", error.as_str()),
        );
    }

    fn alerts(&mut self, alerts: Vec<Alert>) {
        for a in alerts {
            if let Some(r) = &mut self.router {
                r.on_alert(a.at_ms, &a);
            }
            self.publish(alert_event(&a));
        }
    }

    /// The router's counters.
    pub fn route_stats(&self) -> RouteStats {
        let r = self.router.as_ref().map(Router::stats).unwrap_or_default();
        RouteStats {
            notifications: r.notifications,
            suppressed: r.suppressed,
            ..self.route_stats
        }
    }

    /// Series the rules have an objective for take it (after a reload).
    fn apply_objectives(&mut self) {
        // (job, name, tags, objective) of each series to change.
        type Todo = (u64, String, Vec<(String, String)>, Objective);
        let mut todo: Vec<Todo> = Vec::new();
        for s in self.registry.all_series() {
            if let Some(mode) = self.rules.objective(s.name) {
                let tags = s
                    .series
                    .tags()
                    .map(|(k, v)| (String::from(k), String::from(v)))
                    .collect();
                todo.push((s.job_id, String::from(s.name), tags, objective(mode)));
            }
        }
        for (job, name, tags, obj) in todo {
            let pairs: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let _ = self.registry.set_objective(job, &name, &pairs, obj);
        }
    }
}

fn count_routes(r: &routes::Route) -> u32 {
    1 + r.routes.iter().map(count_routes).sum::<u32>()
}

fn objective(mode: Mode) -> Objective {
    match mode {
        Mode::Min => Objective::Min,
        Mode::Max => Objective::Max,
    }
}

fn export_chunk(id: u32, last: bool, found: bool, bytes: &[u8]) -> LinkMessage {
    LinkMessage::ExportChunk {
        id,
        last,
        found,
        // `bytes` is at most EXPORT_CHUNK_MAX long.
        text: alloc::boxed::Box::new(HVec::from_slice(bytes).unwrap_or_default()),
    }
}

fn series_info(s: &SeriesRef<'_>) -> SeriesInfo {
    let sum = s.series.summary();
    SeriesInfo {
        job_id: s.job_id,
        name: truncated(s.name),
        kind: s.series.kind(),
        tags: s
            .series
            .tags()
            .map(|(k, v)| Tag {
                key: truncated(k),
                value: truncated(v),
            })
            .collect(),
        count: sum.count,
        last: sum.last,
        last_step: sum.last_step,
        last_ts_ms: sum.last_ts_ms,
        min: sum.min,
        max: sum.max,
        best: sum.best,
        best_step: sum.best_step,
        minimize: sum.objective == Objective::Min,
    }
}

/// The snake_case name of a refusal (an event's `error` label).
pub fn error_name(e: MetricError) -> &'static str {
    match e {
        MetricError::NameInvalid => "name_invalid",
        MetricError::NameTooLong => "name_too_long",
        MetricError::TooManyTags => "too_many_tags",
        MetricError::TagTooLong => "tag_too_long",
        MetricError::TagKeyInvalid => "tag_key_invalid",
        MetricError::TagKeyDuplicate => "tag_key_duplicate",
        MetricError::TagValueEmpty => "tag_value_empty",
        MetricError::NanInCounter => "nan_in_counter",
        MetricError::CounterDecreased => "counter_decreased",
        MetricError::NonFiniteInHistogram => "non_finite_in_histogram",
        MetricError::KindChanged => "kind_changed",
        MetricError::NameClash => "name_clash",
        MetricError::HistogramWithoutBuckets => "histogram_without_buckets",
        MetricError::BucketsWithoutHistogram => "buckets_without_histogram",
        MetricError::BucketsUnsorted => "buckets_unsorted",
        MetricError::TooManyBuckets => "too_many_buckets",
        MetricError::BucketsChanged => "buckets_changed",
        MetricError::TooManySeries => "too_many_series",
    }
}

/// An alert as an event: labels `alertname`, `rule_type`, `metric`,
/// `state`, the series' tags and the rule's labels; fields `value`, `step`,
/// `summary`. The severity is the rule's `severity` label, else `info` for
/// `new_best` and `warning` for the others.
fn alert_event(a: &Alert) -> EventBody {
    let severity = a
        .labels
        .iter()
        .find(|(k, _)| k == "severity")
        .and_then(|(_, v)| Severity::from_name(v))
        .unwrap_or(if a.kind == RuleType::NewBest {
            Severity::Info
        } else {
            Severity::Warning
        });
    let mut body = EventBody::new(EventKind::Alert, severity, a.job_id, "rules")
        .label("alertname", &a.rule)
        .label("rule_type", a.kind.as_str())
        .label("metric", &a.metric)
        .label(
            "state",
            match a.state {
                AlertState::Firing => "firing",
                AlertState::Resolved => "resolved",
            },
        );
    for (k, v) in a.tags.iter().chain(a.labels.iter()) {
        body = body.label(k, v);
    }
    if let Some(v) = a.value {
        body = body.field("value", &format!("{v}"));
    }
    if let Some(s) = a.step {
        body = body.field("step", &format!("{s}"));
    }
    body.field("summary", &a.summary)
}

/// A whole small file as text.
fn read_text(store: &mut dyn Store, path: &str) -> Result<String, FsError> {
    let size = store.size(path)?;
    if size > RULES_FILE_MAX {
        return Err(FsError::FileTooLarge);
    }
    let mut buf = alloc::vec![0u8; size as usize];
    let mut at = 0;
    while at < buf.len() {
        match store.read_at(path, at as u64, &mut buf[at..])? {
            0 => break,
            n => at += n,
        }
    }
    buf.truncate(at);
    String::from_utf8(buf).map_err(|_| FsError::InvalidArgument)
}
