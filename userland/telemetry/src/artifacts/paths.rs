//! Where the store's files live (the layout in the header of `artifacts`),
//! and what the names found in its directories are.

use alloc::format;
use alloc::string::String;

use super::{Digest, Key};

/// The store's root.
pub const ROOT: &str = "/artifacts";
/// The objects' directory.
pub const OBJECTS_DIR: &str = "/artifacts/objects";
/// Appended to a file being written; renamed away once it is complete.
pub const TMP_SUFFIX: &str = ".tmp";
/// An artifact's index file name.
pub const INDEX_FILE: &str = "index";

/// `/artifacts/objects/<hex digest>`.
pub fn object_path(digest: &Digest) -> String {
    format!("{OBJECTS_DIR}/{digest}")
}

/// `/artifacts/<job>/<kind>/<name>`.
pub fn artifact_dir(key: &Key) -> String {
    format!("{ROOT}/{key}")
}

/// `/artifacts/<job>/<kind>/<name>/v<N>`.
pub fn manifest_path(key: &Key, version: u32) -> String {
    format!("{ROOT}/{key}/v{version}")
}

/// `/artifacts/<job>/<kind>/<name>/index`.
pub fn index_path(key: &Key) -> String {
    format!("{ROOT}/{key}/{INDEX_FILE}")
}

/// The temporary a file is written to before its rename: `<path>.tmp`.
pub fn tmp_path(path: &str) -> String {
    format!("{path}{TMP_SUFFIX}")
}

/// A name in [`OBJECTS_DIR`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectFile {
    Object(Digest),
    /// A write that did not finish (unlink it at boot).
    Temporary,
    /// Not the store's.
    Other,
}

impl ObjectFile {
    pub fn parse(name: &str) -> ObjectFile {
        if name.ends_with(TMP_SUFFIX) {
            return ObjectFile::Temporary;
        }
        Digest::from_hex(name).map_or(ObjectFile::Other, ObjectFile::Object)
    }
}

/// A name in an artifact's directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArtifactFile {
    /// `v<N>`, N from 1 without leading zeros.
    Manifest(u32),
    Index,
    /// A write that did not finish (unlink it at boot).
    Temporary,
    /// Not the store's.
    Other,
}

impl ArtifactFile {
    pub fn parse(name: &str) -> ArtifactFile {
        if name.ends_with(TMP_SUFFIX) {
            return ArtifactFile::Temporary;
        }
        if name == INDEX_FILE {
            return ArtifactFile::Index;
        }
        let version = name
            .strip_prefix('v')
            .filter(|n| !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok());
        version.map_or(ArtifactFile::Other, ArtifactFile::Manifest)
    }
}
