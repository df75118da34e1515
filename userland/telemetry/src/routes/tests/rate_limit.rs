//! The receivers' token buckets: a flapping alert cannot flood a chat,
//! what is dropped is counted and reported, receivers catch up.

use std::collections::BTreeSet;
use std::string::{String, ToString};
use std::vec::Vec;

use super::*;

const CHAT: &str = "\
receiver chat webhook url=https://graph.facebook.com/v21.0/1/messages body=chat to=15551234567 burst=3 rate=1/20s
";

#[test]
fn a_flapping_alert_cannot_flood_a_chat() {
    let mut r = router(
        &[
            CHAT,
            "route receiver=chat group_wait=0s group_interval=1ms repeat_interval=1h\n",
        ]
        .concat(),
    );
    let mut sent = Vec::new();
    // 1000 flaps in a minute (firing, resolved, firing, ...), opsd ticking
    // after each and in between.
    for i in 0..1000u64 {
        let t = i * 60;
        let state = if i % 2 == 0 { Firing } else { Resolved };
        send(&mut r, &alert("flappy", 1, state, t, &[]));
        sent.extend(r.tick(t));
        sent.extend(r.tick(t + 30));
    }
    // At most burst + 60 s / 20 s notifications.
    assert!(sent.len() <= 3 + 3, "{}", sent.len());
    assert!(sent.len() >= 3);
    let suppressed = r.stats().suppressed;
    assert!(suppressed > 100, "{suppressed}");
    // Later, with tokens back: the next notification carries the count of
    // those dropped since the last one that passed.
    send(&mut r, &alert("calm", 1, Firing, 5 * MIN, &[]));
    let last = r.tick(5 * MIN);
    assert_eq!(last.len(), 1);
    sent.extend(last);
    let reported: u64 = sent.iter().map(|n| n.suppressed).sum();
    assert_eq!(reported, suppressed);
    let n = sent.last().unwrap();
    assert!(n.suppressed > 0);
    let body = chat_body(n, "15551234567", DEFAULT_CHAT_TEMPLATE);
    let text = json_check::parse(&body).unwrap();
    let text = text.get("text").get("body").str().to_string();
    assert!(
        text.ends_with(&std::format!(
            "\n({} earlier notifications suppressed by the rate limit)",
            n.suppressed
        )),
        "{text}"
    );
    assert_eq!(r.stats().notifications, sent.len() as u64);
}

#[test]
fn many_groups_to_one_receiver_share_its_bucket_and_catch_up() {
    let mut r = router(
        &[
            CHAT,
            "route receiver=chat group_wait=0s group_interval=1s group_by=...\n",
        ]
        .concat(),
    );
    for job in 0..10 {
        send(&mut r, &alert("a", job, Firing, 0, &[]));
    }
    let mut delivered: Vec<(u64, String)> = Vec::new();
    for t in (0..=200).map(|s| s * S) {
        for n in r.tick(t) {
            delivered.push((t, label(&n.alerts[0].labels, "job_id").unwrap().to_string()));
        }
    }
    // Three at once, then one every 20 s, each group once.
    let times: Vec<u64> = delivered.iter().map(|(t, _)| *t / S).collect();
    assert_eq!(times, [0, 0, 0, 20, 40, 60, 80, 100, 120, 140]);
    let jobs: BTreeSet<&str> = delivered.iter().map(|(_, j)| j.as_str()).collect();
    assert_eq!(jobs.len(), 10);
    // The refused tries, one a second per waiting group, were counted.
    assert!(r.stats().suppressed > 7 * 20);
}

#[test]
fn a_thousand_series_in_a_minute_get_burst_plus_rate_notifications() {
    let mut r = router(
        &[
            CHAT,
            "route receiver=chat group_wait=0s group_interval=1m group_by=...\n",
        ]
        .concat(),
    );
    let mut sent = 0;
    for i in 0..1000u64 {
        let t = i * 60;
        let mut a = alert("dip", 1, Firing, t, &[]);
        a.tags = pairs(&[("series", &i.to_string())]);
        send(&mut r, &a);
        sent += r.tick(t).len();
    }
    assert!(sent <= 3 + 3, "{sent}");
    // Every series was tried once in the minute; those refused are counted.
    assert_eq!(r.stats().suppressed + sent as u64, 1000);
    // All held: those sent fire on, those refused wait for their next try.
    assert_eq!(r.groups(), 1000);
}

#[test]
fn rate_off_and_buckets_per_receiver() {
    let mut r = router(
        "receiver free console rate=off
receiver tight console burst=1 rate=1/1h
route receiver=free group_wait=0s group_by=...
  route {team=ops} receiver=tight group_by=...
",
    );
    for job in 0..500 {
        send(&mut r, &alert("a", job, Firing, 0, &[]));
        send(&mut r, &alert("a", job, Firing, 0, &[("team", "ops")]));
    }
    let notes = r.tick(0);
    let count = |name: &str| notes.iter().filter(|n| n.receiver == name).count();
    assert_eq!((count("free"), count("tight")), (500, 1));
    assert_eq!(r.stats().suppressed, 499);
}

#[test]
fn a_replaced_receiver_keeps_its_bucket_and_its_count() {
    let text = [
        CHAT,
        "route receiver=chat group_wait=0s group_interval=1s group_by=...\n",
    ]
    .concat();
    let mut r = router(&text);
    for job in 0..5 {
        send(&mut r, &alert("a", job, Firing, 0, &[]));
    }
    assert_eq!(r.tick(0).len(), 3);
    assert_eq!(r.stats().suppressed, 2);
    r.replace(S, parse(&text).unwrap()).unwrap();
    // No new tokens from the reload.
    assert!(r.tick(S).is_empty());
    let notes = r.tick(20 * S);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].suppressed, 4);
}
