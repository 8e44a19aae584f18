//! GEMM micro-kernels: `C[0..rows, 0..cols] (+)= Apanel * Bpanel` for one
//! `MR x NR` tile over a k block of packed operands.
//!
//! Each kernel keeps its whole C tile in vector registers for the k block:
//! per k step it loads one `NR`-wide row of the B panel and multiplies it by
//! each of the `MR` values of the A panel's k step (broadcast, or a lane of a
//! loaded A vector on NEON), one FMA per accumulator register.
//!
//! | kernel   | tile    | accumulators       | where                              |
//! |----------|---------|--------------------|------------------------------------|
//! | AVX-512F | 12 x 32 | 24 zmm             | x86-64 with AVX-512F (run time)    |
//! | AVX2+FMA | 6 x 16  | 12 ymm             | x86-64 with AVX2 and FMA (run time)|
//! | NEON     | 8 x 12  | 24 q (4 lanes)     | every aarch64 CPU                  |
//! | portable | 4 x 8   | autovectorised     | everything else                    |

/// The largest `MR x NR` of any kernel (the edge-tile scratch size).
const MAX_TILE: usize = 12 * 32;

/// A micro-kernel, its tile size and the cache blocking that suits it.
#[derive(Clone, Copy)]
pub struct Kernel {
    pub mr: usize,
    pub nr: usize,
    /// Depth of a k block. Each k block reads and writes all of C once, so
    /// deeper blocks save C traffic, as long as the `kc x nr` B panel stays
    /// in L1 or, beside the A panels, within what L2 delivers per FMA.
    pub kc: usize,
    /// Most row panels per task: their `mc_panels * mr x kc` slice of A
    /// stays in L2 while B panels pass.
    pub mc_panels: usize,
    /// Full-tile kernel: `c` has row stride `ldc`; adds to C when `acc`.
    full: unsafe fn(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, acc: bool),
}

impl Kernel {
    /// The fastest kernel this CPU runs (detected once).
    pub fn best() -> Kernel {
        static BEST: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Kernel::available()[0])
    }

    /// Every kernel this CPU runs, fastest first (the portable one last).
    // Which pushes exist depends on the target.
    #[allow(clippy::vec_init_then_push)]
    pub fn available() -> Vec<Kernel> {
        let mut kernels = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // 512 x 32 B panels (64 KiB) stream from L2 with the A panels: the
                // kernel loads 176 bytes per 24 FMAs, well within L2 bandwidth,
                // and halving the k blocks of 256 halves the passes over C.
                // 24 panels: 288 x 512 of A (576 KiB) in a 1 MiB L2.
                kernels.push(Kernel { mr: 12, nr: 32, kc: 512, mc_panels: 24, full: avx512::kernel_12x32 });
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // 256 x 16 B panels (16 KiB) in a 32 KiB L1; 48 panels: 288 x 256 of
                // A (288 KiB) in a 512 KiB L2.
                kernels.push(Kernel { mr: 6, nr: 16, kc: 256, mc_panels: 48, full: avx2::kernel_6x16 });
            }
        }
        #[cfg(target_arch = "aarch64")]
        kernels.push(Kernel { mr: neon::MR, nr: neon::NR, kc: 256, mc_panels: 48, full: neon::kernel_8x12 });
        kernels.push(Kernel::portable());
        kernels
    }

    /// The kernel every target has.
    pub fn portable() -> Kernel {
        Kernel { mr: portable::MR, nr: portable::NR, kc: 256, mc_panels: 48, full: portable::kernel }
    }

    /// Runs the kernel on a tile of `rows x cols` (at most `mr x nr`); edge
    /// tiles go through a scratch tile.
    ///
    /// # Safety
    /// `a` and `b` hold `kc * mr` and `kc * nr` values; `c` points to a
    /// `rows x cols` tile with row stride `ldc` that nothing else accesses.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub unsafe fn run(&self, kc: usize, a: &[f32], b: &[f32], c: *mut f32, ldc: usize, rows: usize, cols: usize, acc: bool) {
        debug_assert!(a.len() >= kc * self.mr && b.len() >= kc * self.nr);
        if rows == self.mr && cols == self.nr {
            (self.full)(kc, a.as_ptr(), b.as_ptr(), c, ldc, acc);
            return;
        }
        debug_assert!(self.mr * self.nr <= MAX_TILE);
        let mut tile = [0.0f32; MAX_TILE];
        (self.full)(kc, a.as_ptr(), b.as_ptr(), tile.as_mut_ptr(), self.nr, false);
        for r in 0..rows {
            for j in 0..cols {
                let dst = c.add(r * ldc + j);
                let v = tile[r * self.nr + j];
                *dst = if acc { *dst + v } else { v };
            }
        }
    }
}

