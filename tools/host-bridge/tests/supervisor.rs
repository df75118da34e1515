//! The supervisor against real processes: shims, python trainers
//! (tools/python/trainer.py), stops, timeouts, escaped grandchildren,
//! restarts of the supervisor and dead shims. Every wait is a condition
//! polled against a deadline.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aether_abi::metric::{MetricError, MetricKind};
use host_bridge::procfs;
use host_bridge::{Error, Event, ExitReason, JobMetric, JobSpec, JobState, Stream, Supervisor};

const SHIM: &str = env!("CARGO_BIN_EXE_host-bridge");
/// Generous: only reached when something is broken.
const DEADLINE: Duration = Duration::from_secs(20);

fn trainer(args: &[&str]) -> JobSpec {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/trainer.py");
    let mut argv = vec!["python3".to_string(), script.to_str().unwrap().to_string()];
    argv.extend(args.iter().map(|s| s.to_string()));
    JobSpec::new(argv)
}

/// A job id no other test (or concurrently running test binary) uses, so
/// that scanning `/proc` for `AETHER_JOB_ID` finds only this test's job.
fn unique_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    (u64::from(std::process::id()) << 24) | NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A state directory for one test. When the test ends, passed or failed,
/// every process still carrying an `AETHER_ARTIFACT_DIR` inside it (shims,
/// jobs, their helpers) is killed, so a failing test leaves nothing behind.
struct TestDir(tempfile::TempDir);

impl TestDir {
    fn new() -> TestDir {
        TestDir(tempfile::tempdir().unwrap())
    }

    fn path(&self) -> &Path {
        self.0.path()
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
                kill(p.pid, libc::SIGKILL);
            }
        }
    }
}

fn supervisor(dir: &Path) -> Supervisor {
    Supervisor::with_shim_exe(dir, SHIM).expect("supervisor")
}

/// Everything `poll` said about one job.
#[derive(Default)]
struct Seen {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    metrics: Vec<JobMetric>,
    malformed: Vec<(u64, String)>,
    end: Option<Event>,
}

impl Seen {
    /// Adds the events of one poll, checking that each stream's chunks are
    /// contiguous.
    fn take(&mut self, job_id: u64, events: Vec<Event>) {
        for event in events {
            match event {
                Event::Log {
                    job_id: j,
                    stream,
                    offset,
                    bytes,
                } if j == job_id => {
                    let buf = match stream {
                        Stream::Stdout => &mut self.stdout,
                        Stream::Stderr => &mut self.stderr,
                    };
                    assert_eq!(offset, buf.len() as u64, "{stream:?} chunk not contiguous");
                    buf.extend_from_slice(&bytes);
                }
                Event::Metric(m) if m.job_id == job_id => self.metrics.push(m),
                Event::MalformedMetric {
                    job_id: j,
                    offset,
                    error,
                } if j == job_id => self.malformed.push((offset, error)),
                e @ (Event::Exited { job_id: j, .. } | Event::Lost { job_id: j, .. }) if j == job_id => {
                    assert!(self.end.is_none(), "second end: {e:?}");
                    self.end = Some(e);
                }
                Event::Warning { message, .. } => panic!("warning: {message}"),
                _ => {}
            }
        }
    }

    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Polls until `done(seen)` or the deadline.
fn poll_until(sup: &mut Supervisor, job_id: u64, seen: &mut Seen, what: &str, done: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done(seen) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; stdout so far: {}",
            seen.stdout_text()
        );
        let events = sup.poll_wait(Duration::from_millis(200));
        seen.take(job_id, events);
    }
}

fn run_to_end(sup: &mut Supervisor, job_id: u64, seen: &mut Seen) -> Event {
    poll_until(sup, job_id, seen, "the job's end", |s| s.end.is_some());
    seen.end.clone().unwrap()
}

