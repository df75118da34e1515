//! The one shared ABI crate of AetherOS: every type or wire format that
//! crosses a boundary (kernel <-> host harness today; syscalls, records and
//! bridge frames later) is declared here once and used on both sides.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod artifact;
pub mod boot;
pub mod console;
pub mod crc;
pub mod disk;
pub mod event;
pub mod fs;
pub mod initrd;
pub mod job;
pub mod json;
pub mod ktest;
pub mod link;
pub mod metric;
pub mod shm_ring;
pub mod syscall;
pub mod telemetry;

#[cfg(test)]
mod testing;
