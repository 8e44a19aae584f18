//! libFuzzer target: tessera-fuzz's `pickle` corpus target on arbitrary bytes
//! (`pickle::from_fuzz_input` says what they stand for).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_fuzz::pickle;

fuzz_target!(|data: &[u8]| {
    // A typed error is a fine outcome; a panic or an abort is the finding.
    let _ = pickle::run(&pickle::from_fuzz_input(data));
});
