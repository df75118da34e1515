use std::collections::HashMap;
use std::vec::Vec as StdVec;

use aether_abi::job::{Arg, JobName, LOG_CHUNK_MAX, MESSAGE_MAX};
use aether_abi::metric::{MetricKind, MetricPoint};
use heapless::{String, Vec};

use super::*;

mod artifacts;
mod persist;
mod telemetry;

fn host_spec(name: &str) -> JobSpec {
    JobSpec {
        name: JobName::try_from(name).unwrap(),
        entrypoint: Vec::from_slice(&[Arg::try_from("python3").unwrap(), Arg::try_from("t.py").unwrap()]).unwrap(),
        ..JobSpec::default()
    }
}

fn native_spec(name: &str) -> JobSpec {
    JobSpec {
        kind: JobKind::Native,
        ..host_spec(name)
    }
}

fn chunk(job_id: u64, stream: Stream, offset: u64, bytes: &[u8]) -> LinkMessage {
    LinkMessage::Log(LogChunk {
        job_id,
        stream,
        offset,
        ts_ms: 0,
        bytes: Vec::from_slice(bytes).unwrap(),
    })
}

fn started(job_id: u64, started_ms: u64) -> LinkMessage {
    LinkMessage::Started {
        job_id,
        pid: 4242,
        started_ms,
    }
}

fn exited(job_id: u64, code: i32, ended_ms: u64) -> LinkMessage {
    LinkMessage::Exited {
        job_id,
        exit_code: Some(code),
        signal: None,
        forced: false,
        ended_ms,
        reason: TerminationReason::Exited,
    }
}

fn exited_stopped(job_id: u64, forced: bool, ended_ms: u64) -> LinkMessage {
    LinkMessage::Exited {
        job_id,
        exit_code: None,
        signal: Some(if forced { 9 } else { 15 }),
        forced,
        ended_ms,
        reason: TerminationReason::Stopped,
    }
}

fn point(name: &str, value: f64, step: u64) -> MetricPoint {
    let mut p = MetricPoint::new(name, MetricKind::Gauge, value).unwrap();
    p.step = Some(step);
    p
}

/// The table, every event checked against the state machine and against
/// the state the job was last seen in, and the invariants checked after
/// every input.
struct H {
    jobs: Jobs,
    events: StdVec<Event>,
    states: HashMap<u64, JobState>,
    /// (start, end) of each stream last seen: never decreasing.
    ranges: HashMap<(u64, usize), (u64, u64)>,
    events_dropped: u64,
}

impl H {
    fn new(config: Config) -> H {
        H::with_jobs(Jobs::new(config))
    }

    /// Around a table made otherwise (a restore): the events it has made
    /// so far are taken as they come (a restore's are LOST ones).
    fn with_jobs(mut jobs: Jobs) -> H {
        let events: StdVec<Event> = jobs.drain_events().collect();
        for ev in &events {
            assert_eq!(ev.to, JobState::Lost, "{ev:?}");
            assert!(!ev.from.is_terminal(), "{ev:?}");
        }
        let states = jobs.table.iter().map(|(&id, j)| (id, j.status())).collect();
        let h = H {
            jobs,
            events,
            states,
            ranges: HashMap::new(),
            events_dropped: 0,
        };
        check_invariants(&h.jobs);
        h
    }

    /// Connected to a bridge.
    fn connected(config: Config) -> H {
        let mut h = H::new(config);
        h.jobs.on_bridge_connected(0);
        h.after();
        h
    }

    fn after(&mut self) {
        let new: StdVec<Event> = self.jobs.drain_events().collect();
        // Events were dropped (a full queue): continuity cannot be checked
        // across the hole, so the first event of each job after it is
        // taken as it comes.
        let lossy = self.jobs.stats().events_dropped != self.events_dropped;
        self.events_dropped = self.jobs.stats().events_dropped;
        let mut seen = std::collections::HashSet::new();
        for ev in new {
            assert!(ev.from.can_become(ev.to), "{ev:?}");
            let last = self.states.get(&ev.job_id).copied().unwrap_or(JobState::Pending);
            if !lossy || !seen.insert(ev.job_id) {
                assert_eq!(ev.from, last, "{ev:?} after {last}");
            }
            self.states.insert(ev.job_id, ev.to);
            self.events.push(ev);
        }
        if lossy {
            for (&id, job) in &self.jobs.table {
                self.states.insert(id, job.status());
            }
        }
        check_invariants(&self.jobs);
        for (&id, job) in &self.jobs.table {
            let seen = self.states.get(&id).copied().unwrap_or(JobState::Pending);
            assert_eq!(job.status(), seen, "job {id}: the events tell another state");
            for (i, log) in job.logs.iter().enumerate() {
                let now = (log.start(), log.end());
                if let Some(&(s, e)) = self.ranges.get(&(id, i)) {
                    assert!(
                        now.0 >= s && now.1 >= e,
                        "job {id} stream {i}: {now:?} after {:?}",
                        (s, e)
                    );
                }
                self.ranges.insert((id, i), now);
            }
        }
    }

    fn handle(&mut self, req: JobRequest, now: u64) -> Handled {
        let r = self.jobs.handle(req, now);
        self.after();
        r
    }

    fn reply(&mut self, req: JobRequest, now: u64) -> JobReply {
        match self.handle(req, now) {
            Handled::Reply(r) => r,
            Handled::Pending(id) => panic!("pending on {id}"),
        }
    }

    fn start(&mut self, spec: JobSpec, now: u64) -> u64 {
        match self.reply(JobRequest::Start(spec), now) {
            Ok(JobResponse::Started { job_id }) => job_id,
            other => panic!("{other:?}"),
        }
    }

    fn link(&mut self, msg: LinkMessage, now: u64) {
        self.jobs.on_link(msg, now);
        self.after();
    }

    fn tick(&mut self, now: u64) {
        self.jobs.tick(now);
        self.after();
    }

    fn out(&mut self) -> StdVec<LinkMessage> {
        let v = self.jobs.drain_outbox().collect();
        self.after();
        v
    }

    fn record(&self, id: u64) -> JobRecord {
        self.jobs.record(id).unwrap().clone()
    }

    fn status(&self, id: u64) -> JobState {
        self.jobs.record(id).unwrap().status
    }

    fn logs(&mut self, job_id: u64, stream: Stream, offset: u64, max: u32) -> (u64, StdVec<u8>, bool) {
        match self.reply(
            JobRequest::Logs {
                job_id,
                stream,
                offset,
                max,
            },
            0,
        ) {
            Ok(JobResponse::Logs { offset, bytes, eof, .. }) => (offset, bytes.to_vec(), eof),
            other => panic!("{other:?}"),
        }
    }

    /// The arrival time a `Logs` answer from `offset` gives.
    fn log_time(&mut self, job_id: u64, stream: Stream, offset: u64) -> Option<u64> {
        match self.reply(
            JobRequest::Logs {
                job_id,
                stream,
                offset,
                max: 1,
            },
            0,
        ) {
            Ok(JobResponse::Logs { ts_ms, .. }) => ts_ms,
            other => panic!("{other:?}"),
        }
    }

    /// The transitions of one job, in order.
    fn path(&self, id: u64) -> StdVec<JobState> {
        let mut path = std::vec![JobState::Pending];
        path.extend(self.events.iter().filter(|e| e.job_id == id).map(|e| e.to));
        path
    }
}

fn check_invariants(jobs: &Jobs) {
    let c = jobs.io.config;
    assert!(jobs.table.len() <= c.max_jobs);
    let mut total = 0;
    for (&id, job) in &jobs.table {
        assert_eq!(job.record.job_id, id);
        assert!(id < jobs.next_id);
        for log in &job.logs {
            assert!(log.start() <= log.end());
            assert!(log.base() <= log.end());
            assert!(log.kept() <= c.log_bytes_per_stream);
            assert_eq!(log.end() - log.start(), log.kept() as u64);
            total += log.kept();
        }
        let m = &job.record.latest_metrics;
        assert!(m.len() <= c.max_metrics);
        for (i, a) in m.iter().enumerate() {
            assert!(m[i + 1..].iter().all(|b| b.name != a.name));
        }
        if job.status().is_terminal() {
            assert!(job.spec.is_none(), "job {id} ended but keeps its spec");
            assert!(job.record.ended_ms.is_some());
            assert!(job.record.termination_reason.is_some());
        } else {
            assert!(job.spec.is_some());
        }
        if job.status() == JobState::Running {
            assert!(job.running_since_ms.is_some());
        }
        if job.status() == JobState::Stopping {
            assert!(job.stop_cause.is_some());
        }
        // Only a job stopped before it was ever dispatched has no attempt
        // (or one a reboot lost while it waited for the bridge).
        let lost_at_reboot = job.record.message.starts_with("lost: reboot");
        if !matches!(job.status(), JobState::Pending | JobState::Stopped) && !lost_at_reboot {
            assert!(job.record.attempt >= 1, "job {id}: {:?}", job.record);
        }
        assert!(job.record.attempt <= job.max_retries.saturating_add(1));
    }
    assert_eq!(total, jobs.io.log_bytes);
    assert!(total <= c.log_bytes_total);
    assert!(jobs.io.outbox.len() <= 4 * c.max_jobs + API_REPLIES_MAX);
    let api = jobs.io.outbox.iter().filter(|o| matches!(o, Out::ApiReply(..))).count();
    assert_eq!(api, jobs.io.api_replies);
    assert!(api <= API_REPLIES_MAX);
    assert!(jobs.io.actions.len() <= 2 * c.max_jobs);
    assert!(jobs.io.events.len() <= c.max_events);
    assert!(jobs.io.api_waits.len() <= API_WAITS_MAX);
    if !jobs.io.connected {
        assert!(jobs.io.outbox.iter().all(|o| matches!(o, Out::ApiReply(..))));
    }
    crate::persist::check_invariants(jobs);
}

