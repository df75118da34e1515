//! Burns CPU forever (until killed); with `--polite` it exits when asked to stop.
#![no_std]
#![no_main]

use aether_rt::{Args, entry, sys};

entry!(main);

fn main(args: Args) -> i32 {
    let polite = args.iter().any(|a| a == "--polite");
    let mut n: u64 = 0;
    loop {
        n = n.wrapping_add(1);
        core::hint::black_box(n);
        if polite && n.is_multiple_of(1 << 20) && sys::stop_requested() {
            return 0;
        }
    }
}
