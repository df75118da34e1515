//! [`Error`]: why a command failed, as one line.

use std::fmt;
use std::io;

use aether_abi::disk::LayoutError;
use aether_abi::fs::FsError;

#[derive(Debug)]
pub enum Error {
    /// A host file (the image, a file copied in or out, the output) failed:
    /// its name and why.
    Io(String, io::Error),
    /// The size asked of `mkfs` does not hold a file system.
    Layout(LayoutError),
    /// The file system refused a call; the path inside the image it was
    /// about (`/data/x: no such file or directory`).
    Fs(FsError, String),
    /// The image does not mount: its name and why.
    Mount(String),
    /// What `check` found wrong, each a line.
    Inconsistent(Vec<String>),
}

pub type Result<T> = core::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(what, e) => write!(f, "{what}: {e}"),
            Error::Layout(e) => write!(f, "{e}"),
            Error::Fs(e, path) => write!(f, "{path}: {e}"),
            Error::Mount(why) => write!(f, "{why}"),
            Error::Inconsistent(problems) => {
                write!(f, "{} problem(s): {}", problems.len(), problems.join("; "))
            }
        }
    }
}

impl std::error::Error for Error {}

/// `map_err` for a host file's error.
pub(crate) fn io_at(what: &std::path::Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| Error::Io(what.display().to_string(), e)
}

/// `map_err` for a file system call about `path`.
pub(crate) fn fs_at(path: &str) -> impl FnOnce(FsError) -> Error + '_ {
    move |e| Error::Fs(e, path.to_string())
}
