//! Readahead for one open file (docs/storage.md): which pages to fetch
//! ahead of a reader, so that sequential reads become few, large, early
//! device requests.
//!
//! Linux's scheme, simplified: a read that does not continue the previous
//! one starts a small window; each time the reader reaches the *marker*
//! (the first page of the newest window), the next window is asked for,
//! twice as large, up to a maximum. The fetch runs ahead of the reader by
//! about one window, so the device works while the reader consumes. Pages
//! already cached are the cache's business: the plan names a range, and
//! the cache fetches the missing pages in it.

use core::ops::Range;

/// The readahead state of one file (pages are the file's page indices).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readahead {
    /// Where the last read ended.
    prev_end: Option<u64>,
    /// The newest window asked for.
    window: Range<u64>,
    /// Reaching this page asks for the next window.
    marker: u64,
    min_pages: u64,
    max_pages: u64,
}

impl Readahead {
    /// Windows from `min_pages` up to `max_pages` (both at least 1).
    pub fn new(min_pages: u64, max_pages: u64) -> Readahead {
        let min_pages = min_pages.max(1);
        Readahead {
            prev_end: None,
            window: 0..0,
            marker: u64::MAX,
            min_pages,
            max_pages: max_pages.max(min_pages),
        }
    }

    /// The size of the newest window.
    pub fn window_pages(&self) -> u64 {
        self.window.end - self.window.start
    }

    /// A read of `len` pages from `start` in a file of `file_pages` pages:
    /// the range to have in the cache (the read itself and what to fetch
    /// ahead), if anything beyond the read is due.
    pub fn on_read(&mut self, start: u64, len: u64, file_pages: u64) -> Range<u64> {
        let len = len.max(1);
        if start >= file_pages {
            // At or past the end: nothing to fetch.
            return start..start;
        }
        let end = start.saturating_add(len).min(file_pages);
        let sequential = self.prev_end == Some(start) || self.window.contains(&start);
        self.prev_end = Some(end);
        if !sequential {
            // A new stream (or a seek): a small window from here.
            let size = (len * 2).clamp(self.min_pages, self.max_pages).max(len);
            self.window = start..start.saturating_add(size).min(file_pages);
            self.marker = self.window.start + (self.window_pages() / 2).max(1);
            return start..self.window.end.max(end);
        }
        if end > self.marker && self.window.end < file_pages {
            // The reader reached the marker: the next, larger window.
            let size = (self.window_pages() * 2).clamp(self.min_pages, self.max_pages);
            let next = self.window.end..self.window.end.saturating_add(size).min(file_pages);
            self.marker = next.start;
            self.window = next;
        }
        start..self.window.end.max(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sequential_reader_gets_growing_windows_ahead_of_it() {
        let mut ra = Readahead::new(4, 64);
        let file = 10_000;
        // First read: 1 page -> a window of 4.
        assert_eq!(ra.on_read(0, 1, file), 0..4);
        let mut sizes = std::vec::Vec::new();
        let mut ahead = 0;
        for page in 1..2000u64 {
            let r = ra.on_read(page, 1, file);
            assert_eq!(r.start, page);
            assert!(r.end > page, "the page itself is in the range");
            ahead = ahead.max(r.end - page);
            if sizes.last() != Some(&ra.window_pages()) {
                sizes.push(ra.window_pages());
            }
        }
        // Doubling up to the maximum, then steady.
        assert_eq!(sizes, [4, 8, 16, 32, 64]);
        // Never more than about two windows ahead.
        assert!(ahead <= 2 * 64, "{ahead}");
    }

    #[test]
    fn every_page_of_a_sequential_read_is_covered_before_it_is_read() {
        // The cache fetches what the ranges name: every page a reader asks
        // for must be inside the range returned for that read.
        for read_len in [1u64, 3, 16, 100] {
            let mut ra = Readahead::new(4, 256);
            let file = 5000;
            let mut page = 0;
            while page < file {
                let r = ra.on_read(page, read_len, file);
                assert!(
                    r.start <= page && r.end >= (page + read_len).min(file),
                    "{r:?} at {page}"
                );
                assert!(r.end <= file, "{r:?} past the end");
                page += read_len;
            }
        }
    }

    #[test]
    fn a_seek_starts_small_again() {
        let mut ra = Readahead::new(4, 64);
        for p in 0..500 {
            ra.on_read(p, 1, 100_000);
        }
        assert_eq!(ra.window_pages(), 64);
        assert_eq!(ra.on_read(50_000, 1, 100_000), 50_000..50_004);
        assert_eq!(ra.window_pages(), 4);
        // A large read starts with a window at least its size.
        let r = ra.on_read(10, 40, 100_000);
        assert_eq!(r, 10..74);
    }

    #[test]
    fn windows_stop_at_the_end_of_the_file() {
        let mut ra = Readahead::new(8, 64);
        let file = 20;
        let mut last = 0..0;
        for p in 0..20 {
            last = ra.on_read(p, 1, file);
            assert!(last.end <= file);
        }
        assert_eq!(last.end, 20);
        // Reads at or past the end name nothing.
        assert!(ra.on_read(25, 1, file).is_empty());
        assert!(ra.on_read(20, 4, file).is_empty());
    }

    #[test]
    fn any_mix_of_reads_gets_a_range_covering_the_read_inside_the_file() {
        let mut next = crate::testing::splitmix(3);
        let mut ra = Readahead::new(4, 512);
        let file = 100_000;
        let mut page = 0;
        for _ in 0..100_000 {
            if next() % 10 == 0 {
                page = next() % (file + 10);
            }
            let len = 1 + next() % 64;
            let r = ra.on_read(page, len, file);
            if page >= file {
                assert!(r.is_empty());
            } else {
                assert_eq!(r.start, page);
                assert!(r.end >= (page + len).min(file) && r.end <= file, "{r:?}");
                assert!(r.end - r.start <= len + 2 * 512, "{r:?}");
            }
            page += len;
        }
    }
}
