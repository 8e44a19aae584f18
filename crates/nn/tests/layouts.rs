//! Attention checkpoint layouts (separate q/k/v, one fused `qkv` Linear, a
//! fused `qkv.weight` with separate `q_bias`/`v_bias`) under every output
//! projection name, each against the same layer composed from separate
//! projections; and the pre-LN ViT encoder against its blocks composed by
//! hand, with every hidden state.

mod common;

use common::*;
use tessera_nn::{
    Activation, AttentionConfig, LayerNorm, Linear, Mlp, MlpConfig, MultiHeadAttention, VarBuilder, VitEncoder, VitLayerConfig,
};
use tessera_tensor::Tensor;

const HIDDEN: usize = 16;
const HEADS: usize = 4;

/// q, k, v weights `[16, 16]` and biases, output weight and bias.
struct Parts {
    w: [Vec<f32>; 4],
    b: [Vec<f32>; 4],
}

fn parts(seed: u64) -> Parts {
    let w = |i: u64| values(seed * 10 + i, HIDDEN * HIDDEN).into_iter().map(|v| v * 0.4).collect();
    let b = |i: u64| values(seed * 10 + 5 + i, HIDDEN);
    Parts { w: [w(0), w(1), w(2), w(3)], b: [b(0), b(1), b(2), b(3)] }
}

/// The layer from separate Linears (`k_bias` as given).
fn composed(p: &Parts, k_bias: &[f32]) -> MultiHeadAttention {
    let lin = |w: &[f32], b: &[f32]| Linear::new(tensor(w, &[HIDDEN, HIDDEN]), Some(tensor(b, &[HIDDEN]))).unwrap();
    let cfg = AttentionConfig::new(HIDDEN, HEADS);
    MultiHeadAttention::new(lin(&p.w[0], &p.b[0]), lin(&p.w[1], k_bias), lin(&p.w[2], &p.b[2]), lin(&p.w[3], &p.b[3]), &cfg).unwrap()
}

fn output(p: &Parts, o_name: &str, mut v: Vec<(String, Tensor)>) -> VarBuilder {
    v.push((format!("attn.{o_name}.weight"), tensor(&p.w[3], &[HIDDEN, HIDDEN])));
    v.push((format!("attn.{o_name}.bias"), tensor(&p.b[3], &[HIDDEN])));
    builder(v.iter().map(|(n, t)| (n.as_str(), t.clone())).collect())
}

fn assert_same(a: &MultiHeadAttention, b: &MultiHeadAttention, what: &str) {
    let x = random(7, &[2, 5, HIDDEN]);
    let (ya, yb) = (to_vec(&a.forward(&x, None, None).unwrap()), to_vec(&b.forward(&x, None, None).unwrap()));
    let max = ya.iter().zip(&yb).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
    assert!(max < 1e-5, "{what}: max |diff| {max}");
}

#[test]
fn every_qkv_layout_and_output_name_matches_separate_projections() {
    let p = parts(1);
    let cat = |xs: [&Vec<f32>; 3]| xs.iter().flat_map(|v| v.iter().copied()).collect::<Vec<f32>>();
    let fused_w = tensor(&cat([&p.w[0], &p.w[1], &p.w[2]]), &[3 * HIDDEN, HIDDEN]);
    for o_name in ["o_proj", "out_proj", "proj", "projection"] {
        let base = AttentionConfig::new(HIDDEN, HEADS).with_bias(true, true).with_out_name(o_name);

        let separate = (0..3)
            .flat_map(|i| {
                let n = ["q_proj", "k_proj", "v_proj"][i];
                [(format!("attn.{n}.weight"), tensor(&p.w[i], &[HIDDEN, HIDDEN])), (format!("attn.{n}.bias"), tensor(&p.b[i], &[HIDDEN]))]
            })
            .collect();
        let layer = MultiHeadAttention::load(&output(&p, o_name, separate).pp("attn"), &base).unwrap();
        assert_same(&layer, &composed(&p, &p.b[1]), &format!("separate, {o_name}"));

        let fused = vec![
            ("attn.qkv.weight".to_string(), fused_w.clone()),
            ("attn.qkv.bias".to_string(), tensor(&cat([&p.b[0], &p.b[1], &p.b[2]]), &[3 * HIDDEN])),
        ];
        let cfg = base.clone().with_fused_qkv("qkv");
        let layer = MultiHeadAttention::load(&output(&p, o_name, fused).pp("attn"), &cfg).unwrap();
        assert_same(&layer, &composed(&p, &p.b[1]), &format!("fused, {o_name}"));

        let split = vec![
            ("attn.qkv.weight".to_string(), fused_w.clone()),
            ("attn.q_bias".to_string(), tensor(&p.b[0], &[HIDDEN])),
            ("attn.v_bias".to_string(), tensor(&p.b[2], &[HIDDEN])),
        ];
        let cfg = base.clone().with_fused_qkv_split_bias("qkv", "q_bias", "v_bias");
        let vb = output(&p, o_name, split);
        let layer = MultiHeadAttention::load(&vb.pp("attn"), &cfg).unwrap();
        // The key bias is zero.
        assert_same(&layer, &composed(&p, &[0.0; HIDDEN]), &format!("split bias, {o_name}"));
    }
}

#[test]
fn split_bias_layout_names_missing_tensors() {
    let p = parts(2);
    let vb = output(&p, "projection", vec![("attn.qkv.weight".into(), random(3, &[3 * HIDDEN, HIDDEN]))]).collect_errors();
    let cfg = AttentionConfig::new(HIDDEN, HEADS).with_bias(true, true).with_out_name("projection");
    let _ = MultiHeadAttention::load(&vb.pp("attn"), &cfg.with_fused_qkv_split_bias("qkv", "q_bias", "v_bias"));
    let e = vb.finish().unwrap_err();
    assert_eq!(e.tensor_names(), vec!["attn.q_bias", "attn.v_bias"]);
}

