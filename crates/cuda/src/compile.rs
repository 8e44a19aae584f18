//! Kernel sources and their compilation by NVRTC, with an on-disk cache.
//!
//! The kernels are the files in the repository's `kernels/` folder, built
//! into the binary with `include_str!` (they stay real source files). Each is
//! compiled on first use for the device's exact architecture (`sm_80`,
//! `sm_89`, `sm_90a`, ...) to a CUBIN, with `-D` defines for the shape
//! constants a variant specialises (the attention head dim). Results are
//! cached under `$XDG_CACHE_HOME/tessera/cuda` (else `~/.cache/tessera/cuda`):
//! each entry is named by a 128-bit hash of everything that determines the
//! binary (source, shared headers, architecture, options, NVRTC version) and
//! starts with that full key, which is compared on load, so a stale entry is
//! never used. Deleting the folder at any time is safe.
//!
//! NVRTC is loaded at run time (cudarc's dynamic loading). A missing library
//! is an [`Error::Device`] that says where it was looked for, not a panic.

use std::ffi::{c_char, CStr, CString};
use std::path::PathBuf;
use std::sync::OnceLock;
use tessera_tensor::{Error, Result};

use cudarc::nvrtc::sys as nvrtc;

/// `-D` defines of one compilation: (name, value) pairs.
pub type Defines = Vec<(String, String)>;

/// One kernel source file.
#[derive(Clone, Copy, Debug)]
pub struct KernelFile {
    /// File name in `kernels/`, e.g. "matmul.cu".
    pub name: &'static str,
    pub source: &'static str,
    /// The `-D` define sets the backend compiles this file with; a file with
    /// no specialisation has one empty set. The compile checks build each.
    pub variants: fn() -> Vec<Defines>,
}

fn one_variant() -> Vec<Defines> {
    vec![Vec::new()]
}

/// The header every kernel file includes: dtypes, layouts, reductions.
pub const COMMON_HEADER: (&str, &str) = ("common.cuh", include_str!("../../../kernels/common.cuh"));
/// The stable op codes and the device functions that dispatch on them.
pub const OPS_HEADER: (&str, &str) = ("ops.cuh", include_str!("../../../kernels/ops.cuh"));
/// Every header a kernel file may include, by include name.
pub const HEADERS: [(&str, &str); 2] = [COMMON_HEADER, OPS_HEADER];

pub const ELEMENTWISE: KernelFile =
    KernelFile { name: "elementwise.cu", source: include_str!("../../../kernels/elementwise.cu"), variants: one_variant };
pub const REDUCE: KernelFile = KernelFile { name: "reduce.cu", source: include_str!("../../../kernels/reduce.cu"), variants: one_variant };
pub const INDEX: KernelFile = KernelFile { name: "index.cu", source: include_str!("../../../kernels/index.cu"), variants: one_variant };
pub const NORM: KernelFile = KernelFile { name: "norm.cu", source: include_str!("../../../kernels/norm.cu"), variants: one_variant };
pub const MATMUL: KernelFile = KernelFile { name: "matmul.cu", source: include_str!("../../../kernels/matmul.cu"), variants: one_variant };
pub const ATTENTION: KernelFile = KernelFile {
    name: "attention.cu",
    source: include_str!("../../../kernels/attention.cu"),
    variants: crate::ops::attention::compiled_variants,
};

/// Every kernel file of the backend.
pub const KERNEL_FILES: [KernelFile; 6] = [ELEMENTWISE, REDUCE, INDEX, NORM, MATMUL, ATTENTION];

/// A GPU architecture, from its compute capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Arch {
    pub major: u32,
    pub minor: u32,
}

impl Arch {
    pub const SM80: Arch = Arch { major: 8, minor: 0 };
    pub const SM90: Arch = Arch { major: 9, minor: 0 };

