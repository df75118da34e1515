//! The route file (`/ops/routes.conf`): receivers and the route tree,
//! refused whole on the first error, which names the line and the reason;
//! and the same checks for a configuration built in code.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use super::body::{DEFAULT_CHAT_TEMPLATE, check_template};
use super::{
    BURST_MAX, Config, DEFAULT_MAX_ALERTS, DEPTH_MAX, GroupBy, LABEL_NAME_MAX, LABEL_VALUE_MAX, MATCHERS_MAX,
    MAX_ALERTS_MAX, MatchOp, Matcher, NAME_MAX, PATH_MAX, RECEIVERS_MAX, ROUTES_MAX, RateLimit, Receiver, ReceiverKind,
    Route, TEMPLATE_MAX, TO_MAX, URL_MAX, WebhookBody,
};

/// A line's bytes at most (without its end).
pub const LINE_MAX: usize = 1024;

// The reasons below spell these bounds out.
const _: () = assert!(ROUTES_MAX == 256 && DEPTH_MAX == 16 && RECEIVERS_MAX == 64 && MATCHERS_MAX == 16);
const _: () = assert!(LABEL_NAME_MAX == 64 && LABEL_VALUE_MAX == 256 && NAME_MAX == 64);

/// Why a route file (or a configuration) was refused: the line (from 1; 0
/// for the file as a whole or a configuration built in code) and the
/// reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub reason: Reason,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "routes: {}", self.reason),
            line => write!(f, "line {line}: {}", self.reason),
        }
    }
}

