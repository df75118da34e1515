//! (being written: docs/telemetry.md)
