//! The ops daemon's logic (docs/jobs.md): the job table, the state machine,
//! retries, logs and metrics, what to tell the bridge, and what to keep on
//! the disk. Pure and clock-agnostic: no I/O of its own (the disk is behind
//! the [`Store`] trait, whose file calls opsd's binary makes), no clock
//! (every input carries `now_ms`, unix ms, opsd's clock), no panics on any
//! input, bounded memory.
//!
//! # Inputs and outputs
//!
//! [`Jobs`] takes four kinds of input:
//!
//! * requests ([`Jobs::handle`]): the JOB syscall's [`JobRequest`]s, and the
//!   HTTP API's, which arrive on the link as `LinkMessage::Api` and are
//!   answered with `ApiReply` through the outbox;
//! * link messages from the bridge ([`Jobs::on_link`]);
//! * the bridge's connection ([`Jobs::on_bridge_connected`],
//!   [`Jobs::on_bridge_lost`]);
//! * time ([`Jobs::tick`]) and what opsd's binary reports of native jobs
//!   (`native_*`).
//!
//! It produces three queues: [`LinkMessage`]s for the bridge
//! ([`Jobs::pop_outbox`], [`Jobs::drain_outbox`]), [`Action`]s on native
//! jobs for the binary to carry out with PROC calls
//! ([`Jobs::drain_actions`]), and an [`Event`] per state change
//! ([`Jobs::drain_events`]).
//!
//! A table made with [`Jobs::restore`] also keeps itself in a [`Store`]
//! (the module [`persist`]: what is written when, what a boot brings
//! back), with warnings about it for the console log
//! ([`Jobs::drain_warnings`]).
//!
//! # Decisions
//!
//! * **Wait.** [`Jobs::handle`] answers `Wait` on a live job with
//!   [`Handled::Pending`]; the caller parks the request and asks
//!   [`Jobs::wait_reply`] after later inputs (an [`Event`] of that job to a
//!   terminal state is the cue; asking after every input is cheap too).
//!   `Wait`s that come over the link (`Api`) are parked inside, at most
//!   [`API_WAITS_MAX`] (beyond: `TableFull`, HTTP 429), and answered with
//!   `ApiReply` when the job ends. A job evicted before its waiter asked
//!   answers `NoSuchJob`.
//! * **Host jobs while the bridge is away** are accepted and stay PENDING
//!   ("waiting for the bridge"), at most `Config::max_waiting_host` of
//!   them (then `HostUnavailable`); their `Start` goes out when the bridge
//!   connects. While disconnected nothing is queued for the bridge at all:
//!   connecting re-sends what it must know (below).
//! * **Reconnection** ([`Jobs::on_bridge_connected`], also on a session
//!   `Hello` from [`Jobs::on_link`]): `Start` for every host job still
//!   PENDING, a `LogResend { from: end }` per stream of every RUNNING and
//!   STOPPING job (so the bridge sends from where opsd is: no gap, no
//!   duplicate), and the `Stop` again (with the grace that remains) for
//!   STOPPING ones. The bridge must take a `Start` for a job it already
//!   runs as a no-op (job ids make repeats harmless).
//! * **Timers.** opsd enforces `timeout_ms` and `stall_ms` for host and
//!   native jobs alike ([`Jobs::tick`]; [`Jobs::next_deadline`] says when):
//!   it moves the job to STOPPING, sends `Stop { grace_ms }` (or
//!   [`Action::StopNative`]) and remembers why; the `Exited` that follows
//!   ends it TIMED_OUT, or FAILED with `termination_reason = stalled`. The
//!   clocks are opsd's: an attempt runs from when opsd heard `Started`, and
//!   `last_output_at_ms` is when opsd received the last output or metric.
//!   The shim's own timeout (an `Exited` with reason `timed_out` while
//!   RUNNING) ends the job TIMED_OUT as well; whichever fires first wins.
//! * **Ending.** A STOPPING job ends as its stop's cause says: STOPPED (a
//!   user stop, whatever the exit), TIMED_OUT, or FAILED/stalled. Otherwise
//!   reason `timed_out` is TIMED_OUT, reason `stopped` (a stop on the host's
//!   side) is STOPPED (through STOPPING), exit code 0 without a signal is
//!   SUCCEEDED, anything else FAILED. `Lost` is LOST from any live state.
//! * **Retries.** A FAILED attempt (an exit code, a signal, a stall) is
//!   retried while [`may_retry`] allows: FAILED -> PENDING at once, and the
//!   new attempt is dispatched like a first one. `attempt` counts attempts
//!   dispatched (0 while a first one waits for the bridge). The per-attempt
//!   fields (`started_ms`, `ended_ms`, `runtime_ms`, `exit_code`, `signal`,
//!   `termination_reason`, `forced_kill`, `stop_requested_at_ms`) are
//!   cleared, `message` says why the last attempt failed; logs and metrics
//!   carry on. A spawn failure is FAILED and **not** retried (no such
//!   program, a bad cwd: the next attempt would fail alike).
//! * **Logs.** Each attempt's bytes have their own offsets on the bridge
//!   (a fresh shim, fresh files, from 0); opsd places attempt `n + 1` after
//!   attempt `n`, so `Logs` offsets are one stream per job and `LogResend`
//!   speaks the bridge's offsets of the current attempt. A chunk is appended
//!   only where it continues the stream: an older or duplicate chunk is
//!   dropped (counted), one that overlaps the end has its new tail appended
//!   (counted), one beyond the end is a gap (`LogResend` once per gap, the
//!   chunk dropped). Chunks for a PENDING job are stale and dropped; late
//!   chunks of an ended job are kept if they continue the stream. Each
//!   stream keeps its newest `log_bytes_per_stream` bytes, and all streams
//!   together at most `log_bytes_total`: beyond it the logs of the oldest
//!   ended jobs go first, then the front of the largest stream. A read below
//!   the kept start answers from the kept start: `JobResponse::Logs.offset`
//!   is always the real offset of the bytes returned.
//! * **The table** keeps `max_jobs` records; a start when it is full evicts
//!   the ended job with the lowest id, and is refused (`TableFull`) when
//!   every job is live. An ended job's spec is freed at once.
//! * **A `Started` for an ended job** (a job stopped while its `Start` was
//!   on the way) is answered with a `Stop`, so nothing runs that opsd
//!   thinks has ended.
//! * **On a disk** ([`Jobs::restore`] with a [`Store`]; [`persist`] says
//!   what is written when): a job's record is on the disk before the input
//!   that made or changed it returns, its logs follow in batches, and a
//!   boot brings the jobs back (ended ones as they were, live ones LOST,
//!   ids going on); `Logs` below what memory keeps are read from the disk.
//!   [`Jobs::new`] is the same table in memory only.
//!
//! # Bounds
//!
//! The outbox holds at most one `Start`, one `Stop` and two `LogResend` per
//! job (a flag per job removes repeats; the message is built when taken,
//! from the state of that moment) plus [`API_REPLIES_MAX`] replies; the
//! actions at most two per job; events `Config::max_events` (the oldest
//! dropped and counted). Memory is therefore about `max_jobs` records
//! (~1.5 KiB each, plus a 14 KiB spec while a job is live) and the log
//! budget; a restore loads records only, never logs.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod artifacts;
pub mod clock;
mod log;
pub mod metric_export;
pub mod persist;
pub mod telemetry;
#[cfg(test)]
mod tests;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::fmt;

