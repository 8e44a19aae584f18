//! Shapes, dimension arguments and strided layouts.
//!
//! A [`Layout`] maps a logical index to a position in storage:
//! `offset + sum(index[d] * strides[d])`, strides counted in elements.
//! Broadcast dimensions have stride 0. Views (permute, narrow, broadcast,
//! squeeze, reshape of contiguous data) only rewrite the layout.

use crate::{Error, Result};

/// A tensor's dimensions, outermost first.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// The element count (saturating at `usize::MAX`, see [`numel`]).
    pub fn numel(&self) -> usize {
        numel(&self.0)
    }
    /// The element count, or `None` when it overflows `usize`.
    pub fn checked_numel(&self) -> Option<usize> {
        checked_numel(&self.0)
    }
    /// The element count of a shape to be allocated with `elem_bytes`-byte
    /// elements; an error when the byte size cannot exist.
    pub fn alloc_numel(&self, op: &'static str, elem_bytes: usize) -> Result<usize> {
        self.checked_numel()
            .filter(|n| n.checked_mul(elem_bytes).is_some_and(|b| b <= isize::MAX as usize))
            .ok_or_else(|| Error::invalid(op, format!("shape {:?} is too large to allocate", self.0)))
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Self {
        Shape(v)
    }
}
impl From<&Vec<usize>> for Shape {
    fn from(v: &Vec<usize>) -> Self {
        Shape(v.clone())
    }
}
impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Self {
        Shape(v.to_vec())
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(v: [usize; N]) -> Self {
        Shape(v.to_vec())
    }
}
impl<const N: usize> From<&[usize; N]> for Shape {
    fn from(v: &[usize; N]) -> Self {
        Shape(v.to_vec())
    }
}
impl From<()> for Shape {
    fn from(_: ()) -> Self {
        Shape(vec![])
    }
}
impl From<usize> for Shape {
    fn from(a: usize) -> Self {
        Shape(vec![a])
    }
}
impl From<(usize,)> for Shape {
    fn from(a: (usize,)) -> Self {
        Shape(vec![a.0])
    }
}
impl From<(usize, usize)> for Shape {
    fn from(a: (usize, usize)) -> Self {
        Shape(vec![a.0, a.1])
    }
}
impl From<(usize, usize, usize)> for Shape {
    fn from(a: (usize, usize, usize)) -> Self {
        Shape(vec![a.0, a.1, a.2])
    }
}
impl From<(usize, usize, usize, usize)> for Shape {
    fn from(a: (usize, usize, usize, usize)) -> Self {
        Shape(vec![a.0, a.1, a.2, a.3])
    }
}
impl From<(usize, usize, usize, usize, usize)> for Shape {
    fn from(a: (usize, usize, usize, usize, usize)) -> Self {
        Shape(vec![a.0, a.1, a.2, a.3, a.4])
    }
}

/// A dimension argument: a `usize`, or a signed integer where negative values
/// count from the end (`-1` is the last dimension).
pub trait Dim: Copy {
    fn resolve(self, rank: usize, op: &'static str) -> Result<usize>;
}

macro_rules! signed_dim {
    ($($t:ty),*) => {$(
        impl Dim for $t {
            fn resolve(self, rank: usize, op: &'static str) -> Result<usize> {
                let d = self as isize;
                let r = if d < 0 { d + rank as isize } else { d };
                if r < 0 || r >= rank as isize {
                    return Err(Error::DimOutOfRange { op, dim: d, rank });
                }
                Ok(r as usize)
            }
        }
    )*};
}
signed_dim!(i32, i64, isize);

impl Dim for usize {
    fn resolve(self, rank: usize, op: &'static str) -> Result<usize> {
        if self >= rank {
            return Err(Error::DimOutOfRange { op, dim: self as isize, rank });
        }
        Ok(self)
    }
}

/// Shape, strides and offset of a view into a storage buffer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

/// Row-major strides for a shape.
///
/// Never overflows: the strides of a tensor that holds elements are bounded
/// by its element count, and those of an empty tensor (a zero dimension,
/// such as `[0, 2^32, 2^32]`) are never followed, so they saturate.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut s: usize = 1;
    for d in (0..shape.len()).rev() {
        strides[d] = s;
        s = s.saturating_mul(shape[d]);
    }
    strides
}

