//! Artifacts (docs/telemetry.md, "Artifacts"): what crosses the link and
//! the `JOB` call about the files jobs make (checkpoints, reports, plots,
//! PDFs). The bridge offers a file ([`ArtifactOffer`]), opsd says from
//! where it wants the bytes, the bridge sends them in chunks, opsd checks
//! the sha256 and stores a version (or says it is unchanged, or why not).
//! Reads go the other way: the bridge fetches a version's bytes for an
//! HTTP download, opsd serves them only after checking the digest.

use core::fmt;

use heapless::{String, Vec};
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

/// An artifact name: 1 to 64 bytes of `[A-Za-z0-9_.-]`, not starting with
/// `.` or `-` (opsd checks it).
pub const NAME_MAX: usize = 64;
/// Metrics one version records at most.
pub const METRICS_MAX: usize = 16;
/// Bytes per `ArtifactChunk` and per `ArtifactBytes`.
pub const CHUNK_MAX: usize = 8192;
/// Bytes one `ArtifactFetch` asks for at most (the bridge asks again for
/// the next part).
pub const FETCH_MAX: u64 = 1 << 20;
/// A version selector: `latest`, `best`, `v3` or `3`.
pub const SELECTOR_MAX: usize = 16;
/// Artifacts per `Artifacts` page.
pub const LIST_PAGE: usize = 8;
pub const REASON_MAX: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, MaxSize)]
pub enum ArtifactKind {
    Model,
    Report,
    Plot,
    Pdf,
    Other,
}

impl ArtifactKind {
    pub const ALL: [ArtifactKind; 5] = [
        ArtifactKind::Model,
        ArtifactKind::Report,
        ArtifactKind::Plot,
        ArtifactKind::Pdf,
        ArtifactKind::Other,
    ];

    /// The name in paths, files and the announce line.
    pub const fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Model => "model",
            ArtifactKind::Report => "report",
            ArtifactKind::Plot => "plot",
            ArtifactKind::Pdf => "pdf",
            ArtifactKind::Other => "other",
        }
    }

    pub fn from_name(name: &str) -> Option<ArtifactKind> {
        ArtifactKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, MaxSize)]
pub struct ArtifactMetric {
    pub name: String<64>,
    pub value: f64,
}

/// A file a job made, as the bridge offers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, MaxSize)]
pub struct ArtifactOffer {
    pub job_id: u64,
    pub kind: ArtifactKind,
    pub name: String<NAME_MAX>,
    pub size: u64,
    /// sha256 of the bytes.
    pub digest: [u8; 32],
    pub step: Option<u64>,
    pub metrics: Vec<ArtifactMetric, METRICS_MAX>,
    /// When the file was written (unix ms, the host's clock).
    pub created_ms: u64,
}

/// How an offer ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, MaxSize)]
pub enum ArtifactOutcome {
    /// Stored as this version.
    Stored { version: u32 },
    /// The latest version has the same digest: nothing new.
    Unchanged { version: u32 },
    /// Not stored (a bad name, a digest that did not match the bytes, a
    /// full disk, no disk).
    Refused { reason: String<REASON_MAX> },
}

/// One version, as listed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, MaxSize)]
pub struct ArtifactInfo {
    pub job_id: u64,
    pub kind: ArtifactKind,
    pub name: String<NAME_MAX>,
    pub version: u32,
    pub digest: [u8; 32],
    pub size: u64,
    pub created_ms: u64,
    pub step: Option<u64>,
    pub latest: bool,
    pub best: bool,
    pub pinned: bool,
}

/// `digest` as 64 lowercase hex digits.
pub fn hex(digest: &[u8; 32]) -> String<64> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::new();
    for b in digest {
        let _ = s.push(HEX[usize::from(b >> 4)] as char);
        let _ = s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_hex() {
        for k in ArtifactKind::ALL {
            assert_eq!(ArtifactKind::from_name(k.as_str()), Some(k));
        }
        assert_eq!(ArtifactKind::from_name("checkpoint"), None);
        let mut d = [0u8; 32];
        d[0] = 0xab;
        d[31] = 0x01;
        let h = hex(&d);
        assert_eq!(h.len(), 64);
        assert!(h.starts_with("ab00") && h.ends_with("01"));
    }
}
