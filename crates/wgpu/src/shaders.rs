//! The WGSL sources in the repository's shaders/ folder.
//!
//! They are compiled into the binary; `TESSERA_WGPU_SHADER_DIR` makes the
//! backend read them from a folder at run time instead, so that a kernel
//! can be edited and rerun without rebuilding.

use tessera_tensor::{Error, Result};

const SOURCES: &[(&str, &str)] = &[
    ("common", include_str!("../../../shaders/common.wgsl")),
    ("map", include_str!("../../../shaders/map.wgsl")),
    ("fill", include_str!("../../../shaders/fill.wgsl")),
    ("elementwise", include_str!("../../../shaders/elementwise.wgsl")),
    ("math", include_str!("../../../shaders/math.wgsl")),
    ("im2col", include_str!("../../../shaders/im2col.wgsl")),
    ("reduce", include_str!("../../../shaders/reduce.wgsl")),
    ("argreduce", include_str!("../../../shaders/argreduce.wgsl")),
    ("scan", include_str!("../../../shaders/scan.wgsl")),
    ("sort", include_str!("../../../shaders/sort.wgsl")),
    ("matmul", include_str!("../../../shaders/matmul.wgsl")),
    ("matmul_rt", include_str!("../../../shaders/matmul_rt.wgsl")),
    ("epilogue", include_str!("../../../shaders/epilogue.wgsl")),
    ("norm", include_str!("../../../shaders/norm.wgsl")),
    ("group_shared", include_str!("../../../shaders/group_shared.wgsl")),
    ("group_subgroup", include_str!("../../../shaders/group_subgroup.wgsl")),
    ("rope", include_str!("../../../shaders/rope.wgsl")),
    ("attention", include_str!("../../../shaders/attention.wgsl")),
];

/// The source of `shaders/<name>.wgsl`.
pub fn load(name: &str) -> Result<String> {
    if let Ok(dir) = std::env::var("TESSERA_WGPU_SHADER_DIR") {
        let path = std::path::Path::new(&dir).join(format!("{name}.wgsl"));
        return std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.display().to_string(), source });
    }
    SOURCES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s.to_string())
        .ok_or_else(|| Error::Device { device: "wgpu".into(), msg: format!("no kernel file shaders/{name}.wgsl") })
}
