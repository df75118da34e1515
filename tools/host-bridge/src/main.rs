//! `host-bridge`: the Linux host bridge (docs/jobs.md).
//!
//! * `host-bridge shim --job-dir DIR [--cwd D] [--grace-ms N] [--timeout-ms N] -- CMD ARGS..`:
//!   one job's shim (started by the supervisor; see `host_bridge::shim`).
//! * `host-bridge run --state-dir DIR [--job-id N] [--env K=V].. -- CMD ARGS..`:
//!   runs one job under a supervisor in the foreground, printing its output
//!   and metric points; Ctrl-C stops it (SIGTERM, grace, SIGKILL). Exits
//!   with the job's exit code (128 + signal if a signal ended it).
//! * `host-bridge serve --shm PATH --state-dir DIR`: the bridge proper:
//!   waits for the guest to lay out the shared region (QEMU's
//!   `memory-backend-file` at PATH), then runs opsd's jobs over the link,
//!   polling about every millisecond. Jobs survive the bridge; a new one on
//!   the same state directory re-adopts them.
//!
//!   The HTTP API (docs/http-api.yaml) listens on 127.0.0.1:`--port`
//!   (7878); its bearer token is `DIR/token` (created on first start, 0600).
//!   `--webhook-ca FILE` (PEM, repeatable): certificates trusted for
//!   `https://` webhooks besides the public roots (a private CA, a
//!   self-signed relay); a file that does not load stops it at once.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use host_bridge::{
    Bridge, DEFAULT_GRACE_MS, Event, JobMetric, JobSpec, LinkPump, ShmRegion, Stream, Supervisor, WebhookConfig, http,
    now_ms, shim, webhook,
};
use rustls_pki_types::CertificateDer;

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
    /// Run opsd's host jobs over the shared-memory link.
    Serve {
        /// The shared region (QEMU's memory-backend-file mem-path).
        #[arg(long)]
        shm: PathBuf,
        #[arg(long)]
        state_dir: PathBuf,
        /// The HTTP API's port on 127.0.0.1 (0: no HTTP API).
        #[arg(long, default_value_t = host_bridge::http::DEFAULT_PORT)]
        port: u16,
        /// A PEM file of one or more certificates to trust for https://
        /// webhooks besides the public roots (a private CA, a self-signed
        /// relay); repeatable.
        #[arg(long = "webhook-ca", value_name = "FILE", value_parser = parse_ca)]
        webhook_ca: Vec<Vec<CertificateDer<'static>>>,
    },
}

fn parse_ca(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    webhook::load_roots(std::path::Path::new(path))
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
        Cmd::Serve {
            shm,
            state_dir,
            port,
            webhook_ca,
        } => match serve(&shm, state_dir, port, webhook_ca.concat()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("host-bridge: {e}");
                ExitCode::from(125)
            }
        },
    }
}

/// How long a shutdown waits for the jobs' ends (their graces) at most.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(30);

fn serve(
    shm: &std::path::Path,
    state_dir: PathBuf,
    port: u16,
    extra_roots: Vec<CertificateDer<'static>>,
) -> Result<(), host_bridge::Error> {
    // Before any thread starts, so that none of them takes the signals.
    let signals = StopSignals::block();
    let incarnation = now_ms();
    if !extra_roots.is_empty() {
        eprintln!(
            "host-bridge: https webhooks trust {} extra certificate(s) (--webhook-ca)",
            extra_roots.len()
        );
    }
    let supervisor = Supervisor::new(state_dir)?;
    let (client, mut api) = http::channel();
    if port != 0 {
        let (token, token_path) = http::load_or_create_token(supervisor.state_dir())?;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        eprintln!(
            "host-bridge: HTTP API on http://127.0.0.1:{port}, bearer token in {}",
            token_path.display()
        );
        let router = http::router(client, &token);
        std::thread::spawn(move || {
            if let Err(e) = http::serve_blocking(listener, router) {
                eprintln!("host-bridge: HTTP API stopped: {e}");
            }
        });
    }
    eprintln!("host-bridge: waiting for the shared region {}", shm.display());
    let region = loop {
        if signals.pending() {
            // No link yet, but maybe jobs re-adopted from the state.
            return shut_down_without_link(supervisor, &signals);
        }
        match ShmRegion::open(shm) {
            Ok(region) => break region,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.kind() == std::io::ErrorKind::InvalidData => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => return Err(e.into()),
        }
    };
    let webhooks = WebhookConfig {
        extra_roots,
        ..WebhookConfig::default()
    };
    let mut bridge = Bridge::with_webhooks(supervisor, LinkPump::host(region, incarnation), webhooks);
    let (mut attached, mut connected) = (false, false);
    // Set once a stop signal came: the jobs are being stopped.
    let mut shutdown: Option<std::time::Instant> = None;
    loop {
        if signals.pending() {
            if shutdown.is_some() {
                eprintln!("host-bridge: second stop signal: leaving at once");
                return Ok(());
            }
            let asked = bridge.stop_all();
            eprintln!("host-bridge: shutting down: stopping {} job(s)", asked.len());
            shutdown = Some(std::time::Instant::now());
        }
        if let Some(since) = shutdown {
            let live = bridge.supervisor().live();
            // The ends told to opsd too, if it is there to hear them.
            let told = bridge.is_flushed() || !bridge.pump().is_connected() || since.elapsed() > SHUTDOWN_LIMIT / 2;
            if live == 0 && told {
                eprintln!("host-bridge: shut down");
                return Ok(());
            }
            if since.elapsed() > SHUTDOWN_LIMIT {
                eprintln!("host-bridge: shut down with {live} job(s) still ending");
                return Ok(());
            }
        }
        for warning in bridge.poll(now_ms()) {
            eprintln!("host-bridge: {warning}");
        }
        api.pump(&mut bridge);
        let pump = bridge.pump();
        if pump.is_attached() != attached {
            attached = pump.is_attached();
            eprintln!("host-bridge: rings {}", if attached { "attached" } else { "lost" });
        }
        if pump.is_connected() != connected {
            connected = pump.is_connected();
            eprintln!(
                "host-bridge: opsd {}",
                if connected { "connected" } else { "disconnected" }
            );
        }
        // About every millisecond; at once when an HTTP request comes in,
        // and every 100 us while one waits for opsd's answer or an
        // artifact's bytes are being sent.
        api.wait(if api.outstanding() > 0 || bridge.artifacts().sending() {
            Duration::from_micros(100)
        } else {
            Duration::from_millis(1)
        });
    }
}

