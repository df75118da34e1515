//! `host-bridge shim --job-dir DIR [--cwd D] [--grace-ms N] [--timeout-ms N] -- CMD ARGS..`
//!
//! Started by the supervisor in its own session (`setsid`), with the job's
//! environment (the bridge's, the spec's, `AETHER_JOB_ID` and
//! `AETHER_ARTIFACT_DIR`): the shim passes its environment on unchanged,
//! so no secret from the spec's env appears on a command line.
//!
//! 1. Blocks SIGCHLD, SIGUSR1, SIGTERM, SIGINT and SIGHUP (they are taken
//!    with `sigtimedwait`, no handlers) and becomes a child subreaper.
//! 2. Spawns the job as the leader of a new process group, stdin from
//!    `/dev/null`, stdout and stderr opened in append mode on `DIR/stdout`
//!    and `DIR/stderr` (the job writes them itself). A spawn failure is
//!    written to `exit.json` (`reason: spawn_error`) at once.
//! 3. Writes `shim.json` and the same record as one JSON line on its stdout
//!    (the supervisor's ready pipe), then points its stdout at /dev/null.
//! 4. Waits. A stop request (`DIR/stop`, see [`StopRequest`], signalled by
//!    SIGUSR1; SIGTERM or SIGINT to the shim count as a stop with the
//!    default grace) or the timeout sends SIGTERM to the job's group and to
//!    every descendant outside it, waits until nothing of the job is left or
//!    the grace runs out, then SIGKILLs what is left (`forced`).
//! 5. When the leader has been reaped, SIGKILLs whatever is left (group
//!    members, escaped descendants: they are the shim's descendants in
//!    `/proc`, reparented to it as the subreaper when their parent dies),
//!    reaps until the shim has no child left, and only then writes
//!    `exit.json` atomically.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::procfs;
use crate::records::{self, ExitReason, ExitRecord, Ready, ShimInfo, StopRequest};
use crate::util::{atomic_write_json, now_ms, read_json, send_signal};

/// How long the shim keeps killing and reaping leftovers before it gives
/// up and writes `exit.json` with `cleanup_incomplete`.
const CLEANUP_DEADLINE: Duration = Duration::from_secs(5);
/// The longest the shim sleeps without looking at `DIR/stop` (a safety net:
/// a stop request is signalled with SIGUSR1).
const IDLE_WAKE: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct ShimArgs {
    pub job_dir: PathBuf,
    pub cwd: Option<PathBuf>,
    /// The grace of a timeout, and of SIGTERM/SIGINT sent to the shim.
    pub grace_ms: u64,
    pub timeout_ms: Option<u64>,
    pub argv: Vec<OsString>,
}

/// Runs the shim; returns its exit code (0 once `exit.json` is written,
/// whatever the job did).
pub fn run(args: &ShimArgs) -> i32 {
    let signals = SignalSet::shim();
    signals.block();
    match run_inner(args, &signals) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("host-bridge shim: {e}");
            1
        }
    }
}

