//! The record file (`/ops/jobs/<id>.rec`): one job's [`StoredJob`],
//! postcard-encoded, framed and checksummed, so that a torn, truncated or
//! damaged file is told apart from a whole one.
//!
//! | offset | bytes | field |
//! | --- | --- | --- |
//! | 0 | 4 | magic `AOJR` |
//! | 4 | 1 | version, 1 |
//! | 5 | 2 | body length `n`, little-endian |
//! | 7 | n | body: [`StoredJob`] in postcard (postcard wire format, v1) |
//! | 7 + n | 4 | CRC-32 (IEEE 802.3, as the link's frames) of bytes `0 .. 7 + n`, little-endian |

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use aether_abi::job::{JobKind, JobRecord};
use aether_abi::link::crc32;
use serde::{Deserialize, Serialize};

pub const MAGIC: [u8; 4] = *b"AOJR";
pub const VERSION: u8 = 1;
const HEADER: usize = 7;
const CRC_LEN: usize = 4;
/// The largest body: a [`JobRecord`] is at most 1071 bytes of postcard,
/// the kind and limits 17, the four offsets 40 (a test checks the largest
/// fits).
pub const BODY_MAX: usize = 1_200;
/// The largest record file.
pub const RECORD_FILE_MAX: usize = HEADER + BODY_MAX + CRC_LEN;

/// What a record file holds: the record as `job status` shows it, and
/// what opsd needs besides to take the job back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredJob {
    pub record: JobRecord,
    pub kind: JobKind,
    /// The spec's limits (the spec itself is not kept once a job has
    /// ended).
    pub grace_ms: u32,
    pub timeout_ms: Option<u32>,
    pub stall_ms: Option<u32>,
    pub max_retries: u8,
    /// Each stream's bytes on the disk (stdout, stderr) when this was
    /// written: the offsets `(start, end)`, `end` where its newest segment
    /// ended (all of it written and synced before this record was).
    pub logs: [(u64, u64); 2],
}

/// Why a record file was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// Shorter than its header and checksum, or than its length says (a
    /// torn write).
    Truncated,
    /// Longer than its length says.
    TrailingBytes,
    /// Larger than any record (not one of opsd's).
    TooLarge,
    BadMagic,
    /// Another version's record (a newer opsd wrote it).
    Version(u8),
    /// The checksum does not match: a byte changed.
    Checksum,
    /// Whole and checksummed, but the body does not decode.
    Body,
    /// A whole record of another job than its name says.
    OtherJob(u64),
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Truncated => f.write_str("truncated"),
            Damage::TrailingBytes => f.write_str("trailing bytes"),
            Damage::TooLarge => f.write_str("too large for a record"),
            Damage::BadMagic => f.write_str("not a record"),
            Damage::Version(v) => write!(f, "record version {v}, not {VERSION}"),
            Damage::Checksum => f.write_str("checksum mismatch"),
            Damage::Body => f.write_str("the body does not decode"),
            Damage::OtherJob(id) => write!(f, "it is job {id}'s record"),
        }
    }
}

/// The file's bytes (`None` only if the record did not fit [`BODY_MAX`],
/// which the bounds of its fields rule out).
pub fn encode(job: &StoredJob) -> Option<Vec<u8>> {
    let mut out = vec![0u8; RECORD_FILE_MAX];
    let n = aether_abi::syscall::encode(job, &mut out[HEADER..HEADER + BODY_MAX])
        .ok()?
        .len();
    out[..4].copy_from_slice(&MAGIC);
    out[4] = VERSION;
    // n <= BODY_MAX < 65536.
    out[5..7].copy_from_slice(&(n as u16).to_le_bytes());
    let crc = crc32(&out[..HEADER + n]);
    out[HEADER + n..HEADER + n + CRC_LEN].copy_from_slice(&crc.to_le_bytes());
    out.truncate(HEADER + n + CRC_LEN);
    Some(out)
}

/// The record in a file's bytes, or why there is none.
pub fn decode(bytes: &[u8]) -> Result<StoredJob, Damage> {
    if bytes.len() > RECORD_FILE_MAX {
        return Err(Damage::TooLarge);
    }
    if bytes.len() < HEADER + CRC_LEN {
        return Err(if MAGIC.starts_with(&bytes[..bytes.len().min(4)]) {
            Damage::Truncated
        } else {
            Damage::BadMagic
        });
    }
    if bytes[..4] != MAGIC {
        return Err(Damage::BadMagic);
    }
    if bytes[4] != VERSION {
        return Err(Damage::Version(bytes[4]));
    }
    let n = usize::from(u16::from_le_bytes([bytes[5], bytes[6]]));
    let whole = HEADER + n + CRC_LEN;
    if bytes.len() < whole {
        return Err(Damage::Truncated);
    }
    if bytes.len() > whole {
        return Err(Damage::TrailingBytes);
    }
    let (framed, crc) = bytes.split_at(HEADER + n);
    if crc32(framed) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err(Damage::Checksum);
    }
    aether_abi::syscall::decode(&framed[HEADER..]).map_err(|_| Damage::Body)
}
