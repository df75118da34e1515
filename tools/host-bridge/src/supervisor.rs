//! The supervisor: starts jobs under shims, stops them, and turns what the
//! shims leave in the job directories into events.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::artifacts::announce::{self, Announce};
use crate::metric::{self, JobMetric, Line, LineSplitter};
use crate::procfs;
use crate::records::{self, ExitReason, ExitRecord, Ready, ShimInfo, StopRequest};
use crate::shim::job_dir;
use crate::state::{self, Ended, JobEntry, StateFile};
use crate::util::{atomic_write_json, now_ms, read_json, send_signal};

/// The default grace between SIGTERM and SIGKILL (docs/jobs.md: 10 s).
pub const DEFAULT_GRACE_MS: u64 = 10_000;
/// The most bytes of one stream of one job a single `poll` delivers.
pub const LOG_CHUNK_MAX: usize = 64 * 1024;
/// How long a new supervisor waits for the state directory's lock.
const LOCK_WAIT: Duration = Duration::from_millis(500);
/// How long `start` waits for the shim's ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// What to run. Field names follow the ABI's `JobSpec` (docs/jobs.md);
/// plain Rust types until the bridge is adapted to `aether_abi::job`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The program (looked up in `PATH`) and its arguments.
    pub argv: Vec<String>,
    /// Added to (or overriding) the bridge's environment.
    pub env: Vec<(String, String)>,
    /// The job's working directory; relative to the bridge's, which is the
    /// default.
    pub cwd: Option<String>,
    /// Between SIGTERM and SIGKILL on a timeout (a stop names its own).
    pub grace_ms: u64,
    /// Stopped (reason `timed_out`) after this long.
    pub timeout_ms: Option<u64>,
}

impl JobSpec {
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> JobSpec {
        JobSpec {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: None,
            grace_ms: DEFAULT_GRACE_MS,
            timeout_ms: None,
        }
    }
}

/// A job that runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Started {
    /// The job's pid (= its process group id).
    pub pid: i32,
    pub shim_pid: i32,
    pub started_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn file(self) -> &'static str {
        match self {
            Stream::Stdout => records::STDOUT,
            Stream::Stderr => records::STDERR,
        }
    }
}

/// What `poll` reports. For one job, the events come in order: log bytes
/// (each stream's offsets contiguous), the metric points of the stdout
/// lines they complete, and last, once both streams are delivered to
/// their end, `Exited` or `Lost`.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// New bytes of a stream, starting at `offset`.
    Log {
        job_id: u64,
        stream: Stream,
        offset: u64,
        bytes: Vec<u8>,
    },
    Metric(JobMetric),
    /// A stdout line that tried to be a metric line (counted; it stays in
    /// the log).
    MalformedMetric {
        job_id: u64,
        offset: u64,
        error: String,
    },
    /// A stdout line announcing a file (`{"aether_artifact": ...}`).
    Artifact {
        job_id: u64,
        offset: u64,
        announce: Box<Announce>,
    },
    /// A stdout line that tried to announce one; why it does not.
    MalformedArtifact {
        job_id: u64,
        offset: u64,
        error: String,
    },
    Exited {
        job_id: u64,
        exit_code: Option<i32>,
        signal: Option<i32>,
        forced: bool,
        ended_ms: u64,
        reason: ExitReason,
        spawn_error: Option<String>,
    },
    /// The shim died without recording how the job ended (what was left of
    /// the job has been killed).
    Lost {
        job_id: u64,
        message: String,
    },
    /// Something the supervisor could not do (a state file write, a log
    /// read); it tries again on the next poll.
    Warning {
        job_id: Option<u64>,
        message: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    /// Running, a stop has been requested.
    Stopping,
    Exited,
    Lost,
}

