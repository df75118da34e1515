//! Which receivers an alert reaches: matchers, first match, `continue`,
//! nesting, inheritance; its labels and fingerprint.

use std::string::ToString;
use std::vec;
use std::vec::Vec;

use super::*;

const RECEIVERS: &str = "\
receiver default console
receiver crit console
receiver team console
receiver val console
";

/// The receivers one alert (labels `labels`, job `job`) reaches in a
/// router for `routes` (every `group_wait` 0).
fn reached(routes: &str, rule: &str, job: u64, labels: &[(&str, &str)]) -> Vec<String> {
    let mut r = router(&[RECEIVERS, routes].concat());
    send(&mut r, &alert(rule, job, Firing, 0, labels));
    receivers(&r.tick(0)).into_iter().map(str::to_string).collect()
}

#[test]
fn the_first_matching_child_takes_the_alert() {
    let routes = "\
route receiver=default group_wait=0s
  route {severity=critical} receiver=crit
  route {severity=~crit*} receiver=team
  route {alertname=~val_*} receiver=val
";
    assert_eq!(reached(routes, "x", 1, &[("severity", "critical")]), ["crit"]);
    assert_eq!(reached(routes, "x", 1, &[("severity", "critic")]), ["team"]);
    assert_eq!(reached(routes, "val_flat", 1, &[("severity", "critical")]), ["crit"]);
    assert_eq!(reached(routes, "val_flat", 1, &[]), ["val"]);
    // No child matches: the parent takes it.
    assert_eq!(reached(routes, "train", 1, &[("severity", "info")]), ["default"]);
}

#[test]
fn continue_lets_later_siblings_match_too() {
    let routes = "\
route receiver=default group_wait=0s
  route {severity=critical} receiver=crit continue
  route {severity=~crit*} receiver=team
  route {alertname=~val_*} receiver=val
";
    assert_eq!(reached(routes, "x", 1, &[("severity", "critical")]), ["crit", "team"]);
    // `team` has no continue: `val` is not tried after it.
    assert_eq!(
        reached(routes, "val_a", 1, &[("severity", "critical")]),
        ["crit", "team"]
    );
    // A continue route that matched alone: the parent does not take it too.
    let routes = "\
route receiver=default group_wait=0s
  route {severity=critical} receiver=crit continue
  route {severity=warning} receiver=team
";
    assert_eq!(reached(routes, "x", 1, &[("severity", "critical")]), ["crit"]);
}

#[test]
fn nested_routes_take_the_deepest_match_and_fall_back_to_their_parent() {
    let routes = "\
route receiver=default group_wait=0s
  route {job_id=1} receiver=team
    route {severity=critical} receiver=crit
    route {alertname=~val_*}
  route {job_id=~*}
";
    assert_eq!(reached(routes, "x", 1, &[("severity", "critical")]), ["crit"]);
    assert_eq!(reached(routes, "x", 1, &[("severity", "warning")]), ["team"]);
    // The val_ route sets no receiver: its parent's (team).
    assert_eq!(reached(routes, "val_loss", 1, &[]), ["team"]);
    // job 2 matches `job_id=~*`, which inherits the root's receiver.
    assert_eq!(reached(routes, "x", 2, &[("severity", "critical")]), ["default"]);
}

#[test]
fn children_inherit_unset_values_through_the_tree() {
    let mut r = router(
        &[
            RECEIVERS,
            "route receiver=default group_by=alertname group_wait=10s group_interval=1m repeat_interval=1h
  route {severity=critical} receiver=crit
    route {job_id=1} group_wait=2s
",
        ]
        .concat(),
    );
    // job 1 critical: the grandchild, its own group_wait, the rest from the root.
    send(&mut r, &alert("a", 1, Firing, 0, &[("severity", "critical")]));
    // job 2 critical: the child, the root's group_wait.
    send(&mut r, &alert("a", 2, Firing, 0, &[("severity", "critical")]));
    assert_eq!(r.next_deadline(), Some(2 * S));
    let notes = r.tick(2 * S);
    assert_eq!(receivers(&notes), ["crit"]);
    assert_eq!(label(&notes[0].alerts[0].labels, "job_id"), Some("1"));
    // group_by alertname, inherited.
    assert_eq!(notes[0].group_labels, pairs(&[("alertname", "a")]));
    assert_eq!(
        notes[0].group_key,
        "{}/{severity=\"critical\"}/{job_id=\"1\"}:{alertname=\"a\"}"
    );
    assert!(r.tick(10 * S - 1).is_empty());
    let notes = r.tick(10 * S);
    assert_eq!(label(&notes[0].alerts[0].labels, "job_id"), Some("2"));
    assert_eq!(notes[0].group_key, "{}/{severity=\"critical\"}:{alertname=\"a\"}");
    // Both repeat after the root's repeat_interval.
    assert_eq!(r.next_deadline(), Some(2 * S + H));
}

