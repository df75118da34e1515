//! `host-bridge shim` on its own, without a supervisor: the CLI contract
//! (ready line, job directory files) and SIGTERM to the shim.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use host_bridge::records::{ExitReason, ExitRecord, Ready, ShimInfo};

const SHIM: &str = env!("CARGO_BIN_EXE_host-bridge");

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn shim_writes_ready_line_logs_and_exit_record() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(SHIM)
        .args(["shim", "--job-dir"])
        .arg(dir.path())
        .args(["--", "sh", "-c", "echo out; echo err >&2; exit 7"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Exactly one line on the shim's stdout: the ready record.
    let ready: Ready = serde_json::from_slice(&out.stdout).unwrap();
    let Ready::Started(info) = ready else {
        panic!("{ready:?}")
    };
    assert_eq!(read_json::<ShimInfo>(&dir.path().join("shim.json")), info);
    assert_eq!(std::fs::read(dir.path().join("stdout")).unwrap(), b"out\n");
    assert_eq!(std::fs::read(dir.path().join("stderr")).unwrap(), b"err\n");
    let exit: ExitRecord = read_json(&dir.path().join("exit.json"));
    assert_eq!(
        (exit.exit_code, exit.signal, exit.forced, exit.reason),
        (Some(7), None, false, ExitReason::Exited)
    );
    assert!(exit.ended_ms >= info.started_ms);
    // The raw file has the documented keys.
    let raw: serde_json::Value = read_json(&dir.path().join("exit.json"));
    for key in ["exit_code", "signal", "ended_ms", "forced", "reason"] {
        assert!(raw.get(key).is_some(), "{key} missing: {raw}");
    }
}

#[test]
fn sigterm_to_the_shim_stops_the_job_with_the_default_grace() {
    let dir = tempfile::tempdir().unwrap();
    let mut shim = Command::new(SHIM)
        .args(["shim", "--grace-ms", "200", "--job-dir"])
        .arg(dir.path())
        .args([
            "--",
            "sh",
            "-c",
            "trap '' TERM; echo trapped; while :; do sleep 0.05; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(shim.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let Ready::Started(info) = serde_json::from_str(&line).unwrap() else {
        panic!("{line}")
    };
    let _guard = KillOnDrop(info.clone());
    // Only once the shell ignores SIGTERM (a stop before its `trap` would
    // end it at once, which is not what this test is about).
    let started = Instant::now();
    while !std::fs::read(dir.path().join("stdout"))
        .unwrap_or_default()
        .starts_with(b"trapped")
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the shell never trapped SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let t0 = Instant::now();
    // SAFETY: kill(2) takes integers only; the shim is our child, not yet reaped.
    assert_eq!(unsafe { libc::kill(info.shim_pid, libc::SIGTERM) }, 0);
    assert!(shim.wait().unwrap().success());
    assert!(t0.elapsed() >= Duration::from_millis(200) && t0.elapsed() < Duration::from_secs(10));
    let exit: ExitRecord = read_json(&dir.path().join("exit.json"));
    // The shell ignores SIGTERM; the SIGKILL after the grace ends it.
    assert_eq!(
        (exit.signal, exit.forced, exit.reason),
        (Some(libc::SIGKILL), true, ExitReason::Stopped)
    );
    assert!(host_bridge::procfs::stat(info.job_pid).is_none_or(|s| s.start_time != info.job_start_time));
}

#[test]
fn shim_reports_a_missing_command_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let out = Command::new(SHIM)
        .args(["shim", "--job-dir"])
        .arg(dir.path())
        .args(["--", "/nonexistent/cmd"])
        .output()
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(out.status.success());
    let exit: ExitRecord = read_json(&dir.path().join("exit.json"));
    assert_eq!(exit.reason, ExitReason::SpawnError);
    assert_eq!(
        exit.spawn_error.as_deref(),
        Some("/nonexistent/cmd: No such file or directory (os error 2)")
    );
    assert_eq!(
        serde_json::from_slice::<Ready>(&out.stdout).unwrap(),
        Ready::SpawnError(exit.spawn_error.unwrap())
    );
}

/// Kills the shim and the job's group if the test fails half way (only
/// if they are still the same processes: pid and start time).
struct KillOnDrop(ShimInfo);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let i = &self.0;
        for (pid, start, target) in [
            (i.job_pid, i.job_start_time, -i.job_pid),
            (i.shim_pid, i.shim_start_time, i.shim_pid),
        ] {
            if host_bridge::procfs::is_alive(pid, start) {
                // SAFETY: kill(2) takes integers only.
                unsafe { libc::kill(target, libc::SIGKILL) };
            }
        }
    }
}
