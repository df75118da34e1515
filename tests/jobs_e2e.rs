//! Jobs end to end: QEMU with the ivshmem link, the real host bridge on the
//! other side of it, opsd in the guest, and a Python trainer on Linux,
//! started and watched from the AetherOS console.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aether_abi::boot::{CONSOLE_READY_MARKER, PROMPT};
use aetheros::runner::{Firmware, Launch, Qemu, Serial, Session};

struct Bridge(Child);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_python_trainer_runs_on_the_host_from_the_console() {
    let id = std::process::id();
    let shm = PathBuf::from(format!("/dev/shm/aether-e2e-{id}"));
    let state = std::env::temp_dir().join(format!("aether-e2e-state-{id}"));
    let _ = std::fs::remove_dir_all(&state);
    let launch = Launch {
        cpu: Default::default(),
        extra: vec![
            "-object".into(),
            format!(
                "memory-backend-file,id=link,share=on,mem-path={},size=1M",
                shm.display()
            ),
            "-device".into(),
            "ivshmem-plain,memdev=link".into(),
        ],
        firmware: Firmware::Bios,
        serial: Serial::Piped,
        cmdline: common::console_cmdline(),
    };
    let qemu = Qemu::locate().unwrap_or_else(|e| panic!("{e}"));
    let cmd = qemu
        .command(&aetheros::images(), &launch)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut s = Session::spawn(cmd, Duration::from_secs(120)).unwrap_or_else(|e| panic!("{e}"));
    s.expect(CONSOLE_READY_MARKER, common::BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    s.expect(PROMPT, common::REPLY).unwrap_or_else(|e| panic!("{e}"));
    let _bridge = Bridge(
        Command::new(env!("CARGO_BIN_FILE_HOST_BRIDGE_host-bridge"))
            .args(["serve", "--port", "0", "--shm"])
            .arg(&shm)
            .arg("--state-dir")
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the bridge"),
    );
    let trainer = repo().join("tools/python/trainer.py");
    let out = common::run(
        &mut s,
        &format!("job start -- python3 {} --steps 5 --sleep 0.05", trainer.display()),
    );
    assert!(out.iter().any(|l| l.contains("job 1 started")), "{out:?}");
    // Running on the host once the bridge is connected: wait for the end.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let out = common::run(&mut s, "job status 1 --json");
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
    let logs = common::run(&mut s, "job logs 1");
    assert!(logs.iter().any(|l| l.contains("step 5")), "{logs:?}");
    drop(s);
    let _ = std::fs::remove_file(&shm);
    let _ = std::fs::remove_dir_all(&state);
}
