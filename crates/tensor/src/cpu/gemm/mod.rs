//! Packed, cache-blocked GEMM with SIMD micro-kernels chosen at run time.
//!
//! Algorithm (the BLIS/GotoBLAS loop nest): C (`m x n`, row-major, f32) =
//! A (`m x k`) * B (`k x n`), with A and B of any strides and of f32, f16 or
//! bf16 elements (converted to f32 while packing, so the micro-kernel only
//! ever sees f32).
//!
//! - k is cut into blocks of `KC`. For each block, B is packed into column
//!   panels of `NR` columns (`KC x NR`, row-major inside a panel, zero-padded
//!   past `n`) and A into row panels of `MR` rows (`KC x MR`, interleaved,
//!   zero-padded past `m`). Packing reads through the operands' strides, so a
//!   transposed weight costs nothing extra; it walks the unit-stride direction.
//! - The output is split into tasks of at most `MC` row panels (rows spread
//!   evenly) by a run of column panels; tasks run in parallel. In a task,
//!   each B panel is swept by the task's A panels, which stay in L2, and the
//!   micro-kernel keeps an `MR x NR` block of C in registers over the k
//!   block. With a single row task, each task packs its B panels right
//!   before use.
//! - `KC` and `MC` belong to the kernel ([`Kernel`]): 256 and 48 panels
//!   for the AVX2 6x16 kernel (a 16 KiB B panel in L1, 288 x 256 of A in
//!   L2); 512 and 24 for the AVX-512 12x32 one (a 64 KiB B panel streamed
//!   from L2 beside 288 x 512 of A). Every k block reads and writes all of
//!   C, so the deeper blocks halve that traffic.
//! - The first k block writes C (or adds to it, when the caller seeded C
//!   with a bias); later blocks add to it.
//!
//! Micro-kernels (see [`kernel`]): AVX-512F 12x32 or AVX2+FMA 6x16 on x86-64,
//! whichever the CPU has (detected once, at run time); NEON 8x12 on aarch64;
//! otherwise a portable 4x8 kernel written so that the compiler vectorises it
//! for the target's baseline SIMD. Few-row products (decode) take [`gemv`]
//! instead, which streams B once without packing.

mod gemv;
mod kernel;
mod transpose;

pub use gemv::{gemv, DotElem};
use kernel::Kernel;
use rayon::prelude::*;

/// Element types GEMM operands may have.
pub trait GemmElem: Copy + Send + Sync + 'static {
    fn to_f32(self) -> f32;
    /// The values as f32 without conversion, for the f32 type itself.
    fn as_f32(_data: &[Self]) -> Option<&[f32]> {
        None
    }
}
impl GemmElem for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    fn as_f32(data: &[f32]) -> Option<&[f32]> {
        Some(data)
    }
}
impl GemmElem for half::f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        half::f16::to_f32(self)
    }
}
impl GemmElem for half::bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        // bf16 is the top half of an f32: widening is a shift.
        f32::from_bits((self.to_bits() as u32) << 16)
    }
}

/// A strided matrix: element (i, j) is `data[off + i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Strided<'a, T> {
    pub data: &'a [T],
    pub off: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<T: GemmElem> Strided<'_, T> {
    /// Element (i, j), widened.
    #[inline(always)]
    pub fn at(&self, i: usize, j: usize) -> f32 {
        self.data[self.off + i * self.rs + j * self.cs].to_f32()
    }
}

/// Packs rows `i0..i0+mr` (clipped to `m`) and k range `p0..p0+kc` of A
/// into `dst` as `kc` groups of `mr` values.
fn pack_a_panel<T: GemmElem>(a: &Strided<T>, m: usize, i0: usize, p0: usize, kc: usize, mr: usize, dst: &mut [f32]) {
    let rows = mr.min(m - i0);
    if rows < mr {
        dst.fill(0.0);
    }
    pack(a, i0, rows, p0, kc, mr, dst, false);
}

