//! Pure kernel logic, with no hardware access: clock arithmetic, physical
//! frame bookkeeping, ACPI table decoding, CMOS date conversion, fw_cfg
//! directory parsing, scheduling policy, the metric and event rings. The
//! kernel's `arch` and `mm` layers feed it bytes and numbers read from the
//! machine; everything here runs under `cargo test` on the host.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod acpi;
pub mod capture;
pub mod clock;
pub mod decimal;
pub mod elf;
pub mod event_ring;
pub mod frames;
pub mod fwcfg;
pub mod metric_ring;
pub mod pci;
pub mod readahead;
pub mod rtc;
pub mod sched;
pub mod twoq;

#[cfg(test)]
mod testing;
