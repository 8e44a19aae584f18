//! Weight maps: prefixes, shape checks, typed errors naming the full tensor,
//! dtype casts, error collection, unused weights, safetensors checkpoints.

mod common;

use common::*;
use std::collections::BTreeMap;
use tessera_nn::{Error, LayerNorm, Linear, VarBuilder};
use tessera_tensor::safetensors::{self, Checkpoint};
use tessera_tensor::{DType, Tensor};

const Q_W: &str = "vision_model.encoder.layers.3.self_attn.q_proj.weight";

fn attn_builder() -> VarBuilder {
    builder(vec![
        (Q_W, random(1, &[4, 6])),
        ("vision_model.encoder.layers.3.self_attn.q_proj.bias", random(2, &[4])),
        ("vision_model.encoder.layers.3.self_attn.k_proj.weight", random(3, &[4, 5])),
        ("vision_model.position_ids", Tensor::from_slice(&[0i64, 1, 2], 3, &dev()).unwrap()),
    ])
}

#[test]
fn nested_prefixes_join_with_dots() {
    let vb = attn_builder();
    let layer = vb.pp("vision_model").pp("encoder.layers").pp(3).push_prefix("self_attn");
    assert_eq!(layer.prefix(), "vision_model.encoder.layers.3.self_attn");
    assert_eq!(layer.pp("q_proj").full_name("weight"), Q_W);
    assert_eq!(layer.pp("").prefix(), layer.prefix());
    assert!(layer.pp("q_proj").contains("bias"));
    assert!(!layer.pp("q_proj").contains("nope"));
    let w = layer.pp("q_proj").get((4, 6), "weight").unwrap();
    assert_eq!(to_vec(&w), to_vec(&random(1, &[4, 6])));
    assert_eq!(layer.pp("q_proj").info("weight"), Some((DType::F32, vec![4, 6])));
}

#[test]
fn missing_tensor_names_the_full_name() {
    let vb = attn_builder().pp("vision_model.encoder.layers.3.self_attn.v_proj");
    let err = vb.get((4, 6), "weight").unwrap_err();
    match &err {
        Error::MissingTensor { name } => assert_eq!(name, "vision_model.encoder.layers.3.self_attn.v_proj.weight"),
        other => panic!("expected MissingTensor, got {other:?}"),
    }
    assert!(err.to_string().contains("vision_model.encoder.layers.3.self_attn.v_proj.weight"), "{err}");
    // Through a layer constructor too.
    let err = Linear::load(&vb, 6, 4, true).unwrap_err();
    assert!(err.to_string().contains("self_attn.v_proj.weight"), "{err}");
    // And after conversion into the core's error type.
    let core: tessera_tensor::Error = err.into();
    assert!(core.to_string().contains("vision_model.encoder.layers.3.self_attn.v_proj.weight"), "{core}");
}

#[test]
fn wrong_shape_names_tensor_and_both_shapes() {
    let vb = attn_builder().pp("vision_model").pp("encoder").pp("layers").pp(3).pp("self_attn").pp("k_proj");
    let err = Linear::load(&vb, 6, 4, false).unwrap_err();
    match &err {
        Error::ShapeMismatch { name, expected, actual } => {
            assert_eq!(name, "vision_model.encoder.layers.3.self_attn.k_proj.weight");
            assert_eq!(expected, &vec![4, 6]);
            assert_eq!(actual, &vec![4, 5]);
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("vision_model.encoder.layers.3.self_attn.k_proj.weight") && msg.contains("[4, 6]") && msg.contains("[4, 5]"),
        "{msg}"
    );
    assert_eq!(err.tensor_names(), vec!["vision_model.encoder.layers.3.self_attn.k_proj.weight"]);
}

#[test]
fn get_opt_and_unchecked() {
    let vb = attn_builder().pp("vision_model.encoder.layers.3.self_attn");
    assert!(vb.pp("k_proj").get_opt(4, "bias").unwrap().is_none());
    assert!(vb.pp("q_proj").get_opt(4, "bias").unwrap().is_some());
    let err = vb.pp("q_proj").get_opt(5, "bias").unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }) && err.to_string().contains("q_proj.bias"), "{err}");
    assert_eq!(vb.pp("k_proj").get_unchecked("weight").unwrap().dims(), &[4, 5]);
    let err = vb.get_unchecked("missing").unwrap_err();
    assert!(err.to_string().contains("vision_model.encoder.layers.3.self_attn.missing"), "{err}");
    // Linear::load_opt_bias takes the bias only where it exists.
    assert!(Linear::load_opt_bias(&vb.pp("q_proj"), 6, 4).unwrap().bias().is_some());
    assert!(Linear::load_opt_bias(&vb.pp("k_proj"), 5, 4).unwrap().bias().is_none());
}

#[test]
fn float_weights_are_cast_integers_refused_unless_stored_dtypes_are_asked_for() {
    let vb = attn_builder().with_dtype(DType::F16);
    assert_eq!(vb.dtype(), Some(DType::F16));
    let w = vb.get((4, 6), Q_W).unwrap();
    assert_eq!(w.dtype(), DType::F16);
    // An integer tensor where the model computes in floats is a broken
    // checkpoint: an error naming the tensor, not a failure in a matmul.
    let err = vb.get(3, "vision_model.position_ids").unwrap_err();
    assert!(matches!(err, Error::DTypeMismatch { .. }), "{err}");
    assert_eq!(err.to_string(), "tensor 'vision_model.position_ids' has dtype i64, expected a float tensor (the model computes in f16)");
    assert!(vb.get_opt(3, "vision_model.position_ids").is_err());
    let ids = vb.with_stored_dtype().get(3, "vision_model.position_ids").unwrap();
    assert_eq!(ids.dtype(), DType::I64);
    assert_eq!(ids.to_vec::<i64>().unwrap(), vec![0, 1, 2]);
    // A sub-tree may keep stored dtypes.
    assert_eq!(vb.with_stored_dtype().get((4, 6), Q_W).unwrap().dtype(), DType::F32);
}

