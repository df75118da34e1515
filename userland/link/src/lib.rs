//! The guest-host link protocol (docs/jobs.md, "The link"): a reliable,
//! ordered channel of [`LinkMessage`]s over a transport that may lose,
//! duplicate, reorder or corrupt frames, between two [`Endpoint`]s (opsd in
//! the guest, the bridge on the host).
//!
//! The endpoint is a pure state machine: no I/O, no clock. The owner feeds
//! it the frames it reads ([`Endpoint::receive`], after a
//! [`FrameSplitter`](aether_abi::link::FrameSplitter) has cut the byte
//! stream), takes the frames to write ([`Endpoint::poll_transmit`]), and
//! passes the time in, in milliseconds from any origin that does not go
//! backwards. Memory is bounded by the window: [`Endpoint::send`] refuses
//! with [`Full`] instead of queueing without end.
//!
//! # Reliability: go-back-N
//!
//! Every message is a numbered frame (`seq`); every frame also carries
//! `ack`, the highest `seq` received in order from the other side (a bare
//! `Ack` frame when there is nothing to piggyback it on). The receiver
//! delivers a frame only if its `seq` is exactly the next one, and drops
//! duplicates and frames from beyond a gap (counted apart in [`Stats`]).
//! The sender keeps every unacknowledged frame (at most `window` of them)
//! and sends it again when its timer (`retransmit_ms`) expires, oldest
//! first, or at once, all of them, after [`DUP_ACK_THRESHOLD`] bare acks
//! that do not move (the receiver saw a gap). Go-back-N rather than
//! selective repeat: the transports (shared-memory rings, a serial line)
//! lose a frame only when it is corrupted, which is rare, so resending the
//! window after a loss costs little, and the receiver needs no reordering
//! buffer at all. Sequence numbers are `u32` and wrap (compared modulo
//! 2^32; the window is far below 2^31).
//!
//! # Sessions: the Hello handshake
//!
//! A side announces itself with an unnumbered
//! `Hello { version, incarnation, peer: None }` every `retransmit_ms` until
//! it knows the other side's incarnation (from any Hello of the other
//! side). Then it opens its sending session: the numbered
//! `Hello { version, incarnation, peer: Some(theirs) }` as `seq` 1, its
//! queued messages after it (2, 3, ...). The other side accepts numbered
//! frames only after such a Hello naming its own incarnation, and delivers
//! that Hello to the application once per session, so the application can
//! reconcile (opsd asks the bridge what runs; the bridge re-reports jobs
//! and log offsets).
//!
//! When the peer restarts (a Hello with a new incarnation), the receiving
//! session ends and the sending one starts over: a new Hello naming the new
//! incarnation as `seq` 1 and every message not yet acknowledged,
//! renumbered from 2, in order. Nothing queued is lost. A message the old
//! peer received but had not acknowledged before it died is sent again to
//! the new one: within a session delivery is exactly once, across a restart
//! of the *receiver* it is at least once for that tail (at most the
//! window); the application's own identifiers (job ids, log offsets) make
//! it harmless. A restart of the *sender* duplicates nothing: its queue
//! died with it.
//!
//! Because a Hello names the incarnation it answers, a frame still in
//! flight to a previous incarnation is recognised: its Hello is ignored
//! (`dropped_stale`), its numbered frames come before any session
//! (`dropped_no_session`). This relies on one property of the transport:
//! frames of a side's previous incarnation are not delivered after frames
//! of its new one (true of FIFO transports such as rings and serial lines,
//! however lossy). Within a session, any loss, duplication, reordering or
//! corruption is tolerated.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::borrow::Borrow;
use core::fmt;

use aether_abi::link::{
    FRAME_MAX, Frame, LINK_VERSION, LinkMessage, RAW_FRAME_MAX, decode_frame, encode_frame, encode_frame_parts,
    encode_message,
};

#[cfg(test)]
mod tests;

