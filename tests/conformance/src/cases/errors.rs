//! Argument errors: shape and dtype mismatches must come back as errors that
//! name both operands, and bad indices or dims as errors, never as a panic or
//! a result.

use crate::check::expect_err;
use crate::{bail, Suite, R};
use tessera_tensor::{scaled_dot_product_attention, Conv2dParams, DType, Device, Error, RopeStyle, Tensor};

/// The result must be an error whose message contains every one of `names`.
fn names(r: tessera_tensor::Result<Tensor>, names: &[String]) -> R<()> {
    let e = expect_err(r, "mismatched operands")?;
    let msg = e.to_string();
    if let Some(missing) = names.iter().find(|n| !msg.contains(n.as_str())) {
        bail!("the error '{msg}' does not name {missing}");
    }
    Ok(())
}

/// Shape-mismatch check: the error names both shapes as `[a, b]`.
fn shapes(r: tessera_tensor::Result<Tensor>, a: &[usize], b: &[usize]) -> R<()> {
    names(r, &[format!("{a:?}"), format!("{b:?}")])
}

/// Dtype-mismatch check: a `DTypeMismatch` naming both dtypes.
fn dtypes(r: tessera_tensor::Result<Tensor>, a: DType, b: DType) -> R<()> {
    match r {
        Err(e @ Error::DTypeMismatch { .. }) => names(Err(e), &[a.to_string(), b.to_string()]),
        Err(e) => bail!("expected a DTypeMismatch error, got: {e}"),
        Ok(_) => bail!("expected a DTypeMismatch error, got a result"),
    }
}

fn t(dev: &Device, shape: &[usize]) -> tessera_tensor::Result<Tensor> {
    Tensor::ones(shape, DType::F32, dev)
}

fn td(dev: &Device, shape: &[usize], dt: DType) -> tessera_tensor::Result<Tensor> {
    Tensor::ones(shape, dt, dev)
}

type Check = fn(&Device) -> R<()>;

