//! The metrics' exposition text of one `Export` request, gathered from
//! opsd's `ExportChunk`s (`GET /metrics`, `GET /jobs/{id}/metrics`;
//! Prometheus text format 0.0.4).
//!
//! opsd keeps a whole export within [`EXPORT_MAX`] bytes itself (cut at a
//! line's end, ending with a `# truncated` comment). The bridge holds no
//! more than that whatever opsd sends: past it, the text is cut the same
//! way, so a scraper still reads whole samples.

use aether_abi::link::EXPORT_MAX;

/// The comment that ends a text cut at [`EXPORT_MAX`] (opsd's own).
pub const TRUNCATED: &[u8] = b"# truncated\n";

/// The parts of one export so far.
#[derive(Debug, Default)]
pub struct ExportText {
    text: Vec<u8>,
    /// More than EXPORT_MAX bytes came: the rest is dropped.
    over: bool,
}

impl ExportText {
    /// Appends the next part (in the order opsd sent them).
    pub fn push(&mut self, part: &[u8]) {
        if self.over {
            return;
        }
        let room = EXPORT_MAX - self.text.len();
        if part.len() > room {
            self.text.extend_from_slice(&part[..room]);
            self.over = true;
        } else {
            self.text.extend_from_slice(part);
        }
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The whole text: as sent, or, if it was longer than [`EXPORT_MAX`],
    /// its whole lines that fit with [`TRUNCATED`] after them.
    pub fn finish(mut self) -> Vec<u8> {
        if self.over {
            let limit = EXPORT_MAX - TRUNCATED.len();
            let end = self.text[..limit]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            self.text.truncate(end);
            self.text.extend_from_slice(TRUNCATED);
        }
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_join_in_order() {
        let mut t = ExportText::default();
        assert!(t.is_empty());
        for part in [&b"# TYPE loss gauge\nloss{job_id=\"1\"} 0."[..], b"5\n", b""] {
            t.push(part);
        }
        assert_eq!(t.finish(), b"# TYPE loss gauge\nloss{job_id=\"1\"} 0.5\n");
        assert_eq!(ExportText::default().finish(), b"");
    }

    #[test]
    fn exactly_export_max_is_kept_whole() {
        let line = b"x 1\n";
        let mut t = ExportText::default();
        for _ in 0..EXPORT_MAX / line.len() {
            t.push(line);
        }
        assert_eq!(t.len(), EXPORT_MAX);
        let text = t.finish();
        assert_eq!(text.len(), EXPORT_MAX);
        assert!(!text.ends_with(TRUNCATED));
    }

    #[test]
    fn more_is_cut_at_a_line_end_with_the_comment() {
        let line = b"some_metric{job_id=\"1\"} 12345\n";
        let mut t = ExportText::default();
        let mut sent = 0;
        while sent < 2 * EXPORT_MAX {
            t.push(line);
            sent += line.len();
        }
        assert_eq!(t.len(), EXPORT_MAX, "no more is held");
        let text = t.finish();
        assert!(text.len() <= EXPORT_MAX);
        assert!(text.len() > EXPORT_MAX - line.len() - TRUNCATED.len());
        let body = text.strip_suffix(TRUNCATED).expect("the comment ends it");
        assert!(body.chunks(line.len()).all(|l| l == line), "whole lines only");
        // One line longer than all: only the comment is left.
        let mut t = ExportText::default();
        t.push(&vec![b'y'; EXPORT_MAX + 1]);
        assert_eq!(t.finish(), TRUNCATED);
    }
}
