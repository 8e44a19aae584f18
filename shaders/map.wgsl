// map.wgsl: the entry point of kernels that compute each output element
// independently (elementwise.wgsl, rope.wgsl, the index kernels).
//
// One invocation per output word: it calls the kernel file's
// `element(i, &acc)` for its OUT_C consecutive elements (see codegen.rs),
// so every word of a packed output is written by one invocation. `acc`
// starts as `{{INIT}}`: 0u, or the word's current bits (`out_word(t)`) for
// kernels that write only some elements of the output (concatenation).
// p[0] = the number of output elements.

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = flat_id(wid, nwg, lid);
    let n = p[0];
    let first = t * OUT_C;
    if (first >= n) {
        return;
    }
    var acc = {{INIT}};
    for (var j = 0u; j < OUT_C; j = j + 1u) {
        let i = first + j;
        if (i < n) {
            element(i, &acc);
        }
    }
    out_flush(t, acc);
}