fn run_inner(args: &ShimArgs, signals: &SignalSet) -> std::io::Result<()> {
    let dir = &args.job_dir;
    let me = std::process::id() as i32;
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes integers only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        eprintln!(
            "host-bridge shim: PR_SET_CHILD_SUBREAPER: {}",
            std::io::Error::last_os_error()
        );
    }

    let job = match spawn_job(args) {
        Ok(child) => child,
        Err(message) => {
            let record = ExitRecord {
                exit_code: None,
                signal: None,
                ended_ms: now_ms(),
                forced: false,
                reason: ExitReason::SpawnError,
                spawn_error: Some(message.clone()),
                descendants_killed: 0,
                cleanup_incomplete: false,
            };
            atomic_write_json(&dir.join(records::EXIT), &record)?;
            announce(&Ready::SpawnError(message));
            return Ok(());
        }
    };
    let started = Instant::now();
    let job_pid = job.id() as i32;
    // The job is never waited for through `Child`: the shim reaps every
    // child with waitpid(-1), the job included.
    drop(job);
    let info = ShimInfo {
        shim_pid: me,
        shim_start_time: procfs::stat(me).map_or(0, |s| s.start_time),
        job_pid,
        job_start_time: procfs::stat(job_pid).map_or(0, |s| s.start_time),
        started_ms: now_ms(),
    };
    atomic_write_json(&dir.join(records::SHIM_INFO), &info)?;
    announce(&Ready::Started(info));

    let timeout_at = args.timeout_ms.map(|ms| started + Duration::from_millis(ms));
    let mut leader: Option<i32> = None; // the job's wait status, once reaped
    let mut stopping: Option<Stopping> = None;
    let mut forced = false;
    let mut killed = BTreeSet::new();
    let mut term_signal = false;
    loop {
        let reaped = reap(job_pid);
        if let Some(status) = reaped.leader {
            leader = Some(status);
        }
        let now = Instant::now();
        let request = read_json::<StopRequest>(&dir.join(records::STOP)).ok().flatten();
        match &mut stopping {
            None => {
                if leader.is_some() {
                    break;
                }
                let begin = if let Some(req) = request {
                    Some((ExitReason::Stopped, req.grace_ms))
                } else if term_signal {
                    Some((ExitReason::Stopped, args.grace_ms))
                } else if timeout_at.is_some_and(|t| now >= t) {
                    Some((ExitReason::TimedOut, args.grace_ms))
                } else {
                    None
                };
                if let Some((reason, grace_ms)) = begin {
                    signal_job(me, job_pid, libc::SIGTERM, None);
                    stopping = Some(Stopping {
                        reason,
                        deadline: now + Duration::from_millis(grace_ms),
                        killed: false,
                    });
                }
            }
            Some(s) => {
                if let Some(req) = request {
                    s.deadline = s.deadline.min(now + Duration::from_millis(req.grace_ms));
                }
            }
        }
        if let Some(s) = &mut stopping {
            // Done when the leader is reaped and the shim has no child
            // left: every process of the job descends from a child of the
            // shim, so no child means nothing of the job is left.
            if leader.is_some() && (reaped.no_children || s.killed) {
                break;
            }
            if !s.killed && now >= s.deadline {
                s.killed = true;
                forced = signal_job(me, job_pid, libc::SIGKILL, Some(&mut killed));
                continue;
            }
        }
        let wait = match &stopping {
            None => timeout_at.map_or(IDLE_WAKE, |t| t.saturating_duration_since(now).min(IDLE_WAKE)),
            Some(s) if !s.killed => s.deadline.saturating_duration_since(now).min(IDLE_WAKE),
            Some(_) => IDLE_WAKE,
        };
        if let Some(libc::SIGTERM | libc::SIGINT) = signals.wait(wait) {
            term_signal = true;
        }
    }
    let status = leader.unwrap_or(0);
    let cleanup_complete = kill_leftovers(me, job_pid, signals, &mut killed);
    killed.remove(&job_pid);
    let record = ExitRecord {
        exit_code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        ended_ms: now_ms(),
        forced,
        reason: stopping.map_or(ExitReason::Exited, |s| s.reason),
        spawn_error: None,
        descendants_killed: killed.len() as u32,
        cleanup_incomplete: !cleanup_complete,
    };
    atomic_write_json(&dir.join(records::EXIT), &record)
}

struct Stopping {
    reason: ExitReason,
    deadline: Instant,
    /// SIGKILL has been sent.
    killed: bool,
}

fn spawn_job(args: &ShimArgs) -> Result<std::process::Child, String> {
    let dir = &args.job_dir;
    let (program, rest) = args.argv.split_first().ok_or("empty argv")?;
    let open = |name: &str| {
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.join(name))
            .map_err(|e| format!("{}: {e}", dir.join(name).display()))
    };
    let mut cmd = Command::new(program);
    cmd.args(rest)
        .stdin(Stdio::null())
        .stdout(open(records::STDOUT)?)
        .stderr(open(records::STDERR)?)
        // setpgid(0, 0) in the child before exec: the job leads its group.
        .process_group(0);
    if let Some(cwd) = &args.cwd {
        if !cwd.is_dir() {
            return Err(format!(
                "cwd {}: {}",
                cwd.display(),
                std::io::Error::from(std::io::ErrorKind::NotFound)
            ));
        }
        cmd.current_dir(cwd);
    }
    // std resets SIGPIPE in the child but passes the signal mask on: the
    // job must not inherit the signals the shim blocks (a blocked SIGTERM
    // would never reach its handler).
    // SAFETY: the closure runs in the forked child before exec and only
    // calls sigemptyset and sigprocmask, which are async-signal-safe, on a
    // local set.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| format!("{}: {e}", program.to_string_lossy()))
}

