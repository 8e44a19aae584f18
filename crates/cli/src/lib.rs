//! Library side of the `tessera` command: the benchmark harness shared by
//! `tessera bench` and the repository's benches, its roofline plot, and
//! `tessera clip`.

pub mod bench;
pub mod clip;
pub mod info;
pub mod roofline;
