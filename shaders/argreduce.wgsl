// argreduce.wgsl: argmax / argmin over one dim.
//
// Algorithm: as reduce.wgsl (the host permutes the dim last: `outer` rows
// of `inner` elements, any strides; one workgroup of 256 invocations per
// row), folding (value, index) pairs: each invocation keeps the best of its
// strided slice, then a tree in workgroup memory picks the best of the 256.
// `{{ARG_BETTER}}` decides: ties keep the lowest index and a NaN beats
// every number (the first NaN wins). `{{V}}` is f32 or vec2<u32> (i64);
// `{{LOAD}}` reads element i. Row r's index is written as i64 element r.
// Limits: rows of up to 2^32 - 1 elements.

var<workgroup> part_v: array<{{V}}, 256>;
var<workgroup> part_idx: array<u32, 256>;

// Whether (va, ia) is preferred to (vb, ib) by the arg-reduction.
fn arg_better(va: {{V}}, ia: u32, vb: {{V}}, ib: u32) -> bool {
    let a_first = ia < ib;
    {{ARG_BETTER}}
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.y * nwg.x + wid.x;
    let inner = extra(0u);
    let outer = extra(1u);
    var best: {{V}} = {{IDENTITY}};
    var best_i = 0xffffffffu;
    if (row < outer) {
        for (var c = lid; c < inner; c = c + WG) {
            let i = row * inner + c;
            let v = {{LOAD}};
            if (best_i == 0xffffffffu || arg_better(v, c, best, best_i)) {
                best = v;
                best_i = c;
            }
        }
    }
    part_v[lid] = best;
    part_idx[lid] = best_i;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            let oi = part_idx[lid + s];
            if (oi != 0xffffffffu && (part_idx[lid] == 0xffffffffu || arg_better(part_v[lid + s], oi, part_v[lid], part_idx[lid]))) {
                part_v[lid] = part_v[lid + s];
                part_idx[lid] = oi;
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u && row < outer) {
        var unused = 0u;
        out_put_i(row, vec2<u32>(part_idx[0], 0u), &unused);
    }
}