/// What is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Longer than [`LINE_MAX`] bytes.
    LineTooLong,
    /// A tab in a line's indentation (which is spaces).
    TabIndent,
    UnclosedQuote,
    UnclosedBrace,
    /// A line that starts with neither `receiver` nor `route`.
    UnknownLine(String),
    MissingReceiverName,
    /// Not `[A-Za-z0-9_.-]`, 1 to [`NAME_MAX`] bytes.
    BadReceiverName(String),
    DuplicateReceiver {
        name: String,
        first_line: usize,
    },
    /// More than [`RECEIVERS_MAX`].
    TooManyReceivers,
    /// `receiver NAME` without `console`, `file` or `webhook`.
    MissingKind,
    UnknownKind(String),
    /// A word that is not `key=value`.
    NotKeyValue(String),
    /// A key `what` (`route`, `file receiver`, ...) does not take.
    UnknownKey {
        what: &'static str,
        key: String,
    },
    DuplicateKey(String),
    MissingKey {
        what: &'static str,
        key: &'static str,
    },
    /// A value that does not read or is not allowed: why.
    BadValue {
        key: &'static str,
        value: String,
        why: &'static str,
    },
    /// A matcher that is not `label=value`, `label!=value`, `label=~glob`
    /// or `label!~glob` with a valid label and value: why.
    BadMatcher {
        matcher: String,
        why: &'static str,
    },
    /// More than [`MATCHERS_MAX`] matchers on a route.
    TooManyMatchers,
    /// Two `{...}` on one route.
    DuplicateMatchers,
    /// A route line not indented under the first (the root).
    SecondRoot {
        first_line: usize,
    },
    /// An indentation that goes back to no level above it.
    BadIndent,
    /// More than [`DEPTH_MAX`] levels.
    TooDeep,
    /// More than [`ROUTES_MAX`] routes.
    TooManyRoutes,
    /// Matchers on the root (it matches every alert).
    RootMatchers,
    /// `continue` on the root (it has no siblings).
    RootContinue,
    /// A root without `receiver=` (every alert needs one).
    RootWithoutReceiver,
    /// `receiver=` naming no receiver.
    UnknownReceiver(String),
    /// No `route` line at all.
    NoRoute,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::LineTooLong => write!(f, "longer than {LINE_MAX} bytes"),
            Reason::TabIndent => f.write_str("a tab in the indentation (indent with spaces)"),
            Reason::UnclosedQuote => f.write_str("a `\"` without its closing `\"`"),
            Reason::UnclosedBrace => f.write_str("a `{` without its closing `}`"),
            Reason::UnknownLine(word) => write!(
                f,
                "`{word}`: a line is `receiver NAME KIND [key=value ...]` or `route [{{MATCHERS}}] [key=value ...]`"
            ),
            Reason::MissingReceiverName => f.write_str("`receiver` needs a name and a kind"),
            Reason::BadReceiverName(name) => write!(
                f,
                "bad receiver name `{name}` (letters, digits, `_`, `.`, `-`, 1 to {NAME_MAX} bytes)"
            ),
            Reason::DuplicateReceiver { name, first_line } => {
                write!(f, "duplicate receiver `{name}` (first on line {first_line})")
            }
            Reason::TooManyReceivers => write!(f, "more than {RECEIVERS_MAX} receivers"),
            Reason::MissingKind => f.write_str("missing the receiver's kind (console, file, webhook)"),
            Reason::UnknownKind(kind) => write!(f, "unknown receiver kind `{kind}` (console, file, webhook)"),
            Reason::NotKeyValue(word) => write!(f, "`{word}` is not key=value"),
            Reason::UnknownKey { what, key } => write!(f, "a {what} takes no `{key}` (it takes {})", keys_of(what)),
            Reason::DuplicateKey(key) => write!(f, "duplicate `{key}`"),
            Reason::MissingKey { what, key } => write!(f, "a {what} needs `{key}=`"),
            Reason::BadValue { key, value, why } => write!(f, "{key}: `{value}`: {why}"),
            Reason::BadMatcher { matcher, why } => write!(f, "bad matcher `{matcher}`: {why}"),
            Reason::TooManyMatchers => write!(f, "more than {MATCHERS_MAX} matchers"),
            Reason::DuplicateMatchers => f.write_str("a second `{...}`: all of a route's matchers go in one"),
            Reason::SecondRoot { first_line } => write!(
                f,
                "a second root route (the root is on line {first_line}; indent the others under it)"
            ),
            Reason::BadIndent => f.write_str("the indentation matches no route above"),
            Reason::TooDeep => write!(f, "more than {DEPTH_MAX} levels of routes"),
            Reason::TooManyRoutes => write!(f, "more than {ROUTES_MAX} routes"),
            Reason::RootMatchers => f.write_str("the root route takes no matchers (it matches every alert)"),
            Reason::RootContinue => f.write_str("the root route takes no `continue`"),
            Reason::RootWithoutReceiver => f.write_str("the root route needs `receiver=`"),
            Reason::UnknownReceiver(name) => write!(f, "no receiver `{name}`"),
            Reason::NoRoute => f.write_str("no `route` line (the file needs a root route)"),
        }
    }
}

const ROUTE_KEYS: &[&str] = &[
    "receiver",
    "group_by",
    "group_wait",
    "group_interval",
    "repeat_interval",
    "continue",
];
const CONSOLE_KEYS: &[&str] = &["burst", "rate", "max_alerts"];
const FILE_KEYS: &[&str] = &["path", "burst", "rate", "max_alerts"];
const WEBHOOK_KEYS: &[&str] = &["url", "body", "to", "template", "burst", "rate", "max_alerts"];

fn keys_of(what: &str) -> String {
    let keys = match what {
        "route" => ROUTE_KEYS,
        "console receiver" => CONSOLE_KEYS,
        "file receiver" => FILE_KEYS,
        _ => WEBHOOK_KEYS,
    };
    keys.join(", ")
}

