//! Two endpoints over a simulated wire (loss, duplication, reordering,
//! corruption, garbage, random chunking) driven by a fake clock.

use std::boxed::Box;
use std::collections::VecDeque;
use std::vec::Vec;

use aether_abi::job::{Arg, JobName, JobSpec, LogChunk, Stream};
use aether_abi::link::{Frame, LINK_VERSION, LinkMessage, LinkSplitter, encode_frame};
use aether_abi::metric::{MetricKind, MetricPoint, Tag};
use heapless::String;

use super::*;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
    fn chance(&mut self, per_mille: u32) -> bool {
        (self.next() % 1000) < per_mille as u64
    }
}

/// Per-mille probabilities of each fault, per frame.
#[derive(Clone, Copy, Default)]
struct Faults {
    drop: u32,
    dup: u32,
    reorder: u32,
    corrupt: u32,
    garbage: u32,
}

const LOSSY: Faults = Faults {
    drop: 50,
    dup: 30,
    reorder: 60,
    corrupt: 30,
    garbage: 10,
};

/// One direction of the transport. Frames wait in `frames` (where they can
/// be reordered), then go onto a byte stream delivered in random chunks.
struct Wire {
    faults: Faults,
    rng: Rng,
    frames: VecDeque<Vec<u8>>,
    /// `frames[..barrier]` are from before a restart: nothing later is
    /// reordered before them (the transport is FIFO across incarnations).
    barrier: usize,
    bytes: VecDeque<u8>,
}

impl Wire {
    fn new(faults: Faults, seed: u64) -> Self {
        Wire {
            faults,
            rng: Rng(seed),
            frames: VecDeque::new(),
            barrier: 0,
            bytes: VecDeque::new(),
        }
    }

    fn push(&mut self, frame: &[u8]) {
        let f = self.faults;
        if self.rng.chance(f.drop) {
            return;
        }
        let mut frame = frame.to_vec();
        if self.rng.chance(f.corrupt) {
            for _ in 0..1 + self.rng.below(3) {
                let i = self.rng.below(frame.len());
                frame[i] ^= 1 << self.rng.below(8);
            }
        }
        if self.rng.chance(f.dup) {
            self.frames.push_back(frame.clone());
        }
        self.frames.push_back(frame);
        if self.rng.chance(f.reorder) && self.frames.len() >= 2 {
            let last = self.frames.len() - 1;
            let lo = self.barrier.max(last.saturating_sub(5));
            if lo < last {
                let j = lo + self.rng.below(last - lo);
                self.frames.swap(j, last);
            }
        }
    }

    /// A restart of the receiving side happens now.
    fn barrier(&mut self) {
        self.barrier = self.frames.len();
    }

    fn idle(&self) -> bool {
        self.frames.is_empty() && self.bytes.is_empty()
    }

    /// Moves some frames onto the stream and hands some bytes to `to`, in
    /// random chunks (all of it with `all`).
    fn deliver(&mut self, all: bool, mut to: impl FnMut(&[u8])) {
        let n = if all || self.rng.chance(500) {
            self.frames.len()
        } else {
            self.rng.below(self.frames.len() + 1)
        };
        for _ in 0..n {
            let frame = self.frames.pop_front().unwrap();
            self.barrier = self.barrier.saturating_sub(1);
            if self.rng.chance(self.faults.garbage) {
                for _ in 0..self.rng.below(40) {
                    let b = self.rng.next() as u8;
                    self.bytes.push_back(b);
                }
            }
            self.bytes.extend(frame);
        }
        let mut budget = if all || self.rng.chance(600) {
            self.bytes.len()
        } else {
            self.rng.below(self.bytes.len() + 1)
        };
        while budget > 0 {
            let n = 1 + self.rng.below(budget.min(900));
            let chunk: Vec<u8> = self.bytes.drain(..n).collect();
            to(&chunk);
            budget -= n;
        }
    }
}

