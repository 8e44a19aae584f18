//! Library side of the `tessera` command: the benchmark harness shared by
//! `tessera bench` and the repository's benches.

pub mod bench;
pub mod info;
