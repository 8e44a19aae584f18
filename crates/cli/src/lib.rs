//! Library side of the `tessera` command: the benchmark harness shared by
//! `tessera bench` and the repository's benches, and `tessera clip`.

pub mod bench;
pub mod clip;
pub mod info;