/// A message of stream `tag`, number `i`: metrics, logs (with 0 bytes and
/// runs longer than a COBS block), losses and now and then a large Start.
fn message(tag: u64, i: usize) -> LinkMessage {
    let job_id = tag << 32 | i as u64;
    match i % 10 {
        0..=4 => {
            // Every kind, tags, and a histogram's bounds now and then.
            let kind = [MetricKind::Gauge, MetricKind::Counter, MetricKind::Histogram][i % 3];
            let mut point = MetricPoint::new("loss", kind, i as f64 * 0.25).unwrap();
            point.step = Some(i as u64);
            if i % 2 == 0 {
                point
                    .tags
                    .push(Tag {
                        key: String::try_from("split").unwrap(),
                        value: String::try_from("train").unwrap(),
                    })
                    .unwrap();
            }
            if kind == MetricKind::Histogram {
                point.buckets = heapless::Vec::from_slice(&[0.1, 0.5, 1.0, 5.0]).unwrap();
            }
            LinkMessage::Metric {
                job_id,
                ts_ms: 1_700_000_000_000 + i as u64,
                offset: (i * 64) as u64,
                point,
            }
        }
        5..=7 => {
            let len = (i * 37) % 1025;
            let bytes = (0..len)
                .map(|k| if k % 300 < 280 { (k % 251 + 1) as u8 } else { 0 })
                .collect();
            LinkMessage::Log(LogChunk {
                job_id,
                stream: if i % 2 == 0 { Stream::Stdout } else { Stream::Stderr },
                offset: (i * 1024) as u64,
                ts_ms: i as u64,
                bytes,
            })
        }
        8 if i % 50 == 8 => {
            let arg = Arg::try_from("x".repeat(200).as_str()).unwrap();
            let mut entrypoint = heapless::Vec::new();
            for _ in 0..20 {
                entrypoint.push(arg.clone()).unwrap();
            }
            LinkMessage::Start {
                job_id,
                spec: Box::new(JobSpec {
                    name: JobName::try_from("big").unwrap(),
                    entrypoint,
                    ..JobSpec::default()
                }),
            }
        }
        _ => LinkMessage::Lost { job_id },
    }
}

fn messages(tag: u64, range: core::ops::Range<usize>) -> Vec<LinkMessage> {
    range.map(|i| message(tag, i)).collect()
}

/// One side: its endpoint, the splitter in front of it, what it delivered.
struct Side {
    ep: Endpoint,
    splitter: Box<LinkSplitter>,
    got: Vec<LinkMessage>,
    /// Incarnations of the session Hellos delivered.
    hellos: Vec<u64>,
    tag: u64,
    next: usize,
    total: usize,
}

impl Side {
    fn new(incarnation: u64, config: Config, tag: u64, total: usize) -> Self {
        Side {
            ep: Endpoint::new(incarnation, config),
            splitter: Box::new(LinkSplitter::new()),
            got: Vec::new(),
            hellos: Vec::new(),
            tag,
            next: 0,
            total,
        }
    }

    fn produce(&mut self) {
        while self.next < self.total && self.ep.has_room() {
            self.ep.send(message(self.tag, self.next)).unwrap();
            self.next += 1;
        }
    }

    fn feed(&mut self, wire: &mut Wire, now: u64, all: bool) {
        let Side {
            ep,
            splitter,
            got,
            hellos,
            ..
        } = self;
        wire.deliver(all, |bytes| {
            splitter.push(bytes, |frame| match ep.receive(frame, now) {
                Some(LinkMessage::Hello { incarnation, .. }) => hellos.push(incarnation),
                Some(msg) => got.push(msg),
                None => {}
            })
        });
    }

    fn done_sending(&self) -> bool {
        self.next == self.total && self.ep.queued() == 0
    }
}

struct Net {
    ab: Wire,
    ba: Wire,
    now: u64,
    rng: Rng,
}

impl Net {
    fn new(faults: Faults, seed: u64) -> Self {
        Net {
            ab: Wire::new(faults, seed.wrapping_mul(3) + 1),
            ba: Wire::new(faults, seed.wrapping_mul(5) + 2),
            now: 1_000,
            rng: Rng(seed),
        }
    }

    fn step(&mut self, a: &mut Side, b: &mut Side) {
        a.produce();
        b.produce();
        let Net { ab, ba, now, .. } = self;
        a.ep.poll_transmit(*now, |f| ab.push(f));
        b.ep.poll_transmit(*now, |f| ba.push(f));
        b.feed(&mut self.ab, self.now, false);
        a.feed(&mut self.ba, self.now, false);
        self.now += 1 + self.rng.below(40) as u64;
    }