/// Packs columns `j0..j0+nr` (clipped to `n`) and k range `p0..p0+kc` of B
/// into `dst` as `kc` rows of `nr` values.
fn pack_b_panel<T: GemmElem>(b: &Strided<T>, n: usize, j0: usize, p0: usize, kc: usize, nr: usize, dst: &mut [f32]) {
    let cols = nr.min(n - j0);
    if cols < nr {
        dst.fill(0.0);
    }
    pack(b, j0, cols, p0, kc, nr, dst, true);
}

/// `dst[p * width + q] = src(q0 + q, p0 + p)` for `q < count`, `p < kc`,
/// where `src(q, p)` is A's (row q, column p) or, `transposed`, B's (row p,
/// column q). Walks whichever direction has unit stride, on bounds-checked
/// slices taken once per line.
#[allow(clippy::too_many_arguments)]
#[inline]
fn pack<T: GemmElem>(m: &Strided<T>, q0: usize, count: usize, p0: usize, kc: usize, width: usize, dst: &mut [f32], transposed: bool) {
    // Strides of the panel's q (the width direction) and p (the k direction).
    let (qs, ps) = if transposed { (m.cs, m.rs) } else { (m.rs, m.cs) };
    let start = |q: usize, p: usize| m.off + (q0 + q) * qs + (p0 + p) * ps;
    if let (1, Some(data)) = (ps, T::as_f32(m.data)) {
        // f32 lines contiguous along k: register transposes where the CPU
        // has them. At most 32 lines (the widest panel).
        let mut lines = [&[][..]; 32];
        for (q, line) in lines.iter_mut().enumerate().take(count) {
            *line = &data[start(q, 0)..start(q, 0) + kc];
        }
        if count <= lines.len() && transpose::pack_lines(&lines[..count], kc, width, dst) {
            return;
        }
    }
    if ps == 1 && count == width && width <= 16 {
        // Full panel of lines contiguous along k (a transposed weight): copy
        // 16 k steps of one line at a time, so each cache line of a line is
        // read whole before the next line is touched. Lines whose stride is a
        // multiple of 4 KiB share L1 sets; reading them one element per line
        // in turn (16 lines live at once) thrashes those sets.
        const STEP: usize = 16;
        let panel = &mut dst[..kc * width];
        for (block, out) in panel.chunks_mut(STEP * width).enumerate() {
            let p = block * STEP;
            let steps = out.len() / width;
            for q in 0..count {
                let line = &m.data[start(q, p)..start(q, p) + steps];
                for (o, &v) in out.iter_mut().skip(q).step_by(width).zip(line) {
                    *o = v.to_f32();
                }
            }
        }
    } else if ps == 1 {
        // Each line q is contiguous along k.
        for q in 0..count {
            let line = &m.data[start(q, 0)..start(q, 0) + kc];
            for (p, &v) in line.iter().enumerate() {
                dst[p * width + q] = v.to_f32();
            }
        }
    } else if qs == 1 {
        // Each k step is a contiguous run of `count` values.
        for (p, out) in dst.chunks_exact_mut(width).take(kc).enumerate() {
            let run = &m.data[start(0, p)..start(0, p) + count];
            for (o, &v) in out.iter_mut().zip(run) {
                *o = v.to_f32();
            }
        }
    } else {
        for q in 0..count {
            for p in 0..kc {
                dst[p * width + q] = m.data[start(q, p)].to_f32();
            }
        }
    }
}

/// A raw pointer to C that tasks writing disjoint tiles may share.
#[derive(Clone, Copy)]
struct CPtr(*mut f32);
// SAFETY: every task writes a disjoint set of C's elements (its own rows x
// columns tile), and the borrow of C outlives the parallel loop.
unsafe impl Send for CPtr {}
unsafe impl Sync for CPtr {}