/// Polls until every one of `ids` has ended.
fn run_all_to_end(sup: &mut Supervisor, ids: &[u64]) -> Vec<Seen> {
    let mut seen: Vec<Seen> = ids.iter().map(|_| Seen::default()).collect();
    let deadline = Instant::now() + DEADLINE;
    while seen.iter().any(|s| s.end.is_none()) {
        assert!(Instant::now() < deadline, "timed out waiting for the ends of {ids:?}");
        let events = sup.poll_wait(Duration::from_millis(200));
        for (s, &id) in seen.iter_mut().zip(ids) {
            s.take(id, events.clone());
        }
    }
    seen
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn job_processes(sup: &Supervisor, job_id: u64) -> Vec<i32> {
    let artifacts = sup.job_dir(job_id).join("artifacts");
    procfs::with_env(&[
        ("AETHER_JOB_ID", &job_id.to_string()),
        ("AETHER_ARTIFACT_DIR", artifacts.to_str().unwrap()),
    ])
}

fn exited(event: &Event) -> (Option<i32>, Option<i32>, bool, ExitReason) {
    match event {
        Event::Exited {
            exit_code,
            signal,
            forced,
            reason,
            ..
        } => (*exit_code, *signal, *forced, *reason),
        other => panic!("expected Exited, got {other:?}"),
    }
}

fn checkpoint(sup: &Supervisor, job_id: u64) -> serde_json::Value {
    let path: PathBuf = sup.job_dir(job_id).join("artifacts/checkpoint.json");
    serde_json::from_slice(&std::fs::read(&path).expect("checkpoint written")).unwrap()
}

#[test]
fn exit_zero_with_stdout_and_stderr_apart_and_readable_from_offsets() {
    let dir = TestDir::new();
    let mut sup = supervisor(dir.path());
    let id = unique_id();
    let started = sup.start(id, &trainer(&["--steps", "3"])).unwrap();
    assert!(started.pid > 0 && started.shim_pid > 0 && started.pid != started.shim_pid);
    assert_eq!(sup.status(id).unwrap().state, JobState::Running);
    let mut seen = Seen::default();
    let end = run_to_end(&mut sup, id, &mut seen);
    assert_eq!(exited(&end), (Some(0), None, false, ExitReason::Exited));

    let out = seen.stdout_text();
    assert!(out.starts_with("ready\nstep 1/3"), "{out}");
    assert!(out.contains("step 3/3 loss=0.3333\n"), "{out}");
    let err = String::from_utf8_lossy(&seen.stderr);
    assert!(
        err.contains("trainer: start") && err.contains("trainer: finished"),
        "{err}"
    );
    assert!(!err.contains("step 1/") && !out.contains("trainer:"), "streams mixed");

    // read_log: any offset, bounded, eof only at the end of an ended job.
    let (head, eof) = sup.read_log(id, Stream::Stdout, 0, 6).unwrap();
    assert_eq!((head.as_slice(), eof), (&b"ready\n"[..], false));
    let (mid, eof) = sup.read_log(id, Stream::Stdout, 6, 11).unwrap();
    assert_eq!((mid.as_slice(), eof), (&b"step 1/3 lo"[..], false));
    let len = seen.stdout.len() as u64;
    let (tail, eof) = sup.read_log(id, Stream::Stdout, len - 4, 1000).unwrap();
    assert_eq!((tail.as_slice(), eof), (&seen.stdout[seen.stdout.len() - 4..], true));
    let (all, eof) = sup.read_log(id, Stream::Stderr, 0, 1 << 20).unwrap();
    assert_eq!((all, eof), (seen.stderr.clone(), true));
    let (none, eof) = sup
        .read_log(id, Stream::Stderr, seen.stderr.len() as u64 + 100, 10)
        .unwrap();
    assert!(none.is_empty() && eof);

    let status = sup.status(id).unwrap();
    assert_eq!(status.state, JobState::Exited);
    assert_eq!(
        (status.stdout_offset, status.stderr_offset),
        (len, seen.stderr.len() as u64)
    );
    assert_eq!(status.exit.unwrap().exit_code, Some(0));
    assert_eq!(checkpoint(&sup, id)["reason"], "finished");
    // Nothing more is reported for an ended job.
    assert!(sup.poll().is_empty());

    sup.forget(id).unwrap();
    assert!(sup.status(id).is_none() && !sup.job_dir(id).exists());
}

#[test]
fn exit_code_is_reported() {
    let dir = TestDir::new();
    let mut sup = supervisor(dir.path());
    let id = unique_id();
    sup.start(id, &trainer(&["--steps", "1", "--exit", "3"])).unwrap();
    let end = run_to_end(&mut sup, id, &mut Seen::default());
    assert_eq!(exited(&end), (Some(3), None, false, ExitReason::Exited));
    assert!(matches!(sup.forget(id), Ok(())));
}

#[test]
fn missing_command_is_a_spawn_error_reported_at_once() {
    let dir = TestDir::new();
    let mut sup = supervisor(dir.path());
    let id = unique_id();
    let t0 = Instant::now();
    let err = sup
        .start(id, &JobSpec::new(["/nonexistent/no-such-trainer", "--x"]))
        .unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(5), "took {:?}", t0.elapsed());
    let Error::Spawn(message) = err else { panic!("{err:?}") };
    assert!(message.contains("No such file or directory (os error 2)"), "{message}");
    // The shim's record of it stays in the job directory; the job is not tracked.
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sup.job_dir(id).join("exit.json")).unwrap()).unwrap();
    assert_eq!(record["reason"], "spawn_error");
    assert_eq!(record["spawn_error"], message.as_str());
    assert!(sup.status(id).is_none());

    // A working directory that does not exist, and an empty argv.
    let mut spec = JobSpec::new(["true"]);
    spec.cwd = Some("/nonexistent/dir".into());
    assert!(matches!(sup.start(id, &spec), Err(Error::Spawn(m)) if m.contains("cwd")));
    assert!(matches!(
        sup.start(id, &JobSpec::new(Vec::<String>::new())),
        Err(Error::InvalidSpec(_))
    ));
    // The id can be used again.
    sup.start(id, &JobSpec::new(["true"])).unwrap();
    assert_eq!(exited(&run_to_end(&mut sup, id, &mut Seen::default())).0, Some(0));
    assert!(matches!(
        sup.start(id, &JobSpec::new(["true"])),
        Err(Error::AlreadyExists(_))
    ));
}

