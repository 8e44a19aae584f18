//! Attention against an f64 reference written with loops; KV cache
//! equivalence; grouped-query heads; rotary tables; masks; cross-attention.

mod common;

use common::*;
use tessera_nn::{AttentionConfig, KvCache, MultiHeadAttention, RotaryEmbedding, VarBuilder};
use tessera_tensor::{DType, RopeStyle, Tensor};

/// Weights of one attention layer, as plain vectors.
struct Weights {
    hidden: usize,
    kv_in: usize,
    hq: usize,
    hkv: usize,
    d: usize,
    wq: Vec<f32>,
    wk: Vec<f32>,
    wv: Vec<f32>,
    wo: Vec<f32>,
    bq: Vec<f32>,
    bk: Vec<f32>,
    bv: Vec<f32>,
    bo: Vec<f32>,
}

impl Weights {
    fn new(seed: u64, hidden: usize, kv_in: usize, hq: usize, hkv: usize, d: usize) -> Self {
        let s = |i: u64, n: usize| values(seed * 100 + i, n).into_iter().map(|v| v * 0.5).collect::<Vec<f32>>();
        Weights {
            hidden,
            kv_in,
            hq,
            hkv,
            d,
            wq: s(1, hq * d * hidden),
            wk: s(2, hkv * d * kv_in),
            wv: s(3, hkv * d * kv_in),
            wo: s(4, hidden * hq * d),
            bq: s(5, hq * d),
            bk: s(6, hkv * d),
            bv: s(7, hkv * d),
            bo: s(8, hidden),
        }
    }

    /// A builder holding the weights under `prefix` with HF names.
    fn builder(&self, prefix: &str, o_name: &str, bias: bool) -> VarBuilder {
        let (hq, hkv, d) = (self.hq, self.hkv, self.d);
        let name = |n: &str| format!("{prefix}.{n}");
        let mut v = vec![
            (name("q_proj.weight"), tensor(&self.wq, &[hq * d, self.hidden])),
            (name("k_proj.weight"), tensor(&self.wk, &[hkv * d, self.kv_in])),
            (name("v_proj.weight"), tensor(&self.wv, &[hkv * d, self.kv_in])),
            (name(&format!("{o_name}.weight")), tensor(&self.wo, &[self.hidden, hq * d])),
        ];
        if bias {
            v.push((name("q_proj.bias"), tensor(&self.bq, &[hq * d])));
            v.push((name("k_proj.bias"), tensor(&self.bk, &[hkv * d])));
            v.push((name("v_proj.bias"), tensor(&self.bv, &[hkv * d])));
            v.push((name(&format!("{o_name}.bias")), tensor(&self.bo, &[self.hidden])));
        }
        builder(v.iter().map(|(n, t)| (n.as_str(), t.clone())).collect())
    }
}

/// Rotates `[b, t, h, d]` in place (half-split pairs) at positions `t`.
fn rope_ref(x: &mut [f64], b: usize, t: usize, h: usize, d: usize, theta: f64, rot: usize) {
    let half = rot / 2;
    for bi in 0..b {
        for p in 0..t {
            for hi in 0..h {
                let base = ((bi * t + p) * h + hi) * d;
                for i in 0..half {
                    let angle = p as f64 / theta.powf(2.0 * i as f64 / rot as f64);
                    let (c, s) = (angle.cos(), angle.sin());
                    let (a, bb) = (x[base + i], x[base + i + half]);
                    x[base + i] = a * c - bb * s;
                    x[base + i + half] = bb * c + a * s;
                }
            }
        }
    }
}

/// Options of the reference computation.
struct RefOpts<'a> {
    bias: bool,
    rope: Option<(f64, usize)>,
    causal: bool,
    /// Additive mask `[tq, tk]`, shared by batches and heads.
    mask: Option<&'a [f64]>,
}

