//! Each layer against a hand computation in f64.

mod common;

use common::*;
use tessera_nn::{Activation, Conv2d, Embedding, LayerNorm, Linear, Mlp, MlpConfig, Module, RmsNorm, SwiGlu, SwiGluConfig};
use tessera_tensor::{Conv2dParams, DType, Tensor};

#[test]
fn linear_matches_loops_for_any_rank() {
    let (w, b) = (values(1, 5 * 4), values(2, 5));
    let vb = builder(vec![("fc.weight", tensor(&w, &[5, 4])), ("fc.bias", tensor(&b, &[5]))]);
    let lin = Linear::load(&vb.pp("fc"), 4, 5, true).unwrap();
    assert_eq!((lin.in_dim(), lin.out_dim()), (4, 5));
    for shape in [vec![4], vec![3, 4], vec![2, 3, 4], vec![2, 1, 3, 4]] {
        let n: usize = shape.iter().product();
        let x = values(3, n);
        let y = lin.forward(&tensor(&x, &shape)).unwrap();
        let mut out_shape = shape.clone();
        *out_shape.last_mut().unwrap() = 5;
        assert_eq!(y.dims(), &out_shape[..]);
        assert_close(&to_vec(&y), &linear_ref(&f64s(&x), &w, Some(&b), 4, 5), 1e-5);
    }
    // Without bias.
    let nb = Linear::new(tensor(&w, &[5, 4]), None).unwrap();
    let x = values(4, 6 * 4);
    assert_close(&to_vec(&nb.forward(&tensor(&x, &[2, 3, 4])).unwrap()), &linear_ref(&f64s(&x), &w, None, 4, 5), 1e-5);
    // Wrong input width.
    let err = lin.forward(&random(5, &[2, 3])).unwrap_err();
    assert!(err.to_string().contains("linear"), "{err}");
    // Bad construction.
    assert!(Linear::new(random(1, &[5]), None).is_err());
    assert!(Linear::new(random(1, &[5, 4]), Some(random(2, &[4]))).is_err());
}

#[test]
fn linear_in_half_precision() {
    let (w, x) = (values(1, 3 * 8), values(2, 2 * 8));
    let lin = Linear::new(tensor(&w, &[3, 8]).to_dtype(DType::BF16).unwrap(), None).unwrap();
    let y = lin.forward(&tensor(&x, &[2, 8]).to_dtype(DType::BF16).unwrap()).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    assert_close(&to_vec(&y), &linear_ref(&f64s(&x), &w, None, 8, 3), 3e-2);
}

#[test]
fn layer_norm_matches_formula() {
    let (d, rows) = (7, 3);
    let (x, w, b) = (values(1, rows * d), values(2, d), values(3, d));
    let vb = builder(vec![("ln.weight", tensor(&w, &[d])), ("ln.bias", tensor(&b, &[d]))]);
    let eps = 1e-5;
    let ln = LayerNorm::load(&vb.pp("ln"), d, eps).unwrap();
    let y = ln.forward(&tensor(&x, &[1, rows, d])).unwrap();
    let mut expected = Vec::new();
    for r in x.chunks(d) {
        let mean = r.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = r.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        for (j, &v) in r.iter().enumerate() {
            expected.push((v as f64 - mean) / (var + eps).sqrt() * w[j] as f64 + b[j] as f64);
        }
    }
    assert_close(&to_vec(&y), &expected, 1e-5);
    // Without affine parameters.
    let plain = LayerNorm::new(None, None, eps).unwrap();
    let y = plain.forward(&tensor(&x, &[rows, d])).unwrap();
    let mut expected = Vec::new();
    for r in x.chunks(d) {
        let mean = r.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = r.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        expected.extend(r.iter().map(|&v| (v as f64 - mean) / (var + eps).sqrt()));
    }
    assert_close(&to_vec(&y), &expected, 1e-5);
    assert!(LayerNorm::new(Some(random(1, &[3])), Some(random(1, &[4])), eps).is_err());
}

#[test]
fn rms_norm_matches_formula() {
    let (d, rows) = (6, 4);
    let (x, w) = (values(1, rows * d), values(2, d));
    let vb = builder(vec![("model.norm.weight", tensor(&w, &[d]))]);
    let eps = 1e-6;
    let norm = RmsNorm::load(&vb.pp("model").pp("norm"), d, eps).unwrap();
    let y = norm.forward(&tensor(&x, &[2, 2, d])).unwrap();
    let mut expected = Vec::new();
    for r in x.chunks(d) {
        let ms = r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / d as f64;
        expected.extend(r.iter().enumerate().map(|(j, &v)| v as f64 / (ms + eps).sqrt() * w[j] as f64));
    }
    assert_close(&to_vec(&y), &expected, 1e-5);
    assert!(RmsNorm::new(Some(random(1, &[2, 3])), eps).is_err());
}

