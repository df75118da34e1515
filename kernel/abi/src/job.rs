//! Jobs: what the console and the HTTP API ask of opsd, and what opsd
//! answers (docs/jobs.md, "Types that cross boundaries").
//!
//! The vocabulary follows Ray's job info (`status`, `message`,
//! `start_time`, `driver_exit_code`, ...), spelled for this system: times
//! are unix milliseconds (`*_ms`), a job has one `termination_reason`, and
//! logs are byte offsets per stream.
//!
//! Two encodings matter. On the JOB syscall ([`crate::syscall::nr::JOB`])
//! and on the link every message is postcard, sized at compile time by
//! [`MaxSize`] like the other framed calls. The bridge's HTTP API serves the
//! same types as JSON with serde: field names are the ones of the design,
//! and the small value-like enums are renamed for JSON only (postcard
//! encodes a variant by its index, never by its name): [`JobState`] as
//! `"RUNNING"` (as Ray), [`TerminationReason`], [`JobKind`], [`Stream`],
//! [`SpecProblem`] and [`JobError`] in snake case. [`JobSpec`] takes
//! defaults for missing JSON fields (`{"name": "t", "entrypoint": ["python3",
//! "t.py"]}` is a whole spec).
//!
//! Errors: a syscall-level failure (bad pointer, malformed frame, response
//! buffer too small, no job service) is a [`crate::syscall::Errno`] in
//! `rax`, as for every framed call. Whatever opsd decides about a request
//! that arrived intact is a [`JobError`] inside the answer ([`JobReply`] is
//! `Result<JobResponse, JobError>`), so the console and the HTTP API see the
//! same reasons and the API can map them to status codes
//! ([`JobError::http_status`]).

use core::fmt;

use heapless::{String, Vec};
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

/// Job names (console, HTTP, records).
pub const NAME_MAX: usize = 64;
pub type JobName = String<NAME_MAX>;
/// One argument of the entrypoint (argv): at most [`ARG_MAX`] bytes.
pub const ARG_MAX: usize = 256;
/// Arguments of the entrypoint, the program included: 32 of up to 256 bytes
/// (8 KiB of argv: long paths and flag lists fit, a shell script inline
/// does not; put it in a file).
pub const ARGS_MAX: usize = 32;
pub type Arg = String<ARG_MAX>;
/// Environment variables the job gets on top of the bridge's environment:
/// 16 names of up to 64 bytes with values of up to 256. Sixteen (not 32)
/// keeps a whole [`JobRequest`] under 16 KiB ([`REQUEST_MAX`]); a job needing
/// more sets them in its entrypoint script.
pub const ENVS_MAX: usize = 16;
pub const ENV_NAME_MAX: usize = 64;
pub const ENV_VALUE_MAX: usize = 256;
pub type EnvName = String<ENV_NAME_MAX>;
pub type EnvValue = String<ENV_VALUE_MAX>;
/// The working directory of a host job.
pub const CWD_MAX: usize = 256;
/// A record's human-readable `message` (why it failed, what it waits for).
pub const MESSAGE_MAX: usize = 128;
pub type Message = String<MESSAGE_MAX>;
/// Metric names (`loss`, `eval/accuracy`).
pub const METRIC_NAME_MAX: usize = 64;
/// Latest metric values a record carries (the first names a job reported).
pub const METRICS_MAX: usize = 8;
/// Bytes in one log chunk (link `Log` messages and `Logs` answers).
pub const LOG_CHUNK_MAX: usize = 1024;
/// Records per `List` page.
pub const LIST_PAGE: usize = 4;

/// A stop's grace when the spec does not choose: SIGTERM, then 10 s, then
/// SIGKILL (docs/jobs.md, "Stop semantics").
pub const DEFAULT_GRACE_MS: u32 = 10_000;
/// Priorities as for processes: 0 is the highest, 31 the lowest.
pub const PRIORITY_LEVELS: u8 = crate::syscall::PRIORITY_LEVELS;
pub const DEFAULT_PRIORITY: u8 = crate::syscall::DEFAULT_PRIORITY;

/// Where a job runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, MaxSize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// A Linux process on the host, run by the bridge under a shim.
    #[default]
    Host,
    /// A process group in AetherOS, spawned by opsd.
    Native,
}

