//! The router: the compiled route tree, the groups and their timing, the
//! receivers' buckets, and the inputs that move them (the semantics and
//! decisions are in the header of `routes`).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::rules::{Alert, AlertState};

use super::bucket::Bucket;
use super::labels::{checked_alert_labels, fingerprint, label_set_string, matchers_string};
use super::{
    Config, ConfigError, DEFAULT_GROUP_INTERVAL_MS, DEFAULT_GROUP_WAIT_MS, DEFAULT_REPEAT_INTERVAL_MS, GroupBy, Labels,
    Matcher, Receiver, Route, SUMMARY_MAX,
};

/// The router's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Groups at most (all routes).
    pub groups: usize,
    /// Alerts held at most, over all groups (one in two groups is two).
    pub alerts: usize,
    /// Alerts of one group at most.
    pub alerts_per_group: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            groups: 1024,
            alerts: 4096,
            alerts_per_group: 256,
        }
    }
}

/// Counters since the router was made (kept across [`Router::replace`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Alerts given to [`Router::on_alert`].
    pub received: u64,
    /// Alerts refused for their size (too many labels, a label too long).
    pub refused: u64,
    /// Times an alert was not kept in a group for a [`Limits`] bound.
    pub dropped: u64,
    /// Resolves of alerts no group they route to holds (never seen, or
    /// dropped at a bound).
    pub unknown_resolved: u64,
    /// Notifications [`Router::tick`] returned.
    pub notifications: u64,
    /// Notifications the receivers' rate limits refused (dropped).
    pub suppressed: u64,
    /// Alerts left out of notifications by `max_alerts`.
    pub truncated: u64,
}

/// One alert in a notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifiedAlert {
    /// [`super::fingerprint`] of `labels`.
    pub fingerprint: u64,
    pub labels: Labels,
    /// `summary` (when not empty).
    pub annotations: Labels,
    pub starts_at_ms: u64,
    /// When it resolved (`None` while it fires).
    pub ends_at_ms: Option<u64>,
    pub state: AlertState,
}

/// What a receiver is to be told about one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// The [`Receiver::name`].
    pub receiver: String,
    /// Alertmanager's group key (module header, "Group keys").
    pub group_key: String,
    /// The group's `group_by` labels and their values.
    pub group_labels: Labels,
    /// `Firing` when any of `alerts` fires.
    pub status: AlertState,
    /// Changes first (module header), at most the receiver's `max_alerts`.
    pub alerts: Vec<NotifiedAlert>,
    /// Alerts of the group left out by `max_alerts`.
    pub truncated: usize,
    /// Notifications to this receiver its rate limit dropped since the
    /// previous one it passed.
    pub suppressed: u64,
    /// The tick's `now_ms`.
    pub at_ms: u64,
}

/// A route with everything inherited filled in.
struct Node {
    /// The route's part of the group key (`{}/{severity="critical"}`).
    key: String,
    matchers: Vec<Matcher>,
    /// Index in the configuration's receivers.
    receiver: usize,
    group_by: GroupBy,
    group_wait_ms: u64,
    group_interval_ms: u64,
    repeat_interval_ms: u64,
    continue_: bool,
    children: Vec<usize>,
}

/// An alert in a group.
#[derive(Clone)]
struct Entry {
    labels: Labels,
    summary: String,
    starts_at_ms: u64,
    ends_at_ms: Option<u64>,
    state: AlertState,
    /// Of a rule that never resolves: sent once, then dropped.
    event: bool,
}

/// One group of one route.
struct Group {
    node: usize,
    key: String,
    labels: Labels,
    alerts: BTreeMap<u64, Entry>,
    /// Fingerprints a notification announced firing (a subset of
    /// `alerts`' keys).
    announced: BTreeSet<u64>,
    created_ms: u64,
    last_flush_ms: Option<u64>,
    last_sent_ms: Option<u64>,
}

/// What a group keeps across [`Router::replace`].
struct Timing {
    created_ms: u64,
    last_flush_ms: Option<u64>,
    last_sent_ms: Option<u64>,
    announced: BTreeSet<u64>,
}