/// A job as the supervisor knows it (as of the last `poll`).
#[derive(Clone, Debug, PartialEq)]
pub struct JobStatus {
    pub job_id: u64,
    pub state: JobState,
    pub pid: i32,
    pub shim_pid: i32,
    pub started_ms: u64,
    pub stop_requested_ms: Option<u64>,
    pub exit: Option<ExitRecord>,
    pub lost: Option<String>,
    /// Bytes of each stream delivered by `poll` so far.
    pub stdout_offset: u64,
    pub stderr_offset: u64,
    pub metrics: u64,
    pub malformed_metrics: u64,
    pub job_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("job {0} already exists")]
    AlreadyExists(u64),
    #[error("no job {0}")]
    NotFound(u64),
    #[error("job {0} has not ended")]
    NotEnded(u64),
    #[error("invalid job spec: {0}")]
    InvalidSpec(String),
    /// The command could not be started (not found, not executable, bad
    /// cwd): the shim's `spawn_error`.
    #[error("could not start the command: {0}")]
    Spawn(String),
    /// The shim itself failed.
    #[error("shim: {0}")]
    Shim(String),
    #[error("state directory {0} is in use by another supervisor")]
    Busy(PathBuf),
    #[error("state file {path}: {message}")]
    State { path: PathBuf, message: String },
    #[error(transparent)]
    Io(#[from] io::Error),
}

struct Job {
    entry: JobEntry,
    /// The shim, if this supervisor started it (to reap it when it exits).
    shim: Option<Child>,
    lines: LineSplitter,
    /// `Exited`/`Lost` has been reported by this supervisor.
    reported: bool,
}

/// Runs host jobs under shims; see the crate docs and docs/jobs.md.
///
/// One supervisor per state directory at a time (an exclusive `flock` on
/// `state_dir/lock`). Dropping it leaves the shims and jobs running; a new
/// supervisor on the same directory re-adopts them.
pub struct Supervisor {
    state_dir: PathBuf,
    shim_exe: PathBuf,
    jobs: BTreeMap<u64, Job>,
    /// The opsd incarnation the jobs belong to (kept in the state file).
    owner: Option<u64>,
    /// Shims of failed starts, reaped in `poll`.
    spent: Vec<Child>,
    dirty: bool,
    _lock: File,
}

impl Supervisor {
    /// A supervisor whose shims are this executable (`host-bridge shim`).
    pub fn new(state_dir: impl Into<PathBuf>) -> Result<Supervisor, Error> {
        Supervisor::with_shim_exe(state_dir, std::env::current_exe()?)
    }

