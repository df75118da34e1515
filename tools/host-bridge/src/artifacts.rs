//! The bridge's side of the artifact store (docs/telemetry.md, "Artifact
//! transfer (the bridge)"): it finds the files jobs make (a poll of each
//! job's `$AETHER_ARTIFACT_DIR` every [`SCAN_MS`], announce lines on their
//! stdout, everything left when a job ends), hashes them off the loop
//! (sha256, one thread), offers them to opsd (`ArtifactOffer`) and sends
//! the bytes opsd wants (`ArtifactChunk`s from the `offset` of its
//! `ArtifactWant`), a bounded number per round so that the rest of the
//! link keeps flowing, until opsd says how the offer ended
//! (`ArtifactDone`).
//!
//! Every file taken is hard-linked into `<state>/artifacts/outgoing/` at
//! once, so the job's directory may be deleted (the job forgotten) while
//! its files still wait. What waits, the transfer counter and the files
//! already offered are kept in `<state>/artifacts/state.json`: a new bridge
//! offers the pending files again under the same transfer numbers, and
//! does not hand out a number twice.
//!
//! [`announce`]: the announce line, sidecars, kinds and names; [`api`]:
//! `GET /artifacts` and the downloads.

pub mod announce;
pub mod api;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use aether_abi::artifact::{self as abi, ArtifactKind, ArtifactMetric, ArtifactOffer, ArtifactOutcome, CHUNK_MAX};
use aether_abi::link::LinkMessage;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::link::LinkPump;
use crate::records;
use crate::supervisor::JobSpec;
use crate::util::{atomic_write_json, read_json};
use announce::{Announce, Metrics};

/// How often each running job's artifact directory is looked at; a file
/// is taken once its size and mtime are the same on two looks.
pub const SCAN_MS: u64 = 200;
/// Chunks sent per round at most (the bridge rounds about every ms).
pub const CHUNKS_PER_ROUND: usize = 16;
/// Chunks sent and not acknowledged at most: at most this much of the
/// link's window (512) and of the ring ahead of a later log line.
pub const CHUNKS_IN_FLIGHT: usize = 64;
/// How often a file announced or left at the end is hashed again when it
/// changed while being hashed or sent, before it is given up.
pub const TRIES_MAX: u32 = 5;
/// `<state>/artifacts/`, and in it the state file and the links.
pub const DIR: &str = "artifacts";
pub const STATE_FILE: &str = "state.json";
pub const OUTGOING: &str = "outgoing";
const VERSION: u32 = 1;
/// The hasher's read size.
const HASH_BUF: usize = 1 << 20;

/// What tells a version of a file from another: its size and mtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: u64,
}

impl Stamp {
    pub fn of(meta: &Metadata) -> Stamp {
        let secs = u64::try_from(meta.mtime()).unwrap_or(0);
        let nanos = u64::try_from(meta.mtime_nsec()).unwrap_or(0);
        Stamp {
            size: meta.len(),
            mtime_ns: secs.saturating_mul(1_000_000_000).saturating_add(nanos),
        }
    }

    fn at(path: &Path) -> Option<Stamp> {
        std::fs::metadata(path).ok().map(|m| Stamp::of(&m))
    }
}

/// A hash of one file: its stamp before and after were the same.
enum Hashed {
    Done(Stamp, [u8; 32]),
    /// Written to while it was read.
    Changed,
    Failed(String),
}

/// The hashing thread (a blocking task: big checkpoints take seconds).
struct Hasher {
    jobs: mpsc::Sender<(u64, PathBuf)>,
    results: mpsc::Receiver<(u64, Hashed)>,
}

impl Hasher {
    fn start() -> Hasher {
        let (jobs, job_rx) = mpsc::channel::<(u64, PathBuf)>();
        let (result_tx, results) = mpsc::channel();
        std::thread::Builder::new()
            .name("artifact-hash".into())
            .spawn(move || {
                let mut buf = vec![0u8; HASH_BUF];
                for (id, path) in job_rx {
                    if result_tx.send((id, hash_file(&path, &mut buf))).is_err() {
                        break;
                    }
                }
            })
            .expect("start the artifact hasher thread");
        Hasher { jobs, results }
    }
}