/// What an alert is to its group's receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum News {
    /// Not heard yet: firing and not announced, or resolved after it was.
    Change,
    /// Firing, and announced.
    Heard,
    /// Resolved and never announced: never sent, dropped at the next flush.
    Stale,
}

impl Group {
    fn news(&self, fp: u64, entry: &Entry) -> News {
        match (entry.state, self.announced.contains(&fp)) {
            (AlertState::Firing, false) | (AlertState::Resolved, true) => News::Change,
            (AlertState::Firing, true) => News::Heard,
            (AlertState::Resolved, false) => News::Stale,
        }
    }

    fn any(&self, news: News) -> bool {
        self.alerts.iter().any(|(&fp, e)| self.news(fp, e) == news)
    }

    /// When it is next to be flushed (module header, "Groups").
    fn due_at(&self, node: &Node) -> Option<u64> {
        let Some(last_flush) = self.last_flush_ms else {
            return Some(self.created_ms.saturating_add(node.group_wait_ms));
        };
        let next = last_flush.saturating_add(node.group_interval_ms);
        if self.any(News::Change) {
            Some(next)
        } else if self.any(News::Heard) {
            let repeat = self
                .last_sent_ms
                .unwrap_or(last_flush)
                .saturating_add(node.repeat_interval_ms);
            Some(next.max(repeat))
        } else if self.alerts.is_empty() {
            None
        } else {
            // Only stale alerts: a flush drops them (and the group).
            Some(next)
        }
    }
}

/// A group: the route's index and the group labels as written in its key.
type GroupId = (usize, String);

/// The router: see the module header of `routes`.
pub struct Router {
    config: Config,
    /// Depth-first, the root first.
    nodes: Vec<Node>,
    /// Per receiver, indexed as `config.receivers`.
    buckets: Vec<Bucket>,
    groups: BTreeMap<GroupId, Group>,
    /// Alerts in all groups.
    entries: usize,
    limits: Limits,
    stats: Stats,
}

