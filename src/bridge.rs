//! The host bridge as a process beside QEMU (`cargo run`, the end-to-end
//! tests, the job benchmarks): starting `host-bridge serve`, shutting it
//! down the way that stops its jobs, and a minimal HTTP/1.1 client for its
//! API (docs/http-api.yaml).

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `host-bridge` binary built with this package.
pub const BIN: &str = env!("CARGO_BIN_FILE_HOST_BRIDGE_host-bridge");

/// Starts `host-bridge serve` on the link region `shm` and the state
/// directory `state`, with its HTTP API on 127.0.0.1:`port` and its
/// output to `log`.
pub fn serve(shm: &Path, state: &Path, port: u16, log: File) -> io::Result<Child> {
    Command::new(BIN)
        .arg("serve")
        .arg("--shm")
        .arg(shm)
        .arg("--state-dir")
        .arg(state)
        .arg("--port")
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
}

/// SIGTERM to the bridge: it stops its jobs (each with its grace) and
/// exits. Killed if it has not exited within `limit`. Whether it exited by
/// itself, successfully.
pub fn shut_down(bridge: &mut Child, limit: Duration) -> bool {
    // SAFETY: kill(2) on our own child's pid, not yet reaped (so not
    // reused); no memory is passed.
    unsafe { libc::kill(bridge.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + limit;
    loop {
        match bridge.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = bridge.kill();
                let _ = bridge.wait();
                return false;
            }
        }
    }
}

/// Waits until the bridge's API listens and its token file is written;
/// returns the token.
pub fn wait_for_api(state: &Path, port: u16, limit: Duration) -> Result<String, String> {
    let deadline = Instant::now() + limit;
    loop {
        // The file is created, then written: an empty read is "not yet".
        if let Ok(t) = std::fs::read_to_string(state.join("token"))
            && t.ends_with('\n')
            && TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            return Ok(t.trim().to_string());
        }
        if Instant::now() >= deadline {
            return Err(format!("the bridge's HTTP API on port {port} never came up"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; good enough for tests).
pub fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One HTTP/1.1 request to the bridge on 127.0.0.1:`port` (a connection
/// of its own): the status code and the body.
pub fn http(port: u16, method: &str, path: &str, token: &str, body: &str) -> io::Result<(u16, Vec<u8>)> {
    let mut c = TcpStream::connect(("127.0.0.1", port))?;
    c.set_read_timeout(Some(Duration::from_secs(30)))?;
    c.set_nodelay(true)?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    c.write_all(request.as_bytes())?;
    let mut reply = Vec::new();
    c.read_to_end(&mut reply)?;
    let head_end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no end of the response head"))?;
    let head = String::from_utf8_lossy(&reply[..head_end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no status in {head:?}")))?;
    let body = &reply[head_end + 4..];
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    Ok((status, if chunked { dechunk(body)? } else { body.to_vec() }))
}

/// The body of a `Transfer-Encoding: chunked` response (a followed log).
fn dechunk(mut raw: &[u8]) -> io::Result<Vec<u8>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed chunked body");
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let size = std::str::from_utf8(&raw[..line_end]).map_err(|_| bad())?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).map_err(|_| bad())?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(raw.get(..size).ok_or_else(bad)?);
        raw = raw.get(size + 2..).ok_or_else(bad)?;
    }
}

/// What a [`webhook_receiver`] got: when each POST arrived (unix ns), its
/// path and its body, in order.
pub type Posts = std::sync::Arc<std::sync::Mutex<Vec<(u128, String, String)>>>;

/// An HTTP receiver on 127.0.0.1 (a free port) answering 200 to every
/// request, for the tests and benchmarks of webhook delivery: its port and
/// what it received.
pub fn webhook_receiver() -> io::Result<(u16, Posts)> {
    use std::io::BufRead;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let posts: Posts = Posts::default();
    let seen = posts.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut r = io::BufReader::new(conn);
            let mut request = String::new();
            if r.read_line(&mut request).is_err() {
                continue;
            }
            let mut len = 0;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let _ = r
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            if let Ok(mut p) = seen.lock() {
                p.push((at, path, String::from_utf8_lossy(&body).into_owned()));
            }
        }
    });
    Ok((port, posts))
}
