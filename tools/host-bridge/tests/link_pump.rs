//! The bridge over the shared-memory link, without QEMU: the test plays
//! opsd with a second `aether_link::Endpoint` (a guest-side `LinkPump`) over
//! a region that is a plain file in a temporary directory, laid out with
//! `shm_ring::initialise` as the guest kernel does, and runs the `Bridge`
//! (supervisor + host pump) against it in the same thread, polling both in
//! turn. Jobs are real python trainers (tools/python/trainer.py).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aether_abi::job::{Arg, JobName, JobSpec, LogChunk, Stream, TerminationReason};
use aether_abi::link::LinkMessage;
use aether_abi::metric::{MetricKind, MetricPoint};
use aether_abi::shm_ring::{self, Consumer, Direction};
use host_bridge::{Bridge, LinkPump, ShmRegion, Supervisor, procfs};

const SHIM: &str = env!("CARGO_BIN_EXE_host-bridge");
/// Generous: only reached when something is broken.
const DEADLINE: Duration = Duration::from_secs(30);
/// A header page and two 64 KiB rings.
const REGION: usize = 4096 + 2 * 64 * 1024;

fn now_ms() -> u64 {
    host_bridge::now_ms()
}

fn trainer(args: &[&str]) -> JobSpec {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/trainer.py");
    let mut argv = vec!["python3", script.to_str().unwrap()];
    argv.extend_from_slice(args);
    JobSpec {
        name: JobName::try_from("trainer").unwrap(),
        entrypoint: argv.iter().map(|a| Arg::try_from(*a).unwrap()).collect(),
        ..JobSpec::default()
    }
}

/// A temporary directory holding the state directory and the region; when
/// the test ends every process whose `AETHER_ARTIFACT_DIR` lies inside it is
/// killed, so a failing test leaves nothing behind.
struct TestDir(tempfile::TempDir);

impl TestDir {
    fn new() -> TestDir {
        TestDir(tempfile::tempdir().unwrap())
    }
    fn state(&self) -> PathBuf {
        self.0.path().join("state")
    }
    fn region(&self) -> PathBuf {
        self.0.path().join("region")
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let dir = self
            .0
            .path()
            .canonicalize()
            .unwrap_or_else(|_| self.0.path().to_path_buf());
        let prefix = format!("AETHER_ARTIFACT_DIR={}/", dir.display()).into_bytes();
        for p in procfs::all() {
            let env = std::fs::read(format!("/proc/{}/environ", p.pid)).unwrap_or_default();
            if env.split(|&b| b == 0).any(|e| e.starts_with(&prefix)) {
                // SAFETY: kill(2) with plain integers.
                unsafe { libc::kill(p.pid, libc::SIGKILL) };
            }
        }
    }
}

fn bridge(dir: &TestDir, incarnation: u64) -> Bridge {
    let supervisor = Supervisor::with_shim_exe(dir.state(), SHIM).expect("supervisor");
    let region = ShmRegion::open(&dir.region()).expect("map the region");
    Bridge::new(supervisor, LinkPump::host(region, incarnation))
}

/// opsd, as far as these tests need it: logs appended only at their end
/// (a duplicate dropped, an overlap's new tail kept, a gap asked for once
/// with `LogResend`), `LogResend { from: end }` per stream of every running
/// job on each new session of the bridge.
struct Guest {
    pump: LinkPump,
    bridge_incarnations: Vec<u64>,
    started: BTreeMap<u64, LinkMessage>,
    running: BTreeSet<u64>,
    logs: HashMap<(u64, Stream), Vec<u8>>,
    /// Every chunk as it arrived (offset, length), per stream.
    chunks: HashMap<(u64, Stream), Vec<(u64, usize)>>,
    duplicates: u64,
    gaps_asked: HashSet<(u64, Stream, u64)>,
    /// Job, stdout offset of the line, time, point.
    metrics: Vec<(u64, u64, u64, MetricPoint)>,
    ended: BTreeMap<u64, LinkMessage>,
    other: Vec<LinkMessage>,
}

impl Guest {
    fn new(dir: &TestDir) -> Guest {
        let region = ShmRegion::create(&dir.region(), REGION).expect("create the region");
        shm_ring::initialise(&region).expect("lay out the rings");
        Guest::on(region, 0x6e57)
    }

