pub mod compile;
pub mod device;
pub mod layout;
pub mod memory;
pub mod ops;
