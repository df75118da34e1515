//! opsd's telemetry queries (docs/telemetry.md): what the console (and
//! later the HTTP API) asks of the metrics registry and the alert rules,
//! through the `JOB` call as `JobRequest::Telemetry`.

use heapless::{String, Vec};
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

use crate::artifact::{ArtifactInfo, ArtifactKind};
use crate::metric::{MetricKind, NAME_MAX, TAGS_MAX, Tag};

/// Series per `Series` page.
pub const SERIES_PAGE: usize = 4;
/// Samples per `History` page.
pub const HISTORY_PAGE: usize = 128;
/// Rules per `Rules` page.
pub const RULES_PAGE: usize = 8;
/// A rule as its file line shows it (cut to this).
pub const RULE_TEXT_MAX: usize = 256;
/// Why a rule file was refused (`line N: ...`, cut to this).
pub const REASON_MAX: usize = 200;

// Moved once per query, like `JobRequest` (whose largest variant is far
// larger).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum TelemetryRequest {
    /// Summaries of series in the registry's order (job, name, tags),
    /// from position `after` (0: the first), of one job and/or one name.
    Series {
        job_id: Option<u64>,
        name: Option<String<NAME_MAX>>,
        after: u32,
    },
    /// The kept history of one series (the newest points at full
    /// resolution, older ones thinned), oldest first, those in `range`,
    /// from position `after` among them.
    History {
        job_id: u64,
        name: String<NAME_MAX>,
        tags: Vec<Tag, TAGS_MAX>,
        range: HistoryRange,
        after: u32,
    },
    /// The alert rules and how many alerts each has firing, from position
    /// `after`.
    Rules {
        after: u32,
    },
    /// Read the rule file (`/ops/rules.conf`) again: a file with errors is
    /// refused whole and the rules stay as they were.
    ReloadRules,
    /// The route file's lines as loaded (comments and blank lines left
    /// out), from line `after`, and the router's counters.
    Routes {
        after: u32,
    },
    /// Read the route file (`/ops/routes.conf`) again (as `ReloadRules`).
    ReloadRoutes,
    /// Stored artifact versions (of one job, or all), from position
    /// `after`, in the order job, kind, name, version.
    Artifacts {
        job_id: Option<u64>,
        after: u32,
    },
    /// Pin (or unpin) a version: a pinned version is never collected.
    ArtifactPin {
        job_id: u64,
        kind: ArtifactKind,
        name: String<{ crate::artifact::NAME_MAX }>,
        selector: String<{ crate::artifact::SELECTOR_MAX }>,
        pin: bool,
    },
    /// One version's record, after checking its object's digest (its
    /// object path on the disk with it).
    ArtifactCheck {
        job_id: u64,
        kind: ArtifactKind,
        name: String<{ crate::artifact::NAME_MAX }>,
        selector: String<{ crate::artifact::SELECTOR_MAX }>,
    },
    /// Read the artifact policy file (`/ops/artifacts.conf`) again.
    ReloadArtifactPolicy,
    Stats,
}

/// Which kept points a `History` query wants (bounds inclusive).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum HistoryRange {
    #[default]
    All,
    /// Points whose step is in `from..=to` (points without a step are
    /// left out).
    Steps { from: u64, to: u64 },
    /// Points reported at `from_ms..=to_ms` (unix ms).
    Time { from_ms: u64, to_ms: u64 },
}

/// One series' summary (docs/telemetry.md, "Metrics").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, MaxSize)]
pub struct SeriesInfo {
    pub job_id: u64,
    pub name: String<NAME_MAX>,
    pub kind: MetricKind,
    pub tags: Vec<Tag, TAGS_MAX>,
    /// Points taken.
    pub count: u64,
    pub last: f64,
    pub last_step: Option<u64>,
    pub last_ts_ms: u64,
    /// NaN never counts for these (`None`: no number yet).
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub best: Option<f64>,
    pub best_step: Option<u64>,
    /// `true`: lower is better.
    pub minimize: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, MaxSize)]
pub struct SampleInfo {
    pub step: Option<u64>,
    pub ts_ms: u64,
    pub value: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, MaxSize)]
pub struct RuleInfo {
    pub name: String<64>,
    /// The rule as a line of the rule file.
    pub text: String<RULE_TEXT_MAX>,
    /// Alerts of this rule firing now (one per job and series).
    pub firing: u32,
}

/// The router's counters (docs/telemetry.md, "Routing").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct RouteStats {
    /// Notifications made, and of them dropped by a receiver's rate limit.
    pub notifications: u64,
    pub suppressed: u64,
    /// Webhook notifications the bridge delivered, and gave up on.
    pub webhooks_delivered: u64,
    pub webhooks_failed: u64,
    /// Notifications that could not be handed on (a file not written, a
    /// body too large, the bridge away).
    pub undelivered: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct TelemetryStats {
    pub series: u64,
    pub points: u64,
    /// Points the registry refused (a counter going down, a name changing
    /// kind, too many series).
    pub refused: u64,
    /// Points the kernel could not keep for opsd (its buffer was full).
    pub kernel_dropped: u64,
    pub rules: u64,
    pub alerts_firing: u64,
    /// Events opsd could not publish (its queue was full).
    pub events_dropped: u64,
    /// Registry memory, bytes (approximate).
    pub heap_bytes: u64,
    /// Points not written to `/ops/metrics` (a bound, a failed write).
    pub exports_dropped: u64,
}

// Moved once per answer, like `JobReply`.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, MaxSize)]
pub enum TelemetryResponse {
    Series {
        entries: Vec<SeriesInfo, SERIES_PAGE>,
        more: bool,
    },
    History {
        samples: Vec<SampleInfo, HISTORY_PAGE>,
        more: bool,
    },
    Rules {
        rules: Vec<RuleInfo, RULES_PAGE>,
        more: bool,
    },
    /// The rule file was read: this many rules now.
    Reloaded {
        rules: u32,
    },
    /// The rule file was refused (the old rules stay).
    RulesRejected {
        line: u32,
        reason: String<REASON_MAX>,
    },
    /// There is no rule file (no disk, or no `/ops/rules.conf`): no rules.
    NoRuleFile,
    Routes {
        lines: Vec<String<RULE_TEXT_MAX>, RULES_PAGE>,
        more: bool,
        stats: RouteStats,
    },
    /// The route file was read: receivers and routes now.
    RoutesLoaded {
        receivers: u32,
        routes: u32,
    },
    /// There is no route file: alerts go to the event bus only.
    NoRouteFile,
    Artifacts {
        entries: Vec<ArtifactInfo, { crate::artifact::LIST_PAGE }>,
        more: bool,
    },
    /// A pin changed (or was as asked already).
    Pinned {
        version: u32,
        pinned: bool,
    },
    /// The version's digest matched its object (`path`: where it is).
    Checked {
        info: ArtifactInfo,
        path: String<128>,
    },
    /// An artifact request that failed: no such artifact or version, a
    /// digest that does not match (never served), a bad name.
    ArtifactError {
        reason: String<REASON_MAX>,
    },
    /// The artifact policy file was read: rules now.
    PolicyLoaded {
        rules: u32,
    },
    Stats(TelemetryStats),
}
