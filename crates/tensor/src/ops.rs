//! Tensor operations: argument checking here, computation in the backend.

use crate::backend::{
    ArgReduceOp, AttentionParams, BinaryOp, CmpOp, Conv2dParams, NormKind, ReduceOp, RopeStyle, StorageRef, UnaryOp, View,
};
use crate::composed;
use crate::shape::{broadcast_shapes, Dim, Layout};
use crate::{DType, Error, Result, Tensor};

/// Dtypes that arithmetic kernels compute on directly.
fn check_float(op: &'static str, t: &Tensor) -> Result<()> {
    if !t.dtype().is_compute_float() {
        return Err(Error::unsupported(op, t.dtype()));
    }
    Ok(())
}

/// Compute floats and integers (FP8 is storage only: cast it first).
fn check_numeric(op: &'static str, t: &Tensor) -> Result<()> {
    if matches!(t.dtype(), DType::F8E4M3 | DType::F8E5M2) {
        return Err(Error::unsupported(op, t.dtype()));
    }
    Ok(())
}

fn check_index(op: &'static str, ids: &Tensor) -> Result<()> {
    if !matches!(ids.dtype(), DType::U8 | DType::U32 | DType::I64) {
        return Err(Error::invalid(op, format!("indices must be u8, u32 or i64, got {}", ids.dtype())));
    }
    Ok(())
}

fn check_same_dtype(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dtype() != b.dtype() {
        return Err(Error::DTypeMismatch { op, lhs: a.dtype(), rhs: b.dtype() });
    }
    Ok(())
}

/// A weight/bias vector must be 1-D of size `n` with the input's dtype.
fn check_param(op: &'static str, x: &Tensor, p: Option<&Tensor>, n: usize) -> Result<()> {
    if let Some(p) = p {
        x.same_device(p, op)?;
        check_same_dtype(op, x, p)?;
        if p.dims() != [n] {
            return Err(Error::ShapeMismatch { op, lhs: x.dims().to_vec(), rhs: p.dims().to_vec() });
        }
    }
    Ok(())
}

impl Tensor {
    fn wrap(&self, storage: StorageRef, shape: &[usize]) -> Tensor {
        Tensor::new_contiguous(storage, shape, self.device())
    }

