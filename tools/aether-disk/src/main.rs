//! `aether-disk`: AetherOS disk images offline (docs/disk-format.md, "The
//! host tool"). This file parses the command line and prints; the work is
//! the library's. Every error is one line on stderr and exit code 1.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aether_abi::fs::FileKind;
use aether_disk::Error;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "aether-disk", about = "Creates, checks and edits AetherOS disk images")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Lays out a new file system on IMAGE (created or overwritten).
    Mkfs {
        image: PathBuf,
        #[arg(long, default_value_t = 256)]
        size_mib: u64,
        /// Copies this host folder's files and directories in.
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
        /// Adds the 256 MiB sample dataset (/datasets/sample.bin).
        #[arg(long)]
        sample: bool,
    },
    /// Lists a directory (default /), or names a file.
    Ls {
        image: PathBuf,
        #[arg(default_value = "/")]
        path: String,
        /// Kind, size, extents and name of each entry.
        #[arg(short = 'l')]
        long: bool,
    },
    /// Writes a file's bytes to stdout.
    Cat { image: PathBuf, path: String },
    /// Copies HOST_FILE into the image at PATH (created or replaced).
    Put {
        image: PathBuf,
        host_file: PathBuf,
        path: String,
    },
    /// Copies the file at PATH out to HOST_FILE.
    Get {
        image: PathBuf,
        path: String,
        host_file: PathBuf,
    },
    /// Creates a directory.
    Mkdir { image: PathBuf, path: String },
    /// Removes a file or an empty directory.
    Rm { image: PathBuf, path: String },
    /// Renames FROM to TO (a file at TO is replaced).
    Mv { image: PathBuf, from: String, to: String },
    /// Checks IMAGE (fsck, read-only); exits 1 with each problem found.
    Check { image: PathBuf },
    /// Prints the superblock and the free space.
    Info { image: PathBuf },
    /// Prints the space and inodes used and free.
    Df { image: PathBuf },
    /// Prints a file's checksum (the value the guest's `probe` prints).
    Sum { image: PathBuf, path: String },
}

impl Cmd {
    fn name(&self) -> &'static str {
        match self {
            Cmd::Mkfs { .. } => "mkfs",
            Cmd::Ls { .. } => "ls",
            Cmd::Cat { .. } => "cat",
            Cmd::Put { .. } => "put",
            Cmd::Get { .. } => "get",
            Cmd::Mkdir { .. } => "mkdir",
            Cmd::Rm { .. } => "rm",
            Cmd::Mv { .. } => "mv",
            Cmd::Check { .. } => "check",
            Cmd::Info { .. } => "info",
            Cmd::Df { .. } => "df",
            Cmd::Sum { .. } => "sum",
        }
    }
}