    /// Steps until `done`, at most `max` steps.
    fn run_until(&mut self, a: &mut Side, b: &mut Side, max: usize, done: impl Fn(&Side, &Side) -> bool) -> usize {
        for steps in 0..max {
            if done(a, b) {
                return steps;
            }
            self.step(a, b);
        }
        panic!(
            "not done after {max} steps: a sent {}/{} queued {} got {}, b sent {}/{} queued {} got {}\na {:?}\nb {:?}",
            a.next,
            a.total,
            a.ep.queued(),
            a.got.len(),
            b.next,
            b.total,
            b.ep.queued(),
            b.got.len(),
            a.ep.stats(),
            b.ep.stats()
        );
    }
}

fn all_exchanged(a: &Side, b: &Side) -> bool {
    a.done_sending() && b.done_sending() && a.got.len() >= b.total && b.got.len() >= a.total
}

fn exchange(faults: Faults, seed: u64, n: usize, config: Config) -> (Side, Side) {
    let mut a = Side::new(0xA000 + seed, config, 1, n);
    let mut b = Side::new(0xB000 + seed, config, 2, n);
    let mut net = Net::new(faults, seed);
    net.run_until(&mut a, &mut b, 200_000, all_exchanged);
    assert_eq!(a.got, messages(2, 0..n), "seed {seed}: a got");
    assert_eq!(b.got, messages(1, 0..n), "seed {seed}: b got");
    assert_eq!(a.hellos, [b.ep.incarnation()]);
    assert_eq!(b.hellos, [a.ep.incarnation()]);
    (a, b)
}

#[test]
fn lossless_wire_delivers_in_order() {
    let (a, b) = exchange(Faults::default(), 1, 2_000, Config::default());
    for side in [&a, &b] {
        let s = side.ep.stats();
        assert_eq!(s.dropped_bad + s.dropped_duplicate + s.dropped_out_of_order, 0, "{s:?}");
        assert_eq!(s.resent, 0, "{s:?}");
        assert_eq!(s.delivered, 2_001);
        assert!(side.ep.is_connected());
    }
}

#[test]
fn lossy_wire_delivers_every_message_exactly_once_in_order() {
    let mut total = Stats::default();
    for seed in 0..8 {
        let (a, b) = exchange(LOSSY, seed, 1_500, Config::default());
        for s in [a.ep.stats(), b.ep.stats()] {
            total.resent += s.resent;
            total.dropped_bad += s.dropped_bad;
            total.dropped_duplicate += s.dropped_duplicate;
            total.dropped_out_of_order += s.dropped_out_of_order;
            total.fast_retransmits += s.fast_retransmits;
        }
    }
    // Every fault happened and was recovered from.
    assert!(total.resent > 0, "{total:?}");
    assert!(total.dropped_bad > 0, "{total:?}");
    assert!(total.dropped_duplicate > 0, "{total:?}");
    assert!(total.dropped_out_of_order > 0, "{total:?}");
    assert!(total.fast_retransmits > 0, "{total:?}");
}

#[test]
fn heavy_loss_and_a_small_window_still_converge() {
    let faults = Faults {
        drop: 300,
        dup: 100,
        reorder: 200,
        corrupt: 100,
        garbage: 50,
    };
    for seed in 0..4 {
        exchange(
            faults,
            100 + seed,
            300,
            Config {
                window: 3,
                retransmit_ms: 50,
            },
        );
    }
}

#[test]
fn sequence_numbers_wrap() {
    let config = Config::default();
    let mut a = Side::new(1, config, 1, 3_000);
    let mut b = Side::new(2, config, 2, 3_000);
    // Both sides start their sessions just below the wrap.
    a.ep.first_seq = u32::MAX - 700;
    b.ep.first_seq = u32::MAX - 1_200;
    let mut net = Net::new(LOSSY, 77);
    net.run_until(&mut a, &mut b, 200_000, all_exchanged);
    assert_eq!(a.got, messages(2, 0..3_000));
    assert_eq!(b.got, messages(1, 0..3_000));
}

