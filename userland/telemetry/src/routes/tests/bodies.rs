//! The bodies: the Alertmanager webhook JSON (a golden string, and parsed
//! back by the checker), RFC 3339 times, the chat message, the console
//! line, and `render` per receiver kind.

use std::string::ToString;
use std::{format, vec};

use super::json_check::{Json, parse as parse_json};
use super::*;

fn alert_of(job: &str, state: AlertState, fp: u64, starts: u64, ends: Option<u64>, summary: &str) -> NotifiedAlert {
    NotifiedAlert {
        fingerprint: fp,
        labels: pairs(&[
            ("alertname", "val_flat"),
            ("job_id", job),
            ("metric", "val_loss"),
            ("severity", "critical"),
        ]),
        annotations: pairs(&[("summary", summary)]),
        starts_at_ms: starts,
        ends_at_ms: ends,
        state,
    }
}

fn sample() -> Notification {
    Notification {
        receiver: "hook".to_string(),
        group_key: "{}/{severity=\"critical\"}:{alertname=\"val_flat\"}".to_string(),
        group_labels: pairs(&[("alertname", "val_flat")]),
        status: Firing,
        alerts: vec![
            alert_of(
                "3",
                Firing,
                0x4035_1b72_ff16_ab6c,
                1_709_294_400_250,
                None,
                "job 3 val_loss: no new best for 10 points",
            ),
            alert_of(
                "4",
                Resolved,
                1,
                1_709_294_400_000,
                Some(1_709_294_460_000),
                "job 4 val_loss: new best 0.2",
            ),
        ],
        truncated: 0,
        suppressed: 0,
        at_ms: 1_709_294_470_000,
    }
}

