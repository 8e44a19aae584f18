//! Bad inputs to Janus-Pro, each a typed error naming what was wrong: the
//! tokenizer or the chat template missing or malformed, an image-token
//! count that does not match the vision grid (in the config, in the
//! processor, in a prompt), a VQ tensor truncated or cut off in the file,
//! no images to generate, a negative guidance scale. Also: text generated
//! with the KV cache equals a full recompute at every step.

use std::path::Path;
use tessera_janus::{Error, ImageSampling, Janus, JanusOptions, SamplingConfig};
use tessera_janus_parity::{fixtures, write_checkpoint};

const MODEL: &str = "tiny";

fn checkpoint() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(MODEL, dir.path()).unwrap();
    dir
}

fn load(dir: &Path) -> Result<Janus, Error> {
    Janus::from_dir(dir, &JanusOptions::default())
}

fn load_err(dir: &Path) -> Error {
    load(dir).expect_err("the checkpoint must be refused")
}

/// Rewrites the JSON file `name` of `dir` with `edit` applied.
fn edit_json(dir: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join(name);
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn a_missing_or_malformed_tokenizer_is_a_tokenizer_error() {
    let dir = checkpoint();
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let e = load_err(dir.path());
    assert!(matches!(e, Error::Tokenizer { .. }) && e.to_string().contains("tokenizer.json"), "{e}");
    std::fs::write(dir.path().join("tokenizer.json"), "{\"model\": {\"type\": \"BPE\", \"vocab\": 3}}").unwrap();
    let e = load_err(dir.path());
    assert!(matches!(e, Error::Tokenizer { .. }), "{e}");
}

#[test]
fn a_tokenizer_without_the_image_tokens_is_refused() {
    let dir = checkpoint();
    edit_json(dir.path(), "tokenizer_config.json", |v| v["boi_token"] = "<no_such_token>".into());
    let e = load_err(dir.path());
    assert!(e.to_string().contains("<no_such_token>"), "{e}");
}

#[test]
fn a_missing_chat_template_fails_when_a_prompt_needs_it() {
    let dir = checkpoint();
    std::fs::remove_file(dir.path().join("chat_template.jinja")).unwrap();
    for file in ["tokenizer_config.json", "processor_config.json"] {
        edit_json(dir.path(), file, |v| {
            v.as_object_mut().unwrap().remove("chat_template");
        });
    }
    let janus = load(dir.path()).unwrap();
    let e = janus.processor().understanding_ids("What is this?", 0).unwrap_err();
    assert!(matches!(e, Error::Tokenizer { .. }) && e.to_string().contains("no chat template"), "{e}");
    let e = janus.image_prompt_ids("a cat").unwrap_err();
    assert!(e.to_string().contains("no chat template"), "{e}");
}

#[test]
fn a_malformed_chat_template_names_its_file() {
    let dir = checkpoint();
    std::fs::write(dir.path().join("chat_template.jinja"), "{% for message in messages %}{{ message['role'] }").unwrap();
    let e = load_err(dir.path());
    assert!(matches!(e, Error::Tokenizer { .. }) && e.to_string().contains("chat_template.jinja"), "{e}");
    // One that compiles but fails on the messages it is given.
    std::fs::write(dir.path().join("chat_template.jinja"), "{{ raise_exception('only system messages') }}").unwrap();
    let janus = load(dir.path()).unwrap();
    let e = janus.processor().understanding_ids("hi", 0).unwrap_err();
    assert!(e.to_string().contains("only system messages"), "{e}");
}

#[test]
fn an_image_token_count_off_the_vision_grid_is_refused() {
    let dir = checkpoint();
    edit_json(dir.path(), "config.json", |v| v["vision_config"]["num_image_tokens"] = 24.into());
    let e = load_err(dir.path());
    assert!(matches!(e, Error::Config { .. }) && e.to_string().contains("num_image_tokens"), "{e}");

    let dir = checkpoint();
    edit_json(dir.path(), "processor_config.json", |v| v["num_image_tokens"] = 16.into());
    let e = load_err(dir.path());
    assert!(matches!(e, Error::Config { .. }) && e.to_string().contains("num_image_tokens"), "{e}");
}

#[test]
fn placeholders_and_images_must_agree() {
    let dir = checkpoint();
    let janus = load(dir.path()).unwrap();
    let image = tessera_janus::RgbImage::from_pixel(20, 30, image::Rgb([10, 200, 30]));
    let p = janus.processor();
    // Two placeholders, one image.
    let text = format!("{0} and {0}", p.image_token.text);
    let e = p.encode(&text, 1, tessera_janus::GenerationMode::Text).unwrap_err();
    assert!(e.to_string().contains("2 <image_placeholder> tokens but 1 image"), "{e}");
    // Features for one image given to a prompt without placeholders.
    let features = janus.model().get_image_features(&janus.pixel_values(&[&image]).unwrap()).unwrap().aligned;
    let ids = p.understanding_ids("hi", 0).unwrap();
    let e = janus.model().embed_prompt(&ids, Some(&features)).unwrap_err();
    assert!(e.to_string().contains("0 image placeholders"), "{e}");
}

#[test]
fn a_truncated_vq_tensor_is_named() {
    let name = "model.vqmodel.quantize.embedding.weight";
    let dir = tempfile::tempdir().unwrap();
    fixtures()
        .unwrap()
        .write_edited_checkpoint(MODEL, dir.path(), |t| {
            let entry = t.iter_mut().find(|(n, _)| n == name).expect("the VQ codebook");
            entry.1[0] -= 1;
        })
        .unwrap();
    let e = load_err(dir.path());
    assert!(e.to_string().contains(name), "{e}");
}

#[test]
fn a_checkpoint_cut_short_is_an_error() {
    let dir = checkpoint();
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1000]).unwrap();
    let e = load_err(dir.path());
    assert!(e.to_string().contains("model.safetensors"), "{e}");
}

#[test]
fn no_images_or_a_negative_guidance_scale_are_refused() {
    let dir = checkpoint();
    let janus = load(dir.path()).unwrap();
    let greedy = |guidance_scale| ImageSampling { guidance_scale, sampling: SamplingConfig::greedy(), seed: 0 };
    let e = janus.generate_image_tokens("a cat", 0, &greedy(5.0), &mut |_, _| {}).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }) && e.to_string().contains("at least 1"), "{e}");
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        let e = janus.generate_image_tokens("a cat", 1, &greedy(bad), &mut |_, _| {}).unwrap_err();
        assert!(e.to_string().contains("guidance scale"), "{bad}: {e}");
    }
    edit_json(dir.path(), "generation_config.json", |v| v["guidance_scale"] = (-2.0).into());
    let e = load_err(dir.path());
    assert!(matches!(e, Error::Config { .. }) && e.to_string().contains("guidance_scale"), "{e}");
}

#[test]
fn cached_decoding_equals_a_full_recompute() {
    let dir = checkpoint();
    let janus = load(dir.path()).unwrap();
    let mut ids = janus.processor().understanding_ids("Describe the colors and the shapes.", 0).unwrap();
    let config = tessera_janus::GenerationConfig::greedy(6);
    let answer = janus.generate_from(&ids, None, &config, &mut |_, _| {}).unwrap();
    for &next in &answer.token_ids {
        let embeds = janus.model().embed_prompt(&ids, None).unwrap();
        let logits = janus.model().prefill(&embeds).unwrap().logits.to_f32_vec().unwrap();
        let best = logits.iter().enumerate().fold((0, f32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0;
        assert_eq!(best as u32, next);
        ids.push(next);
    }
}
