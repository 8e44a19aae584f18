//! Counter-based random numbers: value `i` of a stream depends only on the
//! seed and `i`, so results do not depend on threads or devices. The same
//! generator is easy to reimplement in Python for fixtures.

/// SplitMix64's output function applied to `x`.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The 64-bit word `i` of stream `seed`.
pub fn word(seed: u64, i: u64) -> u64 {
    splitmix64(splitmix64(seed) ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// Uniform in `[0, 1)` with 53 random bits.
pub fn uniform(seed: u64, i: u64) -> f64 {
    (word(seed, i) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Standard normal by Box-Muller over two uniforms of a derived stream.
pub fn normal(seed: u64, i: u64) -> f64 {
    let u1 = uniform(seed, 2 * i);
    let u2 = uniform(seed, 2 * i + 1);
    let r = (-2.0 * (1.0 - u1).ln()).sqrt();
    r * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A small sequential generator for sampling and shuffles.
#[derive(Clone, Debug)]
pub struct Rng {
    seed: u64,
    counter: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng { seed, counter: 0 }
    }
    pub fn next_u64(&mut self) -> u64 {
        self.counter += 1;
        word(self.seed, self.counter)
    }
    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}
