use tessera_cuda::compile::*;
#[test]
fn kernels_compile() {
    if let Err(e) = nvrtc_loaded() { println!("skip: {e}"); return; }
    for f in KERNEL_FILES {
        for arch in [Arch::SM80, Arch::SM90] {
            for v in (f.variants)() {
                let t = std::time::Instant::now();
                match compile(&f, arch, Output::Ptx, &v) {
                    Ok(c) => println!("{} {} ok {} bytes {:?}\n{}", f.name, arch.sm(), c.image.len(), t.elapsed(), c.log),
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
}
