//! The store: the index of every artifact's versions and of the objects
//! they share, the aliases, GC, and what the disk still needs
//! ([`Store::pending`]). The semantics are in the header of `artifacts`.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use super::policy::{self, Config, Gc};
use super::write::Write;
use super::{Aliases, ArtifactError, Digest, Index, IndexEntry, Key, Manifest, check_metrics};

/// What an offer did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// A new version, now `latest`. `object_exists`: a version (of any
    /// artifact) refers to the digest already, so its bytes need not be
    /// sent again (otherwise [`Store::pending`] lists the object's write).
    New { version: u32, object_exists: bool },
    /// The digest is the latest version's: nothing changed.
    Same { version: u32 },
}

/// One version's data.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    pub digest: Digest,
    pub size: u64,
    pub created_at_ms: u64,
    pub step: Option<u64>,
    pub metrics: Vec<(String, f64)>,
    pub pinned: bool,
}

impl Version {
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.iter().find(|(n, _)| n == name).map(|&(_, value)| value)
    }
}

/// What [`Store::reconcile`] found on the disk at boot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconcile {
    /// Objects no version refers to (sorted): unlink them.
    pub orphans: Vec<Digest>,
    /// Versions whose object is not there (sorted): to report; reading
    /// them fails.
    pub missing: Vec<(Key, u32)>,
}

/// What the disk holds of a version, as the store knows it.
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Unique in the store's life: a number reused after
    /// [`Store::forget`] is another version.
    generation: u64,
    /// The aliases its manifest on the disk records (`None`: not written).
    on_disk: Option<Aliases>,
}

struct Artifact {
    versions: BTreeMap<u32, Version>,
    /// The same keys as `versions`.
    slots: BTreeMap<u32, Slot>,
    /// Changes with every change of the artifact (its index).
    generation: u64,
    /// The generation of the index on the disk (0: none written).
    index_written: u64,
}

struct Object {
    size: u64,
    /// Versions (of any artifact) that refer to it.
    refs: usize,
    /// Its file is in place.
    stored: bool,
}

/// Removals the disk still needs.
#[derive(Default)]
struct Removals {
    manifests: BTreeSet<(Key, u32)>,
    indexes: BTreeSet<Key>,
    objects: BTreeSet<Digest>,
}

/// The artifact store: every artifact's versions and aliases, the objects
/// they refer to, and the disk work still to do.
pub struct Store {
    config: Config,
    artifacts: BTreeMap<Key, Artifact>,
    objects: BTreeMap<Digest, Object>,
    removals: Removals,
    /// The last generation handed out.
    generation: u64,
}

/// Equal when the configuration, the artifacts, their versions' data and
/// pins are (not what is on the disk or still pending).
impl PartialEq for Store {
    fn eq(&self, other: &Store) -> bool {
        self.config == other.config
            && self.artifacts.len() == other.artifacts.len()
            && self
                .artifacts
                .iter()
                .zip(&other.artifacts)
                .all(|((k1, a1), (k2, a2))| k1 == k2 && a1.versions == a2.versions)
    }
}

impl core::fmt::Debug for Store {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut map = f.debug_map();
        for (key, a) in &self.artifacts {
            map.entry(key, &a.versions);
        }
        map.finish()
    }
}

