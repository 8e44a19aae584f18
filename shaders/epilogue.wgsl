// epilogue.wgsl: what the matmul kernels (matmul.wgsl, matmul_rt.wgsl)
// store for the f32 accumulator `v` of C[batch][r][c], applied in registers
// before the store so that a layer's bias and activation cost no pass of
// their own and the result is rounded once.
//
// `{{EPILOGUE}}` is the host's statement: `return v;` for a plain product,
// or e.g. `let x = v + bias_f(bias_at(batch, r, c)); return gelu_f(x);`
// (the activations are the functions of math.wgsl).
// Layouts: with a bias, operand(2) holds its offset and its strides over
// the merged batch dims (as operand(0/1) do for A and B), and the two words
// after that record, p[operand(3)] and p[operand(3) + 1], its strides along
// the rows and the columns of C: a layer's bias [n] steps along columns
// (rows 0), a convolution's per output channel along rows.

fn bias_at(batch: u32, r: u32, c: u32) -> u32 {
    return offset_of(operand(2u), batch) + r * p[operand(3u)] + c * p[operand(3u) + 1u];
}

fn epilogue(v: f32, batch: u32, r: u32, c: u32) -> f32 {
    {{EPILOGUE}}
}