/// What to run: the body of `job start` and of `POST /jobs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
#[serde(default)]
pub struct JobSpec {
    pub name: JobName,
    /// argv: the program first (looked up in `PATH` for host jobs, in the
    /// boot image for native ones).
    pub entrypoint: Vec<Arg, ARGS_MAX>,
    pub env: Vec<(EnvName, EnvValue), ENVS_MAX>,
    /// Host jobs only; `None` is the bridge's working directory.
    pub cwd: Option<String<CWD_MAX>>,
    pub kind: JobKind,
    /// 0 (highest) ..= 31.
    pub priority: u8,
    /// Between SIGTERM and SIGKILL on a stop, a timeout or a stall; 0 kills
    /// at once.
    pub grace_ms: u32,
    /// Wall-clock limit from the start of an attempt: then the job is
    /// stopped and ends TIMED_OUT.
    pub timeout_ms: Option<u32>,
    /// The stall watchdog: no output and no metric for this long stops the
    /// job, which ends FAILED with `termination_reason = stalled`.
    pub stall_ms: Option<u32>,
    /// Further attempts after a FAILED one (not after a stop, a timeout or a
    /// loss).
    pub max_retries: u8,
}

impl Default for JobSpec {
    fn default() -> Self {
        JobSpec {
            name: JobName::new(),
            entrypoint: Vec::new(),
            env: Vec::new(),
            cwd: None,
            kind: JobKind::Host,
            priority: DEFAULT_PRIORITY,
            grace_ms: DEFAULT_GRACE_MS,
            timeout_ms: None,
            stall_ms: None,
            max_retries: 0,
        }
    }
}

/// Why a [`JobSpec`] was refused ([`JobError::InvalidSpec`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
#[serde(rename_all = "snake_case")]
pub enum SpecProblem {
    EmptyName,
    /// No program to run (empty entrypoint or an empty program name).
    EmptyEntrypoint,
    /// A NUL byte in an argument, a variable or the working directory
    /// (none of them could be passed to `execve`).
    NulByte,
    /// An environment variable name that is empty or contains `=`.
    BadEnvName,
    EmptyCwd,
    /// `priority` is not below [`PRIORITY_LEVELS`].
    BadPriority,
    /// `timeout_ms` or `stall_ms` of 0 (leave it out for no limit).
    ZeroLimit,
}

impl SpecProblem {
    pub const fn as_str(self) -> &'static str {
        match self {
            SpecProblem::EmptyName => "the job has no name",
            SpecProblem::EmptyEntrypoint => "the entrypoint is empty",
            SpecProblem::NulByte => "a NUL byte in an argument, the environment or the cwd",
            SpecProblem::BadEnvName => "an environment variable name is empty or contains '='",
            SpecProblem::EmptyCwd => "the working directory is empty",
            SpecProblem::BadPriority => "priority is not in 0..=31",
            SpecProblem::ZeroLimit => "timeout_ms or stall_ms is 0",
        }
    }
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name a job gets when its spec has none: the program's last path
/// component (`python3` for `/usr/bin/python3`), cut to [`NAME_MAX`] bytes
/// at a character boundary.
pub fn default_name(program: &str) -> &str {
    let trimmed = program.trim_end_matches('/');
    let base = match trimmed.rsplit('/').next() {
        Some(b) if !b.is_empty() => b,
        _ => program,
    };
    let mut end = base.len().min(NAME_MAX);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    base.get(..end).unwrap_or(base)
}

impl JobSpec {
    /// Gives a spec without a name its [`default_name`] (the console and
    /// the HTTP API may leave it out).
    pub fn fill_default_name(&mut self) {
        if self.name.is_empty()
            && let Some(program) = self.entrypoint.first()
        {
            let name = default_name(program);
            // Cut to NAME_MAX by default_name: always fits.
            let _ = self.name.push_str(name);
        }
    }