/// Runs `a` and `b` for a while, restarts `b` (a new endpoint, a new
/// incarnation, a new splitter; frames in flight stay on the wire), and
/// checks what each side got.
fn restart_b(seed: u64, faults: Faults, crash_after: usize, quiesce: bool) {
    let config = Config {
        window: 16,
        retransmit_ms: 100,
    };
    let n = 1_000;
    let mut a = Side::new(0xA, config, 1, n);
    let mut b = Side::new(0xB1, config, 2, n);
    let mut net = Net::new(faults, seed);
    net.run_until(&mut a, &mut b, 100_000, |_, b| b.got.len() >= crash_after);
    if quiesce {
        // Let everything in flight settle: both queues empty.
        let (a_total, b_total) = (a.total, b.total);
        a.total = a.next;
        b.total = b.next;
        net.run_until(&mut a, &mut b, 100_000, |a, b| {
            a.done_sending() && b.done_sending() && a.ep.is_connected() && b.ep.is_connected()
        });
        a.total = a_total;
        b.total = b_total;
    }
    let a_unacked = a.ep.queued();
    let old_b_sent = b.next;
    let old_b_got = core::mem::take(&mut b.got);
    let a_got_before = a.got.len();
    net.ab.barrier();
    // The new incarnation sends a stream of its own (tag 3).
    let mut b = Side::new(0xB2, config, 3, n);
    net.run_until(&mut a, &mut b, 200_000, |a, b| {
        a.done_sending() && b.done_sending() && b.got.len() + old_b_got.len() >= n && a.got.len() >= a_got_before + n
    });

    // a's stream: old b got a prefix, new b the rest from some k <= j,
    // exactly once each; the overlap (received, not acknowledged when b
    // died) is at most what was unacknowledged then.
    let j = old_b_got.len();
    assert_eq!(old_b_got, messages(1, 0..j), "seed {seed}: old b");
    let k = n - b.got.len();
    assert!(
        k <= j,
        "seed {seed}: a message lost: old b got {j}, new b starts at {k}"
    );
    assert_eq!(b.got, messages(1, k..n), "seed {seed}: new b");
    assert!(j - k <= a_unacked, "seed {seed}: overlap {} > {a_unacked}", j - k);
    if quiesce {
        assert_eq!(j, k, "seed {seed}: a duplicate after a clean restart");
    }

    // b's streams at a: the old one's prefix (what it sent and a got
    // before it died; its queue died with it), then the new one's whole.
    let split = a.got.iter().position(|m| message_tag(m) == 3).unwrap_or(a.got.len());
    let old_part = &a.got[..split];
    assert_eq!(old_part, messages(2, 0..old_part.len()), "seed {seed}");
    assert!(old_part.len() <= old_b_sent);
    assert_eq!(&a.got[split..], messages(3, 0..n), "seed {seed}");
    assert_eq!(a.hellos, [0xB1, 0xB2]);
    assert_eq!(b.hellos, [0xA]);
    assert_eq!(a.ep.stats().peer_restarts, 1);
    assert_eq!(a.ep.peer(), Some(0xB2));
}

fn message_tag(msg: &LinkMessage) -> u64 {
    let id = match msg {
        LinkMessage::Metric { job_id, .. } | LinkMessage::Lost { job_id } | LinkMessage::Start { job_id, .. } => {
            *job_id
        }
        LinkMessage::Log(chunk) => chunk.job_id,
        other => panic!("unexpected {other:?}"),
    };
    id >> 32
}

#[test]
fn a_restart_loses_nothing_the_other_side_queued() {
    for seed in 0..10 {
        restart_b(seed, LOSSY, 100 + 37 * seed as usize, false);
    }
    for seed in 0..3 {
        restart_b(50 + seed, Faults::default(), 300, false);
    }
}

#[test]
fn a_clean_restart_duplicates_nothing() {
    for seed in 0..5 {
        restart_b(200 + seed, LOSSY, 250, true);
    }
}

fn index_of(msg: &LinkMessage) -> usize {
    let id = match msg {
        LinkMessage::Metric { job_id, .. } | LinkMessage::Lost { job_id } | LinkMessage::Start { job_id, .. } => {
            *job_id
        }
        LinkMessage::Log(chunk) => chunk.job_id,
        other => panic!("unexpected {other:?}"),
    };
    (id & 0xffff_ffff) as usize
}

