// norm.wgsl: softmax / log-softmax, layer norm and RMS norm over rows of
// consecutive logical elements: the last dim, or for group norm the
// channels of one (n, group); for add_norm the row is x + residual.
//
// Algorithm: one workgroup of 256 invocations per row. Row statistics are
// workgroup reductions in f32 (`group_sum`/`group_max` from
// group_subgroup.wgsl where the adapter has subgroups, else
// group_shared.wgsl) (softmax: the max, then the sum of
// exp(x - max); layer norm: the mean, then the mean squared deviation, two
// passes so that large offsets do not cancel; RMS norm: the mean square),
// then every invocation writes its strided share of the row.
// Layouts: p holds the shape of x with one record per operand: operand(0)
// = x, then (with a residual) operand(1) = the residual, then the weight
// and bias, all with strides over x's shape (a weight steps along the last
// dim, or along the channels for group norm, and is broadcast elsewhere);
// element e = row * d + c of a row is logical element e of x.
// extra(0) = d, extra(1) = rows, extra(6) = eps (f32 bits). The outputs
// are contiguous, written as f32 or the output dtype when it has one
// element per word (the host casts packed results).
// `{{MODE}}`: 0 softmax, 1 log-softmax, 2 layer norm, 3 RMS norm.
// `{{X}}` reads element e of the row (x, or x + residual rounded to the
// dtype, as a separate add would store it); `{{W}}`/`{{B}}` the weight and
// bias for element e (or 1.0/0.0 when absent); `{{SUM}}` stores the row's
// element h to the `sum` output (add_norm) or is empty.
// Limits: rows of up to 2^32 - 1 elements (on llvmpipe, which stops a loop
// after 21845 iterations, up to 21845 * 256).

const MODE: u32 = {{MODE}}u;

fn xv(e: u32) -> f32 {
    return {{X}};
}

fn wv(e: u32) -> f32 {
    return {{W}};
}

fn bv(e: u32) -> f32 {
    return {{B}};
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.y * nwg.x + wid.x;
    let d = extra(0u);
    let first = row * d;
    // Every invocation of the workgroup takes part in the barriers.
    let live = row < extra(1u);
    var unused = 0u;
    if (MODE <= 1u) {
        var m = inf_f32(true);
        if (live) {
            for (var c = lid; c < d; c = c + WG) {
                m = max_f(m, xv(first + c));
            }
        }
        m = group_max(lid, m);
        var s = 0.0;
        if (live) {
            for (var c = lid; c < d; c = c + WG) {
                s = s + exp_f(xv(first + c) - m);
            }
        }
        s = group_sum(lid, s);
        if (live) {
            let ls = log_f(s);
            for (var c = lid; c < d; c = c + WG) {
                let z = xv(first + c) - m;
                var y: f32;
                if (MODE == 1u) {
                    y = z - ls;
                } else {
                    y = exp_f(z) / s;
                }
                out_put_f(first + c, y, &unused);
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
                shift = xv(first);
                for (var c = lid; c < d; c = c + WG) {
                    s = s + (xv(first + c) - shift);
                }
            }
            mean = shift + group_sum(lid, s) / f32(d);
        }
        var q = 0.0;
        if (live) {
            for (var c = lid; c < d; c = c + WG) {
                let z = xv(first + c) - mean;
                q = q + z * z;
            }
        }
        // 1 / sqrt, not inverseSqrt: drivers may answer the latter to 12 bits.
        let inv = 1.0 / sqrt(group_sum(lid, q) / f32(d) + extra_f(6u));
        if (live) {
            for (var c = lid; c < d; c = c + WG) {
                let e = first + c;
                let h = xv(e);
                out_put_f(e, (h - mean) * inv * wv(e) + bv(e), &unused);
                {{SUM}}
            }
        }
    }
}