use aether_abi::job::{
    JobError, JobKind, JobRecord, JobReply, JobRequest, JobResponse, JobSpec, JobState, LIST_PAGE, LOG_CHUNK_MAX,
    LogChunk, METRICS_MAX, Message, MetricValue, Stream, TerminationReason, may_retry,
};
use aether_abi::link::LinkMessage;
use aether_abi::metric::MetricPoint;
use aether_abi::telemetry::{TelemetryRequest, TelemetryResponse};

use crate::artifacts::Artifacts;
use crate::log::StreamLog;
use crate::persist::{Disk, JobDisk};
pub use crate::persist::{DiskStats, Store};
use crate::telemetry::Telemetry;

/// Replies to the bridge's `Api` requests queued at most (further requests
/// are dropped and counted: the HTTP side times out).
pub const API_REPLIES_MAX: usize = 32;
/// `Wait`s from the bridge's `Api` parked at most.
pub const API_WAITS_MAX: usize = 32;

const WAITING: &str = "waiting for the bridge";

/// The table's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Records kept (at least 1).
    pub max_jobs: usize,
    /// The newest bytes kept of each stream of each job.
    pub log_bytes_per_stream: usize,
    /// The most log bytes kept over all jobs.
    pub log_bytes_total: usize,
    /// Metric names a record keeps (at most [`METRICS_MAX`]).
    pub max_metrics: usize,
    /// Host jobs accepted while the bridge is not connected.
    pub max_waiting_host: usize,
    /// Events queued at most.
    pub max_events: usize,
    /// A log segment on the disk holds at most this many bytes; a stream
    /// keeps its newest two ([`persist`]).
    pub disk_segment_bytes: usize,
    /// The most log bytes kept on the disk over all jobs.
    pub disk_log_bytes_total: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_jobs: 256,
            log_bytes_per_stream: 256 * 1024,
            log_bytes_total: 32 * 1024 * 1024,
            max_metrics: METRICS_MAX,
            max_waiting_host: 64,
            max_events: 1024,
            disk_segment_bytes: 512 * 1024,
            disk_log_bytes_total: 64 * 1024 * 1024,
        }
    }
}

/// What [`Jobs::handle`] made of a request.
// As large as a reply, like `JobReply` itself: it is moved once.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Handled {
    /// The answer.
    Reply(JobReply),
    /// A `Wait` on a job that has not ended: ask [`Jobs::wait_reply`] later.
    Pending(u64),
}

/// A state change of a job (each one satisfies [`JobState::can_become`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub job_id: u64,
    pub from: JobState,
    pub to: JobState,
    pub at_ms: u64,
}

/// What opsd's binary does for native jobs (with PROC calls), reporting
/// back with the `native_*` methods.
// As large as a spec, like `LinkMessage::Start`: it is moved once.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Spawn the attempt: then [`Jobs::native_started`] or
    /// [`Jobs::native_spawn_failed`].
    SpawnNative { job_id: u64, spec: JobSpec },
    /// Terminate the job's process group, kill it after `grace_ms`: then
    /// [`Jobs::native_exited`].
    StopNative { job_id: u64, grace_ms: u32 },
}

/// Counters since the table was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Log chunks entirely before the end of their stream (dropped).
    pub duplicate_chunks: u64,
    /// Chunks that overlapped the end (their new tail appended).
    pub overlapping_chunks: u64,
    /// Gaps asked for again (`LogResend` sent).
    pub gaps: u64,
    /// Chunks dropped because they lay beyond the end.
    pub gap_chunks: u64,
    /// Messages for job ids the table does not have.
    pub unknown_ids: u64,
    /// Link messages about native jobs, or native reports about host jobs.
    pub wrong_kind: u64,
    /// Messages that came too late or too early for the job's state
    /// (a second `Exited`, output of a PENDING job, ...).
    pub stale_messages: u64,
    /// `Started` for jobs that had ended (answered with a stop).
    pub late_starts: u64,
    /// Messages only opsd sends (`Start`, `Stop`, ...) received.
    pub unexpected_messages: u64,
    /// Transitions refused by [`JobState::can_become`].
    pub invalid_transitions: u64,
    /// Ended jobs evicted from the table.
    pub evictions: u64,
    /// Log bytes dropped (caps and the total budget).
    pub log_bytes_dropped: u64,
    /// Metric names beyond `max_metrics` (their points dropped).
    pub metrics_dropped: u64,
    /// Events dropped (the queue was full).
    pub events_dropped: u64,
    /// `Api` requests dropped (the reply queue was full).
    pub api_dropped: u64,
}

