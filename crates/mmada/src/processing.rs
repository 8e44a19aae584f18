//! MMaDA's inputs as the reference's scripts prepare them: the chat prompt
//! through the tokenizer's template, prompt text for text-to-image, and
//! images for the MAGVIT-v2 encoder (training/utils.py `image_transform`).
//!
//! - Chat: one user turn rendered with the checkpoint's chat template
//!   (the files [`ChatTemplate::from_dir`] reads), else with
//!   [`DEFAULT_CHAT_TEMPLATE`], the Llama-3-style template the reference's
//!   demo and generate.py set; tokenized without added special tokens, as
//!   `apply_chat_template(tokenize=True)` does (the template writes BOS).
//! - Text-to-image: the prompt tokenized with the tokenizer's special
//!   tokens (the prompt builder adds BOS where the tokenizer does not).
//! - Images: the shortest side resized to the encoder's input side with
//!   Pillow's bicubic filter (the long side `int(side * long / short)`),
//!   then torchvision's centre crop (offsets rounded half to even).
//! - Inpainting masks: the mask image (the same size as the image; white
//!   marks what to redraw) goes through the same resize and crop, and a
//!   grid cell is redrawn when any of its pixels is at least half white,
//!   so the whole marked region is regenerated.
//!
//! The image-token offset is the tokenizer's length (`len(tokenizer)`,
//! one more than its largest id), as inference_mmu.py computes it.

use crate::config::MmadaConfig;
use crate::prompting::SpecialIds;
use serde_json::{json, Map, Value};
use std::path::Path;
use tessera_hf::{ChatTemplate, Error, Result, SpecialTokenNames, TextTokenizer, TokenizerOptions};
use tessera_vision::ops::shortest_edge_size;
use tessera_vision::{center_crop_rounded, resize, Filter, RgbImage};

/// The chat template the reference's demo (app.py) and generate.py put on
/// the tokenizer: BOS, then per message `<|start_header_id|>ROLE
/// <|end_header_id|>` and a newline, the trimmed content and `<|eot_id|>`;
/// then the assistant's header.
pub const DEFAULT_CHAT_TEMPLATE: &str = "{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}\
{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n' + (message['content'] | trim) + '<|eot_id|>' }}{% endfor %}\
{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n' }}{% endif %}";

/// LLaDA's begin- and end-of-text tokens, for a checkpoint whose tokenizer
/// config names none.
pub const BOS_TOKEN: &str = "<|startoftext|>";
pub const EOS_TOKEN: &str = "<|endoftext|>";

/// The text side of an MMaDA checkpoint.
#[derive(Debug)]
pub struct MmadaProcessor {
    tokenizer: TextTokenizer,
    chat_template: ChatTemplate,
    template_context: Map<String, Value>,
    /// The special ids of the prompt layouts.
    pub ids: SpecialIds,
    /// Where image codes start in the vocabulary (the tokenizer's length).
    pub image_offset: u32,
}

impl MmadaProcessor {
    /// The tokenizer files of checkpoint directory `dir`, checked against
    /// `config` (the image codes must fit the vocabulary after the text).
    pub fn from_dir(dir: &Path, config: &MmadaConfig) -> Result<Self> {
        let names = SpecialTokenNames::from_dir(dir)?;
        let bos_name = names.get_or("bos_token", BOS_TOKEN)?;
        let eos_name = names.get_or("eos_token", EOS_TOKEN)?;
        let pad_name = names.get_or("pad_token", &eos_name)?;
        let options = TokenizerOptions::new(config.backbone.max_position_embeddings, &pad_name);
        let tokenizer = TextTokenizer::from_dir(dir, &options)?;
        let file = dir.join("tokenizer.json").display().to_string();
        let id_of = |key: &str, name: &str| {
            tokenizer.token_to_id(name).ok_or_else(|| Error::tokenizer(&file, format!("the {key} '{name}' is not in the vocabulary")))
        };
        let ids = SpecialIds::reserved(id_of("bos_token", &bos_name)?, id_of("eos_token", &eos_name)?);
        let bound = tokenizer.id_bound();
        config.check_image_offset(bound)?;
        for (name, id) in [("<|soi|>", ids.soi), ("<|eoi|>", ids.eoi), ("<|t2i|>", ids.t2i), ("<|mmu|>", ids.mmu), ("[iPAD]", ids.pad)] {
            if id as usize >= bound {
                return Err(Error::tokenizer(&file, format!("the reserved id {id} of {name} is outside the tokenizer's {bound} tokens")));
            }
        }
        let mut template_context = names.template_context()?;
        template_context.entry("bos_token").or_insert_with(|| Value::String(bos_name.clone()));
        template_context.entry("eos_token").or_insert_with(|| Value::String(eos_name.clone()));
        let chat_template = match ChatTemplate::from_dir(dir)? {
            Some(t) => t,
            None => ChatTemplate::new(DEFAULT_CHAT_TEMPLATE, "the default MMaDA chat template")?,
        };
        Ok(MmadaProcessor { tokenizer, chat_template, template_context, ids, image_offset: bound as u32 })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The chat template in use.
    pub fn chat_template(&self) -> &ChatTemplate {
        &self.chat_template
    }

    /// `prompt` as one user turn with the generation prompt, rendered.
    pub fn chat_text(&self, prompt: &str) -> Result<String> {
        self.chat_template.render(&json!([{"role": "user", "content": prompt}]), true, &self.template_context)
    }

    /// The ids of [`chat_text`](Self::chat_text).
    pub fn chat_ids(&self, prompt: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode_plain(&self.chat_text(prompt)?)
    }

    /// A text-to-image prompt's ids (the tokenizer's special tokens added).
    pub fn text_ids(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text)
    }

