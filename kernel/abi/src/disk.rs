//! The on-disk format, version 1 (docs/disk-format.md): the superblock and
//! the header every metadata block carries, encoded and checked here once
//! for the kernel and the host tool. Every input is untrusted: decoding
//! never panics, and a bad block is a distinct error.

use core::fmt;

/// One block of the format.
pub const BLOCK_SIZE: usize = 4096;
pub const MAGIC: [u8; 8] = *b"AETHFS01";
pub const VERSION: u32 = 1;
/// The superblock's encoded length (the rest of block 0 is zero).
pub const SUPERBLOCK_LEN: usize = 128;
/// Inodes per inode-table block (256 bytes each).
pub const INODES_PER_BLOCK: u64 = (BLOCK_SIZE / 256) as u64;
/// A metadata block's header.
pub const META_MAGIC: [u8; 4] = *b"AEMB";
pub const META_HEADER_LEN: usize = 32;
const META_CRC_AT: usize = 24;
/// Flag: the file system was unmounted cleanly.
pub const FLAG_CLEAN: u32 = 1;

/// CRC-32C (Castagnoli, reflected), as iSCSI and ext4 use it.
pub fn crc32c(bytes: &[u8]) -> u32 {
    !crate::crc::update(&crate::crc::CASTAGNOLI, !0, bytes.iter().copied())
}

/// A region of blocks: `start .. start + blocks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub start: u64,
    pub blocks: u64,
}

impl Extent {
    fn end(self) -> Option<u64> {
        self.start.checked_add(self.blocks)
    }
}

/// What block 0 (and its copy in the last block) says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    pub total_blocks: u64,
    pub journal: Extent,
    pub bitmap: Extent,
    /// Its `blocks` are not stored: they follow from `inode_count`
    /// ([`INODES_PER_BLOCK`] a block).
    pub inode_table: Extent,
    pub inode_count: u64,
    pub root_inode: u64,
    pub checkpoint_seq: u64,
    pub volume_id: [u8; 16],
    pub flags: u32,
}

/// Why a superblock is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuperblockError {
    /// Shorter than the superblock.
    Truncated,
    /// Not this format (no magic).
    NotAetherFs,
    /// A version this code does not know (newer: refused, not guessed at).
    UnsupportedVersion(u32),
    BadBlockSize(u32),
    /// The checksum does not match: the block is corrupt.
    BadChecksum {
        stored: u32,
        computed: u32,
    },
    /// A region lies outside the disk, overlaps another or block 0, or is
    /// too small for what it must hold.
    BadGeometry(&'static str),
}

impl fmt::Display for SuperblockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SuperblockError::Truncated => f.write_str("the superblock is truncated"),
            SuperblockError::NotAetherFs => f.write_str("not an AetherOS file system (no magic)"),
            SuperblockError::UnsupportedVersion(v) => {
                write!(f, "format version {v} is not supported (this is {VERSION})")
            }
            SuperblockError::BadBlockSize(s) => write!(f, "block size {s} (expected {BLOCK_SIZE})"),
            SuperblockError::BadChecksum { stored, computed } => {
                write!(
                    f,
                    "superblock checksum {stored:#010x}, computed {computed:#010x}: corrupt"
                )
            }
            SuperblockError::BadGeometry(what) => write!(f, "bad geometry: {what}"),
        }
    }
}

/// The little-endian field at `at` (within a block the caller has).
pub fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