/// SIGINT, SIGTERM and SIGHUP, blocked in the calling thread (and in the
/// threads it starts afterwards) and taken synchronously with
/// [`StopSignals::pending`] between polls.
struct StopSignals(libc::sigset_t);

impl StopSignals {
    /// Call before starting any thread.
    fn block() -> StopSignals {
        // SAFETY: a local sigset_t initialised by sigemptyset/sigaddset,
        // then installed as this thread's mask (inherited by threads
        // started later).
        let set = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGHUP);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            set
        };
        StopSignals(set)
    }

    /// Takes one pending stop signal, if any (never waits).
    fn pending(&self) -> bool {
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: sigtimedwait reads the initialised set and timespec; the
        // siginfo pointer may be null.
        unsafe { libc::sigtimedwait(&self.0, std::ptr::null_mut(), &zero) > 0 }
    }
}

/// A stop signal before the link came up: stops re-adopted jobs without
/// reporting to anyone (their records stay in the state directory).
fn shut_down_without_link(mut supervisor: Supervisor, signals: &StopSignals) -> Result<(), host_bridge::Error> {
    let asked = supervisor.stop_all();
    eprintln!("host-bridge: shutting down: stopping {} job(s)", asked.len());
    let since = std::time::Instant::now();
    while supervisor.live() > 0 && since.elapsed() < SHUTDOWN_LIMIT && !signals.pending() {
        for event in supervisor.poll_wait(Duration::from_millis(50)) {
            if let Event::Warning { message, .. } = event {
                eprintln!("host-bridge: warning: {message}");
            }
        }
    }
    match supervisor.live() {
        0 => eprintln!("host-bridge: shut down"),
        live => eprintln!("host-bridge: shut down with {live} job(s) still ending"),
    }
    Ok(())
}

fn run(state_dir: PathBuf, job_id: u64, spec: &JobSpec) -> Result<u8, host_bridge::Error> {
    let signals = StopSignals::block();
    let pending_stop = || signals.pending();
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
                Event::Metric(JobMetric { point: m, .. }) => {
                    let tags: Vec<String> = m.tags.iter().map(|t| format!("{}={}", t.key, t.value)).collect();
                    eprintln!(
                        "host-bridge: metric {} {} = {} (step {:?}) {{{}}}{}",
                        m.kind,
                        m.name,
                        m.value,
                        m.step,
                        tags.join(","),
                        if m.buckets.is_empty() {
                            String::new()
                        } else {
                            format!(" buckets {:?}", m.buckets)
                        }
                    )
                }
                Event::MalformedMetric { offset, error, .. } => {
                    eprintln!("host-bridge: malformed metric line at stdout offset {offset}: {error}")
                }
                // No opsd to offer it to: said, not sent.
                Event::Artifact { announce, .. } => eprintln!(
                    "host-bridge: artifact {} (step {:?})",
                    announce.path.display(),
                    announce.step
                ),
                Event::MalformedArtifact { offset, error, .. } => {
                    eprintln!("host-bridge: malformed artifact line at stdout offset {offset}: {error}")
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
