// reduce.wgsl: sum / mean / max / min over a set of dims.
//
// Algorithm: the host permutes the reduced dims last, so the input is
// `outer` rows of `inner` elements (any strides: p holds that permuted
// layout). One workgroup of 256 invocations reduces one row: each
// invocation folds a strided slice of the row, then a tree in workgroup
// memory combines the 256 partial results. `{{T}}` is the accumulator type
// (f32 for floats, vec2<u32> = i64 for integers). `{{LOAD}}` reads element
// i, `{{LIFT}}` turns it (`x`) into an accumulator, and `{{COMBINE}}`,
// `{{IDENTITY}}` and `{{FINISH}}` specialise the fold. Float sums and means
// carry double-f32 (hi, lo) pairs (`df_add` in common.wgsl), so long sums
// keep f32 accuracy and the mean of equal values is that value. Row r is written as
// element r of `out` (whose dtype has one element per word or more: the
// host reduces into f32/i64 and casts when the result dtype is packed).
// Limits: rows of up to 2^32 - 1 elements; outer up to the dispatch limits.

var<workgroup> part: array<{{T}}, 256>;

fn combine(a: {{T}}, b: {{T}}) -> {{T}} {
    return {{COMBINE}};
}

fn lift(x: {{V}}) -> {{T}} {
    return {{LIFT}};
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.y * nwg.x + wid.x;
    let inner = extra(0u);
    let outer = extra(1u);
    var acc: {{T}} = {{IDENTITY}};
    if (row < outer) {
        for (var c = lid; c < inner; c = c + WG) {
            let i = row * inner + c;
            acc = combine(acc, lift({{LOAD}}));
        }
    }
    part[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            part[lid] = combine(part[lid], part[lid + s]);
        }
        workgroupBarrier();
    }
    if (lid == 0u && row < outer) {
        var unused = 0u;
        let r = part[0];
        {{FINISH}}
    }
}
