// attention.wgsl: scaled dot-product attention, forward, with an online
// softmax (flash-attention style): the score matrix never exists.
//
// Algorithm: a workgroup of 64 invocations owns 64 consecutive queries of
// one (batch, head); invocation q keeps its query row and its output
// accumulator in registers. Keys and values stream through workgroup
// memory in tiles of KT rows (loaded by all 64 invocations together, widened
// to f32); for each key, every invocation computes its score, updates its
// running max m and sum l, and rescales and accumulates its output row:
// acc = acc * exp(m_old - m) + exp(s - m) * v. Causal masking is aligned
// bottom-right (query i sees keys up to i + tk - tq); the workgroup stops at
// the last key its last query sees. A query that sees no key writes zeros.
// Layouts: q [b, hq, tq, DK], k [b, hkv, tk, DK], v [b, hkv, tk, DV], mask
// [b, hq, tq, tk] (broadcast strides allowed), all with any strides: the
// records operand(0..4) hold offset and the four strides of q, k, v, mask;
// extra(0) = tq, extra(1) = tk, extra(2) = hq, extra(3) = hq / hkv,
// extra(4) = scale (f32 bits), extra(5) = causal. The output is contiguous
// [b, hq, tq, DV] (f32, or the output dtype when it has one element per
// word; the host casts packed results).
// Specialised: `{{DK}}`, `{{DV}}` head dims, `{{KT}}` keys per tile (chosen
// so the two tiles fit 16 KiB of workgroup memory), `{{MASK_ADD}}` adds
// the mask element when a mask binding `mask` is present.
// Limits: head dims up to 256 (KT >= 8).

const DK: u32 = {{DK}}u;
const DV: u32 = {{DV}}u;
const KT: u32 = {{KT}}u;
const QB: u32 = 64u;

var<workgroup> kt: array<f32, {{KTILE}}>;
var<workgroup> vt: array<f32, {{VTILE}}>;

fn at4(rec: u32, b: u32, h: u32, t: u32, c: u32) -> u32 {
    return p[rec] + b * p[rec + 1u] + h * p[rec + 2u] + t * p[rec + 3u] + c * p[rec + 4u];
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tq = extra(0u);
    let tk = extra(1u);
    let hq = extra(2u);
    let group = extra(3u);
    let scale = extra_f(4u);
    let causal = extra(5u) == 1u;
    let bh = wid.y;
    let b = bh / hq;
    let h = bh % hq;
    let hk = h / group;
    let q0 = wid.x * QB;
    let qi = q0 + lid;
    let live = qi < tq;

    var q: array<f32, DK>;
    var acc: array<f32, DV>;
    for (var c = 0u; c < DK; c = c + 1u) {
        q[c] = select(0.0, a_f(at4(operand(0u), b, h, min(qi, tq - 1u), c)) * scale, live);
    }
    for (var c = 0u; c < DV; c = c + 1u) {
        acc[c] = 0.0;
    }
    var m = inf_f32(true);
    var l = 0.0;
    // Keys visible to this workgroup's last query.
    var kend = tk;
    if (causal) {
        // The last query sees last + (tk - tq) + 1 keys (none if negative).
        let last = min(q0 + QB, tq) - 1u;
        if (last + tk + 1u >= tq) {
            kend = min(tk, last + tk + 1u - tq);
        } else {
            kend = 0u;
        }
    }
    for (var k0 = 0u; k0 < kend; k0 = k0 + KT) {
        let nk = min(KT, kend - k0);
        for (var e = lid; e < KT * DK; e = e + QB) {
            let j = e / DK;
            let c = e % DK;
            kt[e] = select(0.0, b_f(at4(operand(1u), b, hk, k0 + j, c)), j < nk);
        }
        for (var e = lid; e < KT * DV; e = e + QB) {
            let j = e / DV;
            let c = e % DV;
            vt[e] = select(0.0, c_f(at4(operand(2u), b, hk, k0 + j, c)), j < nk);
        }
        workgroupBarrier();
        if (live) {
            for (var j = 0u; j < nk; j = j + 1u) {
                let key = k0 + j;
                if (causal && key + tq > qi + tk) {
                    break;
                }
                var s = 0.0;
                for (var c = 0u; c < DK; c = c + 1u) {
                    s = fma(q[c], kt[j * DK + c], s);
                }
                {{MASK_ADD}}
                if (is_inf(s) && s < 0.0) {
                    continue;
                }
                let m_new = max(m, s);
                let corr = exp_f(m - m_new);
                let w = exp_f(s - m_new);
                l = l * corr + w;
                for (var c = 0u; c < DV; c = c + 1u) {
                    acc[c] = fma(w, vt[j * DV + c], acc[c] * corr);
                }
                m = m_new;
            }
        }
        workgroupBarrier();
    }
    if (live) {
        let inv = select(0.0, 1.0 / l, l > 0.0);
        let o = (bh * tq + qi) * DV;
        var unused = 0u;
        for (var c = 0u; c < DV; c = c + 1u) {
            out_put_f(o + c, acc[c] * inv, &unused);
        }
    }
}