    /// `sm_XY`; Hopper (9.0) gets the architecture-specific `sm_90a`, which
    /// allows its full instruction set.
    pub fn sm(self) -> String {
        format!("sm_{}{}{}", self.major, self.minor, self.suffix())
    }
    /// `compute_XY` (the virtual architecture, for PTX output).
    pub fn compute(self) -> String {
        format!("compute_{}{}{}", self.major, self.minor, self.suffix())
    }
    fn suffix(self) -> &'static str {
        if self.major == 9 && self.minor == 0 {
            "a"
        } else {
            ""
        }
    }
}

/// What to produce: machine code for the device, or PTX (for ptxas checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Cubin,
    Ptx,
}

fn nvrtc_error(msg: impl Into<String>) -> Error {
    Error::Device { device: "cuda".into(), msg: msg.into() }
}

/// Loads NVRTC, or says why it cannot be loaded.
pub fn nvrtc_loaded() -> Result<()> {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: is_culib_present only tries to dlopen NVRTC and reports whether
    // it loaded; a panic inside is caught here.
    let present = *PRESENT.get_or_init(|| std::panic::catch_unwind(|| unsafe { nvrtc::is_culib_present() }).unwrap_or(false));
    if present {
        Ok(())
    } else {
        Err(nvrtc_error(
            "the NVRTC library (libnvrtc.so.13) could not be loaded: install the CUDA 13 toolkit or the `nvidia-cuda-nvrtc` \
             Python wheel and put its lib folder on LD_LIBRARY_PATH",
        ))
    }
}

/// NVRTC's version, (major, minor).
pub fn nvrtc_version() -> Result<(i32, i32)> {
    nvrtc_loaded()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: NVRTC is loaded (checked above); the call writes two ints we own.
    check(unsafe { nvrtc::nvrtcVersion(&mut major, &mut minor) }, "nvrtcVersion")?;
    Ok((major, minor))
}

