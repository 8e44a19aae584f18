// group_shared.wgsl: workgroup-wide sum and max of one f32 per invocation,
// by a tree in workgroup memory (8 halving steps for 256 invocations).
// Every invocation of the workgroup must call them (they use barriers), and
// every invocation gets the result.

var<workgroup> group_part: array<f32, 256>;

fn group_reduce(lid: u32, v: f32, is_max: bool) -> f32 {
    group_part[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            let a = group_part[lid];
            let b = group_part[lid + s];
            group_part[lid] = select(a + b, max_f(a, b), is_max);
        }
        workgroupBarrier();
    }
    let r = group_part[0];
    workgroupBarrier();
    return r;
}

fn group_sum(lid: u32, v: f32) -> f32 {
    return group_reduce(lid, v, false);
}

fn group_max(lid: u32, v: f32) -> f32 {
    return group_reduce(lid, v, true);
}
