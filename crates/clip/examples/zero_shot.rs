//! Zero-shot classification with CLIP from another Rust program.
//!
//! cargo run --release -p tessera-clip --example zero_shot -- MODEL_DIR_OR_ID IMAGE LABEL...
use tessera_clip::{load_image, Clip, ClipOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, image, labels @ ..] = args.as_slice() else {
        return Err("usage: zero_shot MODEL IMAGE LABEL...".into());
    };
    let clip = Clip::load(model, &ClipOptions::default())?;
    let probs = clip.classify(&[load_image(image)?], labels)?;
    for (label, p) in labels.iter().zip(&probs[0]) {
        println!("{p:.4}  {label}");
    }
    let embedding = clip.embed_texts(&[labels[0].as_str()])?.to_vec::<f32>()?;
    println!("'{}' embeds to {} values", labels[0], embedding.len());
    Ok(())
}
