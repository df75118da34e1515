//! Line editing for a dumb serial terminal: printable ASCII is inserted and
//! echoed, backspace/DEL erases, Ctrl-C abandons the line, Ctrl-U clears it,
//! CR or LF submits (a CR LF pair submits once). Escape sequences (arrow
//! keys and the like) are swallowed whole instead of inserting garbage.

/// Longest line the editor holds (room for `mv` with two paths of
/// `aether_abi::fs::PATH_MAX`); input beyond it rings the bell.
pub const MAX_LINE: usize = 1024;

const BELL: &[u8] = b"\x07";
const ERASE: &[u8] = b"\x08 \x08";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEvent {
    /// Enter: the line is in [`LineEditor::line`] until the next byte.
    Submitted,
    /// Ctrl-C: the line was dropped.
    Cancelled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escape {
    None,
    /// After ESC.
    Start,
    /// Inside `ESC [` ... until a final byte 0x40..=0x7e.
    Csi,
    /// After `ESC O` (SS3: application-mode arrow and function keys).
    Ss3,
}

pub struct LineEditor {
    buf: [u8; MAX_LINE],
    len: usize,
    escape: Escape,
    last_was_cr: bool,
    submitted: bool,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    pub const fn new() -> Self {
        LineEditor {
            buf: [0; MAX_LINE],
            len: 0,
            escape: Escape::None,
            last_was_cr: false,
            submitted: false,
        }
    }

    /// The current line (after [`LineEvent::Submitted`], the whole line).
    pub fn line(&self) -> &str {
        // Only printable ASCII is ever stored.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Feeds one input byte; `echo` receives what to send back to the
    /// terminal.
    pub fn feed(&mut self, byte: u8, echo: &mut impl FnMut(&[u8])) -> Option<LineEvent> {
        if self.submitted {
            self.submitted = false;
            self.len = 0;
        }
        let after_cr = core::mem::replace(&mut self.last_was_cr, false);
        // Inside an escape sequence, a control byte (Enter, Ctrl-C, ...)
        // ends the sequence and is then handled as usual.
        if self.escape != Escape::None && byte >= 0x20 {
            self.escape = match (self.escape, byte) {
                (Escape::Start, b'[') => Escape::Csi,
                (Escape::Start, b'O') => Escape::Ss3,
                // CSI parameter and intermediate bytes (ECMA-48 §5.4).
                (Escape::Csi, 0x20..=0x3f) => Escape::Csi,
                // ESC x, CSI final byte, SS3 x, or a stray byte: done.
                _ => Escape::None,
            };
            return None;
        }
        self.escape = Escape::None;
        match byte {
            b'\r' | b'\n' => {
                if byte == b'\n' && after_cr {
                    return None;
                }
                self.last_was_cr = byte == b'\r';
                self.submitted = true;
                echo(b"\r\n");
                Some(LineEvent::Submitted)
            }
            0x03 => {
                self.len = 0;
                echo(b"^C\r\n");
                Some(LineEvent::Cancelled)
            }
            0x08 | 0x7f => {
                if self.len > 0 {
                    self.len -= 1;
                    echo(ERASE);
                } else {
                    echo(BELL);
                }
                None
            }
            0x15 => {
                // Ctrl-U: erase the whole line on screen.
                for _ in 0..self.len {
                    echo(ERASE);
                }
                self.len = 0;
                None
            }
            0x1b => {
                self.escape = Escape::Start;
                None
            }
            b' '..=b'~' => {
                if self.len < MAX_LINE {
                    self.buf[self.len] = byte;
                    self.len += 1;
                    echo(&[byte]);
                } else {
                    echo(BELL);
                }
                None
            }
            _ => None, // other control bytes and non-ASCII are ignored
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Feeds `input`, returning the events, the echo, and the editor.
    fn run(input: &[u8]) -> (Vec<(LineEvent, std::string::String)>, Vec<u8>, LineEditor) {
        let mut ed = LineEditor::new();
        let mut echo = Vec::new();
        let mut events = Vec::new();
        for &b in input {
            if let Some(ev) = ed.feed(b, &mut |s| echo.extend_from_slice(s)) {
                events.push((ev, ed.line().into()));
            }
        }
        (events, echo, ed)
    }

    #[test]
    fn typing_and_enter_submits_the_line() {
        let (ev, echo, _) = run(b"help\r");
        assert_eq!(ev, [(LineEvent::Submitted, "help".into())]);
        assert_eq!(echo, b"help\r\n");
    }

    #[test]
    fn crlf_submits_once_and_lf_alone_submits() {
        let (ev, _, _) = run(b"a\r\nb\n\n");
        let lines: Vec<_> = ev.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(lines, ["a", "b", ""]);
    }

    #[test]
    fn backspace_and_del_erase() {
        let (ev, echo, _) = run(b"ecnn\x08\x7fho\r");
        assert_eq!(ev, [(LineEvent::Submitted, "echo".into())]);
        assert_eq!(echo, b"ecnn\x08 \x08\x08 \x08ho\r\n");
    }

    #[test]
    fn backspace_on_empty_line_rings_the_bell() {
        let (_, echo, ed) = run(b"\x08");
        assert_eq!(echo, BELL);
        assert_eq!(ed.line(), "");
    }

    #[test]
    fn ctrl_c_cancels_and_the_next_line_starts_clean() {
        let (ev, echo, _) = run(b"garbage\x03ok\r");
        assert_eq!(
            ev,
            [(LineEvent::Cancelled, "".into()), (LineEvent::Submitted, "ok".into())]
        );
        assert!(echo.windows(4).any(|w| w == b"^C\r\n"));
    }

    #[test]
    fn ctrl_u_clears_the_line() {
        let (ev, _, _) = run(b"abc\x15x\r");
        assert_eq!(ev, [(LineEvent::Submitted, "x".into())]);
    }

    #[test]
    fn escape_sequences_and_binary_are_swallowed() {
        let (ev, echo, _) = run(b"a\x1b[A\x1b[1;5Cb\x1bxc\xff\x00\r");
        assert_eq!(ev, [(LineEvent::Submitted, "abc".into())]);
        assert_eq!(echo, b"abc\r\n");
    }

    #[test]
    fn control_bytes_end_an_escape_sequence_and_still_work() {
        let (ev, _, _) = run(b"ab\x1b\r");
        assert_eq!(
            ev,
            [(LineEvent::Submitted, "ab".into())],
            "ESC then Enter still submits"
        );
        let (ev, _, _) = run(b"x\x1b[12\x03y\r");
        assert_eq!(
            ev,
            [(LineEvent::Cancelled, "".into()), (LineEvent::Submitted, "y".into())]
        );
        let (ev, _, _) = run(b"a\x1bOAb\x1bOPc\r");
        assert_eq!(
            ev,
            [(LineEvent::Submitted, "abc".into())],
            "SS3 keys are swallowed whole"
        );
    }

    #[test]
    fn overlong_input_is_capped_with_a_bell() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.push(b'\r');
        let (ev, echo, _) = run(&input);
        assert_eq!(ev[0].1.len(), MAX_LINE);
        assert_eq!(echo.iter().filter(|&&b| b == 0x07).count(), 10);
    }
}
