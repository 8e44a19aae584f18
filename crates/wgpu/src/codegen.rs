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
//! - `<x>_b(i) -> vec2<u32>`: the raw bits of element `i`,
//! - `<x>_round(v: f32) -> f32` (float dtypes): `v` rounded to the dtype
//!   (what storing and reloading it gives).
//!
//! An input bound a second time as `array<vec4<u32>>` (a run view `<x>4`)
//! gets `<x>4_run_f(w, e) -> f32`: element `e` of the 16-byte run `w`.
//!
//! An output binding (`out`, and any further outputs by their names) gets
//! `<o>_put_f/i/b(i, v, &acc)`, `<o>_flush(t, acc)`, `<o>_word(t)` and the
//! constant `<O>_C`: one invocation owns `<O>_C` consecutive output elements
//! (4 for 8-bit dtypes, 2 for 16-bit, 1 otherwise), which makes every
//! written `u32` word belong to one invocation: packed half-precision and
//! byte outputs need no atomics. Sub-word elements are merged into `acc`
//! and written by `<o>_flush`.
//!
//! These accessors and the conversions in common.wgsl they call are the
//! one place that knows how each dtype is stored: a new dtype is a row in
//! [`encode_float`]/[`decode_float`] (or the integer cases) and its
//! conversion functions in common.wgsl; no kernel file changes.
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

/// WGSL of the raw bits (a `vec2<u32>`) of element `e` of packed words `w`
/// of `dtype` (a binding's `array<u32>` or a 16-byte run's `vec4<u32>`).
fn element_bits(dtype: DType, w: &str, e: &str) -> String {
    match dtype.size_in_bytes() {
        1 => format!("vec2<u32>(({w}[{e} >> 2u] >> (({e} & 3u) << 3u)) & 0xffu, 0u)"),
        2 => format!("vec2<u32>(({w}[{e} >> 1u] >> (({e} & 1u) << 4u)) & 0xffffu, 0u)"),
        4 => format!("vec2<u32>({w}[{e}], 0u)"),
        _ => format!("vec2<u32>({w}[2u * {e}], {w}[2u * {e} + 1u])"),
    }
}

/// WGSL converting the raw bits `b` (a `vec2<u32>`) of `dtype` to f32.
fn bits_to_f32(dtype: DType, b: &str) -> String {
    if dtype.is_float() {
        decode_float(dtype, &format!("{b}.x"))
    } else {
        format!("i64_to_f32({b})")
    }
}

/// `<name>_run_f(w, e)` for a run view `name` of an input of `dtype`.
pub fn run_accessors(name: &str, dtype: DType) -> String {
    let mut s = String::new();
    let value = bits_to_f32(dtype, &element_bits(dtype, "w", "e"));
    let _ = writeln!(s, "fn {name}_run_f(w: vec4<u32>, e: u32) -> f32 {{ return {value}; }}");
    s
}
/// Accessors `<name>_b/_f/_i` for an input binding of `dtype`.
pub fn input_accessors(name: &str, dtype: DType) -> String {
    let mut s = String::new();
    // Raw bits.
    let bits = element_bits(dtype, name, "i");
    let _ = writeln!(s, "fn {name}_b(i: u32) -> vec2<u32> {{ return {bits}; }}");
    if dtype.is_float() {
        let _ = writeln!(s, "fn {name}_f(i: u32) -> f32 {{ return {}; }}", bits_to_f32(dtype, &format!("{name}_b(i)")));
        let _ = writeln!(s, "fn {name}_i(i: u32) -> vec2<u32> {{ return f32_to_i64({name}_f(i)); }}");
        let _ = writeln!(s, "fn {name}_round(v: f32) -> f32 {{ return {}; }}", decode_float(dtype, &encode_float(dtype, "v")));
    } else {
        let _ = writeln!(s, "fn {name}_i(i: u32) -> vec2<u32> {{ return {name}_b(i); }}");
        let _ = writeln!(s, "fn {name}_f(i: u32) -> f32 {{ return i64_to_f32({name}_i(i)); }}");
    }
    s
}

