// matmul_rt.wgsl: batched C = A B in f32 accumulation, register tiles
// only: no workgroup memory and no barriers. The variant for software
// adapters (llvmpipe), where workgroup memory and barriers are expensive
// and every load whose address varies per invocation is a loop over the
// SIMD lanes: what counts there is multiply-adds per loaded element.
//
// Algorithm: a workgroup is one subgroup of 8 invocations covering 8 rows
// and 32 columns of C; each invocation owns all 8 rows of 4 columns in
// registers (two 4 x 4 tiles). Operands are read straight from storage:
// each invocation reads its own 4 columns of B, while A is read once per
// subgroup: invocation i reads row i and subgroupBroadcast hands every
// element to all 8 (A's rows are the same for the whole workgroup).
// With `{{RUNS}}` = 1, A rows and B columns are both contiguous along k
// and 16-byte aligned: a step reads one 16-byte run (KV elements: 4 f32,
// or 8 f16/bf16) per row and column and does 8 x 4 x KV multiply-adds;
// otherwise each k reads one element per row and column through the
// strided accessors. Rows and columns past the edges are clamped for
// reading and not stored. The tiles are written out by hand (no arrays, no
// loops over registers): llvmpipe keeps dynamically indexed arrays in
// memory.
// Layouts: as matmul.wgsl: A [batch..., m, k], B [batch..., k, n] with any
// strides; operand(0/1) = A/B batch strides; extra(0..3) = m, n, k;
// extra(3..7) = A row/col strides, B row/col strides. C is contiguous
// [batch, m, n] (f32, or the output dtype with one element per word),
// written through `epilogue` (epilogue.wgsl: bias and activation, or
// nothing). The host guarantees for RUNS: unit k stride, k, row strides
// and offsets multiples of KV; `a4_run_f`/`b4_run_f` decode element e of
// a run.
// Limits: adapters whose subgroups are exactly 8 invocations (the host
// checks); m, n, k and the batch below 2^32; the k loop runs in nested
// runs of 4096 steps (llvmpipe stops a single loop after 21845).

const RUNS: bool = {{RUNS}}u == 1u;
const KV: u32 = {{KV}}u;
const STEPS: u32 = 4096u;
const BLOCKS: u32 = {{BLOCKS}}u;

// Four rows of four columns of C.
struct Tile {
    r0: vec4<f32>,
    r1: vec4<f32>,
    r2: vec4<f32>,
    r3: vec4<f32>,
}

// t += a (a column of A) times b (a row of B).
fn rank1(t: Tile, a: vec4<f32>, b: vec4<f32>) -> Tile {
    return Tile(fma(vec4<f32>(a.x), b, t.r0), fma(vec4<f32>(a.y), b, t.r1), fma(vec4<f32>(a.z), b, t.r2), fma(vec4<f32>(a.w), b, t.r3));
}

// Rows 0-3 (lo) and 4-7 (hi) of the subgroup's column of A, invocation i
// holding row i's element.
fn rows_lo(v: f32) -> vec4<f32> {
    return vec4<f32>(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u));
}