    /// opsd restarted: a new endpoint (another incarnation) on the same
    /// rings, knowing nothing.
    fn restarted(dir: &TestDir, incarnation: u64) -> Guest {
        Guest::on(ShmRegion::open(&dir.region()).expect("map the region"), incarnation)
    }

    fn on(region: ShmRegion, incarnation: u64) -> Guest {
        Guest {
            pump: LinkPump::guest(region, incarnation),
            bridge_incarnations: Vec::new(),
            started: BTreeMap::new(),
            running: BTreeSet::new(),
            logs: HashMap::new(),
            chunks: HashMap::new(),
            duplicates: 0,
            gaps_asked: HashSet::new(),
            metrics: Vec::new(),
            ended: BTreeMap::new(),
            other: Vec::new(),
        }
    }

    fn send(&mut self, msg: LinkMessage) {
        self.pump.send(&msg).expect("the guest's window has room");
    }

    fn poll(&mut self) {
        for msg in self.pump.poll(now_ms()) {
            self.handle(msg);
        }
    }

    fn handle(&mut self, msg: LinkMessage) {
        match msg {
            LinkMessage::Hello { incarnation, .. } => {
                self.bridge_incarnations.push(incarnation);
                for job_id in self.running.clone() {
                    for stream in [Stream::Stdout, Stream::Stderr] {
                        let from = self.log(job_id, stream).len() as u64;
                        self.send(LinkMessage::LogResend { job_id, stream, from });
                    }
                }
            }
            LinkMessage::Started { job_id, .. } => {
                self.running.insert(job_id);
                self.started.insert(job_id, msg);
            }
            LinkMessage::Log(chunk) => self.on_chunk(chunk),
            LinkMessage::Metric {
                job_id,
                ts_ms,
                offset,
                point,
            } => self.metrics.push((job_id, offset, ts_ms, point)),
            LinkMessage::Exited { job_id, .. } | LinkMessage::Lost { job_id } => {
                self.running.remove(&job_id);
                self.ended.insert(job_id, msg);
            }
            // The trainer's checkpoint.json (tests/artifacts.rs covers them).
            LinkMessage::ArtifactOffer { .. } => {}
            other => self.other.push(other),
        }
    }

    fn on_chunk(&mut self, c: LogChunk) {
        let key = (c.job_id, c.stream);
        self.chunks.entry(key).or_default().push((c.offset, c.bytes.len()));
        let log = self.logs.entry(key).or_default();
        let end = log.len() as u64;
        if c.offset > end {
            if self.gaps_asked.insert((c.job_id, c.stream, end)) {
                self.send(LinkMessage::LogResend {
                    job_id: c.job_id,
                    stream: c.stream,
                    from: end,
                });
            }
        } else if c.offset + c.bytes.len() as u64 <= end {
            self.duplicates += 1;
        } else {
            log.extend_from_slice(&c.bytes[(end - c.offset) as usize..]);
        }
    }

    fn log(&self, job_id: u64, stream: Stream) -> &[u8] {
        self.logs.get(&(job_id, stream)).map_or(&[], |l| l.as_slice())
    }
}

