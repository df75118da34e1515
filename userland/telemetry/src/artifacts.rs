//! The artifact store (docs/telemetry.md, "Artifacts"): content-addressed
//! objects, versioned manifests, the `latest`/`best`/`pinned` aliases,
//! retention and GC, and the write protocol as data. Pure: the caller
//! (opsd) does every file operation, and every input carries `now_ms`
//! (unix ms, opsd's clock).
//!
//! # Paths
//!
//! ```text
//! /artifacts/objects/<hex sha256>           an object: the file's bytes
//! /artifacts/<job>/<kind>/<name>/v<N>       the manifest of version N (from 1)
//! /artifacts/<job>/<kind>/<name>/index      the artifact's listing
//! <any of these>.tmp                        being written (a leftover after a crash)
//! ```
//!
//! `<job>` is the job id in decimal (so no job directory is `objects`),
//! `<kind>` one of `model report plot pdf other`, `<name>` 1 to
//! [`NAME_MAX`] bytes of `[A-Za-z0-9_.-]`, not starting with `.` or `-`
//! ([`Key::new`]). [`paths`] builds them and names what a directory
//! listing holds ([`paths::ObjectFile`], [`paths::ArtifactFile`]).
//!
//! # Formats
//!
//! Manifests and indexes are text, one `key value` per line, each line
//! ending in `\n`, the last one `crc32 <8 lowercase hex>`: the CRC-32
//! (IEEE 802.3, as zlib) of every byte before that line. Fields come in a
//! fixed order; numbers are decimal without sign or leading zeros; a
//! metric's value is written as the exposition writes it (shortest exact
//! decimal, `NaN`, `+Inf`, `-Inf`). A manifest:
//!
//! ```text
//! aether-artifact 1
//! job 42
//! kind model
//! name resnet
//! version 3
//! digest ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
//! size 1048576
//! created_ms 1700000000000
//! step 1200                       (or `step -`)
//! metric val_loss 0.25            (0 to METRICS_MAX lines, names unique)
//! aliases latest,best             (`latest`, `best`, `pinned` or `-`)
//! crc32 1a2b3c4d
//! ```
//!
//! An index has the same header (`aether-artifact-index 1`, `job`, `kind`,
//! `name`), then one line per version in increasing order, `version <N>
//! <digest> <size> <created_ms> <aliases>`, then the `crc32` line.
//! Decoding ([`Manifest::decode`], [`Index::decode`]) takes untrusted bytes:
//! it never panics, and every fault has its own [`Reason`], with the line.
//!
//! # What is the truth
//!
//! The manifests are: the store is rebuilt at boot from them alone
//! ([`Store::restore`]). A manifest records its version's data and whether
//! it is pinned; its `latest` and `best` are written for readers but
//! recomputed on load (they are functions of the versions and the
//! [`Monitor`]): two files that both say `latest` after a crash between
//! two manifest writes make one `latest` at boot, and the stale one is
//! rewritten. The index is derived (a listing that needs one read) and is
//! rewritten whenever the artifact changes.
//!
//! # Aliases
//!
//! * `latest`: the highest version.
//! * `best`: the version with the best value of the [`Monitor`]'s metric
//!   (configured per kind and name, or per kind; with none configured,
//!   the first metric of the artifact's oldest version that has any,
//!   lower-is-better for a name ending in `loss`, else higher); versions
//!   without the metric, or with NaN, are not ranked; on a tie the older
//!   version stays best, so `best` moves only to a strictly better value.
//! * `pinned`: set by [`Store::pin`], cleared by [`Store::unpin`]; any
//!   number of versions may be pinned.
//!
//! A new version exists only when the offered digest differs from the
//! latest's ([`Offer::Same`] otherwise; the metrics of a re-offer are not
//! recorded). Going back to older content (A, B, A) makes a new version
//! that shares the object of the first.
//!
//! # Retention, and what wins
//!
//! A [`Retention`] is set per kind and applies to each artifact (job,
//! kind, name) on its own. [`Store::plan_gc`] decides per version, in
//! this order of precedence:
//!
//! 1. **Protected** versions are never dropped, by any rule: `pinned`,
//!    `latest`, `best`.
//! 2. **Selection** (`keep_last_n`, `top_k`): when either is set, a
//!    version survives only if it is among the `keep_last_n` newest or the
//!    `top_k` best by the `top_k` metric (the union of the two: each keeps
//!    what it names); when neither is set, every version survives this
//!    step.
//! 3. **Age** (`ttl_ms`): a surviving unprotected version whose age
//!    (`now_ms - created_at_ms`, 0 if the clock went back) is at least
//!    `ttl_ms` is dropped.
//! 4. **Space** (`max_bytes`): while the survivors' sizes add up to more
//!    than `max_bytes`, the oldest unprotected survivor is dropped.
//!
//! So the budgets (ttl, max_bytes) win over the selection: when
//! `keep_last_n` = 5 and `max_bytes` holds three versions, three are kept
//! (the newest that fit, with `latest` and `best` among them); and the
//! protected versions win over the budgets: an artifact whose protected
//! versions alone exceed `max_bytes` keeps them all. A version's size
//! counts in full even when another version shares its object.
//!
//! An object is dropped only when no remaining version, of any artifact,
//! refers to it (objects are shared by content). [`Store::apply_gc`]
//! checks the plan again (a version pinned or made `best` since is kept)
//! and drops objects by reference count.
//!
//! # The write protocol
//!
//! The store is the state the disk should have; each change queues the
//! file work it needs. [`Store::pending`] lists it as [`Write`]s in an
//! order that is safe at every crash point: objects, then manifests, then
//! indexes, then removals (manifests, indexes, objects). Each
//! [`Write::steps`] is a short list of file calls: an object is received
//! into `<digest>.tmp`, checked ([`verify`]), fsynced and renamed into
//! place; a manifest or an index is written to `.tmp`, fsynced and renamed.
//! The caller does the writes of one list in order, acknowledges each with
//! [`Store::done`], stops at the first failure, and asks for a new list
//! only after (a new list repeats what was not acknowledged). An offer
//! whose object never arrives is undone with [`Store::forget`].
//!
//! Reads check the digest: hash the object as it is read ([`Hasher`]) and
//! [`Manifest::verify`] it before serving it; a mismatch is
//! [`ArtifactError::Corrupt`] (or [`ArtifactError::SizeMismatch`]), never
//! the bytes.
//!
//! # Boot
//!
//! Unlink every `.tmp`; decode every `v<N>` and [`Store::restore`] it
//! (one that fails to decode is reported and not restored); give
//! [`Store::reconcile`] the objects on disk: it names the orphans (no
//! version refers to them: unlink them) and the versions whose object is
//! missing; then do [`Store::pending`] (it rewrites stale aliases and
//! every index).

