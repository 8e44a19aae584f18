//! `tessera mmada chat|ask|imagine|inpaint --json` on a model directory in
//! the real layout made from the MMaDA fixture set: the JSON the issue
//! specifies, with the reference's ids where the settings match (greedy
//! text and understanding), PNGs of the model's image size, and the flags'
//! errors.

mod common;

use common::{id_list, tessera, tessera_json};
use tessera_mmada_parity::model_dir::{user_text, write_model_dir};
use tessera_mmada_parity::{fixture_or_skip, Fixture};

/// `--gen-length ... --steps ...` of text case `case`.
fn text_flags(fx: &Fixture, case: &str) -> Vec<String> {
    let c = &fx.json[case];
    let mut flags = vec![];
    for (flag, key) in [("--gen-length", "gen_length"), ("--block-length", "block_length"), ("--steps", "steps")] {
        flags.extend([flag.to_string(), c[key].to_string()]);
    }
    flags.extend([
        "--cfg".to_string(),
        c["cfg_scale"].to_string(),
        "--remasking".to_string(),
        c["remasking"].as_str().unwrap().to_string(),
    ]);
    flags
}

#[test]
fn chat_and_ask_give_the_reference_ids() {
    let Some(fx) = fixture_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_model_dir(&fx, dir.path(), true).unwrap();
    let model = dir.path().display().to_string();
    for case in ["gen", "gen_cfg"] {
        let prompt = fx.ids(&format!("{case}.prompt")).unwrap();
        let text = user_text(&fx, &prompt).unwrap();
        let flags = text_flags(&fx, case);
        let mut args = vec!["mmada", "chat", "--model", &model, &text, "--json"];
        args.extend(flags.iter().map(String::as_str));
        let v = tessera_json(&args);
        assert_eq!(id_list(&v["token_ids"]), fx.ids(&format!("{case}.final")).unwrap()[prompt.len()..], "{case}");
        assert!(v["text"].is_string());
    }
    let prompt = fx.ids("mmu.prompt").unwrap();
    let eoi = fx.json["ids"]["reserved"]["<|eoi|>"].as_u64().unwrap() as u32;
    let after = prompt.iter().position(|&t| t == eoi).unwrap() + 1;
    let question = user_text(&fx, &prompt[after..]).unwrap();
    let image = fx.dir.join("vq_input.png").display().to_string();
    let flags = text_flags(&fx, "mmu");
    let mut args = vec!["mmada", "ask", "--model", &model, "--image", &image, &question, "--json"];
    args.extend(flags.iter().map(String::as_str));
    let v = tessera_json(&args);
    assert_eq!(id_list(&v["token_ids"]), fx.ids("mmu.final").unwrap()[prompt.len()..]);
}

#[test]
fn imagine_and_inpaint_write_the_images_they_list() {
    let Some(fx) = fixture_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_model_dir(&fx, dir.path(), true).unwrap();
    let model = dir.path().display().to_string();
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().display().to_string();
    let prompt = fx.json["t2i"]["prompts"][0].as_str().unwrap();
    let steps = fx.json["t2i"]["timesteps"].to_string();
    let common = ["--steps", &steps, "--max-text-len", "6", "--seed", "3", "--out", &out_dir, "--json"];
    let mut args = vec!["mmada", "imagine", "--model", &model, prompt, "-n", "2"];
    args.extend(common);
    let v = tessera_json(&args);
    let images = v["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    let tokens = fx.json["t2i"]["seq_len"].as_u64().unwrap() as usize;
    let input = image::open(fx.dir.join("vq_input.png")).unwrap().to_rgb8();
    for (k, entry) in images.iter().enumerate() {
        let path = entry["path"].as_str().unwrap();
        assert!(path.ends_with(&format!("mmada_{k}.png")), "{path}");
        assert_eq!(image::open(path).unwrap().to_rgb8().dimensions(), input.dimensions());
        assert_eq!(id_list(&entry["image_token_ids"]).len(), tokens);
    }

    // Inpainting the right half of the encoder's test image.
    let (w, h) = input.dimensions();
    let mask = image::RgbImage::from_fn(w, h, |x, _| image::Rgb(if x >= w / 2 { [255; 3] } else { [0; 3] }));
    let mask_path = out.path().join("mask.png");
    mask.save(&mask_path).unwrap();
    let image_path = fx.dir.join("vq_input.png").display().to_string();
    let mask_arg = mask_path.display().to_string();
    let mut args = vec!["mmada", "inpaint", "--model", &model, "--image", &image_path, "--mask", &mask_arg, "a small cat"];
    args.extend(common);
    let v = tessera_json(&args);
    let codes = id_list(&v["images"][0]["image_token_ids"]);
    let known = fx.ids("vq.encode_codes").unwrap();
    let side = (tokens as f64).sqrt() as usize;
    for (j, (&got, &was)) in codes.iter().zip(&known).enumerate() {
        if j % side < side / 2 {
            assert_eq!(got, was, "the left half is kept (cell {j})");
        }
    }

    // A mask of another size, and bad flags, are errors that say so.
    let small = out.path().join("small.png");
    image::RgbImage::new(w / 2, h).save(&small).unwrap();
    let small_arg = small.display().to_string();
    let o = tessera(&["mmada", "inpaint", "--model", &model, "--image", &image_path, "--mask", &small_arg, "x", "--out", &out_dir]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("they must have one size"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = tessera(&["mmada", "chat", "--model", &model, "hi", "--gen-length", "10", "--block-length", "4"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("gen_length 10 is not a positive multiple of block_length 4"));
    let o = tessera(&["mmada", "imagine", "--model", &model, "x", "-n", "0"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("-n must be at least 1"));
}

#[test]
fn bench_reports_forward_and_generation_cases() {
    let Some(fx) = fixture_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_model_dir(&fx, dir.path(), false).unwrap();
    let model = dir.path().display().to_string();
    let args = ["mmada", "bench", "--model", &model, "--forward", "1x8,2x5", "--t2i", "1x20", "--prompt-len", "4", "--gen-length", "8"];
    let out = tessera(&[&args[..], &["--block-length", "4", "--steps", "4", "--json"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let cases: Vec<&str> = rows.iter().map(|r| r["case"].as_str().unwrap()).collect();
    assert_eq!(cases, ["forward 1x8", "forward 2x5", "t2i step 1x20", "generate 8", "generate 8 cached"]);
    assert_eq!(id_list(&rows[0]["check"]["argmax"]).len(), 3);
    assert_eq!(id_list(&rows[4]["check"]["ids"]).len(), 8);
    assert!(rows.iter().all(|r| r["median_ms"].as_f64().unwrap() >= 0.0));
}