#[test]
fn happy_path() {
    let mut h = H::connected(Config::default());
    let id = h.start(host_spec("train"), 1000);
    assert_eq!(id, 1);
    let rec = h.record(id);
    assert_eq!(
        (rec.status, rec.attempt, rec.created_ms),
        (JobState::Pending, 1, Some(1000))
    );
    let out = h.out();
    assert_eq!(
        out,
        [LinkMessage::Start {
            job_id: 1,
            spec: Box::new(host_spec("train"))
        }]
    );
    h.link(started(id, 1100), 1105);
    assert_eq!(h.status(id), JobState::Running);
    assert_eq!(h.record(id).started_ms, Some(1100));
    assert_eq!(h.jobs.pid(id), Some(4242));

    // Both streams, apart, with their own offsets; bytes, not text.
    h.link(chunk(id, Stream::Stdout, 0, b"hello "), 1200);
    h.link(chunk(id, Stream::Stderr, 0, &[0xff, 0xfe, 0x00, b'!']), 1210);
    h.link(chunk(id, Stream::Stdout, 6, b"world\n"), 1220);
    assert_eq!(
        h.logs(id, Stream::Stdout, 0, 1024),
        (0, b"hello world\n".to_vec(), false)
    );
    assert_eq!(
        h.logs(id, Stream::Stderr, 0, 1024),
        (0, std::vec![0xff, 0xfe, 0, b'!'], false)
    );
    assert_eq!(h.logs(id, Stream::Stdout, 6, 3), (6, b"wor".to_vec(), false));
    assert_eq!(h.record(id).last_output_at_ms, Some(1220));

    // Metrics: the latest value per name.
    h.link(
        LinkMessage::Metric {
            job_id: id,
            ts_ms: 1,
            offset: 0,
            point: point("loss", 0.9, 1),
        },
        1300,
    );
    h.link(
        LinkMessage::Metric {
            job_id: id,
            ts_ms: 1,
            offset: 0,
            point: point("acc", 0.1, 1),
        },
        1310,
    );
    h.link(
        LinkMessage::Metric {
            job_id: id,
            ts_ms: 2,
            offset: 0,
            point: point("loss", 0.4, 2),
        },
        1320,
    );
    let m = h.record(id).latest_metrics;
    assert_eq!(m.len(), 2);
    assert_eq!((m[0].name.as_str(), m[0].value, m[0].step), ("loss", 0.4, Some(2)));
    assert_eq!(m[1].name.as_str(), "acc");
    assert_eq!(h.record(id).last_output_at_ms, Some(1320));
    // Counted: every point, every byte of each stream.
    let rec = h.record(id);
    assert_eq!((rec.metric_points, rec.stdout_bytes, rec.stderr_bytes), (3, 12, 4));

    h.link(exited(id, 0, 5100), 5101);
    let rec = h.record(id);
    assert_eq!(rec.status, JobState::Succeeded);
    assert_eq!(rec.exit_code, Some(0));
    assert_eq!(rec.runtime_ms, Some(4000));
    assert_eq!(rec.ended_ms, Some(5100));
    assert_eq!(rec.termination_reason, Some(TerminationReason::Exited));
    assert!(!rec.forced_kill);
    assert!(h.logs(id, Stream::Stdout, 0, 1024).2);
    assert!(!h.logs(id, Stream::Stdout, 0, 4).2);
    assert_eq!(h.path(id), [JobState::Pending, JobState::Running, JobState::Succeeded]);
    assert!(h.out().is_empty());
    assert_eq!(h.jobs.stats(), Stats::default());
}

#[test]
fn exit_code_3_is_failed() {
    let mut h = H::connected(Config::default());
    let id = h.start(host_spec("t"), 0);
    h.link(started(id, 10), 10);
    h.link(exited(id, 3, 20), 20);
    let rec = h.record(id);
    assert_eq!(rec.status, JobState::Failed);
    assert_eq!(rec.exit_code, Some(3));
    assert_eq!(rec.termination_reason, Some(TerminationReason::Exited));
    assert_eq!(rec.message.as_str(), "exit code 3");
    assert_eq!(rec.attempt, 1);
    // A signal is FAILED too.
    let id = h.start(host_spec("t"), 0);
    h.link(started(id, 10), 10);
    h.link(
        LinkMessage::Exited {
            job_id: id,
            exit_code: None,
            signal: Some(11),
            forced: false,
            ended_ms: 30,
            reason: TerminationReason::Signaled,
        },
        30,
    );
    let rec = h.record(id);
    assert_eq!(rec.status, JobState::Failed);
    assert_eq!(rec.termination_reason, Some(TerminationReason::Signaled));
    assert_eq!(rec.signal, Some(11));
}

#[test]
fn max_retries_2_makes_three_attempts() {
    let mut h = H::connected(Config::default());
    let id = h.start(
        JobSpec {
            max_retries: 2,
            ..host_spec("flaky")
        },
        0,
    );
    let mut starts = 0;
    for attempt in 1..=3u8 {
        let out = h.out();
        assert!(
            matches!(out[..], [LinkMessage::Start { job_id, .. }] if job_id == id),
            "{out:?}"
        );
        starts += 1;
        assert_eq!(h.record(id).attempt, attempt);
        let t = u64::from(attempt) * 100;
        h.link(started(id, t), t);
        assert_eq!(h.record(id).started_ms, Some(t));
        // Each attempt's offsets start at 0 on the bridge.
        h.link(chunk(id, Stream::Stdout, 0, &[b'0' + attempt]), t + 1);
        h.link(chunk(id, Stream::Stdout, 1, b"\n"), t + 1);
        h.link(exited(id, 1, t + 50), t + 50);
    }
    assert_eq!(starts, 3);
    assert!(h.out().is_empty());
    let rec = h.record(id);
    assert_eq!(rec.status, JobState::Failed);
    assert_eq!(rec.attempt, 3);
    assert_eq!(rec.exit_code, Some(1));
    assert_eq!(rec.runtime_ms, Some(50));
    use JobState::*;
    assert_eq!(
        h.path(id),
        [
            Pending, Running, Failed, Pending, Running, Failed, Pending, Running, Failed
        ]
    );
    // One stream across the attempts.
    assert_eq!(h.logs(id, Stream::Stdout, 0, 100), (0, b"1\n2\n3\n".to_vec(), true));
    assert_eq!(h.jobs.stats().duplicate_chunks, 0);
}

#[test]
fn a_retry_clears_the_attempt_and_can_succeed() {
    let mut h = H::connected(Config::default());
    let id = h.start(
        JobSpec {
            max_retries: 1,
            ..host_spec("t")
        },
        0,
    );
    h.out();
    h.link(started(id, 10), 10);
    h.link(exited(id, 2, 20), 20);
    let rec = h.record(id);
    assert_eq!((rec.status, rec.attempt), (JobState::Pending, 2));
    assert_eq!(rec.exit_code, None);
    assert_eq!(rec.started_ms, None);
    assert_eq!(rec.termination_reason, None);
    assert!(
        rec.message.starts_with("retrying: attempt 1 failed (exit code 2)"),
        "{}",
        rec.message
    );
    // A Wait meanwhile stays pending: the job has not ended for good.
    assert_eq!(h.handle(JobRequest::Wait { job_id: id }, 21), Handled::Pending(id));
    h.out();
    h.link(started(id, 30), 30);
    h.link(exited(id, 0, 40), 40);
    assert_eq!(h.status(id), JobState::Succeeded);
    assert!(matches!(h.jobs.wait_reply(id), Some(Ok(JobResponse::Ended(r))) if r.attempt == 2));
}