fn main() -> ExitCode {
    let command = Cli::parse().command;
    let name = command.name();
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Inconsistent(problems)) => {
            for p in problems {
                eprintln!("aether-disk {name}: {p}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("aether-disk {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Standard output's errors (a closed pipe) as errors, not panics.
fn out(r: io::Result<()>) -> Result<(), Error> {
    r.map_err(|e| Error::Io("stdout".into(), e))
}

fn mib(blocks: u64) -> f64 {
    blocks as f64 * aether_abi::disk::BLOCK_SIZE as f64 / (1 << 20) as f64
}

fn run(command: Cmd) -> Result<(), Error> {
    let mut stdout = io::stdout().lock();
    match command {
        Cmd::Mkfs {
            image,
            size_mib,
            from,
            sample,
        } => {
            let bytes = size_mib.checked_mul(1 << 20).ok_or_else(|| {
                Error::Io(
                    "--size-mib".into(),
                    io::Error::new(io::ErrorKind::InvalidInput, "too large"),
                )
            })?;
            let sb = match from {
                Some(dir) => {
                    let (sb, skipped) = aether_disk::mkfs_from(&image, bytes, &dir)?;
                    for line in skipped {
                        eprintln!("aether-disk mkfs: warning: {line}");
                    }
                    sb
                }
                None => aether_disk::mkfs(&image, bytes)?,
            };
            if sample {
                aether_disk::put_sample(&image)?;
            }
            out(writeln!(
                stdout,
                "{}: {} blocks ({:.1} MiB), data from block {}",
                image.display(),
                sb.total_blocks,
                mib(sb.total_blocks),
                sb.data_start()
            ))
        }
        Cmd::Ls { image, path, long } => {
            for (entry, st) in aether_disk::ls(&image, &path)? {
                if long {
                    let kind = match st.kind {
                        FileKind::File => "file",
                        FileKind::Dir => "dir",
                    };
                    out(writeln!(
                        stdout,
                        "{kind:<4} {:>12} {:>4} {}",
                        st.size, st.extents, entry.name
                    ))?;
                } else {
                    out(writeln!(stdout, "{}", entry.name))?;
                }
            }
            Ok(())
        }
        Cmd::Cat { image, path } => {
            aether_disk::cat_to(&image, &path, &mut stdout)?;
            out(stdout.flush())
        }
        Cmd::Put { image, host_file, path } => aether_disk::put(&image, &host_file, &path).map(|_| ()),
        Cmd::Get { image, path, host_file } => aether_disk::get(&image, &path, &host_file).map(|_| ()),
        Cmd::Mkdir { image, path } => aether_disk::mkdir(&image, &path),
        Cmd::Rm { image, path } => aether_disk::rm(&image, &path),
        Cmd::Mv { image, from, to } => aether_disk::mv(&image, &from, &to),
        Cmd::Check { image } => match aether_disk::check(&image) {
            Ok(_) => out(writeln!(stdout, "{}: clean", image.display())),
            Err(e) => Err(naming(&image, e)),
        },
        Cmd::Info { image } => info(&mut stdout, &image).map_err(|e| naming(&image, e)),
        Cmd::Df { image } => df(&mut stdout, &image),
        Cmd::Sum { image, path } => {
            let sum = aether_disk::checksum_file(&image, &path)?;
            out(writeln!(stdout, "{sum:016x}"))
        }
    }
}

/// Each of `check`'s problems prefixed with the image it is about.
fn naming(image: &Path, e: Error) -> Error {
    match e {
        Error::Inconsistent(problems) => Error::Inconsistent(
            problems
                .into_iter()
                .map(|p| format!("{}: {p}", image.display()))
                .collect(),
        ),
        e => e,
    }
}

fn info(stdout: &mut impl Write, image: &Path) -> Result<(), Error> {
    let (sb, bad_first) = aether_disk::superblock(image)?;
    if let Some(why) = bad_first {
        out(writeln!(stdout, "block 0: {why}; from the superblock's copy:"))?;
    }
    let id: String = sb.volume_id.iter().map(|b| format!("{b:02x}")).collect();
    let region = |r: aether_abi::disk::Extent| format!("blocks {}..{} ({})", r.start, r.start + r.blocks, r.blocks);
    out(writeln!(
        stdout,
        "volume id    {id}\n\
         blocks       {} of {} bytes ({:.1} MiB)\n\
         journal      {}\n\
         bitmap       {}\n\
         inode table  {}, {} inodes, root {}\n\
         data         from block {}\n\
         copy         block {}\n\
         checkpoint   {}\n\
         flags        {:#x}",
        sb.total_blocks,
        aether_abi::disk::BLOCK_SIZE,
        mib(sb.total_blocks),
        region(sb.journal),
        region(sb.bitmap),
        region(sb.inode_table),
        sb.inode_count,
        sb.root_inode,
        sb.data_start(),
        sb.copy_block(),
        sb.checkpoint_seq,
        sb.flags,
    ))?;
    df(stdout, image)
}

fn df(stdout: &mut impl Write, image: &Path) -> Result<(), Error> {
    let st = aether_disk::df(image)?;
    let used = st.total_blocks - st.free_blocks;
    out(writeln!(
        stdout,
        "size         {:.1} MiB ({} blocks)\n\
         used         {:.1} MiB ({used} blocks)\n\
         free         {:.1} MiB ({} blocks)\n\
         inodes       {} ({} used, {} free)",
        mib(st.total_blocks),
        st.total_blocks,
        mib(used),
        mib(st.free_blocks),
        st.free_blocks,
        st.inodes,
        st.inodes - st.free_inodes,
        st.free_inodes,
    ))
}