fn check(r: nvrtc::nvrtcResult, what: &str) -> Result<()> {
    if r == nvrtc::nvrtcResult::NVRTC_SUCCESS {
        return Ok(());
    }
    // SAFETY: nvrtcGetErrorString returns null or a static NUL-terminated
    // string, which is copied before anything else runs.
    let msg = unsafe {
        let p = nvrtc::nvrtcGetErrorString(r);
        if p.is_null() {
            format!("{r:?}")
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    Err(nvrtc_error(format!("{what} failed: {msg}")))
}

/// The NVRTC options for `arch` and `defines`.
pub fn options(arch: Arch, output: Output, defines: &[(String, String)]) -> Vec<String> {
    let target = match output {
        Output::Cubin => arch.sm(),
        Output::Ptx => arch.compute(),
    };
    let mut o = vec![format!("--gpu-architecture={target}"), "-std=c++17".to_string(), "-default-device".to_string()];
    o.extend(defines.iter().map(|(k, v)| format!("-D{k}={v}")));
    o
}

/// A compiled kernel file.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// CUBIN bytes, or PTX text with its terminating NUL.
    pub image: Vec<u8>,
    /// NVRTC's log (warnings); empty when there were none.
    pub log: String,
}

/// Compiles `file` with NVRTC (no cache). Errors carry NVRTC's log.
pub fn compile(file: &KernelFile, arch: Arch, output: Output, defines: &[(String, String)]) -> Result<Compiled> {
    nvrtc_loaded()?;
    let src = CString::new(file.source).map_err(|_| nvrtc_error(format!("{} contains a NUL byte", file.name)))?;
    let name = CString::new(file.name).expect("file names have no NUL");
    let names: Vec<CString> = HEADERS.iter().map(|h| CString::new(h.0).expect("no NUL")).collect();
    let texts: Vec<CString> = HEADERS.iter().map(|h| CString::new(h.1).expect("no NUL in a header")).collect();
    let headers: Vec<*const c_char> = texts.iter().map(|t| t.as_ptr()).collect();
    let include_names: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
    let mut prog: nvrtc::nvrtcProgram = std::ptr::null_mut();
    check(
        // SAFETY: `src`, `name` and every header and include name are
        // NUL-terminated strings that outlive the call (NVRTC copies them);
        // `headers` and `include_names` hold HEADERS.len() pointers each.
        unsafe {
            nvrtc::nvrtcCreateProgram(
                &mut prog,
                src.as_ptr(),
                name.as_ptr(),
                HEADERS.len() as i32,
                headers.as_ptr(),
                include_names.as_ptr(),
            )
        },
        "nvrtcCreateProgram",
    )?;
    let result = compile_program(prog, file, arch, output, defines);
    // SAFETY: `prog` was created above and is destroyed once, after its
    // last use by compile_program.
    unsafe { nvrtc::nvrtcDestroyProgram(&mut prog) };
    result
}

fn compile_program(
    prog: nvrtc::nvrtcProgram,
    file: &KernelFile,
    arch: Arch,
    output: Output,
    defines: &[(String, String)],
) -> Result<Compiled> {
    let opts: Vec<CString> = options(arch, output, defines).into_iter().map(|o| CString::new(o).expect("no NUL in options")).collect();
    let ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
    // SAFETY: `prog` is a live program; `ptrs` holds ptrs.len() pointers to
    // NUL-terminated options kept alive by `opts` for the call.
    let status = unsafe { nvrtc::nvrtcCompileProgram(prog, ptrs.len() as i32, ptrs.as_ptr()) };
    let log = program_log(prog);
    if status != nvrtc::nvrtcResult::NVRTC_SUCCESS {
        let defs: Vec<String> = defines.iter().map(|(k, v)| format!("{k}={v}")).collect();
        return Err(nvrtc_error(format!(
            "kernels/{} does not compile for {} (defines [{}]): {:?}\n{log}",
            file.name,
            arch.sm(),
            defs.join(", "),
            status
        )));
    }
    // SAFETY: the program compiled; each buffer is allocated with the size
    // NVRTC just reported for the output it then writes into it.
    let image = unsafe {
        let mut size = 0usize;
        match output {
            Output::Cubin => {
                check(nvrtc::nvrtcGetCUBINSize(prog, &mut size), "nvrtcGetCUBINSize")?;
                let mut buf = vec![0u8; size];
                check(nvrtc::nvrtcGetCUBIN(prog, buf.as_mut_ptr() as *mut c_char), "nvrtcGetCUBIN")?;
                buf
            }
            Output::Ptx => {
                check(nvrtc::nvrtcGetPTXSize(prog, &mut size), "nvrtcGetPTXSize")?;
                let mut buf = vec![0u8; size];
                check(nvrtc::nvrtcGetPTX(prog, buf.as_mut_ptr() as *mut c_char), "nvrtcGetPTX")?;
                buf
            }
        }
    };
    Ok(Compiled { image, log })
}

fn program_log(prog: nvrtc::nvrtcProgram) -> String {
    // SAFETY: `prog` is a live program; the buffer has the size NVRTC
    // reported for the log, NUL included.
    unsafe {
        let mut size = 0usize;
        if nvrtc::nvrtcGetProgramLogSize(prog, &mut size) != nvrtc::nvrtcResult::NVRTC_SUCCESS || size <= 1 {
            return String::new();
        }
        let mut buf = vec![0u8; size];
        if nvrtc::nvrtcGetProgramLog(prog, buf.as_mut_ptr() as *mut c_char) != nvrtc::nvrtcResult::NVRTC_SUCCESS {
            return String::new();
        }
        String::from_utf8_lossy(&buf[..size - 1]).trim().to_string()
    }
}

// ------------------------------------------------------------ disk cache

/// The folder of cached kernel binaries, if the user has a cache directory.
pub fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("tessera").join("cuda"))
}

