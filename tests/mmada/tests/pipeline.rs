//! The pipeline on a model directory in the real layout made from the
//! fixture set (its weights, a tokenizer.json from the stub's word map):
//! the chat template, tokenizer and image preprocessing give the
//! reference's prompts, and greedy text and understanding give its ids.

use image::{Rgb, RgbImage};
use std::path::Path;
use tessera_hf::LoadOptions;
use tessera_mmada::processing::mask_to_grid;
use tessera_mmada::{ImageSettings, Mmada};
use tessera_mmada_parity::model_dir::{special_id, text_of, user_text, write_model_dir};
use tessera_mmada_parity::{fixture_or_skip, text_generation};
use tessera_vision::load_image;

fn load(dir: &Path) -> Mmada {
    Mmada::load(&dir.display().to_string(), None, &LoadOptions::default(), &mut |_, _| {}).unwrap()
}

#[test]
fn chat_gives_the_reference_prompt_and_answers() {
    let Some(fx) = fixture_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_model_dir(&fx, dir.path(), false).unwrap();
    let mmada = load(dir.path());
    assert_eq!(mmada.processor().image_offset, special_id(&fx, "image_token_offset").unwrap());
    for case in ["gen", "gen_cfg"] {
        let prompt = fx.ids(&format!("{case}.prompt")).unwrap();
        let text = user_text(&fx, &prompt).unwrap();
        assert_eq!(mmada.processor().chat_ids(&text).unwrap(), prompt, "{case}: {text:?}");
        let g = text_generation(&fx, case).unwrap();
        let mut steps = 0;
        let answer = mmada.chat(&text, &g, 0, &mut |done, _| steps = done).unwrap();
        assert_eq!(steps, g.steps, "{case}: the progress reaches every step");
        let last = fx.ids(&format!("{case}.final")).unwrap();
        assert_eq!(answer.token_ids, last[prompt.len()..], "{case}");
        assert_eq!(answer.text, mmada.processor().decode(&answer.token_ids).unwrap());
    }
    // Without MAGVIT-v2, images are refused with where to give it.
    let e = mmada.image_codes(&RgbImage::new(16, 16)).unwrap_err().to_string();
    assert!(e.contains("--vq"), "{e}");
}

#[test]
fn understanding_and_inpainting_prepare_the_reference_layouts() {
    let Some(fx) = fixture_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_model_dir(&fx, dir.path(), true).unwrap();
    let mmada = load(dir.path());
    let image = load_image(fx.dir.join("vq_input.png")).unwrap();
    let codes = mmada.image_codes(&image).unwrap();
    assert_eq!(codes, fx.ids("vq.encode_codes").unwrap());

    // Understanding: the codes, then the chat prompt after <|eoi|>.
    let prompt = fx.ids("mmu.prompt").unwrap();
    let eoi = prompt.iter().position(|&t| t == mmada.processor().ids.eoi).unwrap();
    let question = user_text(&fx, &prompt[eoi + 1..]).unwrap();
    let g = text_generation(&fx, "mmu").unwrap();
    let answer = mmada.ask(&image, &question, &g, 0, &mut |_, _| {}).unwrap();
    assert_eq!(answer.token_ids, fx.ids("mmu.final").unwrap()[prompt.len()..]);

    // Inpainting: a mask white over the cells the reference redrew marks
    // exactly them, and the kept cells stay in every step's result.
    let known = fx.masks("inpaint.known_mask").unwrap().remove(0);
    let grid = mmada.model().config().grid_side();
    let side = mmada.image_side().unwrap();
    let cell = side / grid;
    let mask = RgbImage::from_fn(side as u32, side as u32, |x, y| {
        let i = (y as usize / cell) * grid + x as usize / cell;
        Rgb(if known[i] { [0; 3] } else { [255; 3] })
    });
    let marked = mask_to_grid(&mask, &image, side, grid).unwrap();
    assert_eq!(marked, known.iter().map(|k| !k).collect::<Vec<_>>());
    let offset = mmada.processor().image_offset;
    let mask_id = mmada.model().config().mask_token_id;
    let prefilled: Vec<u32> = codes.iter().zip(&marked).map(|(&c, &m)| if m { mask_id } else { c + offset }).collect();
    assert_eq!(prefilled, fx.ids("inpaint.prefilled_image_tokens").unwrap()[..]);
    let s = ImageSettings { timesteps: 3, max_text_len: 6, ..ImageSettings::default() };
    let prompt = fx.json["inpaint"]["prompt"].as_str().unwrap();
    let out = mmada.inpaint(prompt, &image, &mask, 2, &s, &mut |_, _| {}).unwrap();
    assert_eq!(out.len(), 2);
    for row in &out {
        for (j, &code) in row.iter().enumerate() {
            assert!((code as usize) < mmada.model().config().codebook_size);
            if known[j] {
                assert_eq!(code, codes[j], "kept cell {j}");
            }
        }
    }
    let e = mmada.inpaint(prompt, &image, &RgbImage::new(8, 16), 1, &s, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("the mask is 8x16 but the image is 16x16"), "{e}");
}

