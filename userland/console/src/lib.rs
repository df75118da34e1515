//! The serial console's logic, without I/O: a line editor fed one byte at a
//! time and a command parser with the command table. The ring-3 console
//! (`userland/programs/src/bin/console.rs`) drives it.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod command;
pub mod line;
