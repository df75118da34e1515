//! A store in memory that behaves like a disk with a volatile write cache:
//! writes since the last flush may be lost, in part, by a power cut
//! ([`MemStore::power_cut`]). The host tests' device, and the host tool's
//! model of what a crash can do.

use alloc::vec;
use alloc::vec::Vec;

use crate::{BS, Block, IoError, Store};
use aether_abi::disk::BLOCK_SIZE;

#[derive(Clone)]
pub struct MemStore {
    /// What survives a power cut.
    durable: Vec<u8>,
    /// Written since the last flush, in order: (block, data).
    unflushed: Vec<(u64, Vec<u8>)>,
    pub read_only: bool,
    pub now_ms: u64,
    /// Requests counted, for tests of what a path costs.
    pub reads: u64,
    pub writes: u64,
    pub flushes: u64,
    /// After this many more writes, every request fails (a dying device).
    pub fail_after: Option<u64>,
}

impl MemStore {
    pub fn new(blocks: u64) -> MemStore {
        MemStore {
            durable: vec![0; (blocks * BS) as usize],
            unflushed: Vec::new(),
            read_only: false,
            now_ms: 1_700_000_000_000,
            reads: 0,
            writes: 0,
            flushes: 0,
            fail_after: None,
        }
    }

    /// The image as a whole (unflushed writes included).
    pub fn image(&self) -> Vec<u8> {
        let mut img = self.durable.clone();
        for (b, data) in &self.unflushed {
            img[(*b * BS) as usize..][..BLOCK_SIZE].copy_from_slice(data);
        }
        img
    }

    pub fn from_image(image: Vec<u8>) -> MemStore {
        let mut s = MemStore::new(0);
        s.durable = image;
        s
    }

    /// The device after a power cut: of the writes since the last flush,
    /// those `keep` says yes to (by their index) reached the medium.
    pub fn power_cut(&self, mut keep: impl FnMut(usize) -> bool) -> MemStore {
        let mut durable = self.durable.clone();
        for (i, (b, data)) in self.unflushed.iter().enumerate() {
            if keep(i) {
                durable[(*b * BS) as usize..][..BLOCK_SIZE].copy_from_slice(data);
            }
        }
        let mut s = MemStore::from_image(durable);
        s.now_ms = self.now_ms;
        s
    }

    /// Writes not yet flushed.
    pub fn unflushed(&self) -> usize {
        self.unflushed.len()
    }

    /// Flips a bit of block `b` as it is on the medium (a test's damage).
    pub fn corrupt(&mut self, b: u64, byte: usize) {
        self.durable[(b * BS) as usize + byte] ^= 0x40;
        for (n, data) in self.unflushed.iter_mut() {
            if *n == b {
                data[byte] ^= 0x40;
            }
        }
    }

    fn failing(&mut self) -> Result<(), IoError> {
        match self.fail_after {
            Some(0) => Err(IoError),
            _ => Ok(()),
        }
    }
}

impl Store for MemStore {
    fn blocks(&self) -> u64 {
        self.durable.len() as u64 / BS
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read(&mut self, block: u64, buf: &mut Block) -> Result<(), IoError> {
        self.failing()?;
        if block >= self.blocks() {
            return Err(IoError);
        }
        self.reads += 1;
        match self.unflushed.iter().rev().find(|(b, _)| *b == block) {
            Some((_, data)) => buf.copy_from_slice(data),
            None => buf.copy_from_slice(&self.durable[(block * BS) as usize..][..BLOCK_SIZE]),
        }
        Ok(())
    }
    fn write(&mut self, block: u64, buf: &Block) -> Result<(), IoError> {
        self.failing()?;
        if self.read_only || block >= self.blocks() {
            return Err(IoError);
        }
        if let Some(n) = self.fail_after.as_mut() {
            *n -= 1;
        }
        self.writes += 1;
        self.unflushed.push((block, buf.to_vec()));
        Ok(())
    }
    fn flush(&mut self) -> Result<(), IoError> {
        self.failing()?;
        self.flushes += 1;
        for (b, data) in core::mem::take(&mut self.unflushed) {
            self.durable[(b * BS) as usize..][..BLOCK_SIZE].copy_from_slice(&data);
        }
        Ok(())
    }
    fn now_ms(&self) -> u64 {
        self.now_ms
    }
}
