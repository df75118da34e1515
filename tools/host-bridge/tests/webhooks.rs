//! The webhook sender against local receivers (std `TcpListener`s in
//! threads of the test, a thread per connection): delivered as sent,
//! retried through a receiver that is down, failing, slow or limiting,
//! refused at once for a 4xx, a malformed URL and a full queue, and a dead
//! receiver does not hold up a healthy one. `https://` against a TLS
//! receiver (tokio-rustls on its own runtime, its certificate made by
//! rcgen for `localhost` and 127.0.0.1): delivered when its certificate is
//! trusted, given up at once when it is not, retried when the handshake
//! never ends; and `--webhook-ca` files.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use host_bridge::webhook::{Outcome, QUEUE_FULL, WebhookConfig, Webhooks, load_roots};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Generous: only reached when something is broken.
const DEADLINE: Duration = Duration::from_secs(30);

/// Short timeouts and pauses, so that the tests are quick.
fn quick() -> WebhookConfig {
    WebhookConfig {
        timeout: Duration::from_millis(500),
        first_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(400),
        ..WebhookConfig::default()
    }
}

/// A request as the receiver read it.
#[derive(Clone, Debug)]
struct Request {
    line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    at: Instant,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the receiver does with its `n`-th request (0-based).
#[derive(Clone, Copy)]
enum Reply {
    /// Answers with this status (and these extra header lines).
    Status(u16, &'static str),
    /// Sleeps, then answers with this status.
    Slow(Duration, u16),
}

struct Receiver {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    /// Listens on a new port of 127.0.0.1.
    fn start(reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Receiver {
        Receiver::on(TcpListener::bind("127.0.0.1:0").unwrap(), reply)
    }

    fn on(listener: TcpListener, reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let reply = Arc::new(reply);
        let count = Arc::new(AtomicUsize::new(0));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (reply, seen, count) = (reply.clone(), seen.clone(), count.clone());
                std::thread::spawn(move || serve(conn, &*reply, &seen, &count));
            }
        });
        Receiver { addr, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(mut conn: TcpStream, reply: &dyn Fn(usize) -> Reply, seen: &Mutex<Vec<Request>>, count: &AtomicUsize) {
    let Some(request) = read_request(&mut conn) else { return };
    seen.lock().unwrap().push(request);
    let (pause, status, extra) = match reply(count.fetch_add(1, Ordering::SeqCst)) {
        Reply::Status(status, extra) => (Duration::ZERO, status, extra),
        Reply::Slow(pause, status) => (pause, status, ""),
    };
    std::thread::sleep(pause);
    let body = format!("{{\"status\": {status}}}");
    let _ = write!(
        conn,
        "HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
}

fn read_request(conn: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(request) = parse_request(&buf) {
            return Some(request);
        }
        let n = conn.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The request at the start of `buf`, once it is all there.
fn parse_request(buf: &[u8]) -> Option<Request> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8(buf[..end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let line = lines.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body = buf[end + 4..].to_vec();
    if body.len() < len {
        return None;
    }
    Some(Request {
        line,
        headers,
        body,
        at: Instant::now(),
    })
}

/// A port nothing listens on (bound, then closed).
fn dead_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// The outcome of notification `id` (others that come first are kept in
/// `early`).
fn outcome_of(webhooks: &mut Webhooks, id: u64, early: &mut Vec<Outcome>) -> Outcome {
    if let Some(i) = early.iter().position(|o| o.id == id) {
        return early.remove(i);
    }
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let o = webhooks
            .recv_timeout(left)
            .unwrap_or_else(|| panic!("no outcome for notification {id}"));
        if o.id == id {
            return o;
        }
        early.push(o);
    }
}

fn one(webhooks: &mut Webhooks, id: u64) -> Outcome {
    outcome_of(webhooks, id, &mut Vec::new())
}

const ALERT: &[u8] =
    br#"{"version":"4","status":"firing","receiver":"chat","alerts":[{"labels":{"alertname":"LossNaN"}}]}"#;

#[test]
fn a_200_is_delivered_as_sent() {
    let rx = Receiver::start(|_| Reply::Status(200, ""));
    let mut webhooks = Webhooks::new(quick());
    webhooks
        .submit(7, 1, &rx.url("/hooks/alert?team=ml"), ALERT.to_vec())
        .unwrap();
    let o = one(&mut webhooks, 1);
    assert_eq!(
        o,
        Outcome {
            origin: 7,
            id: 1,
            delivered: true,
            status: 200,
            attempts: 1,
            error: String::new(),
        }
    );
    let got = rx.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].line, "POST /hooks/alert?team=ml HTTP/1.1");
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    assert_eq!(got[0].header("host"), Some(rx.addr.to_string().as_str()));
    assert_eq!(got[0].header("connection"), Some("close"));
    assert_eq!(got[0].body, ALERT);
    assert_eq!(webhooks.pending(), 0);
    // The link's message.
    match o.to_message() {
        aether_abi::link::LinkMessage::Notified {
            id,
            delivered,
            status,
            attempts,
            error,
        } => assert_eq!((id, delivered, status, attempts, error.as_str()), (1, true, 200, 1, "")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_receiver_that_comes_up_later_gets_it_on_a_retry() {
    let addr = dead_port();
    // The default pauses: 250 ms, 500 ms, 1 s: attempts at 0, 0.25, 0.75 s.
    let mut webhooks = Webhooks::new(WebhookConfig {
        timeout: Duration::from_millis(500),
        ..WebhookConfig::default()
    });
    let sent = Instant::now();
    webhooks
        .submit(0, 2, &format!("http://{addr}/up"), ALERT.to_vec())
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let rx = Receiver::on(TcpListener::bind(addr).expect("the port again"), |_| {
        Reply::Status(204, "")
    });
    let o = one(&mut webhooks, 2);
    assert!(o.delivered, "{o:?}");
    assert_eq!(o.status, 204);
    assert!(o.attempts > 1, "{o:?}");
    assert_eq!(rx.requests().len(), 1);
    assert!(sent.elapsed() < Duration::from_secs(3), "{:?}", sent.elapsed());
}

#[test]
fn two_500s_then_a_200() {
    let rx = Receiver::start(|n| Reply::Status(if n < 2 { 500 } else { 200 }, ""));
    let mut webhooks = Webhooks::new(quick());
    webhooks.submit(0, 3, &rx.url("/"), ALERT.to_vec()).unwrap();
    let o = one(&mut webhooks, 3);
    assert_eq!((o.delivered, o.status, o.attempts), (true, 200, 3), "{o:?}");
    let got = rx.requests();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.body == ALERT));
    // The pauses double: 50 ms, then 100 ms.
    assert!(got[1].at - got[0].at >= Duration::from_millis(45));
    assert!(got[2].at - got[1].at >= Duration::from_millis(95));
}

#[test]
fn always_500_gives_up_after_the_last_attempt() {
    let rx = Receiver::start(|_| Reply::Status(503, ""));
    let mut webhooks = Webhooks::new(WebhookConfig { attempts: 3, ..quick() });
    webhooks.submit(0, 4, &rx.url("/"), ALERT.to_vec()).unwrap();
    let o = one(&mut webhooks, 4);
    assert_eq!((o.delivered, o.status, o.attempts), (false, 503, 3), "{o:?}");
    assert!(
        o.error.starts_with("gave up after 3 attempts: HTTP 503 Whatever"),
        "{}",
        o.error
    );
    assert_eq!(rx.requests().len(), 3);
}

#[test]
fn a_400_is_given_up_after_one_attempt() {
    let rx = Receiver::start(|_| Reply::Status(400, ""));
    let mut webhooks = Webhooks::new(quick());
    webhooks.submit(0, 5, &rx.url("/"), b"{}".to_vec()).unwrap();
    let o = one(&mut webhooks, 5);
    assert_eq!((o.delivered, o.status, o.attempts), (false, 400, 1), "{o:?}");
    // The start of the receiver's body is in the error.
    assert_eq!(o.error, "HTTP 400 Whatever: {\"status\": 400}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(rx.requests().len(), 1);
}

#[test]
fn a_slow_receiver_times_out_and_is_retried() {
    let rx = Receiver::start(|n| {
        if n == 0 {
            Reply::Slow(Duration::from_millis(1500), 200)
        } else {
            Reply::Status(200, "")
        }
    });
    let mut webhooks = Webhooks::new(WebhookConfig {
        timeout: Duration::from_millis(300),
        ..quick()
    });
    let sent = Instant::now();
    webhooks.submit(0, 6, &rx.url("/"), ALERT.to_vec()).unwrap();
    let o = one(&mut webhooks, 6);
    assert_eq!((o.delivered, o.status, o.attempts), (true, 200, 2), "{o:?}");
    // It did not wait for the slow answer.
    assert!(sent.elapsed() < Duration::from_millis(1200), "{:?}", sent.elapsed());

    // Slow every time: the error says so.
    let rx = Receiver::start(|_| Reply::Slow(Duration::from_millis(1000), 200));
    let mut webhooks = Webhooks::new(WebhookConfig {
        timeout: Duration::from_millis(200),
        attempts: 2,
        ..quick()
    });
    webhooks.submit(0, 7, &rx.url("/"), ALERT.to_vec()).unwrap();
    let o = one(&mut webhooks, 7);
    assert_eq!((o.delivered, o.status, o.attempts), (false, 0, 2), "{o:?}");
    assert_eq!(o.error, "gave up after 2 attempts: no answer within 200 ms");
}

#[test]
fn retry_after_is_honoured_and_capped() {
    let rx = Receiver::start(|n| {
        if n == 0 {
            Reply::Status(429, "Retry-After: 1\r\n")
        } else {
            Reply::Status(200, "")
        }
    });
    let mut webhooks = Webhooks::new(quick());
    webhooks.submit(0, 8, &rx.url("/"), ALERT.to_vec()).unwrap();
    let o = one(&mut webhooks, 8);
    assert_eq!((o.delivered, o.attempts), (true, 2), "{o:?}");
    let got = rx.requests();
    let pause = got[1].at - got[0].at;
    assert!(pause >= Duration::from_millis(950), "{pause:?}");

    // An hour is cut to the cap.
    let rx = Receiver::start(|n| {
        if n == 0 {
            Reply::Status(503, "Retry-After: 3600\r\n")
        } else {
            Reply::Status(200, "")
        }
    });
    let mut webhooks = Webhooks::new(WebhookConfig {
        retry_after_max: Duration::from_millis(300),
        ..quick()
    });
    webhooks.submit(0, 9, &rx.url("/"), ALERT.to_vec()).unwrap();
    let o = one(&mut webhooks, 9);
    assert_eq!((o.delivered, o.attempts), (true, 2), "{o:?}");
    let got = rx.requests();
    let pause = got[1].at - got[0].at;
    assert!(
        pause >= Duration::from_millis(290) && pause < Duration::from_secs(2),
        "{pause:?}"
    );
}

#[test]
fn dead_receivers_do_not_hold_up_a_healthy_one() {
    // Connections accepted by the kernel and never answered: every attempt
    // runs to its timeout. More of them than there are slots in all (4),
    // but a receiver gets at most 2 at once.
    let blackhole = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = blackhole.local_addr().unwrap();
    let refused = dead_port();
    let healthy = Receiver::start(|_| Reply::Status(200, ""));
    let mut webhooks = Webhooks::new(WebhookConfig {
        timeout: Duration::from_millis(400),
        attempts: 3,
        concurrency: 4,
        per_receiver: 2,
        ..quick()
    });
    let sent = Instant::now();
    for id in 100..106 {
        webhooks
            .submit(0, id, &format!("http://{silent}/"), ALERT.to_vec())
            .unwrap();
    }
    webhooks
        .submit(0, 200, &format!("http://{refused}/"), ALERT.to_vec())
        .unwrap();
    // Let the dead ones take their slots first.
    std::thread::sleep(Duration::from_millis(100));
    webhooks.submit(0, 1, &healthy.url("/"), ALERT.to_vec()).unwrap();
    let mut early = Vec::new();
    let o = outcome_of(&mut webhooks, 1, &mut early);
    let healthy_after = sent.elapsed();
    assert!(o.delivered, "{o:?}");
    // Before the first timeout of a silent one: it never waited for a slot.
    assert!(healthy_after < Duration::from_millis(400), "{healthy_after:?}");
    assert!(early.iter().all(|o| o.id == 200), "{early:?}");

    // The dead ones end later, given up.
    let o = outcome_of(&mut webhooks, 200, &mut early);
    assert_eq!((o.delivered, o.status, o.attempts), (false, 0, 3), "{o:?}");
    assert!(
        o.error.starts_with("gave up after 3 attempts: connecting: "),
        "{}",
        o.error
    );
    for id in 100..106 {
        let o = outcome_of(&mut webhooks, id, &mut early);
        assert_eq!((o.delivered, o.status, o.attempts), (false, 0, 3), "{o:?}");
        assert_eq!(o.error, "gave up after 3 attempts: no answer within 400 ms");
    }
    // 18 attempts of 400 ms, 2 at a time.
    assert!(sent.elapsed() > Duration::from_millis(3600), "{:?}", sent.elapsed());
    assert!(healthy_after * 4 < sent.elapsed());
    assert_eq!(webhooks.pending(), 0);
    drop(blackhole);
}

#[test]
fn malformed_urls_are_refused_at_once() {
    let mut webhooks = Webhooks::new(quick());
    let o = webhooks
        .submit(3, 10, "ftp://example.invalid/send", ALERT.to_vec())
        .unwrap_err();
    assert_eq!(
        o,
        Outcome {
            origin: 3,
            id: 10,
            delivered: false,
            status: 0,
            attempts: 0,
            error: "a malformed URL: only http[s]://host[:port]/path is supported".into(),
        }
    );
    for garbage in [
        "not a url",
        "",
        "ftp://host/",
        "http://",
        "https://",
        "http://host:70000/",
        "https://host:0/",
    ] {
        let o = webhooks.submit(3, 11, garbage, ALERT.to_vec()).unwrap_err();
        assert_eq!((o.delivered, o.status, o.attempts), (false, 0, 0), "{garbage:?}");
        assert!(o.error.starts_with("a malformed URL"), "{garbage:?}: {}", o.error);
    }
    assert_eq!(webhooks.pending(), 0);
    assert!(webhooks.take_outcomes().is_empty());
}

#[test]
fn a_full_queue_refuses_at_once() {
    let blackhole = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", blackhole.local_addr().unwrap());
    let mut webhooks = Webhooks::new(WebhookConfig {
        max_pending: 2,
        timeout: Duration::from_millis(300),
        attempts: 1,
        ..quick()
    });
    webhooks.submit(0, 1, &url, ALERT.to_vec()).unwrap();
    webhooks.submit(0, 2, &url, ALERT.to_vec()).unwrap();
    let started = Instant::now();
    let o = webhooks.submit(0, 3, &url, ALERT.to_vec()).unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!((o.id, o.delivered, o.status, o.attempts), (3, false, 0, 0));
    assert_eq!(o.error, QUEUE_FULL);
    assert_eq!(webhooks.pending(), 2);
    // Room again once they are answered.
    let mut early = Vec::new();
    for id in [1, 2] {
        let o = outcome_of(&mut webhooks, id, &mut early);
        assert!(!o.delivered);
    }
    let deadline = Instant::now() + DEADLINE;
    while webhooks.pending() > 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    webhooks.submit(0, 4, &url, ALERT.to_vec()).unwrap();
    drop(blackhole);
}

/// A TLS receiver: tokio-rustls on a runtime of its own thread, a task per
/// connection, answering request `n` (0-based) with `status(n)`; its
/// certificate is self-signed for `names` (made now).
struct TlsReceiver {
    port: u16,
    cert: CertificateDer<'static>,
    /// The certificate and its key in PEM.
    pem: String,
    requests: Arc<Mutex<Vec<Request>>>,
    /// TCP connections accepted.
    connections: Arc<AtomicUsize>,
}

impl TlsReceiver {
    fn start(names: &[&str], status: impl Fn(usize) -> u16 + Send + Sync + 'static) -> TlsReceiver {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let made = rcgen::generate_simple_self_signed(names).unwrap();
        let cert = made.cert.der().clone();
        let pem = format!("{}{}", made.signing_key.serialize_pem(), made.cert.pem());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (seen, accepted, status) = (requests.clone(), connections.clone(), Arc::new(status));
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let count = Arc::new(AtomicUsize::new(0));
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let (acceptor, seen, count, status) =
                        (acceptor.clone(), seen.clone(), count.clone(), status.clone());
                    tokio::spawn(async move {
                        // A client that does not trust us ends it here.
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 4096];
                        let request = loop {
                            if let Some(request) = parse_request(&buf) {
                                break request;
                            }
                            match tls.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        seen.lock().unwrap().push(request);
                        let status = status(count.fetch_add(1, Ordering::SeqCst));
                        let body = format!("{{\"status\": {status}}}");
                        let answer = format!(
                            "HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = tls.write_all(answer.as_bytes()).await;
                        let _ = tls.shutdown().await;
                    });
                }
            });
        });
        TlsReceiver {
            port,
            cert,
            pem,
            requests,
            connections,
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// Trusting `cert` besides the public roots.
fn trusting(cert: &CertificateDer<'static>) -> WebhookConfig {
    WebhookConfig {
        extra_roots: vec![cert.clone()],
        ..quick()
    }
}

#[test]
fn https_with_a_trusted_certificate_is_delivered_by_name_and_by_ip() {
    let rx = TlsReceiver::start(&["localhost", "127.0.0.1"], |_| 200);
    let mut webhooks = Webhooks::new(trusting(&rx.cert));
    let by_name = format!("https://localhost:{}/v21.0/123/messages", rx.port);
    let by_ip = format!("https://127.0.0.1:{}/hook?x=1", rx.port);
    webhooks.submit(1, 1, &by_name, ALERT.to_vec()).unwrap();
    let o = one(&mut webhooks, 1);
    assert_eq!(
        o,
        Outcome {
            origin: 1,
            id: 1,
            delivered: true,
            status: 200,
            attempts: 1,
            error: String::new(),
        }
    );
    webhooks.submit(1, 2, &by_ip, b"{\"ip\": true}".to_vec()).unwrap();
    let o = one(&mut webhooks, 2);
    assert_eq!((o.delivered, o.status, o.attempts), (true, 200, 1), "{o:?}");
    let got = rx.requests();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].line, "POST /v21.0/123/messages HTTP/1.1");
    assert_eq!(got[0].header("host"), Some(format!("localhost:{}", rx.port).as_str()));
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    assert_eq!(got[0].body, ALERT);
    assert_eq!(got[1].line, "POST /hook?x=1 HTTP/1.1");
    assert_eq!(got[1].header("host"), Some(format!("127.0.0.1:{}", rx.port).as_str()));
    assert_eq!(got[1].header("content-type"), Some("application/json"));
    assert_eq!(got[1].body, b"{\"ip\": true}");
    assert_eq!(webhooks.pending(), 0);
}

#[test]
fn https_answers_are_handled_as_for_http() {
    // A 503 retried, then delivered; a 400 given up with its body.
    let rx = TlsReceiver::start(&["localhost"], |n| if n == 0 { 503 } else { 200 });
    let mut webhooks = Webhooks::new(trusting(&rx.cert));
    webhooks
        .submit(0, 1, &format!("https://localhost:{}/", rx.port), ALERT.to_vec())
        .unwrap();
    let o = one(&mut webhooks, 1);
    assert_eq!((o.delivered, o.status, o.attempts), (true, 200, 2), "{o:?}");
    let rx = TlsReceiver::start(&["localhost"], |_| 400);
    let mut webhooks = Webhooks::new(trusting(&rx.cert));
    webhooks
        .submit(0, 2, &format!("https://localhost:{}/", rx.port), ALERT.to_vec())
        .unwrap();
    let o = one(&mut webhooks, 2);
    assert_eq!((o.delivered, o.status, o.attempts), (false, 400, 1), "{o:?}");
    assert_eq!(o.error, "HTTP 400 Whatever: {\"status\": 400}");
}

#[test]
fn https_with_an_untrusted_certificate_is_given_up_at_once() {
    let rx = TlsReceiver::start(&["localhost", "127.0.0.1"], |_| 200);
    // The public roots only.
    let mut webhooks = Webhooks::new(quick());
    for (id, host) in [(1, "localhost"), (2, "127.0.0.1")] {
        webhooks
            .submit(0, id, &format!("https://{host}:{}/", rx.port), ALERT.to_vec())
            .unwrap();
        let o = one(&mut webhooks, id);
        assert_eq!(
            o,
            Outcome {
                origin: 0,
                id,
                delivered: false,
                status: 0,
                attempts: 1,
                error: "TLS: invalid peer certificate: UnknownIssuer".into(),
            }
        );
    }
    // Trusted, but for another name.
    let other = TlsReceiver::start(&["relay.example"], |_| 200);
    let mut webhooks = Webhooks::new(trusting(&other.cert));
    webhooks
        .submit(0, 3, &format!("https://localhost:{}/", other.port), ALERT.to_vec())
        .unwrap();
    let o = one(&mut webhooks, 3);
    assert_eq!((o.delivered, o.status, o.attempts), (false, 0, 1), "{o:?}");
    assert!(
        o.error
            .starts_with("TLS: invalid peer certificate: certificate not valid for name \"localhost\""),
        "{}",
        o.error
    );
    // One connection each, no request.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(rx.connections.load(Ordering::SeqCst), 2);
    assert_eq!(other.connections.load(Ordering::SeqCst), 1);
    assert!(rx.requests().is_empty() && other.requests().is_empty());
}

#[test]
fn a_tls_handshake_that_never_ends_times_out_and_is_retried() {
    // Accepts connections and holds them, saying nothing.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(conn);
        }
    });
    let mut webhooks = Webhooks::new(WebhookConfig {
        timeout: Duration::from_millis(200),
        attempts: 3,
        ..quick()
    });
    let sent = Instant::now();
    webhooks
        .submit(0, 1, &format!("https://127.0.0.1:{port}/"), ALERT.to_vec())
        .unwrap();
    let o = one(&mut webhooks, 1);
    assert_eq!((o.delivered, o.status, o.attempts), (false, 0, 3), "{o:?}");
    assert_eq!(o.error, "gave up after 3 attempts: TLS: no handshake within 200 ms");
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    // 3 timeouts and the pauses of 50 and 100 ms.
    assert!(sent.elapsed() >= Duration::from_millis(740), "{:?}", sent.elapsed());

    // Closed at once (an EOF or a reset, as it happens): retried as a
    // connection error.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    webhooks
        .submit(0, 2, &format!("https://127.0.0.1:{port}/"), ALERT.to_vec())
        .unwrap();
    let o = one(&mut webhooks, 2);
    assert_eq!((o.delivered, o.status, o.attempts), (false, 0, 3), "{o:?}");
    assert!(
        o.error == "gave up after 3 attempts: TLS: the receiver closed the connection in the handshake"
            || o.error.starts_with("gave up after 3 attempts: TLS handshake: "),
        "{}",
        o.error
    );
}

