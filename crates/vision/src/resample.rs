//! Image resizing with Pillow's resampling filters, bit for bit.
//!
//! transformers' image processors (PIL backend) resize with
//! `PIL.Image.resize`, so this is Pillow's algorithm restated for 8-bit RGB.
//!
//! The convolution filters (libImaging/Resample.c):
//!
//! - Separable: one pass per axis whose size changes, each rounded to u8.
//!   The horizontal pass runs first (over only the source rows the vertical
//!   taps reach) unless the height shrinks by more than twice as many pixels
//!   as the width, when Pillow 13 runs the vertical pass first; the two
//!   orders can differ by one level, so the order is Pillow's.
//! - For each output index `x`, the filter is centred at `(x + 0.5) * scale`
//!   in source coordinates (`scale = in / out`). When shrinking, the filter is
//!   stretched by `scale` (its support grows and its argument shrinks), which
//!   is the antialiasing; when enlarging it keeps its natural width. Source
//!   indices run from `round(centre - support)` to `round(centre + support)`,
//!   clamped to the image; the weights are normalised to sum to one.
//! - Weights are fixed point with 22 fractional bits (rounded half away from
//!   zero); each output sums `pixel * weight` in 32-bit integers starting from
//!   one half, shifts right by 22 (an arithmetic shift: floor) and clamps to
//!   0..=255.
//!
//! Filters: box, bilinear, Hamming, bicubic (Keys, a = -0.5) and Lanczos-3,
//! as Pillow defines them.
//!
//! Nearest (libImaging/Geometry.c, the scaling case of the affine
//! transform): source column `(int) xo` for output column `x`, where `xo`
//! starts at `scale / 2` and adds `scale = in / out` per column in double
//! precision (accumulated, not multiplied, as Pillow does, so the rounding
//! of the sums is Pillow's); rows likewise.
//!
//! Layout: interleaved RGB rows (`image::RgbImage`).

use image::RgbImage;
use rayon::prelude::*;

/// Pillow's resampling filters (the `resample` codes of a preprocessor config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `Image.NEAREST` (code 0).
    Nearest,
    /// `Image.BOX` (code 4).
    Box,
    /// `Image.BILINEAR` (code 2).
    Bilinear,
    /// `Image.HAMMING` (code 5).
    Hamming,
    /// `Image.BICUBIC` (code 3), CLIP's filter.
    Bicubic,
    /// `Image.LANCZOS` (code 1).
    Lanczos,
}

impl Filter {
    /// The filter of a PIL resampling code; `None` for unknown codes.
    pub fn from_pil_code(code: u32) -> Option<Filter> {
        match code {
            0 => Some(Filter::Nearest),
            1 => Some(Filter::Lanczos),
            2 => Some(Filter::Bilinear),
            3 => Some(Filter::Bicubic),
            4 => Some(Filter::Box),
            5 => Some(Filter::Hamming),
            _ => None,
        }
    }

    /// Half-width of the filter at scale 1.
    fn support(self) -> f64 {
        match self {
            Filter::Nearest | Filter::Box => 0.5,
            Filter::Bilinear | Filter::Hamming => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            // Not a convolution in Pillow (see `resize_nearest`); as a
            // kernel it would be the box.
            Filter::Nearest | Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let px = x * std::f64::consts::PI;
                    // Pillow evaluates the window's constants in single precision.
                    px.sin() / px * (0.54f32 as f64 + 0.46f32 as f64 * px.cos())
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let px = x * std::f64::consts::PI;
        px.sin() / px
    }
}

/// Fractional bits of the fixed-point weights: 8 bits of pixel and two of
/// headroom for filters with negative lobes.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The fixed-point filter taps of every output index along one axis.
struct Taps {
    /// Taps per output index (the row length of `weights`).
    ksize: usize,
    /// First source index and number of taps, per output index.
    bounds: Vec<(usize, usize)>,
    /// `out_size * ksize` weights, unused tail taps zero.
    weights: Vec<i32>,
}

impl Taps {
    fn new(in_size: usize, out_size: usize, filter: Filter) -> Taps {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support() * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut bounds = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        let inv_filterscale = 1.0 / filterscale;
        let mut w = vec![0f64; ksize];
        for (xx, taps) in weights.chunks_exact_mut(ksize).enumerate() {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) casts truncate toward zero, as `as` does.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let n = (xmax - xmin).max(0) as usize;
            let mut sum = 0.0;
            for (x, wx) in w[..n].iter_mut().enumerate() {
                *wx = filter.weight(((x as i64 + xmin) as f64 - center + 0.5) * inv_filterscale);
                sum += *wx;
            }
            for (tap, &wx) in taps.iter_mut().zip(&w[..n]) {
                let wx = if sum != 0.0 { wx / sum } else { wx };
                let fixed = wx * (1u32 << PRECISION_BITS) as f64;
                *tap = if wx < 0.0 { (fixed - 0.5) as i32 } else { (fixed + 0.5) as i32 };
            }
            bounds.push((xmin as usize, n));
        }
        Taps { ksize, bounds, weights }
    }