    /// The checks opsd makes before accepting a spec. The bounds of the
    /// types are checked by decoding already.
    pub fn validate(&self) -> Result<(), SpecProblem> {
        if self.name.is_empty() {
            return Err(SpecProblem::EmptyName);
        }
        match self.entrypoint.first() {
            Some(program) if !program.is_empty() => {}
            _ => return Err(SpecProblem::EmptyEntrypoint),
        }
        let has_nul = |s: &str| s.as_bytes().contains(&0);
        if self.entrypoint.iter().any(|a| has_nul(a)) {
            return Err(SpecProblem::NulByte);
        }
        for (name, value) in &self.env {
            if name.is_empty() || name.contains('=') {
                return Err(SpecProblem::BadEnvName);
            }
            if has_nul(name) || has_nul(value) {
                return Err(SpecProblem::NulByte);
            }
        }
        if let Some(cwd) = &self.cwd {
            if cwd.is_empty() {
                return Err(SpecProblem::EmptyCwd);
            }
            if has_nul(cwd) {
                return Err(SpecProblem::NulByte);
            }
        }
        if self.priority >= PRIORITY_LEVELS {
            return Err(SpecProblem::BadPriority);
        }
        if self.timeout_ms == Some(0) || self.stall_ms == Some(0) {
            return Err(SpecProblem::ZeroLimit);
        }
        Ok(())
    }
}

/// A job's status (Ray's names; `as_str` and JSON give `"PENDING"`, ...).
///
/// ```text
/// PENDING ──> RUNNING ──> SUCCEEDED | FAILED | TIMED_OUT | LOST
///    │  │        │
///    │  │        └──> STOPPING ──> STOPPED | TIMED_OUT | FAILED | LOST
///    │  └──────────────┘ (a stop, a timeout or a stall: the grace runs)
///    └──> FAILED (spawn failed) | LOST (the bridge lost it)
/// FAILED ──> PENDING (a retry, while attempts remain)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, MaxSize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Accepted, not started yet (or waiting for a retry).
    Pending,
    Running,
    /// Exited with code 0.
    Succeeded,
    /// Exited with another code, by a signal, stalled, or could not start.
    Failed,
    /// Stopped because `timeout_ms` ran out.
    TimedOut,
    /// Its process is gone and nobody knows how it ended (the bridge
    /// restarted and found neither the process nor an exit record).
    Lost,
    /// A stop is underway (SIGTERM sent, the grace runs): after a user stop,
    /// a timeout or a stall.
    Stopping,
    /// Ended by a user stop.
    Stopped,
}

impl JobState {
    pub const ALL: [JobState; 8] = [
        JobState::Pending,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::TimedOut,
        JobState::Lost,
        JobState::Stopping,
        JobState::Stopped,
    ];

    /// Whether the job has ended (a FAILED job may still be retried: the
    /// retry is a new attempt that starts PENDING again).
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::TimedOut | JobState::Lost | JobState::Stopped
        )
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "PENDING",
            JobState::Running => "RUNNING",
            JobState::Succeeded => "SUCCEEDED",
            JobState::Failed => "FAILED",
            JobState::TimedOut => "TIMED_OUT",
            JobState::Lost => "LOST",
            JobState::Stopping => "STOPPING",
            JobState::Stopped => "STOPPED",
        }
    }

    /// The inverse of [`JobState::as_str`] (case-insensitive, for the
    /// console's filters).
    pub fn parse(s: &str) -> Option<JobState> {
        Self::ALL.into_iter().find(|st| st.as_str().eq_ignore_ascii_case(s))
    }

    /// Whether opsd may move a job from `self` to `next` (the diagram
    /// above). `Failed -> Pending` is the retry; whether attempts remain is
    /// [`may_retry`]'s question. Staying in a state is not a transition.
    pub const fn can_become(self, next: JobState) -> bool {
        use JobState::*;
        matches!(
            (self, next),
            (Pending, Running | Stopping | Failed | Lost)
                | (Running, Succeeded | Failed | TimedOut | Lost | Stopping)
                | (Stopping, Stopped | TimedOut | Failed | Lost)
                | (Failed, Pending)
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a job whose attempt number `attempt` (the first is number one)
/// just ended FAILED is tried again: `max_retries` further attempts are
/// allowed. A stop, a timeout or a loss is never retried.
pub const fn may_retry(attempt: u8, max_retries: u8) -> bool {
    attempt <= max_retries
}

/// How the last attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, MaxSize)]
#[serde(rename_all = "snake_case")]
pub enum TerminationReason {
    /// It exited by itself (`exit_code` says how).
    Exited,
    /// A signal it did not ask for ended it (`signal` says which).
    Signaled,
    /// A user stop.
    Stopped,
    /// `timeout_ms` ran out.
    TimedOut,
    /// No output and no metric for `stall_ms`.
    Stalled,
    /// The process vanished without an exit record.
    Lost,
    /// It could not be started (no such program, bad cwd, ...).
    SpawnFailed,
}

impl TerminationReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            TerminationReason::Exited => "exited",
            TerminationReason::Signaled => "signaled",
            TerminationReason::Stopped => "stopped",
            TerminationReason::TimedOut => "timed_out",
            TerminationReason::Stalled => "stalled",
            TerminationReason::Lost => "lost",
            TerminationReason::SpawnFailed => "spawn_failed",
        }
    }
}

