//! The templating step that specialises a WGSL file for its dtypes and
//! constants.
//!
//! A kernel file names its tensors by binding (`a`, `b`, `out`, ...) and
//! reads and writes them only through accessors generated here for the
//! dtype each binding has in this instance:
//!
//! - `<x>_f(i) -> f32`: element `i` in the float domain (integers convert
//!   through i64 to f32, rounded to nearest even),
//! - `<x>_i(i) -> vec2<u32>`: element `i` as an i64 (floats truncate),
//! - `<x>_b(i) -> vec2<u32>`: the raw bits of element `i`.
//!
//! The output binding gets `out_put_f/i/b(i, v, &acc)` and `out_flush(t, acc)`
//! and the constant `OUT_C`: one invocation owns `OUT_C` consecutive output
//! elements (4 for 8-bit dtypes, 2 for 16-bit, 1 otherwise), which makes
//! every written `u32` word belong to one invocation: packed half-precision
//! and byte outputs need no atomics. Sub-word elements are merged into `acc`
//! and written by `out_flush`.
//!
//! Other specialisation is textual: `{{NAME}}` in a kernel file is replaced
//! by the value given for `NAME`; a missing value is an error.

use std::fmt::Write;
use tessera_tensor::DType;

/// Elements of `dtype` per 32-bit word (1 for 32- and 64-bit types).
pub fn per_word(dtype: DType) -> u32 {
    match dtype.size_in_bytes() {
        1 => 4,
        2 => 2,
        _ => 1,
    }
}

/// Words a storage of `len` elements of `dtype` needs.
pub fn words_for(dtype: DType, len: usize) -> usize {
    match dtype.size_in_bytes() {
        1 => len.div_ceil(4),
        2 => len.div_ceil(2),
        4 => len,
        _ => len * 2,
    }
}

/// WGSL converting the float `v` to the bits of `dtype`.
fn encode_float(dtype: DType, v: &str) -> String {
    match dtype {
        DType::F32 => format!("bitcast<u32>({v})"),
        DType::F16 => format!("f32_to_f16({v})"),
        DType::BF16 => format!("f32_to_bf16({v})"),
        DType::F8E4M3 => format!("f32_to_f8e4m3({v})"),
        DType::F8E5M2 => format!("f32_to_f8e5m2({v})"),
        _ => unreachable!("{dtype} is not a float"),
    }
}

/// WGSL converting the bits `h` of a float `dtype` to f32.
fn decode_float(dtype: DType, h: &str) -> String {
    match dtype {
        DType::F32 => format!("bitcast<f32>({h})"),
        DType::F16 => format!("f16_to_f32({h})"),
        DType::BF16 => format!("bf16_to_f32({h})"),
        DType::F8E4M3 => format!("f8e4m3_to_f32({h})"),
        DType::F8E5M2 => format!("f8e5m2_to_f32({h})"),
        _ => unreachable!("{dtype} is not a float"),
    }
}

/// Elements of `dtype` in one 16-byte run (a `vec4<u32>` view element),
/// for the float dtypes kernels read in runs (f32, f16, bf16).
pub fn run_elements(dtype: DType) -> Option<u32> {
    match dtype {
        DType::F32 => Some(4),
        DType::F16 | DType::BF16 => Some(8),
        _ => None,
    }
}

/// WGSL decoding element `e` of the 16-byte run `w` (a `vec4<u32>`) of
/// `dtype` to f32; `None` for dtypes without [`run_elements`].
pub fn run_element(dtype: DType, w: &str, e: &str) -> Option<String> {
    match dtype {
        DType::F32 => Some(decode_float(dtype, &format!("{w}[{e}]"))),
        DType::F16 | DType::BF16 => Some(decode_float(dtype, &format!("(({w}[{e} >> 1u] >> (({e} & 1u) << 4u)) & 0xffffu)"))),
        _ => None,
    }
}

/// Accessors `<name>_b/_f/_i` for an input binding of `dtype`.
pub fn input_accessors(name: &str, dtype: DType) -> String {
    let mut s = String::new();
    // Raw bits.
    let bits = match dtype.size_in_bytes() {
        1 => format!("vec2<u32>(({name}[i >> 2u] >> ((i & 3u) << 3u)) & 0xffu, 0u)"),
        2 => format!("vec2<u32>(({name}[i >> 1u] >> ((i & 1u) << 4u)) & 0xffffu, 0u)"),
        4 => format!("vec2<u32>({name}[i], 0u)"),
        _ => format!("vec2<u32>({name}[2u * i], {name}[2u * i + 1u])"),
    };
    let _ = writeln!(s, "fn {name}_b(i: u32) -> vec2<u32> {{ return {bits}; }}");
    if dtype.is_float() {
        let _ = writeln!(s, "fn {name}_f(i: u32) -> f32 {{ return {}; }}", decode_float(dtype, &format!("{name}_b(i).x")));
        let _ = writeln!(s, "fn {name}_i(i: u32) -> vec2<u32> {{ return f32_to_i64({name}_f(i)); }}");
    } else {
        let _ = writeln!(s, "fn {name}_i(i: u32) -> vec2<u32> {{ return {name}_b(i); }}");
        let _ = writeln!(s, "fn {name}_f(i: u32) -> f32 {{ return i64_to_f32({name}_i(i)); }}");
    }
    s
}

