//! The HTTP API (docs/http-api.yaml): JSON over HTTP/1.1 on 127.0.0.1,
//! bearer-token protected, answered by opsd. The guest is the source of
//! truth: every request goes over the link as `LinkMessage::Api { id,
//! request }` and the answer comes back as `ApiReply { id, reply }`; a
//! [`JobError`] becomes its [`JobError::http_status`]. The metrics
//! (`GET /metrics`, `GET /jobs/{id}/metrics`) go the same way as
//! `Export { id, job_id }`, answered by `ExportChunk`s of that id, joined
//! in order up to the last one ([`ExportText`], at most `EXPORT_MAX`
//! bytes) and served as Prometheus text format 0.0.4. Artifact downloads
//! go as `ArtifactFetch { id, .. }`, their `ArtifactBytes` joined per
//! window ([`crate::artifacts::api`]).
//!
//! Threads: the server runs on a tokio runtime; the bridge's loop (sync)
//! owns the [`Bridge`]. They meet in [`channel`]: handlers send requests
//! through an [`ApiClient`], the loop calls [`ApiQueue::pump`] after each
//! poll to hand them to the bridge and route opsd's answers back.
//!
//! Checked here, before anything reaches opsd: the token (401), the body
//! size (64 KiB, 413), the JSON (malformed, unknown fields, wrong types:
//! 400), path and query parameters (400). While opsd is not connected
//! requests are answered 503 at once; an answer that takes longer than
//! [`REPLY_TIMEOUT`] is 504.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use aether_abi::job::{JobError, JobRecord, JobReply, JobRequest, JobResponse, JobSpec, LOG_CHUNK_MAX, Stream};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use crate::artifacts::{self, api::FetchRequest, api::Window};
use crate::bridge::Bridge;
use crate::export::ExportText;

pub const DEFAULT_PORT: u16 = 7878;
/// The largest request body.
pub const BODY_MAX: usize = 64 * 1024;
/// How long a handler waits for opsd's answer.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// The content type of the metrics (Prometheus text format 0.0.4).
pub const EXPOSITION_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The token file in the state directory.
pub const TOKEN_FILE: &str = "token";
/// The fields of a `JobSpec` in JSON (anything else is refused).
const SPEC_FIELDS: [&str; 10] = [
    "name",
    "entrypoint",
    "env",
    "cwd",
    "kind",
    "priority",
    "grace_ms",
    "timeout_ms",
    "stall_ms",
    "max_retries",
];

/// What a handler asks opsd.
pub(crate) enum Call {
    /// `LinkMessage::Api` (boxed as there: a spec is large).
    Job(Box<JobRequest>),
    /// `LinkMessage::Export`: every job's metrics, or one job's.
    Export(Option<u64>),
    /// `LinkMessage::ArtifactFetch`: a window of a stored version.
    Fetch(Box<FetchRequest>),
}

/// What became of a request.
#[derive(Debug)]
pub enum Outcome {
    /// Boxed: a reply carries up to four records.
    Reply(Box<JobReply>),
    /// The parts of an export, joined (`found`: the last part's).
    Export { found: bool, text: Vec<u8> },
    /// The parts of an artifact fetch, joined.
    Fetched(Box<Window>),
    /// opsd is not connected.
    Unavailable,
}

struct Pending {
    call: Call,
    reply: oneshot::Sender<Outcome>,
}

/// The handlers' side of [`channel`].
#[derive(Clone)]
pub struct ApiClient {
    tx: mpsc::Sender<Pending>,
    connected: Arc<AtomicBool>,
}

/// The bridge loop's side of [`channel`].
pub struct ApiQueue {
    rx: mpsc::Receiver<Pending>,
    /// Taken by [`ApiQueue::wait`], handed over by the next pump.
    early: Option<Pending>,
    waiting: HashMap<u32, oneshot::Sender<Outcome>>,
    /// The parts of the exports being answered, by id.
    exports: HashMap<u32, ExportText>,
    /// The parts of the artifact fetches being answered, by id.
    fetches: HashMap<u32, Window>,
    connected: Arc<AtomicBool>,
}

/// A pair joining the HTTP handlers and the bridge's loop.
pub fn channel() -> (ApiClient, ApiQueue) {
    let (tx, rx) = mpsc::channel();
    let connected = Arc::new(AtomicBool::new(false));
    (
        ApiClient {
            tx,
            connected: connected.clone(),
        },
        ApiQueue {
            rx,
            early: None,
            waiting: HashMap::new(),
            exports: HashMap::new(),
            fetches: HashMap::new(),
            connected,
        },
    )
}

