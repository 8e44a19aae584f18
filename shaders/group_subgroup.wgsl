// group_subgroup.wgsl: workgroup-wide sum and max of one f32 per
// invocation with subgroup operations (adapters with the subgroups
// feature; group_shared.wgsl is the fallback with the same functions).
//
// Each subgroup reduces in registers; its lowest invocation (found with
// subgroupMin, since WGSL does not promise how invocations are grouped)
// leaves the partial result in workgroup memory at its own index; then
// invocation 0 combines the partials in index order, so the result does
// not depend on scheduling. Every invocation of the workgroup must call
// them (uniform control flow), and every invocation gets the result.

var<workgroup> group_part: array<f32, 256>;
var<workgroup> group_lead: array<u32, 256>;
var<workgroup> group_result: f32;

fn group_combine(lid: u32, partial: f32, is_max: bool) -> f32 {
    group_lead[lid] = 0u;
    workgroupBarrier();
    if (subgroupMin(lid) == lid) {
        group_part[lid] = partial;
        group_lead[lid] = 1u;
    }
    workgroupBarrier();
    if (lid == 0u) {
        var r = select(0.0, inf_f32(true), is_max);
        for (var i = 0u; i < WG; i = i + 1u) {
            if (group_lead[i] == 1u) {
                r = select(r + group_part[i], max_f(r, group_part[i]), is_max);
            }
        }
        group_result = r;
    }
    workgroupBarrier();
    let r = group_result;
    workgroupBarrier();
    return r;
}

fn group_sum(lid: u32, v: f32) -> f32 {
    return group_combine(lid, subgroupAdd(v), false);
}

fn group_max(lid: u32, v: f32) -> f32 {
    // subgroupMax need not propagate NaN: carry it through a flag.
    let nan = subgroupAny(is_nan(v));
    return group_combine(lid, select(subgroupMax(v), nan_f32(), nan), true);
}
