//! `--jobs`: the job runner's figures (docs/jobs.md, "Targets"), through
//! the whole path: QEMU with the link device, opsd in the guest, the real
//! host bridge, its HTTP API.
//!
//! * `job_start_overhead`: `POST /jobs` of `sh -c 'date +%s%N'` until that
//!   command runs on Linux (the time it prints), minus the same for a
//!   direct spawn of it from this process; medians of [`STARTS`].
//! * `http_job_status_p50`: `GET /jobs/{id}` round trips (a new connection
//!   each), median of [`STATUS_CALLS`].
//! * `link_metric_points_per_s`: a Python trainer prints [`POINTS`] metric
//!   lines as fast as it can; points opsd counted (`metric_points`) over
//!   the time from the job's start to the last of them seen.
//! * `link_log_mib_per_s`: a job writes [`LOG_BYTES`] to stdout as fast as
//!   it can; bytes opsd received (`stdout_bytes`) over the same span.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aether_abi::boot::{CONSOLE_READY_MARKER, LogLevel, Mode, PROMPT};
use aetheros::bridge;
use aetheros::runner::{Qemu, Session};

const STARTS: usize = 15;
const STATUS_CALLS: usize = 200;
const POINTS: u64 = 200_000;
const LOG_BYTES: u64 = 32 << 20;
const LIMIT: Duration = Duration::from_secs(300);

/// QEMU and the bridge; both go (and the files) on drop.
pub(crate) struct Rig {
    _session: Session,
    bridge: std::process::Child,
    shm: PathBuf,
    state: PathBuf,
    pub(crate) port: u16,
    pub(crate) token: String,
}