    // ------------------------------------------------------------ unary

    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        let ok = self.dtype().is_compute_float() || (op.is_integer_op() && matches!(self.dtype(), DType::U8 | DType::U32 | DType::I64));
        if !ok {
            return Err(Error::unsupported(op.name(), self.dtype()));
        }
        let s = self.device().backend().unary(op, self.view())?;
        Ok(self.wrap(s, self.dims()))
    }

    /// `self * mul + add` (float dtypes).
    pub fn affine(&self, mul: f64, add: f64) -> Result<Tensor> {
        check_float("affine", self)?;
        let s = self.device().backend().affine(self.view(), mul, add)?;
        Ok(self.wrap(s, self.dims()))
    }

    pub fn add_scalar(&self, v: f64) -> Result<Tensor> {
        self.affine(1.0, v)
    }
    pub fn mul_scalar(&self, v: f64) -> Result<Tensor> {
        self.affine(v, 0.0)
    }

    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        crate::tensor::check_supported(self.device(), dtype, "cast")?;
        let s = self.device().backend().cast(self.view(), dtype)?;
        Ok(self.wrap(s, self.dims()))
    }

    // ----------------------------------------------------------- binary

    /// Both operands broadcast to a common shape.
    fn broadcast_pair(&self, rhs: &Tensor, op: &'static str) -> Result<(Layout, Layout, Vec<usize>)> {
        self.same_device(rhs, op)?;
        check_same_dtype(op, self, rhs)?;
        let shape = broadcast_shapes(op, self.dims(), rhs.dims())?;
        Ok((self.layout().broadcast_to(&shape)?, rhs.layout().broadcast_to(&shape)?, shape))
    }

    pub fn binary(&self, op: BinaryOp, rhs: &Tensor) -> Result<Tensor> {
        let (l, r, shape) = self.broadcast_pair(rhs, op.name())?;
        if op == BinaryOp::Pow {
            check_float(op.name(), self)?;
        } else {
            check_numeric(op.name(), self)?;
        }
        let s = self.device().backend().binary(
            op,
            View { storage: self.storage().as_ref(), layout: &l },
            View { storage: rhs.storage().as_ref(), layout: &r },
        )?;
        Ok(self.wrap(s, &shape))
    }

    pub fn compare(&self, op: CmpOp, rhs: &Tensor) -> Result<Tensor> {
        let (l, r, shape) = self.broadcast_pair(rhs, op.name())?;
        check_numeric(op.name(), self)?;
        let s = self.device().backend().compare(
            op,
            View { storage: self.storage().as_ref(), layout: &l },
            View { storage: rhs.storage().as_ref(), layout: &r },
        )?;
        Ok(self.wrap(s, &shape))
    }

    /// `self != 0 ? on_true : on_false`, all three broadcast together.
    pub fn where_cond(&self, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        let op = "where";
        self.same_device(on_true, op)?;
        self.same_device(on_false, op)?;
        check_same_dtype(op, on_true, on_false)?;
        check_index(op, self).map_err(|_| Error::invalid(op, format!("the condition must be u8, u32 or i64, got {}", self.dtype())))?;
        let shape = broadcast_shapes(op, self.dims(), on_true.dims())?;
        let shape = broadcast_shapes(op, &shape, on_false.dims())?;
        let (c, t, f) =
            (self.layout().broadcast_to(&shape)?, on_true.layout().broadcast_to(&shape)?, on_false.layout().broadcast_to(&shape)?);
        let s = self.device().backend().where_cond(
            View { storage: self.storage().as_ref(), layout: &c },
            View { storage: on_true.storage().as_ref(), layout: &t },
            View { storage: on_false.storage().as_ref(), layout: &f },
        )?;
        Ok(self.wrap(s, &shape))
    }

    // -------------------------------------------------------- reductions

    fn resolve_dims(&self, dims: &[i64], op: &'static str) -> Result<Vec<usize>> {
        let mut out = dims.iter().map(|&d| d.resolve(self.rank(), op)).collect::<Result<Vec<_>>>()?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Reduces over `dims` (negative dims count from the end; empty = all).
    pub fn reduce(&self, op: ReduceOp, dims: &[i64], keepdim: bool) -> Result<Tensor> {
        match op {
            ReduceOp::Mean => check_float(op.name(), self)?,
            _ => check_numeric(op.name(), self)?,
        }
        let dims = if dims.is_empty() { (0..self.rank()).collect() } else { self.resolve_dims(dims, op.name())? };
        if matches!(op, ReduceOp::Max | ReduceOp::Min) {
            if let Some(&d) = dims.iter().find(|&&d| self.dims()[d] == 0) {
                return Err(Error::invalid(op.name(), format!("cannot reduce over dim {d} of size 0 (shape {:?})", self.dims())));
            }
        }
        let s = self.device().backend().reduce(op, self.view(), &dims)?;
        let mut shape = self.dims().to_vec();
        for &d in &dims {
            shape[d] = 1;
        }
        let out = self.wrap(s, &shape);
        if keepdim {
            return Ok(out);
        }
        let kept: Vec<usize> = (0..self.rank()).filter(|d| !dims.contains(d)).map(|d| self.dims()[d]).collect();
        out.reshape(kept)
    }

    pub fn sum(&self, dims: &[i64], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Sum, dims, keepdim)
    }
    pub fn mean(&self, dims: &[i64], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Mean, dims, keepdim)
    }
    pub fn max(&self, dims: &[i64], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Max, dims, keepdim)
    }
    pub fn min(&self, dims: &[i64], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Min, dims, keepdim)
    }
    pub fn sum_all(&self) -> Result<Tensor> {
        self.reduce(ReduceOp::Sum, &[], false)
    }

    pub fn arg_reduce(&self, op: ArgReduceOp, dim: impl Dim, keepdim: bool) -> Result<Tensor> {
        let name = if op == ArgReduceOp::ArgMax { "argmax" } else { "argmin" };
        check_numeric(name, self)?;
        let d = dim.resolve(self.rank(), name)?;
        if self.dims()[d] == 0 {
            return Err(Error::invalid(name, format!("dim {d} has size 0 (shape {:?})", self.dims())));
        }
        let s = self.device().backend().arg_reduce(op, self.view(), d)?;
        let mut shape = self.dims().to_vec();
        shape[d] = 1;
        let out = self.wrap(s, &shape);
        if keepdim {
            Ok(out)
        } else {
            out.squeeze(d)
        }
    }

    pub fn argmax(&self, dim: impl Dim, keepdim: bool) -> Result<Tensor> {
        self.arg_reduce(ArgReduceOp::ArgMax, dim, keepdim)
    }
    pub fn argmin(&self, dim: impl Dim, keepdim: bool) -> Result<Tensor> {
        self.arg_reduce(ArgReduceOp::ArgMin, dim, keepdim)
    }

    pub fn cumsum(&self, dim: impl Dim) -> Result<Tensor> {
        check_numeric("cumsum", self)?;
        let d = dim.resolve(self.rank(), "cumsum")?;
        let s = self.device().backend().cumsum(self.view(), d)?;
        Ok(self.wrap(s, self.dims()))
    }

    /// Indices (`I64`) that sort `dim`; stable, so equal values keep order.
    pub fn argsort(&self, dim: impl Dim, descending: bool) -> Result<Tensor> {
        check_numeric("argsort", self)?;
        let d = dim.resolve(self.rank(), "argsort")?;
        let s = self.device().backend().argsort(self.view(), d, descending)?;
        Ok(self.wrap(s, self.dims()))
    }

    /// Sorted values and their indices.
    pub fn sort(&self, dim: impl Dim, descending: bool) -> Result<(Tensor, Tensor)> {
        let d = dim.resolve(self.rank(), "sort")?;
        let idx = self.argsort(d, descending)?;
        Ok((self.gather(d, &idx)?, idx))
    }

    /// The `k` largest values along `dim` (in descending order) and indices.
    pub fn topk(&self, k: usize, dim: impl Dim) -> Result<(Tensor, Tensor)> {
        let d = dim.resolve(self.rank(), "topk")?;
        if k > self.dims()[d] {
            return Err(Error::invalid("topk", format!("k = {k} exceeds dim {d} of size {} (shape {:?})", self.dims()[d], self.dims())));
        }
        let idx = self.argsort(d, true)?.narrow(d, 0, k)?;
        Ok((self.gather(d, &idx)?, idx))
    }

    // ------------------------------------------------------------ matmul

    /// Batched matrix product with broadcast batch dims; 1-D operands are
    /// treated as a row (lhs) or column (rhs) vector, as in NumPy.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.product("matmul", rhs, None)
    }

    /// `self.matmul(rhs) + bias`, with `bias` `[n]` (`n` the last dim of
    /// `rhs`) added to every output row: a layer's `x W^T + b`. Backends
    /// that fuse it seed the accumulators with the bias, so the output is
    /// written once and half-precision results are rounded once.
    pub fn matmul_bias(&self, rhs: &Tensor, bias: &Tensor) -> Result<Tensor> {
        self.matmul_bias_act(rhs, bias, None)
    }

    /// `act(self.matmul(rhs) + bias)`: a layer followed by its activation
    /// (`act` a float [`UnaryOp`] such as GELU), fused into the product's
    /// epilogue where the backend supports it; `None` is
    /// [`matmul_bias`](Self::matmul_bias).
    pub fn matmul_bias_act(&self, rhs: &Tensor, bias: &Tensor, act: Option<UnaryOp>) -> Result<Tensor> {
        let op = "matmul_bias";
        self.same_device(bias, op)?;
        check_same_dtype(op, self, bias)?;
        let n = if rhs.rank() >= 2 { rhs.dims()[rhs.rank() - 1] } else { 1 };
        if rhs.rank() == 0 || bias.dims() != [n] {
            return Err(Error::invalid(
                op,
                format!("bias of shape {:?} does not fit a product with {:?} (want [{n}])", bias.dims(), rhs.dims()),
            ));
        }
        self.product(op, rhs, Some((bias, act)))
    }

    fn product(&self, op: &'static str, rhs: &Tensor, bias: Option<(&Tensor, Option<UnaryOp>)>) -> Result<Tensor> {
        self.same_device(rhs, op)?;
        check_same_dtype(op, self, rhs)?;
        check_float(op, self)?;
        if self.rank() == 0 || rhs.rank() == 0 {
            return Err(Error::ShapeMismatch { op, lhs: self.dims().to_vec(), rhs: rhs.dims().to_vec() });
        }
        let a = if self.rank() == 1 { self.unsqueeze(0)? } else { self.clone() };
        let b = if rhs.rank() == 1 { rhs.unsqueeze(1)? } else { rhs.clone() };
        if a.rank() > 2 && b.rank() == 2 && rhs.rank() == 2 {
            // A batch of products with one shared matrix (`x @ W^T` of a
            // layer) is one taller product when the batch dims fold into
            // the rows without a copy: the backend then prepares the shared
            // operand once instead of once per batch entry.
            let (m, k) = (a.dims()[a.rank() - 2], a.dims()[a.rank() - 1]);
            let rows = a.dims()[..a.rank() - 1].iter().product::<usize>();
            if let Some(folded) = a.layout().reshape(&[rows, k]) {
                if k == b.dims()[0] {
                    let mut shape = a.dims()[..a.rank() - 2].to_vec();
                    shape.extend([m, b.dims()[1]]);
                    return a.with_layout(folded).product(op, &b, bias)?.reshape(shape);
                }
            }
        }
        let (ad, bd) = (a.dims(), b.dims());
        let (m, k) = (ad[ad.len() - 2], ad[ad.len() - 1]);
        let (k2, n) = (bd[bd.len() - 2], bd[bd.len() - 1]);
        if k != k2 {
            return Err(Error::ShapeMismatch { op, lhs: self.dims().to_vec(), rhs: rhs.dims().to_vec() });
        }
        let batch = broadcast_shapes(op, &ad[..ad.len() - 2], &bd[..bd.len() - 2]).map_err(|_| Error::ShapeMismatch {
            op,
            lhs: self.dims().to_vec(),
            rhs: rhs.dims().to_vec(),
        })?;
        let with = |b: &[usize], x: usize, y: usize| -> Vec<usize> { b.iter().copied().chain([x, y]).collect() };
        let la = a.layout().broadcast_to(&with(&batch, m, k))?;
        let lb = b.layout().broadcast_to(&with(&batch, k, n))?;
        let (av, bv) = (View { storage: a.storage().as_ref(), layout: &la }, View { storage: b.storage().as_ref(), layout: &lb });
        let backend = self.device().backend();
        let mut out = match bias {
            None => self.wrap(backend.matmul(av, bv)?, &with(&batch, m, n)),
            Some((bias, act)) => match backend.matmul_bias(av, bv, bias.view(), act)? {
                Some(s) => self.wrap(s, &with(&batch, m, n)),
                None => {
                    let (a, b) = (a.with_layout(la.clone()), b.with_layout(lb.clone()));
                    composed::matmul_bias(&a, &b, bias, act)?
                }
            },
        };
        if rhs.rank() == 1 {
            out = out.squeeze(-1)?;
        }
        if self.rank() == 1 {
            out = out.squeeze(if rhs.rank() == 1 { -1 } else { -2 })?;
        }
        Ok(out)
    }

    // -------------------------------------------------------- indexing

    /// Picks entries of `dim` by the 1-D index tensor `ids`.
    pub fn index_select(&self, ids: &Tensor, dim: impl Dim) -> Result<Tensor> {
        let op = "index_select";
        self.same_device(ids, op)?;
        check_index(op, ids)?;
        let d = dim.resolve(self.rank(), op)?;
        if ids.rank() != 1 {
            return Err(Error::invalid(op, format!("indices must be 1-D, got shape {:?}", ids.dims())));
        }
        check_bounds(op, ids, self.dims()[d])?;
        let s = self.device().backend().index_select(self.view(), ids.view(), d)?;
        let mut shape = self.dims().to_vec();
        shape[d] = ids.numel();
        Ok(self.wrap(s, &shape))
    }

    /// Rows of this `[vocab, ...]` table for integer `ids` of any shape: the
    /// output is `ids.shape + self.shape[1..]`.
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        if self.rank() < 1 {
            return Err(Error::invalid("embedding", "the table must have at least one dim"));
        }
        let flat = ids.flatten_all()?;
        let rows = self.index_select(&flat, 0)?;
        let mut shape = ids.dims().to_vec();
        shape.extend_from_slice(&self.dims()[1..]);
        rows.reshape(shape)
    }

    /// `out[...i...] = self[...ids[...i...]...]` along `dim`; `ids` has the
    /// same rank as `self`, and no larger size in the other dims.
    pub fn gather(&self, dim: impl Dim, ids: &Tensor) -> Result<Tensor> {
        let op = "gather";
        self.same_device(ids, op)?;
        check_index(op, ids)?;
        let d = dim.resolve(self.rank(), op)?;
        if ids.rank() != self.rank() || (0..self.rank()).any(|i| i != d && ids.dims()[i] > self.dims()[i]) {
            return Err(Error::ShapeMismatch { op, lhs: self.dims().to_vec(), rhs: ids.dims().to_vec() });
        }
        check_bounds(op, ids, self.dims()[d])?;
        let s = self.device().backend().gather(self.view(), ids.view(), d)?;
        Ok(self.wrap(s, ids.dims()))
    }

    /// Concatenates along `dim`; the other dims must agree.
    pub fn cat(tensors: &[&Tensor], dim: impl Dim) -> Result<Tensor> {
        let op = "cat";
        let first = tensors.first().ok_or_else(|| Error::invalid(op, "no tensors given"))?;
        let d = dim.resolve(first.rank(), op)?;
        for t in &tensors[1..] {
            first.same_device(t, op)?;
            check_same_dtype(op, first, t)?;
            let agree = t.rank() == first.rank() && (0..first.rank()).all(|i| i == d || t.dims()[i] == first.dims()[i]);
            if !agree {
                return Err(Error::ShapeMismatch { op, lhs: first.dims().to_vec(), rhs: t.dims().to_vec() });
            }
        }
        let views: Vec<View> = tensors.iter().map(|t| t.view()).collect();
        let s = first.device().backend().cat(&views, d)?;
        let mut shape = first.dims().to_vec();
        shape[d] = tensors.iter().map(|t| t.dims()[d]).sum();
        Ok(first.wrap(s, &shape))
    }

    /// Writes `src` over positions `start..start + src.dims()[dim]` of `dim`
    /// (`src` has this tensor's shape elsewhere, and its dtype and device),
    /// answering whether the write went to this tensor's own storage. That
    /// happens when this tensor is contiguous, no other tensor shares its
    /// storage (clones and views share it) and the backend writes in place;
    /// otherwise `self` becomes a new tensor with the region replaced, and
    /// tensors sharing the old storage still see the old values. Growing a
    /// buffer this way (a KV cache appending into reserved capacity) costs
    /// the written region only.
    pub fn slice_set(&mut self, src: &Tensor, dim: impl Dim, start: usize) -> Result<bool> {
        let op = "slice_set";
        let d = dim.resolve(self.rank(), op)?;
        self.same_device(src, op)?;
        check_same_dtype(op, self, src)?;
        let len = src.dims().get(d).copied().unwrap_or(0);
        let fits = src.rank() == self.rank() && (0..self.rank()).all(|i| i == d || src.dims()[i] == self.dims()[i]);
        if !fits || start + len > self.dims()[d] {
            return Err(Error::invalid(op, format!("{:?} does not fit at {start} along dim {d} of {:?}", src.dims(), self.dims())));
        }
        if len == 0 {
            return Ok(true);
        }
        let region = self.layout().narrow(d, start, len)?;
        if self.is_contiguous() && self.write_in_place(&region, src)? {
            return Ok(true);
        }
        let end = self.dims()[d];
        let (before, after) = (self.narrow(d, 0, start)?, self.narrow(d, start + len, end - start - len)?);
        let parts: Vec<&Tensor> = [&before, src, &after].into_iter().filter(|t| t.dims()[d] > 0).collect();
        *self = Tensor::cat(&parts, d)?;
        Ok(false)
    }

    /// Stacks equal-shaped tensors along a new dim.
    pub fn stack(tensors: &[&Tensor], dim: impl Dim) -> Result<Tensor> {
        let first = tensors.first().ok_or_else(|| Error::invalid("stack", "no tensors given"))?;
        let d = dim.resolve(first.rank() + 1, "stack")?;
        for t in tensors {
            if t.dims() != first.dims() {
                return Err(Error::ShapeMismatch { op: "stack", lhs: first.dims().to_vec(), rhs: t.dims().to_vec() });
            }
        }
        let expanded = tensors.iter().map(|t| t.unsqueeze(d)).collect::<Result<Vec<_>>>()?;
        Tensor::cat(&expanded.iter().collect::<Vec<_>>(), d)
    }

    // -------------------------------------------------------- fused ops

    /// Softmax over `dim`, computed stably (max subtracted).
    pub fn softmax(&self, dim: impl Dim) -> Result<Tensor> {
        self.softmax_impl(dim, false)
    }

    pub fn log_softmax(&self, dim: impl Dim) -> Result<Tensor> {
        self.softmax_impl(dim, true)
    }

    fn softmax_impl(&self, dim: impl Dim, log: bool) -> Result<Tensor> {
        let op = if log { "log_softmax" } else { "softmax" };
        check_float(op, self)?;
        let d = dim.resolve(self.rank(), op)?;
        let last = self.rank() - 1;
        let x = if d == last { self.clone() } else { self.transpose(d, last)? };
        let out = match x.device().backend().softmax_last(x.view(), log)? {
            Some(s) => x.wrap(s, x.dims()),
            None => composed::softmax_last(&x, log)?,
        };
        if d == last {
            Ok(out)
        } else {
            out.transpose(d, last)
        }
    }

    /// Layer norm over the last dim: `(x - mean) / sqrt(var + eps) * w + b`
    /// with the biased variance.
    pub fn layer_norm(&self, weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
        let op = "layer_norm";
        check_float(op, self)?;
        let n = self.last_dim(op)?;
        check_param(op, self, weight, n)?;
        check_param(op, self, bias, n)?;
        match self.device().backend().layer_norm(self.view(), weight.map(|w| w.view()), bias.map(|b| b.view()), eps)? {
            Some(s) => Ok(self.wrap(s, self.dims())),
            None => composed::layer_norm(self, weight, bias, eps),
        }
    }

    /// RMS norm over the last dim: `x / sqrt(mean(x^2) + eps) * w`.
    pub fn rms_norm(&self, weight: Option<&Tensor>, eps: f64) -> Result<Tensor> {
        let op = "rms_norm";
        check_float(op, self)?;
        let n = self.last_dim(op)?;
        check_param(op, self, weight, n)?;
        match self.device().backend().rms_norm(self.view(), weight.map(|w| w.view()), eps)? {
            Some(s) => Ok(self.wrap(s, self.dims())),
            None => composed::rms_norm(self, weight, eps),
        }
    }

    /// `(layer_norm(self + residual), self + residual)`: the residual add
    /// of a pre-LN block and the next norm in one pass where the backend
    /// fuses them. `residual` broadcasts to `self`'s shape; the sum is
    /// rounded to the dtype before it is normalised.
    pub fn add_layer_norm(&self, residual: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f64) -> Result<(Tensor, Tensor)> {
        self.add_norm(residual, weight, bias, eps, NormKind::Layer)
    }

    /// `(rms_norm(self + residual), self + residual)`, as
    /// [`add_layer_norm`](Self::add_layer_norm).
    pub fn add_rms_norm(&self, residual: &Tensor, weight: Option<&Tensor>, eps: f64) -> Result<(Tensor, Tensor)> {
        self.add_norm(residual, weight, None, eps, NormKind::Rms)
    }

    fn add_norm(&self, residual: &Tensor, w: Option<&Tensor>, b: Option<&Tensor>, eps: f64, kind: NormKind) -> Result<(Tensor, Tensor)> {
        let op = match kind {
            NormKind::Layer => "add_layer_norm",
            NormKind::Rms => "add_rms_norm",
        };
        check_float(op, self)?;
        self.same_device(residual, op)?;
        check_same_dtype(op, self, residual)?;
        let n = self.last_dim(op)?;
        check_param(op, self, w, n)?;
        check_param(op, self, b, n)?;
        let lr = residual.layout().broadcast_to(self.dims()).map_err(|_| Error::ShapeMismatch {
            op,
            lhs: self.dims().to_vec(),
            rhs: residual.dims().to_vec(),
        })?;
        let rv = View { storage: residual.storage().as_ref(), layout: &lr };
        match self.device().backend().add_norm(self.view(), rv, w.map(|w| w.view()), b.map(|b| b.view()), eps, kind)? {
            Some((y, h)) => Ok((self.wrap(y, self.dims()), self.wrap(h, self.dims()))),
            None => composed::add_norm(self, &residual.with_layout(lr.clone()), w, b, eps, kind),
        }
    }

    fn last_dim(&self, op: &'static str) -> Result<usize> {
        self.dims().last().copied().ok_or_else(|| Error::invalid(op, "needs at least one dim"))
    }

    /// Rotary position embedding of `self` `[..., t, d]` with `cos`, `sin`
    /// `[t, r/2]` where `r <= d` is the rotated width (even).
    pub fn rope(&self, cos: &Tensor, sin: &Tensor, style: RopeStyle) -> Result<Tensor> {
        let op = "rope";
        check_float(op, self)?;
        for c in [cos, sin] {
            self.same_device(c, op)?;
            check_same_dtype(op, self, c)?;
        }
        if self.rank() < 2 || cos.rank() != 2 || cos.dims() != sin.dims() {
            return Err(Error::ShapeMismatch { op, lhs: self.dims().to_vec(), rhs: cos.dims().to_vec() });
        }
        let (t, d) = (self.dims()[self.rank() - 2], self.dims()[self.rank() - 1]);
        let (ct, half) = (cos.dims()[0], cos.dims()[1]);
        if ct != t || 2 * half > d {
            return Err(Error::ShapeMismatch { op, lhs: self.dims().to_vec(), rhs: cos.dims().to_vec() });
        }
        match self.device().backend().rope(self.view(), cos.view(), sin.view(), style)? {
            Some(s) => Ok(self.wrap(s, self.dims())),
            None => composed::rope(self, cos, sin, style),
        }
    }

    /// 2-D convolution of `self` `[n, c, h, w]` with `weight`
    /// `[o, c/groups, kh, kw]` and an optional `bias` `[o]`.
    pub fn conv2d(&self, weight: &Tensor, bias: Option<&Tensor>, params: &Conv2dParams) -> Result<Tensor> {
        let op = "conv2d";
        check_float(op, self)?;
        self.same_device(weight, op)?;
        check_same_dtype(op, self, weight)?;
        let mismatch = || Error::ShapeMismatch { op, lhs: self.dims().to_vec(), rhs: weight.dims().to_vec() };
        if self.rank() != 4 || weight.rank() != 4 {
            return Err(mismatch());
        }
        let (n, c, h, w) = (self.dims()[0], self.dims()[1], self.dims()[2], self.dims()[3]);
        let (o, cg, kh, kw) = (weight.dims()[0], weight.dims()[1], weight.dims()[2], weight.dims()[3]);
        let g = params.groups;
        if g == 0 || c % g != 0 || o % g != 0 || cg != c / g {
            return Err(Error::invalid(op, format!("input {:?} and weight {:?} do not fit {g} groups", self.dims(), weight.dims())));
        }
        check_param(op, self, bias, o)?;
        let (oh, ow) = params
            .output_size((h, w), (kh, kw))
            .ok_or_else(|| Error::invalid(op, format!("kernel {kh}x{kw} with {params:?} does not fit input {:?}", self.dims())))?;
        match self.device().backend().conv2d(self.view(), weight.view(), bias.map(|b| b.view()), params)? {
            Some(s) => Ok(self.wrap(s, &[n, o, oh, ow])),
            None => composed::conv2d(self, weight, bias, params),
        }
    }

    /// Group norm of `self` `[n, c, ...]` over `groups` channel groups.
    pub fn group_norm(&self, groups: usize, weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
        let op = "group_norm";
        check_float(op, self)?;
        if self.rank() < 2 || groups == 0 || !self.dims()[1].is_multiple_of(groups) {
            return Err(Error::invalid(op, format!("{groups} groups do not divide the channels of {:?}", self.dims())));
        }
        let c = self.dims()[1];
        check_param(op, self, weight, c)?;
        check_param(op, self, bias, c)?;
        match self.device().backend().group_norm(self.view(), groups, weight.map(|w| w.view()), bias.map(|b| b.view()), eps)? {
            Some(s) => Ok(self.wrap(s, self.dims())),
            None => composed::group_norm(self, groups, weight, bias, eps),
        }
    }

    /// Nearest-neighbour resize of `[n, c, h, w]` to `[n, c, out_h, out_w]`.
    pub fn upsample_nearest2d(&self, out_h: usize, out_w: usize) -> Result<Tensor> {
        let op = "upsample_nearest2d";
        if self.rank() != 4 {
            return Err(Error::invalid(op, format!("expects [n, c, h, w], got {:?}", self.dims())));
        }
        check_numeric(op, self)?;
        let (n, c) = (self.dims()[0], self.dims()[1]);
        match self.device().backend().upsample_nearest2d(self.view(), out_h, out_w)? {
            Some(s) => Ok(self.wrap(s, &[n, c, out_h, out_w])),
            None => composed::upsample_nearest2d(self, out_h, out_w),
        }
    }
}