/// Reads a route file: the whole configuration, or the first error (a
/// file with an error is refused whole).
///
/// # Lines
///
/// * `receiver NAME KIND [key=value ...]`: `NAME` is `[A-Za-z0-9_.-]`, 1
///   to [`NAME_MAX`] bytes, unique; `KIND` and its keys:
///
///   | kind | keys |
///   | --- | --- |
///   | `console` | - |
///   | `file` | `path=/ABS/PATH` (required; JSON lines) |
///   | `webhook` | `url=http(s)://...` (required), `body=alertmanager\|chat` (default `alertmanager`); with `chat`: `to=RECIPIENT` (required), `template="..."` (default [`DEFAULT_CHAT_TEMPLATE`]; placeholders in [`super::chat_body`]) |
///
///   and for every kind `burst=N` (1 to [`BURST_MAX`], default 10),
///   `rate=N/D` (N notifications per duration D, at least a millisecond
///   apart: `rate=10/1m`, `rate=1/30s`, `rate=2/h`; default `10/1m`) or
///   `rate=off`, and `max_alerts=N` (alerts per notification, 0 for all;
///   at most [`MAX_ALERTS_MAX`], default [`DEFAULT_MAX_ALERTS`]).
/// * `route [{MATCHERS}] [key=value ...] [continue]`: the first route
///   line is the root; each later one is a child of the nearest route line
///   above it that is indented less (spaces only; a line indented back out
///   must line up with a route above). `MATCHERS`: `label=value`,
///   `label!=value`, `label=~glob`, `label!~glob`, separated by commas
///   (spaces allowed inside the braces; a glob's `*` is any run of
///   characters); labels `[A-Za-z_][A-Za-z0-9_]*`. Keys, each at most
///   once:
///
///   | key | value |
///   | --- | --- |
///   | `receiver` | a receiver's name (the root's is required; receivers may be declared after the routes) |
///   | `group_by` | labels `a,b,c`, `...` (every label) or `-` (none) |
///   | `group_wait` | a duration (`0` allowed) |
///   | `group_interval`, `repeat_interval` | a duration of at least 1 ms |
///   | `continue` | `true` or `false`; the bare word `continue` is `true` |
///
///   The root takes no matchers and no `continue`.
///
/// A duration is `0` or one or more of a whole number and a unit, `ms`,
/// `s`, `m`, `h` or `d` (`500ms`, `30s`, `1h30m`). A value with spaces,
/// `#`, `,` or braces is quoted, `"..."`, with `\"`, `\\`, `\n` and `\t`
/// inside. `#` at the start of a line or of a word (outside quotes) begins
/// a comment; blank lines are ignored. Lines end with `\n` or `\r\n`.
///
/// Errors on a line are found in the file's order; then the file as a
/// whole: that there is a root with a receiver, and that every
/// `receiver=` names a receiver (reported on that route's line).
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let mut receivers: Vec<Receiver> = Vec::new();
    let mut receiver_lines: BTreeMap<String, usize> = BTreeMap::new();
    // Routes as read, their parents' indexes; and the open routes
    // (indentation, index), the root at the bottom.
    let mut flat: Vec<(Route, Option<usize>)> = Vec::new();
    let mut open: Vec<(usize, usize)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |reason| ConfigError { line, reason };
        if raw.len() > LINE_MAX {
            return Err(err(Reason::LineTooLong));
        }
        let words = words(raw).map_err(err)?;
        let Some(&first) = words.first() else {
            continue;
        };
        let indent = &raw[..raw.len() - raw.trim_start().len()];
        if indent.contains('\t') {
            return Err(err(Reason::TabIndent));
        }
        match first {
            "receiver" => {
                let mut receiver = parse_receiver(&words[1..]).map_err(err)?;
                receiver.line = line;
                if let Some(&first_line) = receiver_lines.get(&receiver.name) {
                    return Err(err(Reason::DuplicateReceiver {
                        name: receiver.name,
                        first_line,
                    }));
                }
                if receivers.len() >= RECEIVERS_MAX {
                    return Err(err(Reason::TooManyReceivers));
                }
                receiver_lines.insert(receiver.name.clone(), line);
                receivers.push(receiver);
            }
            "route" => {
                let parent = place(&flat, &mut open, indent.len()).map_err(err)?;
                if flat.len() >= ROUTES_MAX {
                    return Err(err(Reason::TooManyRoutes));
                }
                let mut route = parse_route(&words[1..], parent.is_none()).map_err(err)?;
                route.line = line;
                open.push((indent.len(), flat.len()));
                flat.push((route, parent));
            }
            other => return Err(err(Reason::UnknownLine(other.to_string()))),
        }
    }
    if flat.is_empty() {
        return Err(ConfigError {
            line: 0,
            reason: Reason::NoRoute,
        });
    }
    let config = Config {
        receivers,
        root: assemble(flat),
    };
    validate(&config)?;
    Ok(config)
}

