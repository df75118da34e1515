//! Program arguments, as the kernel lays them out (NUL-terminated strings,
//! packed; the first is the program name).

/// The arguments of this process.
#[derive(Clone, Copy, Debug)]
pub struct Args {
    block: &'static [u8],
    count: usize,
}

impl Args {
    pub(crate) fn new(block: &'static [u8], count: usize) -> Self {
        Args { block, count }
    }

    /// Number of arguments, the program name included.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every argument, the program name first. Invalid UTF-8 reads as "".
    pub fn iter(&self) -> impl Iterator<Item = &'static str> {
        self.block
            .split(|&b| b == 0)
            .take(self.count)
            .map(|a| core::str::from_utf8(a).unwrap_or(""))
    }

    /// The `i`-th argument.
    pub fn get(&self, i: usize) -> Option<&'static str> {
        self.iter().nth(i)
    }
}
