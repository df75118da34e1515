//! The link between opsd (guest) and the host bridge: its messages and the
//! frame codec (docs/jobs.md, "The link"). The reliable channel on top
//! (sequence numbers, acknowledgements, retransmission, the Hello
//! handshake) is the `aether-link` crate; this module is the wire format
//! only, with neither allocation nor state beyond [`FrameSplitter`].
//!
//! A frame on the wire is
//!
//! ```text
//! COBS( postcard(Frame) ++ crc32(postcard(Frame)) as 4 LE bytes ) ++ 0x00
//! ```
//!
//! COBS leaves no 0 byte inside a frame, so the 0 ends it and a receiver
//! that lost its place (garbage, a cut frame, a peer that restarted mid
//! frame) is back in step at the next 0. CRC-32 is the IEEE one (zlib,
//! Ethernet): check value `crc32(b"123456789") == 0xCBF4_3926`.
//!
//! Both are written here by hand rather than taken from the `crc` and
//! `cobs` crates: each is about thirty lines, the tests below pin them
//! against known vectors and a reference encoder, and the decoder must be
//! strict in ways the `cobs` crate (0.3) is not: its `decode` stops at an
//! embedded 0 and returns the prefix as a success, and it accepts the
//! non-canonical encoding that ends in a 0xFF block. Here a 0 inside a
//! frame, a block running past the end or a non-canonical ending is an
//! error, so every encoded byte string decodes to at most one frame and
//! every single-bit error is caught (by COBS, by the CRC or by postcard).
//! Encoding works in place in the caller's buffer (postcard writes at an
//! offset, COBS reads ahead of where it writes), so it needs no scratch.

use alloc::boxed::Box;
use heapless::String;
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

use crate::job::{JobReply, JobRequest, JobSpec, LogChunk, MESSAGE_MAX, Stream, TerminationReason};
use crate::metric::MetricPoint;

/// Bumped on any incompatible change of the messages or the framing. Sent
/// in `Hello`; a peer with another version is not talked to.
pub const LINK_VERSION: u32 = 3;

