//! The boot images this package's build script made, for `cargo run`, the
//! benchmark and the integration tests.

pub use aether_runner as runner;

pub mod bridge;

/// The images built with this package.
pub fn images() -> runner::Images {
    runner::Images {
        bios: env!("AETHER_BIOS_IMAGE").into(),
        uefi: env!("AETHER_UEFI_IMAGE").into(),
        kernel_elf: env!("AETHER_KERNEL_ELF").into(),
    }
}

/// QEMU, or (after printing what to install) the exit code for "not found".
pub fn locate_qemu() -> Result<runner::Qemu, std::process::ExitCode> {
    runner::Qemu::locate().map_err(|e| {
        eprintln!("error: {e}");
        std::process::ExitCode::from(127)
    })
}