/// FNV-1a over `bytes` from `seed`: two seeds give the 128-bit entry name.
fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(seed, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Everything that determines a compiled binary, as one string.
fn cache_key(file: &KernelFile, arch: Arch, output: Output, defines: &[(String, String)], nvrtc: (i32, i32)) -> String {
    let headers: Vec<&str> = HEADERS.iter().map(|h| h.1).collect();
    let text = format!("{}\0{}\0{}", headers.join("\0"), file.name, file.source);
    let h = format!("{:016x}{:016x}", fnv1a(0xcbf2_9ce4_8422_2325, text.as_bytes()), fnv1a(0x6c62_272e_07bb_0142, text.as_bytes()));
    format!(
        "tessera-cuda kernel v1\nfile {}\nsource {h}\nnvrtc {}.{}\noutput {output:?}\noptions {}\n",
        file.name,
        nvrtc.0,
        nvrtc.1,
        options(arch, output, defines).join(" ")
    )
}

/// [`compile`] through the disk cache. A cache that cannot be read or
/// written only costs a recompile.
pub fn compile_cached(file: &KernelFile, arch: Arch, output: Output, defines: &[(String, String)]) -> Result<Vec<u8>> {
    let version = nvrtc_version()?;
    let key = cache_key(file, arch, output, defines, version);
    let name = format!("{:016x}{:016x}.bin", fnv1a(0xcbf2_9ce4_8422_2325, key.as_bytes()), fnv1a(0x6c62_272e_07bb_0142, key.as_bytes()));
    let path = cache_dir().map(|d| d.join(name));
    if let Some(image) = path.as_ref().and_then(|p| read_entry(p, &key)) {
        return Ok(image);
    }
    let compiled = compile(file, arch, output, defines)?;
    if let Some(p) = &path {
        write_entry(p, &key, &compiled.image);
    }
    Ok(compiled.image)
}

/// An entry is the key, a NUL, then the binary; any mismatch is a miss.
fn read_entry(path: &PathBuf, key: &str) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    let split = bytes.iter().position(|&b| b == 0)?;
    (&bytes[..split] == key.as_bytes() && split + 1 < bytes.len()).then(|| bytes[split + 1..].to_vec())
}

fn write_entry(path: &PathBuf, key: &str, image: &[u8]) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    // Write a temporary file and rename it, so readers never see half an entry.
    let tmp = dir.join(format!(".{}.{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"), std::process::id()));
    let mut data = Vec::with_capacity(key.len() + 1 + image.len());
    data.extend_from_slice(key.as_bytes());
    data.push(0);
    data.extend_from_slice(image);
    if std::fs::write(&tmp, &data).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names() {
        assert_eq!(Arch::SM80.sm(), "sm_80");
        assert_eq!(Arch::SM90.sm(), "sm_90a");
        assert_eq!(Arch::SM90.compute(), "compute_90a");
        assert_eq!(Arch { major: 8, minor: 9 }.sm(), "sm_89");
    }

    #[test]
    fn cache_keys_change_with_every_input() {
        let d = |k: &str| vec![(k.to_string(), "1".to_string())];
        let base = cache_key(&ELEMENTWISE, Arch::SM80, Output::Cubin, &[], (13, 0));
        assert_ne!(base, cache_key(&ELEMENTWISE, Arch::SM90, Output::Cubin, &[], (13, 0)));
        assert_ne!(base, cache_key(&ELEMENTWISE, Arch::SM80, Output::Ptx, &[], (13, 0)));
        assert_ne!(base, cache_key(&ELEMENTWISE, Arch::SM80, Output::Cubin, &d("X"), (13, 0)));
        assert_ne!(base, cache_key(&ELEMENTWISE, Arch::SM80, Output::Cubin, &[], (13, 1)));
        assert_ne!(base, cache_key(&REDUCE, Arch::SM80, Output::Cubin, &[], (13, 0)));
    }

    #[test]
    fn cache_entries_round_trip_and_reject_other_keys() {
        let dir = std::env::temp_dir().join(format!("tessera-cuda-cache-test-{}", std::process::id()));
        let path = dir.join("entry.bin");
        write_entry(&path, "key one", b"image");
        assert_eq!(read_entry(&path, "key one").as_deref(), Some(&b"image"[..]));
        assert_eq!(read_entry(&path, "key two"), None);
        std::fs::write(&path, b"truncated").unwrap();
        assert_eq!(read_entry(&path, "key one"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
