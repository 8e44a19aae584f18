//! Library side of the `tessera` command: the benchmark harness shared by
//! `tessera bench` and the repository's benches, its roofline plot,
//! `tessera clip` and `tessera blip2`.

pub mod bench;
pub mod blip2;
pub mod blip2_bench;
pub mod clip;
pub mod info;
pub mod roofline;
pub mod ui;