#[test]
fn stop_of_running_then_exit_is_stopped() {
    let mut h = H::connected(Config::default());
    let id = h.start(
        JobSpec {
            grace_ms: 3000,
            ..host_spec("t")
        },
        0,
    );
    h.out();
    h.link(started(id, 10), 10);
    assert_eq!(h.reply(JobRequest::Stop { job_id: id }, 100), Ok(JobResponse::Stopping));
    let rec = h.record(id);
    assert_eq!(rec.status, JobState::Stopping);
    assert_eq!(rec.stop_requested_at_ms, Some(100));
    assert_eq!(
        h.out(),
        [LinkMessage::Stop {
            job_id: id,
            grace_ms: 3000
        }]
    );
    // A second stop: still stopping, nothing sent again.
    assert_eq!(h.reply(JobRequest::Stop { job_id: id }, 150), Ok(JobResponse::Stopping));
    assert!(h.out().is_empty());
    h.link(exited_stopped(id, false, 200), 200);
    let rec = h.record(id);
    assert_eq!(rec.status, JobState::Stopped);
    assert_eq!(rec.termination_reason, Some(TerminationReason::Stopped));
    assert!(!rec.forced_kill);
    assert_eq!(rec.runtime_ms, Some(190));
    assert_eq!(
        h.path(id),
        [
            JobState::Pending,
            JobState::Running,
            JobState::Stopping,
            JobState::Stopped
        ]
    );
}

#[test]
fn a_forced_kill_is_recorded() {
    let mut h = H::connected(Config::default());
    let id = h.start(host_spec("t"), 0);
    h.link(started(id, 10), 10);
    h.reply(JobRequest::Stop { job_id: id }, 100).unwrap();
    // Even an exit code 0 during a user stop is STOPPED.
    h.link(
        LinkMessage::Exited {
            job_id: id,
            exit_code: None,
            signal: Some(9),
            forced: true,
            ended_ms: 10_100,
            reason: TerminationReason::Stopped,
        },
        10_100,
    );
    let rec = h.record(id);
    assert_eq!(rec.status, JobState::Stopped);
    assert!(rec.forced_kill);
    assert_eq!(rec.signal, Some(9));
    assert!(rec.message.contains("SIGKILL"), "{}", rec.message);
}

#[test]
fn stop_of_pending_is_stopped_at_once() {
    // Not connected: the job waits, its Start never left.
    let mut h = H::new(Config::default());
    let id = h.start(host_spec("t"), 0);
    assert_eq!(h.record(id).message.as_str(), WAITING);
    assert_eq!(h.reply(JobRequest::Stop { job_id: id }, 5), Ok(JobResponse::Stopping));
    let rec = h.record(id);
    assert_eq!(rec.status, JobState::Stopped);
    assert_eq!(rec.ended_ms, Some(5));
    assert_eq!(rec.termination_reason, Some(TerminationReason::Stopped));
    assert_eq!(h.path(id), [JobState::Pending, JobState::Stopping, JobState::Stopped]);
    // Connecting does not start it.
    h.jobs.on_bridge_connected(6);
    h.after();
    assert!(h.out().is_empty());

    // Connected, Start queued but not taken: it is simply not sent.
    let id = h.start(host_spec("t"), 10);
    h.reply(JobRequest::Stop { job_id: id }, 11).unwrap();
    assert!(h.out().is_empty());

    // Start taken: the bridge may run it, so it is told to stop.
    let id = h.start(host_spec("t"), 20);
    assert_eq!(h.out().len(), 1);
    h.reply(JobRequest::Stop { job_id: id }, 21).unwrap();
    assert_eq!(h.status(id), JobState::Stopped);
    assert!(matches!(h.out()[..], [LinkMessage::Stop { job_id, .. }] if job_id == id));
    // And if it reports running anyway, it is stopped again.
    h.link(started(id, 22), 22);
    assert_eq!(h.status(id), JobState::Stopped);
    assert!(matches!(h.out()[..], [LinkMessage::Stop { job_id, .. }] if job_id == id));
    assert_eq!(h.jobs.stats().late_starts, 1);
    // Its exit changes nothing.
    h.link(exited_stopped(id, false, 30), 30);
    assert_eq!(h.status(id), JobState::Stopped);
    assert_eq!(h.jobs.stats().stale_messages, 1);
}

#[test]
fn stop_of_ended_is_already_ended() {
    let mut h = H::connected(Config::default());
    let id = h.start(host_spec("t"), 0);
    h.link(started(id, 1), 1);
    h.link(exited(id, 0, 2), 2);
    assert_eq!(
        h.reply(JobRequest::Stop { job_id: id }, 3),
        Err(JobError::AlreadyEnded {
            status: JobState::Succeeded
        })
    );
    assert_eq!(h.reply(JobRequest::Stop { job_id: 99 }, 3), Err(JobError::NoSuchJob));
}

#[test]
fn timeout_via_tick() {
    let mut h = H::connected(Config::default());
    let id = h.start(
        JobSpec {
            timeout_ms: Some(1000),
            grace_ms: 500,
            ..host_spec("t")
        },
        0,
    );
    h.out();
    h.link(started(id, 100), 100);
    assert_eq!(h.jobs.next_deadline(), Some(1100));
    h.tick(1099);
    assert_eq!(h.status(id), JobState::Running);
    assert!(h.out().is_empty());
    h.tick(1100);
    let rec = h.record(id);
    assert_eq!(rec.status, JobState::Stopping);
    assert_eq!(rec.stop_requested_at_ms, Some(1100));
    assert_eq!(h.jobs.next_deadline(), None);
    // Taken 200 ms later: the Stop carries the grace that remains.
    h.jobs.tick(1300);
    assert_eq!(
        h.out(),
        [LinkMessage::Stop {
            job_id: id,
            grace_ms: 300
        }]
    );
    h.link(exited_stopped(id, false, 1400), 1400);
    let rec = h.record(id);
    assert_eq!(rec.status, JobState::TimedOut);
    assert_eq!(rec.termination_reason, Some(TerminationReason::TimedOut));
    assert_eq!(rec.message.as_str(), "timed out after 1000 ms");
    assert_eq!(
        h.path(id),
        [
            JobState::Pending,
            JobState::Running,
            JobState::Stopping,
            JobState::TimedOut
        ]
    );
}

#[test]
fn timeouts_are_not_retried_and_the_shims_timeout_counts() {
    let mut h = H::connected(Config::default());
    let id = h.start(
        JobSpec {
            timeout_ms: Some(1000),
            max_retries: 3,
            ..host_spec("t")
        },
        0,
    );
    h.link(started(id, 0), 0);
    // The shim's timeout fired first: an Exited while RUNNING.
    h.link(
        LinkMessage::Exited {
            job_id: id,
            exit_code: None,
            signal: Some(15),
            forced: false,
            ended_ms: 1000,
            reason: TerminationReason::TimedOut,
        },
        1000,
    );
    assert_eq!(h.status(id), JobState::TimedOut);
    assert_eq!(h.record(id).attempt, 1);
    // A stop on the host's side (reason stopped) while RUNNING: STOPPED.
    let id = h.start(host_spec("t"), 0);
    h.link(started(id, 0), 0);
    h.link(exited_stopped(id, false, 10), 10);
    assert_eq!(
        h.path(id),
        [
            JobState::Pending,
            JobState::Running,
            JobState::Stopping,
            JobState::Stopped
        ]
    );
}

#[test]
fn stall_via_tick() {
    let mut h = H::connected(Config::default());
    let id = h.start(
        JobSpec {
            stall_ms: Some(1000),
            max_retries: 1,
            ..host_spec("t")
        },
        0,
    );
    h.out();
    h.link(started(id, 0), 0);
    // Output and metrics feed the watchdog.
    h.link(chunk(id, Stream::Stderr, 0, b"x"), 900);
    h.tick(1500);
    assert_eq!(h.status(id), JobState::Running);
    h.link(
        LinkMessage::Metric {
            job_id: id,
            ts_ms: 1,
            offset: 0,
            point: point("loss", 1.0, 1),
        },
        1800,
    );
    assert_eq!(h.jobs.next_deadline(), Some(2800));
    h.tick(2799);
    assert_eq!(h.status(id), JobState::Running);
    h.tick(2800);
    assert_eq!(h.status(id), JobState::Stopping);
    assert!(matches!(h.out()[..], [LinkMessage::Stop { job_id, .. }] if job_id == id));
    h.link(exited_stopped(id, true, 3000), 3000);
    // A stall is a failure: retried while attempts remain.
    assert_eq!(h.status(id), JobState::Pending);
    assert!(h.record(id).message.contains("stalled"), "{}", h.record(id).message);
    assert!(matches!(h.out()[..], [LinkMessage::Start { job_id, .. }] if job_id == id));
    h.link(started(id, 4000), 4000);
    h.tick(5000);
    h.link(exited_stopped(id, false, 5100), 5100);
    let rec = h.record(id);
    assert_eq!(rec.status, JobState::Failed);
    assert_eq!(rec.termination_reason, Some(TerminationReason::Stalled));
    assert_eq!(rec.attempt, 2);
}