/// Messages for the bridge not built yet (built when taken, from the
/// state of that moment).
#[derive(Debug)]
enum Out {
    Start(u64),
    Stop(u64),
    Resend(u64, Stream),
    ApiReply(u32, Box<JobReply>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NativeOut {
    Spawn(u64),
    Stop(u64),
}

/// Which messages of a job are in the outbox or the actions.
#[derive(Clone, Copy, Debug, Default)]
struct Queued {
    start: bool,
    stop: bool,
    resend: [bool; 2],
    spawn: bool,
    kill: bool,
}

const fn stream_index(s: Stream) -> usize {
    match s {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

const STREAMS: [Stream; 2] = [Stream::Stdout, Stream::Stderr];

struct Job {
    record: JobRecord,
    kind: JobKind,
    /// While the job may still need dispatching (freed once it has ended).
    spec: Option<Box<JobSpec>>,
    grace_ms: u32,
    timeout_ms: Option<u32>,
    stall_ms: Option<u32>,
    max_retries: u8,
    logs: [StreamLog; 2],
    /// The current attempt was handed out (a `Start` queued or a spawn).
    dispatched: bool,
    /// A `Start` of this job went to the link at some time.
    start_sent: bool,
    /// Why opsd stopped it (user stop, timeout, stall).
    stop_cause: Option<TerminationReason>,
    /// opsd's clock when the attempt was reported running.
    running_since_ms: Option<u64>,
    pid: Option<u32>,
    queued: Queued,
    /// What of it is on the disk.
    disk: JobDisk,
}

impl Job {
    fn status(&self) -> JobState {
        self.record.status
    }

    fn is_live(&self) -> bool {
        !self.record.status.is_terminal()
    }

    fn log_kept(&self) -> usize {
        self.logs.iter().map(StreamLog::kept).sum()
    }
}

/// How an attempt ended, as reported.
struct End {
    exit_code: Option<i32>,
    signal: Option<i32>,
    forced: bool,
    ended_ms: u64,
    reason: TerminationReason,
    message: Option<Message>,
}

/// Builds a message, cut at [`aether_abi::job::MESSAGE_MAX`] bytes.
fn message(args: fmt::Arguments<'_>) -> Message {
    struct Cut(Message);
    impl fmt::Write for Cut {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for c in s.chars() {
                if self.0.push(c).is_err() {
                    break;
                }
            }
            Ok(())
        }
    }
    let mut out = Cut(Message::new());
    let _ = fmt::write(&mut out, args);
    out.0
}

/// Everything but the table: the queues, the counters, the link's state.
struct Io {
    config: Config,
    connected: bool,
    /// The latest `now_ms` seen.
    now_ms: u64,
    outbox: VecDeque<Out>,
    api_replies: usize,
    actions: VecDeque<NativeOut>,
    events: VecDeque<Event>,
    api_waits: Vec<(u32, u64)>,
    log_bytes: usize,
    stats: Stats,
    /// Where the table is kept (`None`: memory only).
    disk: Option<Disk>,
    /// The metrics registry and the alert rules ([`telemetry`]).
    telemetry: Telemetry,
    /// The artifact store ([`artifacts`]).
    artifacts: Artifacts,
}

impl Io {
    /// Moves `job` to `to` if the state machine allows it (an event), else
    /// refuses and counts.
    fn transition(&mut self, job: &mut Job, to: JobState, now_ms: u64) -> bool {
        let from = job.record.status;
        if !from.can_become(to) {
            self.stats.invalid_transitions += 1;
            return false;
        }
        job.record.status = to;
        if self.events.len() >= self.config.max_events.max(1) {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        let event = Event {
            job_id: job.record.job_id,
            from,
            to,
            at_ms: now_ms,
        };
        self.record_due(job, Some(&event));
        self.telemetry.on_transition(event.job_id, from, to, now_ms);
        self.events.push_back(event);
        true
    }

    fn queue_start(&mut self, job: &mut Job) {
        if self.connected && !job.queued.start {
            job.queued.start = true;
            self.outbox.push_back(Out::Start(job.record.job_id));
        }
    }

    fn queue_stop(&mut self, job: &mut Job) {
        match job.kind {
            JobKind::Host => {
                if self.connected && !job.queued.stop {
                    job.queued.stop = true;
                    self.outbox.push_back(Out::Stop(job.record.job_id));
                }
            }
            JobKind::Native => {
                if !job.queued.kill {
                    job.queued.kill = true;
                    self.actions.push_back(NativeOut::Stop(job.record.job_id));
                }
            }
        }
    }

    fn queue_resend(&mut self, job: &mut Job, stream: Stream) {
        let i = stream_index(stream);
        job.logs[i].asked_from = Some(job.logs[i].end());
        if self.connected && !job.queued.resend[i] {
            job.queued.resend[i] = true;
            self.outbox.push_back(Out::Resend(job.record.job_id, stream));
        }
    }

    fn queue_api_reply(&mut self, id: u32, reply: JobReply) {
        if self.api_replies >= API_REPLIES_MAX {
            self.stats.api_dropped += 1;
            return;
        }
        self.api_replies += 1;
        self.outbox.push_back(Out::ApiReply(id, Box::new(reply)));
    }

    /// Hands the current attempt out: a `Start` for the bridge (when it is
    /// connected) or a spawn action.
    fn dispatch(&mut self, job: &mut Job) {
        if job.status() != JobState::Pending {
            return;
        }
        if job.kind == JobKind::Host && !self.connected {
            if job.record.message.is_empty() {
                job.record.message = message(format_args!("{WAITING}"));
            }
            return;
        }
        if !job.dispatched {
            job.dispatched = true;
            job.record.attempt = job.record.attempt.saturating_add(1);
            job.disk.changed = true;
        }
        if job.record.message.as_str() == WAITING {
            job.record.message.clear();
        }
        match job.kind {
            JobKind::Host => self.queue_start(job),
            JobKind::Native => {
                if !job.queued.spawn {
                    job.queued.spawn = true;
                    self.actions.push_back(NativeOut::Spawn(job.record.job_id));
                }
            }
        }
    }

    /// RUNNING -> STOPPING for `cause`, and the stop sent.
    fn begin_stop(&mut self, job: &mut Job, cause: TerminationReason, now_ms: u64) {
        if !self.transition(job, JobState::Stopping, now_ms) {
            return;
        }
        job.stop_cause = Some(cause);
        job.record.stop_requested_at_ms = Some(now_ms);
        job.record.message = match cause {
            TerminationReason::TimedOut => message(format_args!(
                "timed out after {} ms; stopping",
                job.timeout_ms.unwrap_or(0)
            )),
            TerminationReason::Stalled => {
                message(format_args!("no output for {} ms; stopping", job.stall_ms.unwrap_or(0)))
            }
            _ => message(format_args!("stopping (grace {} ms)", job.grace_ms)),
        };
        self.queue_stop(job);
    }

    /// A job has ended for good: what it no longer needs is freed.
    fn finalize(job: &mut Job) {
        job.spec = None;
        job.pid = None;
        job.running_since_ms = None;
    }

    /// Ends the attempt of a live job as `end` says (the rules in the
    /// crate docs), retrying a failure when attempts remain.
    fn end_attempt(&mut self, job: &mut Job, end: End, now_ms: u64) {
        let mut status = job.status();
        if status.is_terminal() || (status == JobState::Pending && !job.dispatched) {
            // A second end, or the end of an attempt before this one.
            self.stats.stale_messages += 1;
            return;
        }
        let implicit_start = status == JobState::Pending
            && !matches!(end.reason, TerminationReason::SpawnFailed | TerminationReason::Lost);
        if implicit_start {
            // It ran, but its `Started` never came (lost with a restart).
            if !self.transition(job, JobState::Running, now_ms) {
                return;
            }
            job.running_since_ms = Some(now_ms);
            status = JobState::Running;
        }
        use JobState as S;
        use TerminationReason as R;
        let failed_how = || {
            if end.signal.is_some() { R::Signaled } else { R::Exited }
        };
        let (target, reason, retryable) = if end.reason == R::Lost {
            (S::Lost, R::Lost, false)
        } else if status == S::Stopping {
            match job.stop_cause {
                Some(R::TimedOut) => (S::TimedOut, R::TimedOut, false),
                Some(R::Stalled) => (S::Failed, R::Stalled, true),
                _ => (S::Stopped, R::Stopped, false),
            }
        } else {
            match end.reason {
                R::TimedOut => (S::TimedOut, R::TimedOut, false),
                R::Stopped => (S::Stopped, R::Stopped, false),
                R::SpawnFailed => (S::Failed, R::SpawnFailed, false),
                R::Stalled => (S::Failed, R::Stalled, true),
                R::Exited | R::Signaled | R::Lost => {
                    if end.exit_code == Some(0) && end.signal.is_none() {
                        (S::Succeeded, R::Exited, false)
                    } else {
                        (S::Failed, failed_how(), true)
                    }
                }
            }
        };
        if target == S::Stopped && status != S::Stopping {
            // A stop from the host's side: through STOPPING.
            if !self.transition(job, S::Stopping, now_ms) {
                return;
            }
            job.stop_cause = Some(R::Stopped);
            job.record.stop_requested_at_ms.get_or_insert(now_ms);
        }
        if !self.transition(job, target, now_ms) {
            return;
        }
        let r = &mut job.record;
        r.exit_code = end.exit_code;
        r.signal = end.signal;
        r.forced_kill = end.forced;
        r.ended_ms = Some(end.ended_ms);
        r.runtime_ms = r.started_ms.map(|s| end.ended_ms.saturating_sub(s));
        r.termination_reason = Some(reason);
        r.message = outcome_message(job.timeout_ms, job.stall_ms, job.grace_ms, &end, reason);
        let attempt = job.record.attempt;
        if target == S::Failed && retryable && may_retry(attempt, job.max_retries) && attempt < u8::MAX {
            self.retry(job, now_ms);
        } else {
            Self::finalize(job);
        }
    }

    /// FAILED -> PENDING: a new attempt.
    fn retry(&mut self, job: &mut Job, now_ms: u64) {
        if !self.transition(job, JobState::Pending, now_ms) {
            Self::finalize(job);
            return;
        }
        let r = &mut job.record;
        r.message = message(format_args!("retrying: attempt {} failed ({})", r.attempt, r.message));
        r.started_ms = None;
        r.ended_ms = None;
        r.runtime_ms = None;
        r.exit_code = None;
        r.signal = None;
        r.termination_reason = None;
        r.forced_kill = false;
        r.stop_requested_at_ms = None;
        job.dispatched = false;
        job.stop_cause = None;
        job.running_since_ms = None;
        job.pid = None;
        for log in &mut job.logs {
            log.new_attempt();
        }
        self.dispatch(job);
    }

    /// The attempt runs (`Started`, or a native spawn).
    fn started(&mut self, job: &mut Job, pid: u32, started_ms: u64, now_ms: u64) {
        match job.status() {
            JobState::Pending if job.dispatched => {
                if self.transition(job, JobState::Running, now_ms) {
                    job.record.started_ms = Some(started_ms);
                    job.running_since_ms = Some(now_ms);
                    job.pid = Some(pid);
                    job.record.message.clear();
                }
            }
            // Told again (a bridge re-reporting after a restart).
            JobState::Running | JobState::Stopping => {}
            s if s.is_terminal() => {
                // Stopped while its start was on the way: stop it.
                self.stats.late_starts += 1;
                self.queue_stop(job);
            }
            _ => self.stats.stale_messages += 1,
        }
    }

    /// Appends output at the end of a stream (native output has no offsets).
    /// Appends a chunk that arrived at `ts_ms` (the bridge's time for a
    /// host job, opsd's for a native one).
    fn append(&mut self, job: &mut Job, stream: Stream, bytes: &[u8], ts_ms: u64, now_ms: u64) {
        let cap = self.config.log_bytes_per_stream;
        self.before_append(job, stream_index(stream), bytes);
        let log = &mut job.logs[stream_index(stream)];
        let before = log.kept();
        let dropped = log.append(bytes, cap, ts_ms);
        let after = log.kept();
        self.log_bytes = self.log_bytes + after - before;
        self.stats.log_bytes_dropped += dropped as u64;
        let end = log.end();
        match stream {
            Stream::Stdout => job.record.stdout_bytes = end,
            Stream::Stderr => job.record.stderr_bytes = end,
        }
        job.record.last_output_at_ms = Some(now_ms);
        job.disk.changed = true;
        self.telemetry.on_output(job.record.job_id, now_ms);
    }

    fn metric(&mut self, job: &mut Job, ts_ms: u64, point: &MetricPoint, now_ms: u64) {
        self.telemetry.on_point(job.record.job_id, ts_ms, point, now_ms);
        let metric = MetricValue {
            name: point.name.clone(),
            value: point.value,
            step: point.step,
            ts_ms,
        };
        job.record.metric_points += 1;
        let metrics = &mut job.record.latest_metrics;
        if let Some(m) = metrics.iter_mut().find(|m| m.name == metric.name) {
            *m = metric;
        } else if metrics.len() < self.config.max_metrics.min(METRICS_MAX) {
            let _ = metrics.push(metric);
        } else {
            self.stats.metrics_dropped += 1;
        }
        job.record.last_output_at_ms = Some(now_ms);
        job.disk.changed = true;
    }
}

fn outcome_message(
    timeout_ms: Option<u32>,
    stall_ms: Option<u32>,
    grace_ms: u32,
    end: &End,
    reason: TerminationReason,
) -> Message {
    use TerminationReason as R;
    let forced = if end.forced { "; SIGKILL after the grace" } else { "" };
    match reason {
        R::Lost => message(format_args!("lost: neither the process nor its exit status was found")),
        R::SpawnFailed => match &end.message {
            Some(m) if !m.is_empty() => m.clone(),
            _ => message(format_args!("could not be started")),
        },
        R::TimedOut => match timeout_ms {
            Some(t) => message(format_args!("timed out after {t} ms{forced}")),
            None => message(format_args!("timed out{forced}")),
        },
        R::Stalled => message(format_args!(
            "stalled: no output for {} ms{forced}",
            stall_ms.unwrap_or(0)
        )),
        R::Stopped => message(format_args!("stopped (grace {grace_ms} ms){forced}")),
        R::Exited | R::Signaled => match (end.exit_code, end.signal) {
            (_, Some(sig)) => message(format_args!("killed by signal {sig}{forced}")),
            (Some(code), None) => message(format_args!("exit code {code}{forced}")),
            (None, None) => message(format_args!("ended without an exit status{forced}")),
        },
    }
}

/// The job `job_id` if it exists and is of `kind` (else counted).
fn job_of<'a>(table: &'a mut BTreeMap<u64, Job>, stats: &mut Stats, job_id: u64, kind: JobKind) -> Option<&'a mut Job> {
    match table.get_mut(&job_id) {
        None => {
            stats.unknown_ids += 1;
            None
        }
        Some(job) if job.kind != kind => {
            stats.wrong_kind += 1;
            None
        }
        Some(job) => Some(job),
    }
}

/// The job table and its state machine (see the crate docs).
pub struct Jobs {
    table: BTreeMap<u64, Job>,
    next_id: u64,
    io: Io,
}

impl Jobs {
    pub fn new(config: Config) -> Self {
        let config = Config {
            max_jobs: config.max_jobs.max(1),
            max_metrics: config.max_metrics.min(METRICS_MAX),
            max_events: config.max_events.max(1),
            disk_segment_bytes: config.disk_segment_bytes.max(1),
            ..config
        };
        Jobs {
            table: BTreeMap::new(),
            next_id: 1,
            io: Io {
                config,
                connected: false,
                now_ms: 0,
                outbox: VecDeque::new(),
                api_replies: 0,
                actions: VecDeque::new(),
                events: VecDeque::new(),
                api_waits: Vec::new(),
                log_bytes: 0,
                stats: Stats::default(),
                disk: None,
                telemetry: Telemetry::new(),
                artifacts: Artifacts::new(),
            },
        }
    }

    pub fn config(&self) -> Config {
        self.io.config
    }

    pub fn stats(&self) -> Stats {
        self.io.stats
    }

    /// Records in the table.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn record(&self, job_id: u64) -> Option<&JobRecord> {
        self.table.get(&job_id).map(|j| &j.record)
    }

    /// The process id a running job reported (native: its group).
    pub fn pid(&self, job_id: u64) -> Option<u32> {
        self.table.get(&job_id).and_then(|j| j.pid)
    }

    /// The kept part of a stream: the offsets of its oldest byte kept and
    /// of its end.
    pub fn log_range(&self, job_id: u64, stream: Stream) -> Option<(u64, u64)> {
        let log = &self.table.get(&job_id)?.logs[stream_index(stream)];
        Some((log.start(), log.end()))
    }

    /// Log bytes held over all jobs.
    pub fn log_bytes_kept(&self) -> usize {
        self.io.log_bytes
    }

    pub fn bridge_connected(&self) -> bool {
        self.io.connected
    }

    /// Messages waiting in the outbox (some may turn out unneeded when
    /// taken).
    pub fn outbox_len(&self) -> usize {
        self.io.outbox.len()
    }

    /// Answers a request (the JOB syscall's, or the HTTP API's).
    pub fn handle(&mut self, request: JobRequest, now_ms: u64) -> Handled {
        self.io.now_ms = now_ms;
        let handled = match request {
            JobRequest::Start(spec) => Handled::Reply(self.start(spec, now_ms)),
            JobRequest::Stop { job_id } => Handled::Reply(self.stop(job_id, now_ms)),
            JobRequest::Status { job_id } => Handled::Reply(match self.table.get(&job_id) {
                Some(job) => Ok(JobResponse::Status(job.record.clone())),
                None => Err(JobError::NoSuchJob),
            }),
            JobRequest::List { after } => Handled::Reply(Ok(self.list(after))),
            JobRequest::Logs {
                job_id,
                stream,
                offset,
                max,
            } => Handled::Reply(self.logs(job_id, stream, offset, max)),
            JobRequest::Wait { job_id } => match self.wait_reply(job_id) {
                Some(reply) => Handled::Reply(reply),
                None => Handled::Pending(job_id),
            },
            JobRequest::Telemetry(request) => {
                Handled::Reply(Ok(JobResponse::Telemetry(self.telemetry_request(request, now_ms))))
            }
        };
        self.resolve_api_waits();
        self.write_due();
        handled
    }

    /// The answer to a `Wait` on `job_id`: `None` while it has not ended,
    /// `Ended(record)` once it has (for good: a failure being retried has
    /// not), `NoSuchJob` for an unknown (or evicted) job.
    pub fn wait_reply(&self, job_id: u64) -> Option<JobReply> {
        match self.table.get(&job_id) {
            None => Some(Err(JobError::NoSuchJob)),
            Some(job) if job.is_live() => None,
            Some(job) => Some(Ok(JobResponse::Ended(job.record.clone()))),
        }
    }

    fn start(&mut self, mut spec: JobSpec, now_ms: u64) -> JobReply {
        spec.fill_default_name();
        spec.validate().map_err(|what| JobError::InvalidSpec { what })?;
        if spec.kind == JobKind::Host && !self.io.connected {
            let waiting = self
                .table
                .values()
                .filter(|j| j.kind == JobKind::Host && j.status() == JobState::Pending)
                .count();
            if waiting >= self.io.config.max_waiting_host {
                return Err(JobError::HostUnavailable);
            }
        }
        if self.table.len() >= self.io.config.max_jobs && !self.evict_one() {
            return Err(JobError::TableFull);
        }
        let job_id = self.next_id;
        self.next_id += 1;
        let mut job = Job {
            record: JobRecord::pending(job_id, spec.name.clone(), now_ms),
            kind: spec.kind,
            grace_ms: spec.grace_ms,
            timeout_ms: spec.timeout_ms,
            stall_ms: spec.stall_ms,
            max_retries: spec.max_retries,
            spec: Some(Box::new(spec)),
            logs: Default::default(),
            dispatched: false,
            start_sent: false,
            stop_cause: None,
            running_since_ms: None,
            pid: None,
            queued: Queued::default(),
            disk: JobDisk::default(),
        };
        self.io.dispatch(&mut job);
        // On the disk before its id is answered (`handle` writes it).
        self.io.record_due(&mut job, None);
        self.table.insert(job_id, job);
        Ok(JobResponse::Started { job_id })
    }

    /// Evicts the ended job with the lowest id; false if every job is live.
    fn evict_one(&mut self) -> bool {
        let Some(id) = self.table.iter().find(|(_, j)| !j.is_live()).map(|(&id, _)| id) else {
            return false;
        };
        if let Some(job) = self.table.remove(&id) {
            self.io.telemetry.forget_job(id);
            self.io.log_bytes -= job.log_kept();
            // Removed once the record taking its place is written.
            self.io.forget_files(&job);
        }
        self.io.outbox.retain(|o| match o {
            Out::Start(j) | Out::Stop(j) | Out::Resend(j, _) => *j != id,
            Out::ApiReply(..) => true,
        });
        self.io.actions.retain(|a| match a {
            NativeOut::Spawn(j) | NativeOut::Stop(j) => *j != id,
        });
        self.io.stats.evictions += 1;
        true
    }

    fn stop(&mut self, job_id: u64, now_ms: u64) -> JobReply {
        let Some(job) = self.table.get_mut(&job_id) else {
            return Err(JobError::NoSuchJob);
        };
        let io = &mut self.io;
        match job.status() {
            JobState::Pending => {
                // Never ran (this attempt): STOPPED at once, through
                // STOPPING, as the state machine has it.
                if !io.transition(job, JobState::Stopping, now_ms) {
                    return Ok(JobResponse::Stopping);
                }
                job.stop_cause = Some(TerminationReason::Stopped);
                job.record.stop_requested_at_ms = Some(now_ms);
                if io.transition(job, JobState::Stopped, now_ms) {
                    job.record.ended_ms = Some(now_ms);
                    job.record.termination_reason = Some(TerminationReason::Stopped);
                    job.record.message = message(format_args!("stopped before it started"));
                    // Its start may have reached the bridge (or the
                    // binary): make sure it does not run.
                    let may_run = match job.kind {
                        JobKind::Host => job.start_sent,
                        JobKind::Native => job.dispatched,
                    };
                    if may_run {
                        io.queue_stop(job);
                    }
                    Io::finalize(job);
                }
                Ok(JobResponse::Stopping)
            }
            JobState::Running => {
                io.begin_stop(job, TerminationReason::Stopped, now_ms);
                Ok(JobResponse::Stopping)
            }
            JobState::Stopping => Ok(JobResponse::Stopping),
            status => Err(JobError::AlreadyEnded { status }),
        }
    }

    fn list(&self, after: u64) -> JobResponse {
        let mut entries = heapless::Vec::<JobRecord, LIST_PAGE>::new();
        let mut more = false;
        if let Some(first) = after.checked_add(1) {
            for job in self.table.range(first..).map(|(_, j)| j) {
                if entries.push(job.record.clone()).is_err() {
                    more = true;
                    break;
                }
            }
        }
        JobResponse::Jobs { entries, more }
    }

    /// From memory, or from the disk for bytes memory no longer has.
    fn logs(&mut self, job_id: u64, stream: Stream, offset: u64, max: u32) -> JobReply {
        let job = self.table.get(&job_id).ok_or(JobError::NoSuchJob)?;
        let i = stream_index(stream);
        let log = &job.logs[i];
        let max = usize::try_from(max).unwrap_or(usize::MAX).min(LOG_CHUNK_MAX);
        let (offset, bytes) = match self.io.read_disk_log(job, i, offset, max) {
            // At most LOG_CHUNK_MAX bytes: they fit.
            Some((at, bytes)) => (at, heapless::Vec::from_slice(&bytes).unwrap_or_default()),
            None => log.read(offset, max),
        };
        let eof = !job.is_live() && offset + bytes.len() as u64 == log.end();
        let ts_ms = if bytes.is_empty() { None } else { log.time_at(offset) };
        Ok(JobResponse::Logs {
            offset,
            bytes,
            eof,
            ts_ms,
        })
    }

    /// A message from the bridge. A session `Hello` counts as
    /// [`Jobs::on_bridge_connected`].
    pub fn on_link(&mut self, msg: LinkMessage, now_ms: u64) {
        self.io.now_ms = now_ms;
        match msg {
            LinkMessage::Hello { .. } => self.on_bridge_connected(now_ms),
            LinkMessage::Ack => {}
            LinkMessage::Started {
                job_id,
                pid,
                started_ms,
            } => {
                if let Some(job) = job_of(&mut self.table, &mut self.io.stats, job_id, JobKind::Host) {
                    self.io.started(job, pid, started_ms, now_ms);
                }
            }
            LinkMessage::Log(chunk) => self.host_log(chunk, now_ms),
            LinkMessage::Metric {
                job_id, ts_ms, point, ..
            } => self.output_metric(job_id, JobKind::Host, ts_ms, &point, now_ms),
            LinkMessage::Export { id, job_id } => self.io.telemetry.export(id, job_id),
            LinkMessage::Exited {
                job_id,
                exit_code,
                signal,
                forced,
                ended_ms,
                reason,
            } => self.end(
                job_id,
                JobKind::Host,
                End {
                    exit_code,
                    signal,
                    forced,
                    ended_ms,
                    reason,
                    message: None,
                },
                now_ms,
            ),
            LinkMessage::Lost { job_id } => self.end(
                job_id,
                JobKind::Host,
                End {
                    exit_code: None,
                    signal: None,
                    forced: false,
                    ended_ms: now_ms,
                    reason: TerminationReason::Lost,
                    message: None,
                },
                now_ms,
            ),
            LinkMessage::SpawnFailed { job_id, message } => self.end(
                job_id,
                JobKind::Host,
                End {
                    exit_code: None,
                    signal: None,
                    forced: false,
                    ended_ms: now_ms,
                    reason: TerminationReason::SpawnFailed,
                    message: Some(message),
                },
                now_ms,
            ),
            LinkMessage::Api { id, request } => match self.handle(*request, now_ms) {
                Handled::Reply(reply) => self.io.queue_api_reply(id, reply),
                Handled::Pending(job_id) => {
                    if self.io.api_waits.len() < API_WAITS_MAX {
                        self.io.api_waits.push((id, job_id));
                    } else {
                        self.io.queue_api_reply(id, Err(JobError::TableFull));
                    }
                }
            },
            LinkMessage::Start { .. }
            | LinkMessage::Stop { .. }
            | LinkMessage::LogResend { .. }
            | LinkMessage::ApiReply { .. }
            | LinkMessage::ExportChunk { .. }
            | LinkMessage::Notify { .. }
            | LinkMessage::ArtifactWant { .. }
            | LinkMessage::ArtifactDone { .. }
            | LinkMessage::ArtifactBytes { .. } => self.io.stats.unexpected_messages += 1,
            LinkMessage::ArtifactOffer { transfer, offer } => {
                let disk = self.io.disk.as_mut().map(|d| d.store_mut());
                self.io.artifacts.on_offer(transfer, &offer, disk, now_ms);
            }
            LinkMessage::ArtifactChunk {
                transfer,
                offset,
                bytes,
            } => {
                let disk = self.io.disk.as_mut().map(|d| d.store_mut());
                self.io.artifacts.on_chunk(transfer, offset, &bytes, disk, now_ms);
            }
            LinkMessage::ArtifactFetch {
                id,
                job_id,
                kind,
                name,
                selector,
                offset,
            } => {
                let disk = self.io.disk.as_mut().map(|d| d.store_mut());
                self.io
                    .artifacts
                    .on_fetch(id, job_id, kind, &name, &selector, offset, disk);
            }
            LinkMessage::Notified {
                id,
                delivered,
                status,
                attempts,
                error,
            } => self.io.telemetry.on_notified(id, delivered, status, attempts, &error),
        }
        self.resolve_api_waits();
        self.write_due();
    }

    fn host_log(&mut self, chunk: LogChunk, now_ms: u64) {
        let Some(job) = self.table.get_mut(&chunk.job_id) else {
            self.io.stats.unknown_ids += 1;
            return;
        };
        let io = &mut self.io;
        if job.kind != JobKind::Host {
            io.stats.wrong_kind += 1;
            return;
        }
        if job.status() == JobState::Pending {
            // Output of an attempt before this one (this one has not run).
            io.stats.stale_messages += 1;
            return;
        }
        let i = stream_index(chunk.stream);
        let log = &job.logs[i];
        let end = log.end();
        let Some(at) = log.base().checked_add(chunk.offset) else {
            io.stats.gap_chunks += 1;
            return;
        };
        let len = chunk.bytes.len() as u64;
        if at > end {
            io.stats.gap_chunks += 1;
            if job.is_live() && log.asked_from != Some(end) {
                io.stats.gaps += 1;
                io.queue_resend(job, chunk.stream);
            }
            return;
        }
        if at.saturating_add(len) <= end {
            if len > 0 {
                io.stats.duplicate_chunks += 1;
            }
            return;
        }
        // 0 < end - at < len <= LOG_CHUNK_MAX.
        let skip = (end - at) as usize;
        if skip > 0 {
            io.stats.overlapping_chunks += 1;
        }
        io.append(job, chunk.stream, &chunk.bytes[skip..], chunk.ts_ms, now_ms);
        self.enforce_log_budget();
    }

    fn output_metric(&mut self, job_id: u64, kind: JobKind, ts_ms: u64, point: &MetricPoint, now_ms: u64) {
        let Some(job) = job_of(&mut self.table, &mut self.io.stats, job_id, kind) else {
            return;
        };
        if job.status() == JobState::Pending {
            self.io.stats.stale_messages += 1;
            return;
        }
        self.io.metric(job, ts_ms, point, now_ms);
    }

    fn end(&mut self, job_id: u64, kind: JobKind, end: End, now_ms: u64) {
        if let Some(job) = job_of(&mut self.table, &mut self.io.stats, job_id, kind) {
            self.io.end_attempt(job, end, now_ms);
        }
    }

    /// Keeps the log bytes of all jobs within `log_bytes_total`: the logs
    /// of the oldest ended jobs go first, then the front of the largest
    /// stream (the lowest job id's of equals).
    fn enforce_log_budget(&mut self) {
        let budget = self.io.config.log_bytes_total;
        while self.io.log_bytes > budget {
            let excess = self.io.log_bytes - budget;
            let ended = self.table.values_mut().find(|j| !j.is_live() && j.log_kept() > 0);
            let freed = match ended {
                Some(job) => {
                    // What the disk does not have yet goes there first.
                    for i in 0..STREAMS.len() {
                        self.io.flush_stream(job, i);
                    }
                    job.logs.iter_mut().map(|log| log.drop_front(usize::MAX)).sum()
                }
                None => {
                    let largest = self
                        .table
                        .values()
                        .flat_map(|j| (0..STREAMS.len()).map(move |i| (j.logs[i].kept(), i, j.record.job_id)))
                        // The first of the largest (the lowest job id).
                        .min_by_key(|&(kept, _, _)| core::cmp::Reverse(kept));
                    match largest.and_then(|(_, i, id)| Some((i, self.table.get_mut(&id)?))) {
                        Some((i, job)) => {
                            self.io.flush_stream(job, i);
                            job.logs[i].drop_front(excess)
                        }
                        None => 0,
                    }
                }
            };
            if freed == 0 {
                // Cannot happen (the bytes counted are in some stream);
                // never loop.
                break;
            }
            self.io.log_bytes -= freed;
            self.io.stats.log_bytes_dropped += freed as u64;
        }
    }

    /// The bridge is there (a new session, also after either side
    /// restarted): re-sends what it must know.
    pub fn on_bridge_connected(&mut self, now_ms: u64) {
        self.io.now_ms = now_ms;
        self.io.connected = true;
        self.io.telemetry.set_bridge(true);
        let io = &mut self.io;
        for job in self.table.values_mut().filter(|j| j.kind == JobKind::Host) {
            match job.status() {
                JobState::Pending => io.dispatch(job),
                JobState::Running => {
                    for s in STREAMS {
                        io.queue_resend(job, s);
                    }
                }
                JobState::Stopping => {
                    for s in STREAMS {
                        io.queue_resend(job, s);
                    }
                    io.queue_stop(job);
                }
                _ => {}
            }
        }
        self.resolve_api_waits();
        self.write_due();
    }

    /// The bridge is gone (the link's session ended): nothing more is
    /// queued for it until it connects again, and what is queued is
    /// dropped (connecting re-sends it); replies to its requests stay.
    pub fn on_bridge_lost(&mut self, now_ms: u64) {
        self.io.now_ms = now_ms;
        self.io.connected = false;
        self.io.telemetry.set_bridge(false);
        self.io.outbox.retain(|o| matches!(o, Out::ApiReply(..)));
        for job in self.table.values_mut() {
            job.queued.start = false;
            job.queued.stop = false;
            job.queued.resend = [false; 2];
            for log in &mut job.logs {
                log.asked_from = None;
            }
        }
    }

    /// Enforces `timeout_ms` and `stall_ms` of running jobs, and runs the
    /// disk's timers ([`persist`]: log bytes written and synced, records
    /// refreshed).
    pub fn tick(&mut self, now_ms: u64) {
        self.io.now_ms = now_ms;
        let io = &mut self.io;
        for job in self.table.values_mut() {
            if let Some(cause) = Self::due(job, now_ms) {
                io.begin_stop(job, cause, now_ms);
            }
        }
        let store = self.io.disk.as_mut().map(|d| d.store_mut());
        self.io.telemetry.tick(now_ms, store);
        self.resolve_api_waits();
        self.disk_tick(now_ms);
    }

    /// Whether a running job's timeout or stall watchdog has run out.
    fn due(job: &Job, now_ms: u64) -> Option<TerminationReason> {
        let (timeout, stall) = Self::deadlines(job)?;
        if timeout.is_some_and(|t| now_ms >= t) {
            Some(TerminationReason::TimedOut)
        } else if stall.is_some_and(|t| now_ms >= t) {
            Some(TerminationReason::Stalled)
        } else {
            None
        }
    }

    fn deadlines(job: &Job) -> Option<(Option<u64>, Option<u64>)> {
        if job.status() != JobState::Running {
            return None;
        }
        let since = job.running_since_ms?;
        let timeout = job.timeout_ms.map(|t| since.saturating_add(u64::from(t)));
        let last = job.record.last_output_at_ms.map_or(since, |o| o.max(since));
        let stall = job.stall_ms.map(|t| last.saturating_add(u64::from(t)));
        Some((timeout, stall))
    }

    /// The earliest time [`Jobs::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        self.table
            .values()
            .filter_map(Self::deadlines)
            .flat_map(|(a, b)| [a, b])
            .flatten()
            .chain(self.disk_deadline())
            .chain(self.io.telemetry.next_deadline())
            .min()
    }