    /// A supervisor whose shims are `shim_exe shim ...` (tests use the
    /// built `host-bridge` binary).
    pub fn with_shim_exe(state_dir: impl Into<PathBuf>, shim_exe: impl Into<PathBuf>) -> Result<Supervisor, Error> {
        let state_dir = state_dir.into();
        std::fs::create_dir_all(state_dir.join("jobs"))?;
        let state_dir = state_dir.canonicalize()?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(state_dir.join("lock"))?;
        // A lock just released by a dropped supervisor can still be held
        // for a moment by a child forked (by any thread) before its exec
        // closes the descriptor: retry briefly before calling it busy.
        let deadline = Instant::now() + LOCK_WAIT;
        // SAFETY: flock on a descriptor we own; no memory is passed.
        while unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            if Instant::now() >= deadline {
                return Err(Error::Busy(state_dir));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let path = state_dir.join(state::STATE_FILE);
        let file: StateFile = read_json(&path)
            .map_err(|e| Error::State {
                path: path.clone(),
                message: e.to_string(),
            })?
            .unwrap_or_default();
        if !file.jobs.is_empty() && file.version != state::VERSION {
            return Err(Error::State {
                path,
                message: format!("version {} (expected {})", file.version, state::VERSION),
            });
        }
        let mut sup = Supervisor {
            state_dir,
            shim_exe: shim_exe.into(),
            jobs: BTreeMap::new(),
            owner: file.owner,
            spent: Vec::new(),
            dirty: true,
            _lock: lock,
        };
        for entry in file.jobs {
            let job = adopt(entry);
            sup.jobs.insert(job.entry.job_id, job);
        }
        sup.save()?;
        Ok(sup)
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The job's directory (its logs, records and `artifacts/`).
    pub fn job_dir(&self, job_id: u64) -> PathBuf {
        job_dir(&self.state_dir, job_id)
    }

    /// Starts a job under a new shim and returns once it runs (or failed
    /// to start: [`Error::Spawn`]; its `exit.json` stays in the job
    /// directory, the job is not tracked). A job id may be reused once the
    /// old job has been [forgotten](Supervisor::forget).
    pub fn start(&mut self, job_id: u64, spec: &JobSpec) -> Result<Started, Error> {
        if self.jobs.contains_key(&job_id) {
            return Err(Error::AlreadyExists(job_id));
        }
        if spec.argv.first().is_none_or(String::is_empty) {
            return Err(Error::InvalidSpec("argv is empty".into()));
        }
        let cwd = std::env::current_dir()?.join(spec.cwd.as_deref().unwrap_or("."));
        let dir = self.job_dir(job_id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let artifacts = dir.join(records::ARTIFACTS);
        std::fs::create_dir_all(&artifacts)?;
        atomic_write_json(&dir.join(records::SPEC), spec)?;
        let shim_log = File::create(dir.join(records::SHIM_LOG))?;

        // On record before the shim exists: a crash from here on leaves a
        // job that the next supervisor resolves (shim.json, exit.json, or
        // LOST), never one that is forgotten.
        self.jobs.insert(job_id, Job::new(JobEntry::new(job_id, dir.clone())));
        self.dirty = true;
        if let Err(e) = self.save() {
            self.jobs.remove(&job_id);
            return Err(e.into());
        }

        let mut cmd = Command::new(&self.shim_exe);
        cmd.arg("shim").arg("--job-dir").arg(&dir).arg("--cwd").arg(&cwd);
        cmd.arg("--grace-ms").arg(spec.grace_ms.to_string());
        if let Some(t) = spec.timeout_ms {
            cmd.arg("--timeout-ms").arg(t.to_string());
        }
        cmd.arg("--").args(&spec.argv);
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v)))
            .env("AETHER_JOB_ID", job_id.to_string())
            .env("AETHER_ARTIFACT_DIR", &artifacts)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(shim_log);
        // SAFETY: the closure runs in the forked child before exec and only
        // calls setsid, sigemptyset and sigprocmask (async-signal-safe) on a
        // local set. The mask is cleared because std passes it on (the
        // shim blocks what it needs itself).
        unsafe {
            cmd.pre_exec(|| {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                if libc::setsid() < 0 || libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut shim = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                self.drop_entry(job_id);
                return Err(Error::Shim(format!("{}: {e}", self.shim_exe.display())));
            }
        };
        match read_ready(&mut shim) {
            Ok(Ready::Started(info)) => {
                let job = self.jobs.get_mut(&job_id).expect("inserted above");
                job.entry.fill(&info);
                job.shim = Some(shim);
                self.dirty = true;
                // The job runs whatever happens to this write; a failure is
                // retried (and reported as a warning) by the next poll.
                let _ = self.save();
                Ok(Started {
                    pid: info.job_pid,
                    shim_pid: info.shim_pid,
                    started_ms: info.started_ms,
                })
            }
            Ok(Ready::SpawnError(message)) => {
                self.spent.push(shim);
                self.drop_entry(job_id);
                Err(Error::Spawn(message))
            }
            Err(message) => {
                let _ = shim.kill();
                let _ = shim.wait();
                self.drop_entry(job_id);
                let log = std::fs::read_to_string(dir.join(records::SHIM_LOG)).unwrap_or_default();
                Err(Error::Shim(format!("{message}; shim.log: {}", log.trim())))
            }
        }
    }

    fn drop_entry(&mut self, job_id: u64) {
        self.jobs.remove(&job_id);
        self.dirty = true;
        let _ = self.save();
    }

    /// Asks the job's shim to stop it: SIGTERM to the job's group (and its
    /// escaped descendants), `grace_ms`, then SIGKILL. Returns at once;
    /// the end comes as `Exited{reason: Stopped}` from `poll`. A second
    /// stop can shorten the grace. Stopping an ended job does nothing.
    pub fn stop(&mut self, job_id: u64, grace_ms: u64) -> Result<(), Error> {
        let job = self.jobs.get_mut(&job_id).ok_or(Error::NotFound(job_id))?;
        if job.entry.ended.is_some() {
            return Ok(());
        }
        let now = now_ms();
        let request = StopRequest {
            grace_ms,
            requested_ms: now,
        };
        atomic_write_json(&job.entry.job_dir.join(records::STOP), &request)?;
        job.entry.stop_requested_ms.get_or_insert(now);
        let (pid, start) = (job.entry.shim_pid, job.entry.shim_start_time);
        self.dirty = true;
        self.save()?;
        if procfs::is_alive(pid, start) {
            send_signal(pid, libc::SIGUSR1);
        }
        Ok(())
    }

    /// Asks every running job's shim to stop it with the job's own grace
    /// (SIGTERM to the shim: docs/jobs.md, "Stop"): the bridge shutting
    /// down for good. Returns the ids asked; their ends come from `poll`.
    pub fn stop_all(&mut self) -> Vec<u64> {
        let now = now_ms();
        let mut asked = Vec::new();
        for job in self.jobs.values_mut().filter(|j| j.entry.ended.is_none()) {
            let (pid, start) = (job.entry.shim_pid, job.entry.shim_start_time);
            if procfs::is_alive(pid, start) && send_signal(pid, libc::SIGTERM) {
                job.entry.stop_requested_ms.get_or_insert(now);
                asked.push(job.entry.job_id);
            }
        }
        if !asked.is_empty() {
            self.dirty = true;
            let _ = self.save();
        }
        asked
    }

    /// The opsd incarnation the jobs belong to.
    pub fn owner(&self) -> Option<u64> {
        self.owner
    }

    /// Records the opsd incarnation the jobs belong to from now on.
    pub fn set_owner(&mut self, owner: u64) -> Result<(), Error> {
        if self.owner != Some(owner) {
            self.owner = Some(owner);
            self.dirty = true;
            self.save()?;
        }
        Ok(())
    }

    /// Jobs whose end has not been seen yet.
    pub fn live(&self) -> usize {
        self.jobs.values().filter(|j| j.entry.ended.is_none()).count()
    }

    /// Reads up to `max` bytes of a job's stream from `offset` (any offset:
    /// this is also how a gap is resent). `eof`: the read reached the end
    /// of the stream and the job has ended, so no more bytes will come.
    pub fn read_log(&self, job_id: u64, stream: Stream, offset: u64, max: usize) -> Result<(Vec<u8>, bool), Error> {
        let job = self.jobs.get(&job_id).ok_or(Error::NotFound(job_id))?;
        let (bytes, len) = read_at(&job.entry.job_dir.join(stream.file()), offset, max)?;
        let eof = job.entry.ended.is_some() && offset + bytes.len() as u64 >= len;
        Ok((bytes, eof))
    }

    /// What happened since the last poll: new log bytes, metric points,
    /// exits and losses. Never blocks (beyond reading files).
    pub fn poll(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        self.spent.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
        for job in self.jobs.values_mut() {
            if job.poll(&mut events) {
                self.dirty = true;
            }
        }
        if let Err(e) = self.save() {
            events.push(Event::Warning {
                job_id: None,
                message: format!("writing the state file: {e}"),
            });
        }
        events
    }

    /// Polls until there is at least one event or `timeout` has passed.
    pub fn poll_wait(&mut self, timeout: Duration) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.poll();
            if !events.is_empty() || Instant::now() >= deadline {
                return events;
            }
            std::thread::sleep(Duration::from_millis(10).min(deadline.saturating_duration_since(Instant::now())));
        }
    }

    pub fn status(&self, job_id: u64) -> Option<JobStatus> {
        self.jobs.get(&job_id).map(Job::status)
    }

    /// Every tracked job, by id.
    pub fn jobs(&self) -> Vec<JobStatus> {
        self.jobs.values().map(Job::status).collect()
    }

    /// Drops an ended job from the state file and deletes its directory
    /// (once the layer above has recorded its end and its logs). Until
    /// then, every new supervisor reports the end again.
    pub fn forget(&mut self, job_id: u64) -> Result<(), Error> {
        let job = self.jobs.get(&job_id).ok_or(Error::NotFound(job_id))?;
        if job.entry.ended.is_none() {
            return Err(Error::NotEnded(job_id));
        }
        let dir = job.entry.job_dir.clone();
        self.jobs.remove(&job_id);
        self.dirty = true;
        self.save()?;
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn save(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let file = StateFile {
            version: state::VERSION,
            owner: self.owner,
            jobs: self.jobs.values().map(|j| j.entry.clone()).collect(),
        };
        atomic_write_json(&self.state_dir.join(state::STATE_FILE), &file)?;
        self.dirty = false;
        Ok(())
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.save();
    }
}

