//! The bridge's webhook sender (docs/telemetry.md, "Webhook delivery (the
//! bridge)"): opsd's `Notify { id, url, body }` POSTed as JSON to an
//! `http://` or `https://` receiver, retried with backoff, and how it
//! ended reported as an [`Outcome`] (the link's `Notified`).
//!
//! # Threads and bounds
//!
//! [`Webhooks::submit`] never waits: it checks the URL, takes one of
//! [`WebhookConfig::max_pending`] places (a notification holds its place
//! until it is answered; none left: refused at once with [`QUEUE_FULL`])
//! and spawns the delivery on the sender's own tokio runtime (one worker
//! thread, started on the first notification). The bridge's loop takes the
//! outcomes with [`Webhooks::take_outcomes`] between polls.
//!
//! An attempt holds one of [`WebhookConfig::concurrency`] slots, and one of
//! [`WebhookConfig::per_receiver`] slots of its receiver (`host:port`),
//! only while it runs (at most [`WebhookConfig::timeout`]); the pauses
//! between attempts hold neither. So a dead or slow receiver occupies at
//! most `per_receiver` of the slots, and notifications to the others go on.
//! Notifications are independent: two to the same receiver may arrive in
//! either order (as with Alertmanager; the v4 body carries each alert's
//! status and times).
//!
//! # HTTP
//!
//! A minimal HTTP/1.1 client over tokio's `TcpStream`: one connection per
//! attempt, `POST` with `Content-Type: application/json`, `Content-Length`
//! and `Connection: close`; the answer's head is parsed with `httparse`
//! (1xx heads skipped), and of a refusal's body the first bytes are kept
//! for the error. hyper's client would need crates the tree does not have
//! (`want`, `futures-channel`, `tracing`), and a notification needs no
//! pooling, chunked uploads or redirects.
//!
//! # HTTPS
//!
//! `https://` (port 443 by default) is the same exchange over rustls
//! (`ring` provider; TLS 1.3 and 1.2; ALPN `http/1.1`): the server name
//! (SNI, and the name the certificate must be valid for) is the URL's host,
//! an IP address as an IP address. The certificate is checked against the
//! public roots ([`webpki_roots`], built in: the host's store plays no
//! part) and [`WebhookConfig::extra_roots`] (`serve --webhook-ca FILE`,
//! read with [`load_roots`]). The handshake is part of the attempt and its
//! [`WebhookConfig::timeout`]. A certificate that does not verify (and a
//! server with no protocol version or cipher suite in common) is given up
//! at once: another attempt would meet the same certificate; a handshake
//! cut off or timed out is retried like any connection error.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use aether_abi::link::LinkMessage;
use axum::http::Uri;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::bridge::truncated;

/// The error of a notification refused because [`WebhookConfig::max_pending`]
/// are waiting or in flight.
pub const QUEUE_FULL: &str = "the bridge's webhook queue is full";
/// The most bytes of an answer's head.
const HEAD_MAX: usize = 16 * 1024;
/// The most bytes of a refusal's body kept for the error.
const SNIPPET_MAX: usize = 96;
/// How long an attempt waits for a refusal's body after its head.
const SNIPPET_WAIT: Duration = Duration::from_millis(200);

/// Timeouts, retries and bounds of the sender.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// One attempt: connecting, sending, and the answer's head.
    pub timeout: Duration,
    /// Attempts in all (at least 1).
    pub attempts: u16,
    /// The pause after the first failed attempt; doubled after each one
    /// ([`WebhookConfig::backoff`]).
    pub first_delay: Duration,
    /// The longest pause of the doubling.
    pub max_delay: Duration,
    /// The longest pause a `Retry-After` (seconds) of a 429 or 5xx asks.
    pub retry_after_max: Duration,
    /// Notifications accepted and not yet answered (waiting or in flight).
    pub max_pending: usize,
    /// Attempts running at once, over all receivers.
    pub concurrency: usize,
    /// Attempts running at once to one receiver (`host:port`).
    pub per_receiver: usize,
    /// Certificates trusted for `https://` besides the public roots (a
    /// private CA, a self-signed relay): [`load_roots`].
    pub extra_roots: Vec<CertificateDer<'static>>,
}

