//! Tessera's tensor core.
//!
//! A [`Tensor`] is shared storage + a strided [`Layout`] + a [`Device`]. Views
//! never copy. Devices are backends behind the [`Backend`] trait; the CPU
//! backend lives here, GPU backends plug in from their own crates through
//! [`register_provider`]. Fused ops have compositions in [`composed`] that serve
//! as their reference and as the fallback of backends that lack them.

pub mod backend;
pub mod composed;
pub mod cpu;
pub mod device;
pub mod dtype;
mod error;
pub mod file;
mod ops;
pub mod rng;
pub mod safetensors;
pub mod shape;
mod tensor;

pub use backend::{
    ArgReduceOp, AttentionParams, Backend, BackendStorage, BinaryOp, CmpOp, Conv2dParams, DeviceInfo, NormKind, ReduceOp, RopeStyle,
    StorageRef, UnaryOp, View,
};
pub use device::{all_devices, register_provider, Device, DeviceProvider};
pub use dtype::{DType, Element};
pub use error::{try_vec, Error, Result};
pub use half::{bf16, f16};
pub use ops::scaled_dot_product_attention;
pub use shape::{Dim, Layout, Shape};
pub use tensor::Tensor;