    /// A native job's spawn succeeded.
    pub fn native_started(&mut self, job_id: u64, pid: u32, now_ms: u64) {
        self.io.now_ms = now_ms;
        if let Some(job) = job_of(&mut self.table, &mut self.io.stats, job_id, JobKind::Native) {
            self.io.started(job, pid, now_ms, now_ms);
        }
        self.write_due();
    }

    /// Output of a native job (appended at the end of the stream).
    pub fn native_output(&mut self, job_id: u64, stream: Stream, bytes: &[u8], now_ms: u64) {
        self.io.now_ms = now_ms;
        let Some(job) = job_of(&mut self.table, &mut self.io.stats, job_id, JobKind::Native) else {
            return;
        };
        if job.status() == JobState::Pending {
            self.io.stats.stale_messages += 1;
            return;
        }
        self.io.append(job, stream, bytes, now_ms, now_ms);
        self.enforce_log_budget();
    }

    /// A native job's metric point (drained from the kernel; `ts_ms` its
    /// emit time on opsd's clock), checked by the kernel already.
    pub fn native_metric(&mut self, job_id: u64, ts_ms: u64, point: &MetricPoint, now_ms: u64) {
        self.io.now_ms = now_ms;
        self.output_metric(job_id, JobKind::Native, ts_ms, point, now_ms);
    }

