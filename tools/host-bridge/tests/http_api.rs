//! The HTTP API against a fake opsd: a guest-side `LinkPump` over a region
//! file that answers `Api` requests from a small job table, the real
//! `Bridge` and `ApiQueue` in a loop thread, the real router on an
//! ephemeral port, and a plain HTTP/1.1 client over `TcpStream`. Checks
//! each status code the API documents. The fake opsd answers `Export` with
//! two `ExportChunk`s (a character split across them) and an unknown job
//! with `found: false`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aether_abi::job::{
    JobError, JobName, JobRecord, JobReply, JobRequest, JobResponse, JobState, LIST_PAGE, LOG_CHUNK_MAX,
};
use aether_abi::link::{EXPORT_CHUNK_MAX, LinkMessage};
use aether_abi::shm_ring;
use host_bridge::http;
use host_bridge::{Bridge, LinkPump, ShmRegion, Supervisor};

const SHIM: &str = env!("CARGO_BIN_EXE_host-bridge");
const REGION: usize = 4096 + 2 * 64 * 1024;
/// Job 1's stdout: bytes that are not UTF-8, and longer than one `Logs`
/// answer (LOG_CHUNK_MAX) so that the API has to gather several.
static LOG: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let mut log = b"hello\nworld\n\xff\n".to_vec();
    log.extend((0..5000u32).map(|i| b'a' + (i % 26) as u8));
    log
});

/// The exposition text of `job` (`None`: every job's), longer than one
/// `ExportChunk`, with a two-byte character across the chunks' border.
fn exposition(job: Option<u64>) -> String {
    let ids = job.map_or(vec![1, 2], |id| vec![id]);
    let mut text = String::from("# HELP loss loss\n# TYPE loss gauge\n");
    for id in &ids {
        text.push_str(&format!("loss{{job_id=\"{id}\",split=\"train\"}} 0.5\n"));
    }
    text.push_str("# HELP seen seen\n# TYPE seen counter\n");
    let mut i = 0;
    while text.len() < EXPORT_CHUNK_MAX - 100 {
        text.push_str(&format!(
            "seen{{job_id=\"{}\",shard=\"s{i}\"}} {i}\n",
            ids[i % ids.len()]
        ));
        i += 1;
    }
    let head = format!("seen{{job_id=\"{}\",note=\"", ids[0]);
    let pad = EXPORT_CHUNK_MAX - 1 - text.len() - head.len() - "# \n".len();
    text.push_str(&format!("# {}\n{head}é\"}} 1\n", "x".repeat(pad)));
    // The é starts at the last byte of the first chunk.
    assert_eq!(text.as_bytes()[EXPORT_CHUNK_MAX - 1], 0xc3);
    text
}

/// opsd's job table, as far as these tests need it.
struct FakeOpsd {
    jobs: Vec<JobRecord>,
}

impl FakeOpsd {
    fn new() -> FakeOpsd {
        let mut done = JobRecord::pending(1, JobName::try_from("done").unwrap(), 1);
        done.status = JobState::Succeeded;
        let mut running = JobRecord::pending(2, JobName::try_from("running").unwrap(), 2);
        running.status = JobState::Running;
        FakeOpsd {
            jobs: vec![done, running],
        }
    }

    fn answer(&mut self, request: JobRequest) -> JobReply {
        let find = |jobs: &[JobRecord], id| jobs.iter().position(|r| r.job_id == id).ok_or(JobError::NoSuchJob);
        match request {
            JobRequest::Start(spec) => {
                spec.validate().map_err(|what| JobError::InvalidSpec { what })?;
                let job_id = self.jobs.last().map_or(1, |r| r.job_id + 1);
                self.jobs.push(JobRecord::pending(job_id, spec.name, 3));
                Ok(JobResponse::Started { job_id })
            }
            JobRequest::Stop { job_id } => {
                let i = find(&self.jobs, job_id)?;
                let status = self.jobs[i].status;
                if status.is_terminal() {
                    return Err(JobError::AlreadyEnded { status });
                }
                self.jobs[i].status = JobState::Stopping;
                Ok(JobResponse::Stopping)
            }
            JobRequest::Status { job_id } => Ok(JobResponse::Status(self.jobs[find(&self.jobs, job_id)?].clone())),
            JobRequest::List { after } => {
                let rest: Vec<&JobRecord> = self.jobs.iter().filter(|r| r.job_id > after).collect();
                let entries = rest.iter().take(LIST_PAGE).map(|r| (*r).clone()).collect();
                Ok(JobResponse::Jobs {
                    entries,
                    more: rest.len() > LIST_PAGE,
                })
            }
            JobRequest::Logs {
                job_id, offset, max, ..
            } => {
                find(&self.jobs, job_id)?;
                let start = (offset as usize).min(LOG.len());
                let end = (start + (max as usize).min(LOG_CHUNK_MAX)).min(LOG.len());
                Ok(JobResponse::Logs {
                    offset: start as u64,
                    bytes: heapless::Vec::from_slice(&LOG[start..end]).unwrap(),
                    eof: end == LOG.len(),
                    // Every byte arrived at its offset + 1000 ms.
                    ts_ms: Some(1000 + start as u64),
                })
            }
            JobRequest::Wait { .. } => Err(JobError::NoSuchJob),
            // Not sent by the API.
            JobRequest::Telemetry(_) => Err(JobError::NoSuchJob),
        }
    }