#[test]
fn the_alertmanager_body_is_webhook_v4_byte_for_byte() {
    let golden = concat!(
        r#"{"receiver":"hook","status":"firing","alerts":["#,
        r#"{"status":"firing","labels":{"alertname":"val_flat","job_id":"3","metric":"val_loss","severity":"critical"},"#,
        r#""annotations":{"summary":"job 3 val_loss: no new best for 10 points"},"#,
        r#""startsAt":"2024-03-01T12:00:00.25Z","endsAt":"0001-01-01T00:00:00Z","#,
        r#""generatorURL":"http://10.0.2.2:8080/jobs/3/metrics","fingerprint":"40351b72ff16ab6c"},"#,
        r#"{"status":"resolved","labels":{"alertname":"val_flat","job_id":"4","metric":"val_loss","severity":"critical"},"#,
        r#""annotations":{"summary":"job 4 val_loss: new best 0.2"},"#,
        r#""startsAt":"2024-03-01T12:00:00Z","endsAt":"2024-03-01T12:01:00Z","#,
        r#""generatorURL":"http://10.0.2.2:8080/jobs/4/metrics","fingerprint":"0000000000000001"}],"#,
        r#""groupLabels":{"alertname":"val_flat"},"#,
        r#""commonLabels":{"alertname":"val_flat","metric":"val_loss","severity":"critical"},"#,
        r#""commonAnnotations":{},"externalURL":"http://10.0.2.2:8080/","version":"4","#,
        r#""groupKey":"{}/{severity=\"critical\"}:{alertname=\"val_flat\"}","truncatedAlerts":0}"#,
    );
    assert_eq!(alertmanager_json(&sample(), "http://10.0.2.2:8080/"), golden);
    // The rate limit's count, when there is one, goes last.
    let mut n = sample();
    (n.suppressed, n.truncated) = (7, 2);
    let body = alertmanager_json(&n, "");
    assert!(
        body.ends_with(r#""truncatedAlerts":2,"suppressedNotifications":7}"#),
        "{body}"
    );
    // Without an external URL the generator URL is empty.
    assert!(body.contains(r#""generatorURL":"","#));
}

/// The v4 shape, checked on a parsed body against the notification.
fn check_v4(body: &str, n: &Notification, external_url: &str) {
    let v = parse_json(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let mut keys = vec![
        "receiver",
        "status",
        "alerts",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "version",
        "groupKey",
        "truncatedAlerts",
    ];
    if n.suppressed > 0 {
        keys.push("suppressedNotifications");
    }
    assert_eq!(v.keys(), keys);
    assert_eq!(v.get("version").str(), "4");
    assert_eq!(v.get("receiver").str(), n.receiver);
    assert_eq!(v.get("status").str(), n.status.as_str());
    assert_eq!(v.get("groupKey").str(), n.group_key);
    assert_eq!(v.get("externalURL").str(), external_url);
    assert_eq!(v.get("truncatedAlerts").num(), n.truncated as f64);
    assert_eq!(v.get("groupLabels").string_pairs(), n.group_labels);
    let alerts = v.get("alerts").arr();
    assert_eq!(alerts.len(), n.alerts.len());
    for (a, ours) in alerts.iter().zip(&n.alerts) {
        assert_eq!(
            a.keys(),
            [
                "status",
                "labels",
                "annotations",
                "startsAt",
                "endsAt",
                "generatorURL",
                "fingerprint"
            ]
        );
        assert_eq!(a.get("status").str(), ours.state.as_str());
        assert_eq!(a.get("labels").string_pairs(), ours.labels);
        assert_eq!(a.get("annotations").string_pairs(), ours.annotations);
        assert_eq!(a.get("startsAt").str(), rfc3339(ours.starts_at_ms));
        let ends = ours.ends_at_ms.map_or("0001-01-01T00:00:00Z".to_string(), rfc3339);
        assert_eq!(a.get("endsAt").str(), ends);
        let fp = a.get("fingerprint").str();
        assert_eq!(fp.len(), 16);
        assert_eq!(u64::from_str_radix(fp, 16), Ok(ours.fingerprint));
    }
    // Common labels: those every alert has with the same value.
    let common = v.get("commonLabels").string_pairs();
    for (k, val) in &common {
        assert!(n.alerts.iter().all(|a| label(&a.labels, k) == Some(val.as_str())));
    }
    if let Some(first) = n.alerts.first() {
        let expected = first
            .labels
            .iter()
            .filter(|(k, val)| n.alerts.iter().all(|a| label(&a.labels, k) == Some(val.as_str())))
            .count();
        assert_eq!(common.len(), expected);
    }
}

#[test]
fn the_routers_bodies_parse_back_with_the_v4_shape() {
    let mut r = router(
        "receiver hook webhook url=http://10.0.2.2:8080/alerts max_alerts=3
route receiver=hook group_wait=0s group_interval=1m group_by=alertname
",
    );
    for job in 1..=5 {
        let mut a = alert("val_flat", job, Firing, job * S, &[("severity", "warning")]);
        a.tags = pairs(&[("split", "val")]);
        send(&mut r, &a);
    }
    let notes = r.tick(10 * S);
    assert_eq!((notes[0].alerts.len(), notes[0].truncated), (3, 2));
    check_v4(
        &alertmanager_json(&notes[0], "http://bridge:8080"),
        &notes[0],
        "http://bridge:8080",
    );
    send(
        &mut r,
        &alert("val_flat", 1, Resolved, 20 * S, &[("severity", "warning")]),
    );
    for n in r.tick(MIN + 10 * S) {
        check_v4(&alertmanager_json(&n, ""), &n, "");
    }
}

#[test]
fn hostile_strings_survive_the_round_trip() {
    let nasty = "q\"b\\s/n\nr\rt\tz\u{0}c\u{1f}d\u{7f}ls\u{2028}ps\u{2029}é😀</script>{}:,";
    let mut n = sample();
    n.receiver = nasty.to_string();
    n.group_key = nasty.to_string();
    n.group_labels = pairs(&[(nasty, nasty)]);
    n.suppressed = 1;
    for a in &mut n.alerts {
        a.labels.push(("zz".to_string(), nasty.to_string()));
        a.annotations = pairs(&[("summary", nasty)]);
    }
    let body = alertmanager_json(&n, nasty);
    // Nothing raw that JSON forbids, and JavaScript's line separators escaped.
    assert!(!body.chars().any(|c| c < ' ' || c == '\u{2028}' || c == '\u{2029}'));
    check_v4(&body, &n, nasty);
    let chat = chat_body(&n, nasty, "{summary}|{receiver}");
    let v = parse_json(&chat).unwrap();
    assert_eq!(v.get("to").str(), nasty);
    assert!(
        v.get("text")
            .get("body")
            .str()
            .starts_with(&format!("{nasty}\n{nasty}|{nasty}"))
    );
}

#[test]
fn times_are_rfc3339_as_go_writes_them() {
    for (ms, text) in [
        (0, "1970-01-01T00:00:00Z"),
        (1, "1970-01-01T00:00:00.001Z"),
        (10, "1970-01-01T00:00:00.01Z"),
        (1_709_294_400_250, "2024-03-01T12:00:00.25Z"),
        (951_782_400_000, "2000-02-29T00:00:00Z"),
        (68_169_600_000, "1972-02-29T00:00:00Z"),
        (1_234_567_890_123, "2009-02-13T23:31:30.123Z"),
        (1_700_000_000_100, "2023-11-14T22:13:20.1Z"),
        (4_102_444_800_000, "2100-01-01T00:00:00Z"),
        (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        // Beyond RFC 3339's four-digit years: the last time it can write.
        (u64::MAX, "9999-12-31T23:59:59.999Z"),
    ] {
        assert_eq!(rfc3339(ms), text, "{ms}");
    }
    // Every day from 1970 to 2400 against a plain calendar count.
    let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
    for day in 0..157_000u64 {
        assert_eq!(
            rfc3339(day * 86_400_000 + 86_399_000)[..19],
            format!("{y:04}-{m:02}-{d:02}T23:59:59")
        );
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let days_in = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m as usize - 1];
        d += 1;
        if d > days_in {
            (d, m) = (1, m + 1);
            if m > 12 {
                (m, y) = (1, y + 1);
            }
        }
    }
}

#[test]
fn the_chat_body_is_a_whatsapp_text_message() {
    let mut n = sample();
    n.suppressed = 2;
    let template = "[{status}] {alertname} (job {job_id}): {summary} | n={count} f={firing} r={resolved} \
                    s={suppressed} t={truncated} via {receiver} {{literal}} } {unknown}";
    let body = chat_body(&n, "15551234567", template);
    let v = parse_json(&body).unwrap();
    assert_eq!(v.keys(), ["messaging_product", "to", "type", "text"]);
    assert_eq!(v.get("messaging_product").str(), "whatsapp");
    assert_eq!(v.get("to").str(), "15551234567");
    assert_eq!(v.get("type").str(), "text");
    assert_eq!(v.get("text").keys(), ["body"]);
    assert_eq!(
        v.get("text").get("body").str(),
        "[firing] val_flat (job 3, 4): job 3 val_loss: no new best for 10 points\n\
         job 4 val_loss: new best 0.2 | n=2 f=1 r=1 s=2 t=0 via hook {literal} } {unknown}"
    );
    // The default template, with the notes it adds.
    (n.suppressed, n.truncated) = (5, 3);
    n.alerts.truncate(1);
    let body = chat_body(&n, "1", DEFAULT_CHAT_TEMPLATE);
    let v = parse_json(&body).unwrap();
    assert_eq!(
        v.get("text").get("body").str(),
        "[firing] val_flat (job 3): job 3 val_loss: no new best for 10 points\n\
         (+3 more alerts)\n\
         (5 earlier notifications suppressed by the rate limit)"
    );
    assert_eq!(
        body,
        "{\"messaging_product\":\"whatsapp\",\"to\":\"1\",\"type\":\"text\",\"text\":{\"body\":\
         \"[firing] val_flat (job 3): job 3 val_loss: no new best for 10 points\\n(+3 more alerts)\\n\
         (5 earlier notifications suppressed by the rate limit)\"}}"
    );
}

#[test]
fn a_long_chat_body_is_cut_to_the_limit() {
    let mut n = sample();
    n.alerts[0].annotations = pairs(&[("summary", &"ü".repeat(3 * CHAT_BODY_MAX))]);
    let body = chat_body(&n, "1", "{summary}");
    let text = parse_json(&body).unwrap().get("text").get("body").str().to_string();
    assert_eq!(text.chars().count(), CHAT_BODY_MAX);
    assert!(text.ends_with("üü…"));
    // At the limit exactly: untouched.
    n.alerts.truncate(1);
    n.alerts[0].annotations = pairs(&[("summary", &"x".repeat(CHAT_BODY_MAX))]);
    let body = chat_body(&n, "1", "{summary}");
    let text = parse_json(&body).unwrap().get("text").get("body").str().to_string();
    assert_eq!(text, "x".repeat(CHAT_BODY_MAX));
}

#[test]
fn the_console_line_and_render_per_receiver_kind() {
    let mut n = sample();
    n.alerts[1].annotations = pairs(&[("summary", "two\nlines")]);
    assert_eq!(
        console_line(&n),
        "alert firing receiver=hook alerts=2 truncated=0 suppressed=0 \
         group={}/{severity=\"critical\"}:{alertname=\"val_flat\"}: \
         job 3 val_loss: no new best for 10 points; two lines"
    );
    let console = Receiver::new("c", ReceiverKind::Console);
    assert_eq!(render(&console, &n, "x"), Delivery::Console { line: console_line(&n) });
    let file = Receiver::new(
        "f",
        ReceiverKind::File {
            path: "/ops/alerts.jsonl".to_string(),
        },
    );
    assert_eq!(
        render(&file, &n, "http://b"),
        Delivery::File {
            path: "/ops/alerts.jsonl".to_string(),
            line: alertmanager_json(&n, "http://b"),
        }
    );
    let Delivery::File { line, .. } = render(&file, &n, "http://b") else {
        unreachable!()
    };
    assert!(!line.contains('\n'));
    let hook = Receiver::new(
        "h",
        ReceiverKind::Webhook {
            url: "http://b/x".to_string(),
            body: WebhookBody::Alertmanager,
        },
    );
    assert_eq!(
        render(&hook, &n, "http://b"),
        Delivery::Webhook {
            url: "http://b/x".to_string(),
            body: alertmanager_json(&n, "http://b"),
        }
    );
    let chat = Receiver::new(
        "w",
        ReceiverKind::Webhook {
            url: "https://graph.facebook.com/v21.0/1/messages".to_string(),
            body: WebhookBody::Chat {
                to: "4915".to_string(),
                template: "{status}: {count}".to_string(),
            },
        },
    );
    let Delivery::Webhook { body, .. } = render(&chat, &n, "") else {
        unreachable!()
    };
    assert_eq!(
        parse_json(&body).unwrap().get("text").get("body"),
        &Json::Str("firing: 2".to_string())
    );
    assert_eq!(parse_json(&body).unwrap().get("to").str(), "4915");
}

#[test]
fn a_notification_without_alerts_still_reads() {
    let mut n = sample();
    n.alerts.clear();
    n.status = Resolved;
    check_v4(&alertmanager_json(&n, ""), &n, "");
    let v = parse_json(&chat_body(&n, "1", DEFAULT_CHAT_TEMPLATE)).unwrap();
    assert_eq!(v.get("text").get("body").str(), "[resolved]  (job ): ");
}