impl ApiQueue {
    /// Routes opsd's answers to their handlers and hands new requests to
    /// the bridge (or answers them `Unavailable` while opsd is away). Call
    /// after each [`Bridge::poll`].
    pub fn pump(&mut self, bridge: &mut Bridge) {
        let connected = bridge.pump().is_connected();
        self.connected.store(connected, Ordering::Relaxed);
        for (id, reply) in bridge.take_api_replies() {
            if let Some(tx) = self.waiting.remove(&id) {
                let _ = tx.send(Outcome::Reply(Box::new(reply)));
            }
        }
        for chunk in bridge.take_export_chunks() {
            if !self.waiting.contains_key(&chunk.id) {
                // Its handler gave up: the rest of the text is dropped too.
                self.exports.remove(&chunk.id);
                continue;
            }
            let text = self.exports.entry(chunk.id).or_default();
            text.push(&chunk.text);
            if chunk.last {
                let text = self.exports.remove(&chunk.id).unwrap_or_default().finish();
                if let Some(tx) = self.waiting.remove(&chunk.id) {
                    let _ = tx.send(Outcome::Export {
                        found: chunk.found,
                        text,
                    });
                }
            }
        }
        for part in bridge.take_artifact_bytes() {
            if !self.waiting.contains_key(&part.id) {
                self.fetches.remove(&part.id);
                continue;
            }
            let window = self.fetches.entry(part.id).or_default();
            window.push(&part);
            if part.last || part.error.is_some() {
                let window = self.fetches.remove(&part.id).unwrap_or_default();
                if let Some(tx) = self.waiting.remove(&part.id) {
                    let _ = tx.send(Outcome::Fetched(Box::new(window)));
                }
            }
        }
        while let Some(p) = self.early.take().or_else(|| self.rx.try_recv().ok()) {
            if !connected {
                let _ = p.reply.send(Outcome::Unavailable);
                continue;
            }
            let id = match p.call {
                Call::Job(request) => bridge.submit_api(*request),
                Call::Export(job_id) => bridge.submit_export(job_id),
                Call::Fetch(request) => bridge.submit_fetch(*request),
            };
            self.waiting.insert(id, p.reply);
        }
        // Handlers that gave up (timeout, client gone), and their parts.
        self.waiting.retain(|_, tx| !tx.is_closed());
        self.exports.retain(|id, _| self.waiting.contains_key(id));
        self.fetches.retain(|id, _| self.waiting.contains_key(id));
    }
}

impl ApiQueue {
    /// Requests sent to opsd and not answered yet.
    pub fn outstanding(&self) -> usize {
        self.waiting.len()
    }

    /// Sleeps up to `timeout`, waking early when a request arrives (the
    /// bridge loop's pause between polls: a request is sent at once).
    pub fn wait(&mut self, timeout: Duration) {
        if self.early.is_none()
            && let Ok(p) = self.rx.recv_timeout(timeout)
        {
            self.early = Some(p);
        }
    }
}

