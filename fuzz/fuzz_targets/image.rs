//! libFuzzer target: tessera-fuzz's `image` corpus target on arbitrary bytes
//! (`image::from_fuzz_input` says what they stand for).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_fuzz::image;

fuzz_target!(|data: &[u8]| {
    // A typed error is a fine outcome; a panic or an abort is the finding.
    let _ = image::run(&image::from_fuzz_input(data));
});