/// What opsd and the bridge tell each other. Job ids are opsd's; times are
/// unix ms. The variants that can be large (a spec, an HTTP request or
/// reply) are boxed, so that the value moved on every message is about a
/// log chunk's size.
// `Log` stays inline: it is the common message, and boxing it would cost
// an allocation per chunk.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, MaxSize)]
pub enum LinkMessage {
    /// The handshake: the protocol version and the sender's incarnation
    /// (a boot id, a bridge start id: new at every start). `peer` is the
    /// incarnation of the receiver this Hello answers; `None` announces the
    /// sender to whoever listens. A side numbers its frames only after a
    /// Hello naming the peer, which makes a frame meant for a peer's
    /// previous incarnation recognisable (aether-link, "Sessions").
    Hello {
        version: u32,
        incarnation: u64,
        peer: Option<u64>,
    },
    /// Nothing but the frame's `ack`.
    Ack,
    /// opsd -> bridge: run a host job.
    Start { job_id: u64, spec: Box<JobSpec> },
    /// opsd -> bridge: SIGTERM the job's process group, SIGKILL after
    /// `grace_ms`.
    Stop { job_id: u64, grace_ms: u32 },
    /// bridge -> opsd: the job runs.
    Started { job_id: u64, pid: u32, started_ms: u64 },
    /// bridge -> opsd: output.
    Log(LogChunk),
    /// bridge -> opsd: a metric line of the job's stdout (checked by the
    /// bridge: [`MetricPoint::check`]), reported at `ts_ms`. `offset` is
    /// the line's byte offset in the attempt's stdout: a point sent again
    /// after a bridge restart has the same one.
    Metric {
        job_id: u64,
        ts_ms: u64,
        offset: u64,
        point: MetricPoint,
    },
    /// bridge -> opsd: the job ended (`forced`: SIGKILL was needed).
    Exited {
        job_id: u64,
        exit_code: Option<i32>,
        signal: Option<i32>,
        forced: bool,
        ended_ms: u64,
        reason: TerminationReason,
    },
    /// bridge -> opsd: after a restart of the bridge, a job it neither
    /// found running nor has an exit record of.
    Lost { job_id: u64 },
    /// opsd -> bridge: send the stream again from byte `from` (a gap).
    LogResend { job_id: u64, stream: Stream, from: u64 },
    /// bridge -> opsd: the job could not be started.
    SpawnFailed { job_id: u64, message: String<MESSAGE_MAX> },
    /// bridge -> opsd: a request of the HTTP API; `id` pairs it with its
    /// `ApiReply`.
    Api { id: u32, request: Box<JobRequest> },
    /// opsd -> bridge: the answer to `Api { id }`.
    ApiReply { id: u32, reply: Box<JobReply> },
    /// bridge -> opsd: the metrics in Prometheus text format (`GET
    /// /metrics`: all jobs; `GET /jobs/{id}/metrics`: one), answered by
    /// `ExportChunk`s of the same `id`.
    Export { id: u32, job_id: Option<u64> },
    /// opsd -> bridge: the next part of the text for `Export { id }`; the
    /// last one has `last` (`found`: false when the job is unknown). The
    /// parts join to UTF-8 text.
    ExportChunk {
        id: u32,
        last: bool,
        found: bool,
        text: Box<heapless::Vec<u8, EXPORT_CHUNK_MAX>>,
    },
    /// opsd -> bridge: POST `body` (JSON) to `url` (an alert
    /// notification of a `webhook` receiver), retrying with backoff; the
    /// bridge answers `Notified` with the same `id` once it is delivered or
    /// given up. It never holds up the link.
    Notify {
        id: u64,
        url: String<NOTIFY_URL_MAX>,
        body: Box<heapless::Vec<u8, NOTIFY_BODY_MAX>>,
    },
    /// bridge -> opsd: how `Notify { id }` ended: `status` is the final
    /// HTTP status (0: no answer at all), `delivered` a 2xx; `error` says
    /// why not, for people.
    Notified {
        id: u64,
        delivered: bool,
        status: u16,
        attempts: u16,
        error: String<MESSAGE_MAX>,
    },
    /// bridge -> opsd: a file a job made (in `$AETHER_ARTIFACT_DIR`, or
    /// announced on its stdout); `transfer` is the bridge's number for it.
    /// opsd answers `ArtifactWant` (send the bytes) or `ArtifactDone`
    /// (unchanged, refused).
    ArtifactOffer { transfer: u64, offer: Box<ArtifactOffer> },
    /// opsd -> bridge: send the bytes of `transfer` from `offset`.
    ArtifactWant { transfer: u64, offset: u64 },
    /// bridge -> opsd: bytes of `transfer` at `offset`, in order.
    ArtifactChunk {
        transfer: u64,
        offset: u64,
        bytes: Box<heapless::Vec<u8, { crate::artifact::CHUNK_MAX }>>,
    },
    /// opsd -> bridge: how `transfer` ended.
    ArtifactDone { transfer: u64, outcome: ArtifactOutcome },
    /// bridge -> opsd: up to `FETCH_MAX` bytes from `offset` of a stored
    /// version (an HTTP download), answered by `ArtifactBytes` of `id`.
    ArtifactFetch {
        id: u32,
        job_id: u64,
        kind: crate::artifact::ArtifactKind,
        name: String<{ crate::artifact::NAME_MAX }>,
        selector: String<{ crate::artifact::SELECTOR_MAX }>,
        offset: u64,
    },
    /// opsd -> bridge: the next bytes for `ArtifactFetch { id }`: `size`
    /// and `digest` of the whole version; the last part has `last`; an
    /// `error` (no such artifact or version, the digest does not match
    /// what is stored: never served) ends the fetch with no bytes.
    ArtifactBytes {
        id: u32,
        version: u32,
        size: u64,
        digest: [u8; 32],
        offset: u64,
        last: bool,
        error: Option<String<{ crate::artifact::REASON_MAX }>>,
        bytes: Box<heapless::Vec<u8, { crate::artifact::CHUNK_MAX }>>,
    },
}

/// The artifact store's messages, for a file a job made and for reads of
/// stored versions ([`crate::artifact`]).
pub use crate::artifact::{ArtifactOffer, ArtifactOutcome};

/// The longest webhook URL.
pub const NOTIFY_URL_MAX: usize = 512;
/// The largest webhook body (opsd cuts a notification's alerts to fit).
pub const NOTIFY_BODY_MAX: usize = 12 * 1024;

/// Bytes of exposition text per `ExportChunk`.
pub const EXPORT_CHUNK_MAX: usize = 8192;
/// The most bytes of one whole export (opsd cuts the text there, at a
/// line's end, and ends it with a `# truncated` comment).
pub const EXPORT_MAX: usize = 4 * 1024 * 1024;

/// One frame: the sender's sequence number of `msg`, and the highest
/// sequence number the sender received in order from the other side.
/// Unnumbered frames (`Ack`, the announcing `Hello`) carry `seq = 0`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, MaxSize)]
pub struct Frame {
    pub seq: u32,
    pub ack: u32,
    pub msg: LinkMessage,
}

/// The most bytes of a postcard-encoded [`LinkMessage`].
pub const MESSAGE_POSTCARD_MAX: usize = LinkMessage::POSTCARD_MAX_SIZE;
/// The most bytes of a postcard-encoded [`Frame`].
pub const FRAME_POSTCARD_MAX: usize = Frame::POSTCARD_MAX_SIZE;
pub const CRC_LEN: usize = 4;
/// What COBS decodes to at most: the postcard bytes and the CRC. The
/// scratch buffer of [`decode_frame`] needs this much.
pub const RAW_FRAME_MAX: usize = FRAME_POSTCARD_MAX + CRC_LEN;
/// The most bytes one encoded frame takes on the wire, its 0 included.
pub const FRAME_MAX: usize = cobs_max_len(RAW_FRAME_MAX) + 1;

