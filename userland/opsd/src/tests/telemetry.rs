//! The telemetry wiring: points, outputs and state changes reach the
//! registry and the rules; alerts and job changes come out as events; the
//! rule file is read from the disk; exports go out over the link.

use std::string::String as StdString;
use std::vec::Vec as StdVec;

use aether_abi::event::{EventBody, EventKind};
use aether_abi::metric::{MetricKind, MetricPoint};
use aether_abi::telemetry::{TelemetryRequest, TelemetryResponse};

use super::persist::{MemStore, boot};
use super::*;

const RULES: &str = "\
val_best:  new_best val_loss mode=min min_delta=0.001
val_flat:  plateau val_loss mode=min patience=3
hung:      stall * after=2m
slow:      sustained_dip throughput factor=0.5 baseline=5 for=3
nan_loss:  anomaly loss nan=true labels: severity=critical
";

fn telemetry(h: &mut H, req: TelemetryRequest, now: u64) -> TelemetryResponse {
    match h.reply(JobRequest::Telemetry(req), now) {
        Ok(JobResponse::Telemetry(t)) => t,
        other => panic!("{other:?}"),
    }
}

/// A connected table on a disk holding `rules` as the rule file, rules
/// loaded.
fn with_rules(rules: &str) -> (H, MemStore) {
    let store = MemStore::default();
    store.put("/ops/rules.conf", rules.as_bytes());
    let mut h = boot(&store, Config::default(), 0);
    h.jobs.on_bridge_connected(0);
    h.after();
    let n = rules.lines().filter(|l| !l.trim().is_empty()).count() as u32;
    assert_eq!(
        telemetry(&mut h, TelemetryRequest::ReloadRules, 0),
        TelemetryResponse::Reloaded { rules: n }
    );
    (h, store)
}

fn running_host(h: &mut H, now: u64) -> u64 {
    let id = h.start(host_spec("trainer"), now);
    h.out();
    h.link(started(id, now), now);
    id
}

fn metric(h: &mut H, job_id: u64, name: &str, value: f64, step: u64, now: u64) {
    let mut p = MetricPoint::new(name, MetricKind::Gauge, value).unwrap();
    p.step = Some(step);
    h.link(
        LinkMessage::Metric {
            job_id,
            ts_ms: now,
            offset: step,
            point: p,
        },
        now,
    );
}

fn published(h: &mut H) -> StdVec<EventBody> {
    h.jobs.telemetry_mut().drain_published().collect()
}

