//! The AetherOS user runtime: what every ring-3 program links against.
//! It owns `_start` (ABI handshake, heap, arguments), the panic handler,
//! the global allocator and the syscall wrappers. Programs name their
//! `main` with [`entry!`] and use [`println!`].
//!
//! The raw `syscall` instruction lives in [`sys`] (the only `unsafe` here
//! besides the entry point and the allocator's heap extension).
#![no_std]

extern crate alloc;

pub mod args;
pub mod event;
pub mod fs;
mod heap;
pub mod io;
pub mod metric;
pub mod proc;
pub mod sys;

pub use aether_abi::syscall as abi;
pub use args::Args;

/// Declares the program's `main`: `fn main(args: Args) -> i32`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        pub fn __aether_main(args: $crate::Args) -> i32 {
            $main(args)
        }
    };
}

unsafe extern "Rust" {
    /// Defined by [`entry!`] in the program.
    fn __aether_main(args: Args) -> i32;
}

/// The ELF entry point. The kernel passes the argument block (see
/// `aether_abi::syscall::ARGS_BLOCK_MAX`) in `rdi`/`rsi` and the count in
/// `rdx`, with the stack aligned as after a call.
#[unsafe(no_mangle)]
extern "C" fn _start(args_ptr: *const u8, args_len: usize, argc: usize) -> ! {
    if sys::abi_hello(abi::ABI_VERSION).is_err() {
        sys::exit(126);
    }
    // SAFETY: the kernel writes the argument block at the top of the user
    // stack, above the initial stack pointer, and `args_len` is its exact
    // length (docs/abi.md, "Process start"); nothing writes it afterwards,
    // as the stack only grows down from below it.
    let block = unsafe { core::slice::from_raw_parts(args_ptr, args_len) };
    let args = Args::new(block, argc);
    // SAFETY: `__aether_main` is defined by `entry!` with this signature.
    let code = unsafe { __aether_main(args) };
    sys::exit(code)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    eprintln!("panic: {info}");
    sys::exit(101)
}
