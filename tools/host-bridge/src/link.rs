//! The bridge's end of the link: an [`aether_link::Endpoint`] moved over the
//! two byte rings of the shared region (docs/jobs.md, "The link").
//!
//! [`LinkPump::poll`] does one round: bytes of the inbound ring into a
//! [`LinkSplitter`] and each frame into [`Endpoint::receive`] (the messages
//! it delivers are returned), then the frames of [`Endpoint::poll_transmit`]
//! into the outbound ring. A full ring is backpressure: what did not fit
//! stays in a pending buffer and is written on the next poll, and no new
//! frames are taken from the endpoint until that buffer is empty, so it
//! holds at most one `poll_transmit` worth of frames (bounded by the
//! endpoint's window). The endpoint's retransmit timer covers frames that
//! wait there. Time is passed in (ms, from any origin that does not go
//! backwards).
//!
//! The same pump plays either side ([`Side`]): the bridge is the host, the
//! tests play the guest with a second pump over the same file.

use aether_abi::link::{LinkMessage, LinkSplitter};
use aether_abi::shm_ring::{self, Consumer, Direction, Producer, RingError};
use aether_link::{Config, Endpoint, Full, Stats};

use crate::shm::ShmRegion;

/// Most bytes read from the inbound ring in one poll (the rest waits: the
/// caller gets to handle what was delivered first).
const READ_PER_POLL: usize = 256 * 1024;

/// Which end of the rings this pump is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Reads ring 0 (guest -> host), writes ring 1.
    Host,
    /// Reads ring 1, writes ring 0 (tests playing opsd).
    Guest,
}

/// Moves an endpoint's frames over the shared region.
pub struct LinkPump {
    region: ShmRegion,
    side: Side,
    /// Set once the region is laid out (`shm_ring::attach` succeeded).
    rings: Option<(Producer, Consumer)>,
    endpoint: Endpoint,
    splitter: Box<LinkSplitter>,
    /// Encoded frames waiting for room in the outbound ring.
    pending: Vec<u8>,
    rx_buf: Vec<u8>,
    /// Messages handed to `send` so far (see [`LinkPump::acked`]).
    pushed: u64,
    ring_errors: u64,
}

impl LinkPump {
    /// A pump over `region`; `incarnation` must be new at every start (the
    /// bridge uses its start time in ms).
    pub fn new(region: ShmRegion, side: Side, incarnation: u64, config: Config) -> LinkPump {
        LinkPump {
            region,
            side,
            rings: None,
            endpoint: Endpoint::new(incarnation, config),
            splitter: Box::new(LinkSplitter::new()),
            // A 0 first: if an earlier incarnation died in the middle of a
            // frame, the peer's splitter ends that fragment here instead of
            // gluing it to our first frame.
            pending: vec![0],
            rx_buf: vec![0; 64 * 1024],
            pushed: 0,
            ring_errors: 0,
        }
    }

    /// The host's pump with the default link configuration.
    pub fn host(region: ShmRegion, incarnation: u64) -> LinkPump {
        LinkPump::new(region, Side::Host, incarnation, Config::default())
    }

    /// The guest side (rings laid out by the guest: see
    /// [`shm_ring::initialise`]; tests call it on their mapping).
    pub fn guest(region: ShmRegion, incarnation: u64) -> LinkPump {
        LinkPump::new(region, Side::Guest, incarnation, Config::default())
    }

    pub fn region(&self) -> &ShmRegion {
        &self.region
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn stats(&self) -> Stats {
        self.endpoint.stats()
    }

    /// Both sessions are open (handshake done).
    pub fn is_connected(&self) -> bool {
        self.endpoint.is_connected()
    }

    /// The rings have been found laid out.
    pub fn is_attached(&self) -> bool {
        self.rings.is_some()
    }

    /// Whether `send` would take a message now.
    pub fn has_room(&self) -> bool {
        self.endpoint.has_room()
    }

    /// Ring errors seen (a peer's corrupt counters); the pump re-attaches.
    pub fn ring_errors(&self) -> u64 {
        self.ring_errors
    }

    /// Queues a message; `Ok(n)`: it is the `n`-th message sent by this
    /// pump (1-based), acknowledged once [`LinkPump::acked`] reaches `n`.
    pub fn send(&mut self, msg: &LinkMessage) -> Result<u64, Full> {
        self.endpoint.send(msg)?;
        self.pushed += 1;
        Ok(self.pushed)
    }

    /// How many of the messages sent have been acknowledged by the peer:
    /// the endpoint keeps unacknowledged messages in order and drops them
    /// only when acknowledged, so the first `pushed - queued` are.
    pub fn acked(&self) -> u64 {
        self.pushed - self.endpoint.queued() as u64
    }

    /// Bytes waiting for room in the outbound ring.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    /// One round of I/O at `now_ms`; the messages delivered, in order (the
    /// peer's session Hello included). Before the peer has laid out the
    /// region this does nothing.
    pub fn poll(&mut self, now_ms: u64) -> Vec<LinkMessage> {
        let mut delivered = Vec::new();
        let Some((tx, rx)) = self.attach() else {
            return delivered;
        };
        if self.pump(tx, rx, now_ms, &mut delivered).is_err() {
            // The peer's counters are inconsistent (a restart in the middle
            // of re-initialising): attach again next time.
            self.ring_errors += 1;
            self.rings = None;
            self.splitter.clear();
        }
        delivered
    }

    fn attach(&mut self) -> Option<(Producer, Consumer)> {
        if self.rings.is_none() {
            let size = shm_ring::attach(&self.region).ok()?;
            let (out, inn) = match self.side {
                Side::Host => (Direction::HostToGuest, Direction::GuestToHost),
                Side::Guest => (Direction::GuestToHost, Direction::HostToGuest),
            };
            self.rings = Some((Producer::new(out, size), Consumer::new(inn, size)));
        }
        self.rings
    }

    fn pump(
        &mut self,
        tx: Producer,
        rx: Consumer,
        now_ms: u64,
        delivered: &mut Vec<LinkMessage>,
    ) -> Result<(), RingError> {
        let mut read = 0;
        while read < READ_PER_POLL {
            let n = rx.read(&self.region, &mut self.rx_buf)?;
            if n == 0 {
                break;
            }
            read += n;
            let endpoint = &mut self.endpoint;
            self.splitter.push(&self.rx_buf[..n], |frame| {
                if let Some(msg) = endpoint.receive(frame, now_ms) {
                    delivered.push(msg);
                }
            });
        }
        self.flush(tx)?;
        if self.pending.is_empty() {
            let pending = &mut self.pending;
            self.endpoint
                .poll_transmit(now_ms, |frame| pending.extend_from_slice(frame));
            self.flush(tx)?;
        }
        Ok(())
    }

    fn flush(&mut self, tx: Producer) -> Result<(), RingError> {
        if !self.pending.is_empty() {
            let n = tx.write(&self.region, &self.pending)?;
            self.pending.drain(..n);
        }
        Ok(())
    }
}
