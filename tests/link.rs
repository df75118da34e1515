//! The link's transport end to end: the kernel (test `link_host_echo`)
//! and this test (playing the host bridge) exchange bytes through an
//! `ivshmem-plain` region backed by a file in /dev/shm, both sides running
//! `aether_abi::shm_ring`. The rings (16 KiB each) are far smaller than the
//! 64 KiB sent, so both wrap and both wait for room.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aether_abi::boot::{BootArgs, LogLevel, Mode, OnPanic};
use aether_abi::shm_ring::{self, Consumer, Direction, Producer, Shared};
use aetheros::runner::{Firmware, Launch, Qemu, Serial, Session};

/// The host's view of the region: the tmpfs file QEMU maps as guest
/// memory. Positioned reads and writes on it see the same pages (aligned
/// 8-byte counters are copied whole; each call is a full barrier). The
/// bridge will map it instead.
struct FileRegion {
    file: File,
    size: usize,
}

impl Shared for FileRegion {
    fn size(&self) -> usize {
        self.size
    }
    fn load(&self, off: usize) -> u64 {
        let mut b = [0u8; 8];
        self.file.read_exact_at(&mut b, off as u64).expect("read counter");
        u64::from_le_bytes(b)
    }
    fn store(&self, off: usize, value: u64) {
        self.file
            .write_all_at(&value.to_le_bytes(), off as u64)
            .expect("write counter");
    }
    fn read(&self, off: usize, dst: &mut [u8]) {
        self.file.read_exact_at(dst, off as u64).expect("read data");
    }
    fn write(&self, off: usize, src: &[u8]) {
        self.file.write_all_at(src, off as u64).expect("write data");
    }
}

/// A power of two (ivshmem requires it): a 4 KiB header and two 16 KiB rings.
const REGION: usize = 64 * 1024;
const ECHO_LEN: usize = 64 * 1024;

fn wait_for(what: &str, deadline: Instant, mut ready: impl FnMut() -> bool) {
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn bytes_cross_the_shared_memory_link_both_ways() {
    let path = PathBuf::from(format!("/dev/shm/aether-link-test-{}", std::process::id()));
    let args = BootArgs {
        mode: Mode::Test(Some("link_host_echo")),
        on_panic: OnPanic::Exit,
        log: LogLevel::Info,
    };
    let launch = Launch {
        cpu: Default::default(),
        extra: aetheros::runner::link_device_args(&path, REGION as u64 / 1024),
        firmware: Firmware::Bios,
        serial: Serial::Piped,
        cmdline: args.to_string(),
    };
    let qemu = Qemu::locate().unwrap_or_else(|e| panic!("{e}"));
    let cmd = qemu
        .command(&aetheros::images(), &launch)
        .unwrap_or_else(|e| panic!("{e}"));
    let session = Session::spawn(cmd, Duration::from_secs(90)).unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(60);

    wait_for("QEMU to create the region", deadline, || path.exists());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open the region");
    let mem = FileRegion { file, size: REGION };
    wait_for("the guest to lay out the rings", deadline, || {
        shm_ring::attach(&mem).is_ok()
    });
    let size = shm_ring::attach(&mem).expect("attach");
    let rx = Consumer::new(Direction::GuestToHost, size);
    let tx = Producer::new(Direction::HostToGuest, size);

    let mut from_guest = Vec::new();
    let mut buf = [0u8; 4096];
    wait_for("the guest's hello", deadline, || {
        let n = rx.read(&mem, &mut buf).expect("ring 0");
        from_guest.extend_from_slice(&buf[..n]);
        from_guest.ends_with(b"AETHER_LINK_HELLO\n")
    });
    let pattern: Vec<u8> = (0..ECHO_LEN as u32)
        .map(|i| i.wrapping_mul(31).wrapping_add(7) as u8)
        .collect();
    let mut sent = 0;
    wait_for("room in ring 1", deadline, || {
        sent += tx.write(&mem, &pattern[sent..]).expect("ring 1");
        sent == pattern.len()
    });
    let sum: u64 = pattern.iter().map(|&b| b as u64).sum();
    let want = format!("OK {sum}\n");
    let mut answer = Vec::new();
    wait_for("the guest's answer", deadline, || {
        let n = rx.read(&mem, &mut buf).expect("ring 0");
        answer.extend_from_slice(&buf[..n]);
        answer.ends_with(want.as_bytes())
    });
    let (status, out) = session.wait(Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_file(&path);
    assert_eq!(status.code(), Some(33), "{out}");
    assert!(out.contains("KTEST ok link_host_echo"), "{out}");
}