/// sha256 of `path`, read once.
fn hash_file(path: &Path, buf: &mut [u8]) -> Hashed {
    let mut run = || -> io::Result<Hashed> {
        let mut f = File::open(path)?;
        let before = Stamp::of(&f.metadata()?);
        let mut sha = sha2::Sha256::new();
        let mut total = 0u64;
        loop {
            let n = match f.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            sha.update(&buf[..n]);
            total += n as u64;
        }
        let after = Stamp::of(&f.metadata()?);
        if after != before || total != before.size {
            return Ok(Hashed::Changed);
        }
        Ok(Hashed::Done(before, sha.finalize().into()))
    };
    run().unwrap_or_else(|e| Hashed::Failed(format!("{}: {e}", path.display())))
}

/// A running job's artifact directory.
struct Watch {
    dir: PathBuf,
    /// Where the job runs: announced relative paths start there.
    cwd: PathBuf,
    /// Each file's stamp at the last look.
    last: HashMap<PathBuf, Stamp>,
}

/// A file being offered.
struct Item {
    job_id: u64,
    /// The file as the job made it.
    source: PathBuf,
    /// Its hard link in `outgoing/` (None: the link failed, e.g. across
    /// file systems; the source is read).
    link: Option<PathBuf>,
    kind: ArtifactKind,
    name: heapless::String<{ abi::NAME_MAX }>,
    step: Option<u64>,
    metrics: Metrics,
    /// Found in the artifact directory (not announced).
    from_dir: bool,
    tries: u32,
    state: State,
}

impl Item {
    fn path(&self) -> &Path {
        self.link.as_deref().unwrap_or(&self.source)
    }

    fn label(&self) -> String {
        format!("job {} {}/{}", self.job_id, self.kind, self.name)
    }
}

enum State {
    /// To be hashed (not before this time).
    Queued {
        not_before_ms: u64,
    },
    Hashing,
    Offered(Offered),
}

struct Offered {
    transfer: u64,
    stamp: Stamp,
    digest: [u8; 32],
    /// The offer went out in this session.
    announced: bool,
    /// Bytes being sent (after a want).
    send: Option<Cursor>,
}

struct Cursor {
    file: File,
    next: u64,
}

/// `state.json`.
#[derive(Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    /// The opsd incarnation the offers are for.
    owner: Option<u64>,
    /// The next transfer number.
    next_number: u64,
    /// The next link's name.
    #[serde(default)]
    next_link: u64,
    items: Vec<ItemRecord>,
    /// Files of the artifact directories already taken, and as what.
    seen: Vec<(u64, PathBuf, Stamp)>,
}

#[derive(Serialize, Deserialize)]
struct ItemRecord {
    job_id: u64,
    source: PathBuf,
    link: Option<PathBuf>,
    kind: ArtifactKind,
    name: String,
    step: Option<u64>,
    /// Values as text: JSON has no NaN.
    metrics: Vec<(String, String)>,
    from_dir: bool,
    offer: Option<(u64, Stamp, [u8; 32])>,
}

/// The artifact transfers of one bridge.
pub struct Artifacts {
    dir: PathBuf,
    owner: Option<u64>,
    next_number: u64,
    next_link: u64,
    items: BTreeMap<u64, Item>,
    next_item: u64,
    watches: BTreeMap<u64, Watch>,
    seen: BTreeMap<(u64, PathBuf), Stamp>,
    hasher: Hasher,
    next_scan_ms: u64,
    /// The pump's numbers of the chunks not acknowledged yet.
    in_flight: VecDeque<u64>,
    /// A chunk buffer of CHUNK_MAX bytes, reused.
    scratch: Option<Box<heapless::Vec<u8, CHUNK_MAX>>>,
    dirty: bool,
}