/// Polls the bridge and the guest in turn until `done` holds.
fn run_until(bridge: &mut Bridge, guest: &mut Guest, what: &str, mut done: impl FnMut(&Guest, &Bridge) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done(guest, bridge) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        for w in bridge.poll(now_ms()) {
            eprintln!("bridge: {w}");
        }
        guest.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Checks a trainer's stdout line by line: "ready", then per step its
/// progress line and its metric line, each exactly once and in order, then
/// the checkpoint line.
fn check_trainer_stdout(stdout: &[u8], steps: usize) {
    let text = std::str::from_utf8(stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert!(text.ends_with('\n'), "{text}");
    assert_eq!(lines.first(), Some(&"ready"), "{text}");
    assert_eq!(lines.len(), 2 + 2 * steps, "{text}");
    assert_eq!(
        lines[1 + 2 * steps],
        format!("checkpoint written at step {steps} (finished)")
    );
    for i in 1..=steps {
        let progress = lines[2 * i - 1];
        assert!(progress.starts_with(&format!("step {i}/{steps} loss=")), "{progress}");
        let metric: serde_json::Value = serde_json::from_str(lines[2 * i]).expect("a metric line");
        assert_eq!(metric["aether_metric"]["step"], i as u64, "{}", lines[2 * i]);
    }
}

fn assert_contiguous(guest: &Guest, job_id: u64, stream: Stream) {
    let mut end = 0;
    for &(offset, len) in guest.chunks.get(&(job_id, stream)).map_or(&[][..], |c| c.as_slice()) {
        assert_eq!(offset, end, "chunks of {stream:?} not contiguous");
        assert!(len > 0 && len <= aether_abi::job::LOG_CHUNK_MAX);
        end += len as u64;
    }
}

#[test]
fn a_job_started_over_the_link_reports_logs_metrics_and_its_exit() {
    let dir = TestDir::new();
    let mut guest = Guest::new(&dir);
    let mut bridge = bridge(&dir, 1);
    run_until(&mut bridge, &mut guest, "the handshake", |g, b| {
        g.pump.is_connected() && b.pump().is_connected()
    });
    guest.send(LinkMessage::Start {
        job_id: 1,
        spec: Box::new(trainer(&["--steps", "5"])),
    });
    run_until(&mut bridge, &mut guest, "the exit", |g, _| g.ended.contains_key(&1));

    let Some(LinkMessage::Started { pid, started_ms, .. }) = guest.started.get(&1) else {
        panic!("no Started: {:?}", guest.other);
    };
    assert!(*pid > 0 && *started_ms > 0);
    assert_contiguous(&guest, 1, Stream::Stdout);
    assert_contiguous(&guest, 1, Stream::Stderr);
    assert_eq!(guest.duplicates, 0);
    check_trainer_stdout(guest.log(1, Stream::Stdout), 5);
    assert_eq!(
        guest.log(1, Stream::Stderr),
        b"trainer: start, job 1, 5 steps\ntrainer: finished\n"
    );
    let steps: Vec<Option<u64>> = guest.metrics.iter().map(|(_, _, _, m)| m.step).collect();
    assert_eq!(steps, [1, 2, 3, 4, 5].map(Some));
    assert!(
        guest
            .metrics
            .iter()
            .all(|(id, _, _, m)| *id == 1 && m.name == "loss" && m.kind == MetricKind::Gauge)
    );
    assert_eq!(guest.metrics[1].3.value, 0.5);
    let stdout = guest.log(1, Stream::Stdout);
    for (_, offset, ts_ms, m) in &guest.metrics {
        // The offset is the line's place in stdout; the time the bridge's.
        assert!(stdout[*offset as usize..].starts_with(b"{\"aether_metric\""), "{m:?}");
        assert!(*ts_ms >= *started_ms, "{ts_ms}");
    }
    match &guest.ended[&1] {
        LinkMessage::Exited {
            exit_code,
            signal,
            forced,
            reason,
            ..
        } => {
            assert_eq!((*exit_code, *signal, *forced), (Some(0), None, false));
            assert_eq!(*reason, TerminationReason::Exited);
        }
        other => panic!("{other:?}"),
    }
    // Forgotten once the guest acknowledged the exit.
    run_until(&mut bridge, &mut guest, "the job to be forgotten", |_, b| {
        b.supervisor().status(1).is_none()
    });
    assert!(guest.other.is_empty(), "{:?}", guest.other);

    // A spawn failure, then a new attempt of the same id that works (and a
    // repeated Start for a running job only gets its `Started` again).
    guest.send(LinkMessage::Start {
        job_id: 2,
        spec: Box::new(JobSpec {
            entrypoint: [Arg::try_from("/nonexistent/program").unwrap()].into_iter().collect(),
            ..trainer(&[])
        }),
    });
    run_until(&mut bridge, &mut guest, "the spawn failure", |g, _| !g.other.is_empty());
    match &guest.other[0] {
        LinkMessage::SpawnFailed { job_id: 2, message } => {
            assert!(message.contains("No such file"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    guest.send(LinkMessage::Start {
        job_id: 1,
        spec: Box::new(trainer(&["--steps", "2"])),
    });
    guest.send(LinkMessage::Start {
        job_id: 1,
        spec: Box::new(trainer(&["--steps", "2"])),
    });
    guest.ended.clear();
    guest.logs.clear();
    guest.chunks.clear();
    run_until(&mut bridge, &mut guest, "the second attempt's exit", |g, _| {
        g.ended.contains_key(&1)
    });
    check_trainer_stdout(guest.log(1, Stream::Stdout), 2);
    assert_contiguous(&guest, 1, Stream::Stdout);
    assert_eq!(guest.other.len(), 1, "{:?}", guest.other);
}

#[test]
fn a_stop_over_the_link_ends_the_job_gracefully() {
    let dir = TestDir::new();
    let mut guest = Guest::new(&dir);
    let mut bridge = bridge(&dir, 1);
    guest.send(LinkMessage::Start {
        job_id: 7,
        spec: Box::new(trainer(&["--steps", "1000", "--sleep", "0.02"])),
    });
    run_until(&mut bridge, &mut guest, "the first steps", |g, _| g.metrics.len() >= 2);
    guest.send(LinkMessage::Stop {
        job_id: 7,
        grace_ms: 5000,
    });
    run_until(&mut bridge, &mut guest, "the exit", |g, _| g.ended.contains_key(&7));
    match &guest.ended[&7] {
        LinkMessage::Exited {
            exit_code,
            forced,
            reason,
            ..
        } => {
            assert!(!forced);
            assert_eq!(*exit_code, Some(0), "the trainer exits 0 on SIGTERM");
            assert_eq!(*reason, TerminationReason::Stopped);
        }
        other => panic!("{other:?}"),
    }
    let stderr = String::from_utf8_lossy(guest.log(7, Stream::Stderr)).into_owned();
    assert!(stderr.contains("SIGTERM, saving a checkpoint"), "{stderr}");
    assert_contiguous(&guest, 7, Stream::Stdout);
    assert!(guest.other.is_empty(), "{:?}", guest.other);
}

#[test]
fn a_restarted_bridge_re_adopts_the_job_and_no_log_byte_is_lost_or_duplicated() {
    let dir = TestDir::new();
    let mut guest = Guest::new(&dir);
    let steps = 40;
    let mut first = bridge(&dir, 1);
    guest.send(LinkMessage::Start {
        job_id: 3,
        spec: Box::new(trainer(&["--steps", "40", "--sleep", "0.03"])),
    });
    run_until(&mut first, &mut guest, "some steps", |g, _| g.metrics.len() >= 5);
    // Let the first bridge take more output from the supervisor than it
    // gets across: poll it without the guest reading its ring for a while.
    for _ in 0..50 {
        first.poll(now_ms());
        std::thread::sleep(Duration::from_millis(2));
    }
    let delivered = first.supervisor().status(3).expect("job 3").stdout_offset;
    drop(first);
    // What the first bridge had sent but the guest not yet read is lost
    // with it (as frames still in a dead bridge's buffers would be).
    let size = shm_ring::attach(guest.pump.region()).unwrap();
    let ring1 = Consumer::new(Direction::HostToGuest, size);
    let mut discard = vec![0u8; size];
    let lost = ring1.read(guest.pump.region(), &mut discard).unwrap();
    assert!(lost > 0, "nothing in flight: the test would not test resends");
    let guest_end = guest.log(3, Stream::Stdout).len() as u64;
    assert!(guest_end < delivered, "{guest_end} < {delivered}");
    // The job runs on without a bridge.
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..20 {
        guest.poll();
    }
    let mut second = bridge(&dir, 2);
    assert!(second.supervisor().status(3).is_some(), "re-adopted");
    run_until(&mut second, &mut guest, "the exit", |g, _| g.ended.contains_key(&3));

    assert_eq!(guest.bridge_incarnations, [1, 2]);
    match &guest.ended[&3] {
        LinkMessage::Exited { exit_code, reason, .. } => {
            assert_eq!(*exit_code, Some(0));
            assert_eq!(*reason, TerminationReason::Exited);
        }
        other => panic!("{other:?}"),
    }
    check_trainer_stdout(guest.log(3, Stream::Stdout), steps);
    assert_eq!(
        guest.log(3, Stream::Stderr),
        b"trainer: start, job 3, 40 steps\ntrainer: finished\n"
    );
    assert_eq!(guest.started.len(), 1);
    eprintln!(
        "lost {lost} ring bytes; guest had {guest_end} of {delivered} stdout bytes; {} duplicate chunks, gaps asked at {:?}",
        guest.duplicates, guest.gaps_asked
    );
    run_until(&mut second, &mut guest, "the job to be forgotten", |_, b| {
        b.supervisor().status(3).is_none()
    });
}

#[test]
fn the_jobs_of_a_restarted_opsd_are_stopped_and_their_ids_free_for_the_new_one() {
    let dir = TestDir::new();
    let mut guest = Guest::new(&dir);
    let mut bridge = bridge(&dir, 1);
    guest.send(LinkMessage::Start {
        job_id: 1,
        spec: Box::new(trainer(&["--steps", "100000", "--sleep", "0.02"])),
    });
    run_until(&mut bridge, &mut guest, "the first steps", |g, _| g.metrics.len() >= 2);
    let old_pid = match &guest.started[&1] {
        LinkMessage::Started { pid, .. } => *pid,
        other => panic!("{other:?}"),
    };
    // opsd dies and a new one (ids from 1 again) starts a job 1 of its own.
    drop(guest);
    let mut guest = Guest::restarted(&dir, 0x6e58);
    guest.send(LinkMessage::Start {
        job_id: 1,
        spec: Box::new(trainer(&["--steps", "3"])),
    });
    run_until(&mut bridge, &mut guest, "the new job 1's end", |g, _| {
        g.ended.contains_key(&1)
    });
    // The old job 1 was stopped, not taken for the new one, and nothing of
    // it reached the new opsd.
    assert!(
        procfs::stat(old_pid as i32).is_none_or(|s| s.is_dead()),
        "the old job 1 still runs"
    );
    match &guest.started[&1] {
        LinkMessage::Started { pid, .. } => assert_ne!(*pid, old_pid),
        other => panic!("{other:?}"),
    }
    check_trainer_stdout(guest.log(1, Stream::Stdout), 3);
    assert_contiguous(&guest, 1, Stream::Stdout);
    match &guest.ended[&1] {
        LinkMessage::Exited { exit_code, reason, .. } => {
            assert_eq!((*exit_code, *reason), (Some(0), TerminationReason::Exited));
        }
        other => panic!("{other:?}"),
    }
    assert!(guest.other.is_empty(), "{:?}", guest.other);
}

/// A receiver that answers its first request 200 and hands it (head and
/// body) to the test.
fn one_shot_receiver() -> (String, std::sync::mpsc::Receiver<Vec<u8>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alert", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = conn.read(&mut chunk).unwrap();
            got.extend_from_slice(&chunk[..n]);
            let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if n == 0 || got.len() >= end + 4 + len {
                break;
            }
        }
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let _ = tx.send(got);
    });
    (url, rx)
}

#[test]
fn a_notify_over_the_link_is_posted_and_its_notified_comes_back() {
    let dir = TestDir::new();
    let mut guest = Guest::new(&dir);
    let mut bridge = bridge(&dir, 1);
    run_until(&mut bridge, &mut guest, "the handshake", |g, b| {
        g.pump.is_connected() && b.pump().is_connected()
    });
    let (url, posted) = one_shot_receiver();
    let body = br#"{"version":"4","status":"resolved","alerts":[]}"#;
    guest.send(LinkMessage::Notify {
        id: 42,
        url: heapless::String::try_from(url.as_str()).unwrap(),
        body: Box::new(heapless::Vec::from_slice(body).unwrap()),
    });
    guest.send(LinkMessage::Notify {
        id: 43,
        url: heapless::String::try_from("ftp://chat.example.invalid/send").unwrap(),
        body: Box::new(heapless::Vec::from_slice(body).unwrap()),
    });
    run_until(&mut bridge, &mut guest, "both Notified", |g, _| {
        g.other
            .iter()
            .filter(|m| matches!(m, LinkMessage::Notified { .. }))
            .count()
            == 2
    });
    let request = posted.recv_timeout(DEADLINE).expect("the POST");
    let text = String::from_utf8_lossy(&request);
    assert!(text.starts_with("POST /alert HTTP/1.1\r\n"), "{text}");
    assert!(text.contains("\r\nContent-Type: application/json\r\n"), "{text}");
    assert!(request.ends_with(body), "{text}");
    let mut notified: Vec<(u64, bool, u16, u16, String)> = guest
        .other
        .iter()
        .filter_map(|m| match m {
            LinkMessage::Notified {
                id,
                delivered,
                status,
                attempts,
                error,
            } => Some((*id, *delivered, *status, *attempts, error.to_string())),
            _ => None,
        })
        .collect();
    notified.sort();
    assert_eq!(
        notified,
        [
            (42, true, 200, 1, String::new()),
            (
                43,
                false,
                0,
                0,
                "a malformed URL: only http[s]://host[:port]/path is supported".to_string()
            ),
        ]
    );
    assert_eq!(bridge.webhooks_pending(), 0);
    run_until(&mut bridge, &mut guest, "the link to be flushed", |_, b| b.is_flushed());
}