/// Weights of `n` CLIP-named layers under `encoder.layers.N` (or `norm1`,
/// `attn`, `proj`, `blocks.N` with `timm` names).
fn encoder_weights(n: usize, inter: usize, timm: bool) -> VarBuilder {
    let (norm1, norm2, attn, o, list) =
        if timm { ("norm1", "norm2", "attn", "proj", "blocks") } else { ("layer_norm1", "layer_norm2", "self_attn", "out_proj", "layers") };
    let mut v = Vec::new();
    for l in 0..n {
        let p = format!("encoder.{list}.{l}");
        let seed = 100 + l as u64 * 20;
        for (i, proj) in ["q_proj", "k_proj", "v_proj", o].iter().enumerate() {
            let w = values(seed + i as u64, HIDDEN * HIDDEN).into_iter().map(|x| x * 0.4).collect::<Vec<_>>();
            v.push((format!("{p}.{attn}.{proj}.weight"), tensor(&w, &[HIDDEN, HIDDEN])));
            v.push((format!("{p}.{attn}.{proj}.bias"), random(seed + 5 + i as u64, &[HIDDEN])));
        }
        for (i, ln) in [norm1, norm2].iter().enumerate() {
            let w = values(seed + 10 + i as u64, HIDDEN).into_iter().map(|x| 1.0 + 0.1 * x).collect::<Vec<_>>();
            v.push((format!("{p}.{ln}.weight"), tensor(&w, &[HIDDEN])));
            v.push((format!("{p}.{ln}.bias"), random(seed + 12 + i as u64, &[HIDDEN])));
        }
        v.push((format!("{p}.mlp.fc1.weight"), random(seed + 14, &[inter, HIDDEN])));
        v.push((format!("{p}.mlp.fc1.bias"), random(seed + 15, &[inter])));
        v.push((format!("{p}.mlp.fc2.weight"), random(seed + 16, &[HIDDEN, inter])));
        v.push((format!("{p}.mlp.fc2.bias"), random(seed + 17, &[HIDDEN])));
    }
    builder(v.iter().map(|(n, t)| (n.as_str(), t.clone())).collect())
}

#[test]
fn vit_encoder_returns_every_hidden_state_of_the_composed_blocks() {
    let (layers, inter, eps) = (3, 24, 1e-5);
    let vb = encoder_weights(layers, inter, false);
    let cfg = VitLayerConfig::new(HIDDEN, inter, HEADS, eps, Activation::QuickGelu);
    let encoder = VitEncoder::load(&vb.pp("encoder"), &cfg, layers).unwrap();
    let x = random(9, &[2, 6, HIDDEN]);
    let states = encoder.forward_hidden_states(&x, None).unwrap();
    assert_eq!(states.len(), layers + 1);
    assert_eq!(to_vec(&states[0]), to_vec(&x));

    // h = x + attn(ln1(x)); out = h + mlp(ln2(h)), from the blocks loaded alone.
    let mut h = x.clone();
    for (l, state) in states.iter().enumerate().skip(1) {
        let p = vb.pp("encoder.layers").pp(l - 1);
        let ln1 = LayerNorm::load(&p.pp("layer_norm1"), HIDDEN, eps).unwrap();
        let ln2 = LayerNorm::load(&p.pp("layer_norm2"), HIDDEN, eps).unwrap();
        let attn = MultiHeadAttention::load(&p.pp("self_attn"), &cfg.attention).unwrap();
        let mlp = Mlp::load(&p.pp("mlp"), &MlpConfig::new(HIDDEN, inter, Activation::QuickGelu)).unwrap();
        let mid = h.add(&attn.forward(&ln1.forward(&h).unwrap(), None, None).unwrap()).unwrap();
        h = mid.add(&mlp.forward(&ln2.forward(&mid).unwrap()).unwrap()).unwrap();
        let (got, want) = (to_vec(state), to_vec(&h));
        let max = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(max < 1e-5, "hidden state {l}: max |diff| {max}");
    }
    assert_eq!(to_vec(&encoder.forward(&x, None).unwrap()), to_vec(states.last().unwrap()));
}

#[test]
fn vit_encoder_loads_other_names_and_causal_masks() {
    let (layers, inter) = (2, 24);
    let timm = VitLayerConfig::new(HIDDEN, inter, HEADS, 1e-6, Activation::Gelu)
        .with_norm_names("norm1", "norm2")
        .with_block_names("attn", "mlp")
        .with_out_name("proj");
    let mut n = 0;
    let encoder =
        VitEncoder::load_with_progress(&encoder_weights(layers, inter, true).pp("encoder"), &timm, layers, "blocks", &mut || n += 1)
            .unwrap();
    assert_eq!((encoder.layers().len(), n), (2, 2));

    // Causal: a position's state does not depend on later positions.
    let clip = VitLayerConfig::new(HIDDEN, inter, HEADS, 1e-5, Activation::QuickGelu).with_causal(true);
    let encoder = VitEncoder::load(&encoder_weights(layers, inter, false).pp("encoder"), &clip, layers).unwrap();
    let x = random(11, &[1, 5, HIDDEN]);
    let full = to_vec(&encoder.forward(&x, None).unwrap());
    let prefix = to_vec(&encoder.forward(&x.narrow(1, 0, 3).unwrap(), None).unwrap());
    let max = prefix.iter().zip(&full[..3 * HIDDEN]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(max < 1e-5, "causal prefix: max |diff| {max}");
    assert!(VitEncoder::load(&encoder_weights(1, inter, false).pp("encoder"), &clip, 2).is_err());
}
