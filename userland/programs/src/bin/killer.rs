//! `killer PID [GRACE_MS]`: stops one process from outside the console
//! (which refuses to stop itself): used to show that a killed console is
//! started again by the kernel's `[init]` task.
#![no_std]
#![no_main]

use aether_abi::syscall::Target;
use aether_rt::{Args, entry, println, proc};

entry!(main);

fn main(args: Args) -> i32 {
    let Some(pid) = args.get(1).and_then(|a| a.parse::<u32>().ok()) else {
        println!("usage: killer PID [GRACE_MS]");
        return 2;
    };
    let grace = args.get(2).and_then(|a| a.parse::<u32>().ok()).unwrap_or(0);
    match proc::kill(Target::Process(pid), grace) {
        Ok(_) => 0,
        Err(e) => {
            println!("killer: {e}");
            1
        }
    }
}