#[test]
fn stop_of_a_sigterm_trapping_trainer_is_graceful() {
    let dir = TestDir::new();
    let mut sup = supervisor(dir.path());
    let id = unique_id();
    sup.start(id, &trainer(&["--steps", "100000", "--sleep", "0.02"]))
        .unwrap();
    let mut seen = Seen::default();
    poll_until(&mut sup, id, &mut seen, "step 2", |s| {
        s.stdout_text().contains("step 2/")
    });
    let t0 = Instant::now();
    sup.stop(id, 10_000).unwrap();
    assert_eq!(sup.status(id).unwrap().state, JobState::Stopping);
    let end = run_to_end(&mut sup, id, &mut seen);
    assert_eq!(exited(&end), (Some(0), None, false, ExitReason::Stopped));
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "waited for the grace: {:?}",
        t0.elapsed()
    );
    let ck = checkpoint(&sup, id);
    assert_eq!(ck["reason"], "sigterm");
    assert!(ck["step"].as_u64().unwrap() >= 2);
    assert!(seen.stdout_text().contains("checkpoint written"));
    assert!(String::from_utf8_lossy(&seen.stderr).contains("trainer: SIGTERM"));
    // Stopping an ended job is a no-op; an unknown one is an error.
    sup.stop(id, 0).unwrap();
    assert!(matches!(sup.stop(id + 1_000_000, 0), Err(Error::NotFound(_))));
}

