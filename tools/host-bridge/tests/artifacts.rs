//! Artifact transfer over the link, without QEMU: the test plays opsd with
//! a guest-side `LinkPump` over a region file (as tests/link_pump.rs), the
//! real `Bridge` runs real python jobs that write files into
//! `$AETHER_ARTIFACT_DIR` and announce others on stdout. Checks the offers
//! (kind, name, size, sha256, step, metrics), that the chunks from any
//! offset reassemble to the file, that a file still being written is not
//! offered, that bad announce lines are only warnings, and that a new
//! bridge offers what was pending again under the same transfer number.
//! The HTTP side (list, download) is in tests/artifacts_http.rs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aether_abi::artifact::{ArtifactKind, ArtifactOffer, ArtifactOutcome, CHUNK_MAX};
use aether_abi::job::{Arg, JobName, JobSpec, Stream};
use aether_abi::link::LinkMessage;
use aether_abi::shm_ring;
use host_bridge::{Bridge, LinkPump, ShmRegion, Supervisor, procfs};
use sha2::Digest as _;

const SHIM: &str = env!("CARGO_BIN_EXE_host-bridge");
const DEADLINE: Duration = Duration::from_secs(30);
const REGION: usize = 4096 + 2 * 64 * 1024;

fn now_ms() -> u64 {
    host_bridge::now_ms()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

/// The bytes the job script writes (`blob(n, seed)` there).
fn blob(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + seed + (i >> 8)) % 251) as u8).collect()
}

const BLOB_PY: &str = "def blob(n, seed):\n    return bytes((i * 7 + seed + (i >> 8)) % 251 for i in range(n))\n";

/// A temporary directory (state, region, the jobs' cwd); processes of its
/// jobs still running at the end are killed.
struct TestDir(tempfile::TempDir);

impl TestDir {
    fn new() -> TestDir {
        TestDir(tempfile::tempdir().unwrap())
    }
    fn path(&self) -> PathBuf {
        self.0.path().canonicalize().unwrap()
    }
    fn state(&self) -> PathBuf {
        self.path().join("state")
    }
    fn region(&self) -> PathBuf {
        self.path().join("region")
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let prefix = format!("AETHER_ARTIFACT_DIR={}/", self.path().display()).into_bytes();
        for p in procfs::all() {
            let env = std::fs::read(format!("/proc/{}/environ", p.pid)).unwrap_or_default();
            if env.split(|&b| b == 0).any(|e| e.starts_with(&prefix)) {
                // SAFETY: kill(2) with plain integers.
                unsafe { libc::kill(p.pid, libc::SIGKILL) };
            }
        }
    }
}

fn bridge(dir: &TestDir, incarnation: u64) -> Bridge {
    let supervisor = Supervisor::with_shim_exe(dir.state(), SHIM).expect("supervisor");
    Bridge::new(
        supervisor,
        LinkPump::host(ShmRegion::open(&dir.region()).unwrap(), incarnation),
    )
}

/// A python job running `script` in `cwd`.
fn python(dir: &TestDir, script: &str) -> JobSpec {
    let path = dir.path().join(format!("job{}.py", script.len()));
    let helper = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../python");
    let head = format!(
        "import json, os, sys, time\nsys.path.insert(0, {:?})\nimport aether\n",
        helper.display()
    );
    std::fs::write(&path, format!("{head}{BLOB_PY}{script}")).unwrap();
    JobSpec {
        name: JobName::try_from("art").unwrap(),
        entrypoint: ["python3", path.to_str().unwrap()]
            .iter()
            .map(|a| Arg::try_from(*a).unwrap())
            .collect(),
        cwd: Some(heapless::String::try_from(dir.path().to_str().unwrap()).unwrap()),
        ..JobSpec::default()
    }
}

/// opsd's side, as far as these tests need it.
struct Opsd {
    pump: LinkPump,
    /// Every offer, in order, with the stdout the job had sent by then.
    offers: Vec<(u64, ArtifactOffer, String)>,
    /// Per transfer: the want's offset and the bytes received since.
    received: BTreeMap<u64, (u64, Vec<u8>)>,
    stdout: Vec<u8>,
    exited: bool,
    /// Chunks with the wrong offset.
    misplaced: u64,
}

impl Opsd {
    fn new(dir: &TestDir) -> Opsd {
        let region = ShmRegion::create(&dir.region(), REGION).unwrap();
        shm_ring::initialise(&region).unwrap();
        Opsd {
            pump: LinkPump::guest(region, 0x0b5d),
            offers: Vec::new(),
            received: BTreeMap::new(),
            stdout: Vec::new(),
            exited: false,
            misplaced: 0,
        }
    }

    fn send(&mut self, msg: LinkMessage) {
        self.pump.send(&msg).expect("room in opsd's window");
    }

