// sort.wgsl: stable argsort along one dim, by ranking.
//
// The input (any strides, p holds its layout) is seen as [outer, len,
// inner] around the sorted dim: extra(0) = len, extra(1) = inner,
// extra(2) = the number of chunks of RUN keys per line. Element (o, j, q)
// is logical element (o * len + j) * inner + q.
//
// Algorithm: the rank of element j in its line is the number of elements
// that sort before it: those `before` it, and equal ones at a lower
// position (stability). count_main runs one invocation per (element,
// chunk of RUN other elements) and adds its count to the element's rank
// with an atomic; scatter_main writes each element's position j at its
// rank in the i64 output. O(len^2) comparisons per line, spread over
// len * len / RUN invocations: meant for the vocabulary and top-k sizes
// models sort. NaN sorts last ascending and first descending. `{{T}}` is
// f32 for floats or vec2<u32> (i64) for integers.
// Limits: 2^32 - 1 elements.

const RUN: u32 = 1024u;

fn before(a: {{T}}, b: {{T}}) -> bool {
    {{BEFORE}}
}

fn at(e: u32, k: u32) -> u32 {
    let inner = extra(1u);
    let len = extra(0u);
    let q = e % inner;
    let o = e / (inner * len);
    return (o * len + k) * inner + q;
}

@compute @workgroup_size(256)
fn count_main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let id = flat_id(wid, nwg, lid);
    let chunks = extra(2u);
    let e = id / chunks;
    if (e >= p[0]) {
        return;
    }
    let len = extra(0u);
    let j = (e / extra(1u)) % len;
    let k0 = (id % chunks) * RUN;
    let v = {{LOAD}}(offset_of(operand(0u), at(e, j)));
    var n = 0u;
    for (var k = k0; k < min(k0 + RUN, len); k = k + 1u) {
        let w = {{LOAD}}(offset_of(operand(0u), at(e, k)));
        if (k != j && (before(w, v) || (k < j && !before(v, w)))) {
            n = n + 1u;
        }
    }
    if (n > 0u) {
        atomicAdd(&ranks[e], n);
    }
}

@compute @workgroup_size(256)
fn scatter_main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let e = flat_id(wid, nwg, lid);
    if (e >= p[0]) {
        return;
    }
    let j = (e / extra(1u)) % extra(0u);
    var unused = 0u;
    out_put_i(at(e, atomicLoad(&ranks[e])), vec2<u32>(j, 0u), &unused);
}