impl Router {
    /// A router for `config` with the default [`Limits`], if
    /// [`Config::validate`] accepts it.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        Router::with_limits(config, Limits::default())
    }

    /// A router for `config` with `limits`.
    pub fn with_limits(config: Config, limits: Limits) -> Result<Self, ConfigError> {
        config.validate()?;
        let nodes = compile(&config);
        let buckets = config.receivers.iter().map(|r| Bucket::new(r.rate)).collect();
        Ok(Router {
            config,
            nodes,
            buckets,
            groups: BTreeMap::new(),
            entries: 0,
            limits,
            stats: Stats::default(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.config.receiver(name)
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Groups held now.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Alerts held now, over all groups.
    pub fn alerts(&self) -> usize {
        self.entries
    }

    /// The routes' indexes (depth-first, the root 0) an alert with
    /// `labels` goes to (module header, "Routing").
    fn route(&self, labels: &Labels) -> Vec<usize> {
        let mut out = Vec::new();
        self.route_into(0, labels, &mut out);
        out
    }

    /// Whether route `index` matches; if so, the routes under it (or it)
    /// that take the alert are pushed. Recursion is at most
    /// [`super::DEPTH_MAX`] deep ([`Config::validate`]).
    fn route_into(&self, index: usize, labels: &Labels, out: &mut Vec<usize>) -> bool {
        let Some(node) = self.nodes.get(index) else {
            return false;
        };
        if !node.matchers.iter().all(|m| m.matches(labels)) {
            return false;
        }
        let before = out.len();
        for &child in &node.children {
            let matched = self.route_into(child, labels, out);
            if matched && !self.nodes.get(child).is_some_and(|c| c.continue_) {
                break;
            }
        }
        if out.len() == before {
            out.push(index);
        }
        true
    }

    /// An alert from the rules: routed, grouped, deduplicated (nothing is
    /// sent before a [`Router::tick`]).
    pub fn on_alert(&mut self, now_ms: u64, alert: &Alert) {
        self.stats.received += 1;
        let Some(labels) = checked_alert_labels(alert) else {
            self.stats.refused += 1;
            return;
        };
        let fp = fingerprint(&labels);
        let summary = String::from(cut(&alert.summary, SUMMARY_MAX));
        let targets = self.route(&labels);
        match alert.state {
            AlertState::Firing => {
                let entry = Entry {
                    labels,
                    summary,
                    starts_at_ms: alert.at_ms,
                    ends_at_ms: None,
                    state: AlertState::Firing,
                    event: !alert.kind.resolves(),
                };
                for node in targets {
                    self.add(now_ms, node, fp, entry.clone(), None);
                }
            }
            AlertState::Resolved => {
                let mut known = false;
                for node in targets {
                    known |= self.resolve(node, &labels, fp, alert.at_ms, &summary);
                }
                if !known {
                    self.stats.unknown_resolved += 1;
                }
            }
        }
    }

    /// The group of route `node` that an alert with `labels` belongs to.
    fn group_id(&self, node: usize, labels: &Labels) -> (GroupId, Labels) {
        let group_labels = match self.nodes.get(node).map(|n| &n.group_by) {
            Some(GroupBy::All) => labels.clone(),
            Some(GroupBy::Labels(names)) => labels.iter().filter(|(k, _)| names.contains(k)).cloned().collect(),
            None => Labels::new(),
        };
        ((node, label_set_string(&group_labels)), group_labels)
    }

    /// Puts a firing (or, from [`Router::replace`], a resolved) alert into
    /// its group of route `node`, making the group if need be (with the
    /// `carried` timing of a group of the same receiver and key).
    fn add(
        &mut self,
        now_ms: u64,
        node: usize,
        fp: u64,
        entry: Entry,
        carried: Option<&BTreeMap<(String, String), Timing>>,
    ) {
        let (id, group_labels) = self.group_id(node, &entry.labels);
        if !self.groups.contains_key(&id) {
            if self.groups.len() >= self.limits.groups || self.entries >= self.limits.alerts {
                self.stats.dropped += 1;
                return;
            }
            let Some(n) = self.nodes.get(node) else {
                return;
            };
            let key = format!("{}:{}", n.key, id.1);
            let receiver = self.config.receivers.get(n.receiver).map_or("", |r| r.name.as_str());
            let timing = carried.and_then(|c| c.get(&(String::from(receiver), key.clone())));
            let group = Group {
                node,
                key,
                labels: group_labels,
                alerts: BTreeMap::new(),
                announced: timing.map(|t| t.announced.clone()).unwrap_or_default(),
                created_ms: timing.map_or(now_ms, |t| t.created_ms),
                last_flush_ms: timing.and_then(|t| t.last_flush_ms),
                last_sent_ms: timing.and_then(|t| t.last_sent_ms),
            };
            self.groups.insert(id.clone(), group);
        }
        let Some(group) = self.groups.get_mut(&id) else {
            return;
        };
        let full = group.alerts.len() >= self.limits.alerts_per_group || self.entries >= self.limits.alerts;
        match group.alerts.get_mut(&fp) {
            // The same alert firing again while it fires: not new.
            Some(e) if e.state == AlertState::Firing => e.summary = entry.summary,
            // Firing again after a resolve that was not sent yet.
            Some(e) => *e = entry,
            None if entry.state == AlertState::Resolved && !group.announced.contains(&fp) => {}
            None if full => self.stats.dropped += 1,
            None => {
                group.alerts.insert(fp, entry);
                self.entries += 1;
            }
        }
        if group.alerts.is_empty() {
            self.groups.remove(&id);
        }
    }

    /// Resolves the alert `fp` in its group of route `node`; whether the
    /// group held it.
    fn resolve(&mut self, node: usize, labels: &Labels, fp: u64, at_ms: u64, summary: &str) -> bool {
        let (id, _) = self.group_id(node, labels);
        let Some(group) = self.groups.get_mut(&id) else {
            return false;
        };
        let Some(entry) = group.alerts.get_mut(&fp) else {
            return false;
        };
        // Resolved twice: nothing new. (Resolved before it was announced, it
        // stays until the group's next flush, which drops it unsent: the
        // group's timing goes on, and a flapping alert is reported by its
        // state at the flush.)
        if entry.state == AlertState::Firing {
            entry.state = AlertState::Resolved;
            entry.ends_at_ms = Some(at_ms);
            entry.summary = String::from(summary);
        }
        true
    }

    /// When [`Router::tick`] next has something to do (`None`: nothing
    /// held). It may be in the past: tick now.
    pub fn next_deadline(&self) -> Option<u64> {
        self.groups
            .values()
            .filter_map(|g| self.nodes.get(g.node).and_then(|n| g.due_at(n)))
            .min()
    }

    /// The notifications due at `now_ms` (at most one per group, in the
    /// order of the groups' routes, then group labels); the receivers'
    /// rate limits applied.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Notification> {
        let due: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|(_, g)| {
                self.nodes
                    .get(g.node)
                    .and_then(|n| g.due_at(n))
                    .is_some_and(|at| at <= now_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        due.iter().filter_map(|id| self.flush(id, now_ms)).collect()
    }

    /// Drops group `id`'s stale alerts and sends the rest if its
    /// receiver's bucket has a token; marks what was sent as heard and
    /// drops what was sent for the last time.
    fn flush(&mut self, id: &GroupId, now_ms: u64) -> Option<Notification> {
        let group = self.groups.get_mut(id)?;
        let node = self.nodes.get(group.node)?;
        let receiver = self.config.receivers.get(node.receiver)?;
        let bucket = self.buckets.get_mut(node.receiver)?;
        group.last_flush_ms = Some(now_ms);
        // Changes first, then by start, then fingerprint.
        let mut order: Vec<(News, u64, u64)> = Vec::new();
        let mut stale = Vec::new();
        for (&fp, e) in &group.alerts {
            match group.news(fp, e) {
                News::Stale => stale.push(fp),
                news => order.push((news, e.starts_at_ms, fp)),
            }
        }
        for fp in &stale {
            group.alerts.remove(fp);
        }
        self.entries -= stale.len();
        if order.is_empty() {
            if group.alerts.is_empty() {
                self.groups.remove(id);
            }
            return None;
        }
        order.sort_unstable();
        let max = match receiver.max_alerts {
            0 => usize::MAX,
            n => n,
        };
        let truncated = order.len().saturating_sub(max);
        order.truncate(max);
        if !bucket.take(receiver.rate, now_ms) {
            bucket.suppressed += 1;
            self.stats.suppressed += 1;
            return None;
        }
        let suppressed = core::mem::take(&mut bucket.suppressed);
        let mut alerts = Vec::with_capacity(order.len());
        for (_, _, fp) in order {
            let Some(e) = group.alerts.get(&fp) else {
                continue;
            };
            let mut annotations = Labels::new();
            if !e.summary.is_empty() {
                annotations.push((String::from("summary"), e.summary.clone()));
            }
            alerts.push(NotifiedAlert {
                fingerprint: fp,
                labels: e.labels.clone(),
                annotations,
                starts_at_ms: e.starts_at_ms,
                ends_at_ms: e.ends_at_ms,
                state: e.state,
            });
            if e.state == AlertState::Firing && !e.event {
                group.announced.insert(fp);
            } else {
                // Resolved, or an event: sent once.
                group.alerts.remove(&fp);
                group.announced.remove(&fp);
                self.entries -= 1;
            }
        }
        group.last_sent_ms = Some(now_ms);
        let status = if alerts.iter().any(|a| a.state == AlertState::Firing) {
            AlertState::Firing
        } else {
            AlertState::Resolved
        };
        let notification = Notification {
            receiver: receiver.name.clone(),
            group_key: group.key.clone(),
            group_labels: group.labels.clone(),
            status,
            alerts,
            truncated,
            suppressed,
            at_ms: now_ms,
        };
        if group.alerts.is_empty() {
            self.groups.remove(id);
        }
        self.stats.notifications += 1;
        self.stats.truncated += truncated as u64;
        Some(notification)
    }

    /// Takes a new configuration (if [`Config::validate`] accepts it; else
    /// the old one stays) and routes every alert held through it (module
    /// header, "Replacing the configuration").
    pub fn replace(&mut self, now_ms: u64, config: Config) -> Result<(), ConfigError> {
        let mut next = Router::with_limits(config, self.limits)?;
        next.stats = self.stats;
        for (i, receiver) in next.config.receivers.iter().enumerate() {
            let old = self.config.receivers.iter().position(|o| o.name == receiver.name);
            if let (Some(old), Some(new)) = (old.and_then(|j| self.buckets.get(j)), next.buckets.get_mut(i)) {
                *new = old.carried(receiver.rate);
            }
        }
        // Every alert once (the same fingerprint in two groups is the same
        // alert), and each old group's timing by receiver and key.
        let mut alerts: BTreeMap<u64, Entry> = BTreeMap::new();
        let mut timings: BTreeMap<(String, String), Timing> = BTreeMap::new();
        for group in core::mem::take(&mut self.groups).into_values() {
            for (&fp, e) in &group.alerts {
                alerts.entry(fp).or_insert_with(|| e.clone());
            }
            let receiver = self
                .nodes
                .get(group.node)
                .and_then(|n| self.config.receivers.get(n.receiver))
                .map_or(String::new(), |r| r.name.clone());
            let timing = Timing {
                created_ms: group.created_ms,
                last_flush_ms: group.last_flush_ms,
                last_sent_ms: group.last_sent_ms,
                announced: group.announced,
            };
            timings.insert((receiver, group.key), timing);
        }
        for (fp, entry) in alerts {
            for node in next.route(&entry.labels) {
                next.add(now_ms, node, fp, entry.clone(), Some(&timings));
            }
        }
        for group in next.groups.values_mut() {
            let held = &group.alerts;
            group.announced.retain(|fp| held.contains_key(fp));
        }
        *self = next;
        Ok(())
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// What a route inherits from its parent.
struct Inherited<'a> {
    receiver: usize,
    group_by: &'a GroupBy,
    group_wait_ms: u64,
    group_interval_ms: u64,
    repeat_interval_ms: u64,
}

/// The tree, inheritance filled in, depth-first (the root 0).
fn compile(config: &Config) -> Vec<Node> {
    const NO_LABELS: &GroupBy = &GroupBy::Labels(Vec::new());
    let defaults = Inherited {
        receiver: 0,
        group_by: NO_LABELS,
        group_wait_ms: DEFAULT_GROUP_WAIT_MS,
        group_interval_ms: DEFAULT_GROUP_INTERVAL_MS,
        repeat_interval_ms: DEFAULT_REPEAT_INTERVAL_MS,
    };
    let mut nodes = Vec::new();
    push_node(&mut nodes, config, &config.root, &defaults, String::from("{}"));
    nodes
}

fn push_node(nodes: &mut Vec<Node>, config: &Config, route: &Route, parent: &Inherited<'_>, key: String) -> usize {
    let receiver = route
        .receiver
        .as_ref()
        .and_then(|name| config.receivers.iter().position(|r| &r.name == name))
        .unwrap_or(parent.receiver);
    let here = Inherited {
        receiver,
        group_by: route.group_by.as_ref().unwrap_or(parent.group_by),
        group_wait_ms: route.group_wait_ms.unwrap_or(parent.group_wait_ms),
        group_interval_ms: route.group_interval_ms.unwrap_or(parent.group_interval_ms).max(1),
        repeat_interval_ms: route.repeat_interval_ms.unwrap_or(parent.repeat_interval_ms).max(1),
    };
    let index = nodes.len();
    nodes.push(Node {
        key: key.clone(),
        matchers: route.matchers.clone(),
        receiver,
        group_by: here.group_by.clone(),
        group_wait_ms: here.group_wait_ms,
        group_interval_ms: here.group_interval_ms,
        repeat_interval_ms: here.repeat_interval_ms,
        continue_: route.continue_,
        children: Vec::new(),
    });
    let strings: Vec<String> = route.routes.iter().map(|r| matchers_string(&r.matchers)).collect();
    for (i, child) in route.routes.iter().enumerate() {
        let twin = strings.iter().enumerate().any(|(j, s)| j != i && *s == strings[i]);
        let child_key = if twin {
            format!("{key}/{}/{i}", strings[i])
        } else {
            format!("{key}/{}", strings[i])
        };
        let c = push_node(nodes, config, child, &here, child_key);
        nodes[index].children.push(c);
    }
    index
}
