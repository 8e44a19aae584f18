//! Adapter and device selection.
//!
//! `TESSERA_WGPU_ADAPTER` picks the adapter: an index into the list that
//! `tessera info` prints, or a case-insensitive part of the adapter's name
//! (e.g. `llvmpipe`, `nvidia`). wgpu's own `WGPU_BACKEND` (vulkan, metal,
//! dx12) narrows the APIs searched. Without them every compute-capable
//! adapter becomes a device, discrete GPUs first.

use tessera_tensor::{Error, Result};

/// The features Tessera uses when the adapter has them; none is required.
pub fn wanted_features(adapter: &wgpu::Adapter) -> wgpu::Features {
    let want = wgpu::Features::SHADER_F16
        | wgpu::Features::SUBGROUP
        | wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS;
    adapter.features() & want
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

fn rank(info: &wgpu::AdapterInfo) -> u32 {
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// The adapters to expose, in device-index order, after the
/// `TESSERA_WGPU_ADAPTER` choice; an error saying what to install when
/// there is none.
pub fn adapters() -> Result<Vec<wgpu::Adapter>> {
    let instance = instance();
    let (mut all, without_compute): (Vec<wgpu::Adapter>, Vec<wgpu::Adapter>) =
        pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
            .into_iter()
            .partition(|a| a.get_downlevel_capabilities().flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS));
    if all.is_empty() {
        let names: Vec<String> = without_compute.iter().map(|a| a.get_info().name).collect();
        let why = no_adapter_message(&names);
        let msg = match std::env::var("TESSERA_WGPU_ADAPTER") {
            Ok(choice) => format!("TESSERA_WGPU_ADAPTER={choice} matches no adapter: {why}"),
            Err(_) => why,
        };
        return Err(Error::Device { device: "wgpu".into(), msg });
    }
    all.sort_by_key(|a| rank(&a.get_info()));
    // The same GPU can appear through several APIs: keep the first of each name.
    let mut seen = Vec::new();
    all.retain(|a| {
        let name = a.get_info().name;
        let fresh = !seen.contains(&name);
        seen.push(name);
        fresh
    });
    let Ok(choice) = std::env::var("TESSERA_WGPU_ADAPTER") else {
        return Ok(all);
    };
    let names: Vec<String> = all.iter().map(|a| a.get_info().name).collect();
    let picked = match choice.trim().parse::<usize>() {
        Ok(i) => all.into_iter().nth(i),
        Err(_) => {
            let needle = choice.trim().to_lowercase();
            all.into_iter().find(|a| a.get_info().name.to_lowercase().contains(&needle))
        }
    };
    match picked {
        Some(a) => Ok(vec![a]),
        None => Err(Error::Device {
            device: "wgpu".into(),
            msg: format!(
                "TESSERA_WGPU_ADAPTER={choice} matches no adapter (found: {})",
                if names.is_empty() { "none".into() } else { names.join(", ") }
            ),
        }),
    }
}

/// Why no adapter was found (`without_compute`: the adapters that lack
/// compute shaders), and what to install: the Vulkan loader and a driver.
pub fn no_adapter_message(without_compute: &[String]) -> String {
    let found = if without_compute.is_empty() {
        "no GPU adapter found (no Vulkan, Metal, DX12 or GL driver answered)".to_string()
    } else {
        format!("no adapter with compute shaders (found only: {})", without_compute.join(", "))
    };
    let install = if cfg!(target_os = "linux") {
        "install a Vulkan driver: on Debian/Ubuntu `apt-get install mesa-vulkan-drivers libvulkan1` (Mesa, whose lavapipe runs on \
         the CPU), or the GPU vendor's driver; its ICD file must be in /usr/share/vulkan/icd.d"
    } else {
        "install or update the GPU driver"
    };
    let overrides: Vec<String> = ["VK_ICD_FILENAMES", "VK_DRIVER_FILES", "WGPU_BACKEND"]
        .iter()
        .filter_map(|var| std::env::var(var).ok().map(|v| format!("{var}={v}")))
        .collect();
    let overrides =
        if overrides.is_empty() { String::new() } else { format!(" (the environment overrides that search: {})", overrides.join(", ")) };
    format!("{found}: {install}{overrides}")
}

/// Opens a device on `adapter` with the optional features it has and its
/// own limits (storage bindings as large as the adapter allows).
pub fn open(adapter: &wgpu::Adapter, name: &str) -> Result<(wgpu::Device, wgpu::Queue)> {
    let desc = wgpu::DeviceDescriptor {
        label: Some("tessera"),
        required_features: wanted_features(adapter),
        required_limits: adapter.limits(),
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    };
    pollster::block_on(adapter.request_device(&desc))
        .map_err(|e| Error::Device { device: name.into(), msg: format!("could not open the adapter '{}': {e}", adapter.get_info().name) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_no_adapter_message_says_what_to_install_and_what_was_found() {
        let none = no_adapter_message(&[]);
        assert!(none.starts_with("no GPU adapter found"), "{none}");
        if cfg!(target_os = "linux") {
            for part in ["mesa-vulkan-drivers", "libvulkan1", "lavapipe", "/usr/share/vulkan/icd.d"] {
                assert!(none.contains(part), "{none}");
            }
        }
        let gl = no_adapter_message(&["llvmpipe (GL)".into()]);
        assert!(gl.starts_with("no adapter with compute shaders (found only: llvmpipe (GL))"), "{gl}");
    }
}
