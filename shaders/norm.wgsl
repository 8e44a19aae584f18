// norm.wgsl: softmax / log-softmax, layer norm and RMS norm over the last
// dim.
//
// Algorithm: one workgroup of 256 invocations per row. Row statistics are
// workgroup reductions in f32 (`group_sum`/`group_max` from
// group_subgroup.wgsl where the adapter has subgroups, else
// group_shared.wgsl) (softmax: the max, then the sum of
// exp(x - max); layer norm: the mean, then the mean squared deviation, two
// passes so that large offsets do not cancel; RMS norm: the mean square),
// then every invocation writes its strided share of the row.
// Layouts: x any strides (p holds its layout, logical element
// row * d + c); weight and bias 1-D with offset/stride in extra(2..6);
// extra(0) = d, extra(1) = rows, extra(6) = eps (f32 bits). The output is
// contiguous, written as f32 or the output dtype when it has one element
// per word (the host casts packed results).
// `{{MODE}}`: 0 softmax, 1 log-softmax, 2 layer norm, 3 RMS norm.
// `{{W}}`/`{{B}}` read weight/bias element c (or 1.0/0.0 when absent).
// Limits: rows of up to 2^32 - 1 elements.

const MODE: u32 = {{MODE}}u;

fn xv(row: u32, c: u32) -> f32 {
    return a_f(offset_of(operand(0u), row * extra(0u) + c));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.y * nwg.x + wid.x;
    let d = extra(0u);
    // Every invocation of the workgroup takes part in the barriers.
    let live = row < extra(1u);
    var unused = 0u;
    if (MODE <= 1u) {
        var m = inf_f32(true);
        if (live) {
            for (var c = lid; c < d; c = c + WG) {
                m = max_f(m, xv(row, c));
            }
        }
        m = group_max(lid, m);
        var s = 0.0;
        if (live) {
            for (var c = lid; c < d; c = c + WG) {
                s = s + exp_f(xv(row, c) - m);
            }
        }
        s = group_sum(lid, s);
        if (live) {
            let ls = log_f(s);
            for (var c = lid; c < d; c = c + WG) {
                let z = xv(row, c) - m;
                var y: f32;
                if (MODE == 1u) {
                    y = z - ls;
                } else {
                    y = exp_f(z) / s;
                }
                out_put_f(row * d + c, y, &unused);
            }
        }
    } else {
        var mean = 0.0;
        if (MODE == 2u) {
            // Sums of x - x[0]: a constant row gives a mean equal to its
            // elements exactly, so x - mean is exactly 0 there.
            var shift = 0.0;
            var s = 0.0;
            if (live) {
                shift = xv(row, 0u);
                for (var c = lid; c < d; c = c + WG) {
                    s = s + (xv(row, c) - shift);
                }
            }
            mean = shift + group_sum(lid, s) / f32(d);
        }
        var q = 0.0;
        if (live) {
            for (var c = lid; c < d; c = c + WG) {
                let z = xv(row, c) - mean;
                q = q + z * z;
            }
        }
        // 1 / sqrt, not inverseSqrt: drivers may answer the latter to 12 bits.
        let inv = 1.0 / sqrt(group_sum(lid, q) / f32(d) + extra_f(6u));
        if (live) {
            for (var c = lid; c < d; c = c + WG) {
                let y = (xv(row, c) - mean) * inv * {{W}} + {{B}};
                out_put_f(row * d + c, y, &unused);
            }
        }
    }
}
