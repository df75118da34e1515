//! The route file: the documented example, defaults and inheritance as
//! read, and every error with its line.

use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use super::*;

/// The example of the module header of `routes`, word for word.
const EXAMPLE: &str = r#"
# receivers: receiver NAME KIND [key=value ...]
receiver console  console
receiver log      file path=/ops/alerts.jsonl rate=off
receiver hook     webhook url=http://10.0.2.2:8080/alerts max_alerts=16
receiver phone    webhook url=https://graph.facebook.com/v21.0/1234/messages body=chat to=15551234567 template="[{status}] {alertname} job {job_id}: {summary}" burst=3 rate=1/1m

# the route tree: route [{MATCHERS}] [key=value ...] [continue],
# children indented under their parent
route receiver=console group_by=alertname,job_id group_wait=30s group_interval=5m repeat_interval=4h
  route {severity=critical} receiver=phone group_wait=0s continue
  route {alertname=~val_*, job_id!=7} receiver=hook group_by=...
    route {metric!~*_loss} receiver=log
  route {severity!=info} receiver=log
"#;

fn route(line: usize) -> Route {
    Route {
        line,
        ..Route::default()
    }
}

#[test]
fn the_documented_example_reads_as_written() {
    let header = include_str!("../../routes.rs");
    let documented: String = header
        .lines()
        .filter_map(|l| l.strip_prefix("//!").map(|l| l.strip_prefix(' ').unwrap_or(l)))
        .skip_while(|l| !l.starts_with("# receivers:"))
        .take_while(|l| !l.starts_with("```"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        documented.trim(),
        EXAMPLE.trim(),
        "the example in the module header changed"
    );

    let config = parse(EXAMPLE).unwrap();
    let mut phone = Receiver::new(
        "phone",
        ReceiverKind::Webhook {
            url: "https://graph.facebook.com/v21.0/1234/messages".to_string(),
            body: WebhookBody::Chat {
                to: "15551234567".to_string(),
                template: "[{status}] {alertname} job {job_id}: {summary}".to_string(),
            },
        },
    );
    phone.rate = RateLimit { burst: 3, per_ms: MIN };
    phone.line = 6;
    let mut console = Receiver::new("console", ReceiverKind::Console);
    console.line = 3;
    let mut log = Receiver::new(
        "log",
        ReceiverKind::File {
            path: "/ops/alerts.jsonl".to_string(),
        },
    );
    (log.rate.per_ms, log.line) = (0, 4);
    let mut hook = Receiver::new(
        "hook",
        ReceiverKind::Webhook {
            url: "http://10.0.2.2:8080/alerts".to_string(),
            body: WebhookBody::Alertmanager,
        },
    );
    (hook.max_alerts, hook.line) = (16, 5);
    assert_eq!(config.receivers, vec![console, log, hook, phone]);

    let expected = Route {
        receiver: Some("console".to_string()),
        group_by: Some(GroupBy::Labels(vec!["alertname".to_string(), "job_id".to_string()])),
        group_wait_ms: Some(30 * S),
        group_interval_ms: Some(5 * MIN),
        repeat_interval_ms: Some(4 * H),
        routes: vec![
            Route {
                matchers: vec![Matcher::new("severity", MatchOp::Eq, "critical")],
                receiver: Some("phone".to_string()),
                group_wait_ms: Some(0),
                continue_: true,
                ..route(11)
            },
            Route {
                matchers: vec![
                    Matcher::new("alertname", MatchOp::Glob, "val_*"),
                    Matcher::new("job_id", MatchOp::Ne, "7"),
                ],
                receiver: Some("hook".to_string()),
                group_by: Some(GroupBy::All),
                routes: vec![Route {
                    matchers: vec![Matcher::new("metric", MatchOp::NotGlob, "*_loss")],
                    receiver: Some("log".to_string()),
                    ..route(13)
                }],
                ..route(12)
            },
            Route {
                matchers: vec![Matcher::new("severity", MatchOp::Ne, "info")],
                receiver: Some("log".to_string()),
                ..route(14)
            },
        ],
        ..route(10)
    };
    assert_eq!(config.root, expected);
    assert!(Router::new(config).is_ok());
}

#[test]
fn quotes_escapes_comments_durations_and_rates() {
    let config = parse(
        "receiver a webhook url=https://h/x#frag body=chat to=\"+49 170 1\" template=\"{{{status}}} a \\\"b\\\" # c\\n{summary}\" # a comment\r\n\
         receiver b console rate=2/h burst=1 max_alerts=0\n\
         receiver c console rate=10/1s\n\
         \n\
         # routes\n\
         route receiver=a group_wait=0 group_interval=1h30m repeat_interval=1d continue=false\n\
         \x20   route {job_id = \"1, 2\", alertname=~\"a b*\"} receiver=b continue=true group_by=-\n\
         \x20   route {} receiver=c repeat_interval=1500ms\n",
    )
    .unwrap();
    assert_eq!(
        config.receivers[0].kind,
        ReceiverKind::Webhook {
            url: "https://h/x#frag".to_string(),
            body: WebhookBody::Chat {
                to: "+49 170 1".to_string(),
                template: "{{{status}}} a \"b\" # c\n{summary}".to_string()
            }
        }
    );
    assert_eq!(
        (config.receivers[1].rate, config.receivers[1].max_alerts),
        (
            RateLimit {
                burst: 1,
                per_ms: 30 * MIN
            },
            0
        )
    );
    assert_eq!(config.receivers[2].rate.per_ms, 100);
    let root = &config.root;
    assert_eq!(
        (root.group_wait_ms, root.group_interval_ms, root.repeat_interval_ms),
        (Some(0), Some(90 * MIN), Some(24 * H))
    );
    assert!(!root.continue_);
    let child = &root.routes[0];
    assert_eq!(
        child.matchers,
        [
            Matcher::new("job_id", MatchOp::Eq, "1, 2"),
            Matcher::new("alertname", MatchOp::Glob, "a b*")
        ]
    );
    assert!(child.continue_);
    assert_eq!(child.group_by, Some(GroupBy::Labels(vec![])));
    assert_eq!(root.routes[1].matchers, []);
    assert_eq!(root.routes[1].repeat_interval_ms, Some(1500));
    // Receivers may come after the routes that name them.
    assert!(parse("route receiver=x\nreceiver x console\n").is_ok());
}

#[test]
fn indentation_makes_the_tree() {
    let config = parse(
        "receiver r console\n\
         route receiver=r\n\
         \x20 route {a=1}\n\
         \x20     route {a=2}\n\
         \x20       route {a=3}\n\
         \x20     route {a=4}\n\
         \x20 route {a=5}\n",
    )
    .unwrap();
    let shape = |r: &Route| -> String {
        fn walk(r: &Route, out: &mut String) {
            out.push_str(r.matchers.first().map_or("root", |m| m.value.as_str()));
            if !r.routes.is_empty() {
                out.push('(');
                for (i, c) in r.routes.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    walk(c, out);
                }
                out.push(')');
            }
        }
        let mut out = String::new();
        walk(r, &mut out);
        out
    };
    assert_eq!(shape(&config.root), "root(1(2(3) 4) 5)");
}

