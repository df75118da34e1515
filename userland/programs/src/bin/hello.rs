//! Prints a greeting with its pid and arguments, then exits 0.
#![no_std]
#![no_main]

use aether_rt::{Args, entry, println, sys};

entry!(main);

fn main(args: Args) -> i32 {
    println!("hello from ring 3: pid {}", sys::getpid());
    for (i, a) in args.iter().enumerate().skip(1) {
        println!("arg {i}: {a}");
    }
    0
}
