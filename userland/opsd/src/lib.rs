//! The ops daemon's logic (docs/jobs.md). Being written.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
