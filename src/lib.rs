//! The boot images this package's build script made, for `cargo run`, the
//! benchmark and the integration tests.

pub use aether_runner as runner;

/// The images built with this package.
pub fn images() -> runner::Images {
    runner::Images {
        bios: env!("AETHER_BIOS_IMAGE").into(),
        uefi: env!("AETHER_UEFI_IMAGE").into(),
        kernel_elf: env!("AETHER_KERNEL_ELF").into(),
    }
}