impl fmt::Display for TerminationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One metric point (a trainer's `{"aether_metric": {...}}` line, or a
/// native job's METRIC call).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, MaxSize)]
pub struct MetricValue {
    pub name: String<METRIC_NAME_MAX>,
    pub value: f64,
    pub step: Option<u64>,
    /// When it was reported (unix ms).
    pub ts_ms: u64,
}

/// What opsd knows about a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, MaxSize)]
pub struct JobRecord {
    /// From 1, in order of acceptance; never reused.
    pub job_id: u64,
    pub name: JobName,
    pub status: JobState,
    /// Why it is in this status, for people ("exit code 1", "SIGKILL after
    /// 10000 ms grace", "waiting for the bridge").
    pub message: Message,
    /// 1 for the first attempt, +1 per retry (0 before the first start).
    pub attempt: u8,
    /// Accepted, started (this attempt), ended: unix ms.
    pub created_ms: Option<u64>,
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    pub runtime_ms: Option<u64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub termination_reason: Option<TerminationReason>,
    /// SIGKILL was needed (the grace ran out).
    pub forced_kill: bool,
    pub stop_requested_at_ms: Option<u64>,
    /// The last stdout/stderr byte or metric (the stall watchdog's clock).
    pub last_output_at_ms: Option<u64>,
    /// The latest value of each of the first [`METRICS_MAX`] metric names.
    pub latest_metrics: Vec<MetricValue, METRICS_MAX>,
    /// Metric points received, all attempts (each one counted, also those
    /// of names beyond [`METRICS_MAX`]).
    pub metric_points: u64,
    /// Bytes of each stream received, all attempts: the end of its log
    /// (older bytes may have been dropped to the log budget since).
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
}

impl JobRecord {
    /// The record of a just accepted job.
    pub fn pending(job_id: u64, name: JobName, created_ms: u64) -> Self {
        JobRecord {
            job_id,
            name,
            status: JobState::Pending,
            message: Message::new(),
            attempt: 0,
            created_ms: Some(created_ms),
            started_ms: None,
            ended_ms: None,
            runtime_ms: None,
            exit_code: None,
            signal: None,
            termination_reason: None,
            forced_kill: false,
            stop_requested_at_ms: None,
            last_output_at_ms: None,
            latest_metrics: Vec::new(),
            metric_points: 0,
            stdout_bytes: 0,
            stderr_bytes: 0,
        }
    }
}

/// A job's output streams, kept apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, MaxSize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A piece of a stream: the bytes at `offset..offset + bytes.len()` of it
/// (bytes, not text: non-UTF-8 output stays as it was).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct LogChunk {
    pub job_id: u64,
    pub stream: Stream,
    pub offset: u64,
    /// When the shim read it (unix ms).
    pub ts_ms: u64,
    pub bytes: Vec<u8, LOG_CHUNK_MAX>,
}

/// Requests of the JOB syscall (and of the HTTP API, forwarded over the
/// link as `LinkMessage::Api`).
// Sized by the largest variant on purpose (MaxSize sizes the buffers).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum JobRequest {
    /// Accept a job: `Started { job_id }` (it is PENDING until it runs).
    Start(JobSpec),
    /// Stop a job (grace, then kill): `Stopping`, or `AlreadyEnded`.
    Stop {
        job_id: u64,
    },
    Status {
        job_id: u64,
    },
    /// One page of records: job ids above `after`, ascending.
    List {
        after: u64,
    },
    /// Up to `max` bytes (at most [`LOG_CHUNK_MAX`]) of a stream from `offset`.
    Logs {
        job_id: u64,
        stream: Stream,
        offset: u64,
        max: u32,
    },
    /// Block until the job is terminal (and will not be retried): `Ended`.
    Wait {
        job_id: u64,
    },
    /// A query of the metrics registry or the alert rules: `Telemetry`.
    Telemetry(crate::telemetry::TelemetryRequest),
}

