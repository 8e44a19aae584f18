//! A host model of the tensor-core data paths of kernels/matmul.cu and
//! kernels/attention.cu, checked without a GPU.
//!
//! The model follows the PTX ISA: `ldmatrix.x4` (lanes 8i..8i+7 give the
//! row addresses of matrix i; thread t receives row t/4, elements
//! 2(t%4), 2(t%4)+1, or with `.trans` the transposed pair) and
//! `mma.m16n8k16.row.col` (A fragment registers: rows g / g+8, k 2q.. /
//! 2q+8..; B: k 2q.. / 2q+8.., column g; D: rows g / g+8, columns 2q, 2q+1,
//! with g = lane/4, q = lane%4). On top of it, the kernels' own index
//! formulas (the swizzled tile layouts, the cp.async tile fill, the
//! fragment addresses, the P-from-S register reuse) are replayed for whole
//! tiles and compared with plain matrix products, and every ldmatrix phase
//! is checked to touch eight distinct 16-byte bank groups. The formulas
//! below mirror the .cu sources line for line; a change to one must be
//! made to the other.

/// Shared memory as b16 elements (values are small integers, exact in f64).
type Smem = Vec<f64>;

/// One 32-bit register: two b16 elements (low, high).
type Reg = (f64, f64);

/// `ldmatrix.x4`: `addr[lane]` is the element index lane supplies.
fn ldmatrix_x4(smem: &Smem, addr: &[usize; 32], trans: bool) -> [[Reg; 4]; 32] {
    let mut out = [[(0.0, 0.0); 4]; 32];
    for (t, regs) in out.iter_mut().enumerate() {
        for (i, reg) in regs.iter_mut().enumerate() {
            let rows = &addr[8 * i..8 * i + 8];
            *reg = if trans {
                (smem[rows[2 * (t % 4)] + t / 4], smem[rows[2 * (t % 4) + 1] + t / 4])
            } else {
                (smem[rows[t / 4] + 2 * (t % 4)], smem[rows[t / 4] + 2 * (t % 4) + 1])
            };
        }
    }
    out
}

/// Every ldmatrix phase (the eight rows of one matrix) must hit eight
/// distinct 16-byte bank groups of a 128-byte line.
fn assert_conflict_free(addr: &[usize; 32], what: &str) {
    for i in 0..4 {
        let mut groups: Vec<usize> = addr[8 * i..8 * i + 8].iter().map(|&e| (e * 2 / 16) % 8).collect();
        groups.sort_unstable();
        groups.dedup();
        assert_eq!(groups.len(), 8, "{what}: ldmatrix matrix {i} has bank conflicts: {:?}", &addr[8 * i..8 * i + 8]);
    }
}

/// `mma.m16n8k16.row.col`: D += A B from per-lane fragments.
fn mma(d: &mut [[f64; 4]; 32], a: &[[Reg; 4]; 32], b: &[[Reg; 2]; 32]) {
    let (mut am, mut bm) = ([[f64::NAN; 16]; 16], [[f64::NAN; 8]; 16]);
    for t in 0..32 {
        let (g, q) = (t / 4, t % 4);
        let put = |m: &mut [[f64; 16]; 16], r: usize, c: usize, v: Reg| {
            m[r][c] = v.0;
            m[r][c + 1] = v.1;
        };
        put(&mut am, g, 2 * q, a[t][0]);
        put(&mut am, g + 8, 2 * q, a[t][1]);
        put(&mut am, g, 2 * q + 8, a[t][2]);
        put(&mut am, g + 8, 2 * q + 8, a[t][3]);
        bm[2 * q][g] = b[t][0].0;
        bm[2 * q + 1][g] = b[t][0].1;
        bm[2 * q + 8][g] = b[t][1].0;
        bm[2 * q + 9][g] = b[t][1].1;
    }
    for (t, dt) in d.iter_mut().enumerate() {
        let (g, q) = (t / 4, t % 4);
        for (e, de) in dt.iter_mut().enumerate() {
            let (r, c) = (g + 8 * (e / 2), 2 * q + e % 2);
            *de += (0..16).map(|k| am[r][k] * bm[k][c]).sum::<f64>();
        }
    }
}

/// Every accumulator of a row of m16n8 tiles: (tile, row in the tile,
/// column in the tile, value), rows lane/4 (+8), columns 2*(lane%4) (+1).
fn accumulators(tiles: &[[[f64; 4]; 32]]) -> impl Iterator<Item = (usize, usize, usize, f64)> + '_ {
    tiles.iter().enumerate().flat_map(|(t, lanes)| {
        lanes.iter().enumerate().flat_map(move |(lane, regs)| {
            regs.iter().enumerate().map(move |(e, &v)| (t, (lane >> 2) + (e >> 1) * 8, (lane & 3) * 2 + (e & 1), v))
        })
    })
}

