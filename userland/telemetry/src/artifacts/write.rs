//! The write protocol as data: the file work a change of the store needs
//! ([`Write`]), each as the file calls that make it atomic ([`Step`]).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{Aliases, Digest, Key, paths};

/// One piece of file work the store needs done, to acknowledge with
/// `Store::done` once all its [`steps`](Write::steps) succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Put the object's bytes (from the transfer) at its path.
    Object {
        digest: Digest,
        size: u64,
    },
    /// Write a version's manifest (new, or with changed aliases).
    Manifest {
        key: Key,
        version: u32,
        /// The version's generation in the store (a number reused after
        /// `Store::forget` is another version).
        generation: u64,
        /// The aliases `bytes` record.
        aliases: Aliases,
        bytes: Vec<u8>,
    },
    /// Write an artifact's index.
    Index {
        key: Key,
        /// The store's change count the bytes reflect.
        generation: u64,
        bytes: Vec<u8>,
    },
    RemoveManifest {
        key: Key,
        version: u32,
    },
    RemoveIndex {
        key: Key,
    },
    RemoveObject {
        digest: Digest,
    },
}

impl Write {
    /// The file this write puts in place or removes.
    pub fn path(&self) -> String {
        match self {
            Write::Object { digest, .. } | Write::RemoveObject { digest } => paths::object_path(digest),
            Write::Manifest { key, version, .. } | Write::RemoveManifest { key, version } => {
                paths::manifest_path(key, *version)
            }
            Write::Index { key, .. } | Write::RemoveIndex { key } => paths::index_path(key),
        }
    }

    /// The file calls, in order. A step that fails ends the write (and the
    /// list): unlink the `.tmp` it left and try again later.
    pub fn steps(&self) -> Vec<Step> {
        let path = self.path();
        let dir = |key: &Key| Step::MakeDirs {
            path: paths::artifact_dir(key),
        };
        match self {
            Write::Object { digest, size } => {
                let tmp = paths::tmp_path(&path);
                vec![
                    Step::MakeDirs {
                        path: String::from(paths::OBJECTS_DIR),
                    },
                    Step::Receive {
                        tmp: tmp.clone(),
                        digest: *digest,
                        size: *size,
                    },
                    Step::Verify {
                        tmp: tmp.clone(),
                        digest: *digest,
                        size: *size,
                    },
                    Step::Fsync { path: tmp.clone() },
                    Step::Rename { from: tmp, to: path },
                ]
            }
            Write::Manifest { key, bytes, .. } | Write::Index { key, bytes, .. } => {
                let tmp = paths::tmp_path(&path);
                vec![
                    dir(key),
                    Step::WriteFile {
                        path: tmp.clone(),
                        bytes: bytes.clone(),
                    },
                    Step::Fsync { path: tmp.clone() },
                    Step::Rename { from: tmp, to: path },
                ]
            }
            Write::RemoveManifest { .. } | Write::RemoveIndex { .. } | Write::RemoveObject { .. } => {
                vec![Step::Unlink { path }]
            }
        }
    }
}

/// One file call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Make each missing directory of `path`, parents first (one that
    /// exists is fine).
    MakeDirs { path: String },
    /// Create `tmp` (truncating it) and write the object's `size` bytes
    /// into it as they arrive, feeding each chunk to a `Hasher`.
    Receive { tmp: String, digest: Digest, size: u64 },
    /// Check the hasher of [`Step::Receive`] against `digest` and `size`
    /// (`Manifest::verify`, or `verify` and the hasher's `len`): on a
    /// mismatch the bytes are `Corrupt`, unlink `tmp` and stop.
    Verify { tmp: String, digest: Digest, size: u64 },
    /// Create `path` (truncating it) holding `bytes`.
    WriteFile { path: String, bytes: Vec<u8> },
    /// The file's data on the disk.
    Fsync { path: String },
    /// Atomically replace `to` with `from`.
    Rename { from: String, to: String },
    /// Remove `path` (one that is not there is fine).
    Unlink { path: String },
}
