//! The artifact routes of the HTTP API (docs/http-api.yaml):
//!
//! * `GET /artifacts[?job_id=N]`: every stored version, opsd's
//!   `Telemetry(Artifacts { job_id, after })` pages joined.
//! * `GET /artifacts/{job}/{kind}/{name}/{selector}` (`latest`, `best`,
//!   `vN` or `N`): the version's bytes, fetched with `ArtifactFetch` one
//!   [`FETCH_MAX`] window after the other (after the first, by the version
//!   it named, so that a new `latest` meanwhile does not mix two files) and
//!   streamed as they come, `Content-Length` the version's size. The
//!   bridge checks the sha256 of what it streams: a mismatch (or opsd
//!   stopping half-way) aborts the body, so a client never takes a short
//!   or wrong file for a whole one.

use std::io;

use aether_abi::artifact::{self as abi, ArtifactInfo, ArtifactKind, CHUNK_MAX, FETCH_MAX, SELECTOR_MAX};
use aether_abi::job::{JobRequest, JobResponse};
use aether_abi::telemetry::{TelemetryRequest, TelemetryResponse};
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Json, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::Digest as _;

use crate::http::{ApiClient, ApiError, AppState, Call, Outcome};

/// One part of opsd's answer to an `ArtifactFetch` (`ArtifactBytes`).
#[derive(Clone, Debug, PartialEq)]
pub struct BytesPart {
    pub id: u32,
    pub version: u32,
    pub size: u64,
    pub digest: [u8; 32],
    pub offset: u64,
    pub last: bool,
    pub error: Option<String>,
    pub bytes: Box<heapless::Vec<u8, CHUNK_MAX>>,
}

/// What an `ArtifactFetch` asks.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchRequest {
    pub job_id: u64,
    pub kind: ArtifactKind,
    pub name: heapless::String<{ abi::NAME_MAX }>,
    pub selector: heapless::String<SELECTOR_MAX>,
    pub offset: u64,
}

/// The parts of one fetch, joined (a window of at most [`FETCH_MAX`]
/// bytes).
#[derive(Debug, Default, PartialEq)]
pub struct Window {
    pub version: u32,
    pub size: u64,
    pub digest: [u8; 32],
    pub offset: u64,
    pub bytes: Vec<u8>,
    /// opsd's reason (no such artifact, a digest that does not match).
    pub error: Option<String>,
    /// The parts did not fit together (the bridge's reason).
    pub bad: Option<String>,
    parts: usize,
}

impl Window {
    /// Adds the next part, in opsd's order.
    pub fn push(&mut self, part: &BytesPart) {
        if self.parts == 0 {
            (self.version, self.size, self.digest, self.offset) = (part.version, part.size, part.digest, part.offset);
            self.error = part.error.clone();
        } else if self.bad.is_none() {
            let at = self.offset + self.bytes.len() as u64;
            if (part.version, part.size, part.digest) != (self.version, self.size, self.digest) {
                self.bad = Some("opsd's parts name different versions".into());
            } else if part.offset != at {
                self.bad = Some(format!("a part at {} where {at} was next", part.offset));
            }
            if part.error.is_some() {
                self.error = part.error.clone();
            }
        }
        self.parts += 1;
        if self.bad.is_none() {
            if self.bytes.len() + part.bytes.len() > FETCH_MAX as usize {
                self.bad = Some(format!("more than {FETCH_MAX} bytes for one fetch"));
            } else {
                self.bytes.extend_from_slice(&part.bytes);
            }
        }
    }
}