impl CPtr {
    /// The element at `offset` (a method, so closures capture the whole
    /// `Send` wrapper rather than the raw pointer field).
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// A's rows `0..m` over k range `p0..p0+kc`, packed into `dst` (resized)
/// as the micro-kernel wants them: `ceil(m / mr)` panels of `kc x mr`.
pub fn pack_a_block<T: GemmElem>(a: &Strided<T>, m: usize, p0: usize, kc: usize, dst: &mut Vec<f32>) {
    let mr = Kernel::best().mr;
    dst.resize(m.div_ceil(mr) * mr * kc, 0.0);
    for (ip, panel) in dst.chunks_mut(mr * kc).enumerate() {
        pack_a_panel(a, m, ip * mr, p0, kc, mr, panel);
    }
}

/// B's columns `0..n` over k range `p0..p0+kc`, packed into `dst` (resized):
/// `ceil(n / nr)` panels of `kc x nr`. Columns `j0..` with `j0` a multiple
/// of [`panel_width`] start at panel `j0 / nr`.
pub fn pack_b_block<T: GemmElem>(b: &Strided<T>, n: usize, p0: usize, kc: usize, dst: &mut Vec<f32>) {
    let nr = Kernel::best().nr;
    dst.resize(n.div_ceil(nr) * nr * kc, 0.0);
    for (jp, panel) in dst.chunks_mut(nr * kc).enumerate() {
        pack_b_panel(b, n, jp * nr, p0, kc, nr, panel);
    }
}

/// Columns per packed B panel (32 with AVX-512, 16 with AVX2, 12 with NEON,
/// 8 otherwise).
pub fn panel_width() -> usize {
    Kernel::best().nr
}

/// `c (+)= A B` for one k block of pre-packed operands ([`pack_a_block`],
/// [`pack_b_block`] with the same `kc`), on the calling thread; `c` has row
/// stride `ldc`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_packed(m: usize, n: usize, kc: usize, pa: &[f32], pb: &[f32], c: &mut [f32], ldc: usize, accumulate: bool) {
    let kern = Kernel::best();
    let (mr, nr) = (kern.mr, kern.nr);
    if m == 0 || n == 0 {
        return;
    }
    assert!(ldc >= n && c.len() >= (m - 1) * ldc + n, "gemm_packed: C is too small");
    assert!(pa.len() >= m.div_ceil(mr) * mr * kc && pb.len() >= n.div_ceil(nr) * nr * kc, "gemm_packed: operands are too small");
    if kc == 0 {
        if !accumulate {
            c.chunks_mut(ldc).take(m).for_each(|row| row[..n].fill(0.0));
        }
        return;
    }
    for jp in 0..n.div_ceil(nr) {
        let bp = &pb[jp * nr * kc..][..nr * kc];
        for ip in 0..m.div_ceil(mr) {
            let (i0, j0) = (ip * mr, jp * nr);
            let ap = &pa[ip * mr * kc..][..mr * kc];
            // SAFETY: the tile lies inside `c` (checked above) and this thread
            // holds the only borrow of `c`.
            unsafe { kern.run(kc, ap, bp, c.as_mut_ptr().add(i0 * ldc + j0), ldc, mr.min(m - i0), nr.min(n - j0), accumulate) };
        }
    }
}

/// B packed for all of k at once, in the panel layout [`gemm`] packs per k
/// block: k block `p0 / KC` (the kernel's `kc`) holds `ceil(n / nr)` panels of `kc x nr`, one
/// after another. Packing a weight once and multiplying by it many times
/// saves [`gemm`] reading, widening and re-writing all of B on every call
/// (for few-row products, most of the call's memory traffic).
pub struct PackedB {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl PackedB {
    /// B (`k x n`, any strides and element type) packed for the CPU's
    /// micro-kernel, in parallel on the current rayon pool.
    pub fn new<T: GemmElem>(k: usize, n: usize, b: &Strided<T>) -> PackedB {
        let nr = Kernel::best().nr;
        let block_len = n.div_ceil(nr) * nr;
        let mut data = vec![0.0f32; block_len * k];
        let kc_max = Kernel::best().kc;
        for (blk, dst) in data.chunks_mut(block_len * kc_max).enumerate() {
            let (p0, kc) = (blk * kc_max, dst.len() / block_len);
            dst.par_chunks_mut(nr * kc).enumerate().for_each(|(jp, panel)| pack_b_panel(b, n, jp * nr, p0, kc, nr, panel));
        }
        PackedB { k, n, data }
    }