/// The parent of a route line indented `indent` (`None`: it is the root),
/// with `open` popped down to that parent.
fn place(
    flat: &[(Route, Option<usize>)],
    open: &mut Vec<(usize, usize)>,
    indent: usize,
) -> Result<Option<usize>, Reason> {
    let Some(&(root_indent, _)) = open.first() else {
        return Ok(None);
    };
    if indent <= root_indent {
        let first_line = flat.first().map_or(0, |(r, _)| r.line);
        return Err(Reason::SecondRoot { first_line });
    }
    let mut popped = false;
    while open.last().is_some_and(|&(i, _)| i > indent) {
        open.pop();
        popped = true;
    }
    match open.last() {
        // A sibling: its parent is the one below it.
        Some(&(i, _)) if i == indent => {
            open.pop();
        }
        Some(_) if popped => return Err(Reason::BadIndent),
        _ => {}
    }
    if open.len() >= DEPTH_MAX {
        return Err(Reason::TooDeep);
    }
    Ok(open.last().map(|&(_, index)| index))
}

/// The tree from the routes as read (parents always come before their
/// children, which stay in the file's order).
fn assemble(flat: Vec<(Route, Option<usize>)>) -> Route {
    let mut children: Vec<Vec<usize>> = alloc::vec![Vec::new(); flat.len()];
    for (index, (_, parent)) in flat.iter().enumerate() {
        if let Some(p) = parent {
            children[*p].push(index);
        }
    }
    let mut routes: Vec<Option<Route>> = flat.into_iter().map(|(r, _)| Some(r)).collect();
    // Children have higher indexes than their parents: build from the end.
    for index in (0..routes.len()).rev() {
        let kids: Vec<Route> = children[index].iter().filter_map(|&c| routes[c].take()).collect();
        if let Some(route) = routes[index].as_mut() {
            route.routes = kids;
        }
    }
    routes.first_mut().and_then(Option::take).unwrap_or_default()
}

/// A line's words: split at spaces outside quotes and braces, up to a `#`
/// that starts a word.
fn words(line: &str) -> Result<Vec<&str>, Reason> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] == b'#' {
            return Ok(out);
        }
        let start = i;
        let (mut quoted, mut depth) = (false, 0usize);
        while i < b.len() {
            match b[i] {
                b'\\' if quoted => i += 1,
                b'"' => quoted = !quoted,
                b'{' if !quoted => depth += 1,
                b'}' if !quoted => depth = depth.saturating_sub(1),
                c if c.is_ascii_whitespace() && !quoted && depth == 0 => break,
                _ => {}
            }
            i += 1;
        }
        if quoted {
            return Err(Reason::UnclosedQuote);
        }
        if depth > 0 {
            return Err(Reason::UnclosedBrace);
        }
        // `i` is at a space or the end: a character boundary.
        out.push(&line[start..i.min(b.len())]);
    }
}