    fn want(&mut self, transfer: u64, offset: u64) {
        self.received.insert(transfer, (offset, Vec::new()));
        self.send(LinkMessage::ArtifactWant { transfer, offset });
    }

    fn done(&mut self, transfer: u64, version: u32) {
        self.send(LinkMessage::ArtifactDone {
            transfer,
            outcome: ArtifactOutcome::Stored { version },
        });
    }

    fn poll(&mut self) {
        for msg in self.pump.poll(now_ms()) {
            match msg {
                LinkMessage::ArtifactOffer { transfer, offer } => {
                    let seen = String::from_utf8_lossy(&self.stdout).into_owned();
                    self.offers.push((transfer, *offer, seen));
                }
                LinkMessage::ArtifactChunk {
                    transfer,
                    offset,
                    bytes,
                } => {
                    assert!(bytes.len() <= CHUNK_MAX);
                    match self.received.get_mut(&transfer) {
                        Some((from, got)) if *from + got.len() as u64 == offset => got.extend_from_slice(&bytes),
                        _ => self.misplaced += 1,
                    }
                }
                LinkMessage::Log(c) if c.stream == Stream::Stdout => self.stdout.extend_from_slice(&c.bytes),
                LinkMessage::Exited { .. } => self.exited = true,
                _ => {}
            }
        }
    }

    fn offer(&self, name: &str) -> Option<&(u64, ArtifactOffer, String)> {
        self.offers.iter().find(|(_, o, _)| o.name == name)
    }

    fn bytes(&self, transfer: u64) -> &[u8] {
        self.received.get(&transfer).map_or(&[], |(_, b)| b.as_slice())
    }
}

/// Polls both sides until `done`; returns the bridge's warnings.
fn run_until(
    bridge: &mut Bridge,
    opsd: &mut Opsd,
    warnings: &mut Vec<String>,
    what: &str,
    mut done: impl FnMut(&Opsd, &Bridge) -> bool,
) {
    let deadline = Instant::now() + DEADLINE;
    while !done(opsd, bridge) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; warnings {warnings:?}"
        );
        warnings.extend(bridge.poll(now_ms()));
        opsd.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn connect(bridge: &mut Bridge, opsd: &mut Opsd, warnings: &mut Vec<String>) {
    run_until(bridge, opsd, warnings, "the handshake", |o, b| {
        o.pump.is_connected() && b.pump().is_connected()
    });
}

const JOB: &str = r##"
d = os.environ["AETHER_ARTIFACT_DIR"]
for k in ("model", "report", "plot"):
    os.makedirs(os.path.join(d, k), exist_ok=True)
# Written to a temporary, renamed into place.
tmp = os.path.join(d, "model", "ckpt.pt.tmp")
with open(tmp, "wb") as f:
    f.write(blob(100000, 1))
os.rename(tmp, os.path.join(d, "model", "ckpt.pt"))
# Outside the directory, announced with its step and metrics (aether.py).
with open("final.bin", "wb") as f:
    f.write(blob(50000, 2))
aether.artifact("final.bin", kind="model", name="final", step=1200, metrics={"val_loss": 0.25})
# Bad lines: only warnings.
print('{"aether_artifact": {"kind": "model"}}', flush=True)
print('{"aether_artifact": {"path": "x",', flush=True)
print('{"aether_artifact": {"path": "missing.bin"}}', flush=True)
# A sidecar first, then its file.
with open(os.path.join(d, "report", "notes.md.meta.json"), "w") as f:
    json.dump({"step": 5, "metrics": {"acc": 0.9}}, f)
with open(os.path.join(d, "report", "notes.md.tmp"), "w") as f:
    f.write("# notes\n")
os.rename(os.path.join(d, "report", "notes.md.tmp"), os.path.join(d, "report", "notes.md"))
# Written for a second, a piece every 50 ms.
with open(os.path.join(d, "plot", "slow.svg"), "wb") as f:
    for i in range(20):
        f.write(blob(3000, i))
        f.flush()
        time.sleep(0.05)
print("slow done", flush=True)
time.sleep(1.0)
print("bye", flush=True)
"##;

