//! Groups and their timing (group_wait, group_interval, repeat_interval),
//! dedup by fingerprint, resolves sent once, events, truncation, bounds,
//! replacing the configuration, and the rule engine feeding the router.

use std::string::ToString;
use std::vec;
use std::vec::Vec;

use super::*;
use crate::rules::{Rules, parse as parse_rules};

const TIMED: &str = "\
receiver r console
route receiver=r group_by=alertname group_wait=30s group_interval=5m repeat_interval=1h
";

fn names_states(n: &Notification) -> Vec<(String, AlertState)> {
    n.alerts
        .iter()
        .map(|a| (label(&a.labels, "job_id").unwrap_or("").to_string(), a.state))
        .collect()
}

fn owned(v: &[(&str, AlertState)]) -> Vec<(String, AlertState)> {
    v.iter().map(|(s, st)| (s.to_string(), *st)).collect()
}

#[test]
fn group_wait_then_group_interval_then_repeat_interval() {
    let mut r = router(TIMED);
    assert_eq!(r.next_deadline(), None);
    send(&mut r, &alert("a", 1, Firing, 0, &[]));
    assert_eq!(r.next_deadline(), Some(30 * S));
    // Another alert of the group inside group_wait goes with the first.
    send(&mut r, &alert("a", 2, Firing, 10 * S, &[]));
    assert!(r.tick(30 * S - 1).is_empty());
    let notes = r.tick(30 * S);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].status, Firing);
    assert_eq!(names_states(&notes[0]), owned(&[("1", Firing), ("2", Firing)]));
    assert_eq!(notes[0].group_key, "{}:{alertname=\"a\"}");
    assert_eq!(notes[0].at_ms, 30 * S);
    // Nothing new: next is the repeat.
    assert_eq!(r.next_deadline(), Some(30 * S + H));
    // A new alert in the group: at most every group_interval.
    send(&mut r, &alert("a", 3, Firing, 60 * S, &[]));
    assert_eq!(r.next_deadline(), Some(30 * S + 5 * MIN));
    assert!(r.tick(30 * S + 5 * MIN - 1).is_empty());
    let notes = r.tick(30 * S + 5 * MIN);
    // The change first, then the others.
    assert_eq!(
        names_states(&notes[0]),
        owned(&[("3", Firing), ("1", Firing), ("2", Firing)])
    );
    let t = 30 * S + 5 * MIN;
    // A resolve: at the next interval, the resolved alert first, once.
    send(&mut r, &alert("a", 1, Resolved, t + MIN, &[]));
    let notes = r.tick(t + 5 * MIN);
    assert_eq!(
        names_states(&notes[0]),
        owned(&[("1", Resolved), ("2", Firing), ("3", Firing)])
    );
    assert_eq!(notes[0].status, Firing);
    assert_eq!(notes[0].alerts[0].ends_at_ms, Some(t + MIN));
    assert_eq!(notes[0].alerts[1].ends_at_ms, None);
    let t = t + 5 * MIN;
    assert_eq!(r.alerts(), 2);
    // Unchanged and firing: again after repeat_interval, without the resolved one.
    assert_eq!(r.next_deadline(), Some(t + H));
    assert!(r.tick(t + H - 1).is_empty());
    let notes = r.tick(t + H);
    assert_eq!(names_states(&notes[0]), owned(&[("2", Firing), ("3", Firing)]));
    let t = t + H;
    // All resolved: the group's status is resolved, then it is gone.
    send(&mut r, &alert("a", 2, Resolved, t + S, &[]));
    send(&mut r, &alert("a", 3, Resolved, t + 2 * S, &[]));
    let notes = r.tick(t + 5 * MIN);
    assert_eq!(notes[0].status, Resolved);
    assert_eq!(names_states(&notes[0]), owned(&[("2", Resolved), ("3", Resolved)]));
    assert_eq!((r.groups(), r.alerts(), r.next_deadline()), (0, 0, None));
    assert!(r.tick(t + 10 * H).is_empty());
    assert_eq!(r.stats().notifications, 5);
}

