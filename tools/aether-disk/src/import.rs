//! `mkfs --from DIR`: a host folder tree copied into a new file system.

use std::fs::{self, File};
use std::path::Path;

use aether_abi::fs::FileKind;
use aethfs::Fs;

use crate::error::{Result, fs_at, io_at};
use crate::store::FileStore;
use crate::stream::write_new;

/// Copies what is in host directory `host` into directory `at` of `fs`:
/// regular files and directories, recursively, in name order. What cannot
/// be copied as such (symlinks, devices, sockets, FIFOs, names that are not
/// UTF-8) is skipped with a warning line in `warnings`.
pub(crate) fn copy_tree(fs: &mut Fs<FileStore>, host: &Path, at: &str, warnings: &mut Vec<String>) -> Result<()> {
    let mut entries = fs::read_dir(host)
        .map_err(io_at(host))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io_at(host))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let from = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            warnings.push(format!("{}: skipped: the name is not UTF-8", from.display()));
            continue;
        };
        let to = if at == "/" {
            format!("/{name}")
        } else {
            format!("{at}/{name}")
        };
        // Not followed: a symlink is reported, not copied as its target.
        let kind = entry.file_type().map_err(io_at(&from))?;
        if kind.is_dir() {
            fs.create(&to, FileKind::Dir).map_err(fs_at(&to))?;
            copy_tree(fs, &from, &to, warnings)?;
        } else if kind.is_file() {
            let mut file = File::open(&from).map_err(io_at(&from))?;
            write_new(fs, &to, &mut file, &from.display().to_string())?;
        } else {
            let what = if kind.is_symlink() {
                "a symbolic link"
            } else {
                "not a regular file or directory"
            };
            warnings.push(format!("{}: skipped: {what}", from.display()));
        }
    }
    Ok(())
}