#[test]
fn restarts_in_a_row() {
    let config = Config::default();
    let n = 400;
    let mut a = Side::new(1, config, 1, n);
    let mut net = Net::new(LOSSY, 9);
    // What the successive incarnations of b got, merged.
    let mut merged: Vec<LinkMessage> = Vec::new();
    for round in 0..5u64 {
        let mut b = Side::new(100 + round, config, 2 + round, 0);
        net.ab.barrier();
        let last = round == 4;
        net.run_until(&mut a, &mut b, 100_000, |a, b| {
            if last { a.done_sending() } else { b.got.len() >= 60 }
        });
        // This b continues the stream, possibly from a little before
        // where the previous one stopped (its unacknowledged tail), never
        // after (a gap).
        let first = b.got.first().map_or(merged.len(), index_of);
        assert!(first <= merged.len(), "round {round}: a gap");
        assert_eq!(b.got, messages(1, first..first + b.got.len()), "round {round}");
        merged.truncate(first);
        merged.append(&mut b.got);
    }
    assert_eq!(merged, messages(1, 0..n));
    assert_eq!(a.hellos, [100, 101, 102, 103, 104]);
    assert_eq!(a.ep.stats().peer_restarts, 4);
}

#[test]
fn a_full_window_is_backpressure() {
    let config = Config {
        window: 4,
        retransmit_ms: 100,
    };
    let mut a = Side::new(1, config, 1, 0);
    let mut b = Side::new(2, config, 2, 0);
    for i in 0..4 {
        a.ep.send(message(1, i)).unwrap();
    }
    assert_eq!(a.ep.send(message(1, 4)), Err(Full));
    assert!(!a.ep.has_room());
    assert_eq!(a.ep.queued(), 4);
    // Sending by reference keeps the message for a retry.
    let kept = message(1, 4);
    assert_eq!(a.ep.send(&kept), Err(Full));
    // No peer: only the announcement goes out, nothing grows.
    let mut frames = 0;
    for t in 0..10 {
        a.ep.poll_transmit(t * 1_000, |_| frames += 1);
    }
    assert_eq!(frames, 10);
    assert_eq!(a.ep.stats().sent, 0);
    // A peer acknowledges: room again.
    let mut net = Net::new(Faults::default(), 3);
    net.run_until(&mut a, &mut b, 1_000, |a, _| a.ep.queued() == 0);
    assert_eq!(b.got, messages(1, 0..4));
    a.ep.send(&kept).unwrap();
    assert_eq!(a.ep.queued(), 1);
}

#[test]
fn throughput_100k_small_messages() {
    let config = Config::default();
    let mut a = Endpoint::new(1, config);
    let mut b = Endpoint::new(2, config);
    let mut split_a = Box::new(LinkSplitter::new());
    let mut split_b = Box::new(LinkSplitter::new());
    let mut ab: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut ba: Vec<u8> = Vec::with_capacity(1 << 16);
    let total = 100_000u64;
    let (mut sent, mut got) = (0u64, 0u64);
    let started = std::time::Instant::now();
    let mut now = 0;
    while got < total {
        while sent < total && a.has_room() {
            a.send(LinkMessage::Lost { job_id: sent }).unwrap();
            sent += 1;
        }
        a.poll_transmit(now, |f| ab.extend_from_slice(f));
        split_b.push(&ab, |f| match b.receive(f, now) {
            Some(LinkMessage::Lost { job_id }) => {
                assert_eq!(job_id, got);
                got += 1;
            }
            Some(LinkMessage::Hello { .. }) | None => {}
            Some(other) => panic!("{other:?}"),
        });
        ab.clear();
        b.poll_transmit(now, |f| ba.extend_from_slice(f));
        split_a.push(&ba, |f| {
            assert!(a.receive(f, now).is_none_or(|m| matches!(m, LinkMessage::Hello { .. })))
        });
        ba.clear();
        now += 1;
    }
    let elapsed = started.elapsed();
    std::println!("100k messages in {elapsed:?}");
    let s = a.stats();
    assert_eq!(s.sent, total + 1, "{s:?}");
    assert_eq!(s.resent, 0);
    // One buffer per window slot (plus the Hello), reused ever after; the
    // wire buffers never grew past their first size.
    assert!(s.buffers_allocated <= config.window as u64 + 2, "{s:?}");
    assert_eq!(ab.capacity(), 1 << 16);
    assert_eq!(b.stats().delivered, total + 1);
}