/// Writes the ready line to stdout (the supervisor's pipe), then points
/// stdout at /dev/null so the pipe closes and a dead supervisor cannot
/// hurt the shim later.
fn announce(ready: &Ready) {
    let mut line = serde_json::to_vec(ready).unwrap_or_default();
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&line).and_then(|()| out.flush());
    if let Ok(null) = OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 of two open descriptors; fd 1 stays valid (it now
        // refers to /dev/null) for the rest of the process.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}

/// Sends `sig` to the job's process group and to every live descendant of
/// the shim outside it (escaped with `setsid` or reparented to the shim).
/// With `killed`, records the pids signalled. True if any process received it.
fn signal_job(me: i32, job_pid: i32, sig: i32, mut killed: Option<&mut BTreeSet<i32>>) -> bool {
    // The snapshot comes first: once the group is signalled its members
    // may be gone before /proc is read.
    let descendants = procfs::descendants(me);
    let mut any = send_signal(-job_pid, sig);
    for p in descendants.iter().filter(|p| !p.is_dead()) {
        if p.pgrp != job_pid && send_signal(p.pid, sig) {
            any = true;
        }
        if let Some(k) = killed.as_deref_mut() {
            k.insert(p.pid);
        }
    }
    any
}

/// SIGKILLs everything left of the job and reaps until the shim has no
/// child. False if that did not happen within [`CLEANUP_DEADLINE`].
fn kill_leftovers(me: i32, job_pid: i32, signals: &SignalSet, killed: &mut BTreeSet<i32>) -> bool {
    let deadline = Instant::now() + CLEANUP_DEADLINE;
    loop {
        if reap(job_pid).no_children {
            return true;
        }
        signal_job(me, job_pid, libc::SIGKILL, Some(killed));
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        // Woken by SIGCHLD as soon as a child dies; the short cap covers a
        // grandchild that dies before its parent (no SIGCHLD to the shim).
        signals.wait(deadline.saturating_duration_since(now).min(Duration::from_millis(20)));
    }
}

struct Reaped {
    /// The job leader's wait status, if it was reaped now.
    leader: Option<i32>,
    /// waitpid reported that the shim has no children at all.
    no_children: bool,
}

/// Reaps every child that has exited (the job and any orphan reparented
/// to the shim) without blocking.
fn reap(job_pid: i32) -> Reaped {
    let mut out = Reaped {
        leader: None,
        no_children: false,
    };
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a local c_int.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            if pid == job_pid {
                out.leader = Some(status);
            }
            continue;
        }
        if pid < 0 {
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => out.no_children = true,
                _ => {}
            }
        }
        return out;
    }
}

/// The signals the shim takes synchronously.
struct SignalSet(libc::sigset_t);

impl SignalSet {
    fn shim() -> SignalSet {
        // SAFETY: sigemptyset/sigaddset initialise and fill a local
        // sigset_t; zeroed memory is a valid starting value for it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in [libc::SIGCHLD, libc::SIGUSR1, libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                libc::sigaddset(&mut set, sig);
            }
            SignalSet(set)
        }
    }

    /// Blocks the set in this (single-threaded) process so the signals stay
    /// pending until [`SignalSet::wait`] takes them.
    fn block(&self) {
        // SAFETY: the set is initialised; the old mask is not requested.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &self.0, std::ptr::null_mut()) };
    }

    /// Waits up to `timeout` for one of the signals; `None` on timeout.
    fn wait(&self, timeout: Duration) -> Option<i32> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        // SAFETY: the set and timespec are initialised locals; a null
        // siginfo pointer is allowed.
        let sig = unsafe { libc::sigtimedwait(&self.0, std::ptr::null_mut(), &ts) };
        (sig > 0).then_some(sig)
    }
}

/// The job directory's path for a job id under a state directory.
pub fn job_dir(state_dir: &Path, job_id: u64) -> PathBuf {
    state_dir.join("jobs").join(job_id.to_string())
}