/// The most bytes COBS makes of `n` bytes: one code byte per started run
/// of 254.
pub const fn cobs_max_len(n: usize) -> usize {
    n + n / 254 + 1
}

/// Why a frame was not encoded or not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The output (or scratch) buffer is too small.
    TooLarge,
    /// Not valid COBS (a 0 byte, a block past the end, a non-canonical end).
    Cobs,
    /// The CRC does not match (or the frame is too short to carry one).
    Crc,
    /// The CRC matched but the bytes are not one whole [`Frame`].
    Decode,
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0x04C11DB7, as zlib).
pub fn crc32(bytes: &[u8]) -> u32 {
    !crate::crc::update(&crate::crc::IEEE, !0, bytes.iter().copied())
}

/// COBS-encodes `buf[src..src + len]` into `buf[0..]` (returns the encoded
/// length; no terminator).
///
/// In place: before reading source byte `j` the writer is at
/// `1 + j + splits`, with at most `j / 254` splits (a code byte after a run
/// of 254 non-zero bytes), so it never overtakes the reader as long as
/// `src >= 1 + len / 254`. The caller guarantees that and
/// `src + len <= buf.len()`.
fn cobs_encode_in_place(buf: &mut [u8], src: usize, len: usize) -> usize {
    debug_assert!(src > len / 254 && src + len <= buf.len());
    let mut code_at = 0;
    let mut w = 1;
    let mut code: u8 = 1;
    for r in src..src + len {
        let b = buf[r];
        if b == 0 {
            buf[code_at] = code;
            code_at = w;
            w += 1;
            code = 1;
        } else {
            buf[w] = b;
            w += 1;
            code += 1;
            if code == 0xff {
                buf[code_at] = code;
                code_at = w;
                w += 1;
                code = 1;
            }
        }
    }
    buf[code_at] = code;
    w
}

/// COBS-encodes `src` into `dst` (no terminator); the encoded length.
pub fn cobs_encode(src: &[u8], dst: &mut [u8]) -> Result<usize, LinkError> {
    let offset = 1 + src.len() / 254;
    if dst.len() < offset + src.len() {
        return Err(LinkError::TooLarge);
    }
    dst[offset..offset + src.len()].copy_from_slice(src);
    Ok(cobs_encode_in_place(dst, offset, src.len()))
}

/// Decodes one COBS frame (without its terminator) into `dst`; the decoded
/// length. Strict: a 0 byte, a block running past the end, or a last block
/// of code 0xFF (which the encoder never makes) is [`LinkError::Cobs`].
pub fn cobs_decode(src: &[u8], dst: &mut [u8]) -> Result<usize, LinkError> {
    let mut r = 0;
    let mut w = 0;
    while r < src.len() {
        let code = src[r];
        if code == 0 {
            return Err(LinkError::Cobs);
        }
        r += 1;
        let run = code as usize - 1;
        let Some(data) = src.get(r..r + run) else {
            return Err(LinkError::Cobs);
        };
        if data.contains(&0) {
            return Err(LinkError::Cobs);
        }
        let Some(out) = dst.get_mut(w..w + run) else {
            return Err(LinkError::TooLarge);
        };
        out.copy_from_slice(data);
        w += run;
        r += run;
        if r < src.len() {
            if code != 0xff {
                *dst.get_mut(w).ok_or(LinkError::TooLarge)? = 0;
                w += 1;
            }
        } else if code == 0xff {
            return Err(LinkError::Cobs);
        }
    }
    Ok(w)
}

/// Postcard-encodes a message alone (what [`encode_frame_parts`] takes as
/// `body`); the bytes used.
pub fn encode_message(msg: &LinkMessage, out: &mut [u8]) -> Result<usize, LinkError> {
    postcard::to_slice(msg, out)
        .map(|b| b.len())
        .map_err(|_| LinkError::TooLarge)
}

/// Where the postcard bytes go in an output buffer of `len` bytes, so that
/// COBS can encode them in place (see [`cobs_encode_in_place`]).
const fn raw_offset(len: usize) -> usize {
    let bound = if len < RAW_FRAME_MAX { len } else { RAW_FRAME_MAX };
    1 + bound / 254
}