#[test]
fn files_of_a_job_are_offered_and_sent_from_any_offset() {
    let dir = TestDir::new();
    let mut opsd = Opsd::new(&dir);
    let mut bridge = bridge(&dir, 1);
    let mut warnings = Vec::new();
    connect(&mut bridge, &mut opsd, &mut warnings);
    opsd.send(LinkMessage::Start {
        job_id: 1,
        spec: Box::new(python(&dir, JOB)),
    });

    // The slow file is offered while the job still runs, and only once
    // it is whole.
    run_until(
        &mut bridge,
        &mut opsd,
        &mut warnings,
        "the slow file's offer",
        |o, _| o.offer("slow.svg").is_some(),
    );
    let (_, slow, stdout_then) = opsd.offer("slow.svg").unwrap().clone();
    assert!(
        stdout_then.contains("slow done"),
        "offered while written: {stdout_then:?}"
    );
    assert!(!opsd.exited);
    let mut whole = Vec::new();
    for i in 0..20 {
        whole.extend(blob(3000, i));
    }
    assert_eq!(
        (slow.kind, slow.size, slow.digest),
        (ArtifactKind::Plot, 60000, sha256(&whole))
    );
    assert_eq!(opsd.offers.iter().filter(|(_, o, _)| o.name == "slow.svg").count(), 1);

    run_until(&mut bridge, &mut opsd, &mut warnings, "the job's end", |o, _| o.exited);
    // Whatever is left at the end is offered at once; give the hasher a
    // moment for the last ones.
    run_until(&mut bridge, &mut opsd, &mut warnings, "four offers", |o, _| {
        o.offers.len() >= 4
    });
    let names: Vec<&str> = opsd.offers.iter().map(|(_, o, _)| o.name.as_str()).collect();
    assert_eq!(opsd.offers.len(), 4, "{names:?}");

    let ckpt_bytes = blob(100000, 1);
    let (ckpt_t, ckpt, _) = opsd.offer("ckpt.pt").expect("the renamed file").clone();
    assert_eq!(ckpt.job_id, 1);
    assert_eq!(ckpt.kind, ArtifactKind::Model);
    assert_eq!((ckpt.size, ckpt.digest), (100000, sha256(&ckpt_bytes)));
    assert_eq!((ckpt.step, ckpt.metrics.len()), (None, 0));
    assert!(ckpt.created_ms > 0 && ckpt.created_ms <= now_ms());

    let final_bytes = blob(50000, 2);
    let (final_t, fin, _) = opsd.offer("final").expect("the announced file").clone();
    assert_eq!(
        (fin.kind, fin.size, fin.digest),
        (ArtifactKind::Model, 50000, sha256(&final_bytes))
    );
    assert_eq!(fin.step, Some(1200));
    assert_eq!(fin.metrics.len(), 1);
    assert_eq!((fin.metrics[0].name.as_str(), fin.metrics[0].value), ("val_loss", 0.25));

    let (_, notes, _) = opsd.offer("notes.md").expect("the file with a sidecar").clone();
    assert_eq!((notes.kind, notes.size, notes.step), (ArtifactKind::Report, 8, Some(5)));
    assert_eq!(notes.metrics[0].name.as_str(), "acc");

    // Bad announce lines: warnings with their reasons; the job went on.
    let malformed: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains("malformed artifact line"))
        .collect();
    assert_eq!(malformed.len(), 2, "{warnings:?}");
    assert!(malformed.iter().any(|w| w.contains("\"path\" is missing")));
    assert!(malformed.iter().any(|w| w.contains("not valid JSON")));
    assert!(warnings.iter().any(|w| w.contains("missing.bin")), "{warnings:?}");
    assert!(String::from_utf8_lossy(&opsd.stdout).contains("bye"));

    // From 0: the whole file; again from the middle (not a chunk
    // boundary): the rest.
    opsd.want(ckpt_t, 0);
    run_until(&mut bridge, &mut opsd, &mut warnings, "ckpt's bytes", |o, _| {
        o.bytes(ckpt_t).len() == 100000
    });
    assert_eq!(opsd.bytes(ckpt_t), &ckpt_bytes[..]);
    opsd.want(final_t, 0);
    run_until(&mut bridge, &mut opsd, &mut warnings, "final's bytes", |o, _| {
        o.bytes(final_t).len() == 50000
    });
    assert_eq!(opsd.bytes(final_t), &final_bytes[..]);
    opsd.want(final_t, 20001);
    run_until(&mut bridge, &mut opsd, &mut warnings, "final's rest", |o, _| {
        o.bytes(final_t).len() == 50000 - 20001
    });
    assert_eq!(opsd.bytes(final_t), &final_bytes[20001..]);
    assert_eq!(opsd.misplaced, 0);

    // Done: forgotten, links removed (the job's directory is gone by now).
    let transfers: Vec<u64> = opsd.offers.iter().map(|(t, _, _)| *t).collect();
    for (i, t) in transfers.iter().enumerate() {
        opsd.done(*t, i as u32 + 1);
    }
    run_until(&mut bridge, &mut opsd, &mut warnings, "all done", |_, b| {
        b.artifacts().pending() == 0
    });
    assert!(
        warnings.iter().any(|w| w.contains("model/final stored as v")),
        "{warnings:?}"
    );
    let outgoing = dir.state().join("artifacts/outgoing");
    assert_eq!(std::fs::read_dir(outgoing).unwrap().count(), 0);
    // Nothing else was offered: not the temporaries, not the sidecar.
    assert_eq!(opsd.offers.len(), 4);
}

