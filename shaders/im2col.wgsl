// im2col.wgsl: the columns of a 2-D convolution, for the product with its
// weight in matmul.wgsl / matmul_rt.wgsl (conv2d = im2col, then a batched
// matmul with the bias in its epilogue).
//
// Algorithm: an elementwise kernel (map.wgsl entry, one invocation per
// output word): column element (ni, gi, q, kk) is input element
// (ni, gi * cg + ci, oy * sh + ki * dh - ph, ox * sw + kj * dw - pw), where
// q = oy * ow + ox is the output position and kk = (ci * kh + ki) * kw + kj
// the tap, or 0 where that falls in the padding. Elements are moved as raw
// bits in the input's dtype, so the product reads the same values as from x.
// Layouts: x `[n, c, h, w]` with any strides (operand(0): offset and its
// four strides; p[1] = 0, no shared shape); the output is contiguous
// `[n, groups, oh * ow, cg * kh * kw]` (k innermost: the product reads it as
// a transposed B, runs along k). The geometry is in the words after the
// record, `geo(k)` = p[operand(1) + k]: K, P = oh * ow, groups, cg, kh, kw,
// ow, h, w, stride (2), padding (2), dilation (2).
// Limits: 2^32 - 1 column elements (the host checks).

fn geo(k: u32) -> u32 {
    return p[operand(1u) + k];
}

fn element(i: u32, acc: ptr<function, u32>) {
    let kk_all = geo(0u);
    let positions = geo(1u);
    let groups = geo(2u);
    let cg = geo(3u);
    let kh = geo(4u);
    let kw = geo(5u);
    let ow = geo(6u);
    let kk = i % kk_all;
    let rest = i / kk_all;
    let q = rest % positions;
    let ng = rest / positions;
    let gi = ng % groups;
    let ni = ng / groups;
    let ci = kk / (kh * kw);
    let tap = kk % (kh * kw);
    let y = i32((q / ow) * geo(9u) + (tap / kw) * geo(13u)) - i32(geo(11u));
    let x = i32((q % ow) * geo(10u) + (tap % kw) * geo(14u)) - i32(geo(12u));
    var bits = vec2<u32>(0u, 0u);
    if (y >= 0 && x >= 0 && u32(y) < geo(7u) && u32(x) < geo(8u)) {
        let r = operand(0u);
        bits = a_b(p[r] + ni * p[r + 1u] + (gi * cg + ci) * p[r + 2u] + u32(y) * p[r + 3u] + u32(x) * p[r + 4u]);
    }
    out_put_b(i, bits, acc);
}
