//! Turns the kernel ELF (built for x86_64-unknown-none as an artifact
//! dependency) into BIOS and UEFI disk images, and tells the package's
//! binaries and tests where they are.

use std::path::PathBuf;

use bootloader::{BiosBoot, BootConfig, UefiBoot};

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let kernel = PathBuf::from(std::env::var_os("CARGO_BIN_FILE_KERNEL_kernel").expect("kernel artifact dependency"));

    // The bootloader's own serial and framebuffer logging cost boot time and
    // would interleave with the kernel's console.
    let mut config = BootConfig::default();
    config.serial_logging = false;
    config.frame_buffer_logging = false;

    let initrd = out.join("aetheros-initrd.bin");
    let programs = pack_programs(&initrd);

    // The image gets the kernel without its symbol table (a fifth of the
    // file), which the bootloader would otherwise copy at boot;
    // AETHER_KERNEL_ELF keeps the symbols for addr2line.
    let boot_kernel = stripped(&kernel, &out.join("kernel-stripped"));

    let bios = out.join("aetheros-bios.img");
    BiosBoot::new(&boot_kernel)
        .set_boot_config(&config)
        .set_ramdisk(&initrd)
        .create_disk_image(&bios)
        .expect("create BIOS image");
    let uefi = out.join("aetheros-uefi.img");
    UefiBoot::new(&boot_kernel)
        .set_boot_config(&config)
        .set_ramdisk(&initrd)
        .create_disk_image(&uefi)
        .expect("create UEFI image");

    // Without this, cargo (bindeps) may skip this script after the kernel
    // changed, leaving a stale image for one build.
    println!("cargo:rerun-if-changed={}", kernel.display());
    for p in &programs {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-env=AETHER_BIOS_IMAGE={}", bios.display());
    println!("cargo:rustc-env=AETHER_UEFI_IMAGE={}", uefi.display());
    println!("cargo:rustc-env=AETHER_KERNEL_ELF={}", kernel.display());
    // What the bootloader copies at boot (the image-size test's budget).
    println!("cargo:rustc-env=AETHER_BOOT_KERNEL={}", boot_kernel.display());
    println!("cargo:rustc-env=AETHER_INITRD={}", initrd.display());
}

/// `kernel` without its symbol table, written to `to` by the toolchain's
/// `llvm-strip` (the `llvm-tools-preview` component rust-toolchain.toml
/// installs). Without the tool the image gets `kernel` as it is, and the
/// build says so: a slower boot, nothing else.
fn stripped(kernel: &std::path::Path, to: &std::path::Path) -> PathBuf {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = std::process::Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let host = std::env::var("HOST").expect("cargo sets HOST");
    let tool = sysroot.map(|s| s.join("lib/rustlib").join(host).join("bin/llvm-strip"));
    let status = tool.as_ref().map(|t| {
        std::process::Command::new(t)
            .arg("--strip-all")
            .arg(kernel)
            .arg("-o")
            .arg(to)
            .status()
    });
    match status {
        Some(Ok(s)) if s.success() => to.to_path_buf(),
        other => {
            println!(
                "cargo:warning=kernel not stripped for the boot image ({:?}: {other:?}); the boot is slower",
                tool
            );
            kernel.to_path_buf()
        }
    }
}

/// The user programs in the boot image, by name (each a `[[bin]]` of
/// `userland/programs`).
const PROGRAMS: &[&str] = &[
    "console", "hello", "spin", "fault", "sleeper", "forker", "bench", "badcalls", "fuzz", "memcheck", "killer", "svc",
    "opsd", "probe", "storm", "fsbench", "fscheck", "telem", "trainsim",
];

/// Packs every program's ELF into the initial archive at `path`
/// (format: `aether_abi::initrd`); returns the ELF paths.
fn pack_programs(path: &std::path::Path) -> Vec<PathBuf> {
    let files: Vec<PathBuf> = PROGRAMS
        .iter()
        .map(|name| {
            let var = format!("CARGO_BIN_FILE_PROGRAMS_{name}");
            PathBuf::from(std::env::var_os(&var).unwrap_or_else(|| panic!("{var}: programs artifact dependency")))
        })
        .collect();
    let contents: Vec<Vec<u8>> = files
        .iter()
        .map(|f| {
            let elf = std::fs::read(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
            // Compressed when that is smaller (aether_abi::initrd, "Compressed entries").
            let block = lz4::block::compress(&elf, Some(lz4::block::CompressionMode::HIGHCOMPRESSION(12)), false)
                .unwrap_or_else(|e| panic!("compress {}: {e}", f.display()));
            if block.len() + 12 < elf.len() {
                [&aether_abi::initrd::lz4_header(elf.len() as u64)[..], &block].concat()
            } else {
                elf
            }
        })
        .collect();
    let entries: Vec<(&str, &[u8])> = PROGRAMS
        .iter()
        .copied()
        .zip(contents.iter().map(Vec::as_slice))
        .collect();
    let archive = aether_abi::initrd::pack(&entries).expect("program names are valid archive names");
    std::fs::write(path, archive).expect("write the initial archive");
    files
}
