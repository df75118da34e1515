//! The bytes the BIOS bootloader copies at boot stay within a budget.
//!
//! The bootloader's second stage copies the kernel and the program archive
//! to high memory through BIOS disk reads, about 0.07 ms per KiB under TCG
//! (0.45 ms before tools/bootloader's patch; docs/boot.md, "Boot time"):
//! every boot of `cargo run` and of every test
//! pays for each KiB. The budget makes growth a decision: shrink the image,
//! or raise the budget here and record the boot's cost in
//! docs/benchmarks.md.

/// Kernel (without its symbol table) plus program archive, in the profile
/// the tests are built with.
const BUDGET_BYTES: u64 = if cfg!(debug_assertions) {
    2_560 << 10
} else {
    2_200 << 10
};

fn size(path: &str) -> u64 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}")).len()
}

#[test]
fn bootloader_copies_at_most_the_budget() {
    let kernel = size(env!("AETHER_BOOT_KERNEL"));
    let initrd = size(env!("AETHER_INITRD"));
    assert!(
        kernel + initrd <= BUDGET_BYTES,
        "kernel {kernel} + program archive {initrd} = {} bytes, over the budget of {BUDGET_BYTES} \
         (each KiB costs about 0.07 ms of every boot)",
        kernel + initrd
    );
}

#[test]
fn boot_kernel_has_no_symbol_table() {
    let elf = std::fs::read(env!("AETHER_BOOT_KERNEL")).expect("the boot kernel");
    let full = size(env!("AETHER_KERNEL_ELF"));
    // build.rs strips it with llvm-strip (a warning, not a failure, if the
    // tool is missing); the symbols are a fifth of the file.
    assert!(
        (elf.len() as u64) < full,
        "the image's kernel ({}) is not smaller than the built ELF ({full})",
        elf.len()
    );
    assert!(
        !elf.windows(8).any(|w| w == b".symtab\0"),
        "the image's kernel still has .symtab"
    );
}
