//! The end-to-end rig: QEMU with the ivshmem link (and a disk, if given),
//! the real host bridge on the other side, and the console's session.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use aether_abi::boot::{CONSOLE_READY_MARKER, PROMPT};
use aetheros::bridge;
use aetheros::runner::{Firmware, Launch, Qemu, Serial, Session};

/// QEMU with the link device, the real host bridge on its other side, and
/// the console's session; the bridge, its state and the region file go
/// with it (also when a test fails).
pub struct Rig {
    pub session: Session,
    pub bridge: Child,
    pub shm: PathBuf,
    pub state: PathBuf,
    /// The bridge's stderr (printed when a test fails).
    pub log: PathBuf,
    /// The bridge's HTTP API on 127.0.0.1.
    pub port: u16,
}

impl Rig {
    /// Boots to the prompt (`name` keeps parallel tests' files apart) and
    /// starts the bridge; `limit` bounds the whole QEMU run.
    pub fn start(name: &str, limit: Duration) -> Rig {
        Rig::start_with(name, limit, None)
    }

    /// [`Rig::start`] with `disk` attached as the guest's virtio-blk disk.
    pub fn start_with(name: &str, limit: Duration, disk: Option<&Path>) -> Rig {
        let id = std::process::id();
        let shm = PathBuf::from(format!("/dev/shm/aether-{name}-{id}"));
        let state = std::env::temp_dir().join(format!("aether-{name}-state-{id}"));
        let _ = std::fs::remove_dir_all(&state);
        let launch = Launch {
            cpu: Default::default(),
            extra: {
                let mut extra = aetheros::runner::link_device_args(&shm, 1024);
                if let Some(disk) = disk {
                    extra.extend(aetheros::runner::blk_device_args(disk, false));
                }
                extra
            },
            firmware: Firmware::Bios,
            serial: Serial::Piped,
            cmdline: super::console_cmdline(),
        };
        let qemu = Qemu::locate().unwrap_or_else(|e| panic!("{e}"));
        let cmd = qemu
            .command(&aetheros::images(), &launch)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut session = Session::spawn(cmd, limit).unwrap_or_else(|e| panic!("{e}"));
        session
            .expect(CONSOLE_READY_MARKER, super::BOOT)
            .unwrap_or_else(|e| panic!("{e}"));
        session.expect(PROMPT, super::REPLY).unwrap_or_else(|e| panic!("{e}"));
        let port = bridge::free_port().expect("a free port");
        let log = std::env::temp_dir().join(format!("aether-{name}-bridge-{id}.log"));
        let bridge = spawn_bridge(&shm, &state, port, &log);
        Rig {
            session,
            bridge,
            shm,
            state,
            log,
            port,
        }
    }

    /// Kills the bridge (SIGKILL: a crash, its jobs keep running) and,
    /// `down` later, starts a new one on the same state directory and
    /// region.
    pub fn restart_bridge(&mut self, down: Duration) {
        let _ = self.bridge.kill();
        let _ = self.bridge.wait();
        std::thread::sleep(down);
        self.bridge = spawn_bridge(&self.shm, &self.state, self.port, &self.log);
    }
}

/// `host-bridge serve` on `shm` and `state`, its output appended to `log`.
fn spawn_bridge(shm: &Path, state: &Path, port: u16, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the bridge's log file");
    bridge::serve(shm, state, port, log).expect("start the bridge")
}

impl Drop for Rig {
    fn drop(&mut self) {
        // As `cargo run` does: SIGTERM, the bridge stops its jobs.
        bridge::shut_down(&mut self.bridge, Duration::from_secs(20));
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- the bridge's log ---\n{log}--- end of the bridge's log ---");
        }
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_file(&self.shm);
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

impl Rig {
    /// The bridge's token, once its HTTP API listens.
    pub fn token(&self) -> String {
        bridge::wait_for_api(&self.state, self.port, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"))
    }
}