/// The alerts among events, as (rule, state).
fn alerts(events: &[EventBody]) -> StdVec<(StdString, StdString)> {
    events
        .iter()
        .filter(|e| e.kind == EventKind::Alert)
        .map(|e| {
            (
                e.get_label("alertname").unwrap().into(),
                e.get_label("state").unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn three_new_bests_then_one_plateau() {
    let (mut h, _) = with_rules(RULES);
    let id = running_host(&mut h, 10);
    let kinds: StdVec<_> = published(&mut h).iter().map(|e| e.kind).collect();
    assert!(kinds.iter().all(|k| *k == EventKind::Job), "{kinds:?}");
    // The first value sets the mark; three improve on it; three do not.
    for (step, v) in [0.9, 0.7, 0.5, 0.4, 0.4, 0.6, 0.45].into_iter().enumerate() {
        metric(&mut h, id, "val_loss", v, step as u64, 100 + step as u64);
    }
    let events = published(&mut h);
    let got = alerts(&events);
    let want: StdVec<(StdString, StdString)> = [
        ("val_best", "firing"),
        ("val_best", "firing"),
        ("val_best", "firing"),
        ("val_flat", "firing"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);
    let best = events
        .iter()
        .find(|e| e.get_label("alertname") == Some("val_best"))
        .unwrap();
    assert_eq!(best.job_id, id);
    assert_eq!(best.get_label("metric"), Some("val_loss"));
    assert_eq!(best.get_field("value"), Some("0.7"));
    // The summary knows the objective from the rules: lower is better.
    match telemetry(
        &mut h,
        TelemetryRequest::Series {
            job_id: Some(id),
            name: None,
            after: 0,
        },
        200,
    ) {
        TelemetryResponse::Series { entries, more } => {
            assert!(!more);
            assert_eq!(entries.len(), 1);
            let s = &entries[0];
            assert_eq!(
                (s.count, s.best, s.best_step, s.minimize),
                (7, Some(0.4), Some(3), true)
            );
            assert_eq!((s.last, s.last_step), (0.45, Some(6)));
        }
        other => panic!("{other:?}"),
    }
    // History by step and by time.
    let history = |h: &mut H, range| match telemetry(
        h,
        TelemetryRequest::History {
            job_id: id,
            name: "val_loss".try_into().unwrap(),
            tags: heapless::Vec::new(),
            range,
            after: 0,
        },
        200,
    ) {
        TelemetryResponse::History { samples, more } => {
            assert!(!more);
            samples.iter().map(|s| s.value).collect::<StdVec<f64>>()
        }
        other => panic!("{other:?}"),
    };
    use aether_abi::telemetry::HistoryRange;
    assert_eq!(history(&mut h, HistoryRange::All).len(), 7);
    assert_eq!(history(&mut h, HistoryRange::Steps { from: 2, to: 4 }), [0.5, 0.4, 0.4]);
    assert_eq!(
        history(
            &mut h,
            HistoryRange::Time {
                from_ms: 105,
                to_ms: 106
            }
        ),
        [0.6, 0.45]
    );
    assert!(history(&mut h, HistoryRange::Steps { from: 50, to: 60 }).is_empty());
    // A new best resolves the plateau.
    metric(&mut h, id, "val_loss", 0.1, 7, 300);
    assert_eq!(
        alerts(&published(&mut h)),
        [
            ("val_best".into(), "firing".into()),
            ("val_flat".into(), "resolved".into())
        ]
    );
}

#[test]
fn a_nan_loss_raises_one_anomaly_until_it_clears() {
    let (mut h, _) = with_rules(RULES);
    let id = running_host(&mut h, 10);
    published(&mut h);
    for step in 0..5 {
        metric(&mut h, id, "loss", f64::NAN, step, 100 + step);
    }
    let events = published(&mut h);
    assert_eq!(alerts(&events), [("nan_loss".into(), "firing".into())]);
    let e = events.iter().find(|e| e.kind == EventKind::Alert).unwrap();
    assert_eq!(e.severity, aether_abi::event::Severity::Critical);
    metric(&mut h, id, "loss", 0.3, 6, 200);
    assert_eq!(alerts(&published(&mut h)), [("nan_loss".into(), "resolved".into())]);
}

#[test]
fn a_silent_run_stalls_and_output_resolves_it() {
    let (mut h, _) = with_rules(RULES);
    let id = running_host(&mut h, 1_000);
    published(&mut h);
    let deadline = h.jobs.next_deadline().unwrap();
    assert_eq!(deadline, 1_000 + 120_000);
    h.tick(deadline - 1);
    assert!(alerts(&published(&mut h)).is_empty());
    h.tick(deadline);
    assert_eq!(alerts(&published(&mut h)), [("hung".into(), "firing".into())]);
    h.link(chunk(id, Stream::Stdout, 0, b"alive\n"), deadline + 5);
    assert_eq!(alerts(&published(&mut h)), [("hung".into(), "resolved".into())]);
}

#[test]
fn a_halved_throughput_dips_and_recovers() {
    let (mut h, _) = with_rules(RULES);
    let id = running_host(&mut h, 10);
    published(&mut h);
    let mut step = 0;
    let mut feed = |h: &mut H, v: f64, n: usize| {
        for _ in 0..n {
            metric(h, id, "throughput", v, step, 100 + step);
            step += 1;
        }
    };
    feed(&mut h, 1000.0, 5);
    feed(&mut h, 480.0, 2);
    assert!(alerts(&published(&mut h)).is_empty(), "two points are not yet `for=3`");
    feed(&mut h, 480.0, 3);
    assert_eq!(alerts(&published(&mut h)), [("slow".into(), "firing".into())]);
    feed(&mut h, 990.0, 1);
    assert_eq!(alerts(&published(&mut h)), [("slow".into(), "resolved".into())]);
}

#[test]
fn an_ended_job_resolves_its_alerts_and_state_changes_are_events() {
    let (mut h, _) = with_rules(RULES);
    let id = running_host(&mut h, 10);
    metric(&mut h, id, "loss", f64::NAN, 1, 20);
    h.link(exited(id, 0, 30), 30);
    let events = published(&mut h);
    assert_eq!(
        alerts(&events),
        [
            ("nan_loss".into(), "firing".into()),
            ("nan_loss".into(), "resolved".into())
        ]
    );
    let moves: StdVec<(&str, &str)> = events
        .iter()
        .filter(|e| e.kind == EventKind::Job)
        .map(|e| (e.get_label("from").unwrap(), e.get_label("to").unwrap()))
        .collect();
    assert_eq!(moves, [("PENDING", "RUNNING"), ("RUNNING", "SUCCEEDED")]);
}

#[test]
fn points_are_written_as_json_lines_per_job_and_name() {
    let (mut h, store) = with_rules("");
    let id = running_host(&mut h, 10);
    metric(&mut h, id, "val_loss", 0.5, 1, 20);
    metric(&mut h, id, "val_loss", f64::NAN, 2, 30);
    let mut p = MetricPoint::new("acc", MetricKind::Gauge, 0.75).unwrap();
    p.tags
        .push(aether_abi::metric::Tag {
            key: "split".try_into().unwrap(),
            value: "v\"al".try_into().unwrap(),
        })
        .unwrap();
    h.link(
        LinkMessage::Metric {
            job_id: id,
            ts_ms: 40,
            offset: 9,
            point: p,
        },
        40,
    );
    // Nothing yet within the second; all of it once the job ends.
    h.tick(50);
    assert_eq!(store.file(&format!("/ops/metrics/{id}/val_loss.jsonl")), None);
    h.link(exited(id, 0, 60), 60);
    h.tick(61);
    let text =
        |name: &str| StdString::from_utf8(store.file(&format!("/ops/metrics/{id}/{name}.jsonl")).unwrap()).unwrap();
    assert_eq!(
        text("val_loss"),
        "{\"ts_ms\":20,\"step\":1,\"kind\":\"gauge\",\"value\":0.5,\"tags\":{}}\n\
         {\"ts_ms\":30,\"step\":2,\"kind\":\"gauge\",\"value\":\"NaN\",\"tags\":{}}\n"
    );
    assert_eq!(
        text("acc"),
        "{\"ts_ms\":40,\"step\":null,\"kind\":\"gauge\",\"value\":0.75,\"tags\":{\"split\":\"v\\\"al\"}}\n"
    );
}

#[test]
fn a_bad_rule_file_is_refused_and_the_old_rules_stay() {
    let (mut h, store) = with_rules(RULES);
    store.put(
        "/ops/rules.conf",
        b"ok: new_best loss\nbad: plateau val_loss patince=3\n",
    );
    match telemetry(&mut h, TelemetryRequest::ReloadRules, 5) {
        TelemetryResponse::RulesRejected { line, reason } => {
            assert_eq!(line, 2);
            assert!(reason.contains("patince"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    match telemetry(&mut h, TelemetryRequest::Rules { after: 0 }, 5) {
        TelemetryResponse::Rules { rules, more } => {
            assert!(!more);
            let names: StdVec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
            assert_eq!(names, ["val_best", "val_flat", "hung", "slow", "nan_loss"]);
            assert!(
                rules[0].text.starts_with("val_best: new_best val_loss"),
                "{}",
                rules[0].text
            );
        }
        other => panic!("{other:?}"),
    }
    // Not UTF-8, and no file at all: clear answers, rules unchanged.
    store.put("/ops/rules.conf", &[0xff, 0xfe]);
    assert!(matches!(
        telemetry(&mut h, TelemetryRequest::ReloadRules, 6),
        TelemetryResponse::RulesRejected { line: 0, .. }
    ));
    assert_eq!(h.jobs.telemetry().rules().rules().len(), 5);
    let mut bare = H::connected(Config::default());
    assert_eq!(
        telemetry(&mut bare, TelemetryRequest::ReloadRules, 0),
        TelemetryResponse::NoRuleFile
    );
}

#[test]
fn refused_points_are_reported_once_per_series_and_error() {
    let (mut h, _) = with_rules("");
    let id = running_host(&mut h, 10);
    published(&mut h);
    for (v, step) in [(10.0, 1), (5.0, 2), (4.0, 3)] {
        let mut p = MetricPoint::new("seen", MetricKind::Counter, v).unwrap();
        p.step = Some(step);
        h.link(
            LinkMessage::Metric {
                job_id: id,
                ts_ms: 20,
                offset: step,
                point: p,
            },
            20,
        );
    }
    let events = published(&mut h);
    let refusals: StdVec<_> = events.iter().filter(|e| e.kind == EventKind::Metric).collect();
    assert_eq!(refusals.len(), 1, "{events:?}");
    assert_eq!(refusals[0].get_label("error"), Some("counter_decreased"));
    let stats = h.jobs.telemetry().stats();
    assert_eq!((stats.points, stats.refused), (1, 2));
}

#[test]
fn an_export_goes_out_in_chunks_that_join_to_the_text() {
    let (mut h, _) = with_rules("");
    let id = running_host(&mut h, 10);
    // Histograms of 32 buckets: a few KiB of text each.
    for i in 0..40 {
        let mut p = MetricPoint::new("layer_norm", MetricKind::Histogram, i as f64).unwrap();
        p.buckets = (0..32).map(|b| b as f64 * 2.0).collect();
        p.tags
            .push(aether_abi::metric::Tag {
                key: "layer".try_into().unwrap(),
                value: heapless::String::try_from(format!("l{i:04}").as_str()).unwrap(),
            })
            .unwrap();
        h.link(
            LinkMessage::Metric {
                job_id: id,
                ts_ms: 20,
                offset: i,
                point: p,
            },
            20,
        );
    }
    h.out();
    h.link(
        LinkMessage::Export {
            id: 7,
            job_id: Some(id),
        },
        30,
    );
    h.link(
        LinkMessage::Export {
            id: 8,
            job_id: Some(id + 1),
        },
        30,
    );
    let mut text = StdVec::new();
    let mut lasts = StdVec::new();
    let mut unknown = None;
    for msg in h.out() {
        match msg {
            LinkMessage::ExportChunk {
                id: 7,
                last,
                found,
                text: t,
            } => {
                assert!(found);
                lasts.push(last);
                text.extend_from_slice(&t);
            }
            LinkMessage::ExportChunk {
                id: 8,
                last,
                found,
                text,
                ..
            } => unknown = Some((last, found, text.len())),
            other => panic!("{other:?}"),
        }
    }
    assert!(lasts.len() > 1, "{lasts:?}");
    assert!(lasts.iter().rev().skip(1).all(|l| !l) && lasts.last() == Some(&true));
    let text = StdString::from_utf8(text).unwrap();
    let want =
        telemetry_core::prom::render_to_string(h.jobs.telemetry().registry(), telemetry_core::prom::Options::job(id));
    assert_eq!(text, want);
    assert!(text.contains(&format!("layer_norm_sum{{job_id=\"{id}\",layer=\"l0039\"}} 39")));
    assert_eq!(unknown, Some((true, false, 0)));
}

const ROUTES: &str = "\
receiver con  console
receiver log  file path=/ops/alerts.jsonl rate=off
receiver hook webhook url=http://127.0.0.1:9/alerts
route receiver=con group_by=alertname,job_id group_wait=0s group_interval=1s
  route {severity=critical} receiver=hook
  route {alertname=val_best} receiver=log continue
  route {alertname=val_best} receiver=con
";

#[test]
fn alerts_are_routed_to_the_console_a_file_and_a_webhook() {
    let (mut h, store) = with_rules(RULES);
    store.put("/ops/routes.conf", ROUTES.as_bytes());
    assert_eq!(
        telemetry(&mut h, TelemetryRequest::ReloadRoutes, 0),
        TelemetryResponse::RoutesLoaded {
            receivers: 3,
            routes: 4
        }
    );
    let id = running_host(&mut h, 10);
    h.out();
    metric(&mut h, id, "val_loss", 0.9, 0, 100);
    metric(&mut h, id, "val_loss", 0.5, 1, 110);
    metric(&mut h, id, "loss", f64::NAN, 2, 120);
    h.tick(130);
    // val_best (a new best) goes to the file and, as `continue` says, on
    // to the console; the NaN (critical) to the webhook.
    let lines = std::string::String::from_utf8(store.file("/ops/alerts.jsonl").unwrap()).unwrap();
    assert_eq!(lines.lines().count(), 1, "{lines}");
    assert!(
        lines.contains("\"alertname\":\"val_best\"") && lines.contains("\"status\":\"firing\""),
        "{lines}"
    );
    let console: StdVec<StdString> = h.jobs.telemetry_mut().drain_console().collect();
    assert_eq!(console.len(), 1, "{console:?}");
    assert!(console[0].contains("new best 0.5"), "{console:?}");
    let hooks: StdVec<LinkMessage> = h.out();
    let [LinkMessage::Notify { id: nid, url, body }] = hooks.as_slice() else {
        panic!("{hooks:?}")
    };
    assert_eq!(url.as_str(), "http://127.0.0.1:9/alerts");
    let body = core::str::from_utf8(body).unwrap();
    assert!(
        body.contains("\"version\":\"4\"") && body.contains("\"alertname\":\"nan_loss\""),
        "{body}"
    );
    // The bridge gave up: counted, and an event says so.
    published(&mut h);
    h.link(
        LinkMessage::Notified {
            id: *nid,
            delivered: false,
            status: 0,
            attempts: 6,
            error: "connection refused".try_into().unwrap(),
        },
        200,
    );
    let events = published(&mut h);
    assert!(
        events.iter().any(|e| e.get_label("state") == Some("undelivered")),
        "{events:?}"
    );
    match telemetry(&mut h, TelemetryRequest::Routes { after: 0 }, 200) {
        TelemetryResponse::Routes { lines, more, stats } => {
            assert!(!more);
            assert_eq!(lines.len(), 7);
            assert_eq!((stats.webhooks_failed, stats.notifications), (1, 3));
        }
        other => panic!("{other:?}"),
    }
    // The same alert firing again is deduplicated: nothing new is sent.
    metric(&mut h, id, "loss", f64::NAN, 3, 300);
    h.tick(2_000);
    assert!(h.out().is_empty());
    // A bad route file is refused with its line; the routes stay.
    store.put("/ops/routes.conf", b"receiver con console\nroute receiver=nobody\n");
    match telemetry(&mut h, TelemetryRequest::ReloadRoutes, 2_100) {
        TelemetryResponse::RulesRejected { line, reason } => assert_eq!(line, 2, "{reason}"),
        other => panic!("{other:?}"),
    }
    match telemetry(&mut h, TelemetryRequest::Routes { after: 0 }, 2_100) {
        TelemetryResponse::Routes { lines, .. } => assert_eq!(lines.len(), 7),
        other => panic!("{other:?}"),
    }
}