#[test]
fn embedding_picks_rows() {
    let table = values(1, 5 * 3);
    let vb = builder(vec![("embed_tokens.weight", tensor(&table, &[5, 3]))]);
    let emb = Embedding::load(&vb.pp("embed_tokens"), 5, 3).unwrap();
    assert_eq!((emb.vocab_size(), emb.dim()), (5, 3));
    let ids = Tensor::from_slice(&[4u32, 0, 2, 2], (2, 2), &dev()).unwrap();
    let y = emb.forward(&ids).unwrap();
    assert_eq!(y.dims(), &[2, 2, 3]);
    let expected: Vec<f64> = [4, 0, 2, 2].iter().flat_map(|&i| table[i * 3..i * 3 + 3].iter().map(|&v| v as f64)).collect();
    assert_close(&to_vec(&y), &expected, 0.0);
    let bad = Tensor::from_slice(&[5i64], 1, &dev()).unwrap();
    assert!(emb.forward(&bad).is_err());
}

#[test]
fn conv2d_matches_loops() {
    let (n, c, h, w, o, k) = (2, 4, 5, 6, 6, 3);
    for (groups, stride, pad) in [(1, (1, 1), (0, 0)), (1, (2, 1), (1, 1)), (2, (2, 2), (1, 0))] {
        let params = Conv2dParams { stride, padding: pad, dilation: (1, 1), groups };
        let cg = c / groups;
        let (x, wt, b) = (values(1, n * c * h * w), values(2, o * cg * k * k), values(3, o));
        let vb = builder(vec![("patch_embedding.weight", tensor(&wt, &[o, cg, k, k])), ("patch_embedding.bias", tensor(&b, &[o]))]);
        let conv = Conv2d::load(&vb.pp("patch_embedding"), c, o, (k, k), params, true).unwrap();
        let y = conv.forward(&tensor(&x, &[n, c, h, w])).unwrap();
        let oh = (h + 2 * pad.0 - k) / stride.0 + 1;
        let ow = (w + 2 * pad.1 - k) / stride.1 + 1;
        assert_eq!(y.dims(), &[n, o, oh, ow]);
        let mut expected = vec![0.0f64; n * o * oh * ow];
        for ni in 0..n {
            for oc in 0..o {
                let g = oc / (o / groups);
                for yi in 0..oh {
                    for xi in 0..ow {
                        let mut s = b[oc] as f64;
                        for ci in 0..cg {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let iy = (yi * stride.0 + ky) as isize - pad.0 as isize;
                                    let ix = (xi * stride.1 + kx) as isize - pad.1 as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                        continue;
                                    }
                                    let xv = x[((ni * c + g * cg + ci) * h + iy as usize) * w + ix as usize] as f64;
                                    s += xv * wt[((oc * cg + ci) * k + ky) * k + kx] as f64;
                                }
                            }
                        }
                        expected[((ni * o + oc) * oh + yi) * ow + xi] = s;
                    }
                }
            }
        }
        assert_close(&to_vec(&y), &expected, 1e-5);
    }
    // Groups that do not divide the channels.
    let vb = builder(vec![]);
    let bad = Conv2dParams { groups: 3, ..Default::default() };
    assert!(Conv2d::load(&vb, 4, 6, (3, 3), bad, false).is_err());
}