impl Drop for Rig {
    fn drop(&mut self) {
        bridge::shut_down(&mut self.bridge, Duration::from_secs(20));
        let _ = std::fs::remove_file(&self.shm);
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

fn boot(qemu: &Qemu) -> Result<Rig, String> {
    boot_with(qemu, None)
}

/// [`boot`] with `disk` attached as the guest's disk.
pub(crate) fn boot_with(qemu: &Qemu, disk: Option<&std::path::Path>) -> Result<Rig, String> {
    let id = std::process::id();
    let shm = PathBuf::from(format!("/dev/shm/aether-bench-jobs-{id}"));
    let state = std::env::temp_dir().join(format!("aether-bench-jobs-{id}"));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).map_err(|e| e.to_string())?;
    let mut session = crate::spawn_guest(
        qemu,
        Mode::Console,
        LogLevel::Info,
        {
            let mut extra = aetheros::runner::link_device_args(&shm, 1024);
            if let Some(d) = disk {
                extra.extend(aetheros::runner::blk_device_args(d, false));
            }
            extra
        },
        LIMIT,
    )?;
    session
        .expect(CONSOLE_READY_MARKER, Duration::from_secs(60))
        .map_err(|e| e.to_string())?;
    session
        .expect(PROMPT, Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    crate::settle(&mut session)?;
    let port = bridge::free_port().map_err(|e| e.to_string())?;
    let log = std::fs::File::create(state.join("bridge.log")).map_err(|e| e.to_string())?;
    let child = bridge::serve(&shm, &state, port, log).map_err(|e| e.to_string())?;
    let mut rig = Rig {
        _session: session,
        bridge: child,
        shm,
        state,
        port,
        token: String::new(),
    };
    rig.token = bridge::wait_for_api(&rig.state, port, Duration::from_secs(30))?;
    // Connected once a request reaches opsd (503 until then).
    let deadline = Instant::now() + Duration::from_secs(30);
    while rig.get("/jobs")?.0 == 503 {
        if Instant::now() > deadline {
            return Err("opsd never connected to the bridge".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(rig)
}

impl Rig {
    pub(crate) fn get(&self, path: &str) -> Result<(u16, Vec<u8>), String> {
        bridge::http(self.port, "GET", path, &self.token, "").map_err(|e| format!("GET {path}: {e}"))
    }

    /// `GET /jobs/{id}` as JSON.
    fn record(&self, id: u64) -> Result<serde_json::Value, String> {
        let (code, body) = self.get(&format!("/jobs/{id}"))?;
        if code != 200 {
            return Err(format!("GET /jobs/{id}: {code} {}", String::from_utf8_lossy(&body)));
        }
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    }

    /// `POST /jobs` with `argv`; the job id.
    pub(crate) fn start(&self, argv: &[&str]) -> Result<u64, String> {
        let spec = serde_json::json!({ "entrypoint": argv }).to_string();
        let (code, body) = bridge::http(self.port, "POST", "/jobs", &self.token, &spec).map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        match (code, v["job_id"].as_u64()) {
            (201, Some(id)) => Ok(id),
            _ => Err(format!("POST /jobs: {code} {v}")),
        }
    }

    /// Polls job `id` until `done(record)`; the record and when it was
    /// seen.
    pub(crate) fn until(
        &self,
        id: u64,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<(serde_json::Value, u64), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let r = self.record(id)?;
            if done(&r) {
                return Ok((r, unix_ms()));
            }
            if r["ended_ms"].is_u64() && !done(&r) {
                return Err(format!("job {id} ended short: {r}"));
            }
            if Instant::now() > deadline {
                return Err(format!("job {id} never got there: {r}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn unix_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

fn unix_ms() -> u64 {
    (unix_ns() / 1_000_000) as u64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The command whose exec is timed: it prints when it runs.
const STAMP: [&str; 3] = ["sh", "-c", "date +%s%N"];

fn stamp_of(out: &[u8]) -> Result<u128, String> {
    String::from_utf8_lossy(out)
        .trim()
        .parse()
        .map_err(|_| format!("not a timestamp: {:?}", String::from_utf8_lossy(out)))
}

fn job_start_overhead(rig: &Rig) -> Result<f64, String> {
    let mut via_job = Vec::new();
    let mut direct = Vec::new();
    for _ in 0..STARTS {
        let t0 = unix_ns();
        let out = Command::new(STAMP[0])
            .args(&STAMP[1..])
            .output()
            .map_err(|e| e.to_string())?;
        direct.push((stamp_of(&out.stdout)? - t0) as f64 / 1e6);

        let t0 = unix_ns();
        let id = rig.start(&STAMP)?;
        rig.until(id, |r| r["status"] == "SUCCEEDED")?;
        let (_, out) = rig.get(&format!("/jobs/{id}/logs"))?;
        via_job.push((stamp_of(&out)? - t0) as f64 / 1e6);
    }
    Ok(median(via_job) - median(direct))
}

fn http_job_status_p50(rig: &Rig) -> Result<f64, String> {
    let id = rig.start(&["true"])?;
    rig.until(id, |r| r["ended_ms"].is_u64())?;
    let mut times = Vec::new();
    for _ in 0..STATUS_CALLS {
        let t0 = Instant::now();
        rig.record(id)?;
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(median(times))
}

/// Runs `argv`, waits until `field` of its record reaches `total`; the
/// rate per second from its start to then.
fn rate(rig: &Rig, argv: &[&str], field: &str, total: u64) -> Result<f64, String> {
    let id = rig.start(argv)?;
    let (r, seen_ms) = rig.until(id, |r| r[field].as_u64() >= Some(total))?;
    if r[field].as_u64() != Some(total) {
        return Err(format!("{field}: expected {total}: {r}"));
    }
    let started = r["started_ms"].as_u64().ok_or("no started_ms")?;
    let secs = seen_ms.saturating_sub(started).max(1) as f64 / 1000.0;
    Ok(total as f64 / secs)
}

/// One boot's figures.
pub fn once(qemu: &Qemu) -> Result<Vec<(String, f64, String)>, String> {
    let rig = boot(qemu)?;
    let overhead = job_start_overhead(&rig)?;
    let status = http_job_status_p50(&rig)?;
    let metrics_program = format!(
        "import sys\nw = sys.stdout.write\nfor i in range({POINTS}):\n    \
         w('{{\"aether_metric\": {{\"name\": \"loss\", \"value\": %d.5, \"step\": %d}}}}\\n' % (i, i))\n"
    );
    let points = rate(&rig, &["python3", "-c", &metrics_program], "metric_points", POINTS)?;
    let log_cmd = format!("yes 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde | head -c {LOG_BYTES}");
    let bytes = rate(&rig, &["sh", "-c", &log_cmd], "stdout_bytes", LOG_BYTES)?;
    Ok(vec![
        ("job_start_overhead".into(), overhead, "ms".into()),
        ("http_job_status_p50".into(), status, "ms".into()),
        ("link_metric_points_per_s".into(), points, "points/s".into()),
        ("link_log_mib_per_s".into(), bytes / (1 << 20) as f64, "MiB/s".into()),
    ])
}