#[test]
fn duplicate_old_and_overlapping_chunks() {
    let mut h = H::connected(Config::default());
    let id = h.start(host_spec("t"), 0);
    h.link(started(id, 0), 0);
    h.link(chunk(id, Stream::Stdout, 0, b"abcd"), 1);
    h.link(chunk(id, Stream::Stdout, 0, b"abcd"), 2);
    h.link(chunk(id, Stream::Stdout, 2, b"cd"), 3);
    h.link(chunk(id, Stream::Stdout, 0, b"ab"), 4);
    assert_eq!(h.jobs.stats().duplicate_chunks, 3);
    // Overlapping the end: only the new tail is appended.
    h.link(chunk(id, Stream::Stdout, 2, b"cdef"), 5);
    assert_eq!(h.jobs.stats().overlapping_chunks, 1);
    assert_eq!(h.logs(id, Stream::Stdout, 0, 100).1, b"abcdef");
    assert!(h.out().is_empty());
    assert_eq!(h.jobs.stats().gaps, 0);
    // An empty chunk at the end is nothing.
    h.link(chunk(id, Stream::Stdout, 6, b""), 6);
    assert_eq!(h.jobs.stats().duplicate_chunks, 3);
    // Chunks of a PENDING job are stale.
    let p = h.start(host_spec("p"), 0);
    h.link(chunk(p, Stream::Stdout, 0, b"zz"), 7);
    assert_eq!(h.logs(p, Stream::Stdout, 0, 100).1, b"");
    assert_eq!(h.jobs.stats().stale_messages, 1);
}

#[test]
fn a_gap_is_asked_for_once() {
    let mut h = H::connected(Config::default());
    let id = h.start(host_spec("t"), 0);
    h.out();
    h.link(started(id, 0), 0);
    h.link(chunk(id, Stream::Stdout, 0, b"0123"), 1);
    h.link(chunk(id, Stream::Stdout, 8, b"89"), 2);
    h.link(chunk(id, Stream::Stdout, 10, b"ab"), 3);
    h.link(chunk(id, Stream::Stdout, 12, b"cd"), 4);
    assert_eq!(
        h.out(),
        [LinkMessage::LogResend {
            job_id: id,
            stream: Stream::Stdout,
            from: 4
        }]
    );
    let s = h.jobs.stats();
    assert_eq!((s.gaps, s.gap_chunks), (1, 3));
    // Later chunks beyond the same end ask nothing more.
    h.link(chunk(id, Stream::Stdout, 14, b"ef"), 5);
    assert!(h.out().is_empty());
    // The resend fills it.
    h.link(chunk(id, Stream::Stdout, 4, b"4567"), 6);
    h.link(chunk(id, Stream::Stdout, 8, b"89"), 7);
    assert_eq!(h.logs(id, Stream::Stdout, 0, 100).1, b"0123456789");
    // A new gap at the new end is a new request.
    h.link(chunk(id, Stream::Stdout, 20, b"!"), 8);
    assert_eq!(
        h.out(),
        [LinkMessage::LogResend {
            job_id: id,
            stream: Stream::Stdout,
            from: 10
        }]
    );
    assert_eq!(h.jobs.stats().gaps, 2);
    // Stderr has its own offsets: a gap there is asked apart.
    h.link(chunk(id, Stream::Stderr, 3, b"x"), 9);
    assert_eq!(
        h.out(),
        [LinkMessage::LogResend {
            job_id: id,
            stream: Stream::Stderr,
            from: 0
        }]
    );
}

#[test]
fn reconnect_resends_starts_stops_and_log_offsets() {
    let mut h = H::connected(Config::default());
    let running = h.start(host_spec("running"), 0);
    let pending = h.start(host_spec("pending"), 0);
    let stopping = h.start(
        JobSpec {
            grace_ms: 1000,
            ..host_spec("stopping")
        },
        0,
    );
    let done = h.start(host_spec("done"), 0);
    let native = h.start(native_spec("native"), 0);
    assert_eq!(h.out().len(), 4);
    h.link(started(running, 1), 1);
    h.link(started(stopping, 1), 1);
    h.link(started(done, 1), 1);
    h.link(chunk(running, Stream::Stdout, 0, b"12345"), 2);
    h.link(chunk(running, Stream::Stderr, 0, b"e"), 2);
    h.link(exited(done, 0, 3), 3);
    h.reply(JobRequest::Stop { job_id: stopping }, 100).unwrap();
    // The bridge goes away before the Stop was taken.
    h.jobs.on_bridge_lost(150);
    h.after();
    assert!(h.out().is_empty());
    // While away, output of the running job cannot arrive; nothing queues.
    let waiting = h.start(host_spec("waiting"), 200);
    assert!(h.out().is_empty());
    assert_eq!(h.record(waiting).attempt, 0);
    // It comes back (a restart of either side): a session Hello.
    h.link(
        LinkMessage::Hello {
            version: 1,
            incarnation: 7,
            peer: Some(1),
        },
        400,
    );
    assert!(h.jobs.bridge_connected());
    let out = h.out();
    let mut want = std::vec![
        LinkMessage::LogResend {
            job_id: running,
            stream: Stream::Stdout,
            from: 5,
        },
        LinkMessage::LogResend {
            job_id: running,
            stream: Stream::Stderr,
            from: 1,
        },
        LinkMessage::Start {
            job_id: pending,
            spec: Box::new(host_spec("pending")),
        },
        LinkMessage::LogResend {
            job_id: stopping,
            stream: Stream::Stdout,
            from: 0,
        },
        LinkMessage::LogResend {
            job_id: stopping,
            stream: Stream::Stderr,
            from: 0,
        },
        LinkMessage::Stop {
            job_id: stopping,
            grace_ms: 700,
        },
        LinkMessage::Start {
            job_id: waiting,
            spec: Box::new(host_spec("waiting")),
        },
    ];
    assert_eq!(out, want);
    assert_eq!(h.record(waiting).attempt, 1);
    assert_eq!(h.record(pending).attempt, 1);
    let _ = native;
    // A second Hello (the other side restarted again) re-sends the same,
    // with offsets where opsd is now.
    h.link(chunk(running, Stream::Stdout, 5, b"678"), 500);
    h.jobs.on_bridge_connected(500);
    h.after();
    want[0] = LinkMessage::LogResend {
        job_id: running,
        stream: Stream::Stdout,
        from: 8,
    };
    want[5] = LinkMessage::Stop {
        job_id: stopping,
        grace_ms: 600,
    };
    assert_eq!(h.out(), want);
    // The re-sent bytes that opsd has are dropped, the new ones kept: no
    // gap, no duplicate.
    h.link(chunk(running, Stream::Stdout, 8, b"9"), 600);
    h.link(chunk(running, Stream::Stdout, 6, b"789"), 600);
    assert_eq!(h.logs(running, Stream::Stdout, 0, 100).1, b"123456789");
}

