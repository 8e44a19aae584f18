//! `tessera info`: the devices found and their properties.

use std::fmt::Write;
use tessera_tensor::{all_devices, Device, Error};

/// A report of every reachable device, and of providers that failed (a GPU
/// backend built in that found no device says why and what to install).
pub fn report() -> String {
    let (devices, errors) = all_devices();
    render(&devices, &errors)
}

/// The report of `devices` and of the `(kind, error)` of each provider that
/// found none.
fn render(devices: &[Device], errors: &[(String, Error)]) -> String {
    let mut out = String::new();
    for d in devices {
        let info = d.info();
        let _ = writeln!(out, "{}: {}", info.name, info.description);
        for (k, v) in &info.properties {
            let _ = writeln!(out, "    {k:<10} {v}");
        }
    }
    for (kind, e) in errors {
        // A provider's device error already names the device kind.
        let why = match e {
            Error::Device { msg, .. } => msg.clone(),
            other => other.to_string(),
        };
        let _ = writeln!(out, "{kind}: unavailable: {why}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_without_devices_says_why_on_one_line() {
        let errors = vec![
            ("wgpu".to_string(), Error::Device { device: "wgpu".into(), msg: "no GPU adapter found: install a Vulkan driver".into() }),
            ("cuda".to_string(), Error::InvalidArgument { op: "cuda", msg: "something else".into() }),
        ];
        let report = render(&[Device::cpu()], &errors);
        let lines: Vec<&str> = report.lines().collect();
        assert!(lines[0].starts_with("cpu"), "{report}");
        assert!(lines.contains(&"wgpu: unavailable: no GPU adapter found: install a Vulkan driver"), "{report}");
        let cuda = lines.iter().find(|l| l.starts_with("cuda: unavailable: ")).expect("a cuda line");
        assert!(cuda.contains("something else"), "{report}");
    }
}
