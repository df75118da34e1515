//! Placeholder: being written.
#![no_std]
#![no_main]

use aether_rt::{Args, entry};

entry!(main);

fn main(_args: Args) -> i32 {
    1
}