#[test]
fn text_to_image_prompts_and_seeded_draws() {
    let Some(fx) = fixture_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_model_dir(&fx, dir.path(), true).unwrap();
    let mmada = load(dir.path());
    // The prompt text tokenizes to BOS and the words the reference fed.
    let words = &fx.json["t2i"]["prompt_word_ids"][0];
    let word_ids: Vec<u32> = words.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let text = text_of(&fx, &word_ids).unwrap();
    assert_eq!(text, fx.json["t2i"]["prompts"][0].as_str().unwrap());
    let bos = special_id(&fx, "bos").unwrap();
    assert_eq!(mmada.processor().text_ids(&text).unwrap(), [&[bos][..], &word_ids].concat());

    let s = ImageSettings { timesteps: 4, max_text_len: 6, seed: 7, ..ImageSettings::default() };
    let a = mmada.imagine(&text, 2, &s, &mut |_, _| {}).unwrap();
    let b = mmada.imagine(&text, 2, &s, &mut |_, _| {}).unwrap();
    assert_eq!(a, b, "one seed, one result");
    assert_eq!(a.len(), 2);
    let n = mmada.model().config().num_vq_tokens;
    assert!(a.iter().all(|r| r.len() == n && r.iter().all(|&c| (c as usize) < mmada.model().config().codebook_size)));
    let images = mmada.decode_images(&a).unwrap();
    let side = mmada.image_side().unwrap() as u32;
    assert!(images.iter().all(|i| i.dimensions() == (side, side)));
    let e = mmada.imagine(&text, 1, &ImageSettings { max_text_len: 5000, ..s }, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("more than the model's"), "{e}");
}

#[test]
fn magvit_directories_given_apart_must_be_complete() {
    let Some(fx) = fixture_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_model_dir(&fx, dir.path(), false).unwrap();
    let model = dir.path().display().to_string();
    let vq = tempfile::tempdir().unwrap();
    std::fs::copy(fx.dir.join("magvit_config.json"), vq.path().join("config.json")).unwrap();
    let vq_dir = vq.path().display().to_string();
    let e = Mmada::load(&model, Some(&vq_dir), &LoadOptions::default(), &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("holds no magvit.safetensors or diffusion_pytorch_model.safetensors"), "{e}");
    // In diffusers' names it loads.
    std::fs::copy(fx.dir.join("magvit.safetensors"), vq.path().join("diffusion_pytorch_model.safetensors")).unwrap();
    let mmada = Mmada::load(&model, Some(&vq_dir), &LoadOptions::default(), &mut |_, _| {}).unwrap();
    assert!(mmada.vq().is_some());
    // Half of MAGVIT-v2 in the model directory is an error, not "none".
    std::fs::copy(fx.dir.join("magvit_config.json"), dir.path().join("magvit_config.json")).unwrap();
    let e = Mmada::load(&model, None, &LoadOptions::default(), &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("holds no magvit.safetensors"), "{e}");
}

#[test]
fn a_kept_prefix_reproduces_the_full_pass_when_nothing_changed() {
    let Some(fx) = fixture_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_model_dir(&fx, dir.path(), false).unwrap();
    let mmada = load(dir.path());
    let model = mmada.model();
    let ids = fx.ids("gen.final").unwrap();
    let (l, start) = (ids.len(), fx.ids("gen.prompt").unwrap().len());
    let full = model.hidden(&ids, 1, tessera_mmada::AttentionBias::Full).unwrap();
    let mut cache = model.new_cache();
    model.hidden_after(&ids, 1, &mut cache).unwrap();
    cache.truncate(start).unwrap();
    for _ in 0..2 {
        // The suffix after the kept keys and values, twice over the same
        // buffers: the full pass's states of those positions.
        let suffix = model.hidden_after(&ids[start..], 1, &mut cache).unwrap();
        cache.truncate(start).unwrap();
        let want = full.narrow(1, start, l - start).unwrap().to_f32_vec().unwrap();
        let got = suffix.to_f32_vec().unwrap();
        let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "max |diff| {diff}");
    }
    // The sampler with the prefix cache runs the same schedule.
    let g = tessera_mmada::TextGeneration { prefix_cache: true, ..text_generation(&fx, "gen").unwrap() };
    let prompt = fx.ids("gen.prompt").unwrap();
    let answer = mmada.answer(&prompt, &g, 0, &mut |_, _| {}).unwrap();
    assert_eq!(answer.token_ids.len(), g.gen_length);
    assert!(!answer.token_ids.contains(&g.mask_id), "every position is committed");
}