#[test]
fn collecting_mode_reports_every_problem() {
    let vb = attn_builder().collect_errors();
    let attn = vb.pp("vision_model.encoder.layers.3.self_attn");
    // k_proj has the wrong shape, v_proj is missing (weight and bias): all recorded.
    let k = Linear::load(&attn.pp("k_proj"), 6, 4, false).unwrap();
    assert_eq!(k.weight().unwrap().dims(), &[4, 6], "stands in with the expected shape");
    let v = Linear::load(&attn.pp("v_proj"), 6, 4, true).unwrap();
    assert_eq!(to_vec(v.weight().unwrap()), vec![0.0; 24]);
    let q = Linear::load(&attn.pp("q_proj"), 6, 4, true).unwrap();
    assert_eq!(q.weight().unwrap().dims(), &[4, 6]);
    let err = vb.finish().unwrap_err();
    let names = err.tensor_names();
    assert_eq!(
        names,
        vec![
            "vision_model.encoder.layers.3.self_attn.k_proj.weight",
            "vision_model.encoder.layers.3.self_attn.v_proj.weight",
            "vision_model.encoder.layers.3.self_attn.v_proj.bias",
        ]
    );
    let msg = err.to_string();
    assert!(msg.starts_with("in-memory tensors: 2 tensors missing, 1 tensor with the wrong shape: "), "{msg}");
    assert!(msg.contains("v_proj.bias") && msg.contains("[4, 5]") && !msg.contains('\n'), "{msg}");
    // Errors are drained.
    vb.finish().unwrap();
}

#[test]
fn many_missing_tensors_make_one_compact_line() {
    let vb = attn_builder().collect_errors();
    for i in 0..300 {
        let _ = vb.get(4, &format!("absent.{i}.weight")).unwrap();
    }
    let msg = vb.finish().unwrap_err().to_string();
    assert!(msg.starts_with("in-memory tensors: 300 tensors missing: missing tensor 'absent.0.weight'; "), "{msg}");
    assert!(msg.ends_with("; and 295 more") && !msg.contains('\n') && msg.len() < 400, "{msg}");
}

#[test]
fn unused_lists_weights_never_loaded() {
    let vb = attn_builder();
    let attn = vb.pp("vision_model.encoder.layers.3.self_attn");
    Linear::load(&attn.pp("q_proj"), 6, 4, true).unwrap();
    assert_eq!(attn.unused(), vec!["k_proj.weight".to_string()]);
    assert_eq!(vb.unused(), vec!["vision_model.encoder.layers.3.self_attn.k_proj.weight", "vision_model.position_ids"]);
    // A prefix that is a string prefix but not a path prefix lists nothing.
    assert!(vb.pp("vision_model.encoder.layers.3.self_at").unused().is_empty());
}

#[test]
fn loads_from_a_safetensors_checkpoint() {
    let dir = std::env::temp_dir().join(format!("tessera-nn-vb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    let w = random(10, &[3, 2]);
    let b = random(11, &[3]);
    let ln_w = random(12, &[2]).to_dtype(DType::BF16).unwrap();
    let ln_b = random(13, &[2]).to_dtype(DType::BF16).unwrap();
    safetensors::save(
        &path,
        &[("model.proj.weight", &w), ("model.proj.bias", &b), ("model.norm.weight", &ln_w), ("model.norm.bias", &ln_b)],
        Some(&BTreeMap::new()),
    )
    .unwrap();
    let ckpt = Checkpoint::open(&dir).unwrap();
    let vb = VarBuilder::from_source(ckpt, dev()).with_dtype(DType::F32).pp("model");
    let lin = Linear::load(&vb.pp("proj"), 2, 3, true).unwrap();
    assert_eq!(to_vec(lin.weight().unwrap()), to_vec(&w));
    let norm = LayerNorm::load(&vb.pp("norm"), 2, 1e-5).unwrap();
    assert_eq!(norm.weight().unwrap().dtype(), DType::F32, "bf16 weights cast to the builder dtype");
    let err = LayerNorm::load(&vb.pp("final_norm"), 2, 1e-5).unwrap_err();
    assert!(err.to_string().contains("model.final_norm.weight"), "{err}");
    let err = Linear::load(&vb.pp("proj"), 3, 3, true).unwrap_err();
    assert!(err.to_string().contains("model.proj.weight") && err.to_string().contains("[3, 2]"), "{err}");
    assert!(vb.unused().is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn layers_and_builders_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<VarBuilder>();
    assert_send_sync::<Error>();
    assert_send_sync::<tessera_nn::MultiHeadAttention>();
    assert_send_sync::<tessera_nn::KvCache>();
    assert_send_sync::<tessera_nn::SwiGlu>();
    assert_send_sync::<tessera_nn::LogitsProcessor>();
}