impl Artifacts {
    /// The transfers of the bridge on `state_dir`, as the last one left
    /// them (a state file that cannot be read is a warning: nothing
    /// pending).
    pub fn open(state_dir: &Path, warnings: &mut Vec<String>) -> Artifacts {
        let dir = state_dir.join(DIR);
        let mut me = Artifacts {
            dir: dir.clone(),
            owner: None,
            next_number: 1,
            next_link: 1,
            items: BTreeMap::new(),
            next_item: 1,
            watches: BTreeMap::new(),
            seen: BTreeMap::new(),
            hasher: Hasher::start(),
            next_scan_ms: 0,
            in_flight: VecDeque::new(),
            scratch: None,
            dirty: false,
        };
        if let Err(e) = std::fs::create_dir_all(dir.join(OUTGOING)) {
            warnings.push(format!("artifacts: {}: {e}", dir.display()));
        }
        let file: StateFile = match read_json(&dir.join(STATE_FILE)) {
            Ok(f) => f.unwrap_or_default(),
            Err(e) => {
                warnings.push(format!("artifacts: {e}; starting with nothing pending"));
                StateFile::default()
            }
        };
        me.owner = file.owner;
        me.next_number = file.next_number.max(1);
        me.next_link = file.next_link.max(1);
        for r in file.items {
            let Ok(name) = heapless::String::try_from(r.name.as_str()) else {
                continue;
            };
            let metrics = r
                .metrics
                .iter()
                .filter_map(|(n, v)| {
                    Some(ArtifactMetric {
                        name: heapless::String::try_from(n.as_str()).ok()?,
                        value: v.parse().ok()?,
                    })
                })
                .take(abi::METRICS_MAX)
                .collect();
            let state = match r.offer {
                Some((transfer, stamp, digest)) => {
                    me.next_number = me.next_number.max(transfer + 1);
                    State::Offered(Offered {
                        transfer,
                        stamp,
                        digest,
                        announced: false,
                        send: None,
                    })
                }
                None => State::Queued { not_before_ms: 0 },
            };
            me.insert(Item {
                job_id: r.job_id,
                source: r.source,
                link: r.link,
                kind: r.kind,
                name,
                step: r.step,
                metrics,
                from_dir: r.from_dir,
                tries: 0,
                state,
            });
        }
        me.seen = file.seen.into_iter().map(|(j, p, s)| ((j, p), s)).collect();
        // Links of files no longer pending (a crash between a link and
        // the state's write).
        let kept: Vec<PathBuf> = me.items.values().filter_map(|i| i.link.clone()).collect();
        if let Ok(entries) = std::fs::read_dir(dir.join(OUTGOING)) {
            for e in entries.flatten() {
                if !kept.contains(&e.path()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        me
    }

    /// Files waiting to be hashed, offered or sent.
    pub fn pending(&self) -> usize {
        self.items.len()
    }

    /// Bytes are being sent (the bridge's loop then rounds faster).
    pub fn sending(&self) -> bool {
        self.items
            .values()
            .any(|i| matches!(&i.state, State::Offered(o) if o.send.is_some()))
    }

    /// Watches the artifact directory of a job (started, or re-adopted
    /// after a restart); its cwd is read from its `spec.json`.
    pub fn watch(&mut self, job_id: u64, job_dir: &Path) {
        let cwd = match read_json::<JobSpec>(&job_dir.join(records::SPEC)) {
            Ok(Some(spec)) => spec.cwd,
            _ => None,
        };
        let base = std::env::current_dir().unwrap_or_default();
        self.watches.insert(
            job_id,
            Watch {
                dir: job_dir.join(records::ARTIFACTS),
                cwd: base.join(cwd.as_deref().unwrap_or(".")),
                last: HashMap::new(),
            },
        );
    }

    /// The job has ended: whatever is in its directory is taken now
    /// (stable or not), then it is no longer watched.
    pub fn job_ended(&mut self, job_id: u64, warnings: &mut Vec<String>) {
        self.scan(job_id, true, warnings);
        self.watches.remove(&job_id);
    }

    /// The job was forgotten (its directory deleted): what was taken of it
    /// is forgotten too; its pending files stay (they are linked).
    pub fn forget_job(&mut self, job_id: u64) {
        self.watches.remove(&job_id);
        let before = self.seen.len();
        self.seen.retain(|(j, _), _| *j != job_id);
        self.dirty |= self.seen.len() != before;
    }

    /// An announce line of `job_id`'s stdout.
    pub fn announce(&mut self, job_id: u64, a: Announce, warnings: &mut Vec<String>) {
        let watch = self.watches.get(&job_id);
        let path = match (a.path.is_absolute(), watch) {
            (true, _) => a.path.clone(),
            (false, Some(w)) => w.cwd.join(&a.path),
            (false, None) => std::env::current_dir().unwrap_or_default().join(&a.path),
        };
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        let meta = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => {
                return warnings.push(format!(
                    "job {job_id}: announced artifact {}: not a file",
                    path.display()
                ));
            }
            Err(e) => return warnings.push(format!("job {job_id}: announced artifact {}: {e}", path.display())),
        };
        let placed = watch.and_then(|w| announce::placement(&w.dir, &path));
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let kind = a
            .kind
            .or(placed.as_ref().map(|p| p.0))
            .unwrap_or_else(|| announce::guess_kind(file_name));
        let name = a
            .name
            .clone()
            .or(placed.map(|p| p.1))
            .unwrap_or_else(|| file_name.to_string());
        let name = match announce::check_name(&name).map(|()| heapless::String::try_from(name.as_str())) {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => {
                return warnings.push(format!(
                    "job {job_id}: announced artifact {}: {}",
                    path.display(),
                    announce::check_name(&name).err().unwrap_or_default()
                ));
            }
        };
        let (step, metrics) = if a.step.is_none() && a.metrics.is_empty() {
            self.sidecar(job_id, &path, warnings)
        } else {
            (a.step, a.metrics)
        };
        // The directory's poll is not to take it again as it is now.
        if watch.is_some_and(|w| path.starts_with(&w.dir)) {
            self.seen.insert((job_id, path.clone()), Stamp::of(&meta));
            self.dirty = true;
        }
        // One of the directory's, not offered yet: it becomes this one.
        if let Some(item) = self
            .items
            .values_mut()
            .find(|i| i.job_id == job_id && i.from_dir && i.source == path && !matches!(i.state, State::Offered(_)))
        {
            (item.kind, item.name, item.step, item.metrics) = (kind, name, step, metrics);
            item.from_dir = false;
            self.dirty = true;
            return;
        }
        self.add(job_id, path, kind, name, step, metrics, false, warnings);
    }

    /// A session with opsd `incarnation` began (`previous_owner`: the
    /// supervisor's record of whose its jobs were). Another opsd than the
    /// one the offers were for: they are dropped (its job ids are not
    /// these). The same one: every pending offer goes out again.
    pub fn on_session(&mut self, incarnation: u64, previous_owner: Option<u64>, warnings: &mut Vec<String>) {
        let other = |o: Option<u64>| o.is_some_and(|o| o != incarnation);
        if other(previous_owner) || other(self.owner) {
            let n = self.items.len();
            for id in self.items.keys().copied().collect::<Vec<_>>() {
                self.remove(id);
            }
            if n > 0 {
                warnings.push(format!(
                    "opsd restarted: dropped {n} artifact offer(s) of its previous run"
                ));
            }
            self.watches.clear();
            self.seen.clear();
        }
        self.owner = Some(incarnation);
        for item in self.items.values_mut() {
            if let State::Offered(o) = &mut item.state {
                o.announced = false;
                o.send = None;
            }
        }
        self.in_flight.clear();
        self.dirty = true;
    }

    /// opsd wants the bytes of `transfer` from `offset`.
    pub fn on_want(&mut self, transfer: u64, offset: u64, now_ms: u64, warnings: &mut Vec<String>) {
        let Some(id) = self.by_transfer(transfer) else {
            return warnings.push(format!("artifact transfer {transfer} wanted, but not offered"));
        };
        let Some(item) = self.items.get_mut(&id) else { return };
        let (label, file) = (item.label(), File::open(item.path()));
        let State::Offered(o) = &mut item.state else { return };
        if offset > o.stamp.size {
            return warnings.push(format!(
                "artifact transfer {transfer} ({label}) wanted from {offset}, past its {} bytes",
                o.stamp.size
            ));
        }
        match file.and_then(|f| Ok((Stamp::of(&f.metadata()?), f))) {
            Ok((stamp, file)) if stamp == o.stamp => o.send = Some(Cursor { file, next: offset }),
            _ => self.changed(id, now_ms, warnings),
        }
    }

    /// How opsd ended `transfer`: logged, and the file forgotten.
    pub fn on_done(&mut self, transfer: u64, outcome: ArtifactOutcome, warnings: &mut Vec<String>) {
        let Some(id) = self.by_transfer(transfer) else {
            return;
        };
        let label = self.items[&id].label();
        warnings.push(match outcome {
            ArtifactOutcome::Stored { version } => {
                format!("artifact {label} stored as v{version} (transfer {transfer})")
            }
            ArtifactOutcome::Unchanged { version } => {
                format!("artifact {label} unchanged, still v{version} (transfer {transfer})")
            }
            ArtifactOutcome::Refused { reason } => {
                format!("artifact {label} refused by opsd: {reason} (transfer {transfer})")
            }
        });
        self.remove(id);
    }

    /// One round: hashes that finished become offers, the directories are
    /// looked at (every [`SCAN_MS`]), new files go to the hasher, and the
    /// state file is written if anything changed.
    pub fn poll(&mut self, now_ms: u64, warnings: &mut Vec<String>) {
        while let Ok((id, hashed)) = self.hasher.results.try_recv() {
            let Some(item) = self.items.get_mut(&id) else { continue };
            match hashed {
                Hashed::Done(stamp, digest) => {
                    let transfer = self.next_number;
                    self.next_number += 1;
                    item.state = State::Offered(Offered {
                        transfer,
                        stamp,
                        digest,
                        announced: false,
                        send: None,
                    });
                    self.dirty = true;
                }
                Hashed::Changed => self.changed(id, now_ms, warnings),
                Hashed::Failed(e) => {
                    warnings.push(format!("artifact {}: {e}", item.label()));
                    self.remove(id);
                }
            }
        }
        if now_ms >= self.next_scan_ms {
            self.next_scan_ms = now_ms + SCAN_MS;
            for job_id in self.watches.keys().copied().collect::<Vec<_>>() {
                self.scan(job_id, false, warnings);
            }
        }
        for (&id, item) in &mut self.items {
            if let State::Queued { not_before_ms } = item.state
                && not_before_ms <= now_ms
                && self.hasher.jobs.send((id, item.path().to_path_buf())).is_ok()
            {
                item.state = State::Hashing;
            }
        }
        if self.dirty {
            match atomic_write_json(&self.dir.join(STATE_FILE), &self.record()) {
                Ok(()) => self.dirty = false,
                Err(e) => warnings.push(format!("artifacts: writing the state file: {e}")),
            }
        }
    }

    /// Sends what the link takes: offers not sent in this session, then
    /// chunks of the wanted transfers ([`CHUNKS_PER_ROUND`] at most, and
    /// no more than [`CHUNKS_IN_FLIGHT`] unacknowledged). Only while opsd
    /// is connected.
    pub fn drain(&mut self, pump: &mut LinkPump, now_ms: u64, warnings: &mut Vec<String>) {
        if !pump.is_connected() || self.owner.is_none() {
            return;
        }
        for item in self.items.values_mut() {
            let State::Offered(o) = &mut item.state else { continue };
            if o.announced {
                continue;
            }
            let offer = ArtifactOffer {
                job_id: item.job_id,
                kind: item.kind,
                name: item.name.clone(),
                size: o.stamp.size,
                digest: o.digest,
                step: item.step,
                metrics: item.metrics.clone(),
                created_ms: o.stamp.mtime_ns / 1_000_000,
            };
            let msg = LinkMessage::ArtifactOffer {
                transfer: o.transfer,
                offer: Box::new(offer),
            };
            if pump.send(&msg).is_err() {
                return;
            }
            o.announced = true;
        }
        let acked = pump.acked();
        while self.in_flight.front().is_some_and(|&n| n <= acked) {
            self.in_flight.pop_front();
        }
        let mut budget = CHUNKS_PER_ROUND;
        let mut changed = Vec::new();
        'items: for (&id, item) in &mut self.items {
            let State::Offered(o) = &mut item.state else { continue };
            let Some(cursor) = &mut o.send else { continue };
            // Once per round: the file is still the one offered.
            if Stamp::at(item.link.as_deref().unwrap_or(&item.source)) != Some(o.stamp) {
                changed.push(id);
                continue;
            }
            loop {
                if budget == 0 || self.in_flight.len() >= CHUNKS_IN_FLIGHT || !pump.has_room() {
                    break 'items;
                }
                let n = (o.stamp.size - cursor.next).min(CHUNK_MAX as u64) as usize;
                let mut bytes = self
                    .scratch
                    .take()
                    .unwrap_or_else(|| Box::new(heapless::Vec::from_array([0u8; CHUNK_MAX])));
                bytes.truncate(n);
                if cursor.file.read_exact_at(&mut bytes, cursor.next).is_err() {
                    changed.push(id);
                    continue 'items;
                }
                let msg = LinkMessage::ArtifactChunk {
                    transfer: o.transfer,
                    offset: cursor.next,
                    bytes,
                };
                let sent = pump.send(&msg);
                if let LinkMessage::ArtifactChunk { bytes, .. } = msg
                    && bytes.len() == CHUNK_MAX
                {
                    self.scratch = Some(bytes);
                }
                match sent {
                    Ok(k) => self.in_flight.push_back(k),
                    Err(_) => break 'items,
                }
                budget -= 1;
                cursor.next += n as u64;
                // The end (an empty chunk when opsd wanted from the end).
                if cursor.next >= o.stamp.size {
                    o.send = None;
                    break;
                }
            }
        }
        for id in changed {
            if let Some(item) = self.items.get(&id) {
                warnings.push(format!(
                    "artifact {} changed while it was sent: offered again",
                    item.label()
                ));
            }
            self.changed(id, now_ms, warnings);
        }
    }

    /// Looks at a job's artifact directory: files whose stamp did not
    /// change since the last look (or all of them, `all`) and that were
    /// not taken as they are are taken.
    fn scan(&mut self, job_id: u64, all: bool, warnings: &mut Vec<String>) {
        let Some(watch) = self.watches.get_mut(&job_id) else {
            return;
        };
        let mut last = HashMap::new();
        let mut taken = Vec::new();
        for (path, kind, name) in list_files(&watch.dir) {
            let Some(stamp) = std::fs::metadata(&path)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| Stamp::of(&m))
            else {
                continue;
            };
            let key = (job_id, path);
            if self.seen.get(&key) == Some(&stamp) {
                last.insert(key.1, stamp);
                continue;
            }
            let stable = all || watch.last.get(&key.1) == Some(&stamp);
            last.insert(key.1.clone(), stamp);
            if stable {
                self.seen.insert(key.clone(), stamp);
                self.dirty = true;
                taken.push((key.1, kind, name));
            }
        }
        watch.last = last;
        for (path, kind, name) in taken {
            let name = match announce::check_name(&name).map(|()| heapless::String::try_from(name.as_str())) {
                Ok(Ok(n)) => n,
                _ => {
                    warnings.push(format!(
                        "job {job_id}: artifact {} not offered: {}",
                        path.display(),
                        announce::check_name(&name).err().unwrap_or_default()
                    ));
                    continue;
                }
            };
            let (step, metrics) = self.sidecar(job_id, &path, warnings);
            self.add(job_id, path, kind, name, step, metrics, true, warnings);
        }
    }

