//! `tessera blip2 caption --json` and `tessera blip2 match --json` on the
//! BLIP-2 parity suite's seeded checkpoints: the JSON the issue specifies,
//! with the ids transformers generated.

mod common;

use common::tessera_json;
use tessera_blip2_parity::{fixtures_dir, retrieval, Fixtures};
use tessera_tensor::safetensors::SafeTensorsFile;
use tessera_tensor::Device;

#[test]
fn caption_json_holds_the_generated_ids() {
    let fixtures = Fixtures::open().unwrap();
    let dir = tempfile::tempdir().unwrap();
    fixtures.write_checkpoint("tiny", dir.path()).unwrap();
    // The first recorded tiny case: image 0, no prompt, greedy.
    let case = &fixtures.cases("tiny").unwrap()[0];
    assert!(case.prompt.is_none());
    let image = fixtures.image_paths().unwrap()[case.image].display().to_string();
    let n = case.greedy.max_new_tokens.to_string();
    let model = dir.path().display().to_string();
    let v = tessera_json(&["blip2", "caption", "--model", &model, "--image", &image, "--max-new-tokens", &n, "--num-beams", "1", "--json"]);
    let captions = v["captions"].as_array().expect("a captions list");
    assert_eq!(captions.len(), 1);
    assert_eq!(captions[0]["image"], image.as_str());
    let ids: Vec<u32> = captions[0]["token_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    assert_eq!(ids, case.greedy.ids);
    assert_eq!(captions[0]["text"], case.greedy.text.trim());
}

#[test]
fn match_json_scores_every_pair_as_transformers() {
    let dir = tempfile::tempdir().unwrap();
    retrieval::write_checkpoint("tiny", dir.path()).unwrap();
    // Image 2 of the retrieval fixtures (a PNG, so its pixels are exact) and
    // two of its texts.
    let image = fixtures_dir().join("images/disc_rgba_64x48.png").display().to_string();
    let texts = ["a picture of waves", "disc"];
    let (row, cols) = (2, [0, 2]);
    let expected = SafeTensorsFile::open(retrieval::retrieval_dir().join("tiny/expected.safetensors")).unwrap();
    let itm = expected.load("itm_logits", &Device::cpu()).unwrap().to_f32_vec().unwrap();
    let itc = expected.load("itc_logits_per_image", &Device::cpu()).unwrap().to_f32_vec().unwrap();
    let model = dir.path().display().to_string();
    let v = tessera_json(&["blip2", "match", "--model", &model, "--image", &image, "--text", texts[0], "--text", texts[1], "--json"]);
    let scores = v["scores"].as_array().expect("a scores list");
    assert_eq!(scores.len(), 2);
    for ((s, text), col) in scores.iter().zip(texts).zip(cols) {
        assert_eq!((s["image"].as_str(), s["text"].as_str()), (Some(image.as_str()), Some(text)));
        let pair = row * 3 + col;
        let want_p = 1.0 / (1.0 + ((itm[pair * 2] - itm[pair * 2 + 1]) as f64).exp());
        let p = s["itm_probability"].as_f64().unwrap();
        let c = s["itc_similarity"].as_f64().unwrap();
        assert!(
            (p - want_p).abs() < 1e-4 && (c - itc[row * 3 + col] as f64).abs() < 1e-4,
            "{s}: expected {want_p}, {}",
            itc[row * 3 + col]
        );
    }
}