/// Why a request failed.
#[derive(Debug)]
pub enum ApiError {
    Job(JobError),
    BadRequest(String),
    Unauthorized,
    Unavailable,
    Timeout,
    /// opsd answered with a response of another request kind.
    BadGateway(String),
    /// Any other status, with the `error` code and the message.
    Status(StatusCode, &'static str, String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, message) = match self {
            ApiError::Job(e) => (
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                serde_json::to_value(e).unwrap_or_default(),
                e.to_string(),
            ),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, json!("bad_request"), m),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                json!("unauthorized"),
                "a valid bearer token is required".into(),
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!("opsd_unavailable"),
                "opsd is not connected to the bridge".into(),
            ),
            ApiError::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                json!("timeout"),
                "opsd did not answer in time".into(),
            ),
            ApiError::BadGateway(m) => (StatusCode::BAD_GATEWAY, json!("bad_gateway"), m),
            ApiError::Status(status, error, m) => (status, json!(error), m),
        };
        let mut response = (status, Json(json!({ "error": error, "message": message }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl ApiClient {
    /// opsd is connected (as of the bridge loop's last round).
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Sends a request to opsd and waits for its answer.
    pub async fn call(&self, request: JobRequest) -> Result<JobResponse, ApiError> {
        match self.send(Call::Job(Box::new(request))).await? {
            Outcome::Reply(reply) => (*reply).map_err(ApiError::Job),
            other => Err(ApiError::BadGateway(format!("unexpected answer from opsd: {other:?}"))),
        }
    }

    /// Asks opsd for the metrics' exposition text (every job's, or
    /// `job_id`'s) and waits for all of it. An unknown job is
    /// `JobError::NoSuchJob` (404).
    pub async fn export(&self, job_id: Option<u64>) -> Result<String, ApiError> {
        match self.send(Call::Export(job_id)).await? {
            Outcome::Export { found: false, .. } => Err(ApiError::Job(JobError::NoSuchJob)),
            Outcome::Export { text, .. } => {
                String::from_utf8(text).map_err(|e| ApiError::BadGateway(format!("opsd's metrics are not UTF-8: {e}")))
            }
            Outcome::Unavailable => Err(ApiError::Unavailable),
            other => Err(ApiError::BadGateway(format!(
                "unexpected answer from opsd to an export: {other:?}"
            ))),
        }
    }

    /// Hands `call` to the bridge loop and waits up to [`REPLY_TIMEOUT`].
    pub(crate) async fn send(&self, call: Call) -> Result<Outcome, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending { call, reply })
            .map_err(|_| ApiError::Unavailable)?;
        match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
            Err(_) => Err(ApiError::Timeout),
            Ok(Err(_)) | Ok(Ok(Outcome::Unavailable)) => Err(ApiError::Unavailable),
            Ok(Ok(outcome)) => Ok(outcome),
        }
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) client: ApiClient,
    token: Arc<str>,
}

/// The API's routes over `client`, protected by `token`.
pub fn router(client: ApiClient, token: &str) -> Router {
    let state = AppState {
        client,
        token: Arc::from(token),
    };
    let jobs = Router::new()
        .route("/jobs", post(create_job).get(list_jobs))
        .route("/jobs/{id}", get(get_job))
        .route("/jobs/{id}/stop", post(stop_job))
        .route("/jobs/{id}/logs", get(get_logs))
        .route("/jobs/{id}/wait", get(wait_job))
        .route("/jobs/{id}/metrics", get(job_metrics))
        .route("/metrics", get(all_metrics))
        .route("/artifacts", get(artifacts::api::list))
        .route(
            "/artifacts/{job}/{kind}/{name}/{selector}",
            get(artifacts::api::download),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(jobs)
        .layer(DefaultBodyLimit::max(BODY_MAX))
        .with_state(state)
}

async fn auth(State(state): State<AppState>, headers: HeaderMap, request: Request, next: Next) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(t) if constant_time_eq(t.as_bytes(), state.token.as_bytes()) => next.run(request).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn healthz(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "opsd_connected": state.client.connected() }))
}

/// A `JobSpec` from JSON: an object with known fields only.
pub fn parse_spec(body: &[u8]) -> Result<JobSpec, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| ApiError::BadRequest("the job spec must be a JSON object".into()))?;
    if let Some(unknown) = obj.keys().find(|k| !SPEC_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::BadRequest(format!("unknown field {unknown:?}")));
    }
    serde_json::from_value(value).map_err(|e| ApiError::BadRequest(format!("invalid job spec: {e}")))
}