/// A value: `"quoted"` (with `\"`, `\\`, `\n`, `\t`) or a bare word
/// without quotes.
fn value(raw: &str) -> Result<String, &'static str> {
    let Some(quoted) = raw.strip_prefix('"') else {
        return match raw.contains('"') {
            true => Err("a value with a `\"` is quoted whole, `\"...\"`"),
            false => Ok(raw.to_string()),
        };
    };
    let Some(inner) = quoted.strip_suffix('"') else {
        return Err("text after the closing `\"`");
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '\\' => match chars.next() {
                Some('"') => '"',
                Some('\\') => '\\',
                Some('n') => '\n',
                Some('t') => '\t',
                _ => return Err("unknown escape (`\\\"`, `\\\\`, `\\n`, `\\t`)"),
            },
            '"' => return Err("text after the closing `\"`"),
            c => c,
        });
    }
    Ok(out)
}

/// A duration: `0`, or whole numbers with units (`1h30m`).
fn duration_ms(s: &str) -> Option<u64> {
    if s == "0" {
        return Some(0);
    }
    let mut rest = s;
    let mut total: u64 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = match rest.as_bytes() {
            [b'm', b's', ..] => (1, 2),
            [b's', ..] => (1000, 1),
            [b'm', ..] => (60_000, 1),
            [b'h', ..] => (3_600_000, 1),
            [b'd', ..] => (86_400_000, 1),
            _ => return None,
        };
        rest = &rest[len..];
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}

const DURATION_WHY: &str = "a duration is `0` or whole numbers with units ms, s, m, h, d (`30s`, `1h30m`)";

/// Splits `key=value` words; each key at most once.
fn key_values<'a>(words: &[&'a str]) -> Result<Vec<(&'a str, &'a str)>, Reason> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for word in words {
        let (key, raw) = word
            .split_once('=')
            .ok_or_else(|| Reason::NotKeyValue(word.to_string()))?;
        if out.iter().any(|(k, _)| *k == key) {
            return Err(Reason::DuplicateKey(key.to_string()));
        }
        out.push((key, raw));
    }
    Ok(out)
}

fn bad(key: &'static str, value: &str, why: &'static str) -> Reason {
    Reason::BadValue {
        key,
        value: value.to_string(),
        why,
    }
}

/// `NAME KIND [key=value ...]` (after `receiver`).
fn parse_receiver(words: &[&str]) -> Result<Receiver, Reason> {
    let name = *words.first().ok_or(Reason::MissingReceiverName)?;
    if !valid_receiver_name(name) {
        return Err(Reason::BadReceiverName(name.to_string()));
    }
    let kind = *words.get(1).ok_or(Reason::MissingKind)?;
    let (what, allowed) = match kind {
        "console" => ("console receiver", CONSOLE_KEYS),
        "file" => ("file receiver", FILE_KEYS),
        "webhook" => ("webhook receiver", WEBHOOK_KEYS),
        _ => return Err(Reason::UnknownKind(kind.to_string())),
    };
    let pairs = key_values(&words[2..])?;
    let mut values: BTreeMap<&str, String> = BTreeMap::new();
    for (key, raw) in pairs {
        let Some(&key) = allowed.iter().find(|k| **k == key) else {
            return Err(Reason::UnknownKey {
                what,
                key: key.to_string(),
            });
        };
        values.insert(key, value(raw).map_err(|why| bad(key, raw, why))?);
    }
    let mut take = |key: &'static str| values.remove(key);
    let mut rate = RateLimit::default();
    if let Some(v) = take("burst") {
        rate.burst = match v.parse::<u32>() {
            Ok(n) if (1..=BURST_MAX).contains(&n) => n,
            _ => return Err(bad("burst", &v, "a whole number from 1 to 10000")),
        };
    }
    if let Some(v) = take("rate") {
        rate.per_ms = parse_rate(&v).ok_or_else(|| {
            bad(
                "rate",
                &v,
                "`off` or N/D, N notifications per duration D, at most one per millisecond (`10/1m`, `1/30s`)",
            )
        })?;
    }
    let max_alerts = match take("max_alerts") {
        None => DEFAULT_MAX_ALERTS,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n <= MAX_ALERTS_MAX => n,
            _ => return Err(bad("max_alerts", &v, "a whole number from 0 (all) to 1024")),
        },
    };
    let kind = match kind {
        "console" => ReceiverKind::Console,
        "file" => ReceiverKind::File {
            path: take("path").ok_or(Reason::MissingKey { what, key: "path" })?,
        },
        _ => {
            let url = take("url").ok_or(Reason::MissingKey { what, key: "url" })?;
            let body = match take("body").as_deref() {
                None | Some("alertmanager") => WebhookBody::Alertmanager,
                Some("chat") => WebhookBody::Chat {
                    to: take("to").ok_or(Reason::MissingKey {
                        what: "body=chat webhook",
                        key: "to",
                    })?,
                    template: take("template").unwrap_or_else(|| DEFAULT_CHAT_TEMPLATE.to_string()),
                },
                Some(other) => return Err(bad("body", other, "`alertmanager` or `chat`")),
            };
            for key in ["to", "template"] {
                if let Some(v) = take(key) {
                    return Err(bad(key, &v, "only a body=chat webhook takes it"));
                }
            }
            ReceiverKind::Webhook { url, body }
        }
    };
    let receiver = Receiver {
        name: name.to_string(),
        kind,
        rate,
        max_alerts,
        line: 0,
    };
    check_receiver(&receiver)?;
    Ok(receiver)
}

