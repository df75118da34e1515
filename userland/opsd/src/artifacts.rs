//! opsd's artifact store (docs/telemetry.md, "Artifacts"): the pure
//! store of `telemetry-core` (versions, aliases, retention, the write
//! protocol as data) driven over the table's [`Store`] (the disk), fed by
//! the bridge's offers and chunks, and read by the console and by the
//! bridge's downloads.
//!
//! * **An offer** ([`Artifacts::on_offer`]) is a new version unless its
//!   digest is the latest's (`Unchanged`). A new version whose object is
//!   stored already (the same bytes as another version) is written at
//!   once; otherwise opsd asks for the bytes (`ArtifactWant`) and receives
//!   them into `/artifacts/objects/<digest>.tmp`, hashing as they come.
//! * **The end of a transfer**: a digest that does not match the bytes
//!   undoes the version (`Refused`, nothing visible); a good one is
//!   synced and renamed into place, then the manifest and the index are
//!   written (each to a `.tmp`, synced, renamed), then retention runs and
//!   what it drops is removed (the space shows in `df`). Writes of a
//!   transfer still in progress wait: no manifest ever names an object
//!   that is not on the disk.
//! * **A re-offer** of a file being received (the bridge restarted)
//!   resumes from the bytes already received.
//! * **Reads** (a download, `artifacts get`) hash the whole object first
//!   and serve nothing if the digest does not match.
//! * **Boot** ([`Artifacts::restore`]): leftovers `.tmp` are removed, the
//!   manifests restored, objects no version names removed, versions whose
//!   object is gone forgotten (a warning each).
//!
//! The policy file `/ops/artifacts.conf` ([`parse_policy`]):
//!
//! ```text
//! # monitor KIND[/NAME] METRIC min|max       (what `best` ranks by)
//! monitor model val_loss min
//! # retain KIND [keep_last_n=N] [top_k=K:METRIC:min|max] [max_bytes=N[K|M|G]] [ttl=DURATION]
//! retain model keep_last_n=2 top_k=1:val_loss:min
//! ```

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use aether_abi::artifact::{
    ArtifactInfo, ArtifactKind, ArtifactOffer, ArtifactOutcome, CHUNK_MAX, FETCH_MAX, LIST_PAGE,
};
use aether_abi::event::truncated;
use aether_abi::fs::FsError;
use aether_abi::link::LinkMessage;
use aether_abi::telemetry::{TelemetryRequest, TelemetryResponse};
use heapless::Vec as HVec;
use telemetry_core::artifacts::{
    ArtifactError, Config, Digest, Hasher, Key, Kind, Manifest, Mode, Monitor, Offer, Retention, Step,
    Store as ArtifactStore, TopK, Write, paths,
};

use crate::persist::Store;

/// The policy file.
pub const POLICY_PATH: &str = "/ops/artifacts.conf";
/// Transfers received at once, at most (a further offer is refused: the
/// bridge offers it again later).
pub const RECEIVING_MAX: usize = 8;
/// `ArtifactBytes` messages queued at most (a fetch beyond is refused as
/// busy).
const FETCH_QUEUE_MAX: usize = 4 * (FETCH_MAX as usize / CHUNK_MAX);
/// Bytes read at a time to hash an object.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes of a transfer gathered before they are appended to its `.tmp`
/// (one file call per 256 KiB, not per 8 KiB chunk: opening the file is
/// most of a small append's cost).
const WRITE_BATCH: usize = 256 * 1024;

struct Receiving {
    key: Key,
    version: u32,
    digest: Digest,
    size: u64,
    tmp: String,
    received: u64,
    hasher: Hasher,
    /// Received, not yet appended.
    buf: Vec<u8>,
}

/// The store and its transfers.
pub struct Artifacts {
    store: ArtifactStore,
    receiving: BTreeMap<u64, Receiving>,
    out: VecDeque<LinkMessage>,
    fetches: VecDeque<LinkMessage>,
    warnings: Vec<String>,
    /// Bytes retention gave back, since boot.
    pub freed_bytes: u64,
}

impl Default for Artifacts {
    fn default() -> Self {
        Artifacts::new()
    }
}

