//! Heartbeats every `PERIOD_MS` (default 50) for `SECONDS` (default 1), then
//! stops heartbeating and sleeps until killed: `sleeper [SECONDS] [PERIOD_MS]`.
#![no_std]
#![no_main]

use aether_rt::{Args, entry, println, sys};

entry!(main);

fn main(args: Args) -> i32 {
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let period_ms: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(50).max(1);
    let start = sys::clock_ns();
    let end = start + seconds * 1_000_000_000;
    let mut beats = 0u64;
    while sys::clock_ns() < end {
        sys::heartbeat();
        beats += 1;
        sys::sleep_ms(period_ms);
    }
    println!("sleeper: {beats} heartbeats, now silent");
    loop {
        sys::sleep_ms(1_000);
    }
}
