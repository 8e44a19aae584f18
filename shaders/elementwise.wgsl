// elementwise.wgsl: unary, affine, binary, comparison, where, cast and copy.
//
// Algorithm: one invocation per output word (OUT_C consecutive elements, see
// codegen.rs), so packed 8- and 16-bit outputs need no atomics. Each element
// finds its operands through their strided layouts (`offset_of`), which
// covers transposes, slices with steps and broadcasts (stride 0).
// Layouts: any strided input (records operand(0), operand(1), ...); the
// output is contiguous. `{{BODY}}` is the per-element statement the host
// generates from the op and the dtypes, e.g.
// `out_put_f(i, gelu_f(a_f(offset_of(operand(0u), i))), acc);`; map.wgsl
// supplies the entry point and math.wgsl the float functions.
// Limits: 2^32 - 1 elements; float math in f32, integer math in i64.

fn element(i: u32, acc: ptr<function, u32>) {
    {{BODY}}
}