#[test]
fn stop_of_a_sigterm_ignoring_trainer_with_escaped_grandchildren_is_forced_and_leaves_nothing() {
    let dir = TestDir::new();
    let mut sup = supervisor(dir.path());
    let id = unique_id();
    let args = [
        "--steps",
        "100000",
        "--sleep",
        "0.02",
        "--ignore-term",
        "--fork-grandchildren",
        "--setsid-grandchild",
    ];
    let started = sup.start(id, &trainer(&args)).unwrap();
    let mut seen = Seen::default();
    poll_until(&mut sup, id, &mut seen, "ready", |s| {
        s.stdout_text().contains("ready\n")
    });
    // The trainer, its two SIGTERM-ignoring helpers and the daemon.
    wait_for("4 processes of the job", || job_processes(&sup, id).len() >= 4);
    let procs = job_processes(&sup, id);
    let shim_session = procfs::stat(started.shim_pid).unwrap().session;
    let escaped: Vec<_> = procs
        .iter()
        .filter_map(|&p| procfs::stat(p))
        .filter(|s| s.session != shim_session)
        .collect();
    assert_eq!(escaped.len(), 1, "one process left the session: {procs:?}");
    assert_eq!(
        escaped[0].ppid, started.shim_pid,
        "the escaped daemon is reparented to the shim (subreaper)"
    );
    assert!(
        procs
            .iter()
            .filter_map(|&p| procfs::stat(p))
            .filter(|s| s.pgrp == started.pid)
            .count()
            >= 3
    );

    sup.stop(id, 300).unwrap();
    let end = run_to_end(&mut sup, id, &mut seen);
    assert_eq!(exited(&end), (None, Some(libc::SIGKILL), true, ExitReason::Stopped));
    // exit.json is written only after everything was killed and reaped.
    let left = job_processes(&sup, id);
    assert!(left.is_empty(), "processes of the job left: {left:?}");
    assert!(procfs::descendants(started.shim_pid).is_empty());
    let exit = sup.status(id).unwrap().exit.unwrap();
    assert!(exit.descendants_killed >= 3, "{exit:?}");
    assert!(!exit.cleanup_incomplete);
}