#[test]
fn group_by_splits_groups_and_all_labels_is_a_group_per_alert() {
    let mut r = router(
        "receiver r console
route receiver=r group_wait=0s group_by=alertname
  route {team=ml} group_by=...
  route {team=ops} group_by=-
",
    );
    for (rule, job, team) in [("a", 1, "x"), ("a", 2, "x"), ("b", 1, "x")] {
        send(&mut r, &alert(rule, job, Firing, 0, &[("team", team)]));
    }
    for (rule, job) in [("a", 1), ("a", 2), ("b", 1)] {
        send(&mut r, &alert(rule, job, Firing, 0, &[("team", "ml")]));
        send(&mut r, &alert(rule, job, Firing, 0, &[("team", "ops")]));
    }
    let notes = r.tick(0);
    let sizes: Vec<(String, usize)> = notes.iter().map(|n| (n.group_key.clone(), n.alerts.len())).collect();
    assert_eq!(
        sizes,
        vec![
            ("{}:{alertname=\"a\"}".to_string(), 2),
            ("{}:{alertname=\"b\"}".to_string(), 1),
            (
                "{}/{team=\"ml\"}:{alertname=\"a\", job_id=\"1\", metric=\"loss\", team=\"ml\"}".to_string(),
                1
            ),
            (
                "{}/{team=\"ml\"}:{alertname=\"a\", job_id=\"2\", metric=\"loss\", team=\"ml\"}".to_string(),
                1
            ),
            (
                "{}/{team=\"ml\"}:{alertname=\"b\", job_id=\"1\", metric=\"loss\", team=\"ml\"}".to_string(),
                1
            ),
            ("{}/{team=\"ops\"}:{}".to_string(), 3),
        ]
    );
    assert_eq!(r.groups(), 6);
}

#[test]
fn the_same_fingerprint_firing_again_is_not_a_new_alert() {
    let mut r = router(TIMED);
    let mut a = alert("a", 1, Firing, 0, &[]);
    send(&mut r, &a);
    assert_eq!(r.tick(30 * S).len(), 1);
    for i in 1..=100 {
        a.at_ms = 30 * S + i * S;
        a.value = Some(i as f64);
        a.summary = std::format!("summary {i}");
        send(&mut r, &a);
        assert!(r.tick(a.at_ms).is_empty());
    }
    assert_eq!(r.alerts(), 1);
    assert_eq!(r.next_deadline(), Some(30 * S + H));
    // The repeat carries the newest summary and the first start.
    let notes = r.tick(30 * S + H);
    assert_eq!(notes[0].alerts.len(), 1);
    assert_eq!(notes[0].alerts[0].annotations, pairs(&[("summary", "summary 100")]));
    assert_eq!(notes[0].alerts[0].starts_at_ms, 0);
}

#[test]
fn a_resolved_alert_is_sent_once_then_dropped() {
    let mut r = router(TIMED);
    send(&mut r, &alert("a", 1, Firing, 0, &[]));
    r.tick(30 * S);
    send(&mut r, &alert("a", 1, Resolved, MIN, &[]));
    // Resolved twice: nothing new.
    send(&mut r, &alert("a", 1, Resolved, 2 * MIN, &[]));
    let notes = r.tick(30 * S + 5 * MIN);
    assert_eq!(
        brief(&notes),
        [("r".to_string(), Resolved, vec![("a".to_string(), Resolved)])]
    );
    assert_eq!(notes[0].alerts[0].ends_at_ms, Some(MIN));
    assert_eq!(
        notes[0].alerts[0].annotations,
        pairs(&[("summary", "job 1 loss: a resolved")])
    );
    assert_eq!((r.groups(), r.alerts(), r.next_deadline()), (0, 0, None));
    for t in [H, 10 * H, 100 * H] {
        assert!(r.tick(t).is_empty());
    }
    // A late resolve of what is gone: counted, nothing sent.
    send(&mut r, &alert("a", 1, Resolved, 3 * H, &[]));
    assert_eq!(r.stats().unknown_resolved, 1);
    assert!(r.tick(4 * H).is_empty());
    // Firing again later is a new alert.
    send(&mut r, &alert("a", 1, Firing, 5 * H, &[]));
    assert_eq!(r.next_deadline(), Some(5 * H + 30 * S));
}

#[test]
fn an_alert_resolved_before_any_notification_is_never_sent() {
    let mut r = router(TIMED);
    send(&mut r, &alert("a", 1, Firing, 0, &[]));
    send(&mut r, &alert("a", 1, Resolved, 10 * S, &[]));
    // The group's flush drops it, unsent, and the group with it.
    assert_eq!(r.next_deadline(), Some(30 * S));
    assert!(r.tick(30 * S).is_empty());
    assert_eq!((r.groups(), r.alerts(), r.next_deadline()), (0, 0, None));
    // In a group that goes on: the others are sent without it.
    send(&mut r, &alert("a", 1, Firing, H, &[]));
    send(&mut r, &alert("a", 2, Firing, H, &[]));
    send(&mut r, &alert("a", 1, Resolved, H + S, &[]));
    let notes = r.tick(H + 30 * S);
    assert_eq!(names_states(&notes[0]), owned(&[("2", Firing)]));
    assert_eq!(r.stats().unknown_resolved, 0);
}