/// Attention of `xq` `[b, tq, hidden]` over `xkv` `[b, tk, kv_in]`, in f64.
fn attention_ref(w: &Weights, xq: &[f32], xkv: &[f32], b: usize, tq: usize, tk: usize, o: &RefOpts) -> Vec<f64> {
    let (hq, hkv, d) = (w.hq, w.hkv, w.d);
    let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let bias = |v: &Vec<f32>| if o.bias { Some(v.clone()) } else { None };
    let mut q = linear_ref(&f(xq), &w.wq, bias(&w.bq).as_deref(), w.hidden, hq * d);
    let mut k = linear_ref(&f(xkv), &w.wk, bias(&w.bk).as_deref(), w.kv_in, hkv * d);
    let v = linear_ref(&f(xkv), &w.wv, bias(&w.bv).as_deref(), w.kv_in, hkv * d);
    if let Some((theta, rot)) = o.rope {
        rope_ref(&mut q, b, tq, hq, d, theta, rot);
        rope_ref(&mut k, b, tk, hkv, d, theta, rot);
    }
    let group = hq / hkv;
    let scale = 1.0 / (d as f64).sqrt();
    let mut merged = vec![0.0; b * tq * hq * d];
    for bi in 0..b {
        for h in 0..hq {
            let kh = h / group;
            for i in 0..tq {
                let mut scores = vec![0.0; tk];
                for (j, s) in scores.iter_mut().enumerate() {
                    let mut dot = 0.0;
                    for e in 0..d {
                        dot += q[((bi * tq + i) * hq + h) * d + e] * k[((bi * tk + j) * hkv + kh) * d + e];
                    }
                    *s = dot * scale + o.mask.map_or(0.0, |m| m[i * tk + j]);
                    if o.causal && j as isize > i as isize + tk as isize - tq as isize {
                        *s = f64::NEG_INFINITY;
                    }
                }
                let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for dd in 0..d {
                    let mut acc = 0.0;
                    for j in 0..tk {
                        acc += e[j] / z * v[((bi * tk + j) * hkv + kh) * d + dd];
                    }
                    merged[((bi * tq + i) * hq + h) * d + dd] = acc;
                }
            }
        }
    }
    linear_ref(&merged, &w.wo, bias(&w.bo).as_deref(), hq * d, w.hidden)
}

#[test]
fn attention_matches_reference() {
    // (hidden, hq, hkv, d, bias, rope rot dim, causal)
    let cases = [
        (8, 4, 4, 2, true, None, false),
        (12, 4, 2, 4, false, Some(4), true),
        (16, 6, 1, 8, true, Some(4), true),
        (10, 2, 2, 6, false, Some(6), false),
    ];
    for (ci, &(hidden, hq, hkv, d, bias, rot, causal)) in cases.iter().enumerate() {
        let w = Weights::new(ci as u64 + 1, hidden, hidden, hq, hkv, d);
        let vb = w.builder("model.layers.0.self_attn", "o_proj", bias);
        let cfg = AttentionConfig::new(hidden, hq).with_kv_heads(hkv).with_head_dim(d).with_bias(bias, bias).with_causal(causal);
        let mut attn = MultiHeadAttention::load(&vb.pp("model.layers.0.self_attn"), &cfg).unwrap();
        if let Some(rot) = rot {
            attn = attn.with_rotary(RotaryEmbedding::new(10000.0, rot, 32, RopeStyle::HalfSplit, &dev()).unwrap()).unwrap();
        }
        let (b, t) = (2, 5);
        let x = values(50 + ci as u64, b * t * hidden);
        let y = attn.forward(&tensor(&x, &[b, t, hidden]), None, None).unwrap();
        assert_eq!(y.dims(), &[b, t, hidden]);
        let opts = RefOpts { bias, rope: rot.map(|r| (10000.0, r)), causal, mask: None };
        assert_close(&to_vec(&y), &attention_ref(&w, &x, &x, b, t, t, &opts), 1e-4);
    }
}

