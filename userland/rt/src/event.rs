//! The event bus (`EVENT`, `aether_abi::event`): reading events from
//! where this process is, and publishing (the `JOB` server only).

use aether_abi::event::{BODY_POSTCARD_MAX, EVENT_READ, EventBody};
use aether_abi::syscall::{self as abi, Errno, nr};

use crate::sys::raw;

/// Publishes `body` (the `JOB` server only, else `NotPermitted`): its id.
pub fn publish(body: &EventBody) -> Result<u64, Errno> {
    let mut buf = [0u8; BODY_POSTCARD_MAX];
    let bytes = abi::encode(body, &mut buf)?;
    // SAFETY: `bytes` is readable for its length; the kernel only reads it.
    let (ret, _) = unsafe { raw(nr::EVENT, [bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0, 0]) };
    Errno::from_ret(ret)
}

/// Reads the events with ids above `after` into `buf` (whole records:
/// `aether_abi::event::records` walks them), waiting until there is one
/// or `deadline_ns` passes (0: do not wait): `(bytes, oldest id kept)`.
/// 0 bytes: none came. `ResponseTooSmall`: the next event does not fit.
pub fn read(buf: &mut [u8], after: u64, deadline_ns: u64) -> Result<(usize, u64), Errno> {
    let args = [
        buf.as_mut_ptr() as u64,
        buf.len() as u64,
        EVENT_READ,
        after,
        deadline_ns,
        0,
    ];
    // SAFETY: `buf` is writable for its length.
    let (ret, oldest) = unsafe { raw(nr::EVENT, args) };
    Errno::from_ret(ret).map(|n| (n as usize, oldest))
}