impl JobEntry {
    fn new(job_id: u64, job_dir: PathBuf) -> JobEntry {
        JobEntry {
            job_id,
            job_dir,
            shim_pid: 0,
            shim_start_time: 0,
            pid: 0,
            job_start_time: 0,
            started_ms: 0,
            stdout_offset: 0,
            stderr_offset: 0,
            metric_offset: 0,
            stop_requested_ms: None,
            metrics: 0,
            malformed_metrics: 0,
            ended: None,
        }
    }

    fn fill(&mut self, info: &ShimInfo) {
        self.shim_pid = info.shim_pid;
        self.shim_start_time = info.shim_start_time;
        self.pid = info.job_pid;
        self.job_start_time = info.job_start_time;
        self.started_ms = info.started_ms;
    }

    fn offset_mut(&mut self, stream: Stream) -> &mut u64 {
        match stream {
            Stream::Stdout => &mut self.stdout_offset,
            Stream::Stderr => &mut self.stderr_offset,
        }
    }
}

/// A job from the state file of an earlier supervisor: running (its shim
/// is alive with the recorded start time), exited (`exit.json`) or lost.
fn adopt(mut entry: JobEntry) -> Job {
    if entry.shim_pid == 0
        && let Ok(Some(info)) = read_json::<ShimInfo>(&entry.job_dir.join(records::SHIM_INFO))
    {
        entry.fill(&info);
    }
    // Re-read the unfinished stdout line so metric parsing goes on where
    // it stopped.
    let pending = entry.stdout_offset.saturating_sub(entry.metric_offset);
    let head = match pending {
        0 => Vec::new(),
        _ => read_at(
            &entry.job_dir.join(records::STDOUT),
            entry.metric_offset,
            pending.min(metric::MAX_LINE as u64 + 1) as usize,
        )
        .map_or(Vec::new(), |(bytes, _)| bytes),
    };
    let lines = LineSplitter::resume(entry.metric_offset, &head, pending);
    if entry.ended.is_none() {
        entry.ended = check_end(&entry);
    }
    Job {
        entry,
        shim: None,
        lines,
        reported: false,
    }
}