#[test]
fn a_flap_inside_one_interval_is_no_change() {
    let mut r = router(TIMED);
    send(&mut r, &alert("a", 1, Firing, 0, &[]));
    r.tick(30 * S);
    send(&mut r, &alert("a", 1, Resolved, MIN, &[]));
    send(&mut r, &alert("a", 1, Firing, 2 * MIN, &[]));
    // The receiver heard firing last, and it fires.
    assert_eq!(r.next_deadline(), Some(30 * S + H));
    assert!(r.tick(30 * S + 5 * MIN).is_empty());
    // The repeat shows the new start.
    let notes = r.tick(30 * S + H);
    assert_eq!(notes[0].alerts[0].starts_at_ms, 2 * MIN);
}

#[test]
fn new_best_events_are_sent_once_and_collapse_while_they_wait() {
    let mut r = router(TIMED);
    let best = |at_ms: u64, v: f64| {
        let mut a = alert("best", 1, Firing, at_ms, &[]);
        a.kind = RuleType::NewBest;
        a.summary = std::format!("new best {v}");
        a
    };
    send(&mut r, &best(0, 0.5));
    send(&mut r, &best(S, 0.4));
    let notes = r.tick(30 * S);
    assert_eq!(notes[0].alerts.len(), 1);
    assert_eq!(notes[0].alerts[0].annotations, pairs(&[("summary", "new best 0.4")]));
    // Sent once: never repeated, nothing held.
    assert_eq!((r.groups(), r.next_deadline()), (0, None));
    // A later one is a new alert (a new group, so group_wait again).
    send(&mut r, &best(MIN, 0.3));
    assert_eq!(r.next_deadline(), Some(MIN + 30 * S));
    assert_eq!(r.tick(MIN + 30 * S).len(), 1);
}

#[test]
fn truncation_sends_changes_first_and_the_rest_later() {
    let mut r = router(
        "receiver r console max_alerts=2 rate=off
route receiver=r group_wait=0s group_interval=1m repeat_interval=1h
",
    );
    for job in 1..=5 {
        send(&mut r, &alert("a", job, Firing, job, &[]));
    }
    let mut seen = Vec::new();
    let mut t = 10;
    for _ in 0..3 {
        let notes = r.tick(t);
        assert_eq!((notes[0].alerts.len(), notes[0].truncated), (2, 3));
        seen.extend(
            names_states(&notes[0])
                .into_iter()
                .filter(|(job, _)| !seen.contains(job))
                .map(|(job, _)| job)
                .collect::<Vec<_>>(),
        );
        t += MIN;
    }
    assert_eq!(seen, ["1", "2", "3", "4", "5"]);
    assert_eq!(r.stats().truncated, 3 + 3 + 3);
    // All heard: the next is the repeat (first two by start).
    assert_eq!(r.next_deadline(), Some(10 + 2 * MIN + H));
}

#[test]
fn bounds_drop_and_count_what_does_not_fit() {
    let limits = Limits {
        groups: 4,
        alerts: 10,
        alerts_per_group: 3,
    };
    let text = "receiver r console rate=off\nroute receiver=r group_wait=0s group_by=...\n";
    let mut r = Router::with_limits(parse(text).unwrap(), limits).unwrap();
    for job in 0..100 {
        send(&mut r, &alert("a", job, Firing, 0, &[]));
    }
    assert_eq!((r.groups(), r.alerts(), r.stats().dropped), (4, 4, 96));
    // Resolves of the dropped ones are unknown.
    send(&mut r, &alert("a", 50, Resolved, 0, &[]));
    assert_eq!(r.stats().unknown_resolved, 1);

    let text = "receiver r console rate=off\nroute receiver=r group_wait=0s group_by=alertname\n";
    let mut r = Router::with_limits(parse(text).unwrap(), limits).unwrap();
    for job in 0..10 {
        send(&mut r, &alert("a", job, Firing, 0, &[]));
    }
    assert_eq!((r.groups(), r.alerts(), r.stats().dropped), (1, 3, 7));
    for rule in ["b", "c", "d", "e", "f"] {
        for job in 0..3 {
            send(&mut r, &alert(rule, job, Firing, 0, &[]));
        }
    }
    // 10 alerts in all: a, b, c full (9), d holds one.
    assert_eq!((r.groups(), r.alerts()), (4, 10));
    assert!(r.tick(0).iter().all(|n| n.alerts.len() <= 3));

    // An alert too big is refused whole.
    let mut big = alert("big", 1, Firing, 0, &[]);
    big.tags = (0..40).map(|i| (std::format!("t{i}"), "v".to_string())).collect();
    send(&mut r, &big);
    let mut long = alert("long", 1, Firing, 0, &[]);
    long.labels = pairs(&[("note", &"x".repeat(LABEL_VALUE_MAX + 1))]);
    send(&mut r, &long);
    assert_eq!(r.stats().refused, 2);
    // A long summary is cut at a character.
    let mut r = router("receiver r console\nroute receiver=r group_wait=0s\n");
    let mut wordy = alert("wordy", 1, Firing, 0, &[]);
    wordy.summary = "é".repeat(SUMMARY_MAX);
    send(&mut r, &wordy);
    let notes = r.tick(0);
    let summary = label(&notes[0].alerts[0].annotations, "summary").unwrap();
    assert_eq!(summary.len(), SUMMARY_MAX);
}

