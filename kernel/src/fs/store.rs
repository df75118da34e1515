//! The disk as `aethfs`'s block store: metadata blocks move through one
//! 4 KiB DMA buffer, by the block layer's blocking calls. (File data does
//! not come this way: the page cache reads and writes its own folios.)

use aether_abi::disk::BLOCK_SIZE;
use aethfs::{Block, IoError, Store};

use crate::block::{self, BlkError, DmaBuf, SECTOR};

pub const SECTORS_PER_BLOCK: u64 = (BLOCK_SIZE / SECTOR) as u64;

pub struct DiskStore {
    blocks: u64,
    read_only: bool,
    scratch: DmaBuf,
}

impl DiskStore {
    /// The machine's disk; `None` without one.
    pub fn open() -> Result<DiskStore, BlkError> {
        let (sectors, read_only) = block::with_disk(|d| Ok((d.sectors(), d.read_only())))?;
        Ok(DiskStore {
            blocks: sectors / SECTORS_PER_BLOCK,
            read_only,
            scratch: DmaBuf::new(BLOCK_SIZE).ok_or(BlkError::Device)?,
        })
    }
}

impl Store for DiskStore {
    fn blocks(&self) -> u64 {
        self.blocks
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read(&mut self, n: u64, buf: &mut Block) -> Result<(), IoError> {
        let scratch = &mut self.scratch;
        block::with_disk(|d| d.read(n * SECTORS_PER_BLOCK, scratch, 0, BLOCK_SIZE)).map_err(|_| IoError)?;
        buf.copy_from_slice(&self.scratch.as_slice()[..BLOCK_SIZE]);
        Ok(())
    }

    fn write(&mut self, n: u64, buf: &Block) -> Result<(), IoError> {
        self.scratch.as_mut_slice()[..BLOCK_SIZE].copy_from_slice(buf);
        let scratch = &self.scratch;
        block::with_disk(|d| d.write(n * SECTORS_PER_BLOCK, scratch, 0, BLOCK_SIZE)).map_err(|_| IoError)
    }

    fn flush(&mut self) -> Result<(), IoError> {
        block::with_disk(|d| d.flush()).map_err(|_| IoError)
    }

    fn now_ms(&self) -> u64 {
        crate::time::boot_unix_s() * 1000 + crate::time::now_ns() / 1_000_000
    }
}