#[test]
fn webhook_ca_files() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        TlsReceiver::start(&["localhost"], |_| 200),
        TlsReceiver::start(&["localhost"], |_| 200),
    );
    // Two certificates and a key: the certificates, in order.
    let both = dir.path().join("both.pem");
    std::fs::write(&both, format!("{}{}", a.pem, b.pem)).unwrap();
    assert_eq!(load_roots(&both).unwrap(), vec![a.cert.clone(), b.cert.clone()]);
    // Trusted from the file, delivered.
    let mut webhooks = Webhooks::new(WebhookConfig {
        extra_roots: load_roots(&both).unwrap(),
        ..quick()
    });
    webhooks
        .submit(0, 1, &format!("https://localhost:{}/", b.port), ALERT.to_vec())
        .unwrap();
    assert!(one(&mut webhooks, 1).delivered);

    let bad = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let e = load_roots(&path).unwrap_err();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
        e
    };
    let e = bad("empty.pem", "");
    assert!(e.ends_with("no PEM certificate (BEGIN CERTIFICATE) in it"), "{e}");
    let key_only = a.pem.split("-----BEGIN CERTIFICATE-----").next().unwrap();
    assert!(bad("key.pem", key_only).contains("no PEM certificate"));
    let e = bad(
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    );
    assert!(e.contains("certificate 1: "), "{e}");
    let e = bad("cut.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");
    assert!(e.contains("not a PEM file"), "{e}");
    let missing = dir.path().join("missing.pem");
    assert!(
        load_roots(&missing)
            .unwrap_err()
            .starts_with(&missing.display().to_string())
    );
}

#[test]
fn serve_refuses_a_bad_webhook_ca_and_takes_a_good_one() {
    const BRIDGE: &str = env!("CARGO_BIN_EXE_host-bridge");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate\n").unwrap();
    let serve = |ca: &std::path::Path| {
        let mut command = std::process::Command::new(BRIDGE);
        command
            .arg("serve")
            .arg("--shm")
            .arg(dir.path().join("no-region"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(["--port", "0", "--webhook-ca"])
            .arg(ca)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        command
    };
    let out = serve(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--webhook-ca"), "{stderr}");
    assert!(stderr.contains("no PEM certificate"), "{stderr}");

    let rx = TlsReceiver::start(&["localhost"], |_| 200);
    let good = dir.path().join("good.pem");
    std::fs::write(&good, &rx.pem).unwrap();
    let mut child = serve(&good).spawn().unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    // It runs, waiting for the region; SIGTERM ends it.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert_eq!(
        line.trim_end(),
        "host-bridge: https webhooks trust 1 extra certificate(s) (--webhook-ca)"
    );
    assert!(status.success(), "{status:?}");
}