/// The element count of `dims`, or `None` when it overflows `usize`. A zero
/// dimension makes it 0 wherever it is (`[2^32, 2^32, 0]` holds nothing).
pub fn checked_numel(dims: &[usize]) -> Option<usize> {
    if dims.contains(&0) {
        return Some(0);
    }
    dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// The element count of `dims`, saturating at `usize::MAX` (a count no
/// allocation reaches, so sizing a buffer from it fails cleanly).
pub fn numel(dims: &[usize]) -> usize {
    checked_numel(dims).unwrap_or(usize::MAX)
}

/// Numpy broadcasting of two shapes.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
        let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(Error::ShapeMismatch { op, lhs: a.to_vec(), rhs: b.to_vec() });
        };
    }
    Ok(out)
}

impl Layout {
    pub fn contiguous(shape: impl Into<Shape>) -> Self {
        let shape = shape.into().0;
        let strides = contiguous_strides(&shape);
        Layout { shape, strides, offset: 0 }
    }

    /// A layout from explicit parts. `storage_len` is the number of elements
    /// in the storage it indexes; every reachable element must be inside it.
    pub fn new(shape: Vec<usize>, strides: Vec<usize>, offset: usize, storage_len: usize) -> Result<Self> {
        if shape.len() != strides.len() {
            return Err(Error::invalid("layout", format!("shape {shape:?} and strides {strides:?} differ in rank")));
        }
        let l = Layout { shape, strides, offset };
        if l.numel() > 0 && l.max_offset() >= storage_len {
            return Err(Error::invalid(
                "layout",
                format!(
                    "view {:?} with strides {:?} at offset {} reaches past a storage of {} elements",
                    l.shape, l.strides, l.offset, storage_len
                ),
            ));
        }
        Ok(l)
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// The element count (saturating, see [`numel`]).
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// Largest storage position this view reaches (for a non-empty view).
    pub fn max_offset(&self) -> usize {
        let reach =
            self.shape.iter().zip(&self.strides).fold(0usize, |acc, (&d, &s)| acc.saturating_add(d.saturating_sub(1).saturating_mul(s)));
        self.offset.saturating_add(reach)
    }

    /// Row-major and dense: logical order equals storage order from `offset`.
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for d in (0..self.rank()).rev() {
            if self.shape[d] != 1 && self.strides[d] != expected {
                return false;
            }
            expected = expected.saturating_mul(self.shape[d]);
        }
        true
    }

    pub fn permute(&self, perm: &[usize]) -> Result<Layout> {
        let rank = self.rank();
        let mut seen = vec![false; rank];
        if perm.len() != rank || perm.iter().any(|&p| p >= rank || std::mem::replace(&mut seen[p], true)) {
            return Err(Error::invalid("permute", format!("{perm:?} is not a permutation of the {rank} dims of {:?}", self.shape)));
        }
        Ok(Layout {
            shape: perm.iter().map(|&p| self.shape[p]).collect(),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        })
    }

    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Layout> {
        let size = self.shape[dim];
        if start.checked_add(len).is_none_or(|end| end > size) {
            return Err(Error::invalid(
                "narrow",
                format!("range {start}..{} is outside dim {dim} of size {size} (shape {:?})", start.saturating_add(len), self.shape),
            ));
        }
        let mut l = self.clone();
        l.shape[dim] = len;
        if len > 0 {
            l.offset += start * self.strides[dim];
        }
        Ok(l)
    }

    /// Every `step`-th element of dim `dim`, from `start`.
    pub fn step(&self, dim: usize, start: usize, step: usize) -> Result<Layout> {
        let size = self.shape[dim];
        if step == 0 || start > size {
            return Err(Error::invalid("slice", format!("start {start} step {step} is invalid for dim {dim} of size {size}")));
        }
        let mut l = self.clone();
        l.shape[dim] = (size - start).div_ceil(step);
        if l.shape[dim] > 0 {
            l.offset += start * self.strides[dim];
        }
        l.strides[dim] *= step;
        Ok(l)
    }

    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Layout> {
        let err = || Error::ShapeMismatch { op: "broadcast_to", lhs: self.shape.clone(), rhs: shape.to_vec() };
        if shape.len() < self.rank() {
            return Err(err());
        }
        let extra = shape.len() - self.rank();
        let mut strides = vec![0; shape.len()];
        for d in 0..self.rank() {
            let (src, dst) = (self.shape[d], shape[d + extra]);
            strides[d + extra] = if src == dst {
                self.strides[d]
            } else if src == 1 {
                0
            } else {
                return Err(err());
            };
        }
        Ok(Layout { shape: shape.to_vec(), strides, offset: self.offset })
    }

