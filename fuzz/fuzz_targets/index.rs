//! libFuzzer target: tessera-fuzz's `index` corpus target on arbitrary bytes
//! (`index::from_fuzz_input` says what they stand for).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_fuzz::index;

fuzz_target!(|data: &[u8]| {
    // A typed error is a fine outcome; a panic or an abort is the finding.
    let _ = index::run(&index::from_fuzz_input(data));
});
