//! The file system (docs/disk-format.md). So far: mounting checks the
//! superblock (block 0, else its copy in the last block) and refuses a disk
//! whose superblocks are both bad, with the reason, and the kernel goes on
//! without storage.

use aether_abi::disk::{BLOCK_SIZE, Superblock, SuperblockError};
use spin::Mutex;

use crate::block::{self, BlkError, DmaBuf, SECTOR};

/// The mounted file system's superblock.
static MOUNTED: Mutex<Option<Superblock>> = Mutex::new(None);

/// Why a disk was not mounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountError {
    NoDisk,
    Io(BlkError),
    /// Block 0's superblock is bad, and so is (or for another size is) the
    /// copy.
    Refused {
        first: SuperblockError,
        copy: Option<SuperblockError>,
    },
}

const SECTORS_PER_BLOCK: u64 = (BLOCK_SIZE / SECTOR) as u64;

fn read_block(n: u64, buf: &mut DmaBuf) -> Result<(), BlkError> {
    block::with_disk(|d| d.read(n * SECTORS_PER_BLOCK, buf, BLOCK_SIZE))
}

/// Mounts the disk, if there is one (at boot).
pub fn mount() -> Result<Superblock, MountError> {
    let blocks = match block::with_disk(|d| Ok(d.sectors() / SECTORS_PER_BLOCK)) {
        Ok(b) => b,
        Err(BlkError::NoDevice) => return Err(MountError::NoDisk),
        Err(e) => return Err(MountError::Io(e)),
    };
    let mut buf = DmaBuf::new(BLOCK_SIZE).ok_or(MountError::Io(BlkError::Device))?;
    read_block(0, &mut buf).map_err(MountError::Io)?;
    let sb = match Superblock::decode(buf.as_slice()) {
        Ok(sb) => sb,
        Err(first) => {
            let copy = match blocks.checked_sub(1) {
                Some(last) => {
                    read_block(last, &mut buf).map_err(MountError::Io)?;
                    match Superblock::decode(buf.as_slice()) {
                        Ok(sb) if sb.copy_block() == last => {
                            log::warn!("disk: block 0: {first}; mounted from the superblock's copy");
                            Ok(sb)
                        }
                        Ok(_) => Err(None),
                        Err(e) => Err(Some(e)),
                    }
                }
                None => Err(None),
            };
            match copy {
                Ok(sb) => sb,
                Err(copy) => return Err(MountError::Refused { first, copy }),
            }
        }
    };
    if sb.total_blocks > blocks {
        return Err(MountError::Refused {
            first: SuperblockError::BadGeometry("the file system is larger than the disk"),
            copy: None,
        });
    }
    *MOUNTED.lock() = Some(sb);
    Ok(sb)
}

/// Mounts at boot and says how it went (never fatal).
pub fn init() {
    match mount() {
        Ok(sb) => log::info!(
            "disk: AetherOS file system v1, {} blocks ({} MiB), data from block {}",
            sb.total_blocks,
            (sb.total_blocks * BLOCK_SIZE as u64) >> 20,
            sb.data_start()
        ),
        Err(MountError::NoDisk) => {}
        Err(MountError::Io(e)) => log::warn!("disk: mount refused: reading the superblock: {e:?}"),
        Err(MountError::Refused { first, copy }) => match copy {
            Some(copy) => log::warn!("disk: mount refused: block 0: {first}; the copy: {copy}"),
            None => log::warn!("disk: mount refused: {first}"),
        },
    }
}