#[test]
fn a_new_bridge_offers_what_was_pending_under_the_same_number() {
    let dir = TestDir::new();
    let mut opsd = Opsd::new(&dir);
    let mut bridge1 = bridge(&dir, 1);
    let mut warnings = Vec::new();
    connect(&mut bridge1, &mut opsd, &mut warnings);
    let script = "with open(os.path.join(os.environ['AETHER_ARTIFACT_DIR'], 'r.pdf'), 'wb') as f:\n    f.write(blob(30000, 3))\n";
    opsd.send(LinkMessage::Start {
        job_id: 7,
        spec: Box::new(python(&dir, script)),
    });
    run_until(&mut bridge1, &mut opsd, &mut warnings, "the offer", |o, _| {
        !o.offers.is_empty()
    });
    let (t, first, _) = opsd.offers[0].clone();
    assert_eq!(
        (first.kind, first.name.as_str(), first.size),
        (ArtifactKind::Pdf, "r.pdf", 30000)
    );
    // The job ends and is forgotten; its file waits in outgoing/.
    run_until(&mut bridge1, &mut opsd, &mut warnings, "the job forgotten", |o, b| {
        o.exited && b.supervisor().status(7).is_none()
    });
    assert!(!dir.state().join("jobs/7").exists());
    opsd.want(t, 0);
    // A few chunks at most, then the bridge is gone.
    run_until(&mut bridge1, &mut opsd, &mut warnings, "a first chunk", |o, _| {
        !o.bytes(t).is_empty()
    });
    drop(bridge1);

    let mut bridge2 = bridge(&dir, 2);
    opsd.offers.clear();
    run_until(&mut bridge2, &mut opsd, &mut warnings, "the offer again", |o, _| {
        !o.offers.is_empty()
    });
    let (t2, again, _) = opsd.offers[0].clone();
    assert_eq!(t2, t, "the same transfer number");
    assert_eq!(again, first);
    let got = opsd.bytes(t).len() as u64;
    let want_from = got.min(12345);
    opsd.want(t, want_from);
    run_until(&mut bridge2, &mut opsd, &mut warnings, "the rest", |o, _| {
        o.bytes(t).len() as u64 == 30000 - want_from
    });
    assert_eq!(opsd.bytes(t), &blob(30000, 3)[want_from as usize..]);
    opsd.done(t, 1);
    run_until(&mut bridge2, &mut opsd, &mut warnings, "done", |_, b| {
        b.artifacts().pending() == 0
    });
    // Numbers are not handed out twice: a new file gets a later one.
    opsd.send(LinkMessage::Start {
        job_id: 8,
        spec: Box::new(python(&dir, script)),
    });
    opsd.offers.clear();
    run_until(&mut bridge2, &mut opsd, &mut warnings, "a new offer", |o, _| {
        !o.offers.is_empty()
    });
    assert!(opsd.offers[0].0 > t);
}

/// `cargo test --release -p host-bridge --test artifacts -- --ignored`:
/// a 64 MiB file from the bridge to a guest pump in the same process
/// (python writes it; the time counts from the want to the last byte).
#[test]
#[ignore]
fn throughput_host_to_guest() {
    let dir = TestDir::new();
    let mut opsd = Opsd::new(&dir);
    let mut bridge = bridge(&dir, 1);
    let mut warnings = Vec::new();
    connect(&mut bridge, &mut opsd, &mut warnings);
    const SIZE: usize = 64 << 20;
    let script = format!(
        "with open(os.path.join(os.environ['AETHER_ARTIFACT_DIR'], 'big.bin'), 'wb') as f:\n    f.write(os.urandom({SIZE}))\n"
    );
    opsd.send(LinkMessage::Start {
        job_id: 1,
        spec: Box::new(python(&dir, &script)),
    });
    run_until(&mut bridge, &mut opsd, &mut warnings, "the offer", |o, _| {
        !o.offers.is_empty()
    });
    let t = opsd.offers[0].0;
    let started = Instant::now();
    opsd.want(t, 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    while opsd.bytes(t).len() < SIZE {
        assert!(Instant::now() < deadline);
        warnings.extend(bridge.poll(now_ms()));
        opsd.poll();
    }
    let secs = started.elapsed().as_secs_f64();
    let mib_s = SIZE as f64 / (1 << 20) as f64 / secs;
    eprintln!("artifact transfer: {mib_s:.1} MiB/s ({secs:.2} s for 64 MiB)");
    assert!(mib_s >= 20.0, "{mib_s:.1} MiB/s");
    assert_eq!(&sha256(opsd.bytes(t)), &opsd.offers[0].1.digest);
}