/// Scaled dot-product attention. `q` `[b, hq, tq, d]`, `k` `[b, hkv, tk, d]`,
/// `v` `[b, hkv, tk, dv]`; `hq` must be a multiple of `hkv` (grouped-query
/// heads share a KV head). `mask` is additive and broadcasts to
/// `[b, hq, tq, tk]`. `scale` defaults to `1/sqrt(d)`. See
/// [`AttentionParams::causal`] for how `causal` aligns when `tq != tk`.
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    causal: bool,
    scale: Option<f64>,
) -> Result<Tensor> {
    let op = "attention";
    check_float(op, q)?;
    for t in [k, v].into_iter().chain(mask) {
        q.same_device(t, op)?;
        check_same_dtype(op, q, t)?;
    }
    if q.rank() != 4 || k.rank() != 4 || v.rank() != 4 {
        return Err(Error::invalid(op, format!("q, k, v must be [b, h, t, d]; got {:?}, {:?}, {:?}", q.dims(), k.dims(), v.dims())));
    }
    let (b, hq, tq, d) = (q.dims()[0], q.dims()[1], q.dims()[2], q.dims()[3]);
    let (kb, hkv, tk, kd) = (k.dims()[0], k.dims()[1], k.dims()[2], k.dims()[3]);
    if kb != b || kd != d || hkv == 0 || hq % hkv != 0 {
        return Err(Error::ShapeMismatch { op, lhs: q.dims().to_vec(), rhs: k.dims().to_vec() });
    }
    if v.dims()[..3] != [b, hkv, tk] {
        return Err(Error::ShapeMismatch { op, lhs: k.dims().to_vec(), rhs: v.dims().to_vec() });
    }
    let dv = v.dims()[3];
    let scale = scale.unwrap_or(1.0 / (d as f64).sqrt());
    let params = AttentionParams { scale, causal };
    let mask_layout = match mask {
        Some(m) => Some(m.layout().broadcast_to(&[b, hq, tq, tk]).map_err(|_| Error::ShapeMismatch {
            op,
            lhs: vec![b, hq, tq, tk],
            rhs: m.dims().to_vec(),
        })?),
        None => None,
    };
    let mask_view = mask.zip(mask_layout.as_ref()).map(|(m, l)| View { storage: m.storage().as_ref(), layout: l });
    match q.device().backend().attention(q.view(), k.view(), v.view(), mask_view, &params)? {
        Some(s) => Ok(Tensor::new_contiguous(s, &[b, hq, tq, dv], q.device())),
        None => composed::attention(q, k, v, mask, &params),
    }
}

