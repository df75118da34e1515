//! Prints a greeting with its pid and arguments, then exits 0.
//! `hello --lines N` prints `line 1` .. `line N` instead (output tests).
#![no_std]
#![no_main]

use aether_rt::{Args, entry, println, sys};

entry!(main);

fn main(args: Args) -> i32 {
    if args.get(1) == Some("--lines") {
        let n: u32 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(0);
        for i in 1..=n {
            println!("line {i}");
        }
        return 0;
    }
    println!("hello from ring 3: pid {}", sys::getpid());
    for (i, a) in args.iter().enumerate().skip(1) {
        println!("arg {i}: {a}");
    }
    0
}
