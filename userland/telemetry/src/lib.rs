//! opsd's telemetry (docs/telemetry.md) as pure `no_std` logic: no I/O, no
//! clock (every input carries `now_ms`, unix ms), no panics on any input,
//! bounded memory. opsd's binary drives it; host tests prove it.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod artifacts;
pub mod metrics;
pub mod prom;
pub mod routes;
pub mod rules;