/// Checks every index is below `size` (reads the indices back: indexing with
/// an out-of-range id is a user error that must not reach a kernel).
fn check_bounds(op: &'static str, ids: &Tensor, size: usize) -> Result<()> {
    if ids.numel() == 0 {
        return Ok(());
    }
    let max = ids.to_dtype(DType::I64)?.flatten_all()?;
    let values = max.to_vec::<i64>()?;
    if let Some(&bad) = values.iter().find(|&&i| i < 0 || i as usize >= size) {
        return Err(Error::invalid(op, format!("index {bad} is out of range for a dim of size {size}")));
    }
    Ok(())
}

macro_rules! unary_methods {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl Tensor {$(
            pub fn $name(&self) -> Result<Tensor> {
                self.unary(UnaryOp::$op)
            }
        )*}
    };
}
unary_methods!(neg => Neg, abs => Abs, exp => Exp, log => Log, sqrt => Sqrt, rsqrt => Rsqrt, recip => Recip,
    square => Square, tanh => Tanh, sigmoid => Sigmoid, relu => Relu, silu => Silu, gelu => Gelu,
    gelu_tanh => GeluTanh, quick_gelu => QuickGelu, sin => Sin, cos => Cos);

macro_rules! binary_methods {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl Tensor {$(
            pub fn $name(&self, rhs: &Tensor) -> Result<Tensor> {
                self.binary(BinaryOp::$op, rhs)
            }
        )*}
    };
}
binary_methods!(add => Add, sub => Sub, mul => Mul, div => Div, maximum => Maximum, minimum => Minimum, pow => Pow);

macro_rules! cmp_methods {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl Tensor {$(
            pub fn $name(&self, rhs: &Tensor) -> Result<Tensor> {
                self.compare(CmpOp::$op, rhs)
            }
        )*}
    };
}
cmp_methods!(eq => Eq, ne => Ne, lt => Lt, le => Le, gt => Gt, ge => Ge);
