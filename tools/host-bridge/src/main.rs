//! `host-bridge`: the Linux host bridge (docs/jobs.md).
//!
//! * `host-bridge shim --job-dir DIR [--cwd D] [--grace-ms N] [--timeout-ms N] -- CMD ARGS..`:
//!   one job's shim (started by the supervisor; see `host_bridge::shim`).
//! * `host-bridge run --state-dir DIR [--job-id N] [--env K=V].. -- CMD ARGS..`:
//!   runs one job under a supervisor in the foreground, printing its output
//!   and metric points; Ctrl-C stops it (SIGTERM, grace, SIGKILL). Exits
//!   with the job's exit code (128 + signal if a signal ended it).
//!
//! The HTTP API and the link come next.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use host_bridge::{DEFAULT_GRACE_MS, Event, JobSpec, Stream, Supervisor, shim};

#[derive(Parser)]
#[command(name = "host-bridge", about = "The AetherOS host bridge: runs host jobs under shims")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one job (used by the supervisor, which starts it with setsid).
    Shim {
        #[arg(long)]
        job_dir: PathBuf,
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// Grace between SIGTERM and SIGKILL for a timeout or a SIGTERM to the shim.
        #[arg(long, default_value_t = DEFAULT_GRACE_MS)]
        grace_ms: u64,
        #[arg(long)]
        timeout_ms: Option<u64>,
        #[arg(last = true, required = true)]
        argv: Vec<OsString>,
    },
    /// Run one job in the foreground under a supervisor.
    Run {
        #[arg(long)]
        state_dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        job_id: u64,
        #[arg(long)]
        cwd: Option<String>,
        /// KEY=VALUE, repeatable.
        #[arg(long = "env", value_parser = parse_env)]
        env: Vec<(String, String)>,
        #[arg(long, default_value_t = DEFAULT_GRACE_MS)]
        grace_ms: u64,
        #[arg(long)]
        timeout_ms: Option<u64>,
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or("expected KEY=VALUE")?;
    Ok((k.to_string(), v.to_string()))
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::Shim {
            job_dir,
            cwd,
            grace_ms,
            timeout_ms,
            argv,
        } => {
            let code = shim::run(&shim::ShimArgs {
                job_dir,
                cwd,
                grace_ms,
                timeout_ms,
                argv,
            });
            ExitCode::from(code as u8)
        }
        Cmd::Run {
            state_dir,
            job_id,
            cwd,
            env,
            grace_ms,
            timeout_ms,
            argv,
        } => {
            let spec = JobSpec {
                argv,
                env,
                cwd,
                grace_ms,
                timeout_ms,
            };
            match run(state_dir, job_id, &spec) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("host-bridge: {e}");
                    ExitCode::from(125)
                }
            }
        }
    }
}

fn run(state_dir: PathBuf, job_id: u64, spec: &JobSpec) -> Result<u8, host_bridge::Error> {
    // SIGINT/SIGTERM are blocked and taken synchronously between polls.
    // SAFETY: a local sigset_t initialised by sigemptyset/sigaddset, then
    // installed as this (single-threaded) process's mask; sigtimedwait
    // reads it with a zero timeout and a null siginfo pointer.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let pending_stop = || {
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: see above; all pointers are to initialised locals.
        unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) > 0 }
    };
    let mut sup = Supervisor::new(state_dir)?;
    let started = sup.start(job_id, spec)?;
    eprintln!(
        "host-bridge: job {job_id} runs as pid {} (shim {})",
        started.pid, started.shim_pid
    );
    loop {
        if pending_stop() {
            eprintln!("host-bridge: stopping job {job_id} (grace {} ms)", spec.grace_ms);
            sup.stop(job_id, spec.grace_ms)?;
        }
        for event in sup.poll_wait(Duration::from_millis(100)) {
            match event {
                Event::Log {
                    stream: Stream::Stdout,
                    bytes,
                    ..
                } => {
                    let _ = std::io::stdout().write_all(&bytes);
                    let _ = std::io::stdout().flush();
                }
                Event::Log {
                    stream: Stream::Stderr,
                    bytes,
                    ..
                } => {
                    let _ = std::io::stderr().write_all(&bytes);
                }
                Event::Metric(m) => eprintln!(
                    "host-bridge: metric {} = {} (step {:?}) {:?}",
                    m.name, m.value, m.step, m.tags
                ),
                Event::MalformedMetric { offset, error, .. } => {
                    eprintln!("host-bridge: malformed metric line at stdout offset {offset}: {error}")
                }
                Event::Warning { message, .. } => eprintln!("host-bridge: warning: {message}"),
                Event::Lost { message, .. } => {
                    eprintln!("host-bridge: job lost: {message}");
                    return Ok(125);
                }
                Event::Exited {
                    exit_code,
                    signal,
                    forced,
                    reason,
                    ..
                } => {
                    eprintln!(
                        "host-bridge: job {job_id} ended: {reason:?}, code {exit_code:?}, signal {signal:?}, forced {forced}"
                    );
                    sup.forget(job_id)?;
                    return Ok(match (exit_code, signal) {
                        (Some(c), _) => c as u8,
                        (None, Some(s)) => 128u8.wrapping_add(s as u8),
                        _ => 125,
                    });
                }
            }
        }
    }
}