/// A reason for people, from a store error.
fn reason(e: &ArtifactError) -> String {
    format!("{e}")
}

fn fs_reason(what: &str, e: FsError) -> String {
    format!("{what}: {e}")
}

impl Artifacts {
    pub fn new() -> Self {
        Artifacts {
            store: ArtifactStore::new(Config::default()),
            receiving: BTreeMap::new(),
            out: VecDeque::new(),
            fetches: VecDeque::new(),
            warnings: Vec::new(),
            freed_bytes: 0,
        }
    }

    pub fn store(&self) -> &ArtifactStore {
        &self.store
    }

    /// Warnings for the console log (damaged manifests, missing objects).
    pub fn drain_warnings(&mut self) -> impl Iterator<Item = String> + '_ {
        self.warnings.drain(..)
    }

    /// The next message for the bridge: answers to offers first, then the
    /// bytes of fetches.
    pub fn pop_link(&mut self) -> Option<LinkMessage> {
        self.out.pop_front().or_else(|| self.fetches.pop_front())
    }

    /// Loads what the disk holds (module header, "Boot"), and the policy.
    pub fn restore(&mut self, disk: &mut dyn Store, now_ms: u64) {
        if let Err(e) = self.load_policy(disk) {
            self.warnings.push(e);
        }
        let names = match disk.list(paths::ROOT) {
            Ok(n) => n,
            Err(FsError::NotFound | FsError::NoFileSystem) => return,
            Err(e) => return self.warnings.push(fs_reason("cannot read /artifacts", e)),
        };
        let mut objects = Vec::new();
        if let Ok(files) = disk.list(paths::OBJECTS_DIR) {
            for f in files {
                let path = format!("{}/{f}", paths::OBJECTS_DIR);
                match paths::ObjectFile::parse(&f) {
                    paths::ObjectFile::Object(d) => objects.push(d),
                    paths::ObjectFile::Temporary => {
                        let _ = disk.remove(&path);
                    }
                    paths::ObjectFile::Other => self.warnings.push(format!("{path}: not opsd's: left alone")),
                }
            }
        }
        for job in names.iter().filter(|n| n.as_str() != "objects") {
            let job_dir = format!("{}/{job}", paths::ROOT);
            for kind in disk.list(&job_dir).unwrap_or_default() {
                let kind_dir = format!("{job_dir}/{kind}");
                for name in disk.list(&kind_dir).unwrap_or_default() {
                    let dir = format!("{kind_dir}/{name}");
                    for file in disk.list(&dir).unwrap_or_default() {
                        let path = format!("{dir}/{file}");
                        match paths::ArtifactFile::parse(&file) {
                            paths::ArtifactFile::Manifest(_) => self.restore_manifest(disk, &path),
                            paths::ArtifactFile::Temporary => {
                                let _ = disk.remove(&path);
                            }
                            paths::ArtifactFile::Index | paths::ArtifactFile::Other => {}
                        }
                    }
                }
            }
        }
        let rec = self.store.reconcile(&objects);
        for d in &rec.orphans {
            let _ = disk.remove(&paths::object_path(d));
        }
        for (key, version) in &rec.missing {
            self.warnings.push(format!(
                "artifact {key} v{version}: its object is gone: version forgotten"
            ));
            let _ = self.store.forget(key, *version);
        }
        self.gc(disk, now_ms);
    }

    fn restore_manifest(&mut self, disk: &mut dyn Store, path: &str) {
        let bytes = match read_all(disk, path, 64 * 1024) {
            Ok(b) => b,
            Err(e) => return self.warnings.push(fs_reason(path, e)),
        };
        match Manifest::decode(&bytes) {
            Ok(m) if m.path() == path => {
                if let Err(e) = self.store.restore(&m) {
                    self.warnings.push(format!("{path}: {}: skipped", reason(&e)));
                }
            }
            Ok(_) => self.warnings.push(format!("{path}: names another place: skipped")),
            Err(e) => self.warnings.push(format!("{path}: {e}: skipped")),
        }
    }

    /// Reads the policy file; the error for people if it has one (the
    /// policy stays as it was).
    pub fn load_policy(&mut self, disk: &mut dyn Store) -> Result<usize, String> {
        let bytes = match read_all(disk, POLICY_PATH, 64 * 1024) {
            Ok(b) => b,
            Err(FsError::NotFound | FsError::NoFileSystem) => return Ok(0),
            Err(e) => return Err(fs_reason(POLICY_PATH, e)),
        };
        let text = core::str::from_utf8(&bytes).map_err(|_| format!("{POLICY_PATH}: not UTF-8"))?;
        let (config, rules) = parse_policy(text).map_err(|(line, why)| format!("{POLICY_PATH} line {line}: {why}"))?;
        self.store.set_config(config);
        Ok(rules)
    }

    /// A file the bridge offers.
    pub fn on_offer(&mut self, transfer: u64, offer: &ArtifactOffer, disk: Option<&mut dyn Store>, now_ms: u64) {
        let Some(disk) = disk else {
            return self.done(transfer, refused("there is no disk to keep artifacts on"));
        };
        let key = match Key::new(offer.job_id, offer.kind, &offer.name) {
            Ok(k) => k,
            Err(e) => return self.done(transfer, refused(&reason(&e))),
        };
        let digest = Digest::from_bytes(offer.digest);
        // A transfer of the same bytes in progress (the bridge offers again
        // after a restart): go on from where it is.
        if let Some(old) = self
            .receiving
            .iter()
            .find(|(_, r)| r.key == key && r.digest == digest)
            .map(|(&t, _)| t)
            && let Some(r) = self.receiving.remove(&old)
        {
            let offset = r.received;
            self.receiving.insert(transfer, r);
            self.out.push_back(LinkMessage::ArtifactWant { transfer, offset });
            return;
        }
        if self.receiving.len() >= RECEIVING_MAX {
            return self.done(transfer, refused("too many transfers at once: offer it again later"));
        }
        let metrics: Vec<(&str, f64)> = offer.metrics.iter().map(|m| (m.name.as_str(), m.value)).collect();
        let created = if offer.created_ms == 0 {
            now_ms
        } else {
            offer.created_ms
        };
        match self
            .store
            .offer(created, &key, digest, offer.size, offer.step, &metrics)
        {
            Err(e) => self.done(transfer, refused(&reason(&e))),
            Ok(Offer::Same { version }) => self.done(transfer, ArtifactOutcome::Unchanged { version }),
            Ok(Offer::New {
                version,
                object_exists: true,
            }) => {
                self.finish_version(disk, transfer, version, now_ms);
            }
            Ok(Offer::New { version, .. }) => {
                let tmp = paths::tmp_path(&paths::object_path(&digest));
                let made = make_dirs(disk, paths::OBJECTS_DIR).and_then(|()| disk.write(&tmp, &[]));
                if let Err(e) = made {
                    let _ = self.store.forget(&key, version);
                    return self.done(transfer, refused(&fs_reason("cannot receive", e)));
                }
                self.receiving.insert(
                    transfer,
                    Receiving {
                        key,
                        version,
                        digest,
                        size: offer.size,
                        tmp,
                        received: 0,
                        hasher: Hasher::new(),
                        buf: Vec::new(),
                    },
                );
                if offer.size == 0 {
                    self.complete(disk, transfer, now_ms);
                } else {
                    self.out.push_back(LinkMessage::ArtifactWant { transfer, offset: 0 });
                }
            }
        }
    }

    /// Bytes of a transfer.
    pub fn on_chunk(&mut self, transfer: u64, offset: u64, bytes: &[u8], disk: Option<&mut dyn Store>, now_ms: u64) {
        let Some(disk) = disk else { return };
        let Some(r) = self.receiving.get_mut(&transfer) else {
            return;
        };
        if offset != r.received {
            // A gap (chunks lost across a restart): ask again from where
            // the file is; a repeat is dropped.
            if offset > r.received {
                let from = r.received;
                self.out.push_back(LinkMessage::ArtifactWant { transfer, offset: from });
            }
            return;
        }
        if r.received + bytes.len() as u64 > r.size {
            return self.abort(disk, transfer, "more bytes than offered");
        }
        r.hasher.update(bytes);
        r.received += bytes.len() as u64;
        r.buf.extend_from_slice(bytes);
        if r.buf.len() >= WRITE_BATCH || r.received == r.size {
            let written = disk.append(&r.tmp, &r.buf);
            r.buf.clear();
            if let Err(e) = written {
                return self.abort(disk, transfer, &fs_reason("cannot write", e));
            }
        }
        if r.received == r.size {
            self.complete(disk, transfer, now_ms);
        }
    }

    fn abort(&mut self, disk: &mut dyn Store, transfer: u64, why: &str) {
        if let Some(r) = self.receiving.remove(&transfer) {
            let _ = disk.remove(&r.tmp);
            let _ = self.store.forget(&r.key, r.version);
        }
        self.done(transfer, refused(why));
        self.flush(disk);
    }

    /// All bytes are in: check, put in place, write the version.
    fn complete(&mut self, disk: &mut dyn Store, transfer: u64, now_ms: u64) {
        let Some(r) = self.receiving.remove(&transfer) else {
            return;
        };
        let got = r.hasher.finish();
        if got != r.digest {
            let _ = disk.remove(&r.tmp);
            let _ = self.store.forget(&r.key, r.version);
            self.done(
                transfer,
                refused("the bytes received do not have the offered sha256: nothing stored"),
            );
            return self.flush(disk);
        }
        let object = paths::object_path(&r.digest);
        let placed = disk.sync().and_then(|()| disk.rename(&r.tmp, &object));
        if let Err(e) = placed {
            let _ = disk.remove(&r.tmp);
            let _ = self.store.forget(&r.key, r.version);
            self.done(transfer, refused(&fs_reason("cannot store", e)));
            return self.flush(disk);
        }
        self.store.done(&Write::Object {
            digest: r.digest,
            size: r.size,
        });
        self.finish_version(disk, transfer, r.version, now_ms);
    }

    fn finish_version(&mut self, disk: &mut dyn Store, transfer: u64, version: u32, now_ms: u64) {
        self.flush(disk);
        self.gc(disk, now_ms);
        self.done(transfer, ArtifactOutcome::Stored { version });
    }

    fn done(&mut self, transfer: u64, outcome: ArtifactOutcome) {
        self.out.push_back(LinkMessage::ArtifactDone { transfer, outcome });
    }

    /// Retention: drops what the policy says, then writes the removals.
    fn gc(&mut self, disk: &mut dyn Store, now_ms: u64) {
        let plan = self.store.plan_gc(now_ms);
        if !plan.is_empty() {
            let applied = self.store.apply_gc(&plan);
            self.freed_bytes += applied.freed_bytes;
        }
        self.flush(disk);
    }

    /// Does the store's pending file work, except what waits for a
    /// transfer in progress; stops at the first failure (tried again at
    /// the next change).
    fn flush(&mut self, disk: &mut dyn Store) {
        for w in self.store.pending() {
            let waits = self.receiving.values().any(|r| match &w {
                Write::Object { digest, .. } => *digest == r.digest,
                Write::Manifest { key, .. } | Write::Index { key, .. } => *key == r.key,
                _ => false,
            });
            if waits {
                continue;
            }
            if let Write::Object { .. } = w {
                // Not received and no transfer: an offer whose object never
                // came (undone by `forget`); nothing to write.
                continue;
            }
            if let Err(e) = do_steps(disk, &w.steps()) {
                self.warnings
                    .push(fs_reason(&format!("artifact store: {}", w.path()), e));
                return;
            }
            self.store.done(&w);
        }
    }

    /// Queues `ArtifactBytes` for a download of up to `FETCH_MAX` bytes
    /// from `offset`; at `offset` 0 the whole object is hashed first and a
    /// mismatch is an error, never bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn on_fetch(
        &mut self,
        id: u32,
        job_id: u64,
        kind: ArtifactKind,
        name: &str,
        selector: &str,
        offset: u64,
        disk: Option<&mut dyn Store>,
    ) {
        let fail = |me: &mut Artifacts, why: &str| {
            me.fetches.push_back(LinkMessage::ArtifactBytes {
                id,
                version: 0,
                size: 0,
                digest: [0; 32],
                offset,
                last: true,
                error: Some(truncated(why)),
                bytes: alloc::boxed::Box::default(),
            });
        };
        let Some(disk) = disk else {
            return fail(self, "there is no disk");
        };
        if self.fetches.len() >= FETCH_QUEUE_MAX {
            return fail(self, "busy: too many downloads at once");
        }
        let (key, version) = match self.lookup(job_id, kind, name, selector) {
            Ok(kv) => kv,
            Err(e) => return fail(self, &e),
        };
        let Some(v) = self.store.version(&key, version) else {
            return fail(self, "no such version");
        };
        let (digest, size) = (v.digest, v.size);
        let path = paths::object_path(&digest);
        if offset == 0
            && let Err(e) = check_object(disk, &path, &digest, size)
        {
            return fail(self, &e);
        }
        if offset > size {
            return fail(self, "offset past the end");
        }
        let end = size.min(offset.saturating_add(FETCH_MAX));
        let mut at = offset;
        loop {
            let n = ((end - at) as usize).min(CHUNK_MAX);
            let mut buf = alloc::vec![0u8; n];
            if let Err(e) = read_exact(disk, &path, at, &mut buf) {
                return fail(self, &fs_reason("cannot read the object", e));
            }
            let last = at + n as u64 >= size;
            self.fetches.push_back(LinkMessage::ArtifactBytes {
                id,
                version,
                size,
                digest: *digest.as_bytes(),
                offset: at,
                last,
                error: None,
                bytes: alloc::boxed::Box::new(HVec::from_slice(&buf).unwrap_or_default()),
            });
            at += n as u64;
            if at >= end {
                return;
            }
        }
    }

    fn lookup(&self, job_id: u64, kind: ArtifactKind, name: &str, selector: &str) -> Result<(Key, u32), String> {
        let key = Key::new(job_id, kind, name).map_err(|e| reason(&e))?;
        let version = self.store.resolve(&key, selector).map_err(|e| reason(&e))?;
        if self.in_transfer(&key, version) {
            return Err(format!("{key} v{version} is still being received"));
        }
        Ok((key, version))
    }

    /// Whether `version`'s bytes are still coming: such a version is not
    /// listed or served (never a half artifact visible).
    fn in_transfer(&self, key: &Key, version: u32) -> bool {
        self.receiving.values().any(|r| r.key == *key && r.version == version)
    }

    fn info(&self, key: &Key, version: u32) -> Option<ArtifactInfo> {
        if self.in_transfer(key, version) {
            return None;
        }
        let v = self.store.version(key, version)?;
        let a = self.store.aliases(key, version)?;
        Some(ArtifactInfo {
            job_id: key.job_id(),
            kind: key.kind(),
            name: truncated(key.name()),
            version,
            digest: *v.digest.as_bytes(),
            size: v.size,
            created_ms: v.created_at_ms,
            step: v.step,
            latest: a.latest,
            best: a.best,
            pinned: a.pinned,
        })
    }

    /// The artifact queries of the `JOB` call.
    pub fn handle(
        &mut self,
        request: TelemetryRequest,
        disk: Option<&mut dyn Store>,
        now_ms: u64,
    ) -> TelemetryResponse {
        let error = |why: &str| TelemetryResponse::ArtifactError { reason: truncated(why) };
        match request {
            TelemetryRequest::Artifacts { job_id, after } => {
                let mut entries = HVec::new();
                let mut all = self
                    .store
                    .keys()
                    .filter(|k| job_id.is_none_or(|j| k.job_id() == j))
                    .flat_map(|k| self.store.versions(k).map(move |(v, _)| (k, v)))
                    .filter(|(k, v)| !self.in_transfer(k, *v))
                    .skip(after as usize);
                for (k, v) in all.by_ref().take(LIST_PAGE) {
                    if let Some(info) = self.info(k, v) {
                        let _ = entries.push(info);
                    }
                }
                TelemetryResponse::Artifacts {
                    entries,
                    more: all.next().is_some(),
                }
            }
            TelemetryRequest::ArtifactPin {
                job_id,
                kind,
                name,
                selector,
                pin,
            } => {
                let (key, version) = match self.lookup(job_id, kind, &name, &selector) {
                    Ok(kv) => kv,
                    Err(e) => return error(&e),
                };
                let r = if pin {
                    self.store.pin(&key, version)
                } else {
                    self.store.unpin(&key, version)
                };
                if let Err(e) = r {
                    return error(&reason(&e));
                }
                if let Some(disk) = disk {
                    // Unpinned, it may go now.
                    self.gc(disk, now_ms);
                }
                TelemetryResponse::Pinned { version, pinned: pin }
            }
            TelemetryRequest::ArtifactCheck {
                job_id,
                kind,
                name,
                selector,
            } => {
                let Some(disk) = disk else {
                    return error("there is no disk");
                };
                let (key, version) = match self.lookup(job_id, kind, &name, &selector) {
                    Ok(kv) => kv,
                    Err(e) => return error(&e),
                };
                let Some(info) = self.info(&key, version) else {
                    return error("no such version");
                };
                let digest = Digest::from_bytes(info.digest);
                let path = paths::object_path(&digest);
                match check_object(disk, &path, &digest, info.size) {
                    Ok(()) => TelemetryResponse::Checked {
                        info,
                        path: truncated(&path),
                    },
                    Err(e) => error(&e),
                }
            }
            TelemetryRequest::ReloadArtifactPolicy => {
                let Some(disk) = disk else {
                    return error("there is no disk");
                };
                match self.load_policy(disk) {
                    Ok(rules) => {
                        self.gc(disk, now_ms);
                        TelemetryResponse::PolicyLoaded { rules: rules as u32 }
                    }
                    Err(e) => error(&e),
                }
            }
            _ => error("not an artifact request"),
        }
    }
}