    /// A view with a new shape over the same elements, when the layout allows
    /// it without a copy (contiguous data); `None` otherwise.
    pub fn reshape(&self, shape: &[usize]) -> Option<Layout> {
        if self.is_contiguous() {
            Some(Layout { shape: shape.to_vec(), strides: contiguous_strides(shape), offset: self.offset })
        } else {
            None
        }
    }

    pub fn unsqueeze(&self, dim: usize) -> Layout {
        let mut l = self.clone();
        let stride = if dim < self.rank() { self.strides[dim] * self.shape[dim] } else { 1 };
        l.shape.insert(dim, 1);
        l.strides.insert(dim, stride);
        l
    }

    pub fn squeeze(&self, dim: usize) -> Layout {
        let mut l = self.clone();
        if l.shape[dim] == 1 {
            l.shape.remove(dim);
            l.strides.remove(dim);
        }
        l
    }

    /// Storage positions of all elements in logical (row-major) order.
    pub fn offsets(&self) -> StridedOffsets<'_> {
        StridedOffsets::new(self, 0)
    }

    /// Storage positions starting at logical element `start`.
    pub fn offsets_from(&self, start: usize) -> StridedOffsets<'_> {
        StridedOffsets::new(self, start)
    }
}

/// Iterator over the storage positions of a layout, in logical order.
pub struct StridedOffsets<'a> {
    layout: &'a Layout,
    index: Vec<usize>,
    next: usize,
    remaining: usize,
}

impl<'a> StridedOffsets<'a> {
    fn new(layout: &'a Layout, start: usize) -> Self {
        let numel = layout.numel();
        let start = start.min(numel);
        let mut index = vec![0; layout.rank()];
        let mut rem = start;
        let mut next = layout.offset;
        for d in (0..layout.rank()).rev() {
            let sz = layout.shape[d];
            if sz > 0 {
                index[d] = rem % sz;
                rem /= sz;
            }
            next += index[d] * layout.strides[d];
        }
        StridedOffsets { layout, index, next, remaining: numel - start }
    }
}

impl Iterator for StridedOffsets<'_> {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let cur = self.next;
        let l = self.layout;
        for d in (0..l.rank()).rev() {
            self.index[d] += 1;
            if self.index[d] < l.shape[d] {
                self.next += l.strides[d];
                break;
            }
            self.next -= (l.shape[d] - 1) * l.strides[d];
            self.index[d] = 0;
        }
        Some(cur)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}
impl ExactSizeIterator for StridedOffsets<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_strides() {
        let l = Layout::contiguous([2, 3]).permute(&[1, 0]).unwrap();
        assert_eq!(l.offsets().collect::<Vec<_>>(), vec![0, 3, 1, 4, 2, 5]);
        assert_eq!(l.offsets_from(3).collect::<Vec<_>>(), vec![4, 2, 5]);
        let b = Layout::contiguous([3]).broadcast_to(&[2, 3]).unwrap();
        assert_eq!(b.offsets().collect::<Vec<_>>(), vec![0, 1, 2, 0, 1, 2]);
        assert!(Layout::contiguous([0, 3]).offsets().next().is_none());
    }

    #[test]
    fn broadcasting_rules() {
        assert_eq!(broadcast_shapes("t", &[2, 1, 3], &[4, 1]).unwrap(), vec![2, 4, 3]);
        assert!(broadcast_shapes("t", &[2, 3], &[4, 3]).is_err());
        assert_eq!(broadcast_shapes("t", &[0, 1], &[1, 5]).unwrap(), vec![0, 5]);
    }
}