/// Deterministic small integers.
fn value(i: usize, j: usize, salt: usize) -> f64 {
    (((i * 31 + j * 17 + salt * 7) % 13) as f64) - 6.0
}

// ------------------------------------------------------------ matmul.cu

/// `KMajorTile<ROWS>::chunk` and `MnMajorTile<COLS>::chunk`.
fn kmajor_chunk(r: usize, c: usize) -> usize {
    r * 4 + (c ^ ((r >> 1) & 3))
}
fn mnmajor_chunk(cols: usize, r: usize, c: usize) -> usize {
    r * (cols / 8) + (c ^ (r & 7))
}

/// `load_tile`: the 32-wide k slab of an operand with `rows` rows (BM or
/// BN), from `g(row, k)`, into shared memory as the kernel lays it out.
fn load_tile(rows: usize, kmajor: bool, threads: usize, g: impl Fn(usize, usize) -> f64) -> Smem {
    let mut s = vec![f64::NAN; rows * 32];
    let chunks = rows * 4;
    for i in 0..chunks / threads {
        for tid in 0..threads {
            let id = tid + i * threads;
            let (dst, row, k0) = if kmajor {
                let (r, c) = (id >> 2, id & 3);
                (kmajor_chunk(r, c), r, c * 8)
            } else {
                let per_row = rows / 8;
                let (r, c) = (id / per_row, id % per_row);
                // k-row r, elements c*8.. of the row dimension.
                (mnmajor_chunk(rows, r, c), c * 8, r)
            };
            for e in 0..8 {
                s[dst * 8 + e] = if kmajor { g(row, k0 + e) } else { g(row + e, k0) };
            }
        }
    }
    s
}

/// `frag_a` / `frag_b` addresses for every lane.
fn frag_a_addr(bm: usize, kmajor: bool, m_base: usize, kk: usize) -> [usize; 32] {
    std::array::from_fn(|lane| {
        let (i, r) = (lane >> 3, lane & 7);
        if kmajor {
            kmajor_chunk(m_base + r + (i & 1) * 8, (kk >> 3) + (i >> 1)) * 8
        } else {
            mnmajor_chunk(bm, kk + r + (i >> 1) * 8, (m_base >> 3) + (i & 1)) * 8
        }
    })
}
fn frag_b_addr(bn: usize, kmajor: bool, n_base: usize, kk: usize) -> [usize; 32] {
    std::array::from_fn(|lane| {
        let (i, r) = (lane >> 3, lane & 7);
        if kmajor {
            kmajor_chunk(n_base + r + (i >> 1) * 8, (kk >> 3) + (i & 1)) * 8
        } else {
            mnmajor_chunk(bn, kk + r + (i & 1) * 8, (n_base >> 3) + (i >> 1)) * 8
        }
    })
}

/// One k-tile of one block of `gemm_tc` (all warps), against A B.
fn check_gemm_tile(bm: usize, bn: usize, warps_m: usize, warps_n: usize, a_kmajor: bool, b_kmajor: bool) {
    let threads = warps_m * warps_n * 32;
    let (wm_size, wn_size) = (bm / warps_m, bn / warps_n);
    let (mt, nt) = (wm_size / 16, wn_size / 8);
    let a = |m: usize, k: usize| value(m, k, 1);
    let b = |k: usize, n: usize| value(k, n, 2);
    let sa = load_tile(bm, a_kmajor, threads, a);
    let sb = load_tile(bn, b_kmajor, threads, |n, k| b(k, n));
    assert!(sa.iter().chain(&sb).all(|v| !v.is_nan()), "the tile fill leaves no element unwritten");
    let what = format!("{bm}x{bn} A {} B {}", if a_kmajor { "k-major" } else { "m-major" }, if b_kmajor { "k-major" } else { "n-major" });
    for warp in 0..warps_m * warps_n {
        let (wm, wn) = ((warp / warps_n) * wm_size, (warp % warps_n) * wn_size);
        let mut acc = vec![vec![[[0.0; 4]; 32]; nt]; mt];
        for kk in [0, 16] {
            let af: Vec<_> = (0..mt)
                .map(|i| {
                    let addr = frag_a_addr(bm, a_kmajor, wm + i * 16, kk);
                    assert_conflict_free(&addr, &what);
                    ldmatrix_x4(&sa, &addr, !a_kmajor)
                })
                .collect();
            let bf: Vec<_> = (0..nt / 2)
                .map(|j| {
                    let addr = frag_b_addr(bn, b_kmajor, wn + j * 16, kk);
                    assert_conflict_free(&addr, &what);
                    ldmatrix_x4(&sb, &addr, !b_kmajor)
                })
                .collect();
            for (acc_i, af_i) in acc.iter_mut().zip(&af) {
                for (j, acc_ij) in acc_i.iter_mut().enumerate() {
                    let regs: [[Reg; 2]; 32] = std::array::from_fn(|t| {
                        let r = &bf[j >> 1][t];
                        [r[(j & 1) * 2], r[(j & 1) * 2 + 1]]
                    });
                    mma(acc_ij, af_i, &regs);
                }
            }
        }
        // The epilogue's mapping: rows lane/4 (+8), columns 2*(lane%4) (+1).
        for (i, acc_i) in acc.iter().enumerate() {
            for (j, r, c, got) in accumulators(acc_i) {
                let (row, col) = (wm + i * 16 + r, wn + j * 8 + c);
                let want: f64 = (0..32).map(|k| a(row, k) * b(k, col)).sum();
                assert_eq!(got, want, "{what}: C[{row}][{col}]");
            }
        }
    }
}

