//! Random inputs: route files made of good and bad pieces, and random
//! alerts, times (backwards too), ticks and reloads. Nothing panics, the
//! bounds hold, deadlines tell the truth, every body parses, and a
//! resolve is never sent twice without a firing sent between.

use std::collections::BTreeMap;
use std::string::{String, ToString};
use std::vec::Vec;

use super::*;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "receiver",
    "route",
    "r",
    "console",
    "file",
    "webhook",
    "path=/x",
    "url=http://h/x",
    "body=chat",
    "to=1",
    "template=\"{status} {summary}\"",
    "template=\"{bad\"",
    "rate=off",
    "rate=1/1s",
    "rate=0/1s",
    "burst=2",
    "max_alerts=1",
    "receiver=r",
    "receiver=nobody",
    "group_by=alertname",
    "group_by=...",
    "group_by=-",
    "group_wait=0s",
    "group_wait=1s",
    "group_interval=1s",
    "repeat_interval=10s",
    "continue",
    "{a=1}",
    "{alertname=~*a*,job_id!=2}",
    "{team!~o*}",
    "{x=\"a b\"}",
    "{",
    "}",
    "\"",
    "#",
    "=",
    "é",
    "\u{0}",
    "\\",
    "{a=\"\\",
];

fn random_line(rng: &mut XorShift) -> String {
    let mut line = " ".repeat(rng.below(7) as usize);
    if rng.below(20) == 0 {
        line.push('\t');
    }
    for _ in 0..rng.below(6) {
        line.push_str(rng.pick(WORDS));
        if rng.below(8) != 0 {
            line.push(' ');
        }
    }
    line
}

#[test]
fn random_route_files_never_panic() {
    let mut accepted = 0;
    for seed in 1..=3000u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut text = String::new();
        if rng.below(2) == 0 {
            text.push_str("receiver r console\nroute receiver=r\n");
        }
        for _ in 0..rng.below(12) {
            text.push_str(&random_line(&mut rng));
            text.push(if rng.below(10) == 0 { '\r' } else { '\n' });
        }
        match parse(&text) {
            // What parse accepts, the router takes.
            Ok(config) => {
                accepted += 1;
                assert!(Router::new(config).is_ok(), "{text}");
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        // Raw bytes too.
        let bytes: Vec<u8> = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
        let _ = parse(&String::from_utf8_lossy(&bytes));
    }
    // The pieces make enough good files to mean something.
    assert!(accepted > 100, "{accepted}");
}

const CONFIGS: &[&str] = &[
    "receiver a console max_alerts=2 burst=2 rate=1/5s
receiver b webhook url=http://h/x
receiver c webhook url=https://h/y body=chat to=1 rate=off max_alerts=0
route receiver=a group_by=alertname group_wait=2s group_interval=3s repeat_interval=20s
  route {team=ml} receiver=b continue group_by=...
  route {alertname=~b*} receiver=c group_wait=0s
    route {job_id!=1} group_interval=1s
",
    "receiver a console
receiver c webhook url=https://h/y body=chat to=1 burst=1 rate=1/2s
route receiver=c group_wait=0s group_interval=1ms repeat_interval=1s group_by=-
  route {team!~o*} receiver=a group_by=job_id,team
",
];

/// `(receiver, group key, fingerprint)`: the state last sent.
type Sent = BTreeMap<(String, String, u64), AlertState>;

fn check_notifications(r: &Router, notes: &[Notification], sent: &mut Sent) {
    for n in notes {
        let receiver = r.receiver(&n.receiver).expect("a receiver of the configuration");
        assert!(!n.alerts.is_empty());
        if receiver.max_alerts > 0 {
            assert!(n.alerts.len() <= receiver.max_alerts);
        }
        let firing = n.alerts.iter().any(|a| a.state == Firing);
        assert_eq!(n.status, if firing { Firing } else { Resolved });
        for a in &n.alerts {
            assert_eq!(fingerprint(&a.labels), a.fingerprint);
            let key = (n.receiver.clone(), n.group_key.clone(), a.fingerprint);
            if a.state == Resolved {
                assert_eq!(
                    sent.get(&key),
                    Some(&Firing),
                    "a resolve sent without its firing: {key:?}"
                );
            }
            sent.insert(key, a.state);
        }
        let body = alertmanager_json(n, "http://bridge:8080/");
        assert!(json_check::parse(&body).is_ok(), "{body}");
        let chat = chat_body(n, "1", DEFAULT_CHAT_TEMPLATE);
        assert!(json_check::parse(&chat).is_ok(), "{chat}");
        assert!(!console_line(n).contains('\n'));
    }
}

#[test]
fn random_alerts_times_and_reloads_never_panic_and_stay_bounded() {
    let configs: Vec<Config> = CONFIGS.iter().map(|t| parse(t).unwrap()).collect();
    let limits = Limits {
        groups: 12,
        alerts: 30,
        alerts_per_group: 4,
    };
    let mut total_notes = 0;
    for seed in 1..=20u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        let mut r = Router::with_limits(configs[0].clone(), limits).unwrap();
        let mut sent = Sent::new();
        let mut now: u64 = 1_700_000_000_000;
        for _ in 0..2000 {
            // Mostly forwards, sometimes back.
            now = match rng.below(20) {
                0 => now.saturating_sub(rng.below(10_000)),
                _ => now + rng.below(1500),
            };
            match rng.below(10) {
                0..=5 => {
                    let rule = *rng.pick(&["a", "b", "bb", "best", "c"]);
                    let state = if rng.below(3) == 0 { Resolved } else { Firing };
                    let mut a = alert(rule, rng.below(4), state, now, &[]);
                    if rule == "best" {
                        a.kind = RuleType::NewBest;
                    }
                    let team = *rng.pick(&["ml", "ops", "other", ""]);
                    a.tags = pairs(&[("team", team)]);
                    if rng.below(50) == 0 {
                        a.summary = "x\n\"y\"".repeat(rng.below(2000) as usize);
                    }
                    r.on_alert(now, &a);
                }
                6..=8 => {
                    let deadline = r.next_deadline();
                    let notes = r.tick(now);
                    if !notes.is_empty() {
                        assert!(deadline.is_some_and(|d| d <= now), "sent before its deadline");
                    }
                    // Everything due was flushed at `now`.
                    assert!(r.next_deadline().is_none_or(|d| d > now));
                    check_notifications(&r, &notes, &mut sent);
                    total_notes += notes.len();
                }
                _ => {
                    let config = rng.pick(&configs).clone();
                    r.replace(now, config).unwrap();
                }
            }
            assert!(r.groups() <= limits.groups);
            assert!(r.alerts() <= limits.alerts);
        }
        // In the end everything drains: no alert is held forever once
        // everything resolves (the events, sent once, included).
        for job in 0..4 {
            for rule in ["a", "b", "bb", "best", "c"] {
                for team in ["ml", "ops", "other", ""] {
                    let mut a = alert(rule, job, Resolved, now, &[]);
                    a.tags = pairs(&[("team", team)]);
                    r.on_alert(now, &a);
                }
            }
        }
        for _ in 0..200 {
            now += 5 * S;
            let notes = r.tick(now);
            check_notifications(&r, &notes, &mut sent);
        }
        assert_eq!((r.groups(), r.alerts(), r.next_deadline()), (0, 0, None), "seed {seed}");
    }
    assert!(total_notes > 500, "{total_notes}");
}
