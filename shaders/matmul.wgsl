// matmul.wgsl: batched C = A B in f32 accumulation.
//
// Algorithm: classic shared-memory tiling. A workgroup of 16 x 16
// invocations computes a 64 x 64 tile of C; each invocation owns a 4 x 4
// block in registers. Per step of BK = 16 along k, the workgroup stages a
// 64 x 16 slice of A and a 16 x 64 slice of B in workgroup memory (widened
// to f32 as they are loaded, with zero fill past the edges), then every
// invocation does 4 x 4 x 16 multiply-adds from it. The shared slices are
// padded by one column to avoid bank conflicts on the transposed reads.
// Layouts: A [batch..., m, k] and B [batch..., k, n] with any strides
// (transposed weights cost nothing); p holds the merged batch shape with
// operand(0) = A's batch strides, operand(1) = B's batch strides;
// extra(0..3) = m, n, k; extra(3..7) = A row/col strides, B row/col
// strides. C is contiguous [batch, m, n], written as f32 (or the output
// dtype when it has one element per word; the host casts packed results)
// through `epilogue` (epilogue.wgsl: bias and activation, or nothing).
// Vector loads: when `{{VEC_A}}` is 1, A is f32 with unit stride along k and
// every row start 4-aligned (k too), and the A slice is read as one vec4 per
// invocation from the view `a4`; `{{VEC_B}}` likewise for B along n (`b4`).
// Limits: m, n, k and the batch below 2^32; batch count up to the
// dispatch limit (65535 on most adapters) per launch.

const TM: u32 = 64u;
const TN: u32 = 64u;
const BK: u32 = 16u;
const VEC_A: bool = {{VEC_A}}u == 1u;
const VEC_B: bool = {{VEC_B}}u == 1u;

var<workgroup> sa: array<array<f32, 65>, 16>;
var<workgroup> sb: array<array<f32, 65>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m = extra(0u);
    let n = extra(1u);
    let k = extra(2u);
    let a_rs = extra(3u);
    let a_cs = extra(4u);
    let b_rs = extra(5u);
    let b_cs = extra(6u);
    let batch = wid.z;
    let a_base = offset_of(operand(0u), batch);
    let b_base = offset_of(operand(1u), batch);
    let row0 = wid.y * TM;
    let col0 = wid.x * TN;
    let tr = lid3.y * 4u;
    let tc = lid3.x * 4u;
    // The 4 x 4 block as four row vectors: registers on every compiler.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < k; k0 = k0 + BK) {
        // 256 invocations stage 64 x 16 elements of A and 16 x 64 of B:
        // four each, as one vec4 or four scalars.
        if (VEC_A) {
            let ar = lid / 4u;
            let ak = (lid % 4u) * 4u;
            var v = vec4<f32>(0.0);
            if (row0 + ar < m && k0 + ak < k) {
                let w = a4[(a_base + (row0 + ar) * a_rs + k0 + ak) / 4u];
                v = vec4<f32>(a4_run_f(w, 0u), a4_run_f(w, 1u), a4_run_f(w, 2u), a4_run_f(w, 3u));
            }
            for (var e = 0u; e < 4u; e = e + 1u) {
                sa[ak + e][ar] = v[e];
            }
        } else {
            for (var e = 0u; e < 4u; e = e + 1u) {
                // A slice: idx = r * 16 + kk.
                let idx = lid + e * 256u;
                let ar = idx / BK;
                let ak = idx % BK;
                var av = 0.0;
                if (row0 + ar < m && k0 + ak < k) {
                    av = a_f(a_base + (row0 + ar) * a_rs + (k0 + ak) * a_cs);
                }
                sa[ak][ar] = av;
            }
        }
        if (VEC_B) {
            let bk = lid / 16u;
            let bc = (lid % 16u) * 4u;
            var v = vec4<f32>(0.0);
            if (k0 + bk < k && col0 + bc < n) {
                let w = b4[(b_base + (k0 + bk) * b_rs + col0 + bc) / 4u];
                v = vec4<f32>(b4_run_f(w, 0u), b4_run_f(w, 1u), b4_run_f(w, 2u), b4_run_f(w, 3u));
            }
            for (var e = 0u; e < 4u; e = e + 1u) {
                sb[bk][bc + e] = v[e];
            }
        } else {
            for (var e = 0u; e < 4u; e = e + 1u) {
                // B slice: idx = kk * 64 + c.
                let idx = lid + e * 256u;
                let bk = idx / TN;
                let bc = idx % TN;
                var bv = 0.0;
                if (k0 + bk < k && col0 + bc < n) {
                    bv = b_f(b_base + (k0 + bk) * b_rs + (col0 + bc) * b_cs);
                }
                sb[bk][bc] = bv;
            }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk = kk + 1u) {
            let ar = vec4<f32>(sa[kk][tr], sa[kk][tr + 1u], sa[kk][tr + 2u], sa[kk][tr + 3u]);
            let br = vec4<f32>(sb[kk][tc], sb[kk][tc + 1u], sb[kk][tc + 2u], sb[kk][tc + 3u]);
            acc0 = fma(vec4<f32>(ar.x), br, acc0);
            acc1 = fma(vec4<f32>(ar.y), br, acc1);
            acc2 = fma(vec4<f32>(ar.z), br, acc2);
            acc3 = fma(vec4<f32>(ar.w), br, acc3);
        }
        workgroupBarrier();
    }
    let c_base = batch * m * n;
    var unused = 0u;
    for (var i = 0u; i < 4u; i = i + 1u) {
        let r = row0 + tr + i;
        var row: vec4<f32>;
        switch i {
            case 0u: { row = acc0; }
            case 1u: { row = acc1; }
            case 2u: { row = acc2; }
            default: { row = acc3; }
        }
        if (r < m) {
            for (var j = 0u; j < 4u; j = j + 1u) {
                let c = col0 + tc + j;
                if (c < n) {
                    out_put_f(c_base + r * n + c, epilogue(row[j], batch, r, c), &unused);
                }
            }
        }
    }
}
