//! Packing of k-contiguous f32 lines (a row-major A, or a transposed
//! weight as B) by 8 x 8 register transposes: eight lines are read eight k
//! steps at a time (one 32-byte load each), transposed with unpack, shuffle
//! and lane-permute instructions, and written as eight k steps of up to
//! eight panel columns each. The scalar alternative writes one float per
//! store at the panel's stride.

/// `dst[p * width + q] = lines[q][p]` for `q < lines.len()`, `p < kc`, when
/// the CPU can do it with AVX2; `false` (nothing written) otherwise.
pub fn pack_lines(lines: &[&[f32]], kc: usize, width: usize, dst: &mut [f32]) -> bool {
    assert!(lines.len() <= width && lines.iter().all(|l| l.len() >= kc) && dst.len() >= kc * width, "pack_lines: sizes do not match");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected; the sizes were checked above.
        unsafe { avx2::pack_lines(lines, kc, width, dst) };
        return true;
    }
    false
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// See [`super::pack_lines`].
    ///
    /// # Safety
    /// AVX2 is available; every line holds `kc` values and `dst` holds
    /// `kc * width`, with `lines.len() <= width`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn pack_lines(lines: &[&[f32]], kc: usize, width: usize, dst: &mut [f32]) {
        let full = kc / 8 * 8;
        let out = dst.as_mut_ptr();
        for (g, group) in lines.chunks(8).enumerate() {
            let q0 = 8 * g;
            let n = group.len();
            // Lanes 0..n of a store are this group's columns.
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            for p0 in (0..full).step_by(8) {
                let mut r = [_mm256_setzero_ps(); 8];
                for (ri, line) in r.iter_mut().zip(group) {
                    *ri = _mm256_loadu_ps(line.as_ptr().add(p0));
                }
                let cols = transpose8(r);
                for (j, col) in cols.iter().enumerate() {
                    let at = out.add((p0 + j) * width + q0);
                    if n == 8 {
                        _mm256_storeu_ps(at, *col);
                    } else {
                        _mm256_maskstore_ps(at, mask, *col);
                    }
                }
            }
            for p in full..kc {
                for (q, line) in group.iter().enumerate() {
                    dst[p * width + q0 + q] = line[p];
                }
            }
        }
    }

    /// Rows `r[i]` in, columns out: `out[j]` lane `i` is `r[i]` lane `j`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        // Within each 128-bit half: columns 0/4, 1/5, 2/6, 3/7 of four rows.
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every group size 1..=8 plus more than one group, k tails, and a wider
    /// panel than lines; lanes past the lines stay untouched.
    #[test]
    fn pack_lines_transposes() {
        for (count, width, kc) in [(16, 16, 37), (6, 6, 256), (3, 6, 9), (13, 16, 8), (1, 16, 5), (32, 32, 17)] {
            let data: Vec<Vec<f32>> = (0..count).map(|q| (0..kc + 3).map(|p| (q * 1000 + p) as f32).collect()).collect();
            let lines: Vec<&[f32]> = data.iter().map(|l| &l[..]).collect();
            let mut dst = vec![-1.0f32; kc * width];
            if !pack_lines(&lines, kc, width, &mut dst) {
                println!("skipping: no AVX2 on this CPU");
                return;
            }
            for p in 0..kc {
                for q in 0..width {
                    let want = if q < count { (q * 1000 + p) as f32 } else { -1.0 };
                    assert_eq!(dst[p * width + q], want, "count {count} width {width} kc {kc} at p {p} q {q}");
                }
            }
        }
    }
}
