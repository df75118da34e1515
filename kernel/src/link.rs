//! The guest side of the link's transport (docs/jobs.md, "The link"): the
//! `ivshmem` region, laid out by `aether_abi::shm_ring`, ring 0 carrying
//! bytes to the host and ring 1 bytes from it. Framing, sequence numbers
//! and retransmission sit above, in opsd (`aether-link`). Without the
//! device (plain `cargo test` runs, other machines) there is no link.

use aether_abi::shm_ring::{self, Consumer, Direction, Producer, RingError};
use spin::Once;

use crate::arch::ivshmem::{self, IvshmemError, Region};

struct Link {
    region: Region,
    tx: Producer,
    rx: Consumer,
}

static LINK: Once<Option<Link>> = Once::new();

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// No ivshmem device: this machine has no link.
    Absent,
    Ring(RingError),
}

/// Looks for the device and lays out the rings (once, at boot).
pub fn init() {
    LINK.call_once(|| match ivshmem::probe() {
        Ok(region) => match shm_ring::initialise(&region) {
            Ok(size) => {
                log::info!("ivshmem, two {} KiB rings", size / 1024);
                Some(Link {
                    region,
                    tx: Producer::new(Direction::GuestToHost, size),
                    rx: Consumer::new(Direction::HostToGuest, size),
                })
            }
            Err(e) => {
                log::error!("ivshmem region unusable: {e}");
                None
            }
        },
        Err(IvshmemError::NoDevice) => None,
        Err(e) => {
            log::error!("ivshmem device unusable: {e:?}");
            None
        }
    });
}

fn link() -> Result<&'static Link, LinkError> {
    LINK.get().and_then(|l| l.as_ref()).ok_or(LinkError::Absent)
}

/// Whether this machine has a link.
pub fn present() -> bool {
    link().is_ok()
}

/// Queues bytes for the host; how many fitted (0: the ring is full).
pub fn write(bytes: &[u8]) -> Result<usize, LinkError> {
    let l = link()?;
    l.tx.write(&l.region, bytes).map_err(LinkError::Ring)
}

/// Takes bytes the host sent; how many (0: none waiting).
pub fn read(buf: &mut [u8]) -> Result<usize, LinkError> {
    let l = link()?;
    l.rx.read(&l.region, buf).map_err(LinkError::Ring)
}