    /// Rows of B.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of B.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Bytes the packed panels take.
    pub fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<f32>()
    }

    /// The panels of the k block starting at row `p0`.
    fn block(&self, p0: usize) -> &[f32] {
        let kern = Kernel::best();
        let block_len = self.n.div_ceil(kern.nr) * kern.nr;
        &self.data[block_len * p0..][..block_len * kern.kc.min(self.k - p0)]
    }
}

/// Where a product's B comes from: read through strides and packed by the
/// call, or packed beforehand.
enum BSource<'a, T> {
    Strided(Strided<'a, T>),
    Packed(&'a PackedB),
}

/// `c = a * b`, or `c += a * b` with `accumulate` (C seeded by the caller,
/// e.g. with a bias); `c` is row-major `m x n`. Runs on the current rayon
/// pool.
pub fn gemm<TA: GemmElem, TB: GemmElem>(m: usize, n: usize, k: usize, a: Strided<TA>, b: Strided<TB>, c: &mut [f32], accumulate: bool) {
    gemm_from(m, n, k, a, BSource::Strided(b), c, accumulate)
}

/// [`gemm`] with B packed beforehand; `c` is row-major `m x b.n()`. Equal,
/// bit for bit, to [`gemm`] with the B that was packed.
pub fn gemm_prepacked<TA: GemmElem>(m: usize, a: Strided<TA>, b: &PackedB, c: &mut [f32], accumulate: bool) {
    gemm_from::<TA, f32>(m, b.n, b.k, a, BSource::Packed(b), c, accumulate)
}

fn gemm_from<TA: GemmElem, TB: GemmElem>(m: usize, n: usize, k: usize, a: Strided<TA>, b: BSource<TB>, c: &mut [f32], accumulate: bool) {
    assert_eq!(c.len(), m * n, "gemm: C has the wrong size");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    let kern = Kernel::best();
    let (mr, nr) = (kern.mr, kern.nr);
    let (mpanels, npanels) = (m.div_ceil(mr), n.div_ceil(nr));
    let threads = rayon::current_num_threads();
    // Column panels per task: enough tasks to keep every thread busy.
    let row_tasks = mpanels.div_ceil(kern.mc_panels);
    // Spread the row panels evenly over the row tasks.
    let panels_per_row_task = mpanels.div_ceil(row_tasks);
    let col_tasks = (8 * threads).div_ceil(row_tasks).clamp(1, npanels);
    let cols_per_task = npanels.div_ceil(col_tasks);
    let packs_b = row_tasks > 1 && matches!(b, BSource::Strided(_));
    let mut scratch = Scratch::take();
    let kc_max = kern.kc;
    let (pa, pb) = scratch.sized(mpanels * mr * kc_max, if packs_b { npanels * nr * kc_max } else { 0 });
    let cptr = CPtr(c.as_mut_ptr());
    for p0 in (0..k).step_by(kc_max) {
        let kc = kc_max.min(k - p0);
        pa.par_chunks_mut(mr * kc).take(mpanels).enumerate().for_each(|(ip, dst)| pack_a_panel(&a, m, ip * mr, p0, kc, mr, dst));
        let accumulate = accumulate || p0 > 0;
        if let (1, BSource::Strided(b)) = (row_tasks, &b) {
            // One row task: each B panel is used by one task only, so the
            // task packs it right before use, while it is hot in L1.
            let pa = &*pa;
            (0..col_tasks).into_par_iter().for_each_init(
                || vec![0.0f32; nr * kc],
                |bp, ct| {
                    for jp in ct * cols_per_task..((ct + 1) * cols_per_task).min(npanels) {
                        pack_b_panel(b, n, jp * nr, p0, kc, nr, bp);
                        for ip in 0..mpanels {
                            let (i0, j0) = (ip * mr, jp * nr);
                            let ap = &pa[ip * mr * kc..][..mr * kc];
                            // SAFETY: (i0.., j0..) is inside C and owned by this task alone.
                            unsafe { kern.run(kc, ap, bp, cptr.at(i0 * n + j0), n, mr.min(m - i0), nr.min(n - j0), accumulate) };
                        }
                    }
                },
            );
            continue;
        }
        let pb: &[f32] = match &b {
            BSource::Packed(packed) => packed.block(p0),
            BSource::Strided(b) => {
                pb.par_chunks_mut(nr * kc).take(npanels).enumerate().for_each(|(jp, dst)| pack_b_panel(b, n, jp * nr, p0, kc, nr, dst));
                pb
            }
        };
        let pa = &*pa;
        (0..row_tasks * col_tasks).into_par_iter().for_each(move |t| {
            let (rt, ct) = (t / col_tasks, t % col_tasks);
            let ips = rt * panels_per_row_task..((rt + 1) * panels_per_row_task).min(mpanels);
            let jps = ct * cols_per_task..((ct + 1) * cols_per_task).min(npanels);
            for jp in jps {
                let bp = &pb[jp * nr * kc..][..nr * kc];
                for ip in ips.clone() {
                    let ap = &pa[ip * mr * kc..][..mr * kc];
                    let (i0, j0) = (ip * mr, jp * nr);
                    let (rows, cols) = (mr.min(m - i0), nr.min(n - j0));
                    // SAFETY: (i0.., j0..) is inside C and owned by this task alone.
                    unsafe { kern.run(kc, ap, bp, cptr.at(i0 * n + j0), n, rows, cols, accumulate) };
                }
            }
        });
    }
    scratch.give_back();
}

/// The packing buffers of a [`gemm`] call, kept per thread between calls
/// so that a model's GEMMs neither allocate nor fault in fresh pages each
/// time. `take` moves them out of the thread's slot (a GEMM nested on the
/// same thread, e.g. through rayon's work stealing, finds the slot empty
/// and allocates its own); `give_back` returns them.
#[derive(Default)]
struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::Cell<Scratch> = std::cell::Cell::new(Scratch::default());
}

