//! `tessera info`: the devices found and their properties.

use std::fmt::Write;
use tessera_tensor::all_devices;

/// A report of every reachable device, and of providers that failed.
pub fn report() -> String {
    let (devices, errors) = all_devices();
    let mut out = String::new();
    for d in &devices {
        let info = d.info();
        let _ = writeln!(out, "{}: {}", info.name, info.description);
        for (k, v) in &info.properties {
            let _ = writeln!(out, "    {k:<10} {v}");
        }
    }
    for (kind, e) in &errors {
        let _ = writeln!(out, "{kind}: unavailable: {e}");
    }
    out
}
