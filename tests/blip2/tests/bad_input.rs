//! Bad inputs to BLIP-2, each a typed error naming what was wrong: a
//! checkpoint missing a tensor or holding a mis-shaped one, config sizes
//! that disagree (with themselves or with the checkpoint), a prompt longer
//! than the language model's positions, an unreadable image, no new tokens,
//! no beams. Also: tokens generated with the KV cache equal a full
//! recompute of the sequence at every step.

use std::path::Path;
use tessera_blip2_parity::Fixtures;
use tessera_qformer::{decode_image, Blip2, Blip2Options, Blip2Retrieval, Error};

const MODEL: &str = "tiny";

fn checkpoint() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    Fixtures::open().unwrap().write_checkpoint(MODEL, dir.path()).unwrap();
    dir
}

fn load(dir: &Path) -> Result<Blip2, Error> {
    Blip2::from_dir(dir, &Blip2Options::default())
}

fn load_err(dir: &Path) -> String {
    load(dir).expect_err("the checkpoint must be refused").to_string()
}

/// Rewrites config.json with `edit` applied.
fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn a_missing_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let name = "qformer.encoder.layer.1.output_query.dense.weight";
    Fixtures::open().unwrap().write_edited_checkpoint(MODEL, dir.path(), |t| t.retain(|(n, _)| n != name)).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains(name), "{e}");
}

#[test]
fn a_mis_shaped_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let name = "qformer.encoder.layer.0.crossattention.attention.key.weight";
    Fixtures::open()
        .unwrap()
        .write_edited_checkpoint(MODEL, dir.path(), |t| {
            let entry = t.iter_mut().find(|(n, _)| n == name).expect("the tiny model has cross-attention in layer 0");
            entry.1[1] += 1;
        })
        .unwrap();
    let e = load_err(dir.path());
    assert!(e.contains(name), "{e}");
}

#[test]
fn config_sizes_that_disagree_are_refused() {
    let dir = checkpoint();
    edit_config(dir.path(), |v| v["qformer_config"]["cross_attention_frequency"] = 0.into());
    let e = load_err(dir.path());
    assert!(e.contains("qformer_config.cross_attention_frequency"), "{e}");

    let dir = checkpoint();
    edit_config(dir.path(), |v| {
        let hidden = v["text_config"]["hidden_size"].as_u64().unwrap();
        v["text_config"]["num_attention_heads"] = (hidden + 1).into();
    });
    let e = load_err(dir.path());
    assert!(e.contains("text_config"), "{e}");

    // Fewer layers than the checkpoint holds.
    let dir = checkpoint();
    edit_config(dir.path(), |v| v["qformer_config"]["num_hidden_layers"] = 1.into());
    let e = load_err(dir.path());
    assert!(e.contains("qformer_config.num_hidden_layers") && e.contains("config.json"), "{e}");
}

#[test]
fn generation_limits_and_images_are_checked() {
    let dir = checkpoint();
    let blip2 = load(dir.path()).unwrap();
    let image = tessera_qformer::RgbImage::from_pixel(40, 30, image_rgb());

    let mut g = blip2.generation_config().clone();
    g.set_max_new_tokens(0);
    let e = blip2.caption(&image, None, &g, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("max_new_tokens"), "{e}");

    let mut g = blip2.generation_config().clone();
    g.num_beams = 0;
    let e = blip2.caption(&image, None, &g, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("num_beams"), "{e}");

    // A prompt longer than the positions: an error, not a panic or a cut.
    let long = "the cat sat on the mat ".repeat(40);
    let e = blip2.caption(&image, Some(&long), blip2.generation_config(), &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("positions"), "{e}");

    let e = decode_image(b"\x89PNG\r\n\x1a\nnot really", "broken.png").unwrap_err();
    assert!(matches!(e, Error::Image { .. }), "{e}");
}

fn image_rgb() -> image::Rgb<u8> {
    image::Rgb([200, 120, 40])
}

#[test]
fn cached_generation_equals_a_full_recompute() {
    let dir = checkpoint();
    let blip2 = load(dir.path()).unwrap();
    let image = tessera_qformer::RgbImage::from_fn(37, 53, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8]));
    let features = blip2.image_features(&[&image]).unwrap();
    let text = blip2.prompt_ids(None).unwrap();
    let mut g = blip2.generation_config().clone();
    g.set_max_new_tokens(8);
    g.eos_token_ids.clear();
    let cached = blip2.generate_from(&features.projection, &text, &g, &mut |_, _| {}).unwrap();
    // Each next id from the whole sequence so far, without a cache.
    let mut ids = text.clone();
    let mut recomputed = Vec::new();
    for _ in 0..cached.token_ids.len() {
        let prefill = blip2.model().prefill(&features.projection, &ids).unwrap();
        let logits = prefill.logits.to_f32_vec().unwrap();
        let next = (0..logits.len()).fold(0, |best, i| if logits[i] > logits[best] { i } else { best }) as u32;
        recomputed.push(next);
        ids.push(next);
    }
    assert_eq!(cached.token_ids, recomputed);
}

fn retrieval_checkpoint() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    tessera_blip2_parity::retrieval::write_checkpoint("tiny", dir.path()).unwrap();
    dir
}

#[test]
fn retrieval_refuses_what_it_cannot_score() {
    let dir = retrieval_checkpoint();
    let r = Blip2Retrieval::from_dir(dir.path(), &Blip2Options::default()).unwrap();
    let image = tessera_qformer::RgbImage::from_pixel(40, 30, image_rgb());
    // A text longer than the Q-Former's text positions (30 in the tiny model).
    let long = "waves ".repeat(40);
    let e = r.scores(&[&image], &[long.as_str()]).unwrap_err().to_string();
    assert!(e.contains("positions"), "{e}");
    assert!(r.scores(&[&image], &[]).unwrap_err().to_string().contains("no texts"));
    assert!(r.scores(&[], &["a disc"]).unwrap_err().to_string().contains("no images"));
    // Matching pairs images with texts one to one.
    let pixels = r.pixel_values(&[&image]).unwrap();
    let two = r.encode_texts(&["a disc", "waves"]).unwrap();
    let e = r.model().image_text_matching(&pixels, &two).unwrap_err().to_string();
    assert!(e.contains("1 images, 2 texts"), "{e}");
    // Scores are probabilities and cosines.
    let scores = r.scores(&[&image, &image], &["a disc", "waves"]).unwrap();
    assert_eq!((scores.len(), scores[0].len()), (2, 2));
    for s in scores.iter().flatten() {
        assert!((0.0..=1.0).contains(&s.itm_probability) && (-1.0..=1.0).contains(&s.itc_similarity), "{s:?}");
    }
    assert_eq!(scores[0], scores[1], "the same image scores the same");

    // Without the Q-Former's text FFN there is no retrieval model.
    edit_config(dir.path(), |v| v["qformer_config"]["use_qformer_text_input"] = false.into());
    let e = Blip2Retrieval::from_dir(dir.path(), &Blip2Options::default()).unwrap_err().to_string();
    assert!(e.contains("use_qformer_text_input"), "{e}");
    // Heads whose width disagrees with the config.
    edit_config(dir.path(), |v| {
        v["qformer_config"]["use_qformer_text_input"] = true.into();
        v["image_text_hidden_size"] = 25.into();
    });
    let e = Blip2Retrieval::from_dir(dir.path(), &Blip2Options::default()).unwrap_err().to_string();
    assert!(e.contains("image_text_hidden_size"), "{e}");
}
