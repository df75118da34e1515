//! A QEMU process whose serial port is a pair of pipes: send input, wait for
//! output, wait for exit; every wait is bounded by the run's hard deadline,
//! and the process is killed when the session ends (drop, panic included).

use std::fmt;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub enum SessionError {
    Spawn(std::io::Error),
    /// `expected` did not appear within the time allowed.
    Timeout {
        expected: String,
        output: String,
    },
    /// QEMU exited while we waited for `expected`.
    Exited {
        expected: String,
        status: Option<ExitStatus>,
        output: String,
    },
    /// The run's hard deadline passed; QEMU was killed.
    Deadline {
        output: String,
    },
    Write(std::io::Error),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Spawn(e) => write!(f, "could not start QEMU: {e}"),
            SessionError::Timeout { expected, output } => {
                write!(f, "timed out waiting for {expected:?}; output so far:\n{output}")
            }
            SessionError::Exited {
                expected,
                status,
                output,
            } => {
                write!(
                    f,
                    "QEMU exited ({status:?}) while waiting for {expected:?}; output:\n{output}"
                )
            }
            SessionError::Deadline { output } => {
                write!(f, "hard deadline passed, QEMU killed; output:\n{output}")
            }
            SessionError::Write(e) => write!(f, "writing to the serial port: {e}"),
        }
    }
}

impl std::error::Error for SessionError {}

pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    chunks: Receiver<Vec<u8>>,
    /// All output so far, and how far `expect` has consumed it.
    output: Vec<u8>,
    cursor: usize,
    reader_done: bool,
    deadline: Instant,
}

impl Session {
    /// Starts `command` with piped stdio; the whole run may last at most
    /// `hard_timeout`.
    pub fn spawn(mut command: Command, hard_timeout: Duration) -> Result<Self, SessionError> {
        let deadline = Instant::now() + hard_timeout;
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(SessionError::Spawn)?;
        let (tx, chunks) = mpsc::channel();
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let err_tx = tx.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        thread::spawn(move || {
            // QEMU's own complaints (bad option, missing file) end up in the
            // output too, so failures explain themselves.
            let mut s = Vec::new();
            let _ = stderr.read_to_end(&mut s);
            if !s.is_empty() {
                let mut tagged = b"\n[qemu stderr] ".to_vec();
                tagged.extend(s);
                let _ = err_tx.send(tagged);
            }
        });
        let stdin = child.stdin.take();
        Ok(Session {
            child,
            stdin,
            chunks,
            output: Vec::new(),
            cursor: 0,
            reader_done: false,
            deadline,
        })
    }

    /// Everything QEMU has printed so far (lossy UTF-8).
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }

    fn pump(&mut self, until: Instant) -> bool {
        let wait = until.saturating_duration_since(Instant::now());
        match self.chunks.recv_timeout(wait) {
            Ok(chunk) => {
                self.output.extend(chunk);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => {
                self.reader_done = true;
                false
            }
        }
    }

    /// Waits up to `timeout` for `needle` after what earlier calls consumed;
    /// returns the text up to and including it.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> Result<String, SessionError> {
        let until = (Instant::now() + timeout).min(self.deadline);
        loop {
            if let Some(at) = find(&self.output[self.cursor..], needle.as_bytes()) {
                let end = self.cursor + at + needle.len();
                let text = String::from_utf8_lossy(&self.output[self.cursor..end]).into_owned();
                self.cursor = end;
                return Ok(text);
            }
            if self.reader_done {
                let status = self.child.try_wait().ok().flatten();
                return Err(SessionError::Exited {
                    expected: needle.into(),
                    status,
                    output: self.output(),
                });
            }
            if Instant::now() >= until {
                if Instant::now() >= self.deadline {
                    self.kill();
                    return Err(SessionError::Deadline { output: self.output() });
                }
                return Err(SessionError::Timeout {
                    expected: needle.into(),
                    output: self.output(),
                });
            }
            self.pump(until);
        }
    }

    /// Types `bytes` into the serial port.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) -> Result<(), SessionError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| SessionError::Write(std::io::ErrorKind::BrokenPipe.into()))?;
        stdin
            .write_all(bytes.as_ref())
            .and_then(|()| stdin.flush())
            .map_err(SessionError::Write)
    }

    /// Sends a command line and returns the output up to the next prompt.
    pub fn command(&mut self, line: &str, prompt: &str, timeout: Duration) -> Result<String, SessionError> {
        self.send(format!("{line}\r"))?;
        let text = self.expect(prompt, timeout)?;
        Ok(text[..text.len() - prompt.len()].to_string())
    }

    /// Waits up to `timeout` (and the hard deadline) for QEMU to exit; on
    /// expiry kills it. Returns the status and the whole output.
    pub fn wait(mut self, timeout: Duration) -> Result<(ExitStatus, String), SessionError> {
        let until = (Instant::now() + timeout).min(self.deadline);
        self.stdin.take();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Collect what is still in the pipe.
                while !self.reader_done && self.pump(Instant::now() + Duration::from_millis(500)) {}
                return Ok((status, self.output()));
            }
            if Instant::now() >= until {
                self.kill();
                return Err(SessionError::Deadline { output: self.output() });
            }
            if !self.pump((Instant::now() + Duration::from_millis(20)).min(until)) && self.reader_done {
                thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expect_reads_output_in_order_and_wait_reports_status() {
        let mut c = Command::new("sh");
        c.args(["-c", "printf 'one\\ntwo\\n'; read line; echo \"got $line\"; exit 3"]);
        let mut s = Session::spawn(c, Duration::from_secs(10)).unwrap();
        assert_eq!(s.expect("one", Duration::from_secs(5)).unwrap(), "one");
        assert!(s.expect("two", Duration::from_secs(5)).unwrap().ends_with("two"));
        s.send("hello\n").unwrap();
        s.expect("got hello", Duration::from_secs(5)).unwrap();
        let (status, out) = s.wait(Duration::from_secs(5)).unwrap();
        assert_eq!(status.code(), Some(3));
        assert!(out.contains("got hello"));
    }

    #[test]
    fn a_hang_fails_fast_at_the_deadline() {
        let mut c = Command::new("sleep");
        c.arg("30");
        let start = Instant::now();
        let mut s = Session::spawn(c, Duration::from_millis(300)).unwrap();
        let e = s.expect("never", Duration::from_secs(30)).unwrap_err();
        assert!(matches!(e, SessionError::Deadline { .. }), "{e}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn expect_reports_an_early_exit() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo bye"]);
        let mut s = Session::spawn(c, Duration::from_secs(10)).unwrap();
        let e = s.expect("never", Duration::from_secs(5)).unwrap_err();
        assert!(matches!(e, SessionError::Exited { .. }), "{e}");
    }
}