impl Job {
    fn new(entry: JobEntry) -> Job {
        let lines = LineSplitter::at(entry.metric_offset);
        Job {
            entry,
            shim: None,
            lines,
            reported: false,
        }
    }

    fn status(&self) -> JobStatus {
        let e = &self.entry;
        let (state, exit, lost) = match &e.ended {
            Some(Ended::Exited(r)) => (JobState::Exited, Some(r.clone()), None),
            Some(Ended::Lost { message, .. }) => (JobState::Lost, None, Some(message.clone())),
            None if e.stop_requested_ms.is_some() => (JobState::Stopping, None, None),
            None => (JobState::Running, None, None),
        };
        JobStatus {
            job_id: e.job_id,
            state,
            pid: e.pid,
            shim_pid: e.shim_pid,
            started_ms: e.started_ms,
            stop_requested_ms: e.stop_requested_ms,
            exit,
            lost,
            stdout_offset: e.stdout_offset,
            stderr_offset: e.stderr_offset,
            metrics: e.metrics,
            malformed_metrics: e.malformed_metrics,
            job_dir: e.job_dir.clone(),
        }
    }

    /// One job's part of `poll`; true if its entry changed.
    fn poll(&mut self, events: &mut Vec<Event>) -> bool {
        if self.reported {
            return false;
        }
        let job_id = self.entry.job_id;
        let mut changed = false;
        if let Some(shim) = &mut self.shim
            && !matches!(shim.try_wait(), Ok(None))
        {
            self.shim = None;
        }
        // Whether the job has ended is decided before its logs are read:
        // once it has, the files are complete and reading them to their
        // end delivers everything.
        if self.entry.ended.is_none() {
            self.entry.ended = check_end(&self.entry);
            changed |= self.entry.ended.is_some();
        }
        let mut complete = true;
        for stream in [Stream::Stdout, Stream::Stderr] {
            let offset = *self.entry.offset_mut(stream);
            let (bytes, len) = match read_at(&self.entry.job_dir.join(stream.file()), offset, LOG_CHUNK_MAX) {
                Ok(r) => r,
                Err(e) => {
                    events.push(Event::Warning {
                        job_id: Some(job_id),
                        message: format!("{stream:?}: {e}"),
                    });
                    complete = false;
                    continue;
                }
            };
            if offset + (bytes.len() as u64) < len {
                complete = false;
            }
            if bytes.is_empty() {
                continue;
            }
            *self.entry.offset_mut(stream) += bytes.len() as u64;
            changed = true;
            let mut found = Vec::new();
            if stream == Stream::Stdout {
                self.lines
                    .feed(&bytes, |offset, line| found.push(classify(job_id, offset, line)));
            }
            events.push(Event::Log {
                job_id,
                stream,
                offset,
                bytes,
            });
            self.push_metrics(found, events);
        }
        if complete && let Some(ended) = &self.entry.ended {
            let ended = ended.clone();
            let mut found = Vec::new();
            self.lines
                .finish(|offset, line| found.push(classify(job_id, offset, line)));
            self.push_metrics(found, events);
            events.push(match ended {
                Ended::Exited(r) => Event::Exited {
                    job_id,
                    exit_code: r.exit_code,
                    signal: r.signal,
                    forced: r.forced,
                    ended_ms: r.ended_ms,
                    reason: r.reason,
                    spawn_error: r.spawn_error,
                },
                Ended::Lost { message, .. } => Event::Lost { job_id, message },
            });
            self.reported = true;
            changed = true;
        }
        if self.entry.metric_offset != self.lines.line_start() {
            self.entry.metric_offset = self.lines.line_start();
            changed = true;
        }
        changed
    }

