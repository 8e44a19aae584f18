//! BLIP-2 retrieval parity: tests/blip2/generate_retrieval_fixtures.py ran
//! transformers' `Blip2ForImageTextRetrieval` with seeded weights and
//! recorded, under tests/blip2/fixtures/retrieval/, the pixel values, the
//! matching head's logits for every (image, text) pair and the contrastive
//! head's scores and embeddings. Checked here on any device:
//!
//! - pixel values as in the captioning suite, and the texts' token ids equal;
//! - on transformers' pixel values and ids: ITM logits, ITC logits, image and
//!   text embeddings within 1e-4 in f32, cosine above 0.999 in f16 and bf16.

use crate::{fixtures_dir, judge, DTYPES};
use serde_json::Value;
use std::path::{Path, PathBuf};
use tessera_parity::fixtures::read_tensor_list;
use tessera_parity::{all, err, ids, is_jpeg, judge_pixels, seeded_values, write_safetensors, Report, Res};
use tessera_qformer::{load_image, Blip2Options, Blip2Retrieval, ReadMode};
use tessera_tensor::safetensors::SafeTensorsFile;
use tessera_tensor::{DType, Device, Tensor};

/// tests/blip2/fixtures/retrieval.
pub fn retrieval_dir() -> PathBuf {
    fixtures_dir().join("retrieval")
}

/// The recorded inputs.
struct Cases {
    images: Vec<PathBuf>,
    texts: Vec<String>,
    text_ids: Vec<Vec<u32>>,
    models: Vec<String>,
}