#[test]
fn a_second_stop_shortens_the_grace() {
    let dir = TestDir::new();
    let mut sup = supervisor(dir.path());
    let id = unique_id();
    sup.start(id, &trainer(&["--steps", "100000", "--sleep", "0.02", "--ignore-term"]))
        .unwrap();
    let mut seen = Seen::default();
    poll_until(&mut sup, id, &mut seen, "ready", |s| {
        s.stdout_text().contains("ready\n")
    });
    sup.stop(id, 60_000).unwrap();
    // SIGTERM is ignored: still running after a moment of the long grace.
    poll_until(&mut sup, id, &mut seen, "two more steps", |s| {
        s.stdout_text().matches("step ").count() >= 3
    });
    assert!(seen.end.is_none());
    let t0 = Instant::now();
    sup.stop(id, 0).unwrap();
    let end = run_to_end(&mut sup, id, &mut seen);
    assert_eq!(exited(&end), (None, Some(libc::SIGKILL), true, ExitReason::Stopped));
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn natural_exit_kills_what_the_job_left_behind() {
    let dir = TestDir::new();
    let mut sup = supervisor(dir.path());
    let id = unique_id();
    sup.start(
        id,
        &trainer(&["--steps", "1", "--fork-grandchildren", "--setsid-grandchild"]),
    )
    .unwrap();
    let end = run_to_end(&mut sup, id, &mut Seen::default());
    assert_eq!(exited(&end), (Some(0), None, false, ExitReason::Exited));
    assert!(job_processes(&sup, id).is_empty());
    assert!(sup.status(id).unwrap().exit.unwrap().descendants_killed >= 3);
}

#[test]
fn timeout_ends_as_timed_out() {
    let dir = TestDir::new();
    let mut sup = supervisor(dir.path());
    // A trainer that traps SIGTERM: a graceful end. The timeout leaves
    // python time to start and install its handler on a loaded machine
    // (checked: it printed "ready").
    let graceful = unique_id();
    let mut spec = trainer(&["--steps", "100000", "--sleep", "0.02"]);
    spec.timeout_ms = Some(1_000);
    spec.grace_ms = 5_000;
    let t0 = Instant::now();
    sup.start(graceful, &spec).unwrap();
    // A shell that ignores SIGTERM from its first command: killed after the grace.
    let forced = unique_id();
    let mut spec = JobSpec::new(["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"]);
    spec.timeout_ms = Some(300);
    spec.grace_ms = 200;
    sup.start(forced, &spec).unwrap();

    let seen = run_all_to_end(&mut sup, &[graceful, forced]);
    assert!(
        seen[0].stdout_text().contains("ready\n"),
        "the trainer did not get going in time"
    );
    assert_eq!(
        exited(seen[0].end.as_ref().unwrap()),
        (Some(0), None, false, ExitReason::TimedOut)
    );
    assert!(t0.elapsed() >= Duration::from_millis(1_000));
    assert_eq!(checkpoint(&sup, graceful)["reason"], "sigterm");
    assert_eq!(
        exited(seen[1].end.as_ref().unwrap()),
        (None, Some(libc::SIGKILL), true, ExitReason::TimedOut)
    );
}

#[test]
fn metric_lines_are_parsed_and_malformed_ones_counted() {
    let dir = TestDir::new();
    let mut sup = supervisor(dir.path());
    let id = unique_id();
    sup.start(id, &trainer(&["--steps", "3", "--bad-metric"])).unwrap();
    let mut seen = Seen::default();
    run_to_end(&mut sup, id, &mut seen);
    let steps: Vec<_> = seen
        .metrics
        .iter()
        .map(|m| (m.point.name.as_str(), m.point.step))
        .collect();
    assert_eq!(steps, [("loss", Some(1)), ("loss", Some(2)), ("loss", Some(3))]);
    assert_eq!(seen.metrics[1].point.value, 0.5);
    let tags = &seen.metrics[0].point.tags;
    assert_eq!(
        (tags.len(), tags[0].key.as_str(), tags[0].value.as_str()),
        (1, "split", "train")
    );
    for m in &seen.metrics {
        // The offset is the metric line's place in stdout (which keeps it).
        assert!(
            seen.stdout[m.offset as usize..].starts_with(b"{\"aether_metric\""),
            "{m:?}"
        );
    }
    assert_eq!(seen.malformed.len(), 1);
    let (offset, error) = &seen.malformed[0];
    assert!(seen.stdout[*offset as usize..].starts_with(b"{\"aether_metric\": {\"name\": \"loss\", \"value\": }"));
    assert!(error.contains("not valid JSON"), "{error}");
    let status = sup.status(id).unwrap();
    assert_eq!((status.metrics, status.malformed_metrics), (3, 1));
}

/// The python helper's kinds, tags and bounds, parsed by the bridge;
/// its old calls (tags as keyword arguments) unchanged; a point the ABI's
/// checks refuse is malformed with the check's reason.
#[test]
fn the_python_helper_writes_every_kind_and_bad_points_are_malformed() {
    let dir = TestDir::new();
    let mut sup = supervisor(dir.path());
    let id = unique_id();
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../python");
    let script = format!(
        r#"import sys; sys.path.insert(0, {python:?}); import aether
aether.metric("eval/accuracy", 0.9, step=3, split="val")
aether.metric("samples", 5120, kind="counter", tags={{"kind": "train"}}, rank=1)
aether.metric("batch.s", 0.21, kind="histogram", buckets=[0.1, 0.25, 1, float("inf")])
aether.metric("samples", float("nan"), kind="counter")
aether.metric("loss", 1, **{{"t%d" % i: i for i in range(9)}})
"#
    );
    sup.start(id, &JobSpec::new(["python3", "-c", script.as_str()]))
        .unwrap();
    let mut seen = Seen::default();
    let end = run_to_end(&mut sup, id, &mut seen);
    assert_eq!(exited(&end).0, Some(0), "{}", String::from_utf8_lossy(&seen.stderr));
    let points: Vec<_> = seen.metrics.iter().map(|m| &m.point).collect();
    assert_eq!(points.len(), 3, "{points:?}");
    let tags = |i: usize| -> Vec<(&str, &str)> {
        points[i]
            .tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect()
    };
    assert_eq!(
        (points[0].name.as_str(), points[0].kind, points[0].step),
        ("eval_accuracy", MetricKind::Gauge, Some(3))
    );
    assert_eq!(tags(0), [("split", "val")]);
    assert_eq!(
        (points[1].name.as_str(), points[1].kind, points[1].value),
        ("samples", MetricKind::Counter, 5120.0)
    );
    assert_eq!(tags(1), [("kind", "train"), ("rank", "1")]);
    assert_eq!(
        (points[2].name.as_str(), points[2].kind),
        ("batch_s", MetricKind::Histogram)
    );
    assert_eq!(
        points[2].buckets.as_slice(),
        [0.1, 0.25, 1.0],
        "the +Inf bound is the exposition's own"
    );
    let reasons: Vec<&str> = seen.malformed.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(
        reasons,
        [MetricError::NanInCounter.as_str(), MetricError::TooManyTags.as_str()]
    );
    let status = sup.status(id).unwrap();
    assert_eq!((status.metrics, status.malformed_metrics), (3, 2));
}

#[test]
fn unterminated_last_line_and_non_utf8_bytes_are_kept() {
    let dir = TestDir::new();
    let mut sup = supervisor(dir.path());
    let id = unique_id();
    let script =
        r#"printf 'a\377\376b\n'; printf '\200\201' >&2; printf '{"aether_metric": {"name": "x", "value": 1}}'"#;
    sup.start(id, &JobSpec::new(["sh", "-c", script])).unwrap();
    let mut seen = Seen::default();
    run_to_end(&mut sup, id, &mut seen);
    assert_eq!(
        seen.stdout,
        b"a\xff\xfeb\n{\"aether_metric\": {\"name\": \"x\", \"value\": 1}}"
    );
    assert_eq!(seen.stderr, b"\x80\x81");
    // The last line had no newline: it is parsed when the job has ended.
    assert_eq!(seen.metrics.len(), 1);
    assert_eq!((seen.metrics[0].point.name.as_str(), seen.metrics[0].offset), ("x", 5));
}

#[test]
fn env_and_cwd_reach_the_job() {
    let dir = TestDir::new();
    let mut sup = supervisor(dir.path());
    let id = unique_id();
    let mut spec = JobSpec::new([
        "sh",
        "-c",
        r#"echo "$GREETING $AETHER_JOB_ID $AETHER_ARTIFACT_DIR $(pwd)""#,
    ]);
    spec.env.push(("GREETING".into(), "hello".into()));
    spec.cwd = Some("/tmp".into());
    sup.start(id, &spec).unwrap();
    let mut seen = Seen::default();
    run_to_end(&mut sup, id, &mut seen);
    let artifacts = sup.job_dir(id).join("artifacts");
    assert_eq!(seen.stdout_text(), format!("hello {id} {} /tmp\n", artifacts.display()));
}

#[test]
fn a_new_supervisor_readopts_a_running_job_and_reports_its_end() {
    let dir = TestDir::new();
    let id = unique_id();
    let mut seen = Seen::default();
    let started = {
        let mut sup = supervisor(dir.path());
        let started = sup
            .start(id, &trainer(&["--steps", "100000", "--sleep", "0.02"]))
            .unwrap();
        poll_until(&mut sup, id, &mut seen, "step 3", |s| {
            s.stdout_text().contains("step 3/")
        });
        // Only one supervisor per state directory.
        assert!(matches!(
            Supervisor::with_shim_exe(dir.path(), SHIM),
            Err(Error::Busy(_))
        ));
        started
    };
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state.json")).unwrap()).unwrap();
    let entry = &state["jobs"][0];
    assert_eq!(entry["job_id"], id);
    assert_eq!(entry["shim_pid"], started.shim_pid);
    assert_eq!(entry["pid"], started.pid);
    assert_eq!(
        entry["shim_start_time"],
        procfs::stat(started.shim_pid).unwrap().start_time
    );
    assert_eq!(entry["stdout_offset"], seen.stdout.len());

    let mut sup = supervisor(dir.path());
    let status = sup.status(id).unwrap();
    assert_eq!((status.state, status.pid), (JobState::Running, started.pid));
    // Logs go on from the delivered offsets (Seen checks contiguity).
    poll_until(&mut sup, id, &mut seen, "step 6", |s| {
        s.stdout_text().contains("step 6/")
    });
    sup.stop(id, 5_000).unwrap();
    let end = run_to_end(&mut sup, id, &mut seen);
    assert_eq!(exited(&end), (Some(0), None, false, ExitReason::Stopped));
    let (file, _) = sup.read_log(id, Stream::Stdout, 0, 1 << 20).unwrap();
    assert_eq!(
        file, seen.stdout,
        "every byte delivered exactly once across the two supervisors"
    );
    // Metric points go on too: one per step, none twice.
    let last_step = seen.stdout_text().lines().filter(|l| l.starts_with("step ")).count() as u64;
    let metric_steps: Vec<_> = seen.metrics.iter().filter_map(|m| m.point.step).collect();
    assert_eq!(metric_steps, (1..=last_step).collect::<Vec<_>>());
}

#[test]
fn a_job_killed_while_no_supervisor_runs_is_reported_as_exited() {
    let dir = TestDir::new();
    let id = unique_id();
    let started = {
        let mut sup = supervisor(dir.path());
        sup.start(id, &JobSpec::new(["sleep", "30"])).unwrap()
    };
    assert!(kill(started.pid, libc::SIGKILL));
    let exit_json = dir.path().join(format!("jobs/{id}/exit.json"));
    wait_for("the shim's exit.json", || exit_json.exists());
    let mut sup = supervisor(dir.path());
    assert_eq!(sup.status(id).unwrap().state, JobState::Exited);
    let end = run_to_end(&mut sup, id, &mut Seen::default());
    assert_eq!(exited(&end), (None, Some(libc::SIGKILL), false, ExitReason::Exited));
}

#[test]
fn a_job_whose_shim_died_is_lost_and_its_leftovers_are_killed() {
    let dir = TestDir::new();
    // Shim and job both killed.
    let id = unique_id();
    // Shim killed, the job still running: it is killed when found lost.
    let id2 = unique_id();
    let (a, b) = {
        let mut sup = supervisor(dir.path());
        let a = sup.start(id, &JobSpec::new(["sleep", "30"])).unwrap();
        let b = sup.start(id2, &JobSpec::new(["sleep", "30"])).unwrap();
        (a, b)
    };
    assert!(kill(a.shim_pid, libc::SIGKILL));
    assert!(kill(-a.pid, libc::SIGKILL));
    assert!(kill(b.shim_pid, libc::SIGKILL));
    let b_start = procfs::stat(b.pid).unwrap().start_time;
    wait_for("the shims to die", || {
        procfs::stat(a.shim_pid).is_none_or(|s| s.is_dead()) && procfs::stat(b.shim_pid).is_none_or(|s| s.is_dead())
    });

    let mut sup = supervisor(dir.path());
    assert_eq!(sup.status(id).unwrap().state, JobState::Lost);
    assert_eq!(sup.status(id2).unwrap().state, JobState::Lost);
    let [seen, seen2] = <[Seen; 2]>::try_from(run_all_to_end(&mut sup, &[id, id2]))
        .ok()
        .unwrap();
    assert!(matches!(seen.end, Some(Event::Lost { .. })));
    assert!(
        matches!(&seen2.end, Some(Event::Lost { message, .. }) if message.contains("1 leftover")),
        "{:?}",
        seen2.end
    );
    wait_for("the lost job's process to die", || !procfs::is_alive(b.pid, b_start));
    assert!(job_processes(&sup, id2).is_empty());
    // Lost is final: a third supervisor says the same.
    drop(sup);
    let sup = supervisor(dir.path());
    assert_eq!(sup.status(id).unwrap().state, JobState::Lost);
}

fn kill(pid: i32, sig: i32) -> bool {
    // SAFETY: kill(2) takes integers only.
    unsafe { libc::kill(pid, sig) == 0 }
}

#[test]
fn serve_stops_its_jobs_on_sigterm_and_leaves_them_running_on_sigkill() {
    let dir = TestDir::new();
    let (graceful, kept) = (unique_id(), unique_id());
    {
        let mut sup = supervisor(dir.path());
        for id in [graceful, kept] {
            sup.start(id, &trainer(&["--steps", "100000", "--sleep", "0.02"]))
                .unwrap();
        }
        for id in [graceful, kept] {
            wait_for("the trainer's ready line", || {
                let (out, _) = sup.read_log(id, Stream::Stdout, 0, 1 << 16).unwrap();
                String::from_utf8_lossy(&out).contains("ready")
            });
        }
    }
    let serve = |dir: &Path| {
        let mut child = std::process::Command::new(SHIM)
            .args(["serve", "--port", "0", "--shm"])
            .arg(dir.join("no-region"))
            .arg("--state-dir")
            .arg(dir)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Serving (the jobs re-adopted) once it waits for the region.
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("waiting for the shared region") {
            line.clear();
            assert_ne!(
                std::io::BufRead::read_line(&mut stderr, &mut line).unwrap(),
                0,
                "serve ended early"
            );
        }
        (child, stderr)
    };
    // SIGKILL (a crash): the jobs go on, for the next bridge to re-adopt.
    let (mut bridge, _stderr) = serve(dir.path());
    bridge.kill().unwrap();
    bridge.wait().unwrap();
    let sup = supervisor(dir.path());
    for id in [graceful, kept] {
        assert_eq!(sup.status(id).unwrap().state, JobState::Running, "job {id}");
    }
    drop(sup);
    // SIGTERM: the bridge stops every job (its grace) and exits.
    let (mut bridge, mut stderr) = serve(dir.path());
    kill(bridge.id() as i32, libc::SIGTERM);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(bridge.wait().unwrap().success(), "{rest}");
    assert!(rest.contains("stopping 2 job(s)"), "{rest}");
    assert!(rest.contains("host-bridge: shut down\n"), "{rest}");
    // Their ends are on record for the next supervisor.
    let mut sup = supervisor(dir.path());
    let mut ends = std::collections::BTreeMap::new();
    let deadline = Instant::now() + DEADLINE;
    while ends.len() < 2 {
        assert!(Instant::now() < deadline, "ends seen: {ends:?}");
        for event in sup.poll_wait(Duration::from_millis(100)) {
            if let Event::Exited { job_id, .. } = event {
                ends.insert(job_id, exited(&event));
            }
        }
    }
    for id in [graceful, kept] {
        assert_eq!(ends[&id], (Some(0), None, false, ExitReason::Stopped), "job {id}");
        assert_eq!(checkpoint(&sup, id)["reason"], "sigterm");
        assert!(job_processes(&sup, id).is_empty());
    }
}
