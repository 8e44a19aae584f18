//! The suite's seeded generator (SplitMix64), so every run and every device
//! sees the same cases. Each op seeds its own from its name.

use tessera_tensor::DType;

const SEED: u64 = 0x7E55_E2A0_C0F0_2026;

/// The sizes shapes are drawn from: size 1, small, odd, and a few past
/// powers of two.
const SIZES: [usize; 12] = [1, 1, 2, 3, 4, 5, 7, 8, 16, 17, 33, 65];

/// The sizes of large shapes.
const LARGE_SIZES: [usize; 10] = [1, 3, 7, 17, 33, 65, 129, 257, 1025, 24577];

pub struct Gen {
    state: u64,
}

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen { state: seed }
    }

    /// A generator seeded by an op's name (FNV-1a).
    pub fn for_op(name: &str) -> Gen {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in name.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Gen::new(h ^ SEED)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// `exp` of a uniform value between `ln lo` and `ln hi` (both positive).
    pub fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.uniform(lo.ln(), hi.ln()).exp()
    }

    /// `x` or `-x` with equal odds.
    pub fn signed(&mut self, x: f64) -> f64 {
        if self.chance(0.5) {
            -x
        } else {
            x
        }
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i + 1);
            xs.swap(i, j);
        }
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// One dimension: 0 now and then when `allow_empty`.
    pub fn size(&mut self, allow_empty: bool) -> usize {
        if allow_empty && self.chance(0.06) {
            return 0;
        }
        self.pick(&SIZES)
    }

    /// A shape of `rank` dims whose non-empty dims hold at most `max_numel`
    /// elements; now and then (when `max_numel` is not small) a large one of
    /// 20k to 80k elements, past the CPU backend's parallel threshold and a
    /// GPU's single workgroup.
    pub fn shape(&mut self, rank: usize, allow_empty: bool, max_numel: usize) -> Vec<usize> {
        if rank > 0 && max_numel >= 1024 && self.chance(0.06) {
            loop {
                let s: Vec<usize> = (0..rank).map(|_| self.pick(&LARGE_SIZES)).collect();
                if (20_000..=80_000).contains(&s.iter().product::<usize>()) {
                    return s;
                }
            }
        }
        loop {
            let s: Vec<usize> = (0..rank).map(|_| self.size(allow_empty)).collect();
            if s.iter().map(|&d| d.max(1)).product::<usize>() <= max_numel {
                return s;
            }
        }
    }

    /// A full-range value of an integer dtype (i64 kept within 2^26, so that
    /// products stay exact in f64).
    pub fn int_value(&mut self, dt: DType) -> f64 {
        match dt {
            DType::U8 => self.int(0, 255) as f64,
            DType::U32 => self.int(0, u32::MAX as i64) as f64,
            _ => self.int(-(1 << 26), 1 << 26) as f64,
        }
    }

    /// A value from a small set, so that ties and equal pairs are common.
    pub fn tie_value(&mut self, dt: DType) -> f64 {
        match dt {
            DType::U8 => self.pick(&[0.0, 1.0, 2.0, 3.0, 128.0, 255.0]),
            DType::U32 => self.pick(&[0.0, 1.0, 2.0, 3.0, 2147483648.0, 4294967295.0]),
            DType::I64 => self.pick(&[-3.0, -1.0, 0.0, 1.0, 2.0, 3.0, -1099511627776.0, 1099511627776.0]),
            _ => (self.below(9) as f64 - 4.0) * 0.5,
        }
    }
}