#[test]
fn matchers_compare_missing_labels_as_empty() {
    let labels = pairs(&[("alertname", "val_flat"), ("job_id", "3"), ("severity", "")]);
    let m = |label: &str, op, value: &str| Matcher::new(label, op, value).matches(&labels);
    assert!(m("alertname", MatchOp::Eq, "val_flat"));
    assert!(!m("alertname", MatchOp::Ne, "val_flat"));
    assert!(m("alertname", MatchOp::Glob, "val_*"));
    assert!(m("alertname", MatchOp::NotGlob, "train_*"));
    // A missing label is "".
    assert!(m("team", MatchOp::Eq, ""));
    assert!(m("team", MatchOp::Ne, "ml"));
    assert!(m("team", MatchOp::Glob, "*"));
    assert!(!m("team", MatchOp::Glob, "?*"));
    assert_eq!(Matcher::new("a", MatchOp::NotGlob, "x\"y").to_string(), "a!~\"x\\\"y\"");
}

#[test]
fn globs_match_whole_values_with_star_as_any_run() {
    for (pattern, text, expected) in [
        ("", "", true),
        ("", "a", false),
        ("*", "", true),
        ("*", "anything", true),
        ("val_*", "val_loss", true),
        ("val_*", "xval_loss", false),
        ("*_loss", "val_loss", true),
        ("*_loss", "val_loss2", false),
        ("a*b*c", "abc", true),
        ("a*b*c", "aXbYbZc", true),
        ("a*b*c", "aXbYc_", false),
        ("**a**", "ba", true),
        ("a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
        ("é*ö", "éüö", true),
        ("?", "?", true),
        ("?", "x", false),
        ("[a]", "a", false),
    ] {
        assert_eq!(glob_match(pattern, text), expected, "{pattern:?} {text:?}");
    }
}

#[test]
fn an_alert_is_labelled_by_its_rule_series_and_job() {
    let mut a = alert(
        "val_flat",
        3,
        Firing,
        0,
        &[("severity", "warning"), ("alertname", "spoof")],
    );
    a.metric = "val_loss".to_string();
    a.tags = pairs(&[
        ("split", "val"),
        ("severity", "critical"),
        ("job_id", "9"),
        ("empty", ""),
    ]);
    assert_eq!(
        alert_labels(&a),
        pairs(&[
            ("alertname", "val_flat"),
            ("job_id", "3"),
            ("metric", "val_loss"),
            // The rule's severity over the tag's; the tag's empty value left out.
            ("severity", "warning"),
            ("split", "val"),
        ])
    );
}

#[test]
fn the_fingerprint_is_prometheus_fnv1a_of_the_sorted_labels() {
    // Values from an independent FNV-1a 64 (Python) over
    // name 0xff value 0xff ... with names sorted.
    assert_eq!(fingerprint(&[]), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fingerprint(&pairs(&[("a", "b")])), 0xd2b3_7181_9297_f98a);
    let labels = pairs(&[("alertname", "val_flat"), ("job_id", "3"), ("metric", "val_loss")]);
    assert_eq!(fingerprint(&labels), 0x4035_1b72_ff16_ab6c);
    // The labels decide, not the value, step, time or summary.
    let mut a = alert("val_flat", 3, Firing, 5, &[]);
    a.metric = "val_loss".to_string();
    let mut b = a.clone();
    (b.value, b.step, b.at_ms, b.summary) = (Some(9.0), None, 99, "other".to_string());
    assert_eq!(fingerprint(&alert_labels(&a)), 0x4035_1b72_ff16_ab6c);
    assert_eq!(fingerprint(&alert_labels(&b)), 0x4035_1b72_ff16_ab6c);
    // Separators keep `ab=c` and `a=bc` apart.
    assert_ne!(fingerprint(&pairs(&[("ab", "c")])), fingerprint(&pairs(&[("a", "bc")])));
}

#[test]
fn twin_routes_get_distinct_group_keys() {
    let mut r = router(
        &[
            RECEIVERS,
            "route receiver=default group_wait=0s
  route {severity=critical} receiver=crit continue
  route {severity=critical} receiver=team
",
        ]
        .concat(),
    );
    send(&mut r, &alert("x", 1, Firing, 0, &[("severity", "critical")]));
    let notes = r.tick(0);
    let keys: Vec<&str> = notes.iter().map(|n| n.group_key.as_str()).collect();
    assert_eq!(
        keys,
        vec!["{}/{severity=\"critical\"}/0:{}", "{}/{severity=\"critical\"}/1:{}"]
    );
}