impl Store {
    pub fn new(config: Config) -> Store {
        Store {
            config,
            artifacts: BTreeMap::new(),
            objects: BTreeMap::new(),
            removals: Removals::default(),
            generation: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the configuration (`best` may move: every index is
    /// written again). Versions beyond new limits stay; GC decides.
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
        let keys: Vec<Key> = self.artifacts.keys().cloned().collect();
        for key in &keys {
            self.touch(key);
        }
    }

    /// A file offered as a version of `key`: a new version unless
    /// `digest` is the latest version's. Its `metrics` (at most
    /// [`METRICS_MAX`](super::METRICS_MAX), names unique) are recorded
    /// with it; `now_ms` is its creation time.
    pub fn offer(
        &mut self,
        now_ms: u64,
        key: &Key,
        digest: Digest,
        size: u64,
        step: Option<u64>,
        metrics: &[(&str, f64)],
    ) -> Result<Offer, ArtifactError> {
        let metrics = check_metrics(metrics.iter().copied())?;
        self.check_size(&digest, size)?;
        let artifact = self.artifacts.get(key);
        let latest = artifact.and_then(|a| a.versions.last_key_value());
        if let Some((&version, latest)) = latest
            && latest.digest == digest
        {
            return Ok(Offer::Same { version });
        }
        self.check_room(key, artifact.map_or(0, |a| a.versions.len()))?;
        let version = match latest {
            Some((&v, _)) => v.checked_add(1).ok_or(ArtifactError::VersionsExhausted)?,
            None => 1,
        };
        let object_exists = self.objects.contains_key(&digest);
        let version_data = Version {
            digest,
            size,
            created_at_ms: now_ms,
            step,
            metrics,
            pinned: false,
        };
        self.add_version(key, version, version_data, None);
        Ok(Offer::New { version, object_exists })
    }

    /// Takes a manifest read at boot (its object is taken to be on the
    /// disk: [`Store::reconcile`] checks). Its `pinned` is kept; its
    /// `latest` and `best` are recomputed (a stale one is rewritten by
    /// [`Store::pending`]).
    pub fn restore(&mut self, manifest: &Manifest) -> Result<(), ArtifactError> {
        if manifest.version == 0 {
            return Err(ArtifactError::VersionInvalid);
        }
        let metrics = check_metrics(manifest.metrics.iter().map(|(name, value)| (name.as_str(), *value)))?;
        self.check_size(&manifest.digest, manifest.size)?;
        let artifact = self.artifacts.get(&manifest.key);
        if artifact.is_some_and(|a| a.versions.contains_key(&manifest.version)) {
            return Err(ArtifactError::VersionExists(manifest.version));
        }
        self.check_room(&manifest.key, artifact.map_or(0, |a| a.versions.len()))?;
        let version = Version {
            digest: manifest.digest,
            size: manifest.size,
            created_at_ms: manifest.created_at_ms,
            step: manifest.step,
            metrics,
            pinned: manifest.aliases.pinned,
        };
        self.add_version(&manifest.key, manifest.version, version, Some(manifest.aliases));
        Ok(())
    }

    /// Undoes an offer whose object never arrived (or drops any version
    /// at once: its manifest's removal is queued if it was written).
    pub fn forget(&mut self, key: &Key, version: u32) -> Result<(), ArtifactError> {
        self.version_of(key, version)?;
        self.remove_version(key, version);
        Ok(())
    }

    /// Pins a version: GC keeps it until [`Store::unpin`].
    pub fn pin(&mut self, key: &Key, version: u32) -> Result<(), ArtifactError> {
        self.set_pinned(key, version, true)
    }

    pub fn unpin(&mut self, key: &Key, version: u32) -> Result<(), ArtifactError> {
        self.set_pinned(key, version, false)
    }

    /// What retention drops now (nothing changes until
    /// [`Store::apply_gc`]).
    pub fn plan_gc(&self, now_ms: u64) -> Gc {
        let mut gc = Gc::default();
        let mut dropped_refs: BTreeMap<Digest, usize> = BTreeMap::new();
        for (key, a) in &self.artifacts {
            let Some(retention) = self.config.retention(key.kind()) else {
                continue;
            };
            let protected = self.protected(key, a);
            for version in policy::drops(&a.versions, &protected, retention, now_ms) {
                if let Some(v) = a.versions.get(&version) {
                    gc.drop_versions.push((key.clone(), version));
                    *dropped_refs.entry(v.digest).or_default() += 1;
                }
            }
        }
        for (digest, dropped) in dropped_refs {
            if let Some(object) = self.objects.get(&digest)
                && object.refs == dropped
            {
                gc.drop_objects.push(digest);
                gc.freed_bytes = gc.freed_bytes.saturating_add(object.size);
            }
        }
        gc
    }

    /// Drops what `gc` names, checking each version again (one pinned,
    /// made `latest` or `best` since the plan stays) and dropping an
    /// object only when no version refers to it any more. Returns what
    /// was dropped; [`Store::pending`] lists the removals.
    pub fn apply_gc(&mut self, gc: &Gc) -> Gc {
        let mut applied = Gc::default();
        for (key, version) in &gc.drop_versions {
            let Some(a) = self.artifacts.get(key) else {
                continue;
            };
            if !a.versions.contains_key(version) || self.protected(key, a).contains(version) {
                continue;
            }
            if let Some((digest, size)) = self.remove_version(key, *version) {
                applied.drop_objects.push(digest);
                applied.freed_bytes = applied.freed_bytes.saturating_add(size);
            }
            applied.drop_versions.push((key.clone(), *version));
        }
        applied.drop_versions.sort();
        applied.drop_objects.sort();
        applied
    }

    /// The file work the disk still needs, in a safe order: objects,
    /// manifests, indexes, then the removals of manifests, indexes and
    /// objects. Do them in order, [`Store::done`] each, stop at the first
    /// failure.
    pub fn pending(&self) -> Vec<Write> {
        let mut writes = Vec::new();
        for (digest, object) in &self.objects {
            if !object.stored {
                writes.push(Write::Object {
                    digest: *digest,
                    size: object.size,
                });
            }
        }
        for (key, a) in &self.artifacts {
            let (latest, best) = self.latest_best(key, a);
            for ((&version, v), slot) in a.versions.iter().zip(a.slots.values()) {
                let aliases = aliases(version, v, latest, best);
                if slot.on_disk != Some(aliases) {
                    writes.push(Write::Manifest {
                        key: key.clone(),
                        version,
                        generation: slot.generation,
                        aliases,
                        bytes: manifest(key, version, v, aliases).encode().into_bytes(),
                    });
                }
            }
        }
        for (key, a) in &self.artifacts {
            if a.index_written != a.generation {
                writes.push(Write::Index {
                    key: key.clone(),
                    generation: a.generation,
                    bytes: self.index_of(key, a).encode().into_bytes(),
                });
            }
        }
        for (key, version) in &self.removals.manifests {
            writes.push(Write::RemoveManifest {
                key: key.clone(),
                version: *version,
            });
        }
        for key in &self.removals.indexes {
            writes.push(Write::RemoveIndex { key: key.clone() });
        }
        for digest in &self.removals.objects {
            writes.push(Write::RemoveObject { digest: *digest });
        }
        writes
    }

    /// `write` is done: every one of its steps succeeded. A write that
    /// no longer matches the store (the version or the object went
    /// meanwhile) queues the removal of what it put in place.
    pub fn done(&mut self, write: &Write) {
        match write {
            Write::Object { digest, .. } => match self.objects.get_mut(digest) {
                Some(object) => object.stored = true,
                None => {
                    self.removals.objects.insert(*digest);
                }
            },
            Write::Manifest {
                key,
                version,
                generation,
                aliases,
                ..
            } => match self.artifacts.get_mut(key).and_then(|a| a.slots.get_mut(version)) {
                Some(slot) if slot.generation == *generation => slot.on_disk = Some(*aliases),
                // The number was reused: the new version's write follows.
                Some(_) => {}
                None => {
                    self.removals.manifests.insert((key.clone(), *version));
                }
            },
            Write::Index { key, generation, .. } => match self.artifacts.get_mut(key) {
                Some(a) if a.generation == *generation => a.index_written = *generation,
                Some(_) => {}
                None => {
                    self.removals.indexes.insert(key.clone());
                }
            },
            Write::RemoveManifest { key, version } => {
                self.removals.manifests.remove(&(key.clone(), *version));
            }
            Write::RemoveIndex { key } => {
                self.removals.indexes.remove(key);
            }
            Write::RemoveObject { digest } => {
                self.removals.objects.remove(digest);
            }
        }
    }

    /// Compares the store with the objects found on the disk at boot.
    pub fn reconcile(&self, on_disk: &[Digest]) -> Reconcile {
        let present: BTreeSet<Digest> = on_disk.iter().copied().collect();
        let orphans = present
            .iter()
            .filter(|d| !self.objects.contains_key(d))
            .copied()
            .collect();
        let mut missing = Vec::new();
        for (key, a) in &self.artifacts {
            for (&version, v) in &a.versions {
                let stored = self.objects.get(&v.digest).is_some_and(|o| o.stored);
                if stored && !present.contains(&v.digest) {
                    missing.push((key.clone(), version));
                }
            }
        }
        Reconcile { orphans, missing }
    }

    /// Every artifact, in order.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.artifacts.keys()
    }

    /// An artifact's versions, oldest first (none for an unknown key).
    pub fn versions(&self, key: &Key) -> impl Iterator<Item = (u32, &Version)> {
        self.artifacts
            .get(key)
            .into_iter()
            .flat_map(|a| a.versions.iter().map(|(&n, v)| (n, v)))
    }

    pub fn version(&self, key: &Key, version: u32) -> Option<&Version> {
        self.artifacts.get(key).and_then(|a| a.versions.get(&version))
    }

    pub fn latest(&self, key: &Key) -> Option<u32> {
        self.artifacts
            .get(key)
            .and_then(|a| a.versions.last_key_value())
            .map(|(&v, _)| v)
    }

    pub fn best(&self, key: &Key) -> Option<u32> {
        self.artifacts.get(key).and_then(|a| self.latest_best(key, a).1)
    }

    pub fn aliases(&self, key: &Key, version: u32) -> Option<Aliases> {
        let a = self.artifacts.get(key)?;
        let (latest, best) = self.latest_best(key, a);
        a.versions.get(&version).map(|v| aliases(version, v, latest, best))
    }

    /// `latest`, `best`, or a version (`v3` or `3`) of `key`.
    pub fn resolve(&self, key: &Key, selector: &str) -> Result<u32, ArtifactError> {
        let a = self.artifacts.get(key).ok_or(ArtifactError::UnknownArtifact)?;
        match selector {
            "latest" => self.latest(key).ok_or(ArtifactError::UnknownArtifact),
            "best" => self.latest_best(key, a).1.ok_or(ArtifactError::NoSuchAlias),
            _ => {
                let number = selector.strip_prefix('v').unwrap_or(selector);
                let valid = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
                let version = number
                    .parse::<u32>()
                    .ok()
                    .filter(|_| valid)
                    .ok_or(ArtifactError::SelectorInvalid)?;
                self.version_of(key, version).map(|_| version)
            }
        }
    }

    /// The manifest of a version, as [`Store::pending`] writes it.
    pub fn manifest(&self, key: &Key, version: u32) -> Option<Manifest> {
        let aliases = self.aliases(key, version)?;
        let v = self.version(key, version)?;
        Some(manifest(key, version, v, aliases))
    }

    /// The index of an artifact, as [`Store::pending`] writes it.
    pub fn index(&self, key: &Key) -> Option<Index> {
        self.artifacts.get(key).map(|a| self.index_of(key, a))
    }

    /// Whether a version refers to `digest` (its file in place or
    /// pending).
    pub fn has_object(&self, digest: &Digest) -> bool {
        self.objects.contains_key(digest)
    }

    /// The bytes of every object the versions refer to, each counted once.
    pub fn object_bytes(&self) -> u64 {
        self.objects.values().fold(0, |sum, o| sum.saturating_add(o.size))
    }

    fn check_size(&self, digest: &Digest, size: u64) -> Result<(), ArtifactError> {
        match self.objects.get(digest) {
            Some(object) if object.size != size => Err(ArtifactError::SizeConflict {
                digest: *digest,
                known: object.size,
                offered: size,
            }),
            _ => Ok(()),
        }
    }

    /// Whether `key`, with `versions` versions, may take one more.
    fn check_room(&self, key: &Key, versions: usize) -> Result<(), ArtifactError> {
        if !self.artifacts.contains_key(key) && self.artifacts.len() >= self.config.limits.artifacts {
            return Err(ArtifactError::TooManyArtifacts);
        }
        if versions >= self.config.versions_max() as usize {
            return Err(ArtifactError::TooManyVersions);
        }
        Ok(())
    }

    fn version_of(&self, key: &Key, version: u32) -> Result<&Version, ArtifactError> {
        let a = self.artifacts.get(key).ok_or(ArtifactError::UnknownArtifact)?;
        a.versions.get(&version).ok_or(ArtifactError::UnknownVersion(version))
    }

    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// The artifact changed: its index is to be written again.
    fn touch(&mut self, key: &Key) {
        let generation = self.next_generation();
        if let Some(a) = self.artifacts.get_mut(key) {
            a.generation = generation;
        }
    }

    /// Adds a version (checked by the caller); `on_disk` is what its
    /// manifest on the disk records (`Some` for a restored one, whose
    /// object is taken to be in place).
    fn add_version(&mut self, key: &Key, number: u32, version: Version, on_disk: Option<Aliases>) {
        let generation = self.next_generation();
        let restored = on_disk.is_some();
        match self.objects.get_mut(&version.digest) {
            Some(object) => {
                object.refs += 1;
                object.stored |= restored;
            }
            None => {
                // A removal still queued is void: the file is written anew
                // (or, restored, is there).
                self.removals.objects.remove(&version.digest);
                let object = Object {
                    size: version.size,
                    refs: 1,
                    stored: restored,
                };
                self.objects.insert(version.digest, object);
            }
        }
        self.removals.manifests.remove(&(key.clone(), number));
        self.removals.indexes.remove(key);
        let a = self.artifacts.entry(key.clone()).or_insert_with(|| Artifact {
            versions: BTreeMap::new(),
            slots: BTreeMap::new(),
            generation,
            index_written: 0,
        });
        a.versions.insert(number, version);
        a.slots.insert(number, Slot { generation, on_disk });
        self.touch(key);
    }

    /// Removes a version and queues what its removal needs on the disk;
    /// returns its object when that went too. An artifact left without
    /// versions goes.
    fn remove_version(&mut self, key: &Key, number: u32) -> Option<(Digest, u64)> {
        let a = self.artifacts.get_mut(key)?;
        let version = a.versions.remove(&number)?;
        let slot = a.slots.remove(&number);
        if slot.is_some_and(|s| s.on_disk.is_some()) {
            self.removals.manifests.insert((key.clone(), number));
        }
        if a.versions.is_empty() {
            if a.index_written != 0 {
                self.removals.indexes.insert(key.clone());
            }
            self.artifacts.remove(key);
        } else {
            self.touch(key);
        }
        let object = self.objects.get_mut(&version.digest)?;
        object.refs = object.refs.saturating_sub(1);
        if object.refs > 0 {
            return None;
        }
        let (stored, size) = (object.stored, object.size);
        self.objects.remove(&version.digest);
        if stored {
            self.removals.objects.insert(version.digest);
        }
        Some((version.digest, size))
    }

    fn set_pinned(&mut self, key: &Key, number: u32, pinned: bool) -> Result<(), ArtifactError> {
        self.version_of(key, number)?;
        let changed = self
            .artifacts
            .get_mut(key)
            .and_then(|a| a.versions.get_mut(&number))
            .is_some_and(|v| core::mem::replace(&mut v.pinned, pinned) != pinned);
        if changed {
            self.touch(key);
        }
        Ok(())
    }

    fn latest_best(&self, key: &Key, a: &Artifact) -> (Option<u32>, Option<u32>) {
        let latest = a.versions.last_key_value().map(|(&v, _)| v);
        let default = default_monitor(&a.versions);
        let monitor = self.config.monitor(key.kind(), key.name()).or(default.as_ref());
        let best = policy::best(&a.versions, monitor);
        (latest, best)
    }

    /// Versions no rule may drop: pinned, `latest`, `best`.
    fn protected(&self, key: &Key, a: &Artifact) -> BTreeSet<u32> {
        let (latest, best) = self.latest_best(key, a);
        let pinned = a.versions.iter().filter(|(_, v)| v.pinned).map(|(&n, _)| n);
        pinned.chain(latest).chain(best).collect()
    }

    fn index_of(&self, key: &Key, a: &Artifact) -> Index {
        let (latest, best) = self.latest_best(key, a);
        let entries = a
            .versions
            .iter()
            .map(|(&version, v)| IndexEntry {
                version,
                digest: v.digest,
                size: v.size,
                created_at_ms: v.created_at_ms,
                aliases: aliases(version, v, latest, best),
            })
            .collect();
        Index {
            key: key.clone(),
            entries,
        }
    }
}

fn aliases(number: u32, v: &Version, latest: Option<u32>, best: Option<u32>) -> Aliases {
    Aliases {
        latest: latest == Some(number),
        best: best == Some(number),
        pinned: v.pinned,
    }
}

fn manifest(key: &Key, number: u32, v: &Version, aliases: Aliases) -> Manifest {
    Manifest {
        key: key.clone(),
        version: number,
        digest: v.digest,
        size: v.size,
        created_at_ms: v.created_at_ms,
        step: v.step,
        metrics: v.metrics.clone(),
        aliases,
    }
}

/// What `best` ranks by when the policy names no monitor for an artifact:
/// the first metric of its oldest version that has any, lower-is-better
/// for a name ending in `loss` (as the registry's objective), else
/// higher-is-better. A function of the versions alone, so a boot
/// computes the same `best`.
fn default_monitor(versions: &BTreeMap<u32, Version>) -> Option<policy::Monitor> {
    let (name, _) = versions.values().find_map(|v| v.metrics.first())?;
    let mode = match crate::metrics::Objective::default_for(name) {
        crate::metrics::Objective::Min => super::Mode::Min,
        crate::metrics::Objective::Max => super::Mode::Max,
    };
    Some(policy::Monitor::new(name, mode))
}