/// Bare acks that repeat the same `ack` while frames are outstanding before
/// the whole window is sent again (a gap at the receiver).
pub const DUP_ACK_THRESHOLD: u32 = 2;
/// The largest window [`Config`] accepts (far below 2^31, so sequence
/// numbers compare correctly modulo 2^32).
pub const WINDOW_MAX: usize = 1 << 16;
/// Encoded messages up to this capacity have their buffers reused after
/// acknowledgement; larger ones (a `Start` with a long argv) are freed.
const POOL_BODY_MAX: usize = 2048;

/// How an endpoint paces itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Messages queued and not acknowledged, at most ([`Endpoint::send`]
    /// answers [`Full`] beyond). 1 ..= [`WINDOW_MAX`].
    pub window: usize,
    /// After this long without an acknowledgement a frame is sent again;
    /// also the interval of the announcing Hello. At least 1.
    pub retransmit_ms: u64,
}

impl Default for Config {
    /// A window of 512: with opsd polling the link every 2 ms the channel
    /// is window-bound (64: 25k metric points/s, 256: 69k, 512: 106k;
    /// docs/benchmarks.md, "Jobs").
    fn default() -> Self {
        Config {
            window: 512,
            retransmit_ms: 200,
        }
    }
}

/// The window is full: acknowledgements must free room first (poll and
/// receive, then send again). Backpressure, not a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("link window full")
    }
}

/// Counters since the endpoint was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Numbered frames sent for the first time (in their session).
    pub sent: u64,
    /// Numbered frames sent again (timer or duplicate acks).
    pub resent: u64,
    /// Bare `Ack` frames sent.
    pub acks_sent: u64,
    /// Announcing `Hello { peer: None }` frames sent.
    pub announces_sent: u64,
    /// Frames that decoded (whatever happened to them then).
    pub received: u64,
    /// Messages handed to the application (session Hellos included).
    pub delivered: u64,
    /// Frames that failed COBS, CRC or decoding.
    pub dropped_bad: u64,
    /// Numbered frames already delivered (or the session's Hello again).
    pub dropped_duplicate: u64,
    /// Numbered frames beyond a gap (resent later, in order).
    pub dropped_out_of_order: u64,
    /// Numbered frames before the peer's session Hello (lost Hello, or
    /// frames meant for a previous incarnation of ours).
    pub dropped_no_session: u64,
    /// Hellos naming an incarnation that is not ours (meant for our
    /// previous one).
    pub dropped_stale: u64,
    /// Hellos of another protocol version (see
    /// [`Endpoint::peer_version_mismatch`]).
    pub version_mismatch: u64,
    /// Times the peer came back with a new incarnation.
    pub peer_restarts: u64,
    /// Times the window was sent again after duplicate acks.
    pub fast_retransmits: u64,
    /// Acks of frames never sent (ignored).
    pub bad_acks: u64,
    /// Buffers allocated for encoded messages (new or grown); buffers of
    /// acknowledged messages are reused, so this stays near the window.
    pub buffers_allocated: u64,
}

/// A message waiting for its acknowledgement.
struct Entry {
    seq: u32,
    /// The postcard bytes of the message.
    body: Vec<u8>,
    /// This is our session Hello (always the first entry while queued).
    hello: bool,
    /// When it was last sent; `None`: due now (new, renumbered, or marked
    /// for a go-back).
    last_tx_ms: Option<u64>,
}

/// One side of the link.
pub struct Endpoint {
    config: Config,
    incarnation: u64,
    /// The first sequence number of a sending session (1; tests move it
    /// near the wrap).
    first_seq: u32,

    /// The peer's incarnation, once known: our sending session names it.
    peer: Option<u64>,
    /// Our messages not acknowledged yet (our session Hello first while it
    /// is not), in sequence order.
    queue: VecDeque<Entry>,
    next_seq: u32,
    /// The first `transmitted` entries were sent at least once.
    transmitted: usize,
    hello_acked: bool,
    last_announce_ms: Option<u64>,
    dup_acks: u32,
    /// A go-back on duplicate acks is allowed (once per ack value).
    fast_retransmit_armed: bool,
    /// Buffers of acknowledged messages, for reuse.
    pool: Vec<Vec<u8>>,