/// Appends the CRC to the `n` postcard bytes at `out[offset..]`, COBS-encodes
/// them to the front of `out` and terminates the frame.
fn finish_frame(out: &mut [u8], offset: usize, n: usize) -> Result<usize, LinkError> {
    // The in-place condition (only an over-long `body` of
    // `encode_frame_parts` can break it).
    if offset <= (n + CRC_LEN) / 254 {
        return Err(LinkError::TooLarge);
    }
    let crc = crc32(&out[offset..offset + n]);
    let Some(tail) = out.get_mut(offset + n..offset + n + CRC_LEN) else {
        return Err(LinkError::TooLarge);
    };
    tail.copy_from_slice(&crc.to_le_bytes());
    let len = cobs_encode_in_place(out, offset, n + CRC_LEN);
    *out.get_mut(len).ok_or(LinkError::TooLarge)? = 0;
    Ok(len + 1)
}

/// Encodes a frame for the wire, its 0 terminator included; the bytes used
/// (at most [`FRAME_MAX`]; a buffer of that size always suffices).
pub fn encode_frame(frame: &Frame, out: &mut [u8]) -> Result<usize, LinkError> {
    let offset = raw_offset(out.len());
    let room = out.get_mut(offset..).ok_or(LinkError::TooLarge)?;
    let n = postcard::to_slice(frame, room).map_err(|_| LinkError::TooLarge)?.len();
    finish_frame(out, offset, n)
}

/// [`encode_frame`] of `Frame { seq, ack, msg }` where `body` is
/// [`encode_message`]`(msg)`: postcard encodes a struct as its fields one
/// after the other, so a sender can keep messages encoded and renumber
/// them without decoding. `body` is not checked.
pub fn encode_frame_parts(seq: u32, ack: u32, body: &[u8], out: &mut [u8]) -> Result<usize, LinkError> {
    let offset = raw_offset(out.len());
    let room = out.get_mut(offset..).ok_or(LinkError::TooLarge)?;
    let head = postcard::to_slice(&(seq, ack), room)
        .map_err(|_| LinkError::TooLarge)?
        .len();
    let Some(dst) = room.get_mut(head..head + body.len()) else {
        return Err(LinkError::TooLarge);
    };
    dst.copy_from_slice(body);
    finish_frame(out, offset, head + body.len())
}

/// Decodes one frame as [`FrameSplitter`] yields it (without its 0),
/// COBS-decoding into `scratch` ([`RAW_FRAME_MAX`] bytes always suffice).
pub fn decode_frame(encoded: &[u8], scratch: &mut [u8]) -> Result<Frame, LinkError> {
    let n = cobs_decode(encoded, scratch)?;
    if n < CRC_LEN {
        return Err(LinkError::Crc);
    }
    let (body, crc) = scratch[..n].split_at(n - CRC_LEN);
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32(body) != crc {
        return Err(LinkError::Crc);
    }
    match postcard::take_from_bytes::<Frame>(body) {
        Ok((frame, [])) => Ok(frame),
        _ => Err(LinkError::Decode),
    }
}

/// Cuts a byte stream into frames at its 0 bytes, however the stream is
/// chunked. `N` is the longest frame kept ([`FRAME_MAX`] covers every
/// valid one): a longer run without a 0 is dropped, counted in
/// [`FrameSplitter::overflows`], and the splitter is back in step after
/// the next 0. Empty frames (0 after 0) are skipped.
pub struct FrameSplitter<const N: usize> {
    buf: [u8; N],
    len: usize,
    /// Inside an over-long run: drop until the next 0.
    dropping: bool,
    overflows: u64,
}

/// A splitter for every frame of this protocol.
pub type LinkSplitter = FrameSplitter<FRAME_MAX>;

impl<const N: usize> Default for FrameSplitter<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FrameSplitter<N> {
    pub const fn new() -> Self {
        FrameSplitter {
            buf: [0; N],
            len: 0,
            dropping: false,
            overflows: 0,
        }
    }

    /// Feeds bytes; calls `frame` with each complete frame (without its 0),
    /// in order.
    pub fn push(&mut self, mut bytes: &[u8], mut frame: impl FnMut(&[u8])) {
        while let Some(end) = bytes.iter().position(|&b| b == 0) {
            self.append(&bytes[..end]);
            if !self.dropping && self.len > 0 {
                frame(&self.buf[..self.len]);
            }
            self.len = 0;
            self.dropping = false;
            bytes = &bytes[end + 1..];
        }
        self.append(bytes);
    }

    fn append(&mut self, part: &[u8]) {
        if self.dropping || part.is_empty() {
            return;
        }
        match self.buf.get_mut(self.len..self.len + part.len()) {
            Some(dst) => {
                dst.copy_from_slice(part);
                self.len += part.len();
            }
            None => {
                self.dropping = true;
                self.overflows += 1;
                self.len = 0;
            }
        }
    }

    /// Over-long runs dropped so far.
    pub fn overflows(&self) -> u64 {
        self.overflows
    }

    /// Bytes of an unfinished frame held.
    pub fn pending(&self) -> usize {
        self.len
    }