    fn push_metrics(&mut self, found: Vec<Option<Event>>, events: &mut Vec<Event>) {
        for event in found.into_iter().flatten() {
            match &event {
                Event::Metric(_) => self.entry.metrics += 1,
                Event::MalformedMetric { .. } => self.entry.malformed_metrics += 1,
                _ => {}
            }
            events.push(event);
        }
    }
}

fn classify(job_id: u64, offset: u64, line: &[u8]) -> Option<Event> {
    match metric::classify(line) {
        Line::Log => match announce::classify(line)? {
            Ok(a) => Some(Event::Artifact {
                job_id,
                offset,
                announce: Box::new(a),
            }),
            Err(error) => Some(Event::MalformedArtifact { job_id, offset, error }),
        },
        Line::Metric(point) => Some(Event::Metric(JobMetric { job_id, offset, point })),
        Line::Malformed(error) => Some(Event::MalformedMetric { job_id, offset, error }),
    }
}

/// Has the job ended? `exit.json` says how; a shim that is gone without
/// one means the job is lost (and what is left of it is killed).
fn check_end(entry: &JobEntry) -> Option<Ended> {
    let exit_path = entry.job_dir.join(records::EXIT);
    let read_exit = || match read_json::<ExitRecord>(&exit_path) {
        Ok(r) => r.map(Ended::Exited),
        Err(e) => Some(Ended::Lost {
            detected_ms: now_ms(),
            message: format!("unreadable exit record: {e}"),
        }),
    };
    if let Some(ended) = read_exit() {
        return Some(ended);
    }
    if entry.shim_pid != 0 && procfs::is_alive(entry.shim_pid, entry.shim_start_time) {
        return None;
    }
    reap_if_child(entry.shim_pid, entry.shim_start_time);
    // The shim writes exit.json before it exits: look again now that it is
    // known to be gone.
    if let Some(ended) = read_exit() {
        return Some(ended);
    }
    let killed = kill_remains(entry);
    let who = if entry.shim_pid == 0 {
        "never reported".to_string()
    } else {
        format!("(pid {}) died", entry.shim_pid)
    };
    Some(Ended::Lost {
        detected_ms: now_ms(),
        message: format!("the shim {who} without recording the job's end; {killed} leftover process(es) killed"),
    })
}