    /// The answer to `Export { id, job_id }`: the text in two parts, or
    /// one empty part with `found: false` for a job not in the table.
    fn export(&self, id: u32, job_id: Option<u64>) -> Vec<LinkMessage> {
        let chunk = |last, found, text: &[u8]| LinkMessage::ExportChunk {
            id,
            last,
            found,
            text: Box::new(heapless::Vec::from_slice(text).unwrap()),
        };
        if job_id.is_some_and(|j| !self.jobs.iter().any(|r| r.job_id == j)) {
            return vec![chunk(true, false, b"")];
        }
        let text = exposition(job_id);
        let (first, second) = text.as_bytes().split_at(EXPORT_CHUNK_MAX);
        vec![chunk(false, true, first), chunk(true, true, second)]
    }
}

struct Server {
    port: u16,
    token: String,
    stop: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The bridge, a fake opsd and the API; returns once opsd is connected.
fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let region_path = dir.path().join("region");
    let guest_region = ShmRegion::create(&region_path, REGION).unwrap();
    shm_ring::initialise(&guest_region).unwrap();
    let mut guest = LinkPump::guest(guest_region, 99);
    let supervisor = Supervisor::with_shim_exe(dir.path().join("state"), SHIM).unwrap();
    let (token, token_path) = http::load_or_create_token(supervisor.state_dir()).unwrap();
    let mode = std::fs::metadata(&token_path).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    assert_eq!(
        http::load_or_create_token(supervisor.state_dir()).unwrap().0,
        token,
        "kept"
    );
    let region = ShmRegion::open(&region_path).unwrap();
    let mut bridge = Bridge::new(supervisor, LinkPump::host(region, 1));
    let (client, mut api) = http::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        let mut opsd = FakeOpsd::new();
        while !stop2.load(Ordering::Relaxed) {
            let now = host_bridge::now_ms();
            bridge.poll(now);
            api.pump(&mut bridge);
            for msg in guest.poll(now) {
                match msg {
                    LinkMessage::Api { id, request } => {
                        let reply = Box::new(opsd.answer(*request));
                        guest.send(&LinkMessage::ApiReply { id, reply }).unwrap();
                    }
                    // Job 9's export never ends (its handler gives up).
                    LinkMessage::Export { id, job_id: Some(9) } => {
                        let first = opsd.export(id, Some(2)).swap_remove(0);
                        guest.send(&first).unwrap();
                    }
                    LinkMessage::Export { id, job_id } => {
                        for chunk in opsd.export(id, job_id) {
                            guest.send(&chunk).unwrap();
                        }
                    }
                    _ => {}
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = http::router(client, &token);
    std::thread::spawn(move || http::serve_blocking(listener, router));
    let server = Server {
        port,
        token,
        stop,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, body) = request(&server, "GET", "/healthz", None, b"");
        if status == 200 && body.windows(20).any(|w| w == b"\"opsd_connected\":tru") {
            return server;
        }
        assert!(Instant::now() < deadline, "opsd never connected");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One request (`Connection: close`): status, headers (lower-case names),
/// body.
fn request(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // A refused body may not be read to its end: ignore a broken pipe.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, raw[split + 4..].to_vec())
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap().trim(), 16).unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

#[test]
fn every_documented_status_code() {
    let s = start();
    let t = Some(s.token.as_str());

    // 401: no token, a wrong one.
    let (status, headers, _) = request(&s, "GET", "/jobs", None, b"");
    assert_eq!(status, 401);
    assert_eq!(header(&headers, "www-authenticate"), Some("Bearer"));
    assert_eq!(request(&s, "GET", "/jobs/1", Some("nope"), b"").0, 401);
    assert_eq!(request(&s, "POST", "/jobs", Some("nope"), b"{}").0, 401);

    // POST /jobs: 201 with the id; 400 for malformed JSON, unknown fields,
    // wrong types, and a spec opsd refuses; 413 over 64 KiB.
    let spec = br#"{"name": "train", "entrypoint": ["python3", "train.py"], "env": [["SEED", "1"]]}"#;
    let (status, _, body) = request(&s, "POST", "/jobs", t, spec);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["job_id"], 3);
    assert_eq!(request(&s, "POST", "/jobs", t, b"{\"name\": ").0, 400);
    let (status, _, body) = request(
        &s,
        "POST",
        "/jobs",
        t,
        br#"{"name": "x", "entrypoint": ["a"], "colour": 1}"#,
    );
    assert_eq!(status, 400);
    assert!(json(&body)["message"].as_str().unwrap().contains("colour"));
    assert_eq!(request(&s, "POST", "/jobs", t, br#"{"name": 5}"#).0, 400);
    assert_eq!(request(&s, "POST", "/jobs", t, b"[]").0, 400);
    let (status, _, body) = request(&s, "POST", "/jobs", t, br#"{"name": "x", "entrypoint": []}"#);
    assert_eq!(status, 400);
    assert_eq!(json(&body)["error"]["invalid_spec"]["what"], "empty_entrypoint");
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(70 * 1024));
    assert_eq!(request(&s, "POST", "/jobs", t, big.as_bytes()).0, 413);

    // GET /jobs (all pages), GET /jobs/{id}: 200, 404, 400.
    let (status, _, body) = request(&s, "GET", "/jobs", t, b"");
    assert_eq!(status, 200);
    let ids: Vec<u64> = json(&body)["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["job_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    for _ in 0..4 {
        assert_eq!(request(&s, "POST", "/jobs", t, spec).0, 201);
    }
    let (_, _, body) = request(&s, "GET", "/jobs", t, b"");
    assert_eq!(json(&body)["jobs"].as_array().unwrap().len(), 7, "more than one page");
    let (status, _, body) = request(&s, "GET", "/jobs/1", t, b"");
    assert_eq!(status, 200);
    assert_eq!(json(&body)["status"], "SUCCEEDED");
    assert_eq!(json(&body)["name"], "done");
    let (status, _, body) = request(&s, "GET", "/jobs/42", t, b"");
    assert_eq!(status, 404);
    assert_eq!(json(&body)["error"], "no_such_job");
    assert_eq!(request(&s, "GET", "/jobs/abc", t, b"").0, 400);
    assert_eq!(request(&s, "GET", "/jobs?colour=1", t, b"").0, 400);

    // POST /jobs/{id}/stop: 202, 409 for an ended job, 404.
    assert_eq!(request(&s, "POST", "/jobs/2/stop", t, b"").0, 202);
    let (status, _, body) = request(&s, "POST", "/jobs/1/stop", t, b"");
    assert_eq!(status, 409);
    assert_eq!(json(&body)["error"]["already_ended"]["status"], "SUCCEEDED");
    assert_eq!(request(&s, "POST", "/jobs/42/stop", t, b"").0, 404);

    // GET /jobs/{id}/logs: bytes as they are, offsets in headers.
    let (status, headers, body) = request(&s, "GET", "/jobs/1/logs?offset=6&stream=stdout", t, b"");
    assert_eq!(status, 200);
    assert_eq!(body, &LOG[6..], "gathered from several answers of opsd");
    assert_eq!(header(&headers, "aether-log-offset"), Some("6"));
    assert_eq!(
        header(&headers, "aether-log-next-offset"),
        Some(LOG.len().to_string().as_str())
    );
    assert_eq!(header(&headers, "aether-log-eof"), Some("true"));
    assert_eq!(header(&headers, "aether-log-time"), Some("1006"), "the first byte's");
    let (_, headers, body) = request(&s, "GET", "/jobs/1/logs?max=5", t, b"");
    assert_eq!(
        (body.as_slice(), header(&headers, "aether-log-eof")),
        (&LOG[..5], Some("false"))
    );
    // follow=true: a chunked stream that ends with the (ended) job's log.
    let (status, headers, body) = request(&s, "GET", "/jobs/1/logs?follow=true&offset=3", t, b"");
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "transfer-encoding"), Some("chunked"));
    assert_eq!(header(&headers, "aether-log-offset"), Some("3"));
    assert_eq!(dechunk(&body), &LOG[3..]);
    assert_eq!(request(&s, "GET", "/jobs/1/logs?follow=yes", t, b"").0, 400);
    assert_eq!(request(&s, "GET", "/jobs/42/logs?follow=true", t, b"").0, 404);
    assert_eq!(request(&s, "GET", "/jobs/1/logs?stream=stdin", t, b"").0, 400);
    assert_eq!(request(&s, "GET", "/jobs/1/logs?offset=-1", t, b"").0, 400);
    assert_eq!(request(&s, "GET", "/jobs/42/logs", t, b"").0, 404);

    // GET /jobs/{id}/wait: at once for an ended job; the current record
    // after the timeout for a running one; 404; 400.
    let (status, headers, body) = request(&s, "GET", "/jobs/1/wait", t, b"");
    assert_eq!((status, header(&headers, "aether-job-ended")), (200, Some("true")));
    assert_eq!(json(&body)["status"], "SUCCEEDED");
    let t0 = std::time::Instant::now();
    let (status, headers, body) = request(&s, "GET", "/jobs/2/wait?timeout_ms=300", t, b"");
    assert_eq!((status, header(&headers, "aether-job-ended")), (200, Some("false")));
    assert!(t0.elapsed() >= Duration::from_millis(300), "{:?}", t0.elapsed());
    assert_ne!(json(&body)["status"], "SUCCEEDED");
    assert_eq!(request(&s, "GET", "/jobs/42/wait", t, b"").0, 404);
    assert_eq!(request(&s, "GET", "/jobs/1/wait?timeout_ms=soon", t, b"").0, 400);

    // GET /metrics, GET /jobs/{id}/metrics: the parts joined, as
    // Prometheus text; 404 for a job opsd does not know; 400; 401.
    for (path, job) in [
        ("/metrics", None),
        ("/metrics?name[]=loss", None),
        ("/jobs/2/metrics", Some(2)),
    ] {
        let (status, headers, body) = request(&s, "GET", path, t, b"");
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        assert_eq!(
            header(&headers, "content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        assert!(body.len() > EXPORT_CHUNK_MAX, "two parts");
        assert_eq!(String::from_utf8(body).unwrap(), exposition(job), "{path}");
    }
    let (status, headers, body) = request(&s, "GET", "/jobs/42/metrics", t, b"");
    assert_eq!(status, 404);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(json(&body)["error"], "no_such_job");
    let (status, _, body) = request(&s, "GET", "/jobs/abc/metrics", t, b"");
    assert_eq!(status, 400);
    assert_eq!(json(&body)["error"], "bad_request");
    assert_eq!(request(&s, "GET", "/jobs/-1/metrics", t, b"").0, 400);
    assert_eq!(request(&s, "GET", "/metrics", None, b"").0, 401);
    assert_eq!(request(&s, "GET", "/jobs/1/metrics", Some("nope"), b"").0, 401);

    // /healthz needs no token.
    let (status, _, body) = request(&s, "GET", "/healthz", None, b"");
    assert_eq!(status, 200);
    assert_eq!(json(&body), serde_json::json!({"status": "ok", "opsd_connected": true}));
}

#[test]
fn an_export_opsd_does_not_finish_is_504() {
    let s = start();
    let t = Some(s.token.as_str());
    let t0 = Instant::now();
    let (status, _, body) = request(&s, "GET", "/jobs/9/metrics", t, b"");
    assert_eq!(status, 504, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["error"], "timeout");
    assert!(t0.elapsed() >= http::REPLY_TIMEOUT, "{:?}", t0.elapsed());
    // The next export is whole, and nothing of the first one.
    let (status, _, body) = request(&s, "GET", "/jobs/2/metrics", t, b"");
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(body).unwrap(), exposition(Some(2)));
}

#[test]
fn without_opsd_requests_are_503() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::with_shim_exe(dir.path().join("state"), SHIM).unwrap();
    let region = ShmRegion::create(&dir.path().join("region"), REGION).unwrap();
    let mut bridge = Bridge::new(supervisor, LinkPump::host(region, 1));
    let (client, mut api) = http::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            bridge.poll(host_bridge::now_ms());
            api.pump(&mut bridge);
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || http::serve_blocking(listener, http::router(client, "secret")));
    let s = Server {
        port,
        token: "secret".into(),
        stop,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(_) => break request(&s, "GET", "/jobs/1", Some(&s.token), b"").0,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(status, 503);
    for path in ["/metrics", "/jobs/1/metrics"] {
        let (status, _, body) = request(&s, "GET", path, Some(&s.token), b"");
        assert_eq!(status, 503, "{path}");
        assert_eq!(json(&body)["error"], "opsd_unavailable");
    }
    // A bad id is refused before opsd is needed.
    assert_eq!(request(&s, "GET", "/jobs/abc/metrics", Some(&s.token), b"").0, 400);
    let (_, _, body) = request(&s, "GET", "/healthz", None, b"");
    assert_eq!(json(&body)["opsd_connected"], false);
}