mod portable {
    pub const MR: usize = 4;
    pub const NR: usize = 8;

    /// # Safety
    /// See [`super::Kernel::run`].
    pub unsafe fn kernel(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
        let a = std::slice::from_raw_parts(a, kc * MR);
        let b = std::slice::from_raw_parts(b, kc * NR);
        let mut t = [[0.0f32; NR]; MR];
        for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
            for r in 0..MR {
                for j in 0..NR {
                    t[r][j] += ap[r] * bp[j];
                }
            }
        }
        for (r, row) in t.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let dst = c.add(r * ldc + j);
                *dst = if acc { *dst + v } else { v };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// 6x16 tile in 12 ymm accumulators; per k step two B loads and six A
    /// broadcasts feed 12 FMAs.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; see [`super::Kernel::run`] for the pointers.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn kernel_6x16(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
        // The C tile is touched only after the k loop; fetch its lines now
        // so that the misses overlap the FMAs instead of following them.
        for r in 0..6 {
            let p = c.add(r * ldc) as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.add(63));
        }
        let mut t = [[_mm256_setzero_ps(); 2]; 6];
        let (mut a, mut b) = (a, b);
        for _ in 0..kc {
            let b0 = _mm256_loadu_ps(b);
            let b1 = _mm256_loadu_ps(b.add(8));
            macro_rules! row {
                ($r:literal) => {
                    let av = _mm256_broadcast_ss(&*a.add($r));
                    t[$r][0] = _mm256_fmadd_ps(av, b0, t[$r][0]);
                    t[$r][1] = _mm256_fmadd_ps(av, b1, t[$r][1]);
                };
            }
            row!(0);
            row!(1);
            row!(2);
            row!(3);
            row!(4);
            row!(5);
            a = a.add(6);
            b = b.add(16);
        }
        for (r, row) in t.iter().enumerate() {
            let p = c.add(r * ldc);
            let (mut lo, mut hi) = (row[0], row[1]);
            if acc {
                lo = _mm256_add_ps(lo, _mm256_loadu_ps(p));
                hi = _mm256_add_ps(hi, _mm256_loadu_ps(p.add(8)));
            }
            _mm256_storeu_ps(p, lo);
            _mm256_storeu_ps(p.add(8), hi);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// 12x32 tile in 24 zmm accumulators; per k step two B loads and twelve
    /// A broadcasts feed 24 FMAs.
    ///
    /// # Safety
    /// The CPU has AVX-512F; see [`super::Kernel::run`] for the pointers.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn kernel_12x32(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
        // As in the AVX2 kernel: fetch the C tile's lines (a row of 32 f32
        // spans two or three of them) so that its misses overlap the FMAs.
        for r in 0..12 {
            let p = c.add(r * ldc) as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.add(64));
            _mm_prefetch::<_MM_HINT_T0>(p.add(127));
        }
        let mut t = [[_mm512_setzero_ps(); 2]; 12];
        let (mut a, mut b) = (a, b);
        for _ in 0..kc {
            let b0 = _mm512_loadu_ps(b);
            let b1 = _mm512_loadu_ps(b.add(16));
            for (r, row) in t.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r));
                row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                row[1] = _mm512_fmadd_ps(av, b1, row[1]);
            }
            a = a.add(12);
            b = b.add(32);
        }
        for (r, row) in t.iter().enumerate() {
            let p = c.add(r * ldc);
            let (mut lo, mut hi) = (row[0], row[1]);
            if acc {
                lo = _mm512_add_ps(lo, _mm512_loadu_ps(p));
                hi = _mm512_add_ps(hi, _mm512_loadu_ps(p.add(16)));
            }
            _mm512_storeu_ps(p, lo);
            _mm512_storeu_ps(p.add(16), hi);
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    pub const MR: usize = 8;
    pub const NR: usize = 12;

    /// 8x12 tile in 24 q accumulators; per k step three B loads and two A
    /// loads feed 24 FMAs, each taking its A value from a lane of an A
    /// register (`fmla v.4s, v.4s, v.s[lane]`), so nothing is broadcast.
    ///
    /// # Safety
    /// See [`super::Kernel::run`] for the pointers (NEON is part of every
    /// aarch64 target).
    pub unsafe fn kernel_8x12(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
        let mut t = [[vdupq_n_f32(0.0); 3]; MR];
        let (mut a, mut b) = (a, b);
        for _ in 0..kc {
            let bv = [vld1q_f32(b), vld1q_f32(b.add(4)), vld1q_f32(b.add(8))];
            let (a0, a1) = (vld1q_f32(a), vld1q_f32(a.add(4)));
            macro_rules! row {
                ($r:literal, $av:ident, $lane:literal) => {
                    for (g, &bg) in bv.iter().enumerate() {
                        t[$r][g] = vfmaq_laneq_f32::<$lane>(t[$r][g], bg, $av);
                    }
                };
            }
            row!(0, a0, 0);
            row!(1, a0, 1);
            row!(2, a0, 2);
            row!(3, a0, 3);
            row!(4, a1, 0);
            row!(5, a1, 1);
            row!(6, a1, 2);
            row!(7, a1, 3);
            a = a.add(MR);
            b = b.add(NR);
        }
        for (r, row) in t.iter().enumerate() {
            let p = c.add(r * ldc);
            for (g, &v) in row.iter().enumerate() {
                let q = p.add(4 * g);
                vst1q_f32(q, if acc { vaddq_f32(v, vld1q_f32(q)) } else { v });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel this CPU runs against a plain triple loop, full and edge
    /// tiles.
    #[test]
    fn kernels_match_reference() {
        for k in Kernel::available() {
            println!("kernel {}x{}", k.mr, k.nr);
            let kc = 37;
            let a: Vec<f32> = (0..kc * k.mr).map(|i| ((i * 7 % 13) as f32) - 6.0).collect();
            let b: Vec<f32> = (0..kc * k.nr).map(|i| ((i * 5 % 11) as f32) * 0.5 - 2.0).collect();
            for (rows, cols) in [(k.mr, k.nr), (1, 1), (k.mr - 1, k.nr - 3)] {
                for acc in [false, true] {
                    let ldc = k.nr + 5;
                    let mut c = vec![1.0f32; k.mr * ldc];
                    unsafe { k.run(kc, &a, &b, c.as_mut_ptr(), ldc, rows, cols, acc) };
                    for r in 0..k.mr {
                        for j in 0..ldc {
                            let inside = r < rows && j < cols;
                            let want = if inside {
                                (0..kc).map(|p| a[p * k.mr + r] * b[p * k.nr + j]).sum::<f32>() + if acc { 1.0 } else { 0.0 }
                            } else {
                                1.0
                            };
                            assert!((c[r * ldc + j] - want).abs() <= 1e-3 * want.abs().max(1.0), "mr {} r {r} j {j}", k.mr);
                        }
                    }
                }
            }
        }
    }
}