/// `off` (0) or `N/D`: the milliseconds per notification, `D / N` (a unit
/// alone is one of it: `2/h`).
fn parse_rate(v: &str) -> Option<u64> {
    if v == "off" {
        return Some(0);
    }
    let (n, d) = v.split_once('/')?;
    let n: u64 = n.parse().ok().filter(|&n| n >= 1)?;
    let d = match d.bytes().next() {
        Some(b) if b.is_ascii_digit() => duration_ms(d)?,
        _ => duration_ms(&["1", d].concat())?,
    };
    Some(d / n).filter(|&per| per >= 1)
}

/// `[{MATCHERS}] [key=value ...] [continue]` (after `route`).
fn parse_route(words: &[&str], is_root: bool) -> Result<Route, Reason> {
    let mut route = Route::default();
    let mut matchers_seen = false;
    let mut rest: Vec<&str> = Vec::new();
    for &word in words {
        if word.starts_with('{') {
            if matchers_seen {
                return Err(Reason::DuplicateMatchers);
            }
            matchers_seen = true;
            route.matchers = parse_matchers(word)?;
        } else if word == "continue" {
            rest.push("continue=true");
        } else {
            rest.push(word);
        }
    }
    for (key, raw) in key_values(&rest)? {
        let Some(&key) = ROUTE_KEYS.iter().find(|k| **k == key) else {
            return Err(Reason::UnknownKey {
                what: "route",
                key: key.to_string(),
            });
        };
        let v = value(raw).map_err(|why| bad(key, raw, why))?;
        match key {
            "receiver" => route.receiver = Some(v),
            "group_by" => route.group_by = Some(parse_group_by(&v)?),
            "continue" => {
                route.continue_ = match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad("continue", &v, "`true` or `false`")),
                }
            }
            _ => {
                let ms = duration_ms(&v).ok_or_else(|| bad(key, &v, DURATION_WHY))?;
                match key {
                    "group_wait" => route.group_wait_ms = Some(ms),
                    "group_interval" => route.group_interval_ms = Some(ms),
                    _ => route.repeat_interval_ms = Some(ms),
                }
            }
        }
    }
    check_route(&route, is_root)?;
    Ok(route)
}

/// `a,b,c`, `...` or `-`.
fn parse_group_by(v: &str) -> Result<GroupBy, Reason> {
    match v {
        "..." => return Ok(GroupBy::All),
        "-" => return Ok(GroupBy::Labels(Vec::new())),
        _ => {}
    }
    let labels = v.split(',').map(|l| l.trim().to_string()).collect();
    let group_by = GroupBy::Labels(labels);
    check_group_by(&group_by)?;
    Ok(group_by)
}