impl Default for WebhookConfig {
    /// 5 s per attempt; 6 attempts 250 ms, 500 ms, 1 s, 2 s, 4 s apart; a
    /// `Retry-After` up to 30 s; 256 pending, 16 attempts at once, 4 per
    /// receiver; the public roots only.
    fn default() -> WebhookConfig {
        WebhookConfig {
            timeout: Duration::from_secs(5),
            attempts: 6,
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            retry_after_max: Duration::from_secs(30),
            max_pending: 256,
            concurrency: 16,
            per_receiver: 4,
            extra_roots: Vec::new(),
        }
    }
}

impl WebhookConfig {
    /// The pause after failed attempt `attempt` (1-based) when the receiver
    /// named none: `first_delay * 2^(attempt - 1)`, at most `max_delay`.
    pub fn backoff(&self, attempt: u16) -> Duration {
        let doublings = u32::from(attempt.saturating_sub(1)).min(30);
        self.first_delay.saturating_mul(1 << doublings).min(self.max_delay)
    }
}

/// How a notification ended (`LinkMessage::Notified`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Who asked, as given to [`Webhooks::submit`] (the bridge passes
    /// opsd's incarnation).
    pub origin: u64,
    pub id: u64,
    /// A 2xx answer.
    pub delivered: bool,
    /// The last attempt's HTTP status; 0: it got no answer (or none was
    /// made).
    pub status: u16,
    pub attempts: u16,
    /// Why it was not delivered, for people (empty when it was).
    pub error: String,
}

impl Outcome {
    /// The link's `Notified` (the error cut to fit).
    pub fn to_message(&self) -> LinkMessage {
        LinkMessage::Notified {
            id: self.id,
            delivered: self.delivered,
            status: self.status,
            attempts: self.attempts,
            error: truncated(&self.error),
        }
    }
}

/// Where a notification goes: an `http://` or `https://` URL, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `https://`.
    pub tls: bool,
    /// The host to connect to (an IPv6 address without its brackets).
    pub host: String,
    pub port: u16,
    /// The `Host` header: the URL's authority.
    pub authority: String,
    /// The request target: path and query (`/` when empty).
    pub path: String,
}

impl Target {
    /// `url` checked: `http[s]://host[:port][/path][?query]`; the error
    /// says why not (short: it goes back to opsd in `Notified`).
    pub fn parse(url: &str) -> Result<Target, String> {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let tls = match scheme.as_deref() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err("a malformed URL: only http[s]://host[:port]/path is supported".into()),
        };
        let uri: Uri = url.parse().map_err(|e| format!("a malformed URL: {e}"))?;
        let authority = uri.authority().ok_or("a malformed URL: no host")?;
        if authority.as_str().contains('@') {
            return Err("credentials in the URL are not supported".into());
        }
        let host = authority.host();
        if host.is_empty() {
            return Err("a malformed URL: no host".into());
        }
        // What follows the host (`host()` keeps an IPv6 address' brackets).
        let port = match authority.as_str().get(host.len()..).unwrap_or("") {
            "" if tls => 443,
            "" => 80,
            p => match p.strip_prefix(':').map(str::parse::<u16>) {
                Some(Ok(port)) if port != 0 => port,
                _ => return Err("a malformed URL: a bad port".into()),
            },
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let target = Target {
            tls,
            host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
            port,
            authority: authority.as_str().to_string(),
            path: if path.is_empty() { "/".into() } else { path.into() },
        };
        if tls {
            target.server_name()?;
        }
        Ok(target)
    }

    /// The TLS server name: the host, an IP address as an IP address.
    pub fn server_name(&self) -> Result<ServerName<'static>, String> {
        ServerName::try_from(self.host.as_str())
            .map(|name| name.to_owned())
            .map_err(|_| format!("a malformed URL: {:?} is not a TLS server name", self.host))
    }

    /// The receiver, for the per-receiver limit.
    fn receiver(&self) -> String {
        format!("{}:{}", self.host.to_ascii_lowercase(), self.port)
    }
}