mod digest;
mod format;
pub mod paths;
mod policy;
mod store;
#[cfg(test)]
mod tests;
mod write;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use crate::rules::Mode;
pub use digest::{Digest, Hasher, verify};
pub use format::{DecodeError, INDEX_MAX, Index, IndexEntry, MANIFEST_MAX, Manifest, Reason};
pub use policy::{Config, Gc, Limits, Monitor, Retention, TopK};
pub use store::{Offer, Reconcile, Store, Version};
pub use write::{Step, Write};

/// An artifact name's bytes at most.
pub const NAME_MAX: usize = 64;
/// Metrics a version carries at most.
pub const METRICS_MAX: usize = 16;
/// Versions an artifact has at most (the hard bound of [`Limits::versions`]
/// and of an index).
pub const VERSIONS_MAX: u32 = 1024;

/// What an artifact is (the ABI's [`aether_abi::artifact::ArtifactKind`]:
/// one type on both sides of the link).
pub use aether_abi::artifact::ArtifactKind as Kind;

/// The aliases of one version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Aliases {
    pub latest: bool,
    pub best: bool,
    pub pinned: bool,
}

impl Aliases {
    /// The names as in the files, in this order.
    pub const NAMES: [&'static str; 3] = ["latest", "best", "pinned"];

    /// Whether GC must keep the version.
    pub const fn protected(self) -> bool {
        self.latest || self.best || self.pinned
    }

    /// The names of the aliases set, in [`Aliases::NAMES`] order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        let set = [self.latest, self.best, self.pinned];
        Aliases::NAMES
            .into_iter()
            .zip(set)
            .filter_map(|(name, on)| on.then_some(name))
    }
}

/// `latest,best,pinned` (those set), or `-` for none: the files' form.
impl fmt::Display for Aliases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for name in self.names() {
            if any {
                f.write_str(",")?;
            }
            f.write_str(name)?;
            any = true;
        }
        if !any {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// Which artifact: a job's artifact of a kind and a name. The name is
/// checked once, here, so every path built from a key is sound.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    job_id: u64,
    kind: Kind,
    name: String,
}

impl Key {
    /// Checks `name`: 1 to [`NAME_MAX`] bytes of `[A-Za-z0-9_.-]`, not
    /// starting with `.` or `-` (no `..`, no hidden or option-like names).
    pub fn new(job_id: u64, kind: Kind, name: &str) -> Result<Key, ArtifactError> {
        check_name(name)?;
        Ok(Key {
            job_id,
            kind,
            name: String::from(name),
        })
    }

    pub const fn job_id(&self) -> u64 {
        self.job_id
    }

    pub const fn kind(&self) -> Kind {
        self.kind
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `<job>/<kind>/<name>`, as under `/artifacts`.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.job_id, self.kind, self.name)
    }
}

