//! Emitting metric points (`METRIC`, `aether_abi::metric`): the kernel
//! checks every point, stamps it with this process, its group and the
//! time, and keeps it for opsd. Also the drain, which only opsd (the `JOB`
//! server) may call.

use core::fmt;

use aether_abi::metric::{
    EMIT_BYTES_MAX, EMIT_POINTS_MAX, METRIC_DRAIN, MetricError, MetricPoint, POINT_POSTCARD_MAX, encode_batch,
    parse_emit_fault,
};
use aether_abi::syscall::{Errno, nr};
use alloc::vec;

use crate::sys::raw;

/// Why an emit kept nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitError {
    /// Point `index` failed a check (`Errno::BadMetric`).
    BadMetric { index: usize, error: MetricError },
    /// Point `index` did not decode (`Errno::BadFrame`; [`emit`] encodes
    /// with the ABI's own code, so only [`emit_encoded`] sees this).
    BadFrame { index: usize },
    /// Any other refusal: `TooLarge` (over [`EMIT_BYTES_MAX`] bytes or
    /// [`EMIT_POINTS_MAX`] points), `LimitReached` (the kernel's buffer is
    /// full: nothing kept, emit again later), `BadAddress`, `NoMemory`,
    /// `InvalidArgument` (no points).
    Refused(Errno),
}

impl EmitError {
    pub fn errno(&self) -> Errno {
        match self {
            EmitError::BadMetric { .. } => Errno::BadMetric,
            EmitError::BadFrame { .. } => Errno::BadFrame,
            EmitError::Refused(e) => *e,
        }
    }
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::BadMetric { index, error } => write!(f, "point {index}: {error}"),
            EmitError::BadFrame { index } => write!(f, "point {index} does not decode"),
            EmitError::Refused(e) => write!(f, "{}", e.as_str()),
        }
    }
}

/// Emits `points` in one call (all or nothing): how many were accepted.
/// No points: `Ok(0)` without a call.
pub fn emit(points: &[MetricPoint]) -> Result<usize, EmitError> {
    if points.is_empty() {
        return Ok(0);
    }
    if points.len() > EMIT_POINTS_MAX {
        return Err(EmitError::Refused(Errno::TooLarge));
    }
    let too_large = EmitError::Refused(Errno::TooLarge);
    // One buffer for every batch: allocating and zeroing 64 KiB a call cost
    // more than the kernel's work for 256 points under TCG.
    let Some(mut buf) = BATCH.try_lock() else {
        let mut buf = vec![0u8; (points.len() * POINT_POSTCARD_MAX).min(EMIT_BYTES_MAX)];
        let n = encode_batch(points, &mut buf).ok_or(too_large)?;
        return emit_encoded(&buf[..n]);
    };
    let n = encode_batch(points, &mut buf[..]).ok_or(too_large)?;
    emit_encoded(&buf[..n])
}

/// The encoding buffer of [`emit`] (in `.bss`: mapped at its first use).
static BATCH: spin::Mutex<[u8; EMIT_BYTES_MAX]> = spin::Mutex::new([0; EMIT_BYTES_MAX]);

/// Emits points already encoded back to back (postcard, as
/// [`encode_batch`] writes them): how many were accepted.
pub fn emit_encoded(bytes: &[u8]) -> Result<usize, EmitError> {
    // SAFETY: `bytes` is readable for its length; the kernel only reads it.
    let (ret, rdx) = unsafe { raw(nr::METRIC, [bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0, 0]) };
    match Errno::from_ret(ret) {
        Ok(n) => Ok(n as usize),
        Err(Errno::BadMetric) => match parse_emit_fault(rdx) {
            Some((index, error)) => Err(EmitError::BadMetric { index, error }),
            None => Err(EmitError::Refused(Errno::BadMetric)),
        },
        Err(Errno::BadFrame) => Err(EmitError::BadFrame { index: rdx as usize }),
        Err(e) => Err(EmitError::Refused(e)),
    }
}

/// Moves waiting points into `buf` (the `JOB` server only, else
/// `NotPermitted`): `(bytes, points refused since the last drain)`. The
/// bytes are whole records (`aether_abi::metric::drained` walks them).
pub fn drain(buf: &mut [u8]) -> Result<(usize, u64), Errno> {
    // SAFETY: `buf` is writable for its length.
    let (ret, dropped) = unsafe {
        raw(
            nr::METRIC,
            [buf.as_mut_ptr() as u64, buf.len() as u64, METRIC_DRAIN, 0, 0, 0],
        )
    };
    Errno::from_ret(ret).map(|n| (n as usize, dropped))
}
