//! The guest-host link protocol (docs/jobs.md, "The link"). Being written.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