pub fn run(s: &mut Suite) {
    let elementwise: [(&str, Check); 6] = [
        ("add [2, 3] + [4]", |d| shapes(t(d, &[2, 3])?.add(&t(d, &[4])?), &[2, 3], &[4])),
        ("mul [2, 3] * [3, 2]", |d| shapes(t(d, &[2, 3])?.mul(&t(d, &[3, 2])?), &[2, 3], &[3, 2])),
        ("lt [5] < [4]", |d| shapes(t(d, &[5])?.lt(&t(d, &[4])?), &[5], &[4])),
        ("where [2] ? [3] : [3]", |d| shapes(td(d, &[2], DType::U8)?.where_cond(&t(d, &[3])?, &t(d, &[3])?), &[2], &[3])),
        ("add f32 + f16", |d| dtypes(t(d, &[3])?.add(&td(d, &[3], DType::F16)?), DType::F32, DType::F16)),
        ("maximum u8, i64", |d| dtypes(td(d, &[3], DType::U8)?.maximum(&td(d, &[3], DType::I64)?), DType::U8, DType::I64)),
    ];
    let reduce: [(&str, Check); 4] = [
        ("sum over dim 2 of rank 2", |d| match t(d, &[2, 3])?.sum(&[2], false) {
            Err(Error::DimOutOfRange { .. }) => Ok(()),
            r => names(r, &["2".into()]),
        }),
        ("argmax dim -3 of rank 2", |d| expect_err(t(d, &[2, 3])?.argmax(-3, false), "dim out of range").map(drop)),
        ("topk k = 4 of 3", |d| expect_err(t(d, &[2, 3])?.topk(4, 1).map(|x| x.0), "k too large").map(drop)),
        ("cumsum dim 1 of rank 1", |d| expect_err(t(d, &[3])?.cumsum(1), "dim out of range").map(drop)),
    ];
    let matmul: [(&str, Check); 4] = [
        ("[2, 3] @ [4, 5]", |d| shapes(t(d, &[2, 3])?.matmul(&t(d, &[4, 5])?), &[2, 3], &[4, 5])),
        ("[2, 2, 3] @ [3, 3, 4]", |d| shapes(t(d, &[2, 2, 3])?.matmul(&t(d, &[3, 3, 4])?), &[2, 2, 3], &[3, 3, 4])),
        ("[3] @ [4]", |d| shapes(t(d, &[3])?.matmul(&t(d, &[4])?), &[3], &[4])),
        ("f32 @ bf16", |d| dtypes(t(d, &[2, 2])?.matmul(&td(d, &[2, 2], DType::BF16)?), DType::F32, DType::BF16)),
    ];
    let index: [(&str, Check); 6] = [
        ("cat [2, 3] and [2, 4] on dim 0", |d| shapes(Tensor::cat(&[&t(d, &[2, 3])?, &t(d, &[2, 4])?], 0), &[2, 3], &[2, 4])),
        ("cat f32 and u8", |d| dtypes(Tensor::cat(&[&t(d, &[2])?, &td(d, &[2], DType::U8)?], 0), DType::F32, DType::U8)),
        ("stack [2, 3] and [3, 2]", |d| shapes(Tensor::stack(&[&t(d, &[2, 3])?, &t(d, &[3, 2])?], 0), &[2, 3], &[3, 2])),
        ("gather [2, 3] by ids [3, 3]", |d| shapes(t(d, &[2, 3])?.gather(1, &td(d, &[3, 3], DType::I64)?), &[2, 3], &[3, 3])),
        ("index_select id 5 of 3", |d| {
            let ids = Tensor::from_slice(&[0i64, 5], 2, d)?;
            names(t(d, &[3, 2])?.index_select(&ids, 0), &["5".into()])
        }),
        ("index_select by f32 ids", |d| expect_err(t(d, &[3, 2])?.index_select(&t(d, &[2])?, 0), "float ids").map(drop)),
    ];
    let views: [(&str, Check); 4] = [
        ("reshape [2, 3] to [4]", |d| shapes(t(d, &[2, 3])?.reshape(4), &[2, 3], &[4])),
        ("broadcast [2, 3] to [3, 3]", |d| shapes(t(d, &[2, 3])?.broadcast_as((3, 3)), &[2, 3], &[3, 3])),
        ("narrow 2..5 of 4", |d| expect_err(t(d, &[4])?.narrow(0, 2, 3), "range past the end").map(drop)),
        ("permute [0, 0]", |d| expect_err(t(d, &[2, 2])?.permute(&[0, 0]), "not a permutation").map(drop)),
    ];
    let fused: [(&str, Check); 6] = [
        ("layer_norm [2, 3] weight [4]", |d| shapes(t(d, &[2, 3])?.layer_norm(Some(&t(d, &[4])?), None, 1e-5), &[2, 3], &[4])),
        ("rms_norm f32 weight f16", |d| dtypes(t(d, &[2, 3])?.rms_norm(Some(&td(d, &[3], DType::F16)?), 1e-5), DType::F32, DType::F16)),
        ("rope [1, 2, 5, 8] cos [4, 2]", |d| {
            let c = t(d, &[4, 2])?;
            shapes(t(d, &[1, 2, 5, 8])?.rope(&c, &c, RopeStyle::HalfSplit), &[1, 2, 5, 8], &[4, 2])
        }),
        ("conv2d [1, 3, 5, 5] weight [4, 2, 3, 3]", |d| {
            shapes(t(d, &[1, 3, 5, 5])?.conv2d(&t(d, &[4, 2, 3, 3])?, None, &Conv2dParams::default()), &[1, 3, 5, 5], &[4, 2, 3, 3])
        }),
        ("attention q [1, 2, 3, 8] k [1, 2, 4, 7]", |d| {
            let k = t(d, &[1, 2, 4, 7])?;
            shapes(scaled_dot_product_attention(&t(d, &[1, 2, 3, 8])?, &k, &k, None, false, None), &[1, 2, 3, 8], &[1, 2, 4, 7])
        }),
        ("group_norm 4 groups of 6 channels", |d| expect_err(t(d, &[1, 6, 2])?.group_norm(4, None, None, 1e-5), "groups").map(drop)),
    ];
    let families: [(&str, &[(&str, Check)]); 6] = [
        ("errors: elementwise", &elementwise),
        ("errors: reduce", &reduce),
        ("errors: matmul", &matmul),
        ("errors: index", &index),
        ("errors: views", &views),
        ("errors: fused", &fused),
    ];
    for (family, checks) in families {
        for &(desc, check) in checks {
            s.case(family, desc.to_string(), check);
        }
    }
}