fn rows_hi(v: f32) -> vec4<f32> {
    return vec4<f32>(subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
}

// Eight rows of four columns: rows 0-3 (lo) and 4-7 (hi).
struct Block {
    lo: Tile,
    hi: Tile,
}

// t += the column of A whose element for row i invocation i holds, times b.
fn block_rank1(t: Block, v: f32, b: vec4<f32>) -> Block {
    return Block(rank1(t.lo, rows_lo(v), b), rank1(t.hi, rows_hi(v), b));
}

// The invocation's 8 x BLOCKS rows (blocks past BLOCKS stay zero).
struct Acc {
    b0: Block,
    b1: Block,
    b2: Block,
    b3: Block,
}

// One k element: row i + 8 j of A from aj in invocation i, b a row of B.
fn acc_rank1(t: Acc, a0: f32, a1: f32, a2: f32, a3: f32, b: vec4<f32>) -> Acc {
    var r = t;
    r.b0 = block_rank1(t.b0, a0, b);
    if (BLOCKS > 1u) {
        r.b1 = block_rank1(t.b1, a1, b);
    }
    if (BLOCKS > 2u) {
        r.b2 = block_rank1(t.b2, a2, b);
        r.b3 = block_rank1(t.b3, a3, b);
    }
    return r;
}

// The rank-1 update of k element e (a constant at every call) of the runs.
fn run_step(t: Acc, a0: vec4<u32>, a1: vec4<u32>, a2: vec4<u32>, a3: vec4<u32>, b0: vec4<u32>, b1: vec4<u32>, b2: vec4<u32>, b3: vec4<u32>, e: u32) -> Acc {
    let b = vec4<f32>(b4_run_f(b0, e), b4_run_f(b1, e), b4_run_f(b2, e), b4_run_f(b3, e));
    return acc_rank1(t, a4_run_f(a0, e), a4_run_f(a1, e), a4_run_f(a2, e), a4_run_f(a3, e), b);
}

fn store_row(batch: u32, m: u32, n: u32, r: u32, col0: u32, v: vec4<f32>) {
    var unused = 0u;
    for (var j = 0u; j < 4u; j = j + 1u) {
        if (col0 + j < n) {
            out_put_f((batch * m + r) * n + col0 + j, epilogue(v[j], batch, r, col0 + j), &unused);
        }
    }
}

fn store_tile(batch: u32, m: u32, n: u32, row0: u32, col0: u32, t: Tile) {
    if (row0 < m) {
        store_row(batch, m, n, row0, col0, t.r0);
    }
    if (row0 + 1u < m) {
        store_row(batch, m, n, row0 + 1u, col0, t.r1);
    }
    if (row0 + 2u < m) {
        store_row(batch, m, n, row0 + 2u, col0, t.r2);
    }
    if (row0 + 3u < m) {
        store_row(batch, m, n, row0 + 3u, col0, t.r3);
    }
}

fn store_block(batch: u32, m: u32, n: u32, row0: u32, col0: u32, t: Block) {
    store_tile(batch, m, n, row0, col0, t.lo);
    store_tile(batch, m, n, row0 + 4u, col0, t.hi);
}

@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let m = extra(0u);
    let n = extra(1u);
    let k = extra(2u);
    let a_rs = extra(3u);
    let a_cs = extra(4u);
    let b_rs = extra(5u);
    let b_cs = extra(6u);
    let batch = wid.z;
    let row0 = wid.y * 8u * BLOCKS;
    let col0 = (wid.x * 8u + lane) * 4u;
    // This invocation's row of A and columns of B (element offsets).
    let a_base = offset_of(operand(0u), batch);
    let ar0 = a_base + min(row0 + lane, m - 1u) * a_rs;
    let ar1 = a_base + min(row0 + 8u + lane, m - 1u) * a_rs;
    let ar2 = a_base + min(row0 + 16u + lane, m - 1u) * a_rs;
    let ar3 = a_base + min(row0 + 24u + lane, m - 1u) * a_rs;
    let b_base = offset_of(operand(1u), batch);
    let bc0 = b_base + min(col0, n - 1u) * b_cs;
    let bc1 = b_base + min(col0 + 1u, n - 1u) * b_cs;
    let bc2 = b_base + min(col0 + 2u, n - 1u) * b_cs;
    let bc3 = b_base + min(col0 + 3u, n - 1u) * b_cs;
    let zero = Tile(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    let zero8 = Block(zero, zero);
    var t = Acc(zero8, zero8, zero8, zero8);
    if (RUNS) {
        let steps = k / KV;
        for (var s0 = 0u; s0 < steps; s0 = s0 + STEPS) {
            for (var s = s0; s < min(s0 + STEPS, steps); s = s + 1u) {
                let kk = s * KV;
                let a0 = a4[(ar0 + kk) / KV];
                var a1 = a0;
                var a2 = a0;
                var a3 = a0;
                if (BLOCKS > 1u) {
                    a1 = a4[(ar1 + kk) / KV];
                }
                if (BLOCKS > 2u) {
                    a2 = a4[(ar2 + kk) / KV];
                    a3 = a4[(ar3 + kk) / KV];
                }
                let b0 = b4[(bc0 + kk) / KV];
                let b1 = b4[(bc1 + kk) / KV];
                let b2 = b4[(bc2 + kk) / KV];
                let b3 = b4[(bc3 + kk) / KV];
                t = run_step(t, a0, a1, a2, a3, b0, b1, b2, b3, 0u);
                t = run_step(t, a0, a1, a2, a3, b0, b1, b2, b3, 1u);
                t = run_step(t, a0, a1, a2, a3, b0, b1, b2, b3, 2u);
                t = run_step(t, a0, a1, a2, a3, b0, b1, b2, b3, 3u);
                if (KV == 8u) {
                    t = run_step(t, a0, a1, a2, a3, b0, b1, b2, b3, 4u);
                    t = run_step(t, a0, a1, a2, a3, b0, b1, b2, b3, 5u);
                    t = run_step(t, a0, a1, a2, a3, b0, b1, b2, b3, 6u);
                    t = run_step(t, a0, a1, a2, a3, b0, b1, b2, b3, 7u);
                }
            }
        }
    } else {
        for (var k0 = 0u; k0 < k; k0 = k0 + STEPS) {
            for (var kk = k0; kk < min(k0 + STEPS, k); kk = kk + 1u) {
                let b = vec4<f32>(b_f(bc0 + kk * b_rs), b_f(bc1 + kk * b_rs), b_f(bc2 + kk * b_rs), b_f(bc3 + kk * b_rs));
                let a0 = a_f(ar0 + kk * a_cs);
                var a1 = a0;
                var a2 = a0;
                var a3 = a0;
                if (BLOCKS > 1u) {
                    a1 = a_f(ar1 + kk * a_cs);
                }
                if (BLOCKS > 2u) {
                    a2 = a_f(ar2 + kk * a_cs);
                    a3 = a_f(ar3 + kk * a_cs);
                }
                t = acc_rank1(t, a0, a1, a2, a3, b);
            }
        }
    }
    store_block(batch, m, n, row0, col0, t.b0);
    store_block(batch, m, n, row0 + 8u, col0, t.b1);
    store_block(batch, m, n, row0 + 16u, col0, t.b2);
    store_block(batch, m, n, row0 + 24u, col0, t.b3);
}