async fn create_job(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let spec = parse_spec(&body)?;
    match state.client.call(JobRequest::Start(spec)).await? {
        JobResponse::Started { job_id } => Ok((StatusCode::CREATED, Json(json!({ "job_id": job_id }))).into_response()),
        other => Err(unexpected(&other)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    after: Option<u64>,
}

async fn list_jobs(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut after = query.after.unwrap_or(0);
    let mut jobs: Vec<JobRecord> = Vec::new();
    loop {
        match state.client.call(JobRequest::List { after }).await? {
            JobResponse::Jobs { entries, more } => {
                let last = entries.last().map(|r| r.job_id);
                jobs.extend(entries);
                match last {
                    Some(id) if more && id > after => after = id,
                    _ => break,
                }
            }
            other => return Err(unexpected(&other)),
        }
    }
    Ok(Json(json!({ "jobs": jobs })))
}

type IdPath = Result<UrlPath<u64>, axum::extract::rejection::PathRejection>;

fn job_id(path: IdPath) -> Result<u64, ApiError> {
    path.map(|UrlPath(id)| id)
        .map_err(|_| ApiError::BadRequest("the job id must be a non-negative integer".into()))
}

async fn get_job(State(state): State<AppState>, path: IdPath) -> Result<Json<JobRecord>, ApiError> {
    let job_id = job_id(path)?;
    match state.client.call(JobRequest::Status { job_id }).await? {
        JobResponse::Status(record) => Ok(Json(record)),
        other => Err(unexpected(&other)),
    }
}

async fn stop_job(State(state): State<AppState>, path: IdPath) -> Result<Response, ApiError> {
    let job_id = job_id(path)?;
    match state.client.call(JobRequest::Stop { job_id }).await? {
        JobResponse::Stopping => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "job_id": job_id, "status": "stopping" })),
        )
            .into_response()),
        other => Err(unexpected(&other)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitQuery {
    timeout_ms: Option<u64>,
}

/// How long `wait` waits by default, and at most.
pub const WAIT_DEFAULT_MS: u64 = 30_000;
pub const WAIT_MAX_MS: u64 = 600_000;
/// How often `wait` asks opsd.
const WAIT_POLL: Duration = Duration::from_millis(100);

/// The record once the job has ended (a final status: no retry follows),
/// or, when `timeout_ms` passes first, the current one; the header
/// `Aether-Job-Ended` says which.
async fn wait_job(
    State(state): State<AppState>,
    path: IdPath,
    query: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let job_id = job_id(path)?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let timeout = Duration::from_millis(query.timeout_ms.unwrap_or(WAIT_DEFAULT_MS).min(WAIT_MAX_MS));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let record = match state.client.call(JobRequest::Status { job_id }).await? {
            JobResponse::Status(record) => record,
            other => return Err(unexpected(&other)),
        };
        let ended = record.status.is_terminal();
        if ended || tokio::time::Instant::now() >= deadline {
            let mut response = Json(record).into_response();
            response.headers_mut().insert(
                "aether-job-ended",
                HeaderValue::from_static(if ended { "true" } else { "false" }),
            );
            return Ok(response);
        }
        tokio::time::sleep(WAIT_POLL.min(deadline.saturating_duration_since(tokio::time::Instant::now()))).await;
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    offset: Option<u64>,
    stream: Option<Stream>,
    max: Option<u64>,
    follow: Option<bool>,
}

/// Bytes a log request returns by default, and at most.
pub const LOGS_DEFAULT_MAX: u64 = 64 * 1024;
pub const LOGS_MAX: u64 = 1024 * 1024;
/// How often a followed log asks opsd for more when it had nothing.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// What [`read_logs`] read.
struct LogRead {
    /// Where the bytes start (later than asked if opsd dropped those).
    start: u64,
    bytes: Vec<u8>,
    /// They reach the end of an ended job's stream.
    eof: bool,
    /// When the first byte arrived (unix ms), if opsd knows.
    ts_ms: Option<u64>,
}

/// Up to `max` bytes of a stream from `offset` (several `Logs` calls of at
/// most [`LOG_CHUNK_MAX`]).
async fn read_logs(
    client: &ApiClient,
    job_id: u64,
    stream: Stream,
    offset: u64,
    max: u64,
) -> Result<LogRead, ApiError> {
    let mut start = None;
    let mut first_ts = None;
    let mut bytes = Vec::new();
    let read = |start: Option<u64>, bytes, eof, ts_ms| LogRead {
        start: start.unwrap_or(offset),
        bytes,
        eof,
        ts_ms,
    };
    loop {
        let at = start.map_or(offset, |s: u64| s.saturating_add(bytes.len() as u64));
        let want = (max - bytes.len() as u64).min(LOG_CHUNK_MAX as u64) as u32;
        let request = JobRequest::Logs {
            job_id,
            stream,
            offset: at,
            max: want,
        };
        let (got_at, got, eof, ts_ms) = match client.call(request).await? {
            JobResponse::Logs {
                offset,
                bytes,
                eof,
                ts_ms,
            } => (offset, bytes, eof, ts_ms),
            other => return Err(unexpected(&other)),
        };
        match start {
            None => {
                start = Some(got_at);
                first_ts = ts_ms;
            }
            // opsd dropped bytes between two calls: what is kept follows.
            Some(_) if got_at != at => return Ok(read(start, bytes, false, first_ts)),
            Some(_) => {}
        }
        bytes.extend_from_slice(&got);
        if eof || got.is_empty() || bytes.len() as u64 >= max {
            return Ok(read(start, bytes, eof, first_ts));
        }
    }
}

/// Log bytes as they are (`application/octet-stream`), where they start
/// and whether the job has ended and they reach the end in headers. With
/// `follow=true`, a stream that goes on as the job writes and ends with
/// the job.
async fn get_logs(
    State(state): State<AppState>,
    path: IdPath,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let job_id = job_id(path)?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let stream = query.stream.unwrap_or(Stream::Stdout);
    let offset = query.offset.unwrap_or(0);
    let max = query.max.unwrap_or(LOGS_DEFAULT_MAX).min(LOGS_MAX);
    let LogRead {
        start,
        bytes,
        eof,
        ts_ms,
    } = read_logs(&state.client, job_id, stream, offset, max).await?;
    let next = start.saturating_add(bytes.len() as u64);
    let mut response = if query.follow == Some(true) {
        let first = (bytes, eof, next);
        let client = state.client.clone();
        // Each item: the bytes read, then on from their end until the job
        // has ended and its stream is read to the end (or opsd is gone).
        let body = futures_util::stream::unfold(Some(first), move |st| {
            let client = client.clone();
            async move {
                let (bytes, eof, next) = st?;
                if !bytes.is_empty() {
                    let rest = if eof { None } else { Some((Vec::new(), false, next)) };
                    return Some((Ok::<_, io::Error>(Bytes::from(bytes)), rest));
                }
                if eof {
                    return None;
                }
                let mut at = next;
                loop {
                    match read_logs(&client, job_id, stream, at, LOGS_DEFAULT_MAX).await {
                        Ok(r) if !r.bytes.is_empty() => {
                            let next = r.start.saturating_add(r.bytes.len() as u64);
                            let rest = if r.eof { None } else { Some((Vec::new(), false, next)) };
                            return Some((Ok(Bytes::from(r.bytes)), rest));
                        }
                        Ok(LogRead { eof: true, .. }) | Err(_) => return None,
                        Ok(r) => {
                            at = r.start.max(at);
                            tokio::time::sleep(FOLLOW_POLL).await;
                        }
                    }
                }
            }
        });
        Response::new(Body::from_stream(body))
    } else {
        let mut response = Response::new(Body::from(bytes));
        let h = response.headers_mut();
        h.insert("aether-log-next-offset", HeaderValue::from(next));
        h.insert(
            "aether-log-eof",
            HeaderValue::from_static(if eof { "true" } else { "false" }),
        );
        if let Some(ts) = ts_ms {
            h.insert("aether-log-time", HeaderValue::from(ts));
        }
        response
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert("aether-log-offset", HeaderValue::from(start));
    Ok(response)
}

/// Every job's metrics, Prometheus text format 0.0.4 (query parameters,
/// which scrapers may add, are ignored).
async fn all_metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(exposition(state.client.export(None).await?))
}

/// One job's metrics (404 for a job opsd does not know).
async fn job_metrics(State(state): State<AppState>, path: IdPath) -> Result<Response, ApiError> {
    let job_id = job_id(path)?;
    Ok(exposition(state.client.export(Some(job_id)).await?))
}

fn exposition(text: String) -> Response {
    let mut response = Response::new(Body::from(text));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(EXPOSITION_CONTENT_TYPE));
    response
}

fn unexpected(response: &JobResponse) -> ApiError {
    ApiError::BadGateway(format!("unexpected answer from opsd: {response:?}"))
}

/// The API's bearer token: `state_dir/token`, created (mode 0600, 32
/// random bytes as hex) on first use. Returns the token and the file.
pub fn load_or_create_token(state_dir: &Path) -> io::Result<(String, PathBuf)> {
    let path = state_dir.join(TOKEN_FILE);
    let mut random = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
    let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
        Ok(mut f) => {
            f.write_all(token.as_bytes())?;
            f.write_all(b"\n")?;
            Ok((token, path))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let token = std::fs::read_to_string(&path)?.trim().to_string();
            if token.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is empty", path.display()),
                ));
            }
            Ok((token, path))
        }
        Err(e) => Err(e),
    }
}

/// Serves `router` on `listener` until the process ends (a blocking call
/// that runs its own tokio runtime; start it in a thread of its own).
pub fn serve_blocking(listener: std::net::TcpListener, router: Router) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, router).await
    })
}