/// The webhook sender: see the module's documentation.
pub struct Webhooks {
    shared: Arc<Shared>,
    /// Started on the first notification.
    runtime: Option<tokio::runtime::Runtime>,
    tx: mpsc::Sender<Outcome>,
    rx: mpsc::Receiver<Outcome>,
}

/// What the deliveries share.
struct Shared {
    config: WebhookConfig,
    /// `https://`: the public roots and [`WebhookConfig::extra_roots`].
    tls: Arc<ClientConfig>,
    /// One permit per notification accepted and not yet answered.
    pending: Arc<Semaphore>,
    /// One permit per attempt running.
    slots: Semaphore,
    /// Per receiver: one permit per attempt running to it (an entry lives
    /// while a notification to that receiver is pending).
    receivers: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Webhooks {
    pub fn new(config: WebhookConfig) -> Webhooks {
        let config = WebhookConfig {
            attempts: config.attempts.max(1),
            max_pending: config.max_pending.max(1),
            concurrency: config.concurrency.max(1),
            per_receiver: config.per_receiver.max(1),
            ..config
        };
        let (tx, rx) = mpsc::channel();
        let tls = tls_config(&config.extra_roots);
        Webhooks {
            shared: Arc::new(Shared {
                tls,
                pending: Arc::new(Semaphore::new(config.max_pending)),
                slots: Semaphore::new(config.concurrency),
                receivers: Mutex::new(HashMap::new()),
                config,
            }),
            runtime: None,
            tx,
            rx,
        }
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.shared.config
    }

    /// Hands `body` for `url` to the sender (never waits); its [`Outcome`]
    /// comes through [`Webhooks::take_outcomes`] later. A notification
    /// that cannot be sent at all (a URL that is not `http[s]://`, a full
    /// queue) is answered at once: `Err` with `attempts` 0.
    pub fn submit(&mut self, origin: u64, id: u64, url: &str, body: Vec<u8>) -> Result<(), Outcome> {
        let refused = |error: String| Outcome {
            origin,
            id,
            delivered: false,
            status: 0,
            attempts: 0,
            error,
        };
        let target = Target::parse(url).map_err(refused)?;
        let place = self
            .shared
            .pending
            .clone()
            .try_acquire_owned()
            .map_err(|_| refused(QUEUE_FULL.into()))?;
        let handle = self
            .handle()
            .map_err(|e| refused(format!("the bridge's webhook sender could not start: {e}")))?;
        let (shared, tx) = (self.shared.clone(), self.tx.clone());
        handle.spawn(async move {
            let outcome = deliver(&shared, origin, id, &target, &body).await;
            // Room for another before this one is seen answered.
            drop(place);
            let _ = tx.send(outcome);
        });
        Ok(())
    }

    /// The outcomes that came since the last call (never waits).
    pub fn take_outcomes(&mut self) -> Vec<Outcome> {
        self.rx.try_iter().collect()
    }

    /// The next outcome, waiting up to `timeout` for it.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Outcome> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Notifications accepted and not yet answered.
    pub fn pending(&self) -> usize {
        self.shared.config.max_pending - self.shared.pending.available_permits()
    }

    fn handle(&mut self) -> std::io::Result<tokio::runtime::Handle> {
        if self.runtime.is_none() {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("webhooks")
                .enable_all()
                .build()?;
            self.runtime = Some(runtime);
        }
        Ok(self
            .runtime
            .as_ref()
            .map(|r| r.handle().clone())
            .expect("started above"))
    }
}

impl Drop for Webhooks {
    /// Notifications in flight are dropped (nobody is left to answer);
    /// the bridge's loop does not wait for the sender's thread.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What one attempt came to.
enum Answer {
    Delivered(u16),
    Retry {
        status: u16,
        error: String,
        after: Option<Duration>,
    },
    GiveUp {
        status: u16,
        error: String,
    },
}

/// All attempts of one notification.
async fn deliver(shared: &Shared, origin: u64, id: u64, target: &Target, body: &[u8]) -> Outcome {
    let config = &shared.config;
    let lane = Lane::join(shared, target.receiver());
    let outcome = |delivered, status, attempts, error| Outcome {
        origin,
        id,
        delivered,
        status,
        attempts,
        error,
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let answer = {
            // Semaphores that are never closed: acquire cannot fail.
            let _receiver = lane.slots.acquire().await;
            let _slot = shared.slots.acquire().await;
            attempt(&shared.tls, target, body, config.timeout).await
        };
        match answer {
            Answer::Delivered(status) => return outcome(true, status, attempts, String::new()),
            Answer::GiveUp { status, error } => return outcome(false, status, attempts, error),
            Answer::Retry { status, error, .. } if attempts >= config.attempts => {
                return outcome(
                    false,
                    status,
                    attempts,
                    format!("gave up after {attempts} attempts: {error}"),
                );
            }
            Answer::Retry { after, .. } => {
                let pause = after.map_or_else(|| config.backoff(attempts), |a| a.min(config.retry_after_max));
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// A notification's share of its receiver's slots; the receiver's entry
/// goes when its last pending notification ends.
struct Lane<'a> {
    shared: &'a Shared,
    receiver: String,
    slots: Arc<Semaphore>,
}

impl<'a> Lane<'a> {
    fn join(shared: &'a Shared, receiver: String) -> Lane<'a> {
        let mut receivers = shared.receivers.lock().unwrap_or_else(|e| e.into_inner());
        let slots = receivers
            .entry(receiver.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(shared.config.per_receiver)))
            .clone();
        Lane {
            shared,
            receiver,
            slots,
        }
    }
}

impl Drop for Lane<'_> {
    fn drop(&mut self) {
        let mut receivers = self.shared.receivers.lock().unwrap_or_else(|e| e.into_inner());
        // Ours and the map's: no other notification to it is pending.
        if Arc::strong_count(&self.slots) == 2 {
            receivers.remove(&self.receiver);
        }
    }
}

/// The head of an answer.
struct Head {
    status: u16,
    reason: String,
    retry_after: Option<u64>,
    chunked: bool,
    /// Bytes after the head read with it.
    rest: Vec<u8>,
}

/// One POST, within `timeout` (a refusal's body gets a little longer, and
/// only until the same deadline).
async fn attempt(tls: &Arc<ClientConfig>, target: &Target, body: &[u8], timeout: Duration) -> Answer {
    let deadline = Instant::now() + timeout;
    let retry = |error: String| Answer::Retry {
        status: 0,
        error,
        after: None,
    };
    let no_answer = || retry(format!("no answer within {} ms", timeout.as_millis()));
    let stream = match tokio::time::timeout_at(deadline, TcpStream::connect((target.host.as_str(), target.port))).await
    {
        Err(_) => return no_answer(),
        Ok(Err(e)) => return retry(format!("connecting: {e}")),
        Ok(Ok(stream)) => stream,
    };
    let _ = stream.set_nodelay(true);
    if !target.tls {
        return exchange(stream, target, body, timeout, deadline).await;
    }
    let name = match target.server_name() {
        Ok(name) => name,
        Err(error) => return Answer::GiveUp { status: 0, error },
    };
    let connector = TlsConnector::from(tls.clone());
    let stream = match tokio::time::timeout_at(deadline, connector.connect(name, stream)).await {
        Err(_) => return retry(format!("TLS: no handshake within {} ms", timeout.as_millis())),
        Ok(Err(e)) => return tls_failure(&e),
        Ok(Ok(stream)) => stream,
    };
    exchange(stream, target, body, timeout, deadline).await
}

/// The request and the answer over a connected `stream` (TCP or TLS),
/// until `deadline`.
async fn exchange<S>(mut stream: S, target: &Target, body: &[u8], timeout: Duration, deadline: Instant) -> Answer
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let head = match tokio::time::timeout_at(deadline, post(&mut stream, target, body)).await {
        Err(_) => {
            return Answer::Retry {
                status: 0,
                error: format!("no answer within {} ms", timeout.as_millis()),
                after: None,
            };
        }
        Ok(Err(error)) => {
            return Answer::Retry {
                status: 0,
                error,
                after: None,
            };
        }
        Ok(Ok(head)) => head,
    };
    let status = head.status;
    if (200..300).contains(&status) {
        return Answer::Delivered(status);
    }
    let snippet_until = deadline.min(Instant::now() + SNIPPET_WAIT);
    let rest = tokio::time::timeout_at(snippet_until, read_snippet(&mut stream, head.rest))
        .await
        .unwrap_or_default();
    let mut error = format!("HTTP {status} {}", head.reason).trim_end().to_string();
    let snippet = snippet(&rest, head.chunked);
    if !snippet.is_empty() {
        error = format!("{error}: {snippet}");
    }
    if status >= 500 || status == 429 {
        Answer::Retry {
            status,
            error,
            after: head.retry_after.map(Duration::from_secs),
        }
    } else {
        Answer::GiveUp { status, error }
    }
}

/// A failed handshake: given up if the certificate did not verify (or the
/// server has nothing in common with us: no attempt will change either),
/// retried if the connection failed.
fn tls_failure(e: &std::io::Error) -> Answer {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(
            tls @ (rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType
            | rustls::Error::PeerIncompatible(_)),
        ) => Answer::GiveUp {
            status: 0,
            error: format!("TLS: {tls}"),
        },
        Some(tls) => Answer::Retry {
            status: 0,
            error: format!("TLS: {tls}"),
            after: None,
        },
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => Answer::Retry {
            status: 0,
            error: "TLS: the receiver closed the connection in the handshake".into(),
            after: None,
        },
        None => Answer::Retry {
            status: 0,
            error: format!("TLS handshake: {e}"),
            after: None,
        },
    }
}

/// The client configuration of `https://`: the public roots and `extra`
/// (those that do not parse left out: [`load_roots`] checks them first).
fn tls_config(extra: &[CertificateDer<'static>]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    roots.add_parsable_certificates(extra.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring's provider supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// The certificates of PEM file `path` (one or more; other sections such
/// as keys are skipped), each checked to be usable as a trust anchor: for
/// [`WebhookConfig::extra_roots`]. The error names the file and why.
pub fn load_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let fail = |why: String| format!("{}: {why}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(format!("{e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("not a PEM file: {e}")))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate (BEGIN CERTIFICATE) in it".into()));
    }
    let mut store = RootCertStore::empty();
    for (n, cert) in certs.iter().enumerate() {
        store
            .add(cert.clone())
            .map_err(|e| fail(format!("certificate {}: {e}", n + 1)))?;
    }
    Ok(certs)
}

/// Sends the request and reads the answer's head.
async fn post<S>(stream: &mut S, target: &Target, body: &[u8]) -> Result<Head, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         User-Agent: aether-host-bridge/{}\r\nConnection: close\r\n\r\n",
        target.path,
        target.authority,
        body.len(),
        env!("CARGO_PKG_VERSION"),
    )
    .into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).await.map_err(|e| format!("sending: {e}"))?;
    // TLS buffers what it writes.
    stream.flush().await.map_err(|e| format!("sending: {e}"))?;
    read_head(stream).await
}

