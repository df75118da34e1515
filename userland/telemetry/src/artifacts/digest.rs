//! SHA-256 digests (FIPS 180-4) of objects, through RustCrypto's `sha2`:
//! the value, its hex form, and a streaming [`Hasher`] so a file is
//! hashed in chunks as it is written or read.

use core::fmt;
use core::str::FromStr;

use sha2::Digest as _;

use super::ArtifactError;

/// A SHA-256 digest: an object's name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Bytes of a digest.
    pub const LEN: usize = 32;
    /// Characters of its hex form.
    pub const HEX_LEN: usize = 64;

    pub const fn from_bytes(bytes: [u8; 32]) -> Digest {
        Digest(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest of `data`, in one go.
    pub fn of(data: &[u8]) -> Digest {
        let mut hasher = Hasher::new();
        hasher.update(data);
        hasher.finish()
    }

    /// Parses exactly 64 lowercase hex digits (the one spelling object
    /// paths use, so a file name names one digest).
    pub fn from_hex(hex: &str) -> Result<Digest, ArtifactError> {
        let hex = hex.as_bytes();
        if hex.len() != Digest::HEX_LEN {
            return Err(ArtifactError::DigestInvalid);
        }
        let mut out = [0u8; 32];
        for (byte, &[hi, lo]) in out.iter_mut().zip(hex.as_chunks::<2>().0) {
            let (Some(hi), Some(lo)) = (nibble(hi), nibble(lo)) else {
                return Err(ArtifactError::DigestInvalid);
            };
            *byte = (hi << 4) | lo;
        }
        Ok(Digest(out))
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// 64 lowercase hex digits.
impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = ArtifactError;

    fn from_str(s: &str) -> Result<Digest, ArtifactError> {
        Digest::from_hex(s)
    }
}

/// SHA-256 over bytes fed in any number of chunks, counting them.
#[derive(Clone, Default)]
pub struct Hasher {
    sha: sha2::Sha256,
    len: u64,
}

impl Hasher {
    pub fn new() -> Hasher {
        Hasher::default()
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.sha.update(chunk);
        self.len = self.len.saturating_add(chunk.len() as u64);
    }

    /// Bytes fed so far.
    pub const fn len(&self) -> u64 {
        self.len
    }

    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> Digest {
        Digest(self.sha.finalize().into())
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher").field("len", &self.len).finish_non_exhaustive()
    }
}

/// Checks what was read (or received) against the digest it should have:
/// the digest, or [`ArtifactError::Corrupt`] (the bytes are not to be
/// served or kept).
pub fn verify(expected: &Digest, hasher: Hasher) -> Result<Digest, ArtifactError> {
    let found = hasher.finish();
    if found == *expected {
        Ok(found)
    } else {
        Err(ArtifactError::Corrupt {
            expected: *expected,
            found,
        })
    }
}
