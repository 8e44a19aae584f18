//! MMaDA's bad-input errors: each a typed error naming what is wrong.

use std::path::Path;
use tessera_mmada::modeling_magvitv2::normalize_pixels;
use tessera_mmada::{mmu_generate, MagvitConfig, MmadaConfig, Remasking, SeededNoise, TextGeneration};
use tessera_mmada_parity::{load_llada, load_magvit};
use tessera_tensor::Device;

fn fixture_or_skip() -> Option<std::path::PathBuf> {
    tessera_mmada_parity::fixture_or_skip().map(|f| f.dir)
}

/// config.json edited by `edit`, in a fresh directory.
fn edited_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    edit(&mut v);
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("config.json"), v.to_string()).unwrap();
    out
}

#[test]
fn a_vocabulary_too_small_for_the_image_codes() {
    let Some(dir) = fixture_or_skip() else { return };
    let c = MmadaConfig::from_dir(&dir).unwrap();
    c.check_image_offset(126349).unwrap();
    let e = c.check_image_offset(c.vocab_size() - c.codebook_size + 1).unwrap_err().to_string();
    assert!(e.contains("do not fit vocab_size"), "{e}");
}

#[test]
fn unsupported_or_inconsistent_configs() {
    let Some(dir) = fixture_or_skip() else { return };
    for (field, value, says) in [
        ("block_type", serde_json::json!("sequential"), "block_type"),
        ("alibi", serde_json::json!(true), "alibi"),
        ("activation_type", serde_json::json!("swiglu"), "activation_type"),
        ("n_heads", serde_json::json!(3), "n_heads"),
        ("num_vq_tokens", serde_json::json!(15), "square grid"),
        ("mask_token_id", serde_json::json!(999999), "outside the vocabulary"),
    ] {
        let d = edited_config(&dir, |v| v[field] = value.clone());
        let e = MmadaConfig::from_dir(d.path()).unwrap_err().to_string();
        assert!(e.contains(says), "{field}: {e}");
    }
}

#[test]
fn block_and_step_counts_that_do_not_divide() {
    let Some(dir) = fixture_or_skip() else { return };
    let model = load_llada(&dir, &Device::cpu()).unwrap();
    let base = TextGeneration {
        gen_length: 12,
        block_length: 6,
        steps: 8,
        temperature: 0.0,
        cfg_scale: 0.0,
        remasking: Remasking::LowConfidence,
        mask_id: model.config().mask_token_id,
        prefix_cache: false,
    };
    let prompt = vec![vec![126080u32, 64, 2906]];
    for (g, says) in [
        (TextGeneration { block_length: 5, ..base.clone() }, "gen_length 12 is not a positive multiple of block_length 5"),
        (TextGeneration { steps: 7, ..base.clone() }, "steps 7 do not divide into the 2 blocks"),
        (TextGeneration { temperature: -1.0, ..base.clone() }, "must be >= 0"),
    ] {
        let e = mmu_generate(&model, &prompt, &g, &mut SeededNoise::new(0), &mut |_, _| {}).unwrap_err().to_string();
        assert!(e.contains(says), "{e}");
    }
    assert!("greedy".parse::<Remasking>().unwrap_err().to_string().contains("unknown remasking"));
}

#[test]
fn images_of_the_wrong_size_and_missing_magvit_files() {
    let Some(dir) = fixture_or_skip() else { return };
    let vq = load_magvit(&dir, &Device::cpu()).unwrap();
    let f = vq.config().downsample();
    for (h, w) in [(f + 2, f + 2), (f, 2 * f)] {
        let pixels = normalize_pixels(&vec![0u8; h * w * 3], h, w, &Device::cpu()).unwrap();
        let e = vq.encode(&pixels).unwrap_err().to_string();
        assert!(e.contains(&format!("side a multiple of {f}")), "{e}");
    }
    assert!(normalize_pixels(&[0u8; 10], 2, 2, &Device::cpu()).is_err());
    let e = vq.decode(&[vec![0, 1, 2]]).unwrap_err().to_string();
    assert!(e.contains("square grid"), "{e}");
    let e = vq.decode(&[vec![64; 16]]).unwrap_err().to_string();
    assert!(e.contains("outside the codebook of 64"), "{e}");
    let e = MagvitConfig::from_file(&dir.join("no_such_magvit_config.json")).unwrap_err().to_string();
    assert!(e.contains("no_such_magvit_config.json"), "{e}");
}