    /// A point of no job (a program run from the console): the registry
    /// keeps it under job 0; no record changes.
    pub fn system_metric(&mut self, ts_ms: u64, point: &MetricPoint, now_ms: u64) {
        self.io.now_ms = now_ms;
        self.io.telemetry.on_point(0, ts_ms, point, now_ms);
    }

    /// The metrics registry and the alert rules.
    pub fn telemetry(&self) -> &Telemetry {
        &self.io.telemetry
    }

    pub fn telemetry_mut(&mut self) -> &mut Telemetry {
        &mut self.io.telemetry
    }

    /// A telemetry query; `ReloadRules` reads the rule file from the
    /// table's disk.
    pub fn telemetry_request(&mut self, request: TelemetryRequest, now_ms: u64) -> TelemetryResponse {
        let store = self.io.disk.as_mut().map(|d| d.store_mut());
        match request {
            TelemetryRequest::Artifacts { .. }
            | TelemetryRequest::ArtifactPin { .. }
            | TelemetryRequest::ArtifactCheck { .. }
            | TelemetryRequest::ReloadArtifactPolicy => self.io.artifacts.handle(request, store, now_ms),
            _ => self.io.telemetry.handle(request, store, now_ms),
        }
    }

    /// The artifact store.
    pub fn artifacts(&self) -> &Artifacts {
        &self.io.artifacts
    }