fn check_name(name: &str) -> Result<(), ArtifactError> {
    if name.is_empty() {
        return Err(ArtifactError::NameEmpty);
    }
    if name.len() > NAME_MAX {
        return Err(ArtifactError::NameTooLong);
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    if name.starts_with(['.', '-']) || !name.bytes().all(allowed) {
        return Err(ArtifactError::NameInvalid);
    }
    Ok(())
}

/// Checks a version's metrics (at most [`METRICS_MAX`], names as the
/// registry's, unique; any value, NaN included) and copies them.
fn check_metrics<'a>(
    metrics: impl ExactSizeIterator<Item = (&'a str, f64)>,
) -> Result<Vec<(String, f64)>, ArtifactError> {
    if metrics.len() > METRICS_MAX {
        return Err(ArtifactError::TooManyMetrics);
    }
    let mut out: Vec<(String, f64)> = Vec::with_capacity(metrics.len());
    for (name, value) in metrics {
        crate::metrics::check_name(name).map_err(|_| ArtifactError::MetricNameInvalid)?;
        if out.iter().any(|(n, _)| n == name) {
            return Err(ArtifactError::MetricDuplicate);
        }
        out.push((String::from(name), value));
    }
    Ok(out)
}

/// Why the store refused something, or why an object may not be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArtifactError {
    NameEmpty,
    /// Longer than [`NAME_MAX`] bytes.
    NameTooLong,
    /// Not `[A-Za-z0-9_.-]`, or starting with `.` or `-`.
    NameInvalid,
    /// A metric name that is not `[a-zA-Z_:][a-zA-Z0-9_:]*` of at most 64
    /// bytes.
    MetricNameInvalid,
    /// The same metric name twice.
    MetricDuplicate,
    /// More than [`METRICS_MAX`] metrics.
    TooManyMetrics,
    /// Not 64 lowercase hex digits.
    DigestInvalid,
    /// No such artifact in the store.
    UnknownArtifact,
    /// The artifact has no such version.
    UnknownVersion(u32),
    /// Version 0 (versions start at 1).
    VersionInvalid,
    /// A restored manifest's version is in the store already.
    VersionExists(u32),
    /// The artifact has [`Limits::versions`] versions (GC first).
    TooManyVersions,
    /// The store has [`Limits::artifacts`] artifacts.
    TooManyArtifacts,
    /// Version `u32::MAX` exists: no number is left.
    VersionsExhausted,
    /// A digest the store knows with another size: the same bytes cannot
    /// have two sizes.
    SizeConflict {
        digest: Digest,
        known: u64,
        offered: u64,
    },
    /// An alias that is not `latest`, `best` or a version (`v3`, `3`).
    SelectorInvalid,
    /// No version has this alias (no `best` without a monitored value).
    NoSuchAlias,
    /// The bytes read do not hash to the digest: not to be served.
    Corrupt {
        expected: Digest,
        found: Digest,
    },
    /// The bytes read are not the manifest's size: not to be served.
    SizeMismatch {
        expected: u64,
        found: u64,
    },
    /// A manifest or an index that does not decode.
    Decode(DecodeError),
}

impl From<DecodeError> for ArtifactError {
    fn from(e: DecodeError) -> Self {
        ArtifactError::Decode(e)
    }
}

impl fmt::Display for ArtifactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactError::NameEmpty => f.write_str("the artifact name is empty"),
            ArtifactError::NameTooLong => f.write_str("the artifact name is longer than 64 bytes"),
            ArtifactError::NameInvalid => {
                f.write_str("the artifact name is not [A-Za-z0-9_.-]* or starts with '.' or '-'")
            }
            ArtifactError::MetricNameInvalid => f.write_str("a metric name is not [a-zA-Z_:][a-zA-Z0-9_:]* (64 bytes)"),
            ArtifactError::MetricDuplicate => f.write_str("a metric name appears twice"),
            ArtifactError::TooManyMetrics => f.write_str("more than 16 metrics"),
            ArtifactError::DigestInvalid => f.write_str("a digest is not 64 lowercase hex digits"),
            ArtifactError::UnknownArtifact => f.write_str("no such artifact"),
            ArtifactError::UnknownVersion(v) => write!(f, "no version {v}"),
            ArtifactError::VersionInvalid => f.write_str("version 0 (versions start at 1)"),
            ArtifactError::VersionExists(v) => write!(f, "version {v} exists already"),
            ArtifactError::TooManyVersions => f.write_str("the artifact has too many versions"),
            ArtifactError::TooManyArtifacts => f.write_str("the store has too many artifacts"),
            ArtifactError::VersionsExhausted => f.write_str("no version number is left"),
            ArtifactError::SizeConflict { digest, known, offered } => {
                write!(f, "object {digest} is {known} bytes, offered as {offered}")
            }
            ArtifactError::SelectorInvalid => f.write_str("not latest, best or a version number"),
            ArtifactError::NoSuchAlias => f.write_str("no version has that alias"),
            ArtifactError::Corrupt { expected, found } => {
                write!(f, "corrupt object: expected sha256 {expected}, read {found}")
            }
            ArtifactError::SizeMismatch { expected, found } => {
                write!(f, "corrupt object: expected {expected} bytes, read {found}")
            }
            ArtifactError::Decode(e) => write!(f, "{e}"),
        }
    }
}