/// `<O>_C`, the store accessors and `<o>_flush` for the output binding `o`
/// (`out` for the main output).
pub fn output_accessors(o: &str, dtype: DType) -> String {
    let mut s = String::new();
    let c = per_word(dtype);
    let _ = writeln!(s, "const {}_C: u32 = {c}u;", o.to_uppercase());
    // Every store goes through the raw-bits form.
    let put_bits = match dtype.size_in_bytes() {
        1 => "let sh = (i & 3u) << 3u; *acc = (*acc & ~(0xffu << sh)) | ((v.x & 0xffu) << sh);".to_string(),
        2 => "let sh = (i & 1u) << 4u; *acc = (*acc & ~(0xffffu << sh)) | ((v.x & 0xffffu) << sh);".to_string(),
        4 => format!("{o}[i] = v.x;"),
        _ => format!("{o}[2u * i] = v.x; {o}[2u * i + 1u] = v.y;"),
    };
    let _ = writeln!(s, "fn {o}_put_b(i: u32, v: vec2<u32>, acc: ptr<function, u32>) {{ {put_bits} }}");
    if dtype.is_float() {
        let _ = writeln!(
            s,
            "fn {o}_put_f(i: u32, v: f32, acc: ptr<function, u32>) {{ {o}_put_b(i, vec2<u32>({}, 0u), acc); }}",
            encode_float(dtype, "v")
        );
        let _ = writeln!(s, "fn {o}_put_i(i: u32, v: vec2<u32>, acc: ptr<function, u32>) {{ {o}_put_f(i, i64_to_f32(v), acc); }}");
    } else {
        // Integers wrap: the store keeps the low bits.
        let _ = writeln!(s, "fn {o}_put_i(i: u32, v: vec2<u32>, acc: ptr<function, u32>) {{ {o}_put_b(i, v, acc); }}");
        // Floats convert by truncation, saturating at the type's range (as
        // Rust's `as`); NaN gives 0.
        let to_int = match dtype {
            DType::U8 => "vec2<u32>(select(u32(clamp(trunc(v), 0.0, 255.0)), 0u, is_nan(v)), 0u)",
            DType::U32 => "vec2<u32>(select(select(u32(max(trunc(v), 0.0)), 0xffffffffu, v >= 4294967296.0), 0u, is_nan(v)), 0u)",
            _ => "f32_to_i64(v)",
        };
        let _ = writeln!(s, "fn {o}_put_f(i: u32, v: f32, acc: ptr<function, u32>) {{ {o}_put_i(i, {to_int}, acc); }}");
    }
    let flush = if c > 1 { format!("{o}[t] = acc;") } else { String::new() };
    let _ = writeln!(s, "fn {o}_flush(t: u32, acc: u32) {{ {flush} }}");
    // The word `t` as it is now (to merge into, for partial writes).
    let _ = writeln!(s, "fn {o}_word(t: u32) -> u32 {{ {} }}", if c > 1 { format!("return {o}[t];") } else { "return 0u;".into() });
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
    fn runs_decode_through_the_dtype_conversions() {
        assert_eq!(run_elements(DType::F16), Some(8));
        assert!(run_elements(DType::I64).is_none() && run_elements(DType::U8).is_none());
        assert!(run_accessors("a4", DType::F32)
            .contains("fn a4_run_f(w: vec4<u32>, e: u32) -> f32 { return bitcast<f32>(vec2<u32>(w[e], 0u).x); }"));
        assert!(run_accessors("b4", DType::BF16).contains("bf16_to_f32("));
    }

    #[test]
    fn floats_round_and_outputs_are_named() {
        assert!(input_accessors("a", DType::F16).contains("fn a_round(v: f32) -> f32 { return f16_to_f32(f32_to_f16(v)); }"));
        assert!(!input_accessors("a", DType::U8).contains("_round"));
        let sum = output_accessors("sum", DType::BF16);
        assert!(sum.contains("const SUM_C: u32 = 2u;") && sum.contains("fn sum_flush(t: u32, acc: u32) { sum[t] = acc; }"));
        assert!(output_accessors("out", DType::F32).contains("out[i] = v.x;"));
    }
}