    /// The highest `seq` received in order in the peer's current session;
    /// `None` until its session Hello.
    received_upto: Option<u32>,
    ack_owed: bool,
    last_heard_ms: Option<u64>,
    peer_version: Option<u32>,

    stats: Stats,
    /// Frames are encoded here ([`FRAME_MAX`]).
    tx_buf: Vec<u8>,
    /// Frames are COBS-decoded here ([`RAW_FRAME_MAX`]).
    rx_buf: Vec<u8>,
}

impl Endpoint {
    /// A new endpoint; `incarnation` must differ from that of every earlier
    /// endpoint of this side (a random boot id, a start time in ns).
    pub fn new(incarnation: u64, config: Config) -> Self {
        let config = Config {
            window: config.window.clamp(1, WINDOW_MAX),
            retransmit_ms: config.retransmit_ms.max(1),
        };
        Endpoint {
            config,
            incarnation,
            first_seq: 1,
            peer: None,
            queue: VecDeque::with_capacity(config.window + 1),
            next_seq: 1,
            transmitted: 0,
            hello_acked: false,
            last_announce_ms: None,
            dup_acks: 0,
            fast_retransmit_armed: true,
            pool: Vec::with_capacity(config.window + 1),
            received_upto: None,
            ack_owed: false,
            last_heard_ms: None,
            peer_version: None,
            stats: Stats::default(),
            tx_buf: vec![0; FRAME_MAX],
            rx_buf: vec![0; RAW_FRAME_MAX],
        }
    }

