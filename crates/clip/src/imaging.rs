//! CLIP's image input: tessera-vision's processor with the defaults of
//! transformers' `CLIPImageProcessor` (shortest edge to the model's size
//! with Pillow's bicubic filter, centre crop, rescale by 1/255, OpenAI's
//! mean and std).

use std::path::Path;
pub use tessera_vision::{decode_image, load_image, Filter, ImageProcessor, ResizeTo, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD};

/// `CLIPImageProcessor`'s defaults for a model whose input is `image_size`
/// square.
pub fn clip_processor(image_size: usize) -> ImageProcessor {
    ImageProcessor {
        do_resize: true,
        size: ResizeTo::ShortestEdge(image_size),
        resample: Filter::Bicubic,
        do_center_crop: true,
        crop_size: (image_size, image_size),
        do_rescale: true,
        rescale_factor: 1.0 / 255.0,
        do_normalize: true,
        image_mean: OPENAI_CLIP_MEAN,
        image_std: OPENAI_CLIP_STD,
    }
}

/// The processor config at `path` (either transformers layout), missing
/// fields taking CLIP's defaults for `image_size`.
pub fn processor_from_file(path: impl AsRef<Path>, image_size: usize) -> crate::Result<ImageProcessor> {
    ImageProcessor::from_file(path, &clip_processor(image_size))
}
