//! Library side of the `tessera` command: the benchmark harness shared by
//! `tessera bench` and the repository's benches, its roofline plot,
//! `tessera clip`, `tessera blip2`, `tessera janus`, `tessera mmada` and
//! `tessera convert`.

pub mod bench;
pub mod blip2;
pub mod blip2_bench;
pub mod clip;
pub mod convert;
pub mod info;
pub mod janus;
pub mod janus_bench;
pub mod mmada;
pub mod mmada_bench;
pub mod roofline;
pub mod ui;
