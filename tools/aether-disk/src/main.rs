//! `aether-disk`: AetherOS disk images offline (docs/disk-format.md).
//!
//! * `aether-disk mkfs IMAGE --size-mib N`: an empty file system;
//! * `aether-disk check IMAGE`: verifies it (exit 1 with each problem found);
//! * `aether-disk info IMAGE`: the superblock.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "aether-disk", about = "Creates and checks AetherOS disk images")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Lays out an empty file system on IMAGE (created or overwritten).
    Mkfs {
        image: PathBuf,
        #[arg(long, default_value_t = 256)]
        size_mib: u64,
    },
    /// Checks IMAGE; exits 1 if anything is wrong.
    Check { image: PathBuf },
    /// Prints IMAGE's superblock.
    Info { image: PathBuf },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::Mkfs { image, size_mib } => match aether_disk::mkfs(&image, size_mib << 20) {
            Ok(sb) => {
                println!(
                    "{}: {} blocks, data from block {}",
                    image.display(),
                    sb.total_blocks,
                    sb.data_start()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("aether-disk mkfs: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Check { image } => match aether_disk::check(&image) {
            Ok(_) => {
                println!("{}: clean", image.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("aether-disk check: {}: {e}", image.display());
                ExitCode::FAILURE
            }
        },
        Cmd::Info { image } => match aether_disk::superblock(&image) {
            Ok((sb, bad_first)) => {
                if let Some(e) = bad_first {
                    println!("block 0: {e}; from the copy:");
                }
                println!("{sb:#?}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("aether-disk info: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