/// `OUT_C`, the store accessors and `out_flush` for the output binding `out`.
pub fn output_accessors(dtype: DType) -> String {
    let mut s = String::new();
    let c = per_word(dtype);
    let _ = writeln!(s, "const OUT_C: u32 = {c}u;");
    // Every store goes through the raw-bits form.
    let put_bits = match dtype.size_in_bytes() {
        1 => "let sh = (i & 3u) << 3u; *acc = (*acc & ~(0xffu << sh)) | ((v.x & 0xffu) << sh);",
        2 => "let sh = (i & 1u) << 4u; *acc = (*acc & ~(0xffffu << sh)) | ((v.x & 0xffffu) << sh);",
        4 => "out[i] = v.x;",
        _ => "out[2u * i] = v.x; out[2u * i + 1u] = v.y;",
    };
    let _ = writeln!(s, "fn out_put_b(i: u32, v: vec2<u32>, acc: ptr<function, u32>) {{ {put_bits} }}");
    if dtype.is_float() {
        let _ = writeln!(
            s,
            "fn out_put_f(i: u32, v: f32, acc: ptr<function, u32>) {{ out_put_b(i, vec2<u32>({}, 0u), acc); }}",
            encode_float(dtype, "v")
        );
        let _ = writeln!(s, "fn out_put_i(i: u32, v: vec2<u32>, acc: ptr<function, u32>) {{ out_put_f(i, i64_to_f32(v), acc); }}");
    } else {
        // Integers wrap: the store keeps the low bits.
        let _ = writeln!(s, "fn out_put_i(i: u32, v: vec2<u32>, acc: ptr<function, u32>) {{ out_put_b(i, v, acc); }}");
        // Floats convert by truncation, saturating at the type's range (as
        // Rust's `as`); NaN gives 0.
        let to_int = match dtype {
            DType::U8 => "vec2<u32>(select(u32(clamp(trunc(v), 0.0, 255.0)), 0u, is_nan(v)), 0u)",
            DType::U32 => "vec2<u32>(select(select(u32(max(trunc(v), 0.0)), 0xffffffffu, v >= 4294967296.0), 0u, is_nan(v)), 0u)",
            _ => "f32_to_i64(v)",
        };
        let _ = writeln!(s, "fn out_put_f(i: u32, v: f32, acc: ptr<function, u32>) {{ out_put_i(i, {to_int}, acc); }}");
    }
    let flush = if c > 1 { "out[t] = acc;" } else { "" };
    let _ = writeln!(s, "fn out_flush(t: u32, acc: u32) {{ {flush} }}");
    // The word `t` as it is now (to merge into, for partial writes).
    let _ = writeln!(s, "fn out_word(t: u32) -> u32 {{ {} }}", if c > 1 { "return out[t];" } else { "return 0u;" });
    s
}

/// Replaces every `{{NAME}}` in `src` by its value.
pub fn substitute(file: &str, src: &str, defs: &[(&str, String)]) -> Result<String, String> {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| format!("{file}: unterminated '{{{{'"))?;
        let key = after[..end].trim();
        let value = defs.iter().find(|(k, _)| *k == key).ok_or_else(|| format!("{file}: no value for '{{{{{key}}}}}'"))?;
        out.push_str(&value.1);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitute_replaces_and_reports_missing() {
        let s = substitute("x.wgsl", "const T: u32 = {{ TILE }}u; {{OP}}", &[("TILE", "16".into()), ("OP", "a + b".into())]).unwrap();
        assert_eq!(s, "const T: u32 = 16u; a + b");
        let e = substitute("x.wgsl", "{{MISSING}}", &[]).unwrap_err();
        assert!(e.contains("MISSING"), "{e}");
        assert!(substitute("x.wgsl", "{{OPEN", &[]).is_err());
    }

    #[test]
    fn words_cover_packed_elements() {
        assert_eq!(words_for(DType::F16, 3), 2);
        assert_eq!(words_for(DType::U8, 5), 2);
        assert_eq!(words_for(DType::I64, 3), 6);
        assert_eq!(words_for(DType::F32, 0), 0);
    }

    #[test]
    fn runs_decode_the_float_dtypes_only() {
        assert_eq!(run_elements(DType::F16), Some(8));
        assert_eq!(run_element(DType::F32, "w", "e").as_deref(), Some("bitcast<f32>(w[e])"));
        assert!(run_element(DType::BF16, "w", "e").unwrap().starts_with("bf16_to_f32("));
        assert!(run_element(DType::I64, "w", "e").is_none() && run_elements(DType::U8).is_none());
    }
}