fn refused(why: &str) -> ArtifactOutcome {
    ArtifactOutcome::Refused { reason: truncated(why) }
}

/// Hashes the object at `path`: `Ok` only if it has `size` bytes and
/// `digest`.
fn check_object(disk: &mut dyn Store, path: &str, digest: &Digest, size: u64) -> Result<(), String> {
    let on_disk = disk.size(path).map_err(|e| fs_reason("the object cannot be read", e))?;
    if on_disk != size {
        return Err(format!(
            "the object has {on_disk} bytes, its manifest says {size}: not served"
        ));
    }
    let mut hasher = Hasher::new();
    let mut buf = alloc::vec![0u8; READ_CHUNK];
    let mut at = 0u64;
    while at < size {
        let n = ((size - at) as usize).min(READ_CHUNK);
        read_exact(disk, path, at, &mut buf[..n]).map_err(|e| fs_reason("the object cannot be read", e))?;
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    if hasher.finish() != *digest {
        return Err(String::from(
            "the object's sha256 does not match its manifest (damaged on the disk): not served",
        ));
    }
    Ok(())
}

fn read_exact(disk: &mut dyn Store, path: &str, mut at: u64, mut buf: &mut [u8]) -> Result<(), FsError> {
    while !buf.is_empty() {
        match disk.read_at(path, at, buf)? {
            0 => return Err(FsError::Io),
            n => {
                let n = n.min(buf.len());
                at += n as u64;
                buf = &mut buf[n..];
            }
        }
    }
    Ok(())
}

fn read_all(disk: &mut dyn Store, path: &str, max: u64) -> Result<Vec<u8>, FsError> {
    let size = disk.size(path)?;
    if size > max {
        return Err(FsError::FileTooLarge);
    }
    let mut buf = alloc::vec![0u8; size as usize];
    read_exact(disk, path, 0, &mut buf)?;
    Ok(buf)
}

/// Makes each missing directory of the absolute `path`.
fn make_dirs(disk: &mut dyn Store, path: &str) -> Result<(), FsError> {
    let ends = path
        .match_indices('/')
        .map(|(i, _)| i)
        .filter(|&i| i > 0)
        .chain(core::iter::once(path.len()));
    for end in ends {
        match disk.mkdir(&path[..end]) {
            Ok(()) | Err(FsError::Exists) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn do_steps(disk: &mut dyn Store, steps: &[Step]) -> Result<(), FsError> {
    for step in steps {
        match step {
            Step::MakeDirs { path } => make_dirs(disk, path)?,
            // Objects are received by the transfer, not here.
            Step::Receive { .. } | Step::Verify { .. } => {}
            Step::WriteFile { path, bytes } => disk.write(path, bytes)?,
            Step::Fsync { .. } => disk.sync()?,
            Step::Rename { from, to } => disk.rename(from, to)?,
            Step::Unlink { path } => match disk.remove(path) {
                Ok(()) | Err(FsError::NotFound) => {}
                Err(e) => return Err(e),
            },
        }
    }
    Ok(())
}

/// Parses the policy file (module header): the store's configuration and
/// the number of rules, or the first error's line and reason.
pub fn parse_policy(text: &str) -> Result<(Config, usize), (usize, String)> {
    let mut config = Config::default();
    let mut rules = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let words: Vec<&str> = raw.split('#').next().unwrap_or("").split_ascii_whitespace().collect();
        let Some((&first, rest)) = words.split_first() else {
            continue;
        };
        let err = |why: String| (line, why);
        match first {
            "monitor" => {
                let [target, metric, mode] = rest else {
                    return Err(err(String::from("monitor takes KIND[/NAME] METRIC min|max")));
                };
                let (kind, name) = match target.split_once('/') {
                    Some((k, n)) => (k, Some(n)),
                    None => (*target, None),
                };
                let kind = Kind::from_name(kind).ok_or_else(|| err(format!("unknown kind `{kind}`")))?;
                let mode = parse_mode(mode).ok_or_else(|| err(format!("mode `{mode}` is not min or max")))?;
                telemetry_core::metrics::check_name(metric).map_err(|e| err(format!("metric `{metric}`: {e}")))?;
                config = config.with_monitor(kind, name, Monitor::new(metric, mode));
            }
            "retain" => {
                let Some((kind, params)) = rest.split_first() else {
                    return Err(err(String::from("retain takes KIND and parameters")));
                };
                let kind = Kind::from_name(kind).ok_or_else(|| err(format!("unknown kind `{kind}`")))?;
                let mut r = Retention::default();
                for p in params {
                    let Some((k, v)) = p.split_once('=') else {
                        return Err(err(format!("`{p}` is not key=value")));
                    };
                    let num = |v: &str| v.parse::<u64>().map_err(|_| err(format!("{k}: `{v}` is not a number")));
                    match k {
                        "keep_last_n" => r.keep_last_n = Some(num(v)?.min(u64::from(u32::MAX)) as u32),
                        "top_k" => {
                            let mut parts = v.split(':');
                            let (Some(n), Some(metric), Some(mode), None) =
                                (parts.next(), parts.next(), parts.next(), parts.next())
                            else {
                                return Err(err(String::from("top_k is K:METRIC:min|max")));
                            };
                            let mode =
                                parse_mode(mode).ok_or_else(|| err(format!("mode `{mode}` is not min or max")))?;
                            r.top_k = Some(TopK::new(num(n)?.min(u64::from(u32::MAX)) as u32, metric, mode));
                        }
                        "max_bytes" => {
                            r.max_bytes = Some(parse_bytes(v).ok_or_else(|| err(format!("max_bytes: `{v}`")))?)
                        }
                        "ttl" => r.ttl_ms = Some(parse_duration(v).ok_or_else(|| err(format!("ttl: `{v}`")))?),
                        _ => {
                            return Err(err(format!(
                                "unknown parameter `{k}` (retain takes keep_last_n, top_k, max_bytes, ttl)"
                            )));
                        }
                    }
                }
                config = config.with_retention(kind, r);
            }
            other => return Err(err(format!("`{other}` is not monitor or retain"))),
        }
        rules += 1;
    }
    Ok((config, rules))
}

fn parse_mode(s: &str) -> Option<Mode> {
    match s {
        "min" => Some(Mode::Min),
        "max" => Some(Mode::Max),
        _ => None,
    }
}

fn parse_bytes(s: &str) -> Option<u64> {
    let (n, mult) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1u64 << 10),
        b'M' => (&s[..s.len() - 1], 1 << 20),
        b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    n.parse::<u64>().ok()?.checked_mul(mult)
}

/// `90s`, `10m`, `2h`, `7d`, `500ms`.
fn parse_duration(s: &str) -> Option<u64> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(mult)
}