    /// A native job's process group has ended (`forced`: it had to be
    /// killed after the grace).
    pub fn native_exited(
        &mut self,
        job_id: u64,
        exit_code: Option<i32>,
        signal: Option<i32>,
        forced: bool,
        now_ms: u64,
    ) {
        self.io.now_ms = now_ms;
        let reason = if signal.is_some() {
            TerminationReason::Signaled
        } else {
            TerminationReason::Exited
        };
        let end = End {
            exit_code,
            signal,
            forced,
            ended_ms: now_ms,
            reason,
            message: None,
        };
        self.end(job_id, JobKind::Native, end, now_ms);
        self.resolve_api_waits();
        self.write_due();
    }

    /// A native job could not be spawned.
    pub fn native_spawn_failed(&mut self, job_id: u64, why: &str, now_ms: u64) {
        self.io.now_ms = now_ms;
        let end = End {
            exit_code: None,
            signal: None,
            forced: false,
            ended_ms: now_ms,
            reason: TerminationReason::SpawnFailed,
            message: Some(message(format_args!("{why}"))),
        };
        self.end(job_id, JobKind::Native, end, now_ms);
        self.resolve_api_waits();
        self.write_due();
    }

    /// Answers the parked `Api` waits whose jobs have ended.
    fn resolve_api_waits(&mut self) {
        if self.io.api_waits.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.io.api_waits.len() {
            let (id, job_id) = self.io.api_waits[i];
            match self.wait_reply(job_id) {
                Some(reply) => {
                    self.io.api_waits.swap_remove(i);
                    self.io.queue_api_reply(id, reply);
                }
                None => i += 1,
            }
        }
    }