fn frame_bytes(frame: &Frame) -> Vec<u8> {
    let mut out = std::vec![0u8; aether_abi::link::FRAME_MAX];
    let n = encode_frame(frame, &mut out).unwrap();
    out.truncate(n - 1);
    out
}

fn hello(version: u32, incarnation: u64, peer: Option<u64>, seq: u32) -> Vec<u8> {
    frame_bytes(&Frame {
        seq,
        ack: 0,
        msg: LinkMessage::Hello {
            version,
            incarnation,
            peer,
        },
    })
}

#[test]
fn a_version_mismatch_is_reported_and_nothing_is_exchanged() {
    let mut ep = Endpoint::new(1, Config::default());
    assert_eq!(ep.receive(&hello(LINK_VERSION + 1, 2, None, 0), 5), None);
    assert_eq!(ep.receive(&hello(LINK_VERSION + 1, 2, Some(1), 1), 5), None);
    assert_eq!(ep.stats().version_mismatch, 2);
    assert_eq!(ep.peer_version_mismatch(), Some(LINK_VERSION + 1));
    assert_eq!(ep.peer(), None);
    // Still announcing, nothing numbered.
    let mut frames = Vec::new();
    ep.poll_transmit(1_000, |f| frames.push(f.to_vec()));
    assert_eq!(frames.len(), 1);
    assert_eq!(ep.stats().sent, 0);
}

#[test]
fn hellos_for_another_incarnation_are_stale() {
    let mut ep = Endpoint::new(1, Config::default());
    // A session Hello meant for our previous incarnation (0x99).
    assert_eq!(ep.receive(&hello(LINK_VERSION, 2, Some(0x99), 1), 0), None);
    assert_eq!(ep.stats().dropped_stale, 1);
    assert_eq!(ep.peer(), None);
    // Numbered frames before a session are dropped, not delivered.
    let lost = frame_bytes(&Frame {
        seq: 2,
        ack: 0,
        msg: LinkMessage::Lost { job_id: 1 },
    });
    assert_eq!(ep.receive(&lost, 0), None);
    assert_eq!(ep.stats().dropped_no_session, 1);
    // The announcement teaches us the peer; its session Hello opens the
    // session and is delivered once; then frame 2 is.
    assert_eq!(ep.receive(&hello(LINK_VERSION, 2, None, 0), 0), None);
    assert_eq!(ep.peer(), Some(2));
    let session = hello(LINK_VERSION, 2, Some(1), 1);
    assert!(matches!(
        ep.receive(&session, 0),
        Some(LinkMessage::Hello { incarnation: 2, .. })
    ));
    assert_eq!(ep.receive(&session, 0), None);
    assert_eq!(ep.stats().dropped_duplicate, 1);
    assert_eq!(ep.receive(&lost, 0), Some(LinkMessage::Lost { job_id: 1 }));
    assert_eq!(ep.receive(&lost, 0), None);
    // Garbage is counted as bad.
    assert_eq!(ep.receive(&[1, 2, 3], 0), None);
    assert_eq!(ep.receive(&[], 0), None);
    assert_eq!(ep.stats().dropped_bad, 2);
    // Our reply: our session Hello (acking 2) first.
    let mut frames = Vec::new();
    ep.poll_transmit(0, |f| frames.push(f.to_vec()));
    assert_eq!(frames.len(), 1);
    let mut scratch = std::vec![0u8; aether_abi::link::RAW_FRAME_MAX];
    let f = frames[0].as_slice();
    let frame = aether_abi::link::decode_frame(&f[..f.len() - 1], &mut scratch).unwrap();
    assert_eq!(
        frame,
        Frame {
            seq: 1,
            ack: 2,
            msg: LinkMessage::Hello {
                version: LINK_VERSION,
                incarnation: 1,
                peer: Some(2),
            }
        }
    );
}

