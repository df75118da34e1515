//! Captured console output (docs/processes.md, "Captured output"): what
//! the processes of a job write with `console_write`, kept for the one
//! that spawned them (opsd) instead of going to the serial line.
//!
//! Bounded: [`Capture::write`] takes only what fits and says how much; the
//! writer retries the rest (the runtime sleeps between tries), so nothing
//! is lost and a reader that falls behind slows the writers down instead of
//! growing the buffer.
//!
//! The runtime writes CR LF for the serial line; a capture stores a CR
//! that comes just before an LF as the LF alone (a lone CR is kept), so
//! that a native job's log reads like a host job's.

use alloc::collections::VecDeque;

pub struct Capture {
    buf: VecDeque<u8>,
    cap: usize,
    /// A CR taken but not stored yet: it is dropped if an LF follows.
    pending_cr: bool,
}

impl Capture {
    /// A capture that holds at most `cap` bytes (at least 1).
    pub fn new(cap: usize) -> Capture {
        let cap = cap.max(1);
        Capture {
            buf: VecDeque::with_capacity(cap.min(4096)),
            cap,
            pending_cr: false,
        }
    }

    fn room(&self) -> usize {
        self.cap - self.buf.len()
    }

    /// Takes bytes from the front of `bytes` while they fit; how many were
    /// taken (0: full, try again after a read).
    pub fn write(&mut self, bytes: &[u8]) -> usize {
        let mut taken = 0;
        for &b in bytes {
            if self.pending_cr {
                if b == b'\n' {
                    if self.room() == 0 {
                        break;
                    }
                    self.pending_cr = false;
                    self.buf.push_back(b'\n');
                    taken += 1;
                    continue;
                }
                // A lone CR: kept.
                if self.room() == 0 {
                    break;
                }
                self.pending_cr = false;
                self.buf.push_back(b'\r');
            }
            if b == b'\r' {
                self.pending_cr = true;
                taken += 1;
                continue;
            }
            if self.room() == 0 {
                break;
            }
            self.buf.push_back(b);
            taken += 1;
        }
        taken
    }

    /// Moves stored bytes into `out`, oldest first; how many. With `ended`
    /// (no writer is left) a CR still held is stored first.
    pub fn read(&mut self, out: &mut [u8], ended: bool) -> usize {
        if ended && self.pending_cr && self.room() > 0 {
            self.pending_cr = false;
            self.buf.push_back(b'\r');
        }
        let n = out.len().min(self.buf.len());
        for (slot, b) in out.iter_mut().zip(self.buf.drain(..n)) {
            *slot = b;
        }
        n
    }

    /// Bytes stored (not counting a held CR).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Nothing stored and no CR held.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && !self.pending_cr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(c: &mut Capture, ended: bool) -> std::vec::Vec<u8> {
        let mut out = std::vec::Vec::new();
        let mut buf = [0u8; 3];
        loop {
            let n = c.read(&mut buf, ended);
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn crlf_becomes_lf_and_a_lone_cr_stays() {
        let mut c = Capture::new(100);
        assert_eq!(c.write(b"a\r\nb\rc\r"), 7);
        // The last CR is held: it may be the start of a CR LF.
        assert_eq!(drain(&mut c, false), b"a\nb\rc");
        assert!(!c.is_empty());
        assert_eq!(c.write(b"\nd"), 2);
        assert_eq!(drain(&mut c, false), b"\nd");
        assert_eq!(c.write(b"e\r"), 2);
        // No writer left: the held CR is output.
        assert_eq!(drain(&mut c, true), b"e\r");
        assert!(c.is_empty());
    }

    #[test]
    fn a_full_capture_takes_what_fits_and_the_rest_after_a_read() {
        let mut c = Capture::new(4);
        assert_eq!(c.write(b"abcdef"), 4);
        assert_eq!(c.write(b"ef"), 0);
        assert_eq!(c.len(), 4);
        let mut two = [0u8; 2];
        assert_eq!(c.read(&mut two, false), 2);
        assert_eq!(&two, b"ab");
        assert_eq!(c.write(b"ef"), 2);
        assert_eq!(drain(&mut c, false), b"cdef");
        // CR LF at the edge of the room: the CR is taken (held), the LF
        // waits for room.
        let mut c = Capture::new(2);
        assert_eq!(c.write(b"xy\r\n"), 3);
        assert_eq!(drain(&mut c, false), b"xy");
        assert_eq!(c.write(b"\n"), 1);
        assert_eq!(drain(&mut c, false), b"\n");
    }

    #[test]
    fn every_byte_arrives_once_in_order_whatever_the_sizes() {
        // Writes and reads of random sizes through a small capture; the
        // output is the input with CR LF as LF.
        let mut next = crate::testing::splitmix(7);
        let input: std::vec::Vec<u8> = (0..20_000).map(|_| b"ab\r\n"[(next() % 4) as usize]).collect();
        let mut want = std::vec::Vec::new();
        let mut i = 0;
        while i < input.len() {
            if input[i] == b'\r' && input.get(i + 1) == Some(&b'\n') {
                want.push(b'\n');
                i += 2;
            } else {
                want.push(input[i]);
                i += 1;
            }
        }
        let mut c = Capture::new(37);
        let (mut at, mut got) = (0, std::vec::Vec::new());
        while at < input.len() {
            let n = (next() % 50) as usize;
            at += c.write(&input[at..(at + n).min(input.len())]);
            let mut buf = std::vec![0u8; (next() % 50) as usize];
            let m = c.read(&mut buf, false);
            got.extend_from_slice(&buf[..m]);
        }
        got.extend(drain(&mut c, true));
        assert_eq!(got, want);
    }
}
