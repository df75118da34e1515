//! `GET /artifacts` and the downloads against a fake opsd (a guest-side
//! `LinkPump` answering `Telemetry(Artifacts)` pages and `ArtifactFetch`es
//! from a small store, in `CHUNK_MAX` parts per `FETCH_MAX` window), the
//! real bridge, queue and router on an ephemeral port, and a plain
//! HTTP/1.1 client: the list over several pages; a download of several
//! windows, whole and with its digest headers; 404 for an unknown
//! artifact or version, 400 for a bad kind, name or selector, 500 when
//! opsd finds the digest wrong; a body whose bytes do not have the
//! offered digest cut short.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aether_abi::artifact::{ArtifactInfo, ArtifactKind, CHUNK_MAX, FETCH_MAX, LIST_PAGE};
use aether_abi::job::{JobError, JobReply, JobRequest, JobResponse};
use aether_abi::link::LinkMessage;
use aether_abi::shm_ring;
use aether_abi::telemetry::{TelemetryRequest, TelemetryResponse};
use host_bridge::{Bridge, LinkPump, ShmRegion, Supervisor, http};
use sha2::Digest as _;

const SHIM: &str = env!("CARGO_BIN_EXE_host-bridge");
const REGION: usize = 4096 + 2 * 64 * 1024;
/// Two and a half windows.
const BIG: usize = 2 * FETCH_MAX as usize + FETCH_MAX as usize / 2 + 123;

fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 10) as u8)
        .collect()
}

/// One stored version: its bytes and the digest opsd states.
struct Version {
    job_id: u64,
    kind: ArtifactKind,
    name: &'static str,
    version: u32,
    bytes: Vec<u8>,
    digest: [u8; 32],
    /// opsd's own error for it (its check failed).
    error: Option<&'static str>,
}

fn store() -> Vec<Version> {
    let v = |job_id, kind, name, version, bytes: Vec<u8>| Version {
        job_id,
        kind,
        name,
        version,
        digest: sha256(&bytes),
        bytes,
        error: None,
    };
    let mut s = vec![
        v(1, ArtifactKind::Model, "ckpt", 1, bytes(1000, 1)),
        v(1, ArtifactKind::Model, "ckpt", 2, bytes(BIG, 2)),
    ];
    // More than one page of the list.
    for i in 0..LIST_PAGE as u32 {
        s.push(v(2, ArtifactKind::Plot, "loss.svg", i + 1, bytes(10 + i as usize, 3)));
    }
    let mut lying = v(1, ArtifactKind::Report, "lying", 1, bytes(BIG, 4));
    lying.digest = sha256(b"something else");
    s.push(lying);
    let mut small = v(1, ArtifactKind::Report, "lying-small", 1, bytes(100, 5));
    small.digest = sha256(b"something else");
    s.push(small);
    let mut corrupt = v(1, ArtifactKind::Model, "corrupt", 1, bytes(10, 6));
    corrupt.error = Some("the stored object's sha256 does not match its digest: not served");
    s.push(corrupt);
    s
}

struct FakeOpsd {
    store: Vec<Version>,
    out: VecDeque<LinkMessage>,
}

impl FakeOpsd {
    fn info(&self, v: &Version) -> ArtifactInfo {
        let latest = self
            .store
            .iter()
            .filter(|o| (o.job_id, o.kind, o.name) == (v.job_id, v.kind, v.name))
            .all(|o| o.version <= v.version);
        ArtifactInfo {
            job_id: v.job_id,
            kind: v.kind,
            name: heapless::String::try_from(v.name).unwrap(),
            version: v.version,
            digest: v.digest,
            size: v.bytes.len() as u64,
            created_ms: 1000 + u64::from(v.version),
            step: Some(u64::from(v.version) * 100),
            latest,
            best: v.version == 1,
            pinned: false,
        }
    }

    fn answer(&self, request: JobRequest) -> JobReply {
        match request {
            JobRequest::Telemetry(TelemetryRequest::Artifacts { job_id, after }) => {
                let all: Vec<&Version> = self
                    .store
                    .iter()
                    .filter(|v| job_id.is_none_or(|j| v.job_id == j))
                    .collect();
                let rest = all.get(after as usize..).unwrap_or(&[]);
                Ok(JobResponse::Telemetry(TelemetryResponse::Artifacts {
                    entries: rest.iter().take(LIST_PAGE).map(|v| self.info(v)).collect(),
                    more: rest.len() > LIST_PAGE,
                }))
            }
            _ => Err(JobError::BadRequest),
        }
    }

