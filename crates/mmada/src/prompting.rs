//! The sequence layouts of MMaDA's prompt builder
//! (training/prompting_utils.py, `UniversalPrompting` with the reserved
//! special ids), from token ids.
//!
//! - Text-to-image (`t2i_gen`): `[iPAD]*pad, <|t2i|>, BOS, text..., EOS`
//!   filling `max_text_len + 1` slots (too long: the first `max_text_len`
//!   kept and EOS appended), then `<|soi|>`, the image slots, `<|eoi|>`;
//!   the attention mask is 0 on the pads only. The unconditional prompt is
//!   the same with no text.
//! - Understanding (inference_mmu.py): `<|mmu|>, <|soi|>`, the image codes
//!   offset by the text vocabulary, `<|eoi|>`, then the chat prompt.

use crate::config::reserved_token;
use tessera_hf::{Error, Result};

/// The special ids a prompt needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialIds {
    pub bos: u32,
    pub eos: u32,
    pub soi: u32,
    pub eoi: u32,
    pub t2i: u32,
    pub mmu: u32,
    pub pad: u32,
}

impl SpecialIds {
    /// The reserved ids with the tokenizer's BOS and EOS.
    pub fn reserved(bos: u32, eos: u32) -> Self {
        let id = |n: &str| reserved_token(n).expect("a reserved token");
        SpecialIds { bos, eos, soi: id("<|soi|>"), eoi: id("<|eoi|>"), t2i: id("<|t2i|>"), mmu: id("<|mmu|>"), pad: id("[iPAD]") }
    }
}

/// A batch of text-to-image prompts: ids and attention masks of equal
/// lengths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct T2iPrompt {
    pub input_ids: Vec<Vec<u32>>,
    pub attention_mask: Vec<Vec<bool>>,
}

/// `t2i_gen_prompt`: one row per text (token ids without or with BOS),
/// with `image_ids` (one row of image slots per text: masks, or known
/// tokens for inpainting) after the text slots.
pub fn t2i_gen_prompt(texts: &[Vec<u32>], image_ids: &[Vec<u32>], max_text_len: usize, ids: &SpecialIds) -> Result<T2iPrompt> {
    if texts.len() != image_ids.len() || texts.is_empty() {
        return Err(Error::invalid("prompting", format!("{} texts and {} image rows", texts.len(), image_ids.len())));
    }
    let slots = max_text_len + 1;
    let (mut input_ids, mut attention_mask) = (Vec::new(), Vec::new());
    for (text, image) in texts.iter().zip(image_ids) {
        let mut t = vec![ids.t2i];
        if text.first() != Some(&ids.bos) {
            t.push(ids.bos);
        }
        t.extend_from_slice(text);
        t.push(ids.eos);
        let (mut row, mut mask) = if t.len() <= slots {
            let pad = slots - t.len();
            let mut row = vec![ids.pad; pad];
            row.extend(t);
            (row, [vec![false; pad], vec![true; slots - pad]].concat())
        } else {
            let mut row = t[..slots - 1].to_vec();
            row.push(ids.eos);
            (row, vec![true; slots])
        };
        row.push(ids.soi);
        row.extend_from_slice(image);
        row.push(ids.eoi);
        mask.extend(std::iter::repeat_n(true, image.len() + 2));
        input_ids.push(row);
        attention_mask.push(mask);
    }
    if input_ids.iter().any(|r| r.len() != input_ids[0].len()) {
        return Err(Error::invalid("prompting", "image rows of different lengths"));
    }
    Ok(T2iPrompt { input_ids, attention_mask })
}

/// The understanding prompt of inference_mmu.py: the image's codes (offset
/// by `image_offset`, the text tokenizer's length) between `<|soi|>` and
/// `<|eoi|>` after `<|mmu|>`, then the chat ids.
pub fn mmu_prompt(codes: &[u32], image_offset: u32, chat: &[u32], ids: &SpecialIds) -> Vec<u32> {
    let mut row = vec![ids.mmu, ids.soi];
    row.extend(codes.iter().map(|&c| c + image_offset));
    row.push(ids.eoi);
    row.extend_from_slice(chat);
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> SpecialIds {
        SpecialIds::reserved(126080, 126081)
    }

    #[test]
    fn understanding_prompt_offsets_the_codes_between_the_image_markers() {
        let row = mmu_prompt(&[16, 1], 126349, &[126080, 882], &ids());
        assert_eq!(row, vec![126089, 126084, 126365, 126350, 126085, 126080, 882]);
    }

    #[test]
    fn text_to_image_prompts_pad_left_or_truncate_with_eos() {
        let p = t2i_gen_prompt(&[vec![7], vec![1, 2, 3, 4, 5, 6]], &[vec![9; 2], vec![9; 2]], 4, &ids()).unwrap();
        assert_eq!(p.input_ids[0], vec![126093, 126088, 126080, 7, 126081, 126084, 9, 9, 126085]);
        assert_eq!(p.attention_mask[0], [vec![false], vec![true; 8]].concat());
        assert_eq!(p.input_ids[1], vec![126088, 126080, 1, 2, 126081, 126084, 9, 9, 126085]);
        assert!(t2i_gen_prompt(&[vec![7]], &[], 4, &ids()).is_err());
    }
}