#[test]
fn gemm_tiles_compute_the_product_for_every_operand_layout() {
    for (bm, bn) in [(128, 128), (64, 64)] {
        for a_kmajor in [true, false] {
            for b_kmajor in [true, false] {
                check_gemm_tile(bm, bn, 2, 2, a_kmajor, b_kmajor);
            }
        }
    }
}

#[test]
fn swizzles_are_bijections() {
    for rows in [64, 128] {
        let mut k: Vec<usize> = (0..rows).flat_map(|r| (0..4).map(move |c| kmajor_chunk(r, c))).collect();
        k.sort_unstable();
        assert_eq!(k, (0..rows * 4).collect::<Vec<_>>());
        let mut m: Vec<usize> = (0..32).flat_map(|r| (0..rows / 8).map(move |c| mnmajor_chunk(rows, r, c))).collect();
        m.sort_unstable();
        assert_eq!(m, (0..32 * rows / 8).collect::<Vec<_>>());
    }
}

// --------------------------------------------------------- attention.cu

/// One warp of `attention_fwd` with P = S (no softmax): the Q K^T
/// fragments, the reuse of the S accumulators as the A fragments of P V,
/// and the V `.trans` fragments, for 16 query rows and a 64-key tile.
fn check_attention_warp(head_dim: usize) {
    let row = head_dim + 8; // ROW
    let q = |i: usize, d: usize| value(i, d, 3);
    let k = |j: usize, d: usize| value(j, d, 4);
    let v = |j: usize, d: usize| value(j, d, 5);
    let tile = |f: &dyn Fn(usize, usize) -> f64| -> Smem {
        let mut s = vec![0.0; 64 * row];
        for r in 0..64 {
            for d in 0..head_dim {
                s[r * row + d] = f(r, d);
            }
        }
        s
    };
    let (sq, sk, sv) = (tile(&q), tile(&k), tile(&v));
    let warp = 1; // rows 16..32 of the block
    let what = format!("head dim {head_dim}");
    // S = Q K^T.
    let mut s = vec![[[0.0; 4]; 32]; 8];
    for kt in 0..head_dim / 16 {
        let qa: [usize; 32] =
            std::array::from_fn(|lane| (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * row + kt * 16 + (lane >> 4) * 8);
        assert_conflict_free(&qa, &what);
        let a = ldmatrix_x4(&sq, &qa, false);
        for np in 0..4 {
            let ka: [usize; 32] =
                std::array::from_fn(|lane| (np * 16 + (lane & 7) + (lane >> 4) * 8) * row + kt * 16 + ((lane >> 3) & 1) * 8);
            assert_conflict_free(&ka, &what);
            let bf = ldmatrix_x4(&sk, &ka, false);
            mma(&mut s[2 * np], &a, &std::array::from_fn(|t| [bf[t][0], bf[t][1]]));
            mma(&mut s[2 * np + 1], &a, &std::array::from_fn(|t| [bf[t][2], bf[t][3]]));
        }
    }
    for (t, r, c, got) in accumulators(&s) {
        let (i, j) = (warp * 16 + r, t * 8 + c);
        let want: f64 = (0..head_dim).map(|d| q(i, d) * k(j, d)).sum();
        assert_eq!(got, want, "{what}: S[{i}][{j}]");
    }
    // O = P V with P taken from the S accumulators.
    let mut o = vec![[[0.0; 4]; 32]; head_dim / 8];
    for kk in 0..4 {
        let a: [[Reg; 4]; 32] = std::array::from_fn(|l| {
            [
                (s[2 * kk][l][0], s[2 * kk][l][1]),
                (s[2 * kk][l][2], s[2 * kk][l][3]),
                (s[2 * kk + 1][l][0], s[2 * kk + 1][l][1]),
                (s[2 * kk + 1][l][2], s[2 * kk + 1][l][3]),
            ]
        });
        for dp in 0..head_dim / 16 {
            let va: [usize; 32] =
                std::array::from_fn(|lane| (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * row + dp * 16 + (lane >> 4) * 8);
            assert_conflict_free(&va, &what);
            let bf = ldmatrix_x4(&sv, &va, true);
            mma(&mut o[2 * dp], &a, &std::array::from_fn(|t| [bf[t][0], bf[t][1]]));
            mma(&mut o[2 * dp + 1], &a, &std::array::from_fn(|t| [bf[t][2], bf[t][3]]));
        }
    }
    for (d8, r, cc, got) in accumulators(&o) {
        let (i, c) = (warp * 16 + r, d8 * 8 + cc);
        let want: f64 = (0..64).map(|j| (0..head_dim).map(|d| q(i, d) * k(j, d)).sum::<f64>() * v(j, c)).sum();
        assert_eq!(got, want, "{what}: O[{i}][{c}]");
    }
}

#[test]
fn attention_fragments_compute_qk_and_pv() {
    for head_dim in [16, 32, 64, 80, 96, 128, 256] {
        check_attention_warp(head_dim);
    }
}

/// The epilogue of `gemm_tc` with an activation: every accumulator is
/// staged in shared memory (rows of BN + 8 floats, float2 stores) and read
/// back by a rolled loop over the tile. Checks that the loop sees each
/// output element's own accumulator, that the staging stays inside the
/// host's allocation, and that each float2 store is conflict-free per
/// half-warp (the unit a 64-bit shared access is served in).
fn check_staged_epilogue(bm: usize, bn: usize, warps_m: usize, warps_n: usize) {
    let (wm_size, wn_size) = (bm / warps_m, bn / warps_n);
    let (mt, nt) = (wm_size / 16, wn_size / 8);
    let ldc = bn + 8;
    // Host: smem = max(pipeline, tile * (tile + 8) * 4) bytes.
    let smem_floats = (4 * (bm + bn) * 32 * 2).max(bm * (bn + 8) * 4) / 4;
    let mut smem = vec![f64::NAN; smem_floats];
    let want = |r: usize, c: usize| (r * 1000 + c) as f64;
    for warp in 0..warps_m * warps_n {
        let (wm, wn) = ((warp / warps_n) * wm_size, (warp % warps_n) * wn_size);
        for i in 0..mt {
            for j in 0..nt {
                for h in 0..2 {
                    let mut words = Vec::new();
                    for lane in 0..32 {
                        // The accumulator layout (mma model): element e of a
                        // lane is row lane/4 + 8*(e/2), column 2*(lane%4) + e%2.
                        let (g, q) = (lane / 4, lane % 4);
                        let acc = |e: usize| want(wm + i * 16 + g + 8 * (e / 2), wn + j * 8 + 2 * q + e % 2);
                        // The kernel's staging formula.
                        let r = wm + i * 16 + (lane >> 2) + h * 8;
                        let c = wn + j * 8 + (lane & 3) * 2;
                        assert_eq!((r * ldc + c) % 2, 0, "float2 stores are 8-byte aligned");
                        assert!(r * ldc + c + 1 < smem.len(), "{bm}x{bn}: staging overruns shared memory");
                        smem[r * ldc + c] = acc(2 * h);
                        smem[r * ldc + c + 1] = acc(2 * h + 1);
                        words.push(r * ldc + c);
                    }
                    for half in words.chunks(16) {
                        let mut banks: Vec<usize> = half.iter().flat_map(|&w| [w % 32, (w + 1) % 32]).collect();
                        banks.sort_unstable();
                        banks.dedup();
                        assert_eq!(banks.len(), 32, "{bm}x{bn}: float2 staging stores conflict: {half:?}");
                    }
                }
            }
        }
    }
    // The read-back loop: e = threadIdx.x + t * THREADS over BM * BN.
    for e in 0..bm * bn {
        let (r, c) = (e / bn, e % bn);
        assert_eq!(smem[r * ldc + c], want(r, c), "{bm}x{bn}: C[{r}][{c}]");
    }
}

#[test]
fn staged_epilogue_reads_back_every_accumulator() {
    for (bm, bn) in [(128, 128), (64, 64)] {
        check_staged_epilogue(bm, bn, 2, 2);
    }
}