    fn resolve(&self, job_id: u64, kind: ArtifactKind, name: &str, selector: &str) -> Option<&Version> {
        let mut of = self
            .store
            .iter()
            .filter(|v| (v.job_id, v.kind, v.name) == (job_id, kind, name));
        match selector {
            "latest" => of.max_by_key(|v| v.version),
            "best" => of.find(|v| v.version == 1),
            s => {
                let n: u32 = s.strip_prefix('v').unwrap_or(s).parse().ok()?;
                of.find(|v| v.version == n)
            }
        }
    }

    fn fetch(&mut self, id: u32, job_id: u64, kind: ArtifactKind, name: &str, selector: &str, offset: u64) {
        let part =
            |v: Option<&Version>, offset: u64, last: bool, error: Option<&str>, b: &[u8]| LinkMessage::ArtifactBytes {
                id,
                version: v.map_or(0, |v| v.version),
                size: v.map_or(0, |v| v.bytes.len() as u64),
                digest: v.map_or([0; 32], |v| v.digest),
                offset,
                last,
                error: error.map(|e| heapless::String::try_from(e).unwrap()),
                bytes: Box::new(heapless::Vec::from_slice(b).unwrap()),
            };
        let Some(v) = self.resolve(job_id, kind, name, selector) else {
            let msg = part(None, 0, true, Some("no such artifact or version"), b"");
            self.out.push_back(msg);
            return;
        };
        if let Some(e) = v.error {
            let msg = part(Some(v), 0, true, Some(e), b"");
            self.out.push_back(msg);
            return;
        }
        let start = (offset as usize).min(v.bytes.len());
        let end = (start + FETCH_MAX as usize).min(v.bytes.len());
        let window = &v.bytes[start..end];
        let mut msgs = Vec::new();
        if window.is_empty() {
            msgs.push(part(Some(v), start as u64, true, None, b""));
        }
        let n = window.len().div_ceil(CHUNK_MAX);
        for (i, c) in window.chunks(CHUNK_MAX).enumerate() {
            msgs.push(part(Some(v), (start + i * CHUNK_MAX) as u64, i + 1 == n, None, c));
        }
        self.out.extend(msgs);
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

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let region_path = dir.path().join("region");
    let guest_region = ShmRegion::create(&region_path, REGION).unwrap();
    shm_ring::initialise(&guest_region).unwrap();
    let mut guest = LinkPump::guest(guest_region, 99);
    let supervisor = Supervisor::with_shim_exe(dir.path().join("state"), SHIM).unwrap();
    let (token, _) = http::load_or_create_token(supervisor.state_dir()).unwrap();
    let mut bridge = Bridge::new(supervisor, LinkPump::host(ShmRegion::open(&region_path).unwrap(), 1));
    let (client, mut api) = http::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        let mut opsd = FakeOpsd {
            store: store(),
            out: VecDeque::new(),
        };
        while !stop2.load(Ordering::Relaxed) {
            let now = host_bridge::now_ms();
            bridge.poll(now);
            api.pump(&mut bridge);
            for msg in guest.poll(now) {
                match msg {
                    LinkMessage::Api { id, request } => {
                        let reply = Box::new(opsd.answer(*request));
                        opsd.out.push_back(LinkMessage::ApiReply { id, reply });
                    }
                    LinkMessage::ArtifactFetch {
                        id,
                        job_id,
                        kind,
                        name,
                        selector,
                        offset,
                    } => opsd.fetch(id, job_id, kind, &name, &selector, offset),
                    _ => {}
                }
            }
            while guest.has_room()
                && let Some(msg) = opsd.out.pop_front()
            {
                guest.send(&msg).unwrap();
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
        let (status, _, body) = get(&server, "/healthz", false);
        if status == 200 && String::from_utf8_lossy(&body).contains("\"opsd_connected\":true") {
            return server;
        }
        assert!(Instant::now() < deadline, "opsd never connected");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One GET (`Connection: close`): status, headers (lower-case names),
/// body (what arrived before the connection closed).
fn get(server: &Server, path: &str, auth: bool) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = if auth {
        format!("Authorization: Bearer {}\r\n", server.token)
    } else {
        String::new()
    };
    let head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    // A body cut short may end in a reset: what came is kept.
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
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

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

#[test]
fn list_and_download() {
    let s = start();
    let all = store();

    // The list: every page, as JSON.
    assert_eq!(get(&s, "/artifacts", false).0, 401);
    let (status, _, body) = get(&s, "/artifacts", true);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let list = json(&body);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), all.len(), "more than one page");
    let v2 = &list[1];
    assert_eq!(v2["job_id"], 1);
    assert_eq!(v2["kind"], "model");
    assert_eq!(v2["name"], "ckpt");
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["size"], BIG as u64);
    assert_eq!(v2["step"], 200);
    assert_eq!(v2["created_ms"], 1002);
    assert_eq!(v2["aliases"], serde_json::json!(["latest"]));
    assert_eq!(list[0]["aliases"], serde_json::json!(["best"]));
    let hex: String = all[1].digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(v2["digest"], hex.as_str());
    let (_, _, body) = get(&s, "/artifacts?job_id=2", true);
    assert_eq!(json(&body).as_array().unwrap().len(), LIST_PAGE);
    assert_eq!(get(&s, "/artifacts?job_id=x", true).0, 400);
    assert_eq!(get(&s, "/artifacts?colour=1", true).0, 400);

    // A download over three windows: whole, with its headers.
    for path in [
        "/artifacts/1/model/ckpt/latest",
        "/artifacts/1/model/ckpt/v2",
        "/artifacts/1/model/ckpt/2",
    ] {
        let (status, headers, body) = get(&s, path, true);
        assert_eq!(
            status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
        assert_eq!(header(&headers, "content-type"), Some("application/octet-stream"));
        assert_eq!(header(&headers, "content-length"), Some(BIG.to_string().as_str()));
        assert_eq!(
            header(&headers, "x-aether-digest"),
            Some(format!("sha256:{hex}").as_str())
        );
        assert_eq!(header(&headers, "etag"), Some(format!("\"sha256:{hex}\"").as_str()));
        assert_eq!(header(&headers, "x-aether-version"), Some("2"));
        assert!(body == all[1].bytes, "{path}: {} bytes", body.len());
    }
    let (status, _, body) = get(&s, "/artifacts/1/model/ckpt/best", true);
    assert_eq!(status, 200);
    assert_eq!(body, all[0].bytes);

    // Errors: 404 unknown, 400 bad parts, 500 a digest opsd found wrong,
    // 401 without the token.
    for path in [
        "/artifacts/1/model/nope/latest",
        "/artifacts/1/model/ckpt/v9",
        "/artifacts/3/model/ckpt/latest",
    ] {
        let (status, _, body) = get(&s, path, true);
        assert_eq!(status, 404, "{path}");
        assert_eq!(json(&body)["error"], "no_such_artifact");
    }
    for path in [
        "/artifacts/1/weights/ckpt/latest",
        "/artifacts/1/model/ckpt/newest",
        "/artifacts/1/model/ckpt/v0",
        "/artifacts/1/model/.ckpt/latest",
        "/artifacts/x/model/ckpt/latest",
    ] {
        let (status, _, body) = get(&s, path, true);
        assert_eq!(status, 400, "{path}");
        assert_eq!(json(&body)["error"], "bad_request");
    }
    let (status, _, body) = get(&s, "/artifacts/1/model/corrupt/latest", true);
    assert_eq!(status, 500);
    assert_eq!(json(&body)["error"], "digest_mismatch");
    assert_eq!(get(&s, "/artifacts/1/model/ckpt/latest", false).0, 401);

    // Bytes that do not have the digest opsd named: within the first
    // window a clean 500; later, the body is cut short.
    let (status, _, body) = get(&s, "/artifacts/1/report/lying-small/latest", true);
    assert_eq!(status, 500);
    assert_eq!(json(&body)["error"], "digest_mismatch");
    let (status, headers, body) = get(&s, "/artifacts/1/report/lying/latest", true);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-length"), Some(BIG.to_string().as_str()));
    assert!(body.len() < BIG, "the body was not cut: {} bytes", body.len());
    assert!(body.len() >= 2 * FETCH_MAX as usize, "the first windows came");
}
