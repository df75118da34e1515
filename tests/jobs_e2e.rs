//! Jobs end to end: QEMU with the ivshmem link, the real host bridge on the
//! other side of it, opsd in the guest, and a Python trainer on Linux,
//! started and watched from the AetherOS console.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aether_abi::boot::{CONSOLE_READY_MARKER, PROMPT};
use aetheros::runner::{Firmware, Launch, Qemu, Serial, Session};

/// QEMU with the link device, the real host bridge on its other side, and
/// the console's session; the bridge, its state and the region file go
/// with it (also when a test fails).
struct Rig {
    session: Session,
    bridge: Child,
    shm: PathBuf,
    state: PathBuf,
}

impl Rig {
    /// Boots to the prompt (`name` keeps parallel tests' files apart) and
    /// starts the bridge; `limit` bounds the whole QEMU run.
    fn start(name: &str, limit: Duration) -> Rig {
        let id = std::process::id();
        let shm = PathBuf::from(format!("/dev/shm/aether-{name}-{id}"));
        let state = std::env::temp_dir().join(format!("aether-{name}-state-{id}"));
        let _ = std::fs::remove_dir_all(&state);
        let launch = Launch {
            cpu: Default::default(),
            extra: aetheros::runner::link_device_args(&shm, 1024),
            firmware: Firmware::Bios,
            serial: Serial::Piped,
            cmdline: common::console_cmdline(),
        };
        let qemu = Qemu::locate().unwrap_or_else(|e| panic!("{e}"));
        let cmd = qemu
            .command(&aetheros::images(), &launch)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut session = Session::spawn(cmd, limit).unwrap_or_else(|e| panic!("{e}"));
        session
            .expect(CONSOLE_READY_MARKER, common::BOOT)
            .unwrap_or_else(|e| panic!("{e}"));
        session.expect(PROMPT, common::REPLY).unwrap_or_else(|e| panic!("{e}"));
        let bridge = Command::new(env!("CARGO_BIN_FILE_HOST_BRIDGE_host-bridge"))
            .args(["serve", "--port", "0", "--shm"])
            .arg(&shm)
            .arg("--state-dir")
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the bridge");
        Rig {
            session,
            bridge,
            shm,
            state,
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.bridge.kill();
        let _ = self.bridge.wait();
        let _ = std::fs::remove_file(&self.shm);
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_python_trainer_runs_on_the_host_from_the_console() {
    let mut rig = Rig::start("e2e", Duration::from_secs(120));
    let s = &mut rig.session;
    let trainer = repo().join("tools/python/trainer.py");
    let out = common::run(
        s,
        &format!("job start -- python3 {} --steps 5 --sleep 0.05", trainer.display()),
    );
    assert!(out.iter().any(|l| l.contains("job 1 started")), "{out:?}");
    // Running on the host once the bridge is connected: wait for the end.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let out = common::run(s, "job status 1 --json");
        let json: Option<serde_json::Value> = out
            .iter()
            .find(|l| l.starts_with('{'))
            .and_then(|l| serde_json::from_str(l).ok());
        if let Some(j) = json
            && (j["status"] == "SUCCEEDED" || j["status"] == "FAILED")
        {
            break j;
        }
        assert!(Instant::now() < deadline, "the job did not end: {out:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status["status"], "SUCCEEDED", "{status}");
    assert_eq!(status["exit_code"], 0, "{status}");
    assert!(status["runtime_ms"].as_u64().is_some_and(|ms| ms > 0), "{status}");
    assert_eq!(status["latest_metrics"][0]["name"], "loss", "{status}");
    let logs = common::run(s, "job logs 1");
    assert!(logs.iter().any(|l| l.contains("step 5")), "{logs:?}");
}

/// The console's `job status ID --json`, parsed.
fn status(s: &mut Session, id: u64) -> Option<serde_json::Value> {
    common::run(s, &format!("job status {id} --json"))
        .iter()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
}

/// Polls job `id` until its status is `want` (or fails after a deadline).
fn wait_for(s: &mut Session, id: u64, want: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(j) = status(s, id)
            && j["status"] == want
        {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never became {want}: {:?}",
            status(s, id)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts a job with `line` (everything after `job start`); its id.
fn start(s: &mut Session, line: &str) -> u64 {
    let out = common::run(s, &format!("job start {line}"));
    out.iter()
        .find_map(|l| l.strip_prefix("job ")?.strip_suffix(" started")?.parse().ok())
        .unwrap_or_else(|| panic!("`job start {line}`: {out:?}"))
}

/// Host processes whose environment says they belong to job `id` of the
/// bridge state directory `state`.
fn processes_of(id: u64, state: &std::path::Path) -> Vec<u32> {
    let tag = format!("AETHER_JOB_ID={id}\0");
    let dir = state.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let env = String::from_utf8_lossy(&env);
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Zombies (reaped late by this machine's init) are dead already.
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'));
        if env.contains(&tag) && env.contains(&dir) && !zombie {
            found.push(pid);
        }
    }
    found
}

#[test]
fn exit_codes_retries_timeouts_and_stops_from_the_console() {
    let mut rig = Rig::start("e2e2", Duration::from_secs(170));
    let s = &mut rig.session;
    let trainer = repo().join("tools/python/trainer.py");
    let t = trainer.display();

    let failed = start(s, &format!("-- python3 {t} --steps 1 --exit 3"));
    let j = wait_for(s, failed, "FAILED");
    assert_eq!(j["exit_code"], 3, "{j}");

    let retried = start(s, &format!("--retries 2 -- python3 {t} --steps 1 --exit 3"));
    let j = wait_for(s, retried, "FAILED");
    assert_eq!(
        (j["attempt"].as_u64(), j["exit_code"].as_i64()),
        (Some(3), Some(3)),
        "{j}"
    );

    let timed = start(s, &format!("--timeout 500 -- python3 {t} --steps 100000 --sleep 0.05"));
    let j = wait_for(s, timed, "TIMED_OUT");
    assert_eq!(j["termination_reason"], "timed_out", "{j}");

    // A trainer that traps SIGTERM: stopped within the grace, not forced.
    let graceful = start(s, &format!("-- python3 {t} --steps 100000 --sleep 0.05"));
    wait_for(s, graceful, "RUNNING");
    std::thread::sleep(Duration::from_millis(300));
    let out = common::run(s, &format!("job stop {graceful}"));
    assert!(out.iter().all(|l| !l.starts_with("error")), "{out:?}");
    let j = wait_for(s, graceful, "STOPPED");
    assert_eq!(j["forced_kill"], false, "{j}");

    // One that ignores SIGTERM and leaves grandchildren, one of them in a
    // session of its own: forced, and nothing of it is left on the host.
    let stubborn = start(
        s,
        &format!(
            "--grace 300 -- python3 {t} --steps 100000 --sleep 0.05 --ignore-term --fork-grandchildren --setsid-grandchild"
        ),
    );
    wait_for(s, stubborn, "RUNNING");
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_of(stubborn, &rig.state).len() < 4 {
        assert!(
            Instant::now() < deadline,
            "the grandchildren never started: {:?}",
            processes_of(stubborn, &rig.state)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    common::run(s, &format!("job stop {stubborn}"));
    let j = wait_for(s, stubborn, "STOPPED");
    assert_eq!(j["forced_kill"], true, "{j}");
    assert!(
        processes_of(stubborn, &rig.state).is_empty(),
        "left on the host: {:?}",
        processes_of(stubborn, &rig.state)
    );
}