    /// The next message for the bridge, built now (take one only when the
    /// link has room: that is the backpressure).
    pub fn pop_outbox(&mut self) -> Option<LinkMessage> {
        loop {
            // The table's messages first, then the exports' text.
            let Some(out) = self.io.outbox.pop_front() else {
                return self.io.telemetry.pop_link().or_else(|| self.io.artifacts.pop_link());
            };
            let job_id = match &out {
                Out::ApiReply(..) => 0,
                Out::Start(j) | Out::Stop(j) | Out::Resend(j, _) => *j,
            };
            let job = self.table.get_mut(&job_id);
            match (out, job) {
                (Out::ApiReply(id, reply), _) => {
                    self.io.api_replies -= 1;
                    return Some(LinkMessage::ApiReply { id, reply });
                }
                (Out::Start(_), Some(job)) => {
                    job.queued.start = false;
                    if job.status() != JobState::Pending || !job.dispatched {
                        continue;
                    }
                    let Some(spec) = &job.spec else { continue };
                    job.start_sent = true;
                    return Some(LinkMessage::Start {
                        job_id,
                        spec: spec.clone(),
                    });
                }
                (Out::Stop(_), Some(job)) => {
                    job.queued.stop = false;
                    let grace_ms = match job.status() {
                        JobState::Stopping => {
                            let asked = job.record.stop_requested_at_ms.unwrap_or(self.io.now_ms);
                            let spent = self.io.now_ms.saturating_sub(asked);
                            u32::try_from(u64::from(job.grace_ms).saturating_sub(spent)).unwrap_or(0)
                        }
                        s if s.is_terminal() => job.grace_ms,
                        _ => continue,
                    };
                    return Some(LinkMessage::Stop { job_id, grace_ms });
                }
                (Out::Resend(_, stream), Some(job)) => {
                    let i = stream_index(stream);
                    job.queued.resend[i] = false;
                    if !matches!(job.status(), JobState::Running | JobState::Stopping) {
                        continue;
                    }
                    let log = &mut job.logs[i];
                    log.asked_from = Some(log.end());
                    return Some(LinkMessage::LogResend {
                        job_id,
                        stream,
                        from: log.attempt_end(),
                    });
                }
                (_, None) => continue,
            }
        }
    }