#[test]
fn activations_by_hf_name() {
    let cases = [
        ("gelu", Activation::Gelu),
        ("gelu_new", Activation::GeluTanh),
        ("gelu_pytorch_tanh", Activation::GeluTanh),
        ("quick_gelu", Activation::QuickGelu),
        ("silu", Activation::Silu),
        ("swish", Activation::Silu),
        ("relu", Activation::Relu),
        ("GELU", Activation::Gelu),
    ];
    for (name, act) in cases {
        assert_eq!(Activation::from_hf_name(name).unwrap(), act, "{name}");
        assert_eq!(name.parse::<Activation>().unwrap(), act);
    }
    let err = Activation::from_hf_name("mish").unwrap_err();
    assert!(err.to_string().contains("mish") && err.to_string().contains("gelu_pytorch_tanh"), "{err}");
    #[derive(serde::Deserialize)]
    struct Cfg {
        hidden_act: Activation,
    }
    let cfg: Cfg = serde_json::from_str(r#"{"hidden_act": "gelu_new"}"#).unwrap();
    assert_eq!(cfg.hidden_act, Activation::GeluTanh);
    assert!(serde_json::from_str::<Cfg>(r#"{"hidden_act": "nope"}"#).is_err());
    assert_eq!(serde_json::to_string(&Activation::QuickGelu).unwrap(), "\"quick_gelu\"");
}

#[test]
fn activations_match_formulas() {
    let xs = [-3.0f32, -1.0, -0.25, 0.0, 0.5, 1.0, 2.5];
    let x = tensor(&xs, &[xs.len()]);
    let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
    let gelu_tanh = |v: f64| 0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh());
    // Exact GELU at these points, from x * Phi(x).
    let gelu_exact = [
        -0.00404969409489031,
        -0.15865525393145707,
        -0.10032341857926907,
        0.0,
        0.34573123063700656,
        0.8413447460685429,
        2.4844758366855597,
    ];
    let check = |act: Activation, f: &dyn Fn(usize, f64) -> f64| {
        let expected: Vec<f64> = xs.iter().enumerate().map(|(i, &v)| f(i, v as f64)).collect();
        assert_close(&to_vec(&act.forward(&x).unwrap()), &expected, 1e-5);
    };
    check(Activation::Gelu, &|i, _| gelu_exact[i]);
    check(Activation::GeluTanh, &|_, v| gelu_tanh(v));
    check(Activation::QuickGelu, &|_, v| v * sigmoid(1.702 * v));
    check(Activation::Silu, &|_, v| v * sigmoid(v));
    check(Activation::Relu, &|_, v| v.max(0.0));
    check(Activation::Identity, &|_, v| v);
}

#[test]
fn mlp_is_fc2_act_fc1() {
    let (h, i) = (4, 6);
    let (w1, b1, w2, b2) = (values(1, i * h), values(2, i), values(3, h * i), values(4, h));
    let vb = builder(vec![
        ("mlp.c_fc.weight", tensor(&w1, &[i, h])),
        ("mlp.c_fc.bias", tensor(&b1, &[i])),
        ("mlp.c_proj.weight", tensor(&w2, &[h, i])),
        ("mlp.c_proj.bias", tensor(&b2, &[h])),
    ]);
    let cfg = MlpConfig::new(h, i, Activation::GeluTanh).with_names("c_fc", "c_proj");
    let mlp = Mlp::load(&vb.pp("mlp"), &cfg).unwrap();
    let x = values(5, 3 * h);
    let y = mlp.forward(&tensor(&x, &[1, 3, h])).unwrap();
    let gelu_tanh = |v: f64| 0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh());
    let hidden: Vec<f32> = linear_ref(&f64s(&x), &w1, Some(&b1), h, i).into_iter().map(|v| gelu_tanh(v) as f32).collect();
    assert_close(&to_vec(&y), &linear_ref(&f64s(&hidden), &w2, Some(&b2), i, h), 1e-5);
    // Default names are fc1/fc2 and a missing one is reported by full name.
    let err = Mlp::load(&vb.pp("mlp"), &MlpConfig::new(h, i, Activation::Gelu)).unwrap_err();
    assert!(err.to_string().contains("mlp.fc1.weight"), "{err}");
}

#[test]
fn swiglu_is_down_of_silu_gate_times_up() {
    let (h, i) = (5, 8);
    let (wg, wu, wd) = (values(1, i * h), values(2, i * h), values(3, h * i));
    let vb = builder(vec![
        ("layers.0.mlp.gate_proj.weight", tensor(&wg, &[i, h])),
        ("layers.0.mlp.up_proj.weight", tensor(&wu, &[i, h])),
        ("layers.0.mlp.down_proj.weight", tensor(&wd, &[h, i])),
    ]);
    let mlp = SwiGlu::load(&vb.pp("layers").pp(0).pp("mlp"), &SwiGluConfig::new(h, i)).unwrap();
    let x = values(4, 2 * 3 * h);
    let y = mlp.forward(&tensor(&x, &[2, 3, h])).unwrap();
    let (g, u) = (linear_ref(&f64s(&x), &wg, None, h, i), linear_ref(&f64s(&x), &wu, None, h, i));
    let inner: Vec<f32> = g.iter().zip(&u).map(|(&g, &u)| (g / (1.0 + (-g).exp()) * u) as f32).collect();
    assert_close(&to_vec(&y), &linear_ref(&f64s(&inner), &wd, None, i, h), 1e-5);
    // The same as composing the layers by hand.
    let composed = mlp
        .down()
        .forward(
            &mlp.gate()
                .forward(&tensor(&x, &[2, 3, h]))
                .unwrap()
                .silu()
                .unwrap()
                .mul(&mlp.up().forward(&tensor(&x, &[2, 3, h])).unwrap())
                .unwrap(),
        )
        .unwrap();
    assert_eq!(to_vec(&composed), to_vec(&y));
}