/// Reads up to the end of the first final (non-1xx) head.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Head, String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((len, head)) = parse_head(&buf)? {
            match head {
                // Informational (100 Continue, 103 Early Hints): the answer
                // follows.
                None => {
                    buf.drain(..len);
                    continue;
                }
                Some(mut head) => {
                    head.rest = buf[len..].to_vec();
                    return Ok(head);
                }
            }
        }
        if buf.len() >= HEAD_MAX {
            return Err(format!("an answer head over {} KiB", HEAD_MAX / 1024));
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        if n == 0 {
            return Err(if buf.is_empty() {
                "the receiver closed the connection without answering".into()
            } else {
                "the receiver closed the connection in the middle of its answer".into()
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A complete head at the start of `buf`: its length and the head (`None`
/// for a 1xx one other than 101); `None` while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, Option<Head>)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("a malformed answer: {e}")),
    };
    let status = response.code.unwrap_or(0);
    if (100..200).contains(&status) && status != 101 {
        return Ok(Some((len, None)));
    }
    let value = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let head = Head {
        status,
        reason: response.reason.unwrap_or("").to_string(),
        retry_after: value("retry-after").and_then(|v| v.parse().ok()),
        chunked: value("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")),
        rest: Vec::new(),
    };
    Ok(Some((len, Some(head))))
}

/// `rest` and what follows it, up to a little more than [`SNIPPET_MAX`]
/// bytes or the end of the stream.
async fn read_snippet<S: AsyncRead + Unpin>(stream: &mut S, mut rest: Vec<u8>) -> Vec<u8> {
    let mut chunk = [0u8; 512];
    while rest.len() < SNIPPET_MAX + 16 {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => rest.extend_from_slice(&chunk[..n]),
        }
    }
    rest
}

/// The start of a refusal's body on one line (a chunked body without its
/// first size line).
fn snippet(body: &[u8], chunked: bool) -> String {
    let body = match body.windows(2).position(|w| w == b"\r\n") {
        Some(i) if chunked => &body[i + 2..],
        _ => body,
    };
    let text = String::from_utf8_lossy(&body[..body.len().min(SNIPPET_MAX)]);
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = WebhookConfig::default();
        let pauses: Vec<u128> = (1..=7).map(|n| c.backoff(n).as_millis()).collect();
        assert_eq!(pauses, [250, 500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(c.backoff(u16::MAX), Duration::from_secs(4));
    }

    #[test]
    fn urls() {
        let t = Target::parse("http://127.0.0.1:9093/api/v2/alerts?x=1").unwrap();
        assert_eq!(
            t,
            Target {
                tls: false,
                host: "127.0.0.1".into(),
                port: 9093,
                authority: "127.0.0.1:9093".into(),
                path: "/api/v2/alerts?x=1".into(),
            }
        );
        let t = Target::parse("HTTP://Relay.local").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("Relay.local", 80, "/"));
        let t = Target::parse("http://[::1]:8080/hook").unwrap();
        assert_eq!((t.host.as_str(), t.authority.as_str()), ("::1", "[::1]:8080"));
        let t = Target::parse("https://graph.facebook.com/v21.0/123/messages").unwrap();
        assert_eq!(
            t,
            Target {
                tls: true,
                host: "graph.facebook.com".into(),
                port: 443,
                authority: "graph.facebook.com".into(),
                path: "/v21.0/123/messages".into(),
            }
        );
        assert_eq!(t.server_name(), Ok(ServerName::try_from("graph.facebook.com").unwrap()));
        let t = Target::parse("HTTPS://127.0.0.1:8443").unwrap();
        assert_eq!((t.tls, t.port, t.path.as_str()), (true, 8443, "/"));
        assert!(matches!(t.server_name(), Ok(ServerName::IpAddress(_))));
        let t = Target::parse("https://[::1]/").unwrap();
        assert!(matches!(t.server_name(), Ok(ServerName::IpAddress(_))));
        assert_eq!(Target::parse("http://x").unwrap().port, 80);
        for bad in [
            "",
            "garbage",
            "not a url",
            "ftp://host/x",
            "http://",
            "http:///path",
            "http://host:99999/",
            "http://host:0/",
            "http://host:/",
            "http://a b/",
            "http://host/a\r\nX-Injected: 1",
        ] {
            let e = Target::parse(bad).expect_err(bad);
            assert!(e.starts_with("a malformed URL"), "{bad:?}: {e}");
        }
        assert_eq!(
            Target::parse("http://user:pw@host/"),
            Err("credentials in the URL are not supported".into())
        );
    }

    #[test]
    fn heads() {
        let (len, head) = parse_head(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n\r\nbody")
            .unwrap()
            .unwrap();
        let head = head.unwrap();
        assert_eq!(
            (len, head.status, head.reason.as_str(), head.retry_after),
            (52, 503, "Service Unavailable", Some(7))
        );
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n").unwrap().is_none());
        assert!(matches!(
            parse_head(b"HTTP/1.1 100 Continue\r\n\r\n"),
            Ok(Some((25, None)))
        ));
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert_eq!(
            snippet(b"1a\r\n{\"error\":\n \"bad token\"}\r\n0\r\n\r\n", true),
            "{\"error\": \"bad token\"} 0"
        );
        assert_eq!(snippet(b"", false), "");
    }
}
