//! Address-space isolation check: fills memory at the same virtual
//! addresses as its siblings (a static array, the stack, the heap) with a
//! pattern of its own pid, then yields and re-checks `ROUNDS` times
//! (default 200). Exit 0 if it only ever saw its own values, 1 if not: a
//! stale translation after a switch would show another process's memory.
#![no_std]
#![no_main]

extern crate alloc;

use aether_rt::{Args, entry, println, sys};
use alloc::vec;

entry!(main);

/// In .bss: the same virtual address in every instance.
static mut STATIC_WORDS: [u64; 512] = [0; 512];

fn pattern(pid: u64, round: u64, i: usize) -> u64 {
    (pid << 48) ^ (round << 20) ^ i as u64
}

fn main(args: Args) -> i32 {
    let rounds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let pid = sys::getpid() as u64;
    let mut heap = vec![0u64; 8192];
    let mut stack = [0u64; 512];
    // The static is only touched through this one pointer (single thread).
    let statics = &raw mut STATIC_WORDS;
    for round in 0..rounds {
        for (i, w) in heap.iter_mut().enumerate() {
            *w = pattern(pid, round, i);
        }
        for (i, w) in stack.iter_mut().enumerate() {
            *w = pattern(pid, round, i) ^ 1;
        }
        for i in 0..512 {
            // SAFETY: this program is single-threaded and nothing else holds a
            // reference to the static; volatile keeps every access real.
            unsafe { core::ptr::write_volatile(&raw mut (*statics)[i], pattern(pid, round, i) ^ 2) };
        }
        sys::yield_now();
        let heap_ok = heap.iter().enumerate().all(|(i, &w)| w == pattern(pid, round, i));
        let stack_ok = core::hint::black_box(&stack)
            .iter()
            .enumerate()
            .all(|(i, &w)| w == pattern(pid, round, i) ^ 1);
        // SAFETY: as above.
        let static_ok = (0..512)
            .all(|i| unsafe { core::ptr::read_volatile(&raw const (*statics)[i]) } == pattern(pid, round, i) ^ 2);
        if !(heap_ok && stack_ok && static_ok) {
            println!("memcheck {pid}: round {round}: heap {heap_ok} stack {stack_ok} static {static_ok}");
            return 1;
        }
    }
    0
}
