//! The host bridge (docs/jobs.md). Being written.
fn main() {}