impl ApiClient {
    /// Asks opsd for up to [`FETCH_MAX`] bytes of a version and waits for
    /// all of them.
    pub async fn fetch(&self, request: FetchRequest) -> Result<Window, ApiError> {
        match self.send(Call::Fetch(Box::new(request))).await? {
            Outcome::Fetched(w) => Ok(*w),
            other => Err(ApiError::BadGateway(format!(
                "unexpected answer from opsd to a fetch: {other:?}"
            ))),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    job_id: Option<u64>,
}

/// A version as listed.
fn info_json(i: &ArtifactInfo) -> serde_json::Value {
    let mut aliases = Vec::new();
    if i.latest {
        aliases.push("latest");
    }
    if i.best {
        aliases.push("best");
    }
    json!({
        "job_id": i.job_id,
        "kind": i.kind.as_str(),
        "name": i.name.as_str(),
        "version": i.version,
        "digest": abi::hex(&i.digest).as_str(),
        "size": i.size,
        "created_ms": i.created_ms,
        "step": i.step,
        "aliases": aliases,
        "pinned": i.pinned,
    })
}

/// `GET /artifacts[?job_id=N]`.
pub(crate) async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut after = 0u32;
    let mut out = Vec::new();
    loop {
        let request = JobRequest::Telemetry(TelemetryRequest::Artifacts {
            job_id: query.job_id,
            after,
        });
        match state.client.call(request).await? {
            JobResponse::Telemetry(TelemetryResponse::Artifacts { entries, more }) => {
                out.extend(entries.iter().map(info_json));
                after = after.saturating_add(entries.len() as u32);
                if !more || entries.is_empty() {
                    break;
                }
            }
            JobResponse::Telemetry(TelemetryResponse::ArtifactError { reason }) => {
                return Err(ApiError::Status(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "artifacts_unavailable",
                    reason.to_string(),
                ));
            }
            other => return Err(ApiError::BadGateway(format!("unexpected answer from opsd: {other:?}"))),
        }
    }
    Ok(Json(serde_json::Value::Array(out)))
}

/// A selector: `latest`, `best`, `vN` or `N` (N >= 1).
pub fn check_selector(s: &str) -> bool {
    let n = s.strip_prefix('v').unwrap_or(s);
    s == "latest"
        || s == "best"
        || (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && n.parse::<u32>().is_ok_and(|v| v >= 1))
}

/// The fetch a download path names, or why it is a bad request.
pub fn parse_path(job: &str, kind: &str, name: &str, selector: &str) -> Result<FetchRequest, String> {
    let job_id = job
        .parse::<u64>()
        .map_err(|_| "the job id must be a non-negative integer".to_string())?;
    let kind = ArtifactKind::from_name(kind)
        .ok_or_else(|| format!("the kind {kind:?} is not model, report, plot, pdf or other"))?;
    super::announce::check_name(name)?;
    if !check_selector(selector) {
        return Err(format!("the selector {selector:?} is not latest, best, vN or N"));
    }
    Ok(FetchRequest {
        job_id,
        kind,
        name: heapless::String::try_from(name).map_err(|_| "name too long".to_string())?,
        selector: heapless::String::try_from(selector).map_err(|_| "selector too long".to_string())?,
        offset: 0,
    })
}

/// A download in progress: what is known of the version and what has been
/// streamed.
struct Download {
    client: ApiClient,
    request: FetchRequest,
    version: u32,
    size: u64,
    digest: [u8; 32],
    next: u64,
    sha: sha2::Sha256,
}

impl Download {
    /// Checks the next window, hashes it (once) and, when it is the last,
    /// compares the digest: the bytes to stream, or why the download
    /// fails.
    fn accept(&mut self, w: Window) -> Result<Vec<u8>, String> {
        if let Some(e) = w.error {
            return Err(format!("opsd: {e}"));
        }
        if let Some(bad) = w.bad {
            return Err(bad);
        }
        if (w.version, w.size, w.digest) != (self.version, self.size, self.digest) {
            return Err("opsd's answer names another version".into());
        }
        if w.offset != self.next {
            return Err(format!("bytes at {} where {} was next", w.offset, self.next));
        }
        let end = self.next + w.bytes.len() as u64;
        if end > self.size || (w.bytes.is_empty() && end < self.size) {
            return Err(format!(
                "{} bytes at {} of a {}-byte version",
                w.bytes.len(),
                w.offset,
                self.size
            ));
        }
        self.sha.update(&w.bytes);
        self.next = end;
        if end == self.size {
            let got: [u8; 32] = self.sha.finalize_reset().into();
            if got != self.digest {
                return Err(format!(
                    "the bytes have sha256 {}, not the stored {}",
                    abi::hex(&got),
                    abi::hex(&self.digest)
                ));
            }
        }
        Ok(w.bytes)
    }

