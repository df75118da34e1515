//! The router's acceptance scenarios (docs/telemetry.md, "Routing"): the
//! route file and its errors, routing, grouping and timing, dedup,
//! resolves, the rate limit under a flapping alert, the bodies (parsed
//! back), bounds, and random inputs.

mod bodies;
mod file;
mod grouping;
mod json_check;
mod random;
mod rate_limit;
mod routing;

use std::string::{String, ToString};
use std::vec::Vec;

use super::*;
use crate::rules::{Alert, AlertState, RuleType};

const S: u64 = 1000;
const MIN: u64 = 60 * S;
const H: u64 = 60 * MIN;

use AlertState::{Firing, Resolved};

/// A router for a route file that must parse.
fn router(text: &str) -> Router {
    Router::new(parse(text).unwrap()).unwrap()
}

/// An alert of rule `rule` (a `plateau`, which resolves) for job `job`'s
/// `loss`, with the rule's `labels`.
fn alert(rule: &str, job: u64, state: AlertState, at_ms: u64, labels: &[(&str, &str)]) -> Alert {
    Alert {
        rule: rule.to_string(),
        kind: RuleType::Plateau,
        job_id: job,
        metric: "loss".to_string(),
        tags: Vec::new(),
        state,
        value: Some(1.0),
        step: Some(10),
        at_ms,
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        summary: std::format!("job {job} loss: {rule} {}", state.as_str()),
    }
}

/// Gives `r` an alert at its own time.
fn send(r: &mut Router, a: &Alert) {
    r.on_alert(a.at_ms, a);
}

/// A notification in brief: receiver, status, alertnames and states.
type Brief = (String, AlertState, Vec<(String, AlertState)>);

fn brief(notes: &[Notification]) -> Vec<Brief> {
    notes
        .iter()
        .map(|n| {
            let alerts = n
                .alerts
                .iter()
                .map(|a| (label(&a.labels, "alertname").unwrap_or("").to_string(), a.state))
                .collect();
            (n.receiver.clone(), n.status, alerts)
        })
        .collect()
}

/// The receivers' names of `notes`.
fn receivers(notes: &[Notification]) -> Vec<&str> {
    notes.iter().map(|n| n.receiver.as_str()).collect()
}

/// Owned label pairs.
fn pairs(labels: &[(&str, &str)]) -> Labels {
    labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}
