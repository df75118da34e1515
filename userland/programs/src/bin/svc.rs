//! Service calls, both ends (the kernel tests use it):
//! `svc serve` answers `TEST_SERVICE` calls with the request reversed
//! ("quit" ends it with "bye"; "hang" is never answered);
//! `svc call N` makes N calls and checks the answers and the limits, then
//! sends "quit"; `svc hang` waits on a call the server never answers and
//! expects `NoSuchService` once the server is killed; `svc none` expects
//! `NoSuchService` with no server. Exit 0 when all went as expected.
#![no_std]
#![no_main]

extern crate alloc;

use aether_abi::syscall::{Errno, nr};
use aether_rt::{Args, entry, println, sys};

entry!(main);

const SERVICE: u64 = nr::TEST_SERVICE;
const LIMIT: usize = 256;

fn main(args: Args) -> i32 {
    match args.get(1) {
        Some("serve") => serve(),
        Some("call") => calls(args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100)),
        Some("hang") => expect(call(b"hang", &mut [0; LIMIT]), Err(Errno::NoSuchService), "hang"),
        Some("none") => expect(call(b"hi", &mut [0; LIMIT]), Err(Errno::NoSuchService), "none"),
        Some("job") => native_job(
            args.get(2).unwrap_or("hello"),
            args.get(3).and_then(|a| a.parse().ok()),
            args.get(4),
        ),
        _ => {
            println!("usage: svc serve | call N | hang | none | job PROG [EXIT|-] [OUTPUT]");
            2
        }
    }
}

fn call(request: &[u8], answer: &mut [u8]) -> Result<usize, Errno> {
    sys::framed(SERVICE, request, answer)
}

fn expect(got: Result<usize, Errno>, want: Result<usize, Errno>, what: &str) -> i32 {
    if got == want {
        0
    } else {
        println!("svc {what}: {got:?}, expected {want:?}");
        1
    }
}

fn serve() -> i32 {
    if let Err(e) = sys::serve_register(SERVICE, LIMIT, LIMIT) {
        println!("svc serve: register: {e}");
        return 3;
    }
    let mut buf = [0u8; LIMIT];
    loop {
        let (id, len) = match sys::serve_next(SERVICE, &mut buf, 0) {
            Ok(x) => x,
            Err(e) => {
                println!("svc serve: next: {e}");
                return 4;
            }
        };
        let request = &mut buf[..len];
        match &*request {
            b"quit" => {
                let _ = sys::serve_reply(id, b"bye");
                return 0;
            }
            b"hang" => continue,
            _ => {
                request.reverse();
                if let Err(e) = sys::serve_reply(id, request) {
                    println!("svc serve: reply: {e}");
                    return 5;
                }
            }
        }
    }
}

fn calls(n: u32) -> i32 {
    let mut answer = [0u8; LIMIT];
    for i in 0..n {
        let mut req = [0u8; 16];
        let text = itoa(i, &mut req);
        match call(text, &mut answer) {
            Ok(len) if answer[..len].iter().rev().eq(text.iter()) => {}
            other => {
                println!("svc call {i}: {other:?}");
                return 1;
            }
        }
    }
    let checks = [
        ("too large", call(&[b'x'; LIMIT + 1], &mut answer), Err(Errno::TooLarge)),
        (
            "small answer buffer",
            call(b"abc", &mut [0; LIMIT - 1]),
            Err(Errno::ResponseTooSmall),
        ),
    ];
    for (what, got, want) in checks {
        if got != want {
            println!("svc call {what}: {got:?}, expected {want:?}");
            return 1;
        }
    }
    match call(b"quit", &mut answer) {
        Ok(3) if &answer[..3] == b"bye" => 0,
        other => {
            println!("svc call quit: {other:?}");
            1
        }
    }
}

/// `n` in decimal, into `buf`.
fn itoa(mut n: u32, buf: &mut [u8; 16]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Runs `program` as a native job through opsd (the `JOB` service) and
/// waits for it: exit 0 if it ends SUCCEEDED (or FAILED with `want_exit`).
/// Runs `program` as a native job through opsd and checks how it ended
/// (`want_exit`: FAILED with that code, else SUCCEEDED) and, with
/// `want_output`, that its log holds that text and ends its lines with LF
/// alone (the runtime's CR LF is for the serial line).
fn native_job(program: &str, want_exit: Option<i32>, want_output: Option<&str>) -> i32 {
    use aether_abi::job::{self, JobKind, JobReply, JobRequest, JobResponse, JobSpec, JobState};
    use aether_abi::syscall::{decode, encode};
    let mut spec = JobSpec::default();
    if spec.name.push_str(program).is_err() || spec.entrypoint.push(program.try_into().unwrap_or_default()).is_err() {
        return 2;
    }
    spec.kind = JobKind::Native;
    let mut req = alloc::vec![0u8; job::REQUEST_MAX];
    let mut resp = alloc::vec![0u8; job::JOB_RESPONSE_MAX];
    let mut call_job = |r: &JobRequest| -> Result<JobReply, Errno> {
        let n = encode(r, &mut req)?.len();
        let m = sys::framed(nr::JOB, &req[..n], &mut resp)?;
        decode(&resp[..m])
    };
    let job_id = match call_job(&JobRequest::Start(spec)) {
        Ok(Ok(JobResponse::Started { job_id })) => job_id,
        other => {
            println!("svc job: start: {other:?}");
            return 1;
        }
    };
    match call_job(&JobRequest::Wait { job_id }) {
        Ok(Ok(JobResponse::Ended(r))) => {
            let ok = match want_exit {
                None => r.status == JobState::Succeeded && r.exit_code == Some(0),
                Some(code) => r.status == JobState::Failed && r.exit_code == Some(code),
            };
            if !ok {
                println!("svc job: ended {} exit {:?}", r.status.as_str(), r.exit_code);
                return 1;
            }
            let Some(text) = want_output else { return 0 };
            let logs = JobRequest::Logs {
                job_id,
                stream: job::Stream::Stdout,
                offset: 0,
                max: job::LOG_CHUNK_MAX as u32,
            };
            match call_job(&logs) {
                Ok(Ok(JobResponse::Logs { bytes, eof: true, .. }))
                    if bytes.windows(text.len()).any(|w| w == text.as_bytes())
                        && bytes.ends_with(b"\n")
                        && !bytes.contains(&b'\r') =>
                {
                    0
                }
                other => {
                    println!("svc job: logs {other:?}, expected {text:?} in LF-ended lines");
                    1
                }
            }
        }
        other => {
            println!("svc job: wait: {other:?}");
            1
        }
    }
}