#[test]
fn time_going_backwards_never_sends_early() {
    let mut r = router(TIMED);
    send(&mut r, &alert("a", 1, Firing, 100 * S, &[]));
    assert!(r.tick(50 * S).is_empty());
    assert!(r.tick(0).is_empty());
    assert!(r.tick(129 * S).is_empty());
    assert_eq!(r.tick(130 * S).len(), 1);
    // A tick from the past after a send: nothing.
    assert!(r.tick(0).is_empty());
}

#[test]
fn replacing_the_configuration_keeps_what_groups_announced() {
    let old = "receiver r console\nreceiver s console\n\
               route receiver=r group_by=alertname group_wait=30s group_interval=5m repeat_interval=1h\n";
    let mut r = router(old);
    send(&mut r, &alert("a", 1, Firing, 0, &[("team", "ml")]));
    send(&mut r, &alert("b", 1, Firing, 0, &[("team", "ops")]));
    assert_eq!(r.tick(30 * S).len(), 2);
    // The new tree sends team=ops to s; a stays where it was.
    let new = parse(
        "receiver r console\nreceiver s console\n\
         route receiver=r group_by=alertname group_wait=30s group_interval=5m repeat_interval=1h\n\
         \x20 route {team=ops} receiver=s\n",
    )
    .unwrap();
    r.replace(MIN, new).unwrap();
    assert_eq!(r.groups(), 2);
    // b's group is new (another key): group_wait from the replace.
    let notes = r.tick(MIN + 30 * S);
    assert_eq!(
        brief(&notes),
        [("s".to_string(), Firing, vec![("b".to_string(), Firing)])]
    );
    // a's group kept its timing: its repeat, not a resend.
    assert_eq!(r.next_deadline(), Some(30 * S + H));
    // And the resolve of a reaches r once.
    send(&mut r, &alert("a", 1, Resolved, 2 * MIN, &[("team", "ml")]));
    let notes = r.tick(30 * S + 5 * MIN);
    assert_eq!(
        brief(&notes),
        [("r".to_string(), Resolved, vec![("a".to_string(), Resolved)])]
    );
    // Stats carry over.
    assert_eq!(r.stats().notifications, 4);
}

#[test]
fn a_flapping_metric_through_the_rule_engine_reaches_the_receiver_once_per_interval() {
    let mut rules = Rules::new(parse_rules("boom: divergence loss above=5 labels: severity=critical\n").unwrap());
    let mut r = router(
        "receiver chat webhook url=https://h/x body=chat to=1 burst=100 rate=100/1s
route receiver=chat group_wait=10s group_interval=1m repeat_interval=1h
",
    );
    let mut sent = Vec::new();
    // 1000 points in a minute, every one crossing the threshold; opsd
    // ticks before each.
    for i in 0..1000u64 {
        let t = i * 60;
        sent.extend(r.tick(t));
        let v = if i % 2 == 0 { 10.0 } else { 0.0 };
        for a in rules.on_point(t, 1, "loss", &[], v, Some(i)) {
            r.on_alert(t, &a);
        }
    }
    assert_eq!(r.stats().received, 1000);
    sent.extend(r.tick(2 * MIN));
    // The state at the end of group_wait (firing: the tick at 10.02 s
    // came after a point above), and the state a group_interval later
    // (the last point resolved it): two notifications.
    assert_eq!(
        brief(&sent),
        [
            ("chat".to_string(), Firing, vec![("boom".to_string(), Firing)]),
            ("chat".to_string(), Resolved, vec![("boom".to_string(), Resolved)]),
        ]
    );
    assert_eq!(label(&sent[0].alerts[0].labels, "severity"), Some("critical"));
}