/// Answers of the JOB syscall.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, MaxSize)]
pub enum JobResponse {
    Started {
        job_id: u64,
    },
    /// The stop began (the job is STOPPING, or was PENDING and is STOPPED).
    Stopping,
    Status(JobRecord),
    Jobs {
        entries: Vec<JobRecord, LIST_PAGE>,
        /// More ids follow the last entry.
        more: bool,
    },
    Logs {
        /// Where `bytes` start (the requested offset, or the oldest byte
        /// still kept if that one was dropped).
        offset: u64,
        bytes: Vec<u8, LOG_CHUNK_MAX>,
        /// The job has ended and `bytes` reach the end of the stream.
        eof: bool,
        /// When the first of `bytes` arrived (unix ms; the bridge's time
        /// for a host job), if opsd still knows.
        ts_ms: Option<u64>,
    },
    Ended(JobRecord),
    Telemetry(crate::telemetry::TelemetryResponse),
}

/// Why opsd refused a request that arrived intact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
#[serde(rename_all = "snake_case")]
pub enum JobError {
    NoSuchJob,
    /// Stopping a job that has ended already (HTTP 409).
    AlreadyEnded {
        status: JobState,
    },
    InvalidSpec {
        what: SpecProblem,
    },
    /// The job table is full of jobs that have not ended.
    TableFull,
    /// A host job while the bridge is not connected.
    HostUnavailable,
    /// The request did not decode as a `JobRequest` (HTTP 400).
    BadRequest,
}

impl JobError {
    pub const fn as_str(self) -> &'static str {
        match self {
            JobError::NoSuchJob => "no such job",
            JobError::AlreadyEnded { .. } => "the job has ended already",
            JobError::InvalidSpec { .. } => "invalid job spec",
            JobError::TableFull => "the job table is full",
            JobError::HostUnavailable => "the host bridge is not connected",
            JobError::BadRequest => "malformed job request",
        }
    }

    /// The status code the HTTP API answers with.
    pub const fn http_status(self) -> u16 {
        match self {
            JobError::NoSuchJob => 404,
            JobError::AlreadyEnded { .. } => 409,
            JobError::InvalidSpec { .. } => 400,
            JobError::TableFull => 429,
            JobError::HostUnavailable => 503,
            JobError::BadRequest => 400,
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::AlreadyEnded { status } => write!(f, "{} ({status})", self.as_str()),
            JobError::InvalidSpec { what } => write!(f, "{}: {what}", self.as_str()),
            _ => f.write_str(self.as_str()),
        }
    }
}

/// The answer of the JOB syscall, as encoded in the response buffer.
pub type JobReply = Result<JobResponse, JobError>;