    /// Forgets an unfinished frame (a transport reset).
    pub fn clear(&mut self) {
        self.len = 0;
        self.dropping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobError, JobKind, JobName, JobRecord, JobResponse, JobState, LOG_CHUNK_MAX};
    extern crate std;
    use std::vec;
    use std::vec::Vec as StdVec;

    use crate::testing::Rng;

    /// The textbook COBS encoder, allocating, to check the in-place one.
    fn reference_cobs(src: &[u8]) -> StdVec<u8> {
        let mut out = vec![0u8];
        let mut code_at = 0;
        let mut code = 1u8;
        for &b in src {
            if b == 0 {
                out[code_at] = code;
                code_at = out.len();
                out.push(0);
                code = 1;
            } else {
                out.push(b);
                code += 1;
                if code == 0xff {
                    out[code_at] = code;
                    code_at = out.len();
                    out.push(0);
                    code = 1;
                }
            }
        }
        out[code_at] = code;
        out
    }

    fn api_reply(id: u32, reply: JobReply) -> LinkMessage {
        LinkMessage::ApiReply {
            id,
            reply: Box::new(reply),
        }
    }

    fn chunk(job_id: u64, fill: u8, len: usize) -> LogChunk {
        let mut bytes = heapless::Vec::new();
        bytes.resize(len, fill).unwrap();
        LogChunk {
            job_id,
            stream: Stream::Stdout,
            offset: 4096,
            ts_ms: 1_700_000_000_123,
            bytes,
        }
    }

    /// One message of every variant, the largest ones at their maximum.
    fn every_variant() -> StdVec<LinkMessage> {
        let spec = JobSpec {
            name: JobName::try_from("train").unwrap(),
            entrypoint: heapless::Vec::from_slice(&[
                crate::job::Arg::try_from("python3").unwrap(),
                crate::job::Arg::try_from("train.py").unwrap(),
            ])
            .unwrap(),
            kind: JobKind::Host,
            timeout_ms: Some(60_000),
            ..JobSpec::default()
        };
        vec![
            LinkMessage::Hello {
                version: LINK_VERSION,
                incarnation: u64::MAX,
                peer: Some(u64::MAX - 1),
            },
            LinkMessage::Hello {
                version: LINK_VERSION,
                incarnation: 1,
                peer: None,
            },
            LinkMessage::Ack,
            LinkMessage::Start {
                job_id: 1,
                spec: Box::new(spec),
            },
            LinkMessage::Start {
                job_id: u64::MAX,
                spec: Box::new(crate::job::tests::largest_spec()),
            },
            LinkMessage::Stop {
                job_id: 2,
                grace_ms: 10_000,
            },
            LinkMessage::Started {
                job_id: 2,
                pid: 4242,
                started_ms: 1_700_000_000_000,
            },
            LinkMessage::Log(chunk(2, b'x', 17)),
            LinkMessage::Log(chunk(2, 0, LOG_CHUNK_MAX)),
            LinkMessage::Log(chunk(2, 0xff, LOG_CHUNK_MAX)),
            LinkMessage::Metric {
                job_id: 2,
                ts_ms: 1_700_000_000_000,
                offset: 1 << 33,
                point: crate::metric::tests::largest_point(),
            },
            LinkMessage::Export { id: 9, job_id: Some(3) },
            LinkMessage::Notify {
                id: u64::MAX,
                url: String::try_from("x".repeat(NOTIFY_URL_MAX).as_str()).unwrap(),
                body: Box::new(heapless::Vec::from_slice(&[b'{'; NOTIFY_BODY_MAX]).unwrap()),
            },
            LinkMessage::ArtifactOffer {
                transfer: u64::MAX,
                offer: Box::new(crate::artifact::ArtifactOffer {
                    job_id: u64::MAX,
                    kind: crate::artifact::ArtifactKind::Model,
                    name: String::try_from("m".repeat(64).as_str()).unwrap(),
                    size: u64::MAX,
                    digest: [0xff; 32],
                    step: Some(u64::MAX),
                    metrics: (0..crate::artifact::METRICS_MAX)
                        .map(|_| crate::artifact::ArtifactMetric {
                            name: String::try_from("x".repeat(64).as_str()).unwrap(),
                            value: f64::MIN,
                        })
                        .collect(),
                    created_ms: u64::MAX,
                }),
            },
            LinkMessage::ArtifactWant {
                transfer: 1,
                offset: 1 << 40,
            },
            LinkMessage::ArtifactChunk {
                transfer: 1,
                offset: 0,
                bytes: Box::new(heapless::Vec::from_slice(&[0; crate::artifact::CHUNK_MAX]).unwrap()),
            },
            LinkMessage::ArtifactDone {
                transfer: 1,
                outcome: ArtifactOutcome::Refused {
                    reason: String::try_from("r".repeat(crate::artifact::REASON_MAX).as_str()).unwrap(),
                },
            },
            LinkMessage::ArtifactBytes {
                id: u32::MAX,
                version: u32::MAX,
                size: u64::MAX,
                digest: [0; 32],
                offset: u64::MAX,
                last: true,
                error: None,
                bytes: Box::new(heapless::Vec::from_slice(&[0xff; crate::artifact::CHUNK_MAX]).unwrap()),
            },
            LinkMessage::Notified {
                id: u64::MAX,
                delivered: false,
                status: 503,
                attempts: 6,
                error: String::try_from("x".repeat(MESSAGE_MAX).as_str()).unwrap(),
            },
            LinkMessage::ExportChunk {
                id: 9,
                last: true,
                found: true,
                text: Box::new(heapless::Vec::from_slice(&[b'#'; EXPORT_CHUNK_MAX]).unwrap()),
            },
            LinkMessage::Exited {
                job_id: 2,
                exit_code: None,
                signal: Some(9),
                forced: true,
                ended_ms: 1_700_000_010_000,
                reason: TerminationReason::Stopped,
            },
            LinkMessage::Lost { job_id: 3 },
            LinkMessage::LogResend {
                job_id: 3,
                stream: Stream::Stderr,
                from: 1 << 40,
            },
            LinkMessage::SpawnFailed {
                job_id: 4,
                message: String::try_from("python3: not found").unwrap(),
            },
            LinkMessage::Api {
                id: 9,
                request: Box::new(JobRequest::Logs {
                    job_id: 1,
                    stream: Stream::Stdout,
                    offset: 0,
                    max: 1024,
                }),
            },
            LinkMessage::Api {
                id: u32::MAX,
                request: Box::new(JobRequest::Start(crate::job::tests::largest_spec())),
            },
            api_reply(9, Ok(JobResponse::Status(crate::job::tests::largest_record()))),
            api_reply(
                10,
                Ok(JobResponse::Ended(JobRecord::pending(
                    5,
                    JobName::try_from("x").unwrap(),
                    7,
                ))),
            ),
            api_reply(11, Err(JobError::AlreadyEnded { status: JobState::Lost })),
        ]
    }

