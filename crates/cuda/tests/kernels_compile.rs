//! Without a GPU: every kernel file (every variant the backend can ask
//! for) compiles through the backend's own NVRTC path for sm_80 and sm_90a,
//! and ptxas reports no register spills in the matmul, attention, norm and
//! index kernels (printing each kernel's register count).
//!
//! NVRTC is found on the library path (scripts/cuda-checks.sh installs the
//! `nvidia-cuda-nvrtc` wheel and sets LD_LIBRARY_PATH); ptxas is taken from
//! TESSERA_PTXAS or PATH (the `nvidia-cuda-nvcc` wheel). Without them the
//! tests print why and pass without checking.

use std::process::Command;
use tessera_cuda::compile::{
    compile, nvrtc_loaded, nvrtc_version, Arch, Defines, KernelFile, Output, ATTENTION, INDEX, KERNEL_FILES, MATMUL, NORM,
};

/// One compilation: a file, an architecture, a define set.
type Job = (KernelFile, Arch, Defines);

const ARCHS: [Arch; 2] = [Arch::SM80, Arch::SM90];

fn nvrtc_or_skip() -> bool {
    match nvrtc_loaded() {
        Ok(()) => true,
        Err(e) => {
            println!("skipped: {e}");
            false
        }
    }
}

/// Each (file, defines) job of `files`, for every architecture.
fn jobs(files: &[KernelFile]) -> Vec<Job> {
    files.iter().flat_map(|f| ARCHS.iter().flat_map(move |&a| (f.variants)().into_iter().map(move |v| (*f, a, v)))).collect()
}

/// Runs `f` over the jobs on all cores; the failures, in job order.
fn run_parallel<T: Send>(jobs: Vec<Job>, f: impl Fn(&KernelFile, Arch, &[(String, String)]) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((file, arch, defs)) = jobs.get(i) else { break };
                let r = f(file, *arch, defs);
                results.lock().unwrap().push((i, r));
            });
        }
    });
    let mut r = results.into_inner().unwrap();
    r.sort_by_key(|(i, _)| *i);
    r.into_iter().map(|(_, v)| v).collect()
}

fn describe(file: &KernelFile, arch: Arch, defs: &[(String, String)]) -> String {
    let d: Vec<String> = defs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{} {} [{}]", file.name, arch.sm(), d.join(" "))
}

#[test]
fn every_kernel_compiles_for_sm80_and_sm90a() {
    if !nvrtc_or_skip() {
        return;
    }
    println!("NVRTC {:?}", nvrtc_version().unwrap());
    let all = jobs(&KERNEL_FILES);
    let count = all.len();
    let results = run_parallel(all, |file, arch, defs| {
        let start = std::time::Instant::now();
        let r = compile(file, arch, Output::Cubin, defs);
        (describe(file, arch, defs), start.elapsed(), r)
    });
    let mut failures = Vec::new();
    for (what, time, r) in results {
        match r {
            Ok(c) => {
                println!("ok   {what}: {} bytes of CUBIN in {:.1}s", c.image.len(), time.as_secs_f64());
                if !c.log.is_empty() {
                    println!("     {}", c.log.replace('\n', "\n     "));
                }
            }
            Err(e) => failures.push(format!("FAIL {what}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{} of {count} kernel builds failed:\n{}", failures.len(), failures.join("\n"));
}

/// Registers per kernel from `ptxas -v` output: (kernel, registers).
fn registers(ptxas_log: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in ptxas_log.lines() {
        if let Some(rest) = line.split("Function properties for ").nth(1) {
            current = rest.trim().to_string();
        }
        if let Some(rest) = line.split("Used ").nth(1) {
            if let Some(n) = rest.split(" registers").next().and_then(|n| n.trim().parse().ok()) {
                out.push((current.clone(), n));
            }
        }
    }
    out
}

/// Spill bytes per kernel from `ptxas -v` output: (kernel, stores, loads).
fn spills(ptxas_log: &str) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in ptxas_log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            current = rest.split('\'').next().unwrap_or("").to_string();
        }
        if line.contains("bytes spill stores") {
            let num = |key: &str| -> u64 {
                let before = line.split(key).next().unwrap_or("");
                before.split_whitespace().last().and_then(|n| n.parse().ok()).unwrap_or(0)
            };
            out.push((current.clone(), num(" bytes spill stores"), num(" bytes spill loads")));
        }
    }
    out
}

fn ptxas() -> Option<String> {
    let candidate = std::env::var("TESSERA_PTXAS").unwrap_or_else(|_| "ptxas".to_string());
    Command::new(&candidate).arg("--version").output().ok().filter(|o| o.status.success()).map(|_| candidate)
}

#[test]
fn matmul_attention_norm_and_index_kernels_do_not_spill() {
    if !nvrtc_or_skip() {
        return;
    }
    let Some(ptxas) = ptxas() else {
        println!("skipped: ptxas not found (set TESSERA_PTXAS or put the nvidia-cuda-nvcc wheel's bin folder on PATH)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("tessera-ptxas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let results = run_parallel(jobs(&[MATMUL, ATTENTION, NORM, INDEX]), |file, arch, defs| -> Result<(String, String), String> {
        let what = describe(file, arch, defs);
        let ptx = compile(file, arch, Output::Ptx, defs).map_err(|e| format!("{what}: {e}"))?;
        let tag: String = what.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let path = dir.join(format!("{tag}.ptx"));
        std::fs::write(&path, &ptx.image[..ptx.image.len().saturating_sub(1)]).map_err(|e| e.to_string())?;
        let out = Command::new(&ptxas)
            .args([format!("-arch={}", arch.sm()), "-v".into(), path.display().to_string(), "-o".into(), "/dev/null".into()])
            .output()
            .map_err(|e| format!("{what}: running ptxas: {e}"))?;
        let log = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!("{what}: ptxas failed:\n{log}"));
        }
        let s = spills(&log);
        let bad: Vec<String> =
            s.iter().filter(|(_, st, ld)| st + ld > 0).map(|(k, st, ld)| format!("{k}: {st} B stored, {ld} B loaded")).collect();
        if bad.is_empty() {
            let regs: Vec<String> = registers(&log).iter().map(|(k, n)| format!("{k} {n}")).collect();
            Ok((format!("{what} ({} kernels)", s.len()), regs.join(", ")))
        } else {
            Err(format!("{what} spills registers:\n  {}", bad.join("\n  ")))
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok((what, regs)) => println!("no spills: {what}; registers: {regs}"),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn spill_report_parsing() {
    let log = "ptxas info    : Compiling entry function 'k1' for 'sm_80'\n\
               ptxas info    : Function properties for k1\n    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n\
               ptxas info    : Compiling entry function 'k2' for 'sm_80'\n\
               ptxas info    : Function properties for k2\n    8 bytes stack frame, 12 bytes spill stores, 16 bytes spill loads\n";
    assert_eq!(spills(log), vec![("k1".to_string(), 0, 0), ("k2".to_string(), 12, 16)]);
    let log = "ptxas info    : Function properties for k1\n    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n\
               ptxas info    : Used 40 registers, used 1 barriers, 488 bytes cmem[0]\n";
    assert_eq!(registers(log), vec![("k1".to_string(), 40)]);
}