/// The little-endian field at `at` (within a block the caller has).
pub fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl Superblock {
    /// The superblock's bytes (checksum included).
    pub fn encode(&self) -> [u8; SUPERBLOCK_LEN] {
        let mut b = [0u8; SUPERBLOCK_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(BLOCK_SIZE as u32).to_le_bytes());
        // (offset, value), as docs/disk-format.md lays them out; the inode
        // table's length is implied by the inode count.
        for (at, w) in [
            (16, self.total_blocks),
            (24, self.journal.start),
            (32, self.journal.blocks),
            (40, self.bitmap.start),
            (48, self.bitmap.blocks),
            (56, self.inode_table.start),
            (64, self.inode_count),
            (72, self.root_inode),
            (80, self.checkpoint_seq),
        ] {
            b[at..at + 8].copy_from_slice(&w.to_le_bytes());
        }
        b[88..104].copy_from_slice(&self.volume_id);
        b[104..108].copy_from_slice(&self.flags.to_le_bytes());
        let crc = crc32c(&b[..124]);
        b[124..128].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a superblock (the start of block 0, or of its
    /// copy).
    pub fn decode(b: &[u8]) -> Result<Superblock, SuperblockError> {
        let b = b.get(..SUPERBLOCK_LEN).ok_or(SuperblockError::Truncated)?;
        if b[0..8] != MAGIC {
            return Err(SuperblockError::NotAetherFs);
        }
        let version = u32_at(b, 8);
        if version != VERSION {
            return Err(SuperblockError::UnsupportedVersion(version));
        }
        let stored = u32_at(b, 124);
        let computed = crc32c(&b[..124]);
        if stored != computed {
            return Err(SuperblockError::BadChecksum { stored, computed });
        }
        let block_size = u32_at(b, 12);
        if block_size as usize != BLOCK_SIZE {
            return Err(SuperblockError::BadBlockSize(block_size));
        }
        let inode_count = u64_at(b, 64);
        let mut volume_id = [0u8; 16];
        volume_id.copy_from_slice(&b[88..104]);
        let sb = Superblock {
            total_blocks: u64_at(b, 16),
            journal: Extent {
                start: u64_at(b, 24),
                blocks: u64_at(b, 32),
            },
            bitmap: Extent {
                start: u64_at(b, 40),
                blocks: u64_at(b, 48),
            },
            inode_table: Extent {
                start: u64_at(b, 56),
                blocks: inode_count.div_ceil(INODES_PER_BLOCK),
            },
            inode_count,
            root_inode: u64_at(b, 72),
            checkpoint_seq: u64_at(b, 80),
            volume_id,
            flags: u32_at(b, 104),
        };
        sb.check_geometry()?;
        Ok(sb)
    }

    /// The regions in order, inside the disk, not overlapping, big enough.
    pub fn check_geometry(&self) -> Result<(), SuperblockError> {
        let bad = SuperblockError::BadGeometry;
        // Block 0, the regions, at least one data block, the copy.
        let regions = [
            ("the journal", self.journal),
            ("the bitmap", self.bitmap),
            ("the inode table", self.inode_table),
        ];
        let mut next = 1u64;
        for (what, r) in regions {
            if r.blocks == 0 {
                return Err(bad(match what {
                    "the journal" => "the journal is empty",
                    "the bitmap" => "the bitmap is empty",
                    _ => "the inode table is empty",
                }));
            }
            if r.start < next {
                return Err(bad("regions overlap or are out of order"));
            }
            next = r.end().ok_or(bad("a region's end overflows"))?;
        }
        // The last block holds the superblock's copy; one data block at least.
        if self.total_blocks < next.saturating_add(2) {
            return Err(bad("the regions do not fit the disk"));
        }
        if self.bitmap.blocks.saturating_mul(BLOCK_SIZE as u64 * 8) < self.total_blocks {
            return Err(bad("the bitmap is too small for the disk"));
        }
        if self.root_inode == 0 || self.root_inode >= self.inode_count {
            return Err(bad("the root inode is out of range"));
        }
        Ok(())
    }

    /// Where the superblock's copy lives.
    pub fn copy_block(&self) -> u64 {
        self.total_blocks - 1
    }

    /// The first block not used by a fixed region.
    pub fn data_start(&self) -> u64 {
        self.inode_table.start + self.inode_table.blocks
    }
}

/// Why a file system cannot be laid out on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// Too small for the fixed regions and some data.
    TooSmall { blocks: u64, needed: u64 },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::TooSmall { blocks, needed } => {
                write!(f, "{blocks} blocks are too few: at least {needed} are needed")
            }
        }
    }
}