#[test]
fn host_jobs_wait_for_the_bridge_within_a_bound() {
    let mut h = H::new(Config {
        max_waiting_host: 2,
        ..Config::default()
    });
    let a = h.start(host_spec("a"), 0);
    let b = h.start(host_spec("b"), 0);
    assert_eq!(
        h.reply(JobRequest::Start(host_spec("c")), 0),
        Err(JobError::HostUnavailable)
    );
    // Native jobs need no bridge.
    let n = h.start(native_spec("n"), 0);
    assert_eq!(h.record(n).attempt, 1);
    assert!(h.out().is_empty());
    h.jobs.on_bridge_connected(10);
    h.after();
    let ids: StdVec<u64> = h
        .out()
        .iter()
        .map(|m| match m {
            LinkMessage::Start { job_id, .. } => *job_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, [a, b]);
    assert!(h.record(a).message.is_empty());
    // Connected, there is no bound.
    for _ in 0..5 {
        h.start(host_spec("more"), 11);
    }
    // No waiting at all: refused at once while disconnected.
    let mut h = H::new(Config {
        max_waiting_host: 0,
        ..Config::default()
    });
    assert_eq!(
        h.reply(JobRequest::Start(host_spec("c")), 0),
        Err(JobError::HostUnavailable)
    );
}

#[test]
fn log_cap_drops_old_bytes_and_reads_below_the_start() {
    let mut h = H::connected(Config {
        log_bytes_per_stream: 10,
        ..Config::default()
    });
    let id = h.start(host_spec("t"), 0);
    h.link(started(id, 0), 0);
    h.link(chunk(id, Stream::Stdout, 0, b"0123456"), 1);
    h.link(chunk(id, Stream::Stdout, 7, b"789abcd"), 2);
    assert_eq!(h.jobs.log_range(id, Stream::Stdout), Some((4, 14)));
    assert_eq!(h.jobs.stats().log_bytes_dropped, 4);
    // The count is of bytes received, also those dropped since.
    assert_eq!(h.record(id).stdout_bytes, 14);
    // Below the kept start: from the kept start, and the offset says so.
    assert_eq!(h.logs(id, Stream::Stdout, 0, 100), (4, b"456789abcd".to_vec(), false));
    assert_eq!(h.logs(id, Stream::Stdout, 6, 3), (6, b"678".to_vec(), false));
    // Beyond the end: nothing, at the end.
    assert_eq!(h.logs(id, Stream::Stdout, 99, 100), (14, StdVec::new(), false));
    // At most LOG_CHUNK_MAX per read, whatever max says.
    let big = h.start(host_spec("big"), 0);
    h.link(started(big, 0), 0);
    h.link(chunk(big, Stream::Stdout, 0, &[7; LOG_CHUNK_MAX]), 1);
    let (_, bytes, _) = h.logs(id, Stream::Stdout, 0, u32::MAX);
    assert!(bytes.len() <= LOG_CHUNK_MAX);
    assert_eq!(
        h.jobs.log_range(big, Stream::Stdout),
        Some((LOG_CHUNK_MAX as u64 - 10, LOG_CHUNK_MAX as u64))
    );
    // Offsets go on: the next chunk continues at the real end.
    h.link(chunk(id, Stream::Stdout, 14, b"e"), 3);
    assert_eq!(h.logs(id, Stream::Stdout, 0, 100), (5, b"56789abcde".to_vec(), false));
    assert_eq!(h.jobs.stats().gaps, 0);
    h.link(exited(id, 0, 4), 4);
    assert!(h.logs(id, Stream::Stdout, 0, 100).2);
    // Native output of any size keeps its newest bytes only.
    let n = h.start(native_spec("n"), 0);
    h.jobs.native_started(n, 1, 0);
    h.jobs.native_output(n, Stream::Stderr, &[1u8; 100_000], 1);
    h.jobs.native_output(n, Stream::Stderr, b"xy", 2);
    h.after();
    assert_eq!(h.jobs.log_range(n, Stream::Stderr), Some((100_002 - 10, 100_002)));
    assert_eq!(h.logs(n, Stream::Stderr, 0, 100).1[8..], *b"xy");
}

#[test]
fn the_total_log_budget_frees_ended_jobs_first() {
    let mut h = H::connected(Config {
        log_bytes_per_stream: 1000,
        log_bytes_total: 2500,
        ..Config::default()
    });
    let old = h.start(host_spec("old"), 0);
    let live = h.start(host_spec("live"), 0);
    let new = h.start(host_spec("new"), 0);
    for id in [old, live, new] {
        h.link(started(id, 0), 0);
    }
    h.link(chunk(old, Stream::Stdout, 0, &[1; 1000]), 1);
    h.link(exited(old, 0, 2), 2);
    h.link(chunk(live, Stream::Stdout, 0, &[2; 1000]), 3);
    assert_eq!(h.jobs.log_bytes_kept(), 2000);
    // Over the budget: the ended job's logs go.
    h.link(chunk(new, Stream::Stdout, 0, &[3; 1000]), 4);
    assert_eq!(h.jobs.log_bytes_kept(), 2000);
    assert_eq!(h.jobs.log_range(old, Stream::Stdout), Some((1000, 1000)));
    assert_eq!(h.logs(old, Stream::Stdout, 0, 10), (1000, StdVec::new(), true));
    // Only live jobs: the front of the largest stream goes.
    h.link(chunk(new, Stream::Stderr, 0, &[4; 600]), 5);
    assert_eq!(h.jobs.log_bytes_kept(), 2500);
    assert_eq!(h.jobs.log_range(live, Stream::Stdout), Some((100, 1000)));
    assert_eq!(h.jobs.stats().log_bytes_dropped, 1100);
}

#[test]
fn a_full_table_of_live_jobs_refuses() {
    let mut h = H::connected(Config {
        max_jobs: 3,
        ..Config::default()
    });
    for _ in 0..3 {
        h.start(host_spec("t"), 0);
    }
    assert_eq!(h.reply(JobRequest::Start(host_spec("t")), 0), Err(JobError::TableFull));
    assert_eq!(h.jobs.len(), 3);
    assert_eq!(h.jobs.stats().evictions, 0);
    // Invalid specs are refused before anything else.
    let mut bad = host_spec("t");
    bad.entrypoint.clear();
    assert_eq!(
        h.reply(JobRequest::Start(bad), 0),
        Err(JobError::InvalidSpec {
            what: aether_abi::job::SpecProblem::EmptyEntrypoint
        })
    );
}

#[test]
fn ended_jobs_are_evicted_oldest_first() {
    let mut h = H::connected(Config {
        max_jobs: 3,
        ..Config::default()
    });
    let a = h.start(host_spec("a"), 0);
    let b = h.start(host_spec("b"), 0);
    let c = h.start(host_spec("c"), 0);
    h.out();
    // b and c end (c first), a stays live.
    for id in [c, b] {
        h.link(started(id, 0), 0);
        h.link(chunk(id, Stream::Stdout, 0, b"out"), 0);
        h.link(exited(id, 0, 1), 1);
    }
    let d = h.start(host_spec("d"), 2);
    assert_eq!(d, 4);
    assert!(h.jobs.record(b).is_none(), "the lowest ended id goes");
    assert!(h.jobs.record(a).is_some() && h.jobs.record(c).is_some());
    let e = h.start(host_spec("e"), 3);
    assert!(h.jobs.record(c).is_none());
    assert_eq!(h.jobs.stats().evictions, 2);
    assert_eq!(h.reply(JobRequest::Start(host_spec("f")), 4), Err(JobError::TableFull));
    assert_eq!(h.reply(JobRequest::Status { job_id: b }, 5), Err(JobError::NoSuchJob));
    assert_eq!(h.jobs.wait_reply(b), Some(Err(JobError::NoSuchJob)));
    assert_eq!(h.jobs.log_bytes_kept(), 0);
    // Ids are never reused.
    assert_eq!(e, 5);
    // The evicted job's queued messages go with it; messages about it are
    // unknown now.
    h.link(exited(b, 0, 6), 6);
    assert_eq!(h.jobs.stats().unknown_ids, 1);
}

#[test]
fn unknown_ids_and_unexpected_messages_are_counted() {
    let mut h = H::connected(Config::default());
    let id = h.start(native_spec("n"), 0);
    for msg in [
        started(77, 0),
        chunk(77, Stream::Stdout, 0, b"x"),
        LinkMessage::Metric {
            job_id: 77,
            ts_ms: 0,
            offset: 0,
            point: point("m", 0.0, 0),
        },
        exited(77, 0, 0),
        LinkMessage::Lost { job_id: 77 },
        LinkMessage::SpawnFailed {
            job_id: 77,
            message: String::new(),
        },
    ] {
        h.link(msg, 1);
    }
    assert_eq!(h.jobs.stats().unknown_ids, 6);
    // The bridge speaking of a native job.
    h.link(started(id, 0), 1);
    h.link(exited(id, 0, 1), 1);
    assert_eq!(h.jobs.stats().wrong_kind, 2);
    // opsd's own messages coming back.
    h.link(
        LinkMessage::Stop {
            job_id: id,
            grace_ms: 0,
        },
        1,
    );
    h.link(
        LinkMessage::LogResend {
            job_id: id,
            stream: Stream::Stdout,
            from: 0,
        },
        1,
    );
    assert_eq!(h.jobs.stats().unexpected_messages, 2);
    h.jobs.native_started(999, 1, 1);
    h.jobs.native_exited(999, Some(0), None, false, 1);
    h.after();
    assert_eq!(h.jobs.stats().unknown_ids, 8);
    assert_eq!(h.status(id), JobState::Pending);
    assert!(h.events.is_empty());
    assert_eq!(h.jobs.stats().invalid_transitions, 0);
}

#[test]
fn status_list_and_logs_answers() {
    let mut h = H::connected(Config::default());
    assert_eq!(h.reply(JobRequest::Status { job_id: 1 }, 0), Err(JobError::NoSuchJob));
    assert_eq!(
        h.reply(
            JobRequest::Logs {
                job_id: 1,
                stream: Stream::Stdout,
                offset: 0,
                max: 1
            },
            0
        ),
        Err(JobError::NoSuchJob)
    );
    for i in 0..10 {
        h.start(host_spec(&std::format!("j{i}")), i);
    }
    let Ok(JobResponse::Status(rec)) = h.reply(JobRequest::Status { job_id: 3 }, 0) else {
        panic!()
    };
    assert_eq!(rec.name.as_str(), "j2");
    let page = |h: &mut H, after| match h.reply(JobRequest::List { after }, 0) {
        Ok(JobResponse::Jobs { entries, more }) => (entries.iter().map(|r| r.job_id).collect::<StdVec<_>>(), more),
        other => panic!("{other:?}"),
    };
    assert_eq!(page(&mut h, 0), (std::vec![1, 2, 3, 4], true));
    assert_eq!(page(&mut h, 4), (std::vec![5, 6, 7, 8], true));
    assert_eq!(page(&mut h, 8), (std::vec![9, 10], false));
    assert_eq!(page(&mut h, 10), (std::vec![], false));
    assert_eq!(page(&mut h, u64::MAX), (std::vec![], false));
    // Paging through all by the last id seen.
    let mut after = 0;
    let mut all: StdVec<u64> = StdVec::new();
    loop {
        let (ids, more) = page(&mut h, after);
        all.extend(&ids);
        if !more {
            break;
        }
        after = *ids.last().unwrap();
    }
    assert_eq!(all, (1..=10).collect::<StdVec<u64>>());
    // A page of exactly LIST_PAGE ids at the end says no more.
    assert_eq!(page(&mut h, 6), (std::vec![7, 8, 9, 10], false));
    // Logs of a job with none yet; max 0.
    assert_eq!(h.logs(1, Stream::Stdout, 0, 100), (0, StdVec::new(), false));
    h.link(started(1, 0), 0);
    h.link(chunk(1, Stream::Stdout, 0, b"abc"), 0);
    assert_eq!(h.logs(1, Stream::Stdout, 1, 0), (1, StdVec::new(), false));
}

#[test]
fn wait_is_pending_until_the_job_ends() {
    let mut h = H::connected(Config::default());
    assert_eq!(h.reply(JobRequest::Wait { job_id: 5 }, 0), Err(JobError::NoSuchJob));
    let id = h.start(host_spec("t"), 0);
    assert_eq!(h.handle(JobRequest::Wait { job_id: id }, 0), Handled::Pending(id));
    assert_eq!(h.jobs.wait_reply(id), None);
    h.link(started(id, 0), 0);
    assert_eq!(h.jobs.wait_reply(id), None);
    h.link(exited(id, 4, 9), 9);
    assert!(h.events.last().is_some_and(|e| e.job_id == id && e.to.is_terminal()));
    let Some(Ok(JobResponse::Ended(rec))) = h.jobs.wait_reply(id) else {
        panic!()
    };
    assert_eq!((rec.status, rec.exit_code), (JobState::Failed, Some(4)));
    assert!(matches!(
        h.reply(JobRequest::Wait { job_id: id }, 10),
        Ok(JobResponse::Ended(_))
    ));
}

#[test]
fn api_requests_are_answered_over_the_link() {
    let mut h = H::connected(Config::default());
    h.link(
        LinkMessage::Api {
            id: 1,
            request: Box::new(JobRequest::Start(host_spec("http"))),
        },
        0,
    );
    let out = h.out();
    assert_eq!(out.len(), 2);
    assert!(out.contains(&LinkMessage::ApiReply {
        id: 1,
        reply: Box::new(Ok(JobResponse::Started { job_id: 1 }))
    }));
    h.link(
        LinkMessage::Api {
            id: 2,
            request: Box::new(JobRequest::Wait { job_id: 1 }),
        },
        1,
    );
    assert!(h.out().is_empty());
    h.link(started(1, 1), 1);
    h.link(exited(1, 0, 2), 2);
    let out = h.out();
    assert!(
        matches!(&out[..], [LinkMessage::ApiReply { id: 2, reply }] if matches!(&**reply, Ok(JobResponse::Ended(r)) if r.status == JobState::Succeeded)),
        "{out:?}"
    );
    // Parked waits are bounded: beyond, 429.
    let id = h.start(host_spec("long"), 3);
    for i in 0..API_WAITS_MAX as u32 + 1 {
        h.link(
            LinkMessage::Api {
                id: 100 + i,
                request: Box::new(JobRequest::Wait { job_id: id }),
            },
            3,
        );
    }
    let replies: StdVec<_> = h
        .out()
        .into_iter()
        .filter(|m| matches!(m, LinkMessage::ApiReply { .. }))
        .collect();
    assert_eq!(
        replies,
        [LinkMessage::ApiReply {
            id: 100 + API_WAITS_MAX as u32,
            reply: Box::new(Err(JobError::TableFull))
        }]
    );
    // The reply queue is bounded too: requests beyond are dropped.
    for i in 0..API_REPLIES_MAX as u32 + 3 {
        h.link(
            LinkMessage::Api {
                id: 1000 + i,
                request: Box::new(JobRequest::Status { job_id: 1 }),
            },
            4,
        );
    }
    assert_eq!(h.jobs.stats().api_dropped, 3);
    assert_eq!(h.out().len(), API_REPLIES_MAX);
    // The parked waits are answered when the job ends, even while the
    // bridge is away (they stay queued for it).
    h.link(started(id, 5), 5);
    h.jobs.on_bridge_lost(6);
    h.after();
    h.jobs.on_bridge_connected(7);
    h.after();
    h.out();
    h.link(exited(id, 0, 8), 8);
    assert_eq!(h.out().len(), API_WAITS_MAX);
}

#[test]
fn spawn_failures_are_failed_and_not_retried() {
    let mut h = H::connected(Config::default());
    let id = h.start(
        JobSpec {
            max_retries: 3,
            ..host_spec("t")
        },
        0,
    );
    h.out();
    h.link(
        LinkMessage::SpawnFailed {
            job_id: id,
            message: String::try_from("no such program: python3").unwrap(),
        },
        5,
    );
    let rec = h.record(id);
    assert_eq!(rec.status, JobState::Failed);
    assert_eq!(rec.termination_reason, Some(TerminationReason::SpawnFailed));
    assert_eq!(rec.message.as_str(), "no such program: python3");
    assert_eq!(rec.attempt, 1);
    assert!(h.out().is_empty());
    assert_eq!(h.path(id), [JobState::Pending, JobState::Failed]);
    // A native one, with a message longer than a record takes.
    let n = h.start(native_spec("n"), 0);
    h.jobs.native_spawn_failed(n, &"x".repeat(500), 6);
    h.after();
    let rec = h.record(n);
    assert_eq!(rec.status, JobState::Failed);
    assert_eq!(rec.message.len(), MESSAGE_MAX);
}

#[test]
fn lost_jobs() {
    let mut h = H::connected(Config::default());
    let a = h.start(
        JobSpec {
            max_retries: 3,
            ..host_spec("a")
        },
        0,
    );
    let b = h.start(host_spec("b"), 0);
    h.out();
    h.link(started(a, 0), 0);
    h.link(LinkMessage::Lost { job_id: a }, 10);
    h.link(LinkMessage::Lost { job_id: b }, 10);
    for id in [a, b] {
        let rec = h.record(id);
        assert_eq!(rec.status, JobState::Lost);
        assert_eq!(rec.termination_reason, Some(TerminationReason::Lost));
    }
    assert_eq!(h.record(a).attempt, 1);
    // An exit after the loss is stale.
    h.link(exited(a, 0, 11), 11);
    assert_eq!(h.status(a), JobState::Lost);
    assert_eq!(h.jobs.stats().stale_messages, 1);
}

#[test]
fn an_exit_without_its_start_still_ends_the_job() {
    // The Started was lost with a restart; the exit record came.
    let mut h = H::connected(Config::default());
    let id = h.start(host_spec("t"), 0);
    h.out();
    h.link(exited(id, 0, 50), 60);
    let rec = h.record(id);
    assert_eq!(rec.status, JobState::Succeeded);
    assert_eq!(rec.runtime_ms, None);
    assert_eq!(h.path(id), [JobState::Pending, JobState::Running, JobState::Succeeded]);
    // Not dispatched yet (waiting for the bridge): an exit is stale.
    let mut h = H::new(Config::default());
    let id = h.start(host_spec("t"), 0);
    h.link(exited(id, 0, 50), 60);
    assert_eq!(h.status(id), JobState::Pending);
    assert_eq!(h.jobs.stats().stale_messages, 1);
}

#[test]
fn native_jobs_are_actions() {
    let mut h = H::new(Config::default());
    let id = h.start(
        JobSpec {
            grace_ms: 250,
            max_retries: 1,
            ..native_spec("n")
        },
        0,
    );
    let actions: StdVec<Action> = h.jobs.drain_actions().collect();
    assert_eq!(
        actions,
        [Action::SpawnNative {
            job_id: id,
            spec: JobSpec {
                grace_ms: 250,
                max_retries: 1,
                ..native_spec("n")
            }
        }]
    );
    h.jobs.native_started(id, 12, 10);
    h.jobs.native_output(id, Stream::Stdout, b"hi\n", 11);
    h.jobs.native_metric(id, 3, &point("steps", 3.0, 3), 12);
    h.after();
    let rec = h.record(id);
    assert_eq!(
        (rec.status, rec.started_ms, rec.attempt),
        (JobState::Running, Some(10), 1)
    );
    assert_eq!(rec.latest_metrics.len(), 1);
    assert_eq!(h.jobs.pid(id), Some(12));
    // A crash: retried, a new spawn.
    h.jobs.native_exited(id, None, Some(6), false, 20);
    h.after();
    assert_eq!(h.status(id), JobState::Pending);
    assert!(
        matches!(h.jobs.drain_actions().collect::<StdVec<_>>()[..], [Action::SpawnNative { job_id, .. }] if job_id == id)
    );
    h.jobs.native_started(id, 13, 30);
    h.after();
    assert_eq!(h.reply(JobRequest::Stop { job_id: id }, 40), Ok(JobResponse::Stopping));
    assert_eq!(
        h.jobs.drain_actions().collect::<StdVec<_>>(),
        [Action::StopNative {
            job_id: id,
            grace_ms: 250
        }]
    );
    h.jobs.native_exited(id, None, Some(15), false, 50);
    h.after();
    let rec = h.record(id);
    assert_eq!(rec.status, JobState::Stopped);
    assert_eq!(rec.runtime_ms, Some(20));
    assert_eq!(h.logs(id, Stream::Stdout, 0, 10), (0, b"hi\n".to_vec(), true));
    // Timers apply to native jobs too.
    let t = h.start(
        JobSpec {
            timeout_ms: Some(5),
            ..native_spec("t")
        },
        100,
    );
    h.jobs.drain_actions().for_each(drop);
    h.jobs.native_started(t, 14, 100);
    h.tick(105);
    assert!(
        matches!(h.jobs.drain_actions().collect::<StdVec<_>>()[..], [Action::StopNative { job_id, .. }] if job_id == t)
    );
    h.jobs.native_exited(t, None, Some(15), false, 106);
    h.after();
    assert_eq!(h.status(t), JobState::TimedOut);
    // Link messages never go out for native jobs.
    assert!(h.out().is_empty());
}

#[test]
fn every_state_change_is_an_event() {
    let mut h = H::connected(Config::default());
    let id = h.start(
        JobSpec {
            max_retries: 1,
            timeout_ms: Some(100),
            ..host_spec("t")
        },
        0,
    );
    h.link(started(id, 0), 0);
    h.link(exited(id, 1, 10), 10);
    h.link(started(id, 20), 20);
    h.tick(120);
    h.link(exited_stopped(id, false, 130), 130);
    use JobState::*;
    let evs: StdVec<(JobState, JobState, u64)> = h.events.iter().map(|e| (e.from, e.to, e.at_ms)).collect();
    assert_eq!(
        evs,
        [
            (Pending, Running, 0),
            (Running, Failed, 10),
            (Failed, Pending, 10),
            (Pending, Running, 20),
            (Running, Stopping, 120),
            (Stopping, TimedOut, 130)
        ]
    );
    // The queue is bounded: the oldest go, counted.
    let mut j = Jobs::new(Config {
        max_events: 3,
        ..Config::default()
    });
    j.on_bridge_connected(0);
    for _ in 0..3 {
        let Handled::Reply(Ok(JobResponse::Started { job_id })) = j.handle(JobRequest::Start(host_spec("t")), 0) else {
            panic!()
        };
        j.on_link(started(job_id, 0), 0);
        j.on_link(exited(job_id, 0, 0), 0);
    }
    assert_eq!(j.stats().events_dropped, 3);
    let left: StdVec<Event> = j.drain_events().collect();
    assert_eq!(left.len(), 3);
    assert_eq!(left[2].job_id, 3);
    assert_eq!(left[2].to, Succeeded);
}

#[test]
fn metrics_keep_the_first_names() {
    let mut h = H::connected(Config {
        max_metrics: 2,
        ..Config::default()
    });
    let id = h.start(host_spec("t"), 0);
    h.link(started(id, 0), 0);
    for (name, v) in [("a", 1.0), ("b", 2.0), ("c", 3.0), ("a", 4.0), ("c", 5.0)] {
        h.link(
            LinkMessage::Metric {
                job_id: id,
                ts_ms: 0,
                offset: 0,
                point: point(name, v, 0),
            },
            1,
        );
    }
    let m = h.record(id).latest_metrics;
    let got: StdVec<(&str, f64)> = m.iter().map(|m| (m.name.as_str(), m.value)).collect();
    assert_eq!(got, [("a", 4.0), ("b", 2.0)]);
    assert_eq!(h.jobs.stats().metrics_dropped, 2);
    assert_eq!(h.record(id).metric_points, 5);
    // Config above METRICS_MAX is clamped.
    let j = Jobs::new(Config {
        max_metrics: 100,
        max_jobs: 0,
        ..Config::default()
    });
    assert_eq!(j.config().max_metrics, METRICS_MAX);
    assert_eq!(j.config().max_jobs, 1);
}

/// splitmix64.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

fn random_spec(rng: &mut Rng) -> JobSpec {
    let mut spec = if rng.below(4) == 0 {
        native_spec("n")
    } else {
        host_spec("h")
    };
    spec.max_retries = rng.pick(&[0, 0, 1, 3, 255]);
    spec.timeout_ms = rng.pick(&[None, Some(50), Some(500)]);
    spec.stall_ms = rng.pick(&[None, Some(30), Some(300)]);
    spec.grace_ms = rng.pick(&[0, 10, 10_000]);
    if rng.below(20) == 0 {
        spec.name.clear();
    }
    spec
}

fn random_reason(rng: &mut Rng) -> TerminationReason {
    use TerminationReason::*;
    rng.pick(&[
        Exited,
        Exited,
        Exited,
        Signaled,
        Stopped,
        TimedOut,
        Stalled,
        Lost,
        SpawnFailed,
    ])
}

/// One random input: mostly valid, sometimes out of order, stale, for
/// unknown jobs or beyond every bound. `now` is advanced (and sometimes
/// moved back).
fn random_input(h: &mut H, rng: &mut Rng, now: &mut u64, step: u64, bridge_end: &mut HashMap<(u64, usize), u64>) {
    *now += rng.below(40);
    if rng.below(50) == 0 {
        // The clock may also jump back.
        *now = now.saturating_sub(rng.below(100));
    }
    let now = *now;
    // Mostly jobs in the table, sometimes evicted or future ones.
    let ids: StdVec<u64> = h.jobs.table.keys().copied().collect();
    let id = if !ids.is_empty() && rng.below(5) != 0 {
        rng.pick(&ids)
    } else {
        rng.below(h.jobs.next_id + 2)
    };
    let stream = rng.pick(&[Stream::Stdout, Stream::Stderr]);
    match rng.below(22) {
        0..=2 => {
            let _ = h.handle(JobRequest::Start(random_spec(rng)), now);
        }
        3 => {
            let _ = h.handle(JobRequest::Stop { job_id: id }, now);
        }
        4 => {
            let _ = h.handle(JobRequest::Status { job_id: id }, now);
            let _ = h.handle(JobRequest::List { after: rng.below(20) }, now);
            let _ = h.handle(JobRequest::Wait { job_id: id }, now);
        }
        5 => {
            let offset = rng.below(5000);
            let max = rng.pick(&[0, 1, 100, u32::MAX]);
            if let Handled::Reply(Ok(JobResponse::Logs { offset: got, bytes, .. })) = h.handle(
                JobRequest::Logs {
                    job_id: id,
                    stream,
                    offset,
                    max,
                },
                now,
            ) {
                let (start, end) = h.jobs.log_range(id, stream).unwrap();
                // Below what memory keeps, the disk answers if it has them.
                let from_disk = match h.jobs.disk_log_range(id, stream) {
                    Some((d_start, d_end)) => Some(offset.max(d_start)).filter(|&f| f < start && f < d_end),
                    None => None,
                };
                let expect = from_disk.unwrap_or(offset.clamp(start, end));
                if got != expect {
                    let w: StdVec<_> = h.jobs.drain_warnings().collect();
                    let sd = &h.jobs.table[&id].disk.streams[stream_index(stream)];
                    panic!("{offset} in {start}..{end}, disk {sd:?}, {w:?}");
                }
                assert!(got + bytes.len() as u64 <= end);
            }
        }
        6 => h.link(
            LinkMessage::Started {
                job_id: id,
                pid: 1,
                started_ms: now,
            },
            now,
        ),
        7..=10 => {
            let key = (id, stream_index(stream));
            let end = bridge_end.get(&key).copied().unwrap_or(0);
            let offset = match rng.below(10) {
                0 => end + 1 + rng.below(100),
                1 => end.saturating_sub(rng.below(50)),
                2 => h.jobs.log_range(id, stream).map_or(0, |(_, e)| e),
                _ => end,
            };
            let len = rng.below(LOG_CHUNK_MAX as u64 + 1) as usize;
            let bytes: StdVec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            bridge_end.insert(key, offset + len as u64);
            let offset = if rng.below(100) == 0 {
                u64::MAX - rng.below(10)
            } else {
                offset
            };
            h.link(chunk(id, stream, offset, &bytes), now);
        }
        11 => h.link(
            LinkMessage::Metric {
                job_id: id,
                ts_ms: step,
                offset: 0,
                point: point(rng.pick(&["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]), 1.0, step),
            },
            now,
        ),
        12 | 13 => {
            let reason = random_reason(rng);
            let code = rng.pick(&[None, Some(0), Some(1), Some(-1)]);
            let signal = rng.pick(&[None, None, Some(9), Some(15)]);
            h.link(
                LinkMessage::Exited {
                    job_id: id,
                    exit_code: code,
                    signal,
                    forced: rng.below(2) == 0,
                    ended_ms: now.saturating_sub(rng.below(10)),
                    reason,
                },
                now,
            );
            bridge_end.retain(|k, _| k.0 != id);
        }
        14 => h.link(LinkMessage::Lost { job_id: id }, now),
        15 => h.link(
            LinkMessage::SpawnFailed {
                job_id: id,
                message: String::try_from("nope").unwrap(),
            },
            now,
        ),
        16 => {
            if rng.below(2) == 0 {
                h.jobs.on_bridge_lost(now);
            } else {
                h.jobs.on_bridge_connected(now);
            }
            h.after();
        }
        17 => h.tick(now),
        18 => {
            match rng.below(5) {
                0 => h.jobs.native_started(id, 3, now),
                1 => h.jobs.native_output(id, stream, &[b'n'; 700], now),
                2 => h.jobs.native_metric(id, 0, &point("n", 0.0, 0), now),
                3 => h
                    .jobs
                    .native_exited(id, rng.pick(&[None, Some(0), Some(2)]), None, false, now),
                _ => h.jobs.native_spawn_failed(id, "no", now),
            }
            h.after();
        }
        19 => {
            let request = match rng.below(3) {
                0 => JobRequest::Wait { job_id: id },
                1 => JobRequest::Start(random_spec(rng)),
                _ => JobRequest::Stop { job_id: id },
            };
            h.link(
                LinkMessage::Api {
                    id: rng.next() as u32,
                    request: Box::new(request),
                },
                now,
            );
        }
        20 => {
            // Take some of the outbox, as a link with a window would.
            for _ in 0..rng.below(6) {
                let Some(msg) = h.jobs.pop_outbox() else { break };
                match msg {
                    LinkMessage::Start { job_id, .. } => {
                        assert_eq!(h.status(job_id), JobState::Pending);
                        assert!(h.jobs.bridge_connected());
                        bridge_end.retain(|k, _| k.0 != job_id);
                    }
                    LinkMessage::LogResend { job_id, stream, from } => {
                        bridge_end.insert((job_id, stream_index(stream)), from);
                    }
                    LinkMessage::Stop { .. } | LinkMessage::ApiReply { .. } => {}
                    other => panic!("{other:?}"),
                }
            }
            h.after();
        }
        _ => {
            h.jobs.drain_actions().for_each(drop);
        }
    }
}

#[test]
fn random_inputs_never_panic_and_keep_the_invariants() {
    let mut transitions = std::collections::HashSet::new();
    let mut totals = std::collections::BTreeMap::new();
    for seed in 0..40 {
        let mut rng = Rng(seed);
        let config = Config {
            max_jobs: 1 + rng.below(12) as usize,
            log_bytes_per_stream: 1 + rng.below(3000) as usize,
            log_bytes_total: rng.below(8000) as usize,
            max_metrics: rng.below(METRICS_MAX as u64 + 2) as usize,
            max_waiting_host: rng.below(4) as usize,
            max_events: 1 + rng.below(50) as usize,
            ..Config::default()
        };
        let mut h = H::new(config);
        let mut now = 0u64;
        // Where the bridge believes each stream's end is (to make chunks
        // that mostly fit, sometimes not).
        let mut bridge_end: HashMap<(u64, usize), u64> = HashMap::new();
        for step in 0..3000 {
            random_input(&mut h, &mut rng, &mut now, step, &mut bridge_end);
        }
        let s = h.jobs.stats();
        assert_eq!(s.invalid_transitions, 0, "seed {seed}: {s:?}");
        transitions.extend(h.events.iter().map(|e| (e.from, e.to)));
        for (name, n) in [
            ("duplicate", s.duplicate_chunks),
            ("overlap", s.overlapping_chunks),
            ("gap", s.gaps),
            ("evictions", s.evictions),
            ("log drops", s.log_bytes_dropped),
            ("late", s.late_starts),
            ("stale", s.stale_messages),
            ("unknown", s.unknown_ids),
        ] {
            *totals.entry(name).or_insert(0) += n;
        }
    }
    // The inputs reach every transition of the state machine and every
    // kind of odd input.
    for from in JobState::ALL {
        for to in JobState::ALL {
            if from.can_become(to) {
                assert!(transitions.contains(&(from, to)), "{from} -> {to} never happened");
            }
        }
    }
    assert!(totals.values().all(|&n| n > 0), "{totals:?}");
}

#[test]
fn the_outbox_stays_bounded_without_draining() {
    let mut h = H::connected(Config {
        max_jobs: 4,
        ..Config::default()
    });
    let ids: StdVec<u64> = (0..4).map(|_| h.start(host_spec("t"), 0)).collect();
    h.link(started(ids[0], 0), 0);
    h.link(started(ids[1], 0), 0);
    h.reply(JobRequest::Stop { job_id: ids[1] }, 1).unwrap();
    for round in 0..1000u64 {
        h.jobs.on_bridge_connected(round);
        h.link(chunk(ids[0], Stream::Stdout, 5 + round, b"x"), round);
        h.link(chunk(ids[1], Stream::Stderr, 5 + round, b"x"), round);
        h.tick(round);
    }
    // At most a Start, a Stop and two LogResends per job.
    assert!(h.jobs.outbox_len() <= 4 * 4, "{}", h.jobs.outbox_len());
    let out = h.out();
    assert_eq!(out.len(), 2 + 2 + 1 + 2, "{out:?}");
}

#[test]
fn sizes_in_memory() {
    // What the bounds in the crate docs assume.
    assert!(
        core::mem::size_of::<JobRecord>() <= 1200,
        "{}",
        core::mem::size_of::<JobRecord>()
    );
    // The record, two stream logs, and what the disk side keeps (~100).
    assert!(core::mem::size_of::<Job>() <= 1600, "{}", core::mem::size_of::<Job>());
    assert!(core::mem::size_of::<JobSpec>() <= 15 * 1024);
    assert!(core::mem::size_of::<Out>() <= 24);
}

#[test]
fn a_spec_without_a_name_is_named_after_its_program() {
    let mut h = H::connected(Config::default());
    let mut spec = host_spec("");
    spec.entrypoint[0] = heapless::String::try_from("/usr/bin/python3").unwrap();
    let id = h.start(spec, 0);
    assert_eq!(h.record(id).name, "python3");
}

#[test]
fn every_chunk_keeps_its_arrival_time() {
    let mut h = H::connected(Config {
        log_bytes_per_stream: 10,
        ..Config::default()
    });
    let id = h.start(host_spec("t"), 0);
    h.link(started(id, 0), 0);
    let timed = |offset, ts_ms, bytes: &[u8]| {
        LinkMessage::Log(LogChunk {
            job_id: id,
            stream: Stream::Stdout,
            offset,
            ts_ms,
            bytes: Vec::from_slice(bytes).unwrap(),
        })
    };
    h.link(timed(0, 100, b"abc"), 1);
    h.link(timed(3, 100, b"de"), 1);
    h.link(timed(5, 250, b"fgh"), 2);
    assert_eq!(h.log_time(id, Stream::Stdout, 0), Some(100));
    assert_eq!(h.log_time(id, Stream::Stdout, 4), Some(100), "same ms: one mark");
    assert_eq!(h.log_time(id, Stream::Stdout, 5), Some(250));
    assert_eq!(h.log_time(id, Stream::Stdout, 7), Some(250));
    // Beyond the end there are no bytes, so no time.
    assert_eq!(h.log_time(id, Stream::Stdout, 8), None);
    // Bytes dropped to the cap take their marks along, but the mark that
    // covers the oldest byte kept stays.
    h.link(timed(8, 400, b"ijklmn"), 3);
    assert_eq!(h.jobs.log_range(id, Stream::Stdout), Some((4, 14)));
    assert_eq!(
        h.log_time(id, Stream::Stdout, 0),
        Some(100),
        "read from the oldest kept, byte 4"
    );
    assert_eq!(h.log_time(id, Stream::Stdout, 9), Some(400));
    // Native output is stamped with opsd's clock.
    let n = h.start(native_spec("n"), 0);
    h.jobs.native_started(n, 1, 0);
    h.jobs.native_output(n, Stream::Stdout, b"x", 777);
    assert_eq!(h.log_time(n, Stream::Stdout, 0), Some(777));
}

#[test]
fn arrival_marks_are_bounded() {
    use crate::log::{MARKS_MAX, StreamLog};
    let mut log = StreamLog::default();
    let n = MARKS_MAX as u64 + 10;
    for i in 0..n {
        log.append(b"x", 1 << 20, 1000 + i);
    }
    // The oldest marks went: those bytes' times are unknown, not wrong.
    assert_eq!(log.time_at(0), None);
    assert_eq!(log.time_at(10), Some(1010));
    assert_eq!(log.time_at(n - 1), Some(1000 + n - 1));
}