    fn frames() -> StdVec<Frame> {
        every_variant()
            .into_iter()
            .enumerate()
            .map(|(i, msg)| Frame {
                seq: if i % 3 == 0 { u32::MAX - i as u32 } else { i as u32 },
                ack: (i as u32) << 20,
                msg,
            })
            .collect()
    }

    fn encoded(frame: &Frame) -> StdVec<u8> {
        let mut out = vec![0u8; FRAME_MAX];
        let n = encode_frame(frame, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn sizes_are_as_documented() {
        assert_eq!(MESSAGE_POSTCARD_MAX, 13_781);
        assert_eq!(FRAME_POSTCARD_MAX, 13_791);
        assert_eq!(FRAME_MAX, 13_851);
    }

    #[test]
    fn crc32_matches_known_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"The quick brown fox jumps over the lazy dog"), 0x414F_A339);
        assert_eq!(crc32(&[0u8; 32]), 0x190A_55AD);
    }

    #[test]
    fn cobs_matches_known_vectors() {
        let cases: [(&[u8], &[u8]); 6] = [
            (&[], &[0x01]),
            (&[0x00], &[0x01, 0x01]),
            (&[0x00, 0x00], &[0x01, 0x01, 0x01]),
            (&[0x11, 0x22, 0x00, 0x33], &[0x03, 0x11, 0x22, 0x02, 0x33]),
            (&[0x11, 0x22, 0x33, 0x44], &[0x05, 0x11, 0x22, 0x33, 0x44]),
            (&[0x11, 0x00, 0x00, 0x00], &[0x02, 0x11, 0x01, 0x01, 0x01]),
        ];
        for (raw, enc) in cases {
            let mut out = [0u8; 16];
            let n = cobs_encode(raw, &mut out).unwrap();
            assert_eq!(&out[..n], enc);
            let mut back = [0u8; 16];
            let m = cobs_decode(enc, &mut back).unwrap();
            assert_eq!(&back[..m], raw);
        }
        // 254 non-zero bytes: one full block, then the (empty) last one.
        let run: StdVec<u8> = (1..=254).collect();
        let mut out = [0u8; 300];
        let n = cobs_encode(&run, &mut out).unwrap();
        assert_eq!(n, 256);
        assert_eq!((out[0], out[255]), (0xff, 0x01));
    }

    #[test]
    fn cobs_round_trips_every_length_and_pattern() {
        let mut rng = Rng(1);
        for len in 0..1200 {
            for pattern in 0..4 {
                let raw: StdVec<u8> = (0..len)
                    .map(|i| match pattern {
                        0 => 0,
                        1 => (i % 255 + 1) as u8,
                        2 => rng.next() as u8,
                        _ => [0, 0, 7][rng.below(3)],
                    })
                    .collect();
                let mut out = vec![0u8; cobs_max_len(len)];
                let n = cobs_encode(&raw, &mut out).unwrap();
                assert_eq!(
                    &out[..n],
                    reference_cobs(&raw).as_slice(),
                    "len {len} pattern {pattern}"
                );
                assert!(!out[..n].contains(&0));
                let mut back = vec![0u8; len];
                assert_eq!(cobs_decode(&out[..n], &mut back), Ok(len));
                assert_eq!(back, raw);
                // Too small a destination is an error, not a panic.
                if len > 0 {
                    assert_eq!(cobs_decode(&out[..n], &mut back[..len - 1]), Err(LinkError::TooLarge));
                }
            }
        }
    }

    #[test]
    fn cobs_rejects_malformed_input() {
        let mut out = [0u8; 600];
        // A 0 inside, a block past the end, a final 0xFF block.
        assert_eq!(cobs_decode(&[0x03, 0x11, 0x00], &mut out), Err(LinkError::Cobs));
        assert_eq!(cobs_decode(&[0x02, 0x11, 0x00, 0x01], &mut out), Err(LinkError::Cobs));
        assert_eq!(cobs_decode(&[0x05, 0x11, 0x22], &mut out), Err(LinkError::Cobs));
        let mut ff = vec![0xffu8];
        ff.extend(1..=254u8);
        assert_eq!(cobs_decode(&ff, &mut out), Err(LinkError::Cobs));
        ff.push(0x01);
        assert_eq!(cobs_decode(&ff, &mut out), Ok(254));
    }

    #[test]
    fn every_variant_round_trips() {
        let mut scratch = vec![0u8; RAW_FRAME_MAX];
        let mut body = vec![0u8; MESSAGE_POSTCARD_MAX];
        for frame in frames() {
            let wire = encoded(&frame);
            assert!(wire.len() <= FRAME_MAX);
            assert_eq!(wire.last(), Some(&0));
            assert!(!wire[..wire.len() - 1].contains(&0));
            let back = decode_frame(&wire[..wire.len() - 1], &mut scratch).unwrap();
            assert_eq!(back, frame);
            // The same bytes from a message kept encoded.
            let n = encode_message(&frame.msg, &mut body).unwrap();
            let mut parts = vec![0u8; FRAME_MAX];
            let m = encode_frame_parts(frame.seq, frame.ack, &body[..n], &mut parts).unwrap();
            assert_eq!(&parts[..m], wire.as_slice());
        }
    }

    #[test]
    fn the_largest_frame_fits_frame_max() {
        let frame = Frame {
            seq: u32::MAX,
            ack: u32::MAX,
            msg: LinkMessage::Start {
                job_id: u64::MAX,
                spec: Box::new(crate::job::tests::largest_spec()),
            },
        };
        let mut out = vec![0u8; FRAME_MAX];
        let n = encode_frame(&frame, &mut out).unwrap();
        assert!(n <= FRAME_MAX, "{n}");
        // Its postcard form is the maximum exactly.
        let mut raw = vec![0u8; FRAME_POSTCARD_MAX];
        assert_eq!(postcard::to_slice(&frame, &mut raw).unwrap().len(), FRAME_POSTCARD_MAX);
        let mut scratch = vec![0u8; RAW_FRAME_MAX];
        assert_eq!(decode_frame(&out[..n - 1], &mut scratch), Ok(frame.clone()));
        // A buffer one byte short is an error, not a panic.
        let mut short = vec![0u8; n - 1];
        assert_eq!(encode_frame(&frame, &mut short), Err(LinkError::TooLarge));
        assert_eq!(encode_frame(&frame, &mut []), Err(LinkError::TooLarge));
        // A body far longer than any message is refused, not mis-encoded.
        let body = vec![0x11u8; 2 * RAW_FRAME_MAX];
        let mut big = vec![0u8; 3 * FRAME_MAX];
        assert_eq!(encode_frame_parts(1, 1, &body, &mut big), Err(LinkError::TooLarge));
        let mut small_scratch = vec![0u8; 100];
        assert_eq!(
            decode_frame(&out[..n - 1], &mut small_scratch),
            Err(LinkError::TooLarge)
        );
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut scratch = vec![0u8; RAW_FRAME_MAX];
        let mut checked = 0;
        for frame in frames() {
            let wire = encoded(&frame);
            // Large frames: every bit of the first and last 600 bytes.
            let positions: StdVec<usize> = if wire.len() > 1200 {
                (0..600).chain(wire.len() - 600..wire.len()).collect()
            } else {
                (0..wire.len()).collect()
            };
            for i in positions {
                for bit in 0..8 {
                    let mut bad = wire.clone();
                    bad[i] ^= 1 << bit;
                    // As a receiver sees it: through a splitter, a 0 after.
                    bad.push(0);
                    let mut splitter = LinkSplitter::new();
                    let mut pieces = 0;
                    splitter.push(&bad, |piece| {
                        pieces += 1;
                        let got = decode_frame(piece, &mut scratch);
                        assert!(got.is_err(), "flip of bit {bit} of byte {i} accepted: {got:?}");
                    });
                    assert!(pieces >= 1);
                    checked += 1;
                }
            }
        }
        assert!(checked > 40_000, "{checked}");
    }

    #[test]
    fn every_truncation_is_an_error() {
        let mut scratch = vec![0u8; RAW_FRAME_MAX];
        for frame in frames() {
            let wire = encoded(&frame);
            let body = &wire[..wire.len() - 1];
            for cut in 0..body.len() {
                assert!(decode_frame(&body[..cut], &mut scratch).is_err(), "cut at {cut}");
            }
            // And bytes after it.
            let mut longer = body.to_vec();
            longer.push(0x01);
            assert!(decode_frame(&longer, &mut scratch).is_err());
        }
    }

    fn stream_of(frames: &[Frame]) -> StdVec<u8> {
        frames.iter().flat_map(encoded).collect()
    }

    fn split_all(splitter: &mut LinkSplitter, bytes: &[u8], rng: &mut Rng) -> StdVec<Result<Frame, LinkError>> {
        let mut scratch = vec![0u8; RAW_FRAME_MAX];
        let mut out = StdVec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = (1 + rng.below(3000)).min(rest.len());
            splitter.push(&rest[..n], |f| out.push(decode_frame(f, &mut scratch)));
            rest = &rest[n..];
        }
        out
    }

    #[test]
    fn splitter_returns_the_same_frames_however_chunked() {
        let frames = frames();
        let stream = stream_of(&frames);
        for seed in 0..20 {
            let mut rng = Rng(seed);
            let mut splitter = LinkSplitter::new();
            let got = split_all(&mut splitter, &stream, &mut rng);
            let want: StdVec<_> = frames.iter().cloned().map(Ok).collect();
            assert_eq!(got, want);
            assert_eq!(splitter.pending(), 0);
        }
        // One byte at a time.
        let mut splitter = LinkSplitter::new();
        let mut scratch = vec![0u8; RAW_FRAME_MAX];
        let mut n = 0;
        for b in &stream {
            splitter.push(core::slice::from_ref(b), |f| {
                assert_eq!(decode_frame(f, &mut scratch).as_ref(), Ok(&frames[n]));
                n += 1;
            });
        }
        assert_eq!(n, frames.len());
    }

    #[test]
    fn garbage_streams_resync() {
        let frames = frames();
        let mut rng = Rng(99);
        for round in 0..50 {
            let mut stream = StdVec::new();
            // Garbage with zeros, then garbage without (it glues to the
            // frame after it, which is lost), then a run longer than any
            // frame (an overflow), each followed by good frames.
            let garbage: StdVec<u8> = (0..rng.below(5000)).map(|_| rng.next() as u8).collect();
            stream.extend(&garbage);
            stream.push(0);
            stream.extend(stream_of(&frames));
            let glue: StdVec<u8> = (0..1 + rng.below(100)).map(|_| rng.next() as u8 | 1).collect();
            stream.extend(&glue);
            stream.extend(stream_of(&frames));
            stream.extend(core::iter::repeat_n(0x55, FRAME_MAX + rng.below(5000)));
            stream.extend(stream_of(&frames));
            let mut splitter = LinkSplitter::new();
            let got = split_all(&mut splitter, &stream, &mut rng);
            let good: StdVec<&Frame> = got.iter().filter_map(|r| r.as_ref().ok()).collect();
            // Nothing wrong is accepted: every good frame is one of ours.
            for f in &good {
                assert!(frames.contains(f), "round {round}: a frame out of garbage");
            }
            // The glued frame and the one the overflow ate are lost; the
            // rest arrive.
            assert!(good.len() >= 3 * frames.len() - 2, "round {round}: {}", good.len());
            assert!(splitter.overflows() >= 1);
            // The tail is intact, in order.
            let tail = &good[good.len() - (frames.len() - 1)..];
            assert!(tail.iter().zip(&frames[1..]).all(|(a, b)| *a == b));
        }
    }

    #[test]
    fn random_bytes_never_decode() {
        let mut rng = Rng(7);
        let mut scratch = vec![0u8; RAW_FRAME_MAX];
        let mut splitter = LinkSplitter::new();
        let bytes: StdVec<u8> = (0..200_000).map(|_| rng.next() as u8).collect();
        let mut pieces = 0;
        splitter.push(&bytes, |f| {
            pieces += 1;
            assert!(decode_frame(f, &mut scratch).is_err());
        });
        assert!(pieces > 100);
    }
}
