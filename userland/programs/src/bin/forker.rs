//! Spawns `N` children (default 4, `spin`s) into its own group and then
//! ignores stop requests: only a forced kill ends the group.
#![no_std]
#![no_main]

use aether_abi::syscall::{DEFAULT_PRIORITY, GroupChoice};
use aether_rt::{Args, entry, println, proc, sys};

entry!(main);

fn main(args: Args) -> i32 {
    let n: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4);
    for _ in 0..n {
        if let Err(e) = proc::spawn("spin", &[], DEFAULT_PRIORITY + 1, GroupChoice::Inherit) {
            println!("forker: spawn: {e}");
        }
    }
    println!("forker: {n} children in group, ignoring stop requests");
    let mut spawned_late = false;
    loop {
        sys::sleep_ms(20);
        // A stop request: spawn one more member during the grace, which the
        // kernel must terminate too.
        if sys::stop_requested() && !spawned_late {
            spawned_late = true;
            let _ = proc::spawn("spin", &[], DEFAULT_PRIORITY + 1, GroupChoice::Inherit);
        }
    }
}
