//! Weights held as row blocks give the same lookups and products as the
//! whole matrix, and refuse what only a whole matrix can do.

mod common;

use common::*;
use tessera_nn::{Activation, Embedding, Linear, RowBlocks};
use tessera_tensor::Tensor;

/// A `[10, 4]` matrix and the same matrix as blocks of 4, 4 and 2 rows.
fn matrix_and_blocks() -> (Tensor, RowBlocks) {
    let w = random(7, &[10, 4]);
    let blocks = [(0, 4), (4, 4), (8, 2)].iter().map(|&(s, n)| w.narrow(0, s, n).unwrap().contiguous().unwrap()).collect();
    (w, RowBlocks::from_blocks(blocks).unwrap())
}

#[test]
fn lookups_across_blocks_match_the_whole_table() {
    let (w, blocks) = matrix_and_blocks();
    assert_eq!(blocks.dims(), [10, 4]);
    let whole = Embedding::new(w).unwrap();
    let split = Embedding::new(blocks.blocks()[0].clone()).unwrap();
    assert_eq!(split.vocab_size(), 4);
    let ids = Tensor::from_slice(&[9u32, 0, 4, 4, 3, 8, 7, 1], vec![2, 4], &dev()).unwrap();
    let expected = whole.forward(&ids).unwrap();
    let actual = blocks.lookup(&ids).unwrap();
    assert_eq!(actual.dims(), &[2, 4, 4]);
    assert_eq!(to_vec(&actual), to_vec(&expected));
    // Every id dtype, and ids that all fall in one block.
    let ids64 = Tensor::from_slice(&[5i64, 6], 2, &dev()).unwrap();
    assert_eq!(to_vec(&blocks.lookup(&ids64).unwrap()), to_vec(&whole.forward(&ids64).unwrap()));
    let ids8 = Tensor::from_slice(&[9u8, 2], 2, &dev()).unwrap();
    assert_eq!(to_vec(&blocks.lookup(&ids8).unwrap()), to_vec(&whole.forward(&ids8).unwrap()));
}

#[test]
fn an_id_past_the_last_block_is_an_error() {
    let (_, blocks) = matrix_and_blocks();
    let ids = Tensor::from_slice(&[3u32, 10], 2, &dev()).unwrap();
    let e = blocks.lookup(&ids).unwrap_err().to_string();
    assert!(e.contains("id 10 is out of range for a table of 10 rows"), "{e}");
    let negative = Tensor::from_slice(&[-1i64], 1, &dev()).unwrap();
    assert!(blocks.lookup(&negative).is_err());
}

#[test]
fn products_across_blocks_match_the_whole_weight() {
    let (w, blocks) = matrix_and_blocks();
    let bias = random(8, &[10]);
    let x = random(9, &[2, 3, 4]);
    let whole = Linear::new(w, Some(bias.clone())).unwrap();
    let split = Linear::from_rows(blocks.clone(), Some(bias)).unwrap();
    assert_eq!((split.in_dim(), split.out_dim()), (4, 10));
    for act in [Activation::Identity, Activation::Relu, Activation::Gelu] {
        let expected = to_vec(&whole.forward_act(&x, act).unwrap());
        let actual = split.forward_act(&x, act).unwrap();
        assert_eq!(actual.dims(), &[2, 3, 10]);
        assert_close(&to_vec(&actual), &expected.iter().map(|&v| v as f64).collect::<Vec<_>>(), 1e-6);
    }
    let tied = Linear::from_rows(blocks, None).unwrap();
    assert_eq!(tied.forward(&x).unwrap().dims(), &[2, 3, 10]);
}

#[test]
fn a_split_weight_is_not_handed_out_whole() {
    let (w, blocks) = matrix_and_blocks();
    assert!(Linear::new(w.clone(), None).unwrap().weight().is_ok());
    let e = Linear::from_rows(blocks.clone(), None).unwrap().weight().unwrap_err().to_string();
    assert!(e.contains("3 row blocks"), "{e}");
    let rescaled = blocks.map(|b| b.mul_scalar(2.0)).unwrap();
    assert_eq!(to_vec(&rescaled.blocks()[2]), to_vec(&w.narrow(0, 8, 2).unwrap().mul_scalar(2.0).unwrap()));
}

#[test]
fn mismatched_blocks_are_refused() {
    let a = random(1, &[3, 4]);
    let b = random(2, &[3, 5]);
    assert!(RowBlocks::from_blocks(vec![a, b]).is_err());
    assert!(RowBlocks::from_blocks(Vec::new()).is_err());
    assert!(RowBlocks::new(random(3, &[12])).is_err());
    let bias = random(4, &[5]);
    assert!(Linear::from_rows(RowBlocks::new(random(5, &[3, 4])).unwrap(), Some(bias)).is_err());
}
