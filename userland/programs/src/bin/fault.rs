//! Touches memory it may not: by default a kernel address (a page fault);
//! `fault ud` runs an invalid opcode, `fault gp` a privileged instruction,
//! `fault de` divides by zero, `fault null` reads address 0.
#![no_std]
#![no_main]

use aether_rt::{Args, entry, println};

entry!(main);

/// A kernel-half address: always mapped supervisor-only or not at all.
const KERNEL_ADDRESS: usize = 0xffff_8000_0000_0000;

fn main(args: Args) -> i32 {
    let what = args.get(1).unwrap_or("kernel");
    println!("fault: {what}");
    match what {
        "kernel" => read(KERNEL_ADDRESS),
        "null" => read(0),
        "ud" => aether_rt::sys::fault::invalid_opcode(),
        "gp" => aether_rt::sys::fault::privileged(),
        "de" => {
            let zero = core::hint::black_box(0u64);
            core::hint::black_box(
                1u64.checked_div(zero)
                    .unwrap_or_else(|| aether_rt::sys::fault::divide_by_zero()),
            );
        }
        _ => {
            println!("error: unknown fault '{what}' (kernel, null, ud, gp, de)");
            return 2;
        }
    }
    println!("fault: still running, which is wrong");
    1
}

fn read(addr: usize) {
    // The point of this program: a user read of an address it may not touch.
    aether_rt::sys::fault::read(addr);
}
