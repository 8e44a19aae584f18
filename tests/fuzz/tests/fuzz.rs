//! The fuzzing suite: one test per target, each running its whole corpus
//! (seed `TESSERA_FUZZ_SEED`, default `tessera_fuzz::DEFAULT_SEED`) and
//! failing with every case that panicked or returned a malformed error
//! message. Run with `--nocapture` to see the summary lines:
//!
//! ```text
//! fuzz <target>: N cases, E typed errors, S successes, 0 panics
//! ```

use tessera_fuzz::harness::check_target;
use tessera_fuzz::{config, image, index, pickle, processor, safetensors, seed_from_env, tokenizer};

#[test]
fn fuzz_safetensors() {
    let corpus = safetensors::corpus(seed_from_env());
    assert_eq!(corpus.len(), safetensors::CASES);
    check_target(safetensors::TARGET, corpus, safetensors::run);
}

#[test]
fn fuzz_index() {
    let corpus = index::corpus(seed_from_env());
    assert_eq!(corpus.len(), index::CASES);
    check_target(index::TARGET, corpus, index::run);
}

#[test]
fn fuzz_config() {
    let corpus = config::corpus(seed_from_env());
    assert_eq!(corpus.len(), config::CASES);
    check_target(config::TARGET, corpus, config::run);
}

#[test]
fn fuzz_tokenizer() {
    let corpus = tokenizer::corpus(seed_from_env());
    assert_eq!(corpus.len(), tokenizer::CASES);
    check_target(tokenizer::TARGET, corpus, tokenizer::run);
}

#[test]
fn fuzz_processor() {
    let corpus = processor::corpus(seed_from_env());
    assert_eq!(corpus.len(), processor::CASES);
    check_target(processor::TARGET, corpus, processor::run);
}

#[test]
fn fuzz_image() {
    let corpus = image::corpus(seed_from_env());
    assert_eq!(corpus.len(), image::CASES);
    check_target(image::TARGET, corpus, image::run);
}

#[test]
fn fuzz_pickle() {
    let corpus = pickle::corpus(seed_from_env());
    assert_eq!(corpus.len(), pickle::CASES);
    check_target(pickle::TARGET, corpus, pickle::run);
}