/// A lost job's leftovers: its process group, if its leader still runs,
/// and any process carrying its `AETHER_JOB_ID` and `AETHER_ARTIFACT_DIR`
/// (escaped descendants are no longer reachable through the dead shim).
fn kill_remains(entry: &JobEntry) -> usize {
    let id = entry.job_id.to_string();
    let artifacts = entry.job_dir.join(records::ARTIFACTS);
    // Who is there is read before anything is killed: a process killed a
    // moment ago may still look alive to a later scan.
    let mut victims: BTreeSet<i32> = match artifacts.to_str() {
        Some(a) => procfs::with_env(&[("AETHER_JOB_ID", &id), ("AETHER_ARTIFACT_DIR", a)])
            .into_iter()
            .collect(),
        None => BTreeSet::new(),
    };
    let leader_alive = entry.pid > 0 && procfs::is_alive(entry.pid, entry.job_start_time);
    if leader_alive {
        victims.extend(
            procfs::all()
                .iter()
                .filter(|p| p.pgrp == entry.pid && !p.is_dead())
                .map(|p| p.pid),
        );
        send_signal(-entry.pid, libc::SIGKILL);
    }
    for &pid in &victims {
        send_signal(pid, libc::SIGKILL);
    }
    victims.len()
}

/// Reaps `pid` if it is a zombie child of this process (a shim started by
/// an earlier supervisor in the same process) with the recorded start time.
fn reap_if_child(pid: i32, start_time: u64) {
    if procfs::stat(pid).is_some_and(|s| s.start_time == start_time && s.is_dead()) {
        let mut status = 0;
        // SAFETY: waitpid writes into a local c_int; for a pid that is not
        // our child it fails with ECHILD and changes nothing.
        unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    }
}

/// Reads up to `max` bytes at `offset`; also returns the file's length. A
/// missing file is empty.
fn read_at(path: &Path, offset: u64, max: usize) -> io::Result<(Vec<u8>, u64)> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if offset >= len {
        return Ok((Vec::new(), len));
    }
    f.seek(SeekFrom::Start(offset))?;
    let want = (len - offset).min(max as u64) as usize;
    let mut buf = Vec::with_capacity(want);
    f.take(want as u64).read_to_end(&mut buf)?;
    Ok((buf, len))
}

/// Reads the shim's ready line from its stdout pipe, waiting at most
/// [`READY_TIMEOUT`].
fn read_ready(shim: &mut Child) -> Result<Ready, String> {
    let mut out = shim.stdout.take().ok_or("no stdout pipe")?;
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut buf = Vec::new();
    loop {
        if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            return serde_json::from_slice(&buf[..nl]).map_err(|e| format!("bad ready line: {e}"));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no ready line within {READY_TIMEOUT:?}"));
        }
        let mut pfd = libc::pollfd {
            fd: out.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one initialised pollfd, count 1.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        if r == 0 {
            continue;
        }
        let mut chunk = [0u8; 4096];
        match out.read(&mut chunk) {
            Ok(0) => return Err("the shim exited without a ready line".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading the ready line: {e}")),
        }
    }
}