    /// The next window from opsd (by the version the first one named).
    async fn next_window(&mut self) -> Result<Vec<u8>, String> {
        let mut request = self.request.clone();
        request.offset = self.next;
        let w = self.client.fetch(request).await.map_err(|e| format!("{e:?}"))?;
        self.accept(w)
    }
}

type DownloadPath = Result<UrlPath<(String, String, String, String)>, PathRejection>;

/// `GET /artifacts/{job}/{kind}/{name}/{selector}`.
pub(crate) async fn download(State(state): State<AppState>, path: DownloadPath) -> Result<Response, ApiError> {
    let UrlPath((job, kind, name, selector)) =
        path.map_err(|_| ApiError::BadRequest("expected /artifacts/{job}/{kind}/{name}/{selector}".into()))?;
    let request = parse_path(&job, &kind, &name, &selector).map_err(ApiError::BadRequest)?;
    let first = state.client.fetch(request.clone()).await?;
    if let Some(reason) = &first.error {
        return Err(if reason.contains("digest") {
            ApiError::Status(StatusCode::INTERNAL_SERVER_ERROR, "digest_mismatch", reason.clone())
        } else {
            ApiError::Status(StatusCode::NOT_FOUND, "no_such_artifact", reason.clone())
        });
    }
    let mut dl = Download {
        client: state.client.clone(),
        request: FetchRequest {
            selector: heapless::String::try_from(format!("v{}", first.version).as_str())
                .map_err(|_| ApiError::BadGateway("version too long".into()))?,
            ..request
        },
        version: first.version,
        size: first.size,
        digest: first.digest,
        next: 0,
        sha: sha2::Sha256::new(),
    };
    let (size, digest, version) = (dl.size, dl.digest, dl.version);
    // The first window is checked before the head goes out: a version that
    // fits in it and does not match is a clean 500.
    let bytes = dl.accept(first).map_err(|e| {
        let status = if e.contains("sha256") {
            (StatusCode::INTERNAL_SERVER_ERROR, "digest_mismatch")
        } else {
            (StatusCode::BAD_GATEWAY, "bad_gateway")
        };
        ApiError::Status(status.0, status.1, e)
    })?;
    let body = futures_util::stream::unfold((Some(bytes), Some(dl)), |(first, dl)| async move {
        if let Some(bytes) = first {
            return Some((Ok::<_, io::Error>(Bytes::from(bytes)), (None, dl)));
        }
        let mut dl = dl?;
        if dl.next >= dl.size {
            return None;
        }
        match dl.next_window().await {
            Ok(bytes) => Some((Ok(Bytes::from(bytes)), (None, Some(dl)))),
            // Ends the body short: the connection is cut.
            Err(e) => Some((
                Err(io::Error::other(format!("artifact download aborted: {e}"))),
                (None, None),
            )),
        }
    });
    let mut response = Response::new(Body::from_stream(body));
    let hex = abi::hex(&digest);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    let tagged = |s: String| HeaderValue::try_from(s).map_err(|e| ApiError::BadGateway(e.to_string()));
    h.insert(header::ETAG, tagged(format!("\"sha256:{hex}\""))?);
    h.insert("x-aether-digest", tagged(format!("sha256:{hex}"))?);
    h.insert("x-aether-version", HeaderValue::from(version));
    h.insert(
        header::CONTENT_DISPOSITION,
        tagged(format!("attachment; filename=\"{name}\""))?,
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(offset: u64, bytes: &[u8], last: bool) -> BytesPart {
        BytesPart {
            id: 1,
            version: 2,
            size: 10,
            digest: [7; 32],
            offset,
            last,
            error: None,
            bytes: Box::new(heapless::Vec::from_slice(bytes).unwrap()),
        }
    }

    #[test]
    fn windows_join_in_order() {
        let mut w = Window::default();
        w.push(&part(4, b"abc", false));
        w.push(&part(7, b"def", true));
        assert_eq!((w.offset, w.version, w.bytes.as_slice()), (4, 2, &b"abcdef"[..]));
        assert!(w.bad.is_none());
        let mut gap = Window::default();
        gap.push(&part(0, b"ab", false));
        gap.push(&part(3, b"d", true));
        assert!(gap.bad.unwrap().contains("where 2"));
        let mut other = Window::default();
        other.push(&part(0, b"ab", false));
        let mut p = part(2, b"c", true);
        p.version = 3;
        other.push(&p);
        assert!(other.bad.is_some());
    }

    #[test]
    fn paths_and_selectors() {
        for s in ["latest", "best", "v1", "12", "v4294967295"] {
            assert!(check_selector(s), "{s}");
        }
        for s in ["", "v", "v0", "0", "newest", "v-1", "1.5", "v4294967296", "+3"] {
            assert!(!check_selector(s), "{s}");
        }
        let r = parse_path("3", "model", "ckpt", "v2").unwrap();
        assert_eq!(
            (r.job_id, r.kind, r.name.as_str(), r.selector.as_str()),
            (3, ArtifactKind::Model, "ckpt", "v2")
        );
        assert!(
            parse_path("x", "model", "ckpt", "latest")
                .unwrap_err()
                .contains("job id")
        );
        assert!(
            parse_path("1", "weights", "ckpt", "latest")
                .unwrap_err()
                .contains("kind")
        );
        assert!(parse_path("1", "model", ".x", "latest").unwrap_err().contains("name"));
        assert!(
            parse_path("1", "model", "ckpt", "oldest")
                .unwrap_err()
                .contains("selector")
        );
    }
}