    pub fn config(&self) -> Config {
        self.config
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The peer's incarnation, once a Hello of it arrived.
    pub fn peer(&self) -> Option<u64> {
        self.peer
    }

    /// Both sessions are open: the peer's Hello arrived and ours was
    /// acknowledged.
    pub fn is_connected(&self) -> bool {
        self.received_upto.is_some() && self.hello_acked
    }

    /// Messages queued and not acknowledged (our Hello not counted).
    pub fn queued(&self) -> usize {
        self.queue.len() - usize::from(self.queue.front().is_some_and(|e| e.hello))
    }

    /// Whether [`Endpoint::send`] would take a message now.
    pub fn has_room(&self) -> bool {
        self.queued() < self.config.window
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The version of the last Hello refused for its version (the peer
    /// speaks another protocol; nothing is exchanged with it).
    pub fn peer_version_mismatch(&self) -> Option<u32> {
        self.peer_version
    }

    /// When the last frame that decoded arrived (for a liveness display).
    pub fn last_heard_ms(&self) -> Option<u64> {
        self.last_heard_ms
    }

    /// Queues a message (sent by the next [`Endpoint::poll_transmit`]).
    ///
    /// # Panics
    ///
    /// On `Hello` or `Ack`: those are the link's own messages.
    pub fn send(&mut self, msg: impl Borrow<LinkMessage>) -> Result<(), Full> {
        let msg = msg.borrow();
        assert!(
            !matches!(msg, LinkMessage::Hello { .. } | LinkMessage::Ack),
            "Hello and Ack are sent by the link itself"
        );
        if !self.has_room() {
            return Err(Full);
        }
        let seq = self.next_seq;
        self.push_entry(msg, false);
        debug_assert_eq!(self.queue.back().map(|e| e.seq), Some(seq));
        Ok(())
    }

    /// Emits the frames due at `now_ms`, each whole with its 0 terminator:
    /// the announcing Hello while the peer is unknown; otherwise every
    /// queued frame never sent or whose timer expired (oldest first), then
    /// a bare `Ack` if one is owed and no frame carried it.
    pub fn poll_transmit(&mut self, now_ms: u64, mut out: impl FnMut(&[u8])) {
        let rto = self.config.retransmit_ms;
        if self.peer.is_none() {
            if self.last_announce_ms.is_none_or(|t| now_ms.saturating_sub(t) >= rto) {
                let hello = LinkMessage::Hello {
                    version: LINK_VERSION,
                    incarnation: self.incarnation,
                    peer: None,
                };
                self.emit_unnumbered(hello, &mut out);
                self.last_announce_ms = Some(now_ms);
                self.stats.announces_sent += 1;
            }
            return;
        }
        let ack = self.ack_value();
        let mut sent_any = false;
        for (i, entry) in self.queue.iter_mut().enumerate() {
            let due = entry.last_tx_ms.is_none_or(|t| now_ms.saturating_sub(t) >= rto);
            if !due {
                continue;
            }
            let n = encode_frame_parts(entry.seq, ack, &entry.body, &mut self.tx_buf)
                .expect("a frame of a LinkMessage fits FRAME_MAX");
            out(&self.tx_buf[..n]);
            entry.last_tx_ms = Some(now_ms);
            if i < self.transmitted {
                self.stats.resent += 1;
            } else {
                self.stats.sent += 1;
                self.transmitted = i + 1;
            }
            sent_any = true;
        }
        if sent_any {
            self.ack_owed = false;
        }
        if self.ack_owed {
            self.emit_unnumbered(LinkMessage::Ack, &mut out);
            self.stats.acks_sent += 1;
            self.ack_owed = false;
        }
    }

    /// Handles one frame as the splitter cut it (without its 0): the
    /// message to deliver, if this frame is the next in order (or the
    /// peer's session Hello).
    pub fn receive(&mut self, encoded: &[u8], now_ms: u64) -> Option<LinkMessage> {
        let Ok(frame) = decode_frame(encoded, &mut self.rx_buf) else {
            self.stats.dropped_bad += 1;
            return None;
        };
        self.stats.received += 1;
        self.last_heard_ms = Some(now_ms);
        let Frame { seq, ack, msg } = frame;
        match msg {
            LinkMessage::Hello {
                version,
                incarnation,
                peer,
            } => return self.on_hello(seq, ack, version, incarnation, peer),
            LinkMessage::Ack => {
                if self.received_upto.is_some() {
                    self.on_ack(ack, true);
                }
                return None;
            }
            _ => {}
        }
        let Some(upto) = self.received_upto else {
            self.stats.dropped_no_session += 1;
            return None;
        };
        self.on_ack(ack, false);
        self.ack_owed = true;
        let expected = upto.wrapping_add(1);
        if seq == expected {
            self.received_upto = Some(seq);
            self.stats.delivered += 1;
            Some(msg)
        } else if (seq.wrapping_sub(expected) as i32) < 0 {
            self.stats.dropped_duplicate += 1;
            None
        } else {
            self.stats.dropped_out_of_order += 1;
            None
        }
    }

    fn on_hello(
        &mut self,
        seq: u32,
        ack: u32,
        version: u32,
        incarnation: u64,
        peer: Option<u64>,
    ) -> Option<LinkMessage> {
        if version != LINK_VERSION {
            self.stats.version_mismatch += 1;
            self.peer_version = Some(version);
            return None;
        }
        if peer.is_some_and(|p| p != self.incarnation) {
            self.stats.dropped_stale += 1;
            return None;
        }
        if self.peer != Some(incarnation) {
            self.start_session(incarnation);
        }
        peer?;
        // The peer's session Hello, naming us.
        if self.received_upto.is_some() {
            self.stats.dropped_duplicate += 1;
            self.on_ack(ack, false);
            self.ack_owed = true;
            return None;
        }
        self.received_upto = Some(seq);
        self.on_ack(ack, false);
        self.ack_owed = true;
        self.stats.delivered += 1;
        Some(LinkMessage::Hello {
            version,
            incarnation,
            peer,
        })
    }

    /// A (new) peer: its old receiving session ends, our sending session
    /// starts over: a Hello naming it first, then every unacknowledged
    /// message, renumbered, all due now.
    fn start_session(&mut self, peer: u64) {
        if self.peer.is_some() {
            self.stats.peer_restarts += 1;
        }
        self.peer = Some(peer);
        self.received_upto = None;
        self.ack_owed = false;
        self.hello_acked = false;
        if self.queue.front().is_some_and(|e| e.hello)
            && let Some(old) = self.queue.pop_front()
        {
            self.recycle(old.body);
        }
        let hello = LinkMessage::Hello {
            version: LINK_VERSION,
            incarnation: self.incarnation,
            peer: Some(peer),
        };
        self.push_entry(&hello, true);
        // Back to the front: push_entry appends.
        self.queue.rotate_right(1);
        let mut seq = self.first_seq;
        for entry in &mut self.queue {
            entry.seq = seq;
            entry.last_tx_ms = None;
            seq = seq.wrapping_add(1);
        }
        self.next_seq = seq;
        self.transmitted = 0;
        self.dup_acks = 0;
        self.fast_retransmit_armed = true;
    }

    /// Processes the peer's `ack`: frees what it acknowledges; counts
    /// duplicate bare acks towards a go-back.
    fn on_ack(&mut self, ack: u32, bare: bool) {
        let Some(front) = self.queue.front() else {
            return;
        };
        let newly = ack.wrapping_sub(front.seq.wrapping_sub(1)) as i32;
        if newly < 0 {
            // An old ack (a reordered or repeated frame).
            return;
        }
        if newly == 0 {
            if bare && self.transmitted > 0 {
                self.dup_acks += 1;
                if self.dup_acks >= DUP_ACK_THRESHOLD && self.fast_retransmit_armed {
                    for entry in self.queue.iter_mut().take(self.transmitted) {
                        entry.last_tx_ms = None;
                    }
                    self.fast_retransmit_armed = false;
                    self.stats.fast_retransmits += 1;
                }
            }
            return;
        }
        let newly = newly as usize;
        if newly > self.transmitted {
            self.stats.bad_acks += 1;
            return;
        }
        for _ in 0..newly {
            if let Some(entry) = self.queue.pop_front() {
                if entry.hello {
                    self.hello_acked = true;
                }
                self.recycle(entry.body);
            }
        }
        self.transmitted -= newly;
        self.dup_acks = 0;
        self.fast_retransmit_armed = true;
    }

    fn ack_value(&self) -> u32 {
        // Before the peer's session Hello nothing was received: the ack of
        // "up to first_seq - 1" acknowledges nothing of a session.
        self.received_upto.unwrap_or(self.first_seq.wrapping_sub(1))
    }

    /// Encodes `msg` and appends it to the queue with the next number.
    fn push_entry(&mut self, msg: &LinkMessage, hello: bool) {
        let n = encode_message(msg, &mut self.tx_buf).expect("a LinkMessage fits FRAME_MAX");
        let mut body = self.pool.pop().unwrap_or_default();
        if body.capacity() < n {
            self.stats.buffers_allocated += 1;
        }
        body.extend_from_slice(&self.tx_buf[..n]);
        self.queue.push_back(Entry {
            seq: self.next_seq,
            body,
            hello,
            last_tx_ms: None,
        });
        self.next_seq = self.next_seq.wrapping_add(1);
    }

    fn recycle(&mut self, mut body: Vec<u8>) {
        if body.capacity() <= POOL_BODY_MAX && self.pool.len() < self.config.window + 1 {
            body.clear();
            self.pool.push(body);
        }
    }

    fn emit_unnumbered(&mut self, msg: LinkMessage, out: &mut impl FnMut(&[u8])) {
        let frame = Frame {
            seq: 0,
            ack: self.ack_value(),
            msg,
        };
        let n = encode_frame(&frame, &mut self.tx_buf).expect("a frame of a LinkMessage fits FRAME_MAX");
        out(&self.tx_buf[..n]);
    }
}