/// The most a JOB request may be: 16 KiB, above the 1 KiB
/// [`crate::syscall::REQUEST_MAX`] of the other framed calls, because a
/// [`JobSpec`] carries argv and environment. The kernel copies a JOB
/// request in with this bound instead.
pub const REQUEST_MAX: usize = 16 * 1024;
pub const JOB_REQUEST_MAX: usize = JobRequest::POSTCARD_MAX_SIZE;
pub const JOB_RESPONSE_MAX: usize = JobReply::POSTCARD_MAX_SIZE;
const _: () = assert!(JOB_REQUEST_MAX <= REQUEST_MAX);

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::syscall::{decode, encode};
    extern crate std;
    use std::string::ToString;

    fn s<const N: usize>(c: char) -> String<N> {
        let mut out = String::new();
        for _ in 0..N {
            out.push(c).unwrap();
        }
        out
    }

    pub(crate) fn largest_spec() -> JobSpec {
        let mut entrypoint = Vec::new();
        for _ in 0..ARGS_MAX {
            entrypoint.push(s::<ARG_MAX>('a')).unwrap();
        }
        let mut env = Vec::new();
        for _ in 0..ENVS_MAX {
            env.push((s::<ENV_NAME_MAX>('K'), s::<ENV_VALUE_MAX>('v'))).unwrap();
        }
        JobSpec {
            name: s('n'),
            entrypoint,
            env,
            cwd: Some(s('/')),
            kind: JobKind::Native,
            priority: u8::MAX,
            grace_ms: u32::MAX,
            timeout_ms: Some(u32::MAX),
            stall_ms: Some(u32::MAX),
            max_retries: u8::MAX,
        }
    }

    pub(crate) fn largest_metric() -> MetricValue {
        MetricValue {
            name: s('m'),
            value: f64::MAX,
            step: Some(u64::MAX),
            ts_ms: u64::MAX,
        }
    }

    pub(crate) fn largest_record() -> JobRecord {
        let mut latest_metrics = Vec::new();
        for _ in 0..METRICS_MAX {
            latest_metrics.push(largest_metric()).unwrap();
        }
        JobRecord {
            job_id: u64::MAX,
            name: s('n'),
            status: JobState::Stopped,
            message: s('x'),
            attempt: u8::MAX,
            created_ms: Some(u64::MAX),
            started_ms: Some(u64::MAX),
            ended_ms: Some(u64::MAX),
            runtime_ms: Some(u64::MAX),
            exit_code: Some(i32::MIN),
            signal: Some(i32::MIN),
            termination_reason: Some(TerminationReason::SpawnFailed),
            forced_kill: true,
            stop_requested_at_ms: Some(u64::MAX),
            last_output_at_ms: Some(u64::MAX),
            latest_metrics,
            metric_points: u64::MAX,
            stdout_bytes: u64::MAX,
            stderr_bytes: u64::MAX,
        }
    }

    fn full_bytes() -> Vec<u8, LOG_CHUNK_MAX> {
        let mut bytes = Vec::new();
        bytes.resize(LOG_CHUNK_MAX, 0xff).unwrap();
        bytes
    }

    fn round_trip<T>(msg: &T, max: usize) -> usize
    where
        T: Serialize + for<'a> Deserialize<'a> + PartialEq + fmt::Debug,
    {
        let mut buf = std::vec![0u8; max];
        let n = encode(msg, &mut buf).unwrap().len();
        assert!(n <= max);
        assert_eq!(&decode::<T>(&buf[..n]).unwrap(), msg);
        n
    }

    #[test]
    fn a_spec_without_a_name_gets_the_programs_basename() {
        assert_eq!(default_name("/usr/bin/python3"), "python3");
        assert_eq!(default_name("train.sh"), "train.sh");
        assert_eq!(default_name("dir/"), "dir");
        assert_eq!(default_name("/"), "/");
        let long = "é".repeat(NAME_MAX);
        let cut = default_name(&long);
        assert!(cut.len() <= NAME_MAX && cut.chars().all(|c| c == 'é'));
        let mut spec = JobSpec::default();
        spec.fill_default_name();
        assert_eq!(spec.name, "", "no entrypoint: nothing to name it after");
        spec.entrypoint.push(s('x')).unwrap();
        spec.entrypoint[0] = String::try_from("/opt/run/trainer").unwrap();
        spec.fill_default_name();
        assert_eq!(spec.name, "trainer");
        spec.entrypoint[0] = String::try_from("other").unwrap();
        spec.fill_default_name();
        assert_eq!(spec.name, "trainer", "a name is kept");
    }

    #[test]
    fn sizes_are_as_documented() {
        // The numbers quoted in the docs and the report; a change of a
        // bound shows here first.
        assert_eq!(JobSpec::POSTCARD_MAX_SIZE, 13_770);
        assert_eq!(JOB_REQUEST_MAX, 13_771);
        assert_eq!(JobRecord::POSTCARD_MAX_SIZE, 1_071);
        assert_eq!(JOB_RESPONSE_MAX, 4_288);
        assert_eq!(LogChunk::POSTCARD_MAX_SIZE, 1_057);
    }

    #[test]
    fn largest_requests_fit_their_max_size() {
        let n = round_trip(&JobRequest::Start(largest_spec()), JOB_REQUEST_MAX);
        // The bound is tight: the largest spec is exactly the maximum.
        assert_eq!(n, JOB_REQUEST_MAX);
        round_trip(
            &JobRequest::Logs {
                job_id: u64::MAX,
                stream: Stream::Stderr,
                offset: u64::MAX,
                max: u32::MAX,
            },
            JOB_REQUEST_MAX,
        );
        for req in [
            JobRequest::Stop { job_id: u64::MAX },
            JobRequest::Status { job_id: 1 },
            JobRequest::List { after: 0 },
            JobRequest::Wait { job_id: 7 },
        ] {
            round_trip(&req, JOB_REQUEST_MAX);
        }
    }

    #[test]
    fn largest_responses_fit_their_max_size() {
        let mut entries = Vec::new();
        for _ in 0..LIST_PAGE {
            entries.push(largest_record()).unwrap();
        }
        let jobs: JobReply = Ok(JobResponse::Jobs { entries, more: true });
        assert_eq!(round_trip(&jobs, JOB_RESPONSE_MAX), JOB_RESPONSE_MAX);
        let replies: [JobReply; 8] = [
            Ok(JobResponse::Started { job_id: u64::MAX }),
            Ok(JobResponse::Stopping),
            Ok(JobResponse::Status(largest_record())),
            Ok(JobResponse::Ended(largest_record())),
            Ok(JobResponse::Logs {
                offset: u64::MAX,
                bytes: full_bytes(),
                eof: true,
                ts_ms: Some(u64::MAX),
            }),
            Err(JobError::AlreadyEnded {
                status: JobState::Succeeded,
            }),
            Err(JobError::InvalidSpec {
                what: SpecProblem::ZeroLimit,
            }),
            Err(JobError::NoSuchJob),
        ];
        for reply in &replies {
            round_trip(reply, JOB_RESPONSE_MAX);
        }
        let chunk = LogChunk {
            job_id: u64::MAX,
            stream: Stream::Stdout,
            offset: u64::MAX,
            ts_ms: u64::MAX,
            bytes: full_bytes(),
        };
        assert_eq!(
            round_trip(&chunk, LogChunk::POSTCARD_MAX_SIZE),
            LogChunk::POSTCARD_MAX_SIZE
        );
    }

    #[test]
    fn over_long_fields_do_not_decode() {
        // A name of NAME_MAX + 1 bytes where a spec starts.
        let mut bytes = std::vec![0u8, (NAME_MAX + 1) as u8];
        bytes.extend(std::iter::repeat_n(b'n', NAME_MAX + 1));
        bytes.extend([0, 0, 0, 0, 16, 0x90, 0x4e, 0, 0, 0]);
        assert!(decode::<JobRequest>(&bytes).is_err());
        // Truncations of a valid request.
        let mut buf = std::vec![0u8; JOB_REQUEST_MAX];
        let spec = JobSpec {
            name: JobName::try_from("t").unwrap(),
            entrypoint: Vec::from_slice(&[Arg::try_from("python3").unwrap()]).unwrap(),
            ..JobSpec::default()
        };
        let n = encode(&JobRequest::Start(spec), &mut buf).unwrap().len();
        for cut in 0..n {
            assert!(decode::<JobRequest>(&buf[..cut]).is_err());
        }
    }

    #[test]
    fn state_names_are_ray_style() {
        let names: std::vec::Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "PENDING",
                "RUNNING",
                "SUCCEEDED",
                "FAILED",
                "TIMED_OUT",
                "LOST",
                "STOPPING",
                "STOPPED"
            ]
        );
        for st in JobState::ALL {
            assert_eq!(JobState::parse(st.as_str()), Some(st));
            assert_eq!(JobState::parse(&st.as_str().to_lowercase()), Some(st));
            assert_eq!(st.to_string(), st.as_str());
        }
        assert_eq!(JobState::parse("DONE"), None);
        let terminal: std::vec::Vec<JobState> = JobState::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(
            terminal,
            [
                JobState::Succeeded,
                JobState::Failed,
                JobState::TimedOut,
                JobState::Lost,
                JobState::Stopped
            ]
        );
    }

    #[test]
    fn allowed_transitions() {
        use JobState::*;
        let allowed = [
            (Pending, Running),
            (Pending, Stopping),
            (Pending, Failed),
            (Pending, Lost),
            (Running, Succeeded),
            (Running, Failed),
            (Running, TimedOut),
            (Running, Lost),
            (Running, Stopping),
            (Stopping, Stopped),
            (Stopping, TimedOut),
            (Stopping, Failed),
            (Stopping, Lost),
            (Failed, Pending),
        ];
        // Every pair: exactly the listed ones are allowed.
        for from in JobState::ALL {
            for to in JobState::ALL {
                assert_eq!(from.can_become(to), allowed.contains(&(from, to)), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn forbidden_transitions() {
        use JobState::*;
        for (from, to) in [
            (Pending, Succeeded),
            (Pending, Stopped),
            (Pending, TimedOut),
            (Running, Pending),
            (Running, Stopped),
            (Running, Running),
            (Succeeded, Pending),
            (Succeeded, Running),
            (Stopped, Pending),
            (Stopped, Running),
            (TimedOut, Pending),
            (Lost, Pending),
            (Lost, Running),
            (Stopping, Running),
            (Stopping, Succeeded),
            (Stopping, Pending),
            (Failed, Running),
            (Failed, Stopping),
        ] {
            assert!(!from.can_become(to), "{from} -> {to}");
        }
        // Terminal states lead nowhere but FAILED's retry.
        for from in JobState::ALL.into_iter().filter(|s| s.is_terminal() && *s != Failed) {
            assert!(JobState::ALL.iter().all(|to| !from.can_become(*to)), "{from}");
        }
    }

    #[test]
    fn retries_are_bounded_by_max_retries() {
        // max_retries = 2: attempts 1 and 2 may be retried, attempt 3 not.
        assert!(may_retry(1, 2));
        assert!(may_retry(2, 2));
        assert!(!may_retry(3, 2));
        assert!(!may_retry(1, 0));
        assert!(may_retry(255, 255));
    }

    #[test]
    fn spec_validation() {
        let ok = JobSpec {
            name: JobName::try_from("train").unwrap(),
            entrypoint: Vec::from_slice(&[Arg::try_from("python3").unwrap(), Arg::try_from("t.py").unwrap()]).unwrap(),
            ..JobSpec::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.grace_ms, DEFAULT_GRACE_MS);
        assert_eq!(ok.priority, DEFAULT_PRIORITY);
        assert_eq!(ok.kind, JobKind::Host);
        let check = |f: &dyn Fn(&mut JobSpec)| {
            let mut spec = ok.clone();
            f(&mut spec);
            spec.validate()
        };
        use SpecProblem::*;
        assert_eq!(check(&|s| s.name.clear()), Err(EmptyName));
        assert_eq!(check(&|s| s.entrypoint.clear()), Err(EmptyEntrypoint));
        assert_eq!(check(&|s| s.entrypoint[0].clear()), Err(EmptyEntrypoint));
        assert_eq!(check(&|s| s.entrypoint[1].push('\0').unwrap()), Err(NulByte));
        let env = |k: &str, v: &str| (EnvName::try_from(k).unwrap(), EnvValue::try_from(v).unwrap());
        assert_eq!(check(&|s| s.env.push(env("A", "1")).unwrap()), Ok(()));
        assert_eq!(check(&|s| s.env.push(env("", "1")).unwrap()), Err(BadEnvName));
        assert_eq!(check(&|s| s.env.push(env("A=B", "1")).unwrap()), Err(BadEnvName));
        assert_eq!(check(&|s| s.env.push(env("A", "1\0")).unwrap()), Err(NulByte));
        assert_eq!(check(&|s| s.cwd = Some(String::new())), Err(EmptyCwd));
        assert_eq!(
            check(&|s| s.cwd = Some(String::try_from("/tmp\0").unwrap())),
            Err(NulByte)
        );
        assert_eq!(check(&|s| s.cwd = Some(String::try_from("/tmp").unwrap())), Ok(()));
        assert_eq!(check(&|s| s.priority = 32), Err(BadPriority));
        assert_eq!(check(&|s| s.priority = 31), Ok(()));
        assert_eq!(check(&|s| s.timeout_ms = Some(0)), Err(ZeroLimit));
        assert_eq!(check(&|s| s.stall_ms = Some(0)), Err(ZeroLimit));
        assert_eq!(check(&|s| s.grace_ms = 0), Ok(()));
    }

    #[test]
    fn errors_map_to_http_statuses() {
        assert_eq!(JobError::NoSuchJob.http_status(), 404);
        let ended = JobError::AlreadyEnded {
            status: JobState::Succeeded,
        };
        assert_eq!(ended.http_status(), 409);
        assert_eq!(ended.to_string(), "the job has ended already (SUCCEEDED)");
        let invalid = JobError::InvalidSpec {
            what: SpecProblem::EmptyName,
        };
        assert_eq!(invalid.http_status(), 400);
        assert_eq!(invalid.to_string(), "invalid job spec: the job has no name");
    }
}