/// Bits of the free-space bitmap one bitmap block holds (after its
/// header).
pub const BITS_PER_BITMAP_BLOCK: u64 = ((BLOCK_SIZE - META_HEADER_LEN) * 8) as u64;

/// The geometry `mkfs` gives a device of `total_blocks`: the journal
/// (`journal_blocks`, shrunk to an eighth of a small disk), the bitmap for
/// every block, an inode table for `inode_count` inodes, root inode 1.
pub fn layout(
    total_blocks: u64,
    journal_blocks: u64,
    inode_count: u64,
    volume_id: [u8; 16],
) -> Result<Superblock, LayoutError> {
    let journal_blocks = journal_blocks.min(total_blocks / 8).max(8);
    let inode_count = inode_count.max(INODES_PER_BLOCK).next_multiple_of(INODES_PER_BLOCK);
    let bitmap_blocks = total_blocks.div_ceil(BITS_PER_BITMAP_BLOCK).max(1);
    let inode_blocks = inode_count / INODES_PER_BLOCK;
    // Block 0, the regions, 16 data blocks, the superblock's copy.
    let needed = 1 + journal_blocks + bitmap_blocks + inode_blocks + 16 + 1;
    if total_blocks < needed {
        return Err(LayoutError::TooSmall {
            blocks: total_blocks,
            needed,
        });
    }
    let journal = Extent {
        start: 1,
        blocks: journal_blocks,
    };
    let bitmap = Extent {
        start: journal.start + journal.blocks,
        blocks: bitmap_blocks,
    };
    let inode_table = Extent {
        start: bitmap.start + bitmap.blocks,
        blocks: inode_blocks,
    };
    let sb = Superblock {
        total_blocks,
        journal,
        bitmap,
        inode_table,
        inode_count,
        root_inode: 1,
        checkpoint_seq: 0,
        volume_id,
        flags: FLAG_CLEAN,
    };
    // By construction; checked so that layout and decode never disagree.
    debug_assert_eq!(sb.check_geometry(), Ok(()));
    Ok(sb)
}

impl Superblock {
    /// Whether block `b` belongs to a fixed region (superblock, journal,
    /// bitmap, inode table, the superblock's copy): never free.
    pub fn is_fixed(&self, b: u64) -> bool {
        b < self.data_start() || b == self.copy_block()
    }

    /// The bitmap block holding block `b`'s bit, and the bit's index in it.
    pub fn bitmap_position(&self, b: u64) -> (u64, usize) {
        (
            self.bitmap.start + b / BITS_PER_BITMAP_BLOCK,
            (b % BITS_PER_BITMAP_BLOCK) as usize,
        )
    }
}

/// A bitmap block's bit (`bit` from [`Superblock::bitmap_position`]).
pub fn bitmap_bit(block: &[u8; BLOCK_SIZE], bit: usize) -> bool {
    block[META_HEADER_LEN + bit / 8] & (1 << (bit % 8)) != 0
}

pub fn set_bitmap_bit(block: &mut [u8; BLOCK_SIZE], bit: usize, used: bool) {
    let byte = &mut block[META_HEADER_LEN + bit / 8];
    if used {
        *byte |= 1 << (bit % 8);
    } else {
        *byte &= !(1 << (bit % 8));
    }
}

/// What kind of metadata a block holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum MetaKind {
    Bitmap = 1,
    InodeTable = 2,
    Directory = 3,
    ExtentList = 4,
    JournalDescriptor = 5,
    JournalCommit = 6,
}

impl MetaKind {
    fn from_u16(v: u16) -> Option<MetaKind> {
        Some(match v {
            1 => MetaKind::Bitmap,
            2 => MetaKind::InodeTable,
            3 => MetaKind::Directory,
            4 => MetaKind::ExtentList,
            5 => MetaKind::JournalDescriptor,
            6 => MetaKind::JournalCommit,
            _ => return None,
        })
    }
}