    /// Every message for the bridge (when the link can take them all).
    pub fn drain_outbox(&mut self) -> impl Iterator<Item = LinkMessage> + '_ {
        core::iter::from_fn(move || self.pop_outbox())
    }

    /// The next action on a native job.
    pub fn pop_action(&mut self) -> Option<Action> {
        loop {
            let next = self.io.actions.pop_front()?;
            match next {
                NativeOut::Spawn(job_id) => {
                    let Some(job) = self.table.get_mut(&job_id) else {
                        continue;
                    };
                    job.queued.spawn = false;
                    if job.status() != JobState::Pending || !job.dispatched {
                        continue;
                    }
                    let Some(spec) = &job.spec else { continue };
                    return Some(Action::SpawnNative {
                        job_id,
                        spec: (**spec).clone(),
                    });
                }
                NativeOut::Stop(job_id) => {
                    let Some(job) = self.table.get_mut(&job_id) else {
                        continue;
                    };
                    job.queued.kill = false;
                    return Some(Action::StopNative {
                        job_id,
                        grace_ms: job.grace_ms,
                    });
                }
            }
        }
    }

    pub fn drain_actions(&mut self) -> impl Iterator<Item = Action> + '_ {
        core::iter::from_fn(move || self.pop_action())
    }

    /// State changes since the last drain, in order.
    pub fn drain_events(&mut self) -> impl Iterator<Item = Event> + '_ {
        self.io.events.drain(..)
    }
}

impl Default for Jobs {
    fn default() -> Self {
        Jobs::new(Config::default())
    }
}