#[test]
fn duplicate_acks_resend_the_window_before_the_timer() {
    let config = Config {
        window: 16,
        retransmit_ms: 10_000,
    };
    let mut a = Side::new(1, config, 1, 0);
    let mut b = Side::new(2, config, 2, 0);
    let mut net = Net::new(Faults::default(), 1);
    // Connect (the timer never fires: the clock stays far below it).
    net.run_until(&mut a, &mut b, 100, |a, b| a.ep.is_connected() && b.ep.is_connected());
    a.total = 10;
    a.produce();
    let mut frames = Vec::new();
    a.ep.poll_transmit(net.now, |f| frames.push(f.to_vec()));
    assert_eq!(frames.len(), 10);
    // The third is lost; after each later one b acks (the same value).
    let mut acks = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        if i == 2 {
            continue;
        }
        if let Some(m) = b.ep.receive(&f[..f.len() - 1], net.now) {
            b.got.push(m);
        }
        b.ep.poll_transmit(net.now, |f| acks.push(f.to_vec()));
    }
    assert_eq!(b.got.len(), 2);
    assert_eq!(b.ep.stats().dropped_out_of_order, 7);
    for f in &acks {
        assert_eq!(a.ep.receive(&f[..f.len() - 1], net.now), None);
    }
    assert_eq!(a.ep.stats().fast_retransmits, 1);
    // Resent at once (oldest first), no timer needed.
    let mut resent = Vec::new();
    a.ep.poll_transmit(net.now, |f| resent.push(f.to_vec()));
    assert_eq!(resent.len(), 8);
    for f in &resent {
        if let Some(m) = b.ep.receive(&f[..f.len() - 1], net.now) {
            b.got.push(m);
        }
    }
    assert_eq!(b.got, messages(1, 0..10));
}

#[test]
fn unacknowledged_frames_are_resent_when_their_timer_expires() {
    let config = Config {
        window: 8,
        retransmit_ms: 200,
    };
    let mut a = Side::new(1, config, 1, 0);
    let mut b = Side::new(2, config, 2, 0);
    let mut net = Net::new(Faults::default(), 2);
    net.run_until(&mut a, &mut b, 100, |a, b| a.ep.is_connected() && b.ep.is_connected());
    a.total = 3;
    a.produce();
    let t = net.now;
    let mut first = 0;
    a.ep.poll_transmit(t, |_| first += 1);
    assert_eq!(first, 3);
    // Nothing is due before the timer, everything after it.
    let mut again = 0;
    a.ep.poll_transmit(t + 199, |_| again += 1);
    assert_eq!(again, 0);
    a.ep.poll_transmit(t + 200, |_| again += 1);
    assert_eq!(again, 3);
    assert_eq!(a.ep.stats().resent, 3);
}

#[test]
#[should_panic(expected = "sent by the link itself")]
fn ack_is_not_an_application_message() {
    let mut ep = Endpoint::new(1, Config::default());
    let _ = ep.send(LinkMessage::Ack);
}

#[test]
fn config_is_clamped() {
    let ep = Endpoint::new(
        1,
        Config {
            window: 0,
            retransmit_ms: 0,
        },
    );
    assert_eq!(
        ep.config(),
        Config {
            window: 1,
            retransmit_ms: 1
        }
    );
    let ep = Endpoint::new(
        1,
        Config {
            window: usize::MAX,
            retransmit_ms: 5,
        },
    );
    assert_eq!(ep.config().window, WINDOW_MAX);
}

#[test]
fn wires_are_idle_after_an_exchange() {
    // After everything is acknowledged the endpoints fall silent (no
    // frames beyond the last acks).
    let (mut a, mut b) = exchange(LOSSY, 5, 200, Config::default());
    let mut net = Net::new(Faults::default(), 5);
    for _ in 0..5 {
        net.step(&mut a, &mut b);
    }
    let mut frames = 0;
    a.ep.poll_transmit(net.now + 100_000, |_| frames += 1);
    b.ep.poll_transmit(net.now + 100_000, |_| frames += 1);
    assert_eq!(frames, 0);
    assert!(net.ab.idle() && net.ba.idle());
}