/// The header of a metadata block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaHeader {
    pub kind: MetaKind,
    /// The block's own number.
    pub block: u64,
    /// The transaction that last wrote it.
    pub seq: u64,
}

/// Why a metadata block is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaError {
    /// Not a whole block.
    BadLength(usize),
    NoMagic,
    UnknownKind(u16),
    WrongKind {
        expected: MetaKind,
        found: MetaKind,
    },
    /// A block written in the wrong place (or read from it).
    Misdirected {
        expected: u64,
        found: u64,
    },
    BadChecksum {
        stored: u32,
        computed: u32,
    },
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaError::BadLength(n) => write!(f, "a metadata block of {n} bytes"),
            MetaError::NoMagic => f.write_str("not a metadata block (no magic)"),
            MetaError::UnknownKind(k) => write!(f, "unknown metadata kind {k}"),
            MetaError::WrongKind { expected, found } => {
                write!(f, "a {found:?} block where a {expected:?} was expected")
            }
            MetaError::Misdirected { expected, found } => {
                write!(f, "block {expected} says it is block {found}: misdirected")
            }
            MetaError::BadChecksum { stored, computed } => {
                write!(
                    f,
                    "metadata checksum {stored:#010x}, computed {computed:#010x}: corrupt"
                )
            }
        }
    }
}

/// The block's checksum with its own CRC field taken as zero.
fn meta_crc(block: &[u8]) -> u32 {
    let masked = block.iter().enumerate().map(|(i, &b)| {
        if (META_CRC_AT..META_CRC_AT + 4).contains(&i) {
            0
        } else {
            b
        }
    });
    !crate::crc::update(&crate::crc::CASTAGNOLI, !0, masked)
}

impl MetaHeader {
    /// Writes the header into the first bytes of `block` and seals it with
    /// the checksum of the whole block (call after filling the payload).
    pub fn seal(&self, block: &mut [u8; BLOCK_SIZE]) {
        block[0..4].copy_from_slice(&META_MAGIC);
        block[4..6].copy_from_slice(&(self.kind as u16).to_le_bytes());
        block[6..8].fill(0);
        block[8..16].copy_from_slice(&self.block.to_le_bytes());
        block[16..24].copy_from_slice(&self.seq.to_le_bytes());
        block[28..32].fill(0);
        let crc = meta_crc(block);
        block[24..28].copy_from_slice(&crc.to_le_bytes());
    }

    /// Checks a block read from `number` that should be of `kind`.
    pub fn verify(block: &[u8], kind: MetaKind, number: u64) -> Result<MetaHeader, MetaError> {
        let h = MetaHeader::verify_any(block, number)?;
        if h.kind != kind {
            return Err(MetaError::WrongKind {
                expected: kind,
                found: h.kind,
            });
        }
        Ok(h)
    }