    /// Step and metrics from `path`'s sidecar, if it has one.
    fn sidecar(&self, job_id: u64, path: &Path, warnings: &mut Vec<String>) -> (Option<u64>, Metrics) {
        match announce::read_sidecar(path) {
            None => (None, Metrics::new()),
            Some(Ok(found)) => found,
            Some(Err(e)) => {
                warnings.push(format!("job {job_id}: artifact sidecar ignored: {e}"));
                (None, Metrics::new())
            }
        }
    }

    /// Takes a file: linked into `outgoing/` and queued for the hasher.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        job_id: u64,
        source: PathBuf,
        kind: ArtifactKind,
        name: heapless::String<{ abi::NAME_MAX }>,
        step: Option<u64>,
        metrics: Metrics,
        from_dir: bool,
        warnings: &mut Vec<String>,
    ) {
        let link = self.dir.join(OUTGOING).join(self.next_link.to_string());
        self.next_link += 1;
        let _ = std::fs::remove_file(&link);
        let link = match std::fs::hard_link(&source, &link) {
            Ok(()) => Some(link),
            Err(e) => {
                warnings.push(format!(
                    "job {job_id}: artifact {} read in place (no link: {e})",
                    source.display()
                ));
                None
            }
        };
        self.insert(Item {
            job_id,
            source,
            link,
            kind,
            name,
            step,
            metrics,
            from_dir,
            tries: 0,
            state: State::Queued { not_before_ms: 0 },
        });
    }

    fn insert(&mut self, item: Item) {
        self.items.insert(self.next_item, item);
        self.next_item += 1;
        self.dirty = true;
    }

    /// The file changed while it was hashed or sent. One of a watched
    /// directory is left to the next looks (taken again once stable);
    /// others are hashed again a little later, [`TRIES_MAX`] times.
    fn changed(&mut self, id: u64, now_ms: u64, warnings: &mut Vec<String>) {
        let Some(item) = self.items.get_mut(&id) else { return };
        item.tries += 1;
        if item.from_dir && self.watches.contains_key(&item.job_id) {
            self.seen.remove(&(item.job_id, item.source.clone()));
            self.remove(id);
        } else if item.tries < TRIES_MAX {
            item.state = State::Queued {
                not_before_ms: now_ms + SCAN_MS,
            };
            self.dirty = true;
        } else {
            warnings.push(format!(
                "artifact {} given up: it changed {TRIES_MAX} times while it was read",
                item.label()
            ));
            self.remove(id);
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(item) = self.items.remove(&id)
            && let Some(link) = item.link
        {
            let _ = std::fs::remove_file(link);
        }
        self.dirty = true;
    }

    fn by_transfer(&self, transfer: u64) -> Option<u64> {
        self.items
            .iter()
            .find(|(_, i)| matches!(&i.state, State::Offered(o) if o.transfer == transfer))
            .map(|(&id, _)| id)
    }

    fn record(&self) -> StateFile {
        StateFile {
            version: VERSION,
            owner: self.owner,
            next_number: self.next_number,
            next_link: self.next_link,
            items: self
                .items
                .values()
                .map(|i| ItemRecord {
                    job_id: i.job_id,
                    source: i.source.clone(),
                    link: i.link.clone(),
                    kind: i.kind,
                    name: i.name.to_string(),
                    step: i.step,
                    metrics: i
                        .metrics
                        .iter()
                        .map(|m| (m.name.to_string(), m.value.to_string()))
                        .collect(),
                    from_dir: i.from_dir,
                    offer: match &i.state {
                        State::Offered(o) => Some((o.transfer, o.stamp, o.digest)),
                        _ => None,
                    },
                })
                .collect(),
            seen: self.seen.iter().map(|((j, p), s)| (*j, p.clone(), *s)).collect(),
        }
    }
}

/// The files of an artifact directory that may be offered, with the kind
/// and name their place gives: `dir/<name>` (kind by extension) and
/// `dir/<kind>/<name>`. Other directories, and names that are not UTF-8,
/// are left alone.
fn list_files(dir: &Path) -> Vec<(PathBuf, ArtifactKind, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let Ok(ty) = e.file_type() else { continue };
        if ty.is_dir() {
            let Some(kind) = ArtifactKind::from_name(&name) else {
                continue;
            };
            let Ok(inner) = std::fs::read_dir(e.path()) else {
                continue;
            };
            for f in inner.flatten() {
                let Ok(file) = f.file_name().into_string() else {
                    continue;
                };
                if f.file_type().is_ok_and(|t| !t.is_dir()) && announce::offerable(&file) {
                    out.push((f.path(), kind, file));
                }
            }
        } else if announce::offerable(&name) {
            out.push((e.path(), announce::guess_kind(&name), name));
        }
    }
    out.sort();
    out
}