impl Scratch {
    fn take() -> Scratch {
        SCRATCH.with(|s| s.take())
    }

    /// The two buffers, at least `a` and `b` long. Packing overwrites every
    /// element it hands to the kernel, so the contents do not matter.
    fn sized(&mut self, a: usize, b: usize) -> (&mut [f32], &mut [f32]) {
        for (v, len) in [(&mut self.a, a), (&mut self.b, b)] {
            if v.len() < len {
                v.resize(len, 0.0);
            }
        }
        (&mut self.a[..a], &mut self.b[..b])
    }

    fn give_back(self) {
        SCRATCH.with(|s| s.set(self));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: &Strided<f32>, b: &Strided<f32>) -> Vec<f64> {
        let mut c = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a.at(i, p) as f64 * b.at(p, j) as f64).sum();
            }
        }
        c
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0) - 1.0).collect()
    }

    /// Both task layouts (one and several row tasks: 310 rows are two row
    /// tasks of 6-row panels, 600 rows two or more of 12-row panels),
    /// several k blocks (of 256 or 512), edge tiles, transposed operands,
    /// and the few-row path.
    #[test]
    fn gemm_and_gemv_match_a_naive_product() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for &(m, n, k) in
            &[(1, 37, 300), (2, 130, 65), (5, 17, 3), (50, 100, 513), (150, 45, 257), (73, 200, 256), (310, 70, 300), (600, 40, 1030)]
        {
            for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
                let (av, bv) = (values(m * k, 1), values(k * n, 2));
                let a = if a_t { Strided { data: &av[..], off: 0, rs: 1, cs: m } } else { Strided { data: &av[..], off: 0, rs: k, cs: 1 } };
                let b = if b_t { Strided { data: &bv[..], off: 0, rs: 1, cs: k } } else { Strided { data: &bv[..], off: 0, rs: n, cs: 1 } };
                let want = naive(m, n, k, &a, &b);
                let mut c = vec![f32::NAN; m * n];
                pool.install(|| gemm(m, n, k, a, b, &mut c, false));
                let mut cv = vec![f32::NAN; m * n];
                let took_gemv = pool.install(|| gemv(m, n, k, a, b, &mut cv, false));
                // B packed once: the same bits as packing per call.
                let mut cp = vec![f32::NAN; m * n];
                pool.install(|| gemm_prepacked(m, a, &PackedB::new(k, n, &b), &mut cp, false));
                assert!(cp.iter().zip(&c).all(|(x, y)| x.to_bits() == y.to_bits()), "gemm_prepacked {m}x{n}x{k} {a_t} {b_t}");
                // Accumulating onto a seeded C, through both B sources and GEMV.
                let seed = values(m * n, 3);
                let (mut ca, mut cpa, mut cva) = (seed.clone(), seed.clone(), seed.clone());
                pool.install(|| gemm(m, n, k, a, b, &mut ca, true));
                pool.install(|| gemm_prepacked(m, a, &PackedB::new(k, n, &b), &mut cpa, true));
                let gemv_accumulated = pool.install(|| gemv(m, n, k, a, b, &mut cva, true));
                assert_eq!(gemv_accumulated, took_gemv, "gemv takes the same layouts when accumulating");
                for (idx, ((&x, &y), (&s, &w))) in ca.iter().zip(&cpa).zip(seed.iter().zip(&want)).enumerate() {
                    let tol = 1e-4 * (k as f64).sqrt();
                    assert_eq!(x.to_bits(), y.to_bits(), "accumulating gemm_prepacked {m}x{n}x{k} at {idx}");
                    assert!((x as f64 - (s as f64 + w)).abs() < tol, "accumulating gemm {m}x{n}x{k} at {idx}");
                    if took_gemv {
                        assert!((cva[idx] as f64 - (s as f64 + w)).abs() < tol, "accumulating gemv {m}x{n}x{k} {b_t} at {idx}");
                    }
                }
                // The pre-packed path over k blocks, with a wider C row stride.
                let mut cs = vec![f32::NAN; m * (n + 3)];
                let (mut pa, mut pb) = (Vec::new(), Vec::new());
                let kc_max = Kernel::best().kc;
                for p0 in (0..k).step_by(kc_max) {
                    let kc = kc_max.min(k - p0);
                    pack_a_block(&a, m, p0, kc, &mut pa);
                    pack_b_block(&b, n, p0, kc, &mut pb);
                    gemm_packed(m, n, kc, &pa, &pb, &mut cs, n + 3, p0 > 0);
                }
                for i in 0..m {
                    for j in 0..n {
                        let w = want[i * n + j];
                        let tol = 1e-4 * (k as f64).sqrt();
                        assert!((c[i * n + j] as f64 - w).abs() < tol, "gemm {m}x{n}x{k} {a_t} {b_t} at {i},{j}");
                        assert!((cs[i * (n + 3) + j] as f64 - w).abs() < tol, "gemm_packed {m}x{n}x{k} at {i},{j}");
                        if took_gemv {
                            assert!((cv[i * n + j] as f64 - w).abs() < tol, "gemv {m}x{n}x{k} {b_t} at {i},{j}");
                        }
                    }
                }
                // bf16 weights through the same paths (values rounded first).
                let bh: Vec<half::bf16> = bv.iter().map(|&v| half::bf16::from_f32(v)).collect();
                let br: Vec<f32> = bh.iter().map(|v| v.to_f32()).collect();
                let bhs = Strided { data: &bh[..], off: 0, rs: b.rs, cs: b.cs };
                let want = naive(m, n, k, &a, &Strided { data: &br[..], off: 0, rs: b.rs, cs: b.cs });
                let mut ch = vec![f32::NAN; m * n];
                if !pool.install(|| gemv(m, n, k, a, bhs, &mut ch, false)) {
                    pool.install(|| gemm(m, n, k, a, bhs, &mut ch, false));
                }
                for (idx, (&got, &w)) in ch.iter().zip(&want).enumerate() {
                    assert!((got as f64 - w).abs() < 1e-4 * (k as f64).sqrt(), "bf16 {m}x{n}x{k} {b_t} at {idx}");
                }
            }
        }
    }
}