    /// Generated ids as text, special tokens skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids)
    }
}

/// `image_transform`: `image` resized (bicubic) so its shortest side is
/// `side`, then centre-cropped to `side x side`.
pub fn image_transform(image: &RgbImage, side: usize) -> RgbImage {
    let (h, w) = shortest_edge_size(image.height() as usize, image.width() as usize, side);
    let resized = if (h, w) == (image.height() as usize, image.width() as usize) {
        image.clone()
    } else {
        resize(image, w as u32, h as u32, Filter::Bicubic)
    };
    center_crop_rounded(&resized, (side, side))
}

/// The token-grid cells an inpainting mask marks for redrawing,
/// row-major: `mask` (white = redraw) is transformed as the image is, to
/// `side x side`, and a cell of the `grid x grid` layout is marked when any
/// of its pixels has a channel at 128 or more. `image` is the picture the
/// mask belongs to; the two must have one size.
pub fn mask_to_grid(mask: &RgbImage, image: &RgbImage, side: usize, grid: usize) -> Result<Vec<bool>> {
    if mask.dimensions() != image.dimensions() {
        return Err(Error::invalid(
            "mmada",
            format!(
                "the mask is {}x{} but the image is {}x{}: they must have one size",
                mask.width(),
                mask.height(),
                image.width(),
                image.height()
            ),
        ));
    }
    if grid == 0 || !side.is_multiple_of(grid) {
        return Err(Error::invalid("mmada", format!("a {side}-pixel image does not divide into a {grid}x{grid} grid")));
    }
    let mask = image_transform(mask, side);
    let cell = side / grid;
    let mut marked = vec![false; grid * grid];
    for (x, y, px) in mask.enumerate_pixels() {
        if px.0.iter().any(|&c| c >= 128) {
            marked[(y as usize / cell) * grid + x as usize / cell] = true;
        }
    }
    Ok(marked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn images_resize_on_the_short_side_then_crop_the_centre() {
        let img = RgbImage::from_fn(40, 20, |x, _| Rgb([x as u8, 0, 0]));
        let out = image_transform(&img, 10);
        assert_eq!(out.dimensions(), (10, 10));
        // 40x20 -> 20x10, crop offset round(10 / 2) = 5: the first column
        // is the resized image's sixth, around source column 10.5.
        assert!((9..=12).contains(&out.get_pixel(0, 5).0[0]), "{:?}", out.get_pixel(0, 5));
        let same = RgbImage::from_pixel(8, 8, Rgb([7, 8, 9]));
        assert_eq!(image_transform(&same, 8), same);
    }

    #[test]
    fn a_mask_marks_every_cell_it_touches() {
        let image = RgbImage::new(16, 16);
        let mask = RgbImage::from_fn(16, 16, |x, y| if x >= 8 || (x == 0 && y == 0) { Rgb([255; 3]) } else { Rgb([0; 3]) });
        let grid = mask_to_grid(&mask, &image, 16, 4).unwrap();
        let expected: Vec<bool> = (0..16).map(|i| i % 4 >= 2 || i == 0).collect();
        assert_eq!(grid, expected);
        let err = mask_to_grid(&RgbImage::new(8, 16), &image, 16, 4).unwrap_err().to_string();
        assert!(err.contains("8x16") && err.contains("16x16"), "{err}");
    }
}
