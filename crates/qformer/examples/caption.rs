//! Captions an image with a BLIP-2 checkpoint, printing tokens as they come.
//!
//! ```text
//! cargo run --release -p tessera-qformer --example caption -- Salesforce/blip2-opt-2.7b cat.jpg ["Question: what is this? Answer:"]
//! ```

use tessera_qformer::{load_image, Blip2, Blip2Options};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(model), Some(image)) = (args.first(), args.get(1)) else {
        return Err("usage: caption MODEL_DIR_OR_ID IMAGE [PROMPT]".into());
    };
    let blip2 = Blip2::load(model, &Blip2Options::default())?;
    let image = load_image(image)?;
    let mut on_token = |step: usize, id: u32| eprint!("\rtoken {}: {id}   ", step + 1);
    let caption = blip2.caption(&image, args.get(2).map(String::as_str), blip2.generation_config(), &mut on_token)?;
    eprintln!();
    println!("{}", caption.text);
    Ok(())
}
