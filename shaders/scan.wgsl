// scan.wgsl: cumulative sum along one dim.
//
// The input (any strides, p holds its layout) is seen as [outer, len,
// inner] around the scanned dim: extra(0) = len, extra(1) = inner,
// extra(2) = outer * inner (the number of lines). Element (o, j, q) is
// logical element (o * len + j) * inner + q of the input and of the
// contiguous output.
//
// Algorithm: one workgroup of 256 invocations per line. Invocation t owns
// the chunk [t * C, (t + 1) * C) of the line (C = ceil(len / 256)): it sums
// its chunk, the workgroup scans the 256 chunk sums (Hillis-Steele in
// workgroup memory), and each invocation rescans its chunk from its prefix,
// writing as it goes. Sums accumulate in `{{T}}` (f32 for floats, vec2<u32>
// = i64 for integers); the output dtype has one element per word or more
// (the host scans into f32/i64 and casts packed results). Loops are split
// into runs of 4096 iterations (software Vulkan drivers cap a single
// loop's trip count).
// Limits: 2^32 - 1 elements.

var<workgroup> sums: array<{{T}}, 256>;

fn add(a: {{T}}, b: {{T}}) -> {{T}} {
    return {{ADD}};
}

fn at(o: u32, j: u32, q: u32) -> u32 {
    return (o * extra(0u) + j) * extra(1u) + q;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let line = wid.y * nwg.x + wid.x;
    let len = extra(0u);
    let inner = extra(1u);
    let live = line < extra(2u);
    let o = line / inner;
    let q = line % inner;
    let chunk = (len + WG - 1u) / WG;
    let start = min(lid * chunk, len);
    let end = min(start + chunk, len);
    var s: {{T}} = {{IDENTITY}};
    if (live) {
        for (var c0 = start; c0 < end; c0 = c0 + 4096u) {
            for (var j = c0; j < min(c0 + 4096u, end); j = j + 1u) {
                let i = at(o, j, q);
                s = add(s, {{LOAD}});
            }
        }
    }
    sums[lid] = s;
    workgroupBarrier();
    // Inclusive scan of the chunk sums.
    for (var d = 1u; d < WG; d = d * 2u) {
        var v = sums[lid];
        if (lid >= d) {
            v = add(sums[lid - d], v);
        }
        workgroupBarrier();
        sums[lid] = v;
        workgroupBarrier();
    }
    if (live) {
        var acc: {{T}} = {{IDENTITY}};
        if (lid > 0u) {
            acc = sums[lid - 1u];
        }
        var unused = 0u;
        for (var c0 = start; c0 < end; c0 = c0 + 4096u) {
            for (var j = c0; j < min(c0 + 4096u, end); j = j + 1u) {
                let i = at(o, j, q);
                acc = add(acc, {{LOAD}});
                {{STORE}}
            }
        }
    }
}