    fn of(&self, i: usize) -> (usize, &[i32]) {
        let (start, n) = self.bounds[i];
        (start, &self.weights[i * self.ksize..i * self.ksize + n])
    }
}

/// Rounds a fixed-point sum to a pixel.
#[inline]
fn clip8(sum: i32) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes `src` to `width x height` as `PIL.Image.resize(size, filter)`
/// does for an RGB image. Both sizes of `src` and the target must be
/// positive (callers check).
pub fn resize(src: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
    if filter == Filter::Nearest {
        return resize_nearest(src, width, height);
    }
    let (in_w, in_h) = (src.width() as usize, src.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    let src = src.as_raw();
    let horizontal = (out_w != in_w).then(|| Taps::new(in_w, out_w, filter));
    let vertical = (out_h != in_h).then(|| Taps::new(in_h, out_h, filter));
    let out = match (horizontal, vertical) {
        (None, None) => src.to_vec(),
        (Some(h), None) => horizontal_pass(src, in_w, 0..in_h, &h),
        (None, Some(v)) => vertical_pass(src, in_w, 0, &v),
        (Some(h), Some(v)) if vertical_first(in_w, in_h, out_w, out_h) => {
            horizontal_pass(&vertical_pass(src, in_w, 0, &v), in_w, 0..out_h, &h)
        }
        (Some(h), Some(v)) => {
            // Only the source rows the vertical taps reach are filtered.
            let first = v.bounds[0].0;
            let (last_start, last_n) = v.bounds[out_h - 1];
            vertical_pass(&horizontal_pass(src, in_w, first..last_start + last_n, &h), out_w, first, &v)
        }
    };
    RgbImage::from_raw(width, height, out).expect("buffer holds height * width pixels")
}

/// Pillow 13's pass order: vertical first when the height shrinks by more
/// than twice as many pixels as the width does (the sizes' differences, in
/// integers, as libImaging/Resample.c compares them).
fn vertical_first(in_w: usize, in_h: usize, out_w: usize, out_h: usize) -> bool {
    let dh = in_h as i64 - out_h as i64;
    let dw = in_w as i64 - out_w as i64;
    dh > 0 && dh > dw * 2
}

/// Filters `rows` of an interleaved RGB image `in_w` pixels wide along x.
fn horizontal_pass(src: &[u8], in_w: usize, rows: std::ops::Range<usize>, taps: &Taps) -> Vec<u8> {
    let out_w = taps.bounds.len();
    let mut out = vec![0u8; rows.len() * out_w * 3];
    out.par_chunks_mut(out_w * 3).enumerate().for_each(|(y, row)| {
        let line = &src[(rows.start + y) * in_w * 3..(rows.start + y + 1) * in_w * 3];
        for (xx, px) in row.chunks_exact_mut(3).enumerate() {
            let (start, k) = taps.of(xx);
            let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
            for (i, &w) in k.iter().enumerate() {
                let s = &line[(start + i) * 3..(start + i) * 3 + 3];
                for c in 0..3 {
                    acc[c] += s[c] as i32 * w;
                }
            }
            for c in 0..3 {
                px[c] = clip8(acc[c]);
            }
        }
    });
    out
}

/// Filters an interleaved RGB image `width` pixels wide along y; its first
/// row is source row `first_row`.
fn vertical_pass(src: &[u8], width: usize, first_row: usize, taps: &Taps) -> Vec<u8> {
    let mut out = vec![0u8; taps.bounds.len() * width * 3];
    out.par_chunks_mut(width * 3).enumerate().for_each(|(yy, row)| {
        let (start, k) = taps.of(yy);
        let start = start - first_row;
        for (x, px) in row.iter_mut().enumerate() {
            let mut acc = 1i32 << (PRECISION_BITS - 1);
            for (i, &w) in k.iter().enumerate() {
                acc += src[(start + i) * width * 3 + x] as i32 * w;
            }
            *px = clip8(acc);
        }
    });
    out
}

/// The source index of every output index along one axis, as Pillow's
/// `ImagingScaleAffine` tabulates it (see the module docs).
fn nearest_indices(in_size: usize, out_size: usize) -> Vec<usize> {
    let scale = in_size as f64 / out_size as f64;
    let mut pos = scale * 0.5;
    let mut out = Vec::with_capacity(out_size);
    for _ in 0..out_size {
        // `pos` is positive and below `in_size` (plus rounding): C's (int)
        // truncation, clamped where the accumulated sum rounds past the end.
        out.push((pos as usize).min(in_size - 1));
        pos += scale;
    }
    out
}

/// Nearest-neighbour resizing, as Pillow's `Image.resize(size, NEAREST)`.
fn resize_nearest(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_w, in_h) = (src.width() as usize, src.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    let cols = nearest_indices(in_w, out_w);
    let rows = nearest_indices(in_h, out_h);
    let raw = src.as_raw();
    let mut out = vec![0u8; out_h * out_w * 3];
    out.par_chunks_mut(out_w * 3).zip(rows.par_iter()).for_each(|(row, &sy)| {
        let line = &raw[sy * in_w * 3..(sy + 1) * in_w * 3];
        for (px, &sx) in row.chunks_exact_mut(3).zip(&cols) {
            px.copy_from_slice(&line[sx * 3..sx * 3 + 3]);
        }
    });
    RgbImage::from_raw(width, height, out).expect("buffer holds height * width pixels")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for filter in [Filter::Box, Filter::Bilinear, Filter::Hamming, Filter::Bicubic, Filter::Lanczos] {
            for (i, o) in [(640, 224), (100, 224), (7, 3), (3, 7), (224, 224)] {
                let t = Taps::new(i, o, filter);
                for x in 0..o {
                    let s: i32 = t.of(x).1.iter().sum();
                    assert!((s - (1 << PRECISION_BITS)).abs() <= 8, "{filter:?} {i}->{o} at {x}: {s}");
                }
            }
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(97, 61, image::Rgb([12, 200, 255]));
        for (w, h) in [(224, 300), (31, 17), (97, 20)] {
            let out = resize(&img, w, h, Filter::Bicubic);
            assert!(out.pixels().all(|p| p.0 == [12, 200, 255]), "{w}x{h}");
        }
    }

    /// A 13x9 pattern: channel c of (x, y) is `(37x + 91y + 53c + 7xy) % 256`.
    fn pattern() -> RgbImage {
        RgbImage::from_fn(13, 9, |x, y| image::Rgb([0, 1, 2].map(|c| ((x * 37 + y * 91 + c * 53 + x * y * 7) % 256) as u8)))
    }

    #[test]
    fn matches_pillow_bit_for_bit() {
        // `Image.fromarray(pattern).resize((w, h), resample=code, reducing_gap=None)`
        // with Pillow 13.0, as hex RGB bytes: shrinking, enlarging, one axis,
        // width shrinking while height grows, and both pass orders.
        let cases = [
        (Filter::Nearest, 5, 4, "87bcf1df14496398cde71c513f74a94b80b5bff4296da2d71b50858fc4f90f44799fd40977ace14f84b9df1449d3083d7fb4e981b6eb83b8ed2f6499"),
        (Filter::Nearest, 8, 6, "00356a4a7fb494c9feb9ee2303386d285d9272a7dcbcf126b6eb201c518682b7ecb5ea1f1b50854e83b8b4e91e1a4f8411467b85baeff92e6333689da7dc11e1164b558abfc9fe33c7fc31578cc1e71c512f6499bff429073c7197cc01275c9122578cc0f52a5e93c8ade2174b80b59acf04386da2d60b40d80d4292c7fc4c81b6a9de136398cdc0f52a7aafe434699e"),
        (Filter::Nearest, 31, 7, "00356a00356a255a8f255a8f255a8f4a7fb44a7fb46fa4d96fa4d96fa4d994c9fe94c9feb9ee23b9ee23de1348de1348de134803386d03386d285d92285d924d82b74d82b74d82b772a7dc72a7dc97cc0197cc0197cc01bcf126bcf1265b90c55b90c587bcf187bcf187bcf1b3e81db3e81ddf1449df1449df14490b40750b4075376ca1376ca16398cd6398cd6398cd8fc4f98fc4f9bbf025bbf025e71c51e71c51e71c5113487d13487d3f74a93f74a93f74a96ba0d56ba0d511467b11467b4b80b54b80b54b80b585baef85baefbff429bff429bff429f92e63f92e6333689d33689d6da2d76da2d76da2d7a7dc11a7dc11e1164be1164b1b50851b50851b5085558abf558abf8fc4f98fc4f98fc4f9c9fe33c9fe336ca1d66ca1d6ade217ade217ade217ee2358ee23582f64992f64992f649970a5da70a5dab1e61bb1e61bf2275cf2275cf2275c33689d33689d74a9de74a9deb5ea1fb5ea1fb5ea1ff62b60f62b60376ca1376ca1376ca178ade278ade2c7fc31c7fc310f44790f44790f4479578cc1578cc19fd4099fd4099fd409e71c51e71c512f64992f649977ace177ace177ace1bff429bff429073c71073c714f84b94f84b94f84b997cc0197cc01df1449df1449df1449275c91275c917db2e77db2e7d3083dd3083dd3083d295e93295e937fb4e97fb4e97fb4e9d50a3fd50a3f2b60952b609581b6eb81b6eb81b6ebd70c41d70c412d62972d629783b8ed83b8ed83b8edd90e43d90e432f64992f64992f649985baef85baefd80d42d80d42356a9f356a9f356a9f92c7fc92c7fcef2459ef2459ef24594c81b64c81b6a9de13a9de13063b70063b70063b706398cd6398cdc0f52ac0f52a1d52871d52871d52877aafe47aafe4d70c41d70c41d70c4134699e34699e"),
        (Filter::Nearest, 13, 4, "5b90c587bcf1b3e81ddf14490b4075376ca16398cd8fc4f9bbf025e71c5113487d3f74a96ba0d511467b4b80b585baefbff429f92e6333689d6da2d7a7dc11e1164b1b5085558abf8fc4f9c9fe33c7fc310f4479578cc19fd409e71c512f649977ace1bff429073c714f84b997cc01df1449275c917db2e7d3083d295e937fb4e9d50a3f2b609581b6ebd70c412d629783b8edd90e432f649985baef"),
        (Filter::Nearest, 3, 9, "4a7fb4de134872a7dcb3e81d6398cd13487d1c5186e81d52b4e91e85baef6da2d7558abfee2358f2275cf62b60578cc177ace197cc01c0f52afc3166386da2295e9381b6ebd90e4392c7fc063b707aafe4"),
        (Filter::Bilinear, 5, 4, "6a838f7887927e7c867382897790767b86828c8d848d807e7f817f87909073937a80827190867f7c846d8a6a8083699284758a7a7980807c84816499"),
        (Filter::Bilinear, 8, 6, "32679c6f91917c88af8e937262678c6d79806485938ec3589a94757a7c7c787c97888e76757b93878a9287886e6f698e5a84848f8e929e8d7d8b867f8b866f8473798382968eb79978ad6c7b81758c7b6b89857d85977c62897da07d52745d92687a9e779777706f8992897293707e8b7a6983668b92689d99497e7e7cb19c5f89668b6b72748f6c98808a63986f6297"),
        (Filter::Bilinear, 7, 15, "174c815388bd97ccb6a15048255a8f699ea8a5da273d729d798c9376969e886d7d5f7f81697c9283b86276abc8b393534444796398cdb7b76c6848725085baa194767973796c8b948e73837695978e88716d6086a27f536071958faa9a9f68605d789e96a77e88656e506f8c87ab9caa797479948c94635c6287a49ebd8b5b868f9898889a827a8a898191796b7b7c8e8db8a494b1789e5e6875aa95b5645c6fa4a3bb7b5a6885ba7da8687e7e6f907870908f875a8f819b8753776086689d6c6b977196646085a0985a856485865c884d6e588d9772a56a718d7bb17a72858f4f846d819e5b8b6f789f708f7e777880a67283857d658c608e8d6fa49a619669699e91467b8179ae715b9099598e6885ba9151868976ab8c6e765c78897c937b7f6c9a7760958b477c9f7eb389897343787083b86d6d78a281487d"),
        (Filter::Bilinear, 20, 11, "00356a12477c2a5f944277ac5a8fc472a7dc8abff4a2d7acbae924d25a3c971f5408376c1a4f8432679c4a7fb46297cc7aafab92c71caadf14bcf1264277ac568bc072a7c58dc267a98e58b63e73585a8f4176905b8f80777d9b7b81b6699dd283b8799ea04eba436a6a5085366b9152877f6da29181b6a58dc26ba39682b16c92758b6675796b8b558a5f74a95e93947dae5b9c737a8d659a5284b96ea38f8da282ac75a1888b70758b549550736a5d923f74a97aaf41937b5ba2487d5b6ba0598e9c7caa899f90ab9e999187b84eaa7171985f7651825c6f6a7c796a9f5f8dc27aaf879dae64c167888d75795a8f6722578c3e739264939f8b9cc69eb894a9ce42d06d68a85a7e4b7f877287ad899f9092c62eb7694fa441694268725973947586bb7eade29ed39abaef536ca1d68bc07bb5ca1fdf4e499d3f7434699e5e93c888bd92b3e11ddd6547b43c7138669b5c91c686bba9b0e52dda7c44cb3a6f4f6499598ec378ade2b6eb4f75aa5a35647063749e7d977390b528be5b569d4f73497c84778cb295aa9ca5d9424f846a2e638c5d929b8aa44dae9022bd355077497e366ba05e936b578c8f578cad89be7575aa5a4977567b6c878a857d81b248b37a7aaf778d77a8836ba04c7a8241ab4a727f6f6e6c8c799d81aa9e528796285d4b80b57370a599698c839e6763987d4874a97d5e9387747474a652a98088b163988c4c81757f5c7f8e5eb568939950857a5489638abf8a76abb15b909685ba9f568b9c2e635c679c6b83b89f85baaa467b8b4b664e83745a8fad7c75aab5356a7a69735a8f92669bcb996398a93e7369497e667aaf6fa4d9d80d428b396e4176ab7db2e7ba82b7e32b6079679c6fa479a5da153b705224598e6196cb9dd26793c844295e805287bc8f8abfcb2055813d7234699e"),
        (Filter::Bicubic, 5, 4, "65828f7a87937b7d86707e8b7693737e8580908c868b827a808181899191709a7a80806e92897e7d84698c688283669685758c777a7d7f7c8681619c"),
        (Filter::Bicubic, 8, 6, "2965a17496907c87b490946d60648f6c787d5e80988fcb53a698747a777872789a878e75747b978a91958b88676a5c8f527e86949295a4927d8d857f8e846a856e758081a193c59c7bb667777c718d7b668d847f859d7d558e80ad80436f53926677a5759d73676b8c988b72996b808e77617f6393956ba09b447b7b7cb8a75b895a8e6872709369a1838e5b986e6196"),
        (Filter::Bicubic, 16, 12, "002e6314497d3468a5518bca71b2e99acfffb8ff43e964258c084f0038702157993e80b766a0e889bd76a7dc00c2f71f3165ad4d91d77bc58dada24fb23f7e386a9f53907f7c7c8f7b7abd69a4b78dbf42b84563544a9b327c9066a97992c69b86bf8daf93bb9aa771928d37a32a7526649a508f7b817d8f817ec76fafcb9bd854d55c7f726d5b5865666c50a23f78ccaae91de04c42762b791d6ba15c9abb91afe7a8e943df6c399b27641d5e805776b76caaf09ce962db9031ba26671e5c79194f6b43649d6596e48cd6b6c8e02cf83768565e8d5088cb85be89b0b710d616502e468b3882a978a8dda9cbc2bff4293b70cc76c167c48f67b65f855e937e9b80b68abb54b777679d5e7c5e8c7ca87aad84b73cb65e69865bb454afc8a6d9a79bcea57dbf42a2674e9e48775389729478af87b851b87968a964825296884189c788d461d98a32b545485e52934d92dbc4f52d366c6d2966b270b784a5bc09e222534e5585548ecfa3d19da0d82c0d42644b69b776c03dbf7f1eba1f662b52872a5e7b4e8dcfa2de828dc333154978628cc499dc35e77340b84a934ea39595c504e22d4768548154a4cba88ac1cd02374b9bdcab4e8d92635b4a99865587cdaf366d5f79659096a7c060a4972e5e4f8569a98cb7b536776d4d895394c8b480b5a57eb3a73266674c8b6188cbb77cb1ab2d646174634197ab776caaad41685b937a50a2cda660989f34695f588d61ade2e40035534d8255b3e8c399cee51d554684bda6e326417536114ca179babcc7fb23275b70499ddcb7689db9134828699e"),
        // The pass order: 12x3 and 20x4 run vertical first, 6x2 horizontal
        // first; each differs from the other order in places.
        (Filter::Bicubic, 12, 3, "54837c7f77a172967a8d72a06a9c9899876774639864917e8c718f668b8f85827079ac7d6ca67e7888738e83877e93699a7b83908a7a978c7b70807676867e9a875b916e9d798e8f87728e765e8a76a295885f8c85716d7494748c649e78945a7880898b6689885a8b7a66a1"),
        (Filter::Bicubic, 20, 4, "467f7e5c789b747aae69a375818a759a5e9b627cbf5ba19e81b458a76a708e51964477b0579d7f7c966d995e976d769b558e857e8457809c6a79b2845d9878798b73977b778673a07e8d8e84a76ba6799a99828e73a85e9f74889a7089659c5d8a747c92689266918a8095759a887a9472ad83969975b87e79b781669f7f5d857c938d7a7f956657905796628596717d6ea359aa7b8fb57b9783a86a568e685a7b709780779b7f56937755906793826098775e8e9060978c4f8b814e856b9aa37c95aa99639e904c8e826f6b73a84d65848a7260a692548e86945b75a85f6c74a98563a5935a918352877a689d757cb1"),
        (Filter::Bicubic, 6, 2, "6d878482868a8b8a81787c827e8283819280797f86827f83887f7881847b837a7a866794"),
        (Filter::Lanczos, 12, 3, "547e7e7f78a1729579916da963a699a0865e70599f5f977e90718e63899684846d7ab07b6bac7c7e85768888807e91699979828f897ca08e7d6c826f7980859a8c53926ca1788a91876e8e71618b77a893885590837568719a708f5ba97699537584878d638e895a857a63a2"),
        ];
        for (filter, w, h, hex) in cases {
            let expected: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
            let got = resize(&pattern(), w, h, filter);
            assert_eq!(got.as_raw(), &expected, "{filter:?} 13x9 -> {w}x{h}");
        }
    }

    #[test]
    fn nearest_positions_accumulate_and_stay_in_range() {
        assert_eq!(nearest_indices(4, 8), vec![0, 0, 1, 1, 2, 2, 3, 3]);
        assert_eq!(nearest_indices(13, 5), vec![1, 3, 6, 9, 11]);
        for (i, o) in [(3, 1000), (1000, 3), (7, 7), (1, 5)] {
            assert!(nearest_indices(i, o).iter().all(|&x| x < i));
        }
        assert_eq!(Filter::from_pil_code(0), Some(Filter::Nearest));
    }
}