/// `{m,m,...}`: the matchers, split at commas outside quotes.
fn parse_matchers(word: &str) -> Result<Vec<Matcher>, Reason> {
    let inner = word
        .strip_prefix('{')
        .and_then(|w| w.strip_suffix('}'))
        .ok_or_else(|| Reason::BadMatcher {
            matcher: word.to_string(),
            why: "text after the closing `}`",
        })?;
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    let mut matchers = Vec::new();
    for part in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        if matchers.len() >= MATCHERS_MAX {
            return Err(Reason::TooManyMatchers);
        }
        matchers.push(parse_matcher(part)?);
    }
    Ok(matchers)
}

fn parse_matcher(part: &str) -> Result<Matcher, Reason> {
    let bad = |why| Reason::BadMatcher {
        matcher: part.to_string(),
        why,
    };
    let end = part
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(part.len());
    let (label, rest) = part.split_at(end);
    let rest = rest.trim_start();
    let (op, raw) = [
        ("!=", MatchOp::Ne),
        ("!~", MatchOp::NotGlob),
        ("=~", MatchOp::Glob),
        ("=", MatchOp::Eq),
    ]
    .into_iter()
    .find_map(|(token, op)| rest.strip_prefix(token).map(|raw| (op, raw)))
    .ok_or(bad("expected label=value, label!=value, label=~glob or label!~glob"))?;
    let value = value(raw.trim()).map_err(bad)?;
    let matcher = Matcher {
        label: label.to_string(),
        op,
        value,
    };
    check_matcher(&matcher).map_err(bad)?;
    Ok(matcher)
}

