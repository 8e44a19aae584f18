//! The op families, each launching the kernels of one shaders/*.wgsl file.

pub mod attention;
pub mod conv;
pub mod elementwise;
pub mod index;
pub mod matmul;
pub mod norm;
pub mod reduce;