/// `(file, line, reason)`: each refused, the line and the reason named.
#[test]
fn every_error_names_its_line_and_reason() {
    let ok = "receiver r console\nroute receiver=r\n";
    let long = format!("{ok}# {}\n", "x".repeat(LINE_MAX));
    let many_receivers: String = (0..=RECEIVERS_MAX)
        .map(|i| format!("receiver r{i} console\n"))
        .collect();
    let many_routes: String = core::iter::once("receiver r console\nroute receiver=r\n".to_string())
        .chain((0..ROUTES_MAX).map(|i| format!("  route {{a={i}}}\n")))
        .collect();
    let deep: String = core::iter::once("receiver r console\nroute receiver=r\n".to_string())
        .chain((1..=DEPTH_MAX).map(|d| format!("{}route {{a={d}}}\n", " ".repeat(d))))
        .collect();
    let bad_value = |key: &'static str, value: &str, why: &'static str| Reason::BadValue {
        key,
        value: value.to_string(),
        why,
    };
    let dur = "a duration is `0` or whole numbers with units ms, s, m, h, d (`30s`, `1h30m`)";
    let cases: Vec<(String, usize, Reason)> = vec![
        (long, 3, Reason::LineTooLong),
        (format!("{ok}\t route {{a=1}}\n"), 3, Reason::TabIndent),
        (format!("{ok}  route {{a=\"x}}\n"), 3, Reason::UnclosedQuote),
        (format!("{ok}  route {{a=x\n"), 3, Reason::UnclosedBrace),
        (
            format!("{ok}routes receiver=r\n"),
            3,
            Reason::UnknownLine("routes".to_string()),
        ),
        ("receiver\n".to_string(), 1, Reason::MissingReceiverName),
        (
            "receiver a/b console\n".to_string(),
            1,
            Reason::BadReceiverName("a/b".to_string()),
        ),
        (
            "receiver a console\n\nreceiver a console\n".to_string(),
            3,
            Reason::DuplicateReceiver {
                name: "a".to_string(),
                first_line: 1,
            },
        ),
        (many_receivers, RECEIVERS_MAX + 1, Reason::TooManyReceivers),
        ("receiver a\n".to_string(), 1, Reason::MissingKind),
        (
            "receiver a slack\n".to_string(),
            1,
            Reason::UnknownKind("slack".to_string()),
        ),
        (
            "receiver a console loud\n".to_string(),
            1,
            Reason::NotKeyValue("loud".to_string()),
        ),
        (
            "receiver a console path=/x\n".to_string(),
            1,
            Reason::UnknownKey {
                what: "console receiver",
                key: "path".to_string(),
            },
        ),
        (
            "receiver a console burst=1 burst=2\n".to_string(),
            1,
            Reason::DuplicateKey("burst".to_string()),
        ),
        (
            "receiver a file\n".to_string(),
            1,
            Reason::MissingKey {
                what: "file receiver",
                key: "path",
            },
        ),
        (
            "receiver a webhook url=http://h body=chat\n".to_string(),
            1,
            Reason::MissingKey {
                what: "body=chat webhook",
                key: "to",
            },
        ),
        (
            "receiver a file path=ops/x\n".to_string(),
            1,
            bad_value("path", "ops/x", "an absolute path of at most 256 bytes"),
        ),
        (
            "receiver a webhook url=ftp://h\n".to_string(),
            1,
            bad_value(
                "url",
                "ftp://h",
                "http://HOST/... or https://HOST/..., at most 512 bytes, no spaces",
            ),
        ),
        (
            "receiver a webhook url=http://h to=1\n".to_string(),
            1,
            bad_value("to", "1", "only a body=chat webhook takes it"),
        ),
        (
            "receiver a webhook url=http://h body=xml\n".to_string(),
            1,
            bad_value("body", "xml", "`alertmanager` or `chat`"),
        ),
        (
            "receiver a console burst=0\n".to_string(),
            1,
            bad_value("burst", "0", "a whole number from 1 to 10000"),
        ),
        (
            "receiver a console rate=1/0s\n".to_string(),
            1,
            bad_value(
                "rate",
                "1/0s",
                "`off` or N/D, N notifications per duration D, at most one per millisecond (`10/1m`, `1/30s`)",
            ),
        ),
        (
            "receiver a console max_alerts=5000\n".to_string(),
            1,
            bad_value("max_alerts", "5000", "a whole number from 0 (all) to 1024"),
        ),
        (
            "receiver a webhook url=http://h body=chat to=1 template=\"{oops}\"\n".to_string(),
            1,
            bad_value(
                "template",
                "{oops}",
                "a `{` opens `{{` or a placeholder: {status}, {alertname}, {job_id}, {summary}, {count}, \
                 {firing}, {resolved}, {suppressed}, {truncated}, {receiver}",
            ),
        ),
        (
            "receiver a console\nroute receiver=\"a\"b\n".to_string(),
            2,
            bad_value("receiver", "\"a\"b", "text after the closing `\"`"),
        ),
        (
            format!("{ok}  route {{a==1}}\n  route {{1a=1}}\n"),
            4,
            Reason::BadMatcher {
                matcher: "1a=1".to_string(),
                why: "a label is [A-Za-z_][A-Za-z0-9_]*, at most 64 bytes",
            },
        ),
        (
            format!("{ok}  route {{a<1}}\n"),
            3,
            Reason::BadMatcher {
                matcher: "a<1".to_string(),
                why: "expected label=value, label!=value, label=~glob or label!~glob",
            },
        ),
        (
            format!("{ok}  route {{a=\"1\\q\"}}\n"),
            3,
            Reason::BadMatcher {
                matcher: "a=\"1\\q\"".to_string(),
                why: "unknown escape (`\\\"`, `\\\\`, `\\n`, `\\t`)",
            },
        ),
        (
            format!(
                "{ok}  route {{{}}}\n",
                (0..=MATCHERS_MAX)
                    .map(|i| format!("l{i}=1"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            3,
            Reason::TooManyMatchers,
        ),
        (format!("{ok}  route {{a=1}} {{b=2}}\n"), 3, Reason::DuplicateMatchers),
        (
            format!("{ok}route receiver=r\n"),
            3,
            Reason::SecondRoot { first_line: 2 },
        ),
        (
            format!("{ok}    route {{a=1}}\n    route {{a=2}}\n  route {{a=3}}\n"),
            5,
            Reason::BadIndent,
        ),
        (
            format!("{ok}    route {{a=1}}\n      route {{a=2}}\n  route {{a=3}}\n"),
            5,
            Reason::BadIndent,
        ),
        (deep, DEPTH_MAX + 2, Reason::TooDeep),
        (many_routes, ROUTES_MAX + 2, Reason::TooManyRoutes),
        (
            "receiver r console\nroute {a=1} receiver=r\n".to_string(),
            2,
            Reason::RootMatchers,
        ),
        (
            "receiver r console\nroute receiver=r continue\n".to_string(),
            2,
            Reason::RootContinue,
        ),
        (
            format!("{ok}  route wait=1s\n"),
            3,
            Reason::UnknownKey {
                what: "route",
                key: "wait".to_string(),
            },
        ),
        (
            format!("{ok}  route group_wait=5\n"),
            3,
            bad_value("group_wait", "5", dur),
        ),
        (
            format!("{ok}  route group_wait=-1s\n"),
            3,
            bad_value("group_wait", "-1s", dur),
        ),
        (
            format!("{ok}  route repeat_interval=99999999999999999d\n"),
            3,
            bad_value("repeat_interval", "99999999999999999d", dur),
        ),
        (
            format!("{ok}  route group_interval=0\n"),
            3,
            bad_value("group_interval", "0", "at least 1ms"),
        ),
        (
            format!("{ok}  route continue=yes\n"),
            3,
            bad_value("continue", "yes", "`true` or `false`"),
        ),
        (
            format!("{ok}  route continue continue\n"),
            3,
            Reason::DuplicateKey("continue".to_string()),
        ),
        (
            format!("{ok}  route group_by=a,a\n"),
            3,
            bad_value("group_by", "a,a", "a label twice"),
        ),
        (
            format!("{ok}  route group_by=a,,b\n"),
            3,
            bad_value(
                "group_by",
                "a,,b",
                "labels a,b,c ([A-Za-z_][A-Za-z0-9_]*), `...` for all or `-` for none",
            ),
        ),
        // The file as a whole, after every line read.
        ("receiver r console\n# nothing else\n".to_string(), 0, Reason::NoRoute),
        (
            "receiver r console\nroute group_wait=1s\n".to_string(),
            2,
            Reason::RootWithoutReceiver,
        ),
        (
            format!("{ok}  route {{a=1}}\n  route {{a=2}} receiver=nobody\n"),
            4,
            Reason::UnknownReceiver("nobody".to_string()),
        ),
    ];
    for (text, line, reason) in cases {
        let err = parse(&text).expect_err(&text);
        assert_eq!(err, ConfigError { line, reason }, "{text}");
        // Every reason reads as a sentence with its line.
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("line {line}: ")) || (line == 0 && shown.starts_with("routes: ")),
            "{shown}"
        );
    }
}

#[test]
fn error_messages_read_well() {
    let err = parse("receiver r console\nroute receiver=r\n  route {a=1} recv=r\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 3: a route takes no `recv` (it takes receiver, group_by, group_wait, group_interval, repeat_interval, continue)"
    );
    let err = parse("receiver r console\nroute receiver=r\n  route receiver=q\n").unwrap_err();
    assert_eq!(err.to_string(), "line 3: no receiver `q`");
    let err = parse("").unwrap_err();
    assert_eq!(err.to_string(), "routes: no `route` line (the file needs a root route)");
}

#[test]
fn a_refused_file_leaves_the_router_as_it_was() {
    let mut r = router("receiver a console\nroute receiver=a group_wait=0s\n");
    let before = r.config().clone();
    // A bad file never becomes a configuration...
    assert!(parse("receiver a console\nroute receiver=b\n").is_err());
    // ... and a bad configuration built in code is refused by replace.
    let mut bad = before.clone();
    bad.root.routes.push(Route {
        receiver: Some("nobody".to_string()),
        line: 0,
        ..Route::default()
    });
    let err = r.replace(0, bad).unwrap_err();
    assert_eq!(err.reason, Reason::UnknownReceiver("nobody".to_string()));
    assert_eq!(*r.config(), before);
    send(&mut r, &alert("x", 1, Firing, 0, &[]));
    assert_eq!(receivers(&r.tick(0)), ["a"]);
}

#[test]
fn configurations_built_in_code_get_the_same_checks() {
    let receivers = vec![Receiver::new("a", ReceiverKind::Console)];
    let with_root = |root: Route| Config {
        receivers: receivers.clone(),
        root,
    };
    let root = Route {
        receiver: Some("a".to_string()),
        ..Route::default()
    };
    assert!(Router::new(with_root(root.clone())).is_ok());
    // A tree deeper than DEPTH_MAX (the router recurses through it).
    let mut deep = Route::default();
    for _ in 0..1000 {
        deep = Route {
            routes: vec![deep],
            ..Route::default()
        };
    }
    let err = Router::new(with_root(Route {
        routes: vec![deep],
        ..root.clone()
    }))
    .err()
    .map(|e| e.reason);
    assert_eq!(err, Some(Reason::TooDeep));
    // Too wide.
    let wide = Route {
        routes: vec![Route::default(); 100_000],
        ..root.clone()
    };
    assert_eq!(
        Router::new(with_root(wide)).err().map(|e| e.reason),
        Some(Reason::TooManyRoutes)
    );
    // Intervals of 0, a burst of 0, duplicate receivers, a bad template.
    let zero = Route {
        repeat_interval_ms: Some(0),
        ..root.clone()
    };
    assert!(Router::new(with_root(zero)).is_err());
    let mut config = with_root(root.clone());
    config.receivers[0].rate.burst = 0;
    assert!(Router::new(config).is_err());
    let mut config = with_root(root.clone());
    config.receivers.push(Receiver::new("a", ReceiverKind::Console));
    assert!(matches!(
        Router::new(config).err().map(|e| e.reason),
        Some(Reason::DuplicateReceiver { .. })
    ));
    let mut config = with_root(root);
    config.receivers.push(Receiver::new(
        "chat",
        ReceiverKind::Webhook {
            url: "https://h/".to_string(),
            body: WebhookBody::Chat {
                to: "1".to_string(),
                template: "{nope".to_string(),
            },
        },
    ));
    assert!(Router::new(config).is_err());
}