    /// Checks a block read from `number`, of whatever kind it says (a
    /// journal's copy of one, before it is replayed).
    pub fn verify_any(block: &[u8], number: u64) -> Result<MetaHeader, MetaError> {
        if block.len() != BLOCK_SIZE {
            return Err(MetaError::BadLength(block.len()));
        }
        if block[0..4] != META_MAGIC {
            return Err(MetaError::NoMagic);
        }
        let stored = u32_at(block, META_CRC_AT);
        let computed = meta_crc(block);
        if stored != computed {
            return Err(MetaError::BadChecksum { stored, computed });
        }
        let raw = u16::from_le_bytes([block[4], block[5]]);
        let kind = MetaKind::from_u16(raw).ok_or(MetaError::UnknownKind(raw))?;
        let at = u64_at(block, 8);
        if at != number {
            return Err(MetaError::Misdirected {
                expected: number,
                found: at,
            });
        }
        Ok(MetaHeader {
            kind,
            block: at,
            seq: u64_at(block, 16),
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    fn sample() -> Superblock {
        Superblock {
            total_blocks: 65536,
            journal: Extent { start: 1, blocks: 1024 },
            bitmap: Extent { start: 1025, blocks: 2 },
            inode_table: Extent {
                start: 1027,
                blocks: 64,
            },
            inode_count: 1024,
            root_inode: 1,
            checkpoint_seq: 7,
            volume_id: *b"0123456789abcdef",
            flags: FLAG_CLEAN,
        }
    }

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn a_superblock_round_trips_and_its_layout_is_as_documented() {
        let sb = sample();
        let b = sb.encode();
        assert_eq!(&b[0..8], b"AETHFS01");
        assert_eq!(u64_at(&b, 16), 65536);
        assert_eq!(u64_at(&b, 56), 1027);
        assert_eq!(u64_at(&b, 64), 1024);
        assert_eq!(u64_at(&b, 72), 1);
        assert_eq!(&b[108..124], &[0u8; 16]);
        assert_eq!(Superblock::decode(&b), Ok(sb));
        assert_eq!(sb.data_start(), 1091);
        assert_eq!(sb.copy_block(), 65535);
        // A whole block 0 decodes the same.
        let mut block = [0u8; BLOCK_SIZE];
        block[..SUPERBLOCK_LEN].copy_from_slice(&b);
        assert_eq!(Superblock::decode(&block), Ok(sb));
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        let b = sample().encode();
        for bit in 0..SUPERBLOCK_LEN * 8 {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(Superblock::decode(&c).is_err(), "bit {bit} flipped and accepted");
        }
    }

    #[test]
    fn each_bad_superblock_says_why() {
        let good = sample().encode();
        assert_eq!(Superblock::decode(&good[..100]), Err(SuperblockError::Truncated));
        assert_eq!(Superblock::decode(&[0u8; 128]), Err(SuperblockError::NotAetherFs));
        let mut v2 = good;
        v2[8] = 2;
        assert_eq!(Superblock::decode(&v2), Err(SuperblockError::UnsupportedVersion(2)));
        let mut flipped = good;
        flipped[20] ^= 1;
        assert!(matches!(
            Superblock::decode(&flipped),
            Err(SuperblockError::BadChecksum { .. })
        ));
        // Geometry: each with a valid checksum, so only the geometry is bad.
        let geometry = |f: &dyn Fn(&mut Superblock)| {
            let mut sb = sample();
            f(&mut sb);
            Superblock::decode(&sb.encode())
        };
        let bad = |r: Result<Superblock, SuperblockError>| matches!(r, Err(SuperblockError::BadGeometry(_)));
        assert!(bad(geometry(&|s| s.journal.start = 0)), "over block 0");
        assert!(bad(geometry(&|s| s.bitmap.start = 1000)), "overlapping");
        assert!(
            bad(geometry(&|s| s.total_blocks = 1091)),
            "no room for data and the copy"
        );
        assert!(bad(geometry(&|s| s.total_blocks = 2 * 32768 * 2)), "bitmap too small");
        assert!(bad(geometry(&|s| s.root_inode = 1024)), "root out of range");
        assert!(bad(geometry(&|s| s.root_inode = 0)), "root 0");
        assert!(bad(geometry(&|s| s.journal.blocks = 0)), "empty journal");
        assert!(bad(geometry(&|s| s.inode_table.start = u64::MAX - 1)), "overflow");
        for e in [
            SuperblockError::Truncated,
            SuperblockError::BadGeometry("x"),
            SuperblockError::UnsupportedVersion(9),
        ] {
            assert!(!std::format!("{e}").is_empty());
        }
    }

    use crate::testing::Rng;

    #[test]
    fn random_bytes_never_panic_and_are_refused() {
        let mut rng = Rng(42);
        let good = sample().encode();
        for i in 0..20_000 {
            let mut b = [0u8; SUPERBLOCK_LEN];
            if i % 2 == 0 {
                // Random bytes behind a valid magic and version, with a
                // checksum that matches: only the geometry checks stand.
                b = good;
                for w in b[16..108].iter_mut() {
                    *w = rng.next() as u8;
                }
                let crc = crc32c(&b[..124]);
                b[124..].copy_from_slice(&crc.to_le_bytes());
                if let Ok(sb) = Superblock::decode(&b) {
                    sb.check_geometry().expect("what decodes is consistent");
                    assert!(sb.data_start() < sb.copy_block());
                }
            } else {
                for w in b.iter_mut() {
                    *w = rng.next() as u8;
                }
                assert!(Superblock::decode(&b).is_err());
            }
        }
    }

    #[test]
    fn metadata_blocks_are_sealed_and_checked() {
        let mut block = [0u8; BLOCK_SIZE];
        block[100] = 0xab;
        let h = MetaHeader {
            kind: MetaKind::Directory,
            block: 5000,
            seq: 12,
        };
        h.seal(&mut block);
        assert_eq!(MetaHeader::verify(&block, MetaKind::Directory, 5000), Ok(h));
        assert_eq!(
            MetaHeader::verify(&block, MetaKind::Directory, 5001),
            Err(MetaError::Misdirected {
                expected: 5001,
                found: 5000
            })
        );
        assert_eq!(
            MetaHeader::verify(&block, MetaKind::Bitmap, 5000),
            Err(MetaError::WrongKind {
                expected: MetaKind::Bitmap,
                found: MetaKind::Directory
            })
        );
        assert_eq!(
            MetaHeader::verify(&block[..100], MetaKind::Directory, 5000),
            Err(MetaError::BadLength(100))
        );
        // A flip anywhere (header or payload) is caught.
        let mut rng = Rng(7);
        for _ in 0..2000 {
            let bit = (rng.next() % (BLOCK_SIZE as u64 * 8)) as usize;
            let mut c = block;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(MetaHeader::verify(&c, MetaKind::Directory, 5000).is_err(), "bit {bit}");
        }
        assert_eq!(
            MetaHeader::verify(&[0u8; BLOCK_SIZE], MetaKind::Bitmap, 0),
            Err(MetaError::NoMagic)
        );
        let mut unknown = block;
        unknown[4] = 99;
        let crc = meta_crc(&unknown);
        unknown[24..28].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            MetaHeader::verify(&unknown, MetaKind::Bitmap, 5000),
            Err(MetaError::UnknownKind(99))
        );
    }

    #[test]
    fn layout_fits_every_size_and_decodes_to_itself() {
        for total in [1107u64, 2048, 65536, 1 << 20, (1 << 28) / 4096, 10_000_019] {
            let sb = layout(total, 1024, 1024, [7; 16]).expect("fits");
            assert_eq!(sb.check_geometry(), Ok(()));
            assert_eq!(Superblock::decode(&sb.encode()), Ok(sb));
            assert!(sb.bitmap.blocks * BITS_PER_BITMAP_BLOCK >= total);
            assert!(sb.is_fixed(0) && sb.is_fixed(sb.copy_block()) && !sb.is_fixed(sb.data_start()));
            let (blk, bit) = sb.bitmap_position(total - 1);
            assert!(blk < sb.bitmap.start + sb.bitmap.blocks && bit < BITS_PER_BITMAP_BLOCK as usize);
        }
        assert!(matches!(
            layout(50, 1024, 1024, [0; 16]),
            Err(LayoutError::TooSmall { .. })
        ));
        let mut block = [0u8; BLOCK_SIZE];
        set_bitmap_bit(&mut block, 77, true);
        assert!(bitmap_bit(&block, 77) && !bitmap_bit(&block, 76));
        set_bitmap_bit(&mut block, 77, false);
        assert!(!bitmap_bit(&block, 77));
    }
}
