// fill.wgsl: sets every word of a buffer to a repeating pattern.
//
// Algorithm: one invocation per 32-bit word; word w gets extra(w % 2) (the
// host replicates 8- and 16-bit values across the word and gives i64 values
// as their low and high words). Layout: contiguous output of p[0] words.
// The host binds the output as u32, so `out` is its words.
// Limits: 2^32 - 1 words.

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let w = flat_id(wid, nwg, lid);
    if (w < p[0]) {
        out[w] = extra(w % 2u);
    }
}