fn valid_receiver_name(name: &str) -> bool {
    (1..=NAME_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A label name: `[A-Za-z_][A-Za-z0-9_]*`, at most [`LABEL_NAME_MAX`]
/// bytes.
fn valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= LABEL_NAME_MAX
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn check_matcher(m: &Matcher) -> Result<(), &'static str> {
    if !valid_label_name(&m.label) {
        return Err("a label is [A-Za-z_][A-Za-z0-9_]*, at most 64 bytes");
    }
    if m.value.len() > LABEL_VALUE_MAX {
        return Err("a value has at most 256 bytes");
    }
    Ok(())
}

fn check_group_by(group_by: &GroupBy) -> Result<(), Reason> {
    let GroupBy::Labels(labels) = group_by else {
        return Ok(());
    };
    let joined = || labels.join(",");
    if labels.len() > MATCHERS_MAX {
        return Err(bad("group_by", &joined(), "more than 16 labels"));
    }
    for (i, l) in labels.iter().enumerate() {
        if !valid_label_name(l) {
            return Err(bad(
                "group_by",
                &joined(),
                "labels a,b,c ([A-Za-z_][A-Za-z0-9_]*), `...` for all or `-` for none",
            ));
        }
        if labels[..i].contains(l) {
            return Err(bad("group_by", &joined(), "a label twice"));
        }
    }
    Ok(())
}

/// What one route must be, alone (references to receivers are checked
/// with the whole configuration).
fn check_route(route: &Route, is_root: bool) -> Result<(), Reason> {
    if is_root && !route.matchers.is_empty() {
        return Err(Reason::RootMatchers);
    }
    if is_root && route.continue_ {
        return Err(Reason::RootContinue);
    }
    if route.matchers.len() > MATCHERS_MAX {
        return Err(Reason::TooManyMatchers);
    }
    for m in &route.matchers {
        check_matcher(m).map_err(|why| Reason::BadMatcher {
            matcher: m.to_string(),
            why,
        })?;
    }
    if let Some(name) = &route.receiver
        && !valid_receiver_name(name)
    {
        return Err(Reason::BadReceiverName(name.clone()));
    }
    if let Some(group_by) = &route.group_by {
        check_group_by(group_by)?;
    }
    for (key, ms) in [
        ("group_interval", route.group_interval_ms),
        ("repeat_interval", route.repeat_interval_ms),
    ] {
        if ms == Some(0) {
            return Err(bad(key, "0", "at least 1ms"));
        }
    }
    Ok(())
}

/// No control characters (a path or a URL the bridge will use).
fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// What one receiver must be.
fn check_receiver(r: &Receiver) -> Result<(), Reason> {
    if !valid_receiver_name(&r.name) {
        return Err(Reason::BadReceiverName(r.name.clone()));
    }
    if r.rate.burst == 0 || r.rate.burst > BURST_MAX {
        return Err(bad(
            "burst",
            &r.rate.burst.to_string(),
            "a whole number from 1 to 10000",
        ));
    }
    if r.max_alerts > MAX_ALERTS_MAX {
        return Err(bad(
            "max_alerts",
            &r.max_alerts.to_string(),
            "a whole number from 0 (all) to 1024",
        ));
    }
    match &r.kind {
        ReceiverKind::Console => {}
        ReceiverKind::File { path } => {
            if !path.starts_with('/') || path.len() > PATH_MAX || !printable(path) {
                return Err(bad("path", path, "an absolute path of at most 256 bytes"));
            }
        }
        ReceiverKind::Webhook { url, body } => {
            let host = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
            let ok = host.is_some_and(|h| !h.is_empty() && !h.starts_with('/'))
                && url.len() <= URL_MAX
                && !url.chars().any(|c| c.is_control() || c.is_whitespace());
            if !ok {
                return Err(bad(
                    "url",
                    url,
                    "http://HOST/... or https://HOST/..., at most 512 bytes, no spaces",
                ));
            }
            if let WebhookBody::Chat { to, template } = body {
                if to.is_empty() || to.len() > TO_MAX || !printable(to) {
                    return Err(bad("to", to, "1 to 64 bytes"));
                }
                if template.len() > TEMPLATE_MAX {
                    return Err(bad("template", template, "at most 512 bytes"));
                }
                check_template(template).map_err(|why| bad("template", template, why))?;
            }
        }
    }
    Ok(())
}

/// Everything [`parse`] checks, for a configuration from anywhere: each
/// receiver and route alone, unique receiver names, the root's receiver,
/// every `receiver=` naming one, the tree's size and depth (walked
/// without recursion, so no tree can overflow the stack here).
pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, r) in config.receivers.iter().enumerate() {
        let err = |reason| ConfigError { line: r.line, reason };
        if i >= RECEIVERS_MAX {
            return Err(err(Reason::TooManyReceivers));
        }
        check_receiver(r).map_err(err)?;
        if let Some(&first_line) = names.get(r.name.as_str()) {
            return Err(err(Reason::DuplicateReceiver {
                name: r.name.clone(),
                first_line,
            }));
        }
        names.insert(&r.name, r.line);
    }
    let root = &config.root;
    if root.receiver.is_none() {
        return Err(ConfigError {
            line: root.line,
            reason: Reason::RootWithoutReceiver,
        });
    }
    let mut count = 0;
    // Depth-first in the file's order: children pushed in reverse.
    let mut stack: Vec<(&Route, usize)> = alloc::vec![(root, 1)];
    while let Some((route, depth)) = stack.pop() {
        let err = |reason| ConfigError {
            line: route.line,
            reason,
        };
        count += 1;
        if count > ROUTES_MAX {
            return Err(err(Reason::TooManyRoutes));
        }
        if depth > DEPTH_MAX {
            return Err(err(Reason::TooDeep));
        }
        check_route(route, depth == 1).map_err(err)?;
        if let Some(name) = &route.receiver
            && !names.contains_key(name.as_str())
        {
            return Err(err(Reason::UnknownReceiver(name.clone())));
        }
        if count + stack.len() + route.routes.len() > ROUTES_MAX {
            return Err(err(Reason::TooManyRoutes));
        }
        stack.extend(route.routes.iter().rev().map(|r| (r, depth + 1)));
    }
    Ok(())
}