/// GQA + rotary + causal layer used by the cache tests.
fn cached_layer() -> (MultiHeadAttention, usize) {
    let (hidden, hq, hkv, d) = (16, 4, 2, 4);
    let w = Weights::new(7, hidden, hidden, hq, hkv, d);
    let vb = w.builder("layer", "o_proj", true);
    let cfg = AttentionConfig::new(hidden, hq).with_kv_heads(hkv).with_bias(true, false).with_causal(true);
    let rope = RotaryEmbedding::new(500.0, d, 64, RopeStyle::HalfSplit, &dev()).unwrap();
    (MultiHeadAttention::load(&vb.pp("layer"), &cfg).unwrap().with_rotary(rope).unwrap(), hidden)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn kv_cache_step_by_step_matches_one_pass() {
    let (attn, hidden) = cached_layer();
    let (b, t) = (2, 7);
    let x = random(99, &[b, t, hidden]);
    let full = attn.forward(&x, None, None).unwrap();
    for chunks in [vec![1; 7], vec![3, 1, 3], vec![2, 5]] {
        let mut cache = KvCache::new();
        let mut outs = Vec::new();
        let mut start = 0;
        for &len in &chunks {
            let step = attn.forward(&x.narrow(1, start, len).unwrap(), None, Some(&mut cache)).unwrap();
            assert_eq!(step.dims(), &[b, len, hidden]);
            start += len;
            assert_eq!(cache.len(), start);
            outs.push(step);
        }
        let joined = Tensor::cat(&outs.iter().collect::<Vec<_>>(), 1).unwrap();
        let diff = max_abs_diff(&to_vec(&joined), &to_vec(&full));
        assert!(diff <= 1e-5, "chunks {chunks:?}: max diff {diff}");
        assert_eq!(cache.k().unwrap().dims(), &[b, 2, t, 4], "the cache holds kv heads only");
    }
}

#[test]
fn kv_cache_limit_and_reset() {
    let (attn, hidden) = cached_layer();
    let x = random(5, &[1, 4, hidden]);
    let mut cache = KvCache::with_max_len(4);
    for i in 0..4 {
        attn.forward(&x.narrow(1, i, 1).unwrap(), None, Some(&mut cache)).unwrap();
    }
    // The limit is enforced and a failed append leaves the cache as it was.
    let err = attn.forward(&x.narrow(1, 0, 1).unwrap(), None, Some(&mut cache)).unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
    assert_eq!(cache.len(), 4);
    // Truncating drops the last positions: appending after it writes over
    // them and equals a cache that never held them.
    cache.truncate(2).unwrap();
    assert!(cache.truncate(3).is_err());
    let (k2, _) = cache.append(&random(3, &[1, 2, 1, 4]), &random(4, &[1, 2, 1, 4])).unwrap();
    assert_eq!(k2.dims(), &[1, 2, 3, 4]);
    assert_eq!(k2.narrow(2, 2, 1).unwrap().to_f32_vec().unwrap(), random(3, &[1, 2, 1, 4]).to_f32_vec().unwrap());
    cache.reset();
    assert!(cache.is_empty());
    assert_eq!(cache.max_len(), Some(4));
    // Mismatched keys and values are refused.
    let k = random(1, &[1, 2, 1, 4]);
    assert!(cache.append(&k, &random(2, &[1, 2, 2, 4])).is_err());
    assert!(cache.is_empty());
}

#[test]
fn kv_cache_grows_in_place_and_views_keep_their_values() {
    let (b, h, d) = (2, 3, 4);
    let step = |seed: u64, t: usize| (random(seed, &[b, h, t, d]), random(seed + 100, &[b, h, t, d]));
    let mut cache = KvCache::new();
    let (k0, v0) = step(1, 2);
    let (held_k, _) = cache.append(&k0, &v0).unwrap();
    assert_eq!(cache.capacity(), 64, "an unreserved first allocation has the minimum capacity");
    // A view from an earlier append is still alive: this append copies,
    // and the held view keeps the two positions it saw.
    let (k1, v1) = step(2, 1);
    cache.append(&k1, &v1).unwrap();
    assert_eq!(to_vec(&held_k), to_vec(&k0));
    drop(held_k);
    // Nothing else holds the buffers now: appends write in place.
    let before = cache.k().unwrap().storage().clone();
    let ptr = std::sync::Arc::as_ptr(&before) as *const u8;
    drop(before);
    let mut all_k = vec![k0.clone(), k1.clone()];
    let mut all_v = vec![v0.clone(), v1.clone()];
    for i in 0..3 {
        let (k, v) = step(10 + i, 1);
        cache.append(&k, &v).unwrap();
        all_k.push(k);
        all_v.push(v);
    }
    let after = cache.k().unwrap();
    assert_eq!(std::sync::Arc::as_ptr(after.storage()) as *const u8, ptr, "appends reuse the buffer");
    let cat = |xs: &[Tensor]| Tensor::cat(&xs.iter().collect::<Vec<_>>(), 2).unwrap();
    assert_eq!(to_vec(&after), to_vec(&cat(&all_k)));
    assert_eq!(to_vec(&cache.v().unwrap()), to_vec(&cat(&all_v)));
    drop(after);
    // Past the capacity the buffers double; the contents stay.
    let (k, v) = step(50, 70);
    cache.append(&k, &v).unwrap();
    all_k.push(k);
    assert_eq!(cache.len(), 76);
    assert_eq!(cache.capacity(), 128);
    assert_eq!(to_vec(&cache.k().unwrap()), to_vec(&cat(&all_k)));
    // Selecting rows keeps the capacity, and a reserve within it is free.
    cache.select_rows(&[1, 1, 0]).unwrap();
    assert_eq!((cache.len(), cache.capacity()), (76, 128));
    assert_eq!(to_vec(&cache.k().unwrap().narrow(0, 2, 1).unwrap()), to_vec(&cat(&all_k).narrow(0, 0, 1).unwrap()));
    cache.reserve(10).unwrap();
    assert_eq!(cache.capacity(), 128);
    cache.reserve(100).unwrap();
    assert_eq!(cache.capacity(), 176);
    // A limited cache never allocates past its limit.
    let mut limited = KvCache::with_max_len(3);
    limited.reserve(1000).unwrap();
    let (k, v) = step(7, 3);
    limited.append(&k, &v).unwrap();
    assert_eq!(limited.capacity(), 3);
    // Entries that do not extend the cache are refused, and it is unchanged.
    let (k, v) = (random(1, &[b, h + 1, 1, d]), random(2, &[b, h + 1, 1, d]));
    let err = cache.append(&k, &v).unwrap_err();
    assert!(err.to_string().contains("do not extend"), "{err}");
    assert_eq!(cache.len(), 76);
}

#[test]
fn half_precision_layer_follows_f32() {
    let (hidden, hq, hkv, d) = (16, 4, 2, 4);
    let w = Weights::new(8, hidden, hidden, hq, hkv, d);
    let cfg = AttentionConfig::new(hidden, hq).with_kv_heads(hkv).with_bias(true, true).with_causal(true);
    let rope = RotaryEmbedding::new(10000.0, d, 16, RopeStyle::HalfSplit, &dev()).unwrap();
    let vb = w.builder("l", "o_proj", true).pp("l");
    let f32_layer = MultiHeadAttention::load(&vb, &cfg).unwrap().with_rotary(rope.clone()).unwrap();
    let f16_layer = MultiHeadAttention::load(&vb.with_dtype(DType::F16), &cfg).unwrap().with_rotary(rope).unwrap();
    let x = random(9, &[1, 5, hidden]);
    let expected = to_vec(&f32_layer.forward(&x, None, None).unwrap());
    let mut cache = KvCache::new();
    let mut outs = Vec::new();
    let xh = x.to_dtype(DType::F16).unwrap();
    for i in 0..5 {
        let y = f16_layer.forward(&xh.narrow(1, i, 1).unwrap(), None, Some(&mut cache)).unwrap();
        assert_eq!(y.dtype(), DType::F16);
        outs.push(y);
    }
    let got = to_vec(&Tensor::cat(&outs.iter().collect::<Vec<_>>(), 1).unwrap());
    let diff = max_abs_diff(&got, &expected);
    assert!(diff <= 1e-2, "max diff {diff}");
}

#[test]
fn gqa_matches_repeated_kv_heads() {
    // A GQA layer equals an MHA layer whose k/v weights repeat each KV head.
    let (hidden, hq, hkv, d) = (12, 6, 2, 2);
    let w = Weights::new(3, hidden, hidden, hq, hkv, d);
    let cfg = AttentionConfig::new(hidden, hq).with_kv_heads(hkv).with_causal(true);
    let gqa = MultiHeadAttention::load(&w.builder("a", "o_proj", false).pp("a"), &cfg).unwrap();
    assert_eq!((gqa.num_heads(), gqa.num_kv_heads(), gqa.head_dim()), (6, 2, 2));
    let group = hq / hkv;
    let repeat =
        |m: &[f32]| -> Vec<f32> { (0..hq).flat_map(|h| m[(h / group) * d * hidden..(h / group + 1) * d * hidden].to_vec()).collect() };
    let mut mha_w = Weights::new(3, hidden, hidden, hq, hq, d);
    mha_w.wq = w.wq.clone();
    mha_w.wo = w.wo.clone();
    mha_w.wk = repeat(&w.wk);
    mha_w.wv = repeat(&w.wv);
    let mha = MultiHeadAttention::load(&mha_w.builder("a", "o_proj", false).pp("a"), &AttentionConfig::new(hidden, hq).with_causal(true))
        .unwrap();
    let x = random(4, &[2, 5, hidden]);
    let diff = max_abs_diff(&to_vec(&gqa.forward(&x, None, None).unwrap()), &to_vec(&mha.forward(&x, None, None).unwrap()));
    assert!(diff <= 1e-5, "max diff {diff}");
    // Heads that do not group are rejected.
    let err =
        MultiHeadAttention::load(&w.builder("a", "o_proj", false).pp("a"), &AttentionConfig::new(hidden, hq).with_kv_heads(4)).unwrap_err();
    assert!(err.to_string().contains("multiple"), "{err}");
}

#[test]
fn additive_mask() {
    let (hidden, hq, d) = (8, 2, 4);
    let w = Weights::new(11, hidden, hidden, hq, hq, d);
    let cfg = AttentionConfig::new(hidden, hq).with_bias(true, true);
    let attn = MultiHeadAttention::load(&w.builder("m", "out_proj", true).pp("m"), &cfg.clone().with_out_name("out_proj")).unwrap();
    let (b, t) = (2, 4);
    let x = values(12, b * t * hidden);
    // Padding mask: the last key is hidden from every query.
    let mask: Vec<f64> = (0..t * t).map(|i| if i % t == t - 1 { f64::NEG_INFINITY } else { 0.0 }).collect();
    let mask_f32: Vec<f32> = mask.iter().map(|&v| v as f32).collect();
    let m = tensor(&mask_f32, &[1, 1, t, t]);
    let y = attn.forward(&tensor(&x, &[b, t, hidden]), Some(&m), None).unwrap();
    let opts = RefOpts { bias: true, rope: None, causal: false, mask: Some(&mask) };
    assert_close(&to_vec(&y), &attention_ref(&w, &x, &x, b, t, t, &opts), 1e-4);
    // A causal mask given explicitly equals the causal flag; an f16 mask is cast.
    let causal: Vec<f32> = (0..t * t).map(|i| if i % t > i / t { -1e9 } else { 0.0 }).collect();
    let cm = tensor(&causal, &[t, t]).to_dtype(DType::F16).unwrap();
    let explicit = attn.forward(&tensor(&x, &[b, t, hidden]), Some(&cm), None).unwrap();
    let flagged = attn.clone().with_causal(true).forward(&tensor(&x, &[b, t, hidden]), None, None).unwrap();
    assert!(max_abs_diff(&to_vec(&explicit), &to_vec(&flagged)) <= 1e-5);
    // Integer masks are refused.
    let im = Tensor::zeros((t, t), DType::U8, &dev()).unwrap();
    assert!(attn.forward(&tensor(&x, &[b, t, hidden]), Some(&im), None).is_err());
}

#[test]
fn fused_qkv_equals_separate_projections() {
    let (hidden, hq, hkv, d) = (8, 4, 2, 2);
    let w = Weights::new(21, hidden, hidden, hq, hkv, d);
    let cfg = AttentionConfig::new(hidden, hq).with_kv_heads(hkv).with_bias(true, true);
    let separate = MultiHeadAttention::load(&w.builder("attn", "proj", true).pp("attn"), &cfg.clone().with_out_name("proj")).unwrap();
    let qkv_w: Vec<f32> = [w.wq.clone(), w.wk.clone(), w.wv.clone()].concat();
    let qkv_b: Vec<f32> = [w.bq.clone(), w.bk.clone(), w.bv.clone()].concat();
    let n = (hq + 2 * hkv) * d;
    let vb = builder(vec![
        ("blocks.0.attn.qkv.weight", tensor(&qkv_w, &[n, hidden])),
        ("blocks.0.attn.qkv.bias", tensor(&qkv_b, &[n])),
        ("blocks.0.attn.proj.weight", tensor(&w.wo, &[hidden, hq * d])),
        ("blocks.0.attn.proj.bias", tensor(&w.bo, &[hidden])),
    ]);
    let fused = MultiHeadAttention::load(&vb.pp("blocks.0.attn"), &cfg.with_fused_qkv("qkv").with_out_name("proj")).unwrap();
    let x = random(22, &[2, 3, hidden]);
    let diff = max_abs_diff(&to_vec(&fused.forward(&x, None, None).unwrap()), &to_vec(&separate.forward(&x, None, None).unwrap()));
    assert!(diff <= 1e-6, "max diff {diff}");
}

#[test]
fn cross_attention_matches_reference() {
    let (hidden, kv_in, hq, d) = (8, 6, 2, 4);
    let w = Weights::new(31, hidden, kv_in, hq, hq, d);
    let cfg = AttentionConfig::new(hidden, hq).with_kv_input_dim(kv_in).with_bias(true, true);
    let attn = MultiHeadAttention::load(&w.builder("crossattention", "o_proj", true).pp("crossattention"), &cfg).unwrap();
    let (b, tq, tk) = (2, 3, 5);
    let (xq, xkv) = (values(32, b * tq * hidden), values(33, b * tk * kv_in));
    let (tx, tc) = (tensor(&xq, &[b, tq, hidden]), tensor(&xkv, &[b, tk, kv_in]));
    let y = attn.forward_cross(&tx, &tc, None).unwrap();
    let opts = RefOpts { bias: true, rope: None, causal: false, mask: None };
    assert_close(&to_vec(&y), &attention_ref(&w, &xq, &xkv, b, tq, tk, &opts), 1e-4);
    // Projecting the context once and attending over the cache is the same.
    let mut cache = KvCache::new();
    let (k, v) = attn.project_kv(&tc).unwrap();
    cache.append(&k, &v).unwrap();
    let cached = attn.attend_cached(&tx, None, &cache).unwrap();
    assert!(max_abs_diff(&to_vec(&cached), &to_vec(&y)) <= 1e-6);
    assert!(attn.attend_cached(&tx, None, &KvCache::new()).is_err());
}

#[test]
fn clip_names_load_and_errors_name_the_tensor() {
    let (hidden, hq, d) = (8, 2, 4);
    let w = Weights::new(41, hidden, hidden, hq, hq, d);
    let vb = w.builder("text_model.encoder.layers.0.self_attn", "out_proj", true);
    let layer = vb.pp("text_model").pp("encoder").pp("layers").pp(0).pp("self_attn");
    let cfg = AttentionConfig::new(hidden, hq).with_bias(true, true).with_out_name("out_proj");
    MultiHeadAttention::load(&layer, &cfg).unwrap();
    let err = MultiHeadAttention::load(&layer, &AttentionConfig::new(hidden, hq).with_bias(true, true)).unwrap_err();
    assert!(err.to_string().contains("text_model.encoder.layers.0.self_attn.o_proj.weight"), "{err}");
    let err = MultiHeadAttention::load(&layer, &AttentionConfig::new(hidden, hq).with_head_dim(3).with_out_name("out_proj")).unwrap_err();
    assert!(err.to_string().contains("text_model.encoder.layers.0.self_attn.q_proj.weight"), "{err}");
}

#[test]
fn rotary_tables_match_formula() {
    let (theta, rot, max_pos) = (10000.0, 8, 128);
    let rope = RotaryEmbedding::new(theta, rot, max_pos, RopeStyle::HalfSplit, &dev()).unwrap();
    assert_eq!((rope.rot_dim(), rope.max_positions()), (rot, max_pos));
    assert_eq!(rope.cos().dims(), &[max_pos, rot / 2]);
    let inv = RotaryEmbedding::inv_freq(theta, rot).unwrap();
    let expected_inv: Vec<f64> = (0..rot / 2).map(|i| 1.0 / theta.powf(2.0 * i as f64 / rot as f64)).collect();
    assert_close(&inv, &expected_inv, 1e-7);
    let (cos, sin) = (to_vec(rope.cos()), to_vec(rope.sin()));
    for p in 0..max_pos {
        for i in 0..rot / 2 {
            let angle = p as f64 * expected_inv[i];
            // f32 angles: the error grows with the position (~p * 2^-24).
            let tol = 1e-6 + p as f64 * 1.2e-7;
            assert!((cos[p * rot / 2 + i] as f64 - angle.cos()).abs() <= tol, "cos at p={p} i={i}");
            assert!((sin[p * rot / 2 + i] as f64 - angle.sin()).abs() <= tol, "sin at p={p} i={i}");
        }
    }
    // Applying at an offset uses the rows from the offset on.
    let x = random(1, &[1, 2, 3, 10]);
    let y = rope.apply(&x, 5).unwrap();
    let (c, s) = rope.tables(5, 3, DType::F32).unwrap();
    assert_eq!(to_vec(&y), to_vec(&x.rope(&c, &s, RopeStyle::HalfSplit).unwrap()));
    let xs = to_vec(&x);
    let ys = to_vec(&y);
    for p in 0..3 {
        let base = (3 + p) * 10; // batch 0, head 1 (of 2, 3 positions each), position p
        for i in 0..4 {
            let angle = (p + 5) as f64 * expected_inv[i];
            let (a, b) = (xs[base + i] as f64, xs[base + i + 4] as f64);
            assert!((ys[base + i] as f64 - (a * angle.cos() - b * angle.sin())).abs() < 1e-5);
            assert!((ys[base + i + 4] as f64 - (b * angle.cos() + a * angle.sin())).abs() < 1e-5);
        }
        for i in 8..10 {
            assert_eq!(ys[base + i], xs[base + i], "features past the rotated width pass through");
        }
    }
    // Errors: odd width, bad theta, positions past the table, head too narrow.
    assert!(RotaryEmbedding::new(theta, 7, 4, RopeStyle::HalfSplit, &dev()).is_err());
    assert!(RotaryEmbedding::new(-1.0, 8, 4, RopeStyle::HalfSplit, &dev()).is_err());
    let err = rope.apply(&random(1, &[1, 1, 4, 8]), max_pos - 2).unwrap_err();
    assert!(err.to_string().contains("exceed"), "{err}");
    assert!(rope.apply(&random(1, &[1, 1, 4, 6]), 0).is_err());
}