fn read_cases() -> Res<Cases> {
    let path = retrieval_dir().join("cases.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(err)?;
    let strings = |key: &str| -> Res<Vec<String>> {
        let list = v[key].as_array().ok_or_else(|| format!("cases.json has no {key}"))?;
        list.iter().map(|s| s.as_str().map(str::to_string).ok_or_else(|| format!("bad entry in {key}"))).collect()
    };
    Ok(Cases {
        images: strings("images")?.into_iter().map(|p| fixtures_dir().join(p)).collect(),
        texts: strings("texts")?,
        text_ids: v["text_ids"].as_array().ok_or("cases.json has no text_ids")?.iter().map(ids).collect::<Res<_>>()?,
        models: v["models"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default(),
    })
}

/// Writes `model`'s checkpoint: seeded weights for tensors.json, and the
/// model directory's config, processor and tokenizer files.
pub fn write_checkpoint(model: &str, dir: &Path) -> Res<()> {
    let from = retrieval_dir().join(model);
    let tensors = read_tensor_list(&from.join("tensors.json"))?;
    write_safetensors(&dir.join("model.safetensors"), &tensors, seeded_values).map_err(err)?;
    for name in ["config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(from.join(name), dir.join(name)).map_err(|e| format!("{}: {e}", from.join(name).display()))?;
    }
    Ok(())
}

/// Runs the retrieval checks whose names `wanted` accepts (`"retrieval/{model}
/// {dtype}"`); `limit` keeps only the first images.
pub fn run(device: &Device, wanted: &dyn Fn(&str) -> bool, limit: Option<usize>, report: &mut Report) {
    let cases = match read_cases() {
        Ok(c) => c,
        Err(e) => return report.add("retrieval fixtures", Err(e)),
    };
    for model in &cases.models {
        if let Err(e) = check_model(&cases, model, device, wanted, limit, report) {
            report.add(format!("retrieval/{model}"), Err(e));
        }
    }
}

fn check_model(
    cases: &Cases,
    model: &str,
    device: &Device,
    wanted: &dyn Fn(&str) -> bool,
    limit: Option<usize>,
    report: &mut Report,
) -> Res<()> {
    if !DTYPES.iter().any(|d| wanted(&format!("retrieval/{model} {d}"))) {
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(err)?;
    write_checkpoint(model, dir.path())?;
    let expected = SafeTensorsFile::open(retrieval_dir().join(model).join("expected.safetensors")).map_err(err)?;
    let n = limit.map_or(cases.images.len(), |l| l.min(cases.images.len()));
    let m = cases.texts.len();
    let all_pixels = expected.load("pixel_values", device).map_err(err)?;
    let pixels = all_pixels.narrow(0, 0, n).map_err(err)?;
    let texts: Vec<&str> = cases.texts.iter().map(String::as_str).collect();
    for dtype in DTYPES {
        let name = format!("retrieval/{model} {dtype}");
        if !wanted(&name) {
            continue;
        }
        let options = Blip2Options { device: device.clone(), dtype, read_mode: ReadMode::Map, ..Default::default() };
        let retrieval = match Blip2Retrieval::from_dir(dir.path(), &options) {
            Ok(r) => r,
            Err(e) => {
                report.add(format!("{name} load"), Err(err(e)));
                continue;
            }
        };
        let batch = retrieval.encode_texts(&texts).map_err(err)?;
        if dtype == DType::F32 {
            let pixel_checks = (0..n)
                .map(|i| {
                    let image = load_image(&cases.images[i]).map_err(err)?;
                    let got = retrieval.pixel_values(&[&image]).map_err(err)?.to_f32_vec().map_err(err)?;
                    let want = all_pixels.narrow(0, i, 1).map_err(err)?.to_f32_vec().map_err(err)?;
                    Ok(judge_pixels(&got, &want, is_jpeg(&cases.images[i]), i))
                })
                .collect();
            report.add(format!("retrieval/{model} pixel values"), all(pixel_checks));
            let ok = batch.ids == cases.text_ids;
            let detail = if ok { format!("{m} texts equal") } else { format!("{:?}, expected {:?}", batch.ids, cases.text_ids) };
            report.add(format!("retrieval/{model} text ids"), Ok((ok, detail)));
        }
        // Image i against every text, as rows i * m .. (i + 1) * m.
        let itm = (0..n)
            .map(|i| {
                let image = pixels.narrow(0, i, 1).map_err(err)?;
                let dims = [vec![m], image.dims()[1..].to_vec()].concat();
                let pairs = image.broadcast_as(dims).map_err(err)?.contiguous().map_err(err)?;
                retrieval.model().image_text_matching(&pairs, &batch).map_err(err)?.to_f32_vec().map_err(err)
            })
            .collect::<Res<Vec<_>>>()?
            .concat();
        let want_itm = rows(&expected, "itm_logits", n * m)?;
        report.add(format!("{name} ITM logits"), Ok(judge_whole(&itm, &want_itm, dtype)));
        let itc = retrieval.model().image_text_contrastive(&pixels, &batch).map_err(err)?;
        let outputs: [(&str, &Tensor, usize); 3] = [
            ("itc_logits_per_image", &itc.logits_per_image, n),
            ("itc_image_embeds", &itc.image_embeds, n),
            ("itc_text_embeds", &itc.text_embeds, m),
        ];
        let itc_checks = outputs
            .iter()
            .map(|(key, t, count)| {
                let got = t.to_f32_vec().map_err(err)?;
                let want = rows(&expected, key, *count)?;
                let (ok, detail) = if *key == "itc_logits_per_image" {
                    judge_whole(&got, &want, dtype)
                } else {
                    judge(&got, &want, *t.dims().last().unwrap_or(&1), dtype)
                };
                Ok((ok, format!("{key}: {detail}")))
            })
            .collect();
        report.add(format!("{name} ITC logits and embeddings"), all(itc_checks));
    }
    Ok(())
}

/// The first `count` rows (along dim 0) of expected tensor `key`.
fn rows(expected: &SafeTensorsFile, key: &str, count: usize) -> Res<Vec<f32>> {
    let t = expected.load(key, &Device::cpu()).map_err(err)?;
    t.narrow(0, 0, count.min(t.dims()[0])).map_err(err)?.to_f32_vec().map_err(err)
}

/// [`judge`] with the whole tensor as one row: a few logits per row are too
/// few for a per-row cosine.
fn judge_whole(got: &[f32], want: &[f32], dtype: DType) -> (bool, String) {
    judge(got, want, want.len().max(1), dtype)
}
