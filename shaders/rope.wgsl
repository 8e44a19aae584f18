// rope.wgsl: rotary position embedding of x [..., t, d].
//
// Algorithm: elementwise (entry point in map.wgsl); output element i is
// feature c = i % d of position pos = (i / d) % t. With h = extra(2) rotated
// pairs (cos/sin are [t, h]): half-split style pairs feature c with c + h
// (`{{INTERLEAVED}}` = 0), interleaved style pairs 2j with 2j + 1 (= 1);
// features from 2h on pass through.
// Layouts: x any strides (operand(0), logical element i); cos and sin 2-D
// with offset and strides in the records operand(1) and operand(2)
// (p[b] offset, p[b + 1] position stride, p[b + 2] pair stride);
// extra(0) = d, extra(1) = t. The output is contiguous.

const INTERLEAVED: bool = {{INTERLEAVED}}u == 1u;

fn xat(i: u32) -> f32 {
    return a_f(offset_of(operand(0u), i));
}

fn table(rec: u32, pos: u32, j: u32) -> u32 {
    return p[rec] + pos * p[rec + 1u] + j * p[rec + 2u];
}

fn element(i: u32, acc: ptr<function, u32>) {
    let d = extra(0u);
    let h = extra(2u);
    let c = i % d;
    let pos = (i / d) % extra(1u);
    let x = xat(i);
    if (c >= 2u * h) {
        out_put_f(i, x, acc);
        return;
    }
    var j: u32;
    var y: f32;
    if (INTERLEAVED) {
        j = c / 2u;
        let cs = b_f(table(operand(1u), pos, j));
        let sn = c_f(table(operand(2u), pos, j));
        if (c % 2u == 0u) {
            y = x * cs - xat(i + 1u) * sn;
        } else {
            y = x * cs + xat(i - 1u) * sn;
        }
    } else if (c < h) {
        let cs = b_f(table(operand(1u), pos, c));
        let sn = c_f(table(operand(2u), pos, c));
        y = x * cs - xat(i + h) * sn;
    } else {
        let cs = b_f(table(operand(1u), pos, c - h));
        let sn = c_f(table(operand(2u), pos, c - h));
        y = x * cs + xat(i - h) * sn;
    }
    out_put_f(i, y, acc);
}
