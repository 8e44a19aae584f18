//! libFuzzer target: tessera-fuzz's `tokenizer` corpus target on arbitrary bytes
//! (`tokenizer::from_fuzz_input` says what they stand for).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_fuzz::tokenizer;

fuzz_target!(|data: &[u8]| {
    // A typed error is a fine outcome; a panic or an abort is the finding.
    let _ = tokenizer::run(&tokenizer::from_fuzz_input(data));
});
