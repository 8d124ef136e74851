/**
 * Pure-TypeScript reference GEMM. Every output element is one dot product summed in float64 in
 * ascending k, then rounded once to float32: the result does not depend on blocking or on how
 * rows are split across threads, which is what makes runs bit-reproducible.
 */

/** C[M×N] = A[M×K] · B[N×K]ᵀ (+ bias[N]); with `accumulate`, adds into C. */
export function gemmABt(
  A: Float32Array,
  B: Float32Array,
  C: Float32Array,
  M: number,
  N: number,
  K: number,
  bias: Float32Array | null = null,
  accumulate = false,
): void {
  let i = 0;
  for (; i + 4 <= M; i += 4) {
    const a0 = i * K;
    const a1 = a0 + K;
    const a2 = a1 + K;
    const a3 = a2 + K;
    let j = 0;
    for (; j + 4 <= N; j += 4) {
      const b0 = j * K;
      const b1 = b0 + K;
      const b2 = b1 + K;
      const b3 = b2 + K;
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
      let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
      let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
      for (let k = 0; k < K; k++) {
        const x0 = A[a0 + k], x1 = A[a1 + k], x2 = A[a2 + k], x3 = A[a3 + k];
        const y0 = B[b0 + k], y1 = B[b1 + k], y2 = B[b2 + k], y3 = B[b3 + k];
        c00 += x0 * y0; c01 += x0 * y1; c02 += x0 * y2; c03 += x0 * y3;
        c10 += x1 * y0; c11 += x1 * y1; c12 += x1 * y2; c13 += x1 * y3;
        c20 += x2 * y0; c21 += x2 * y1; c22 += x2 * y2; c23 += x2 * y3;
        c30 += x3 * y0; c31 += x3 * y1; c32 += x3 * y2; c33 += x3 * y3;
      }
      store4(C, i * N + j, c00, c01, c02, c03, bias, j, accumulate);
      store4(C, (i + 1) * N + j, c10, c11, c12, c13, bias, j, accumulate);
      store4(C, (i + 2) * N + j, c20, c21, c22, c23, bias, j, accumulate);
      store4(C, (i + 3) * N + j, c30, c31, c32, c33, bias, j, accumulate);
    }
    for (; j < N; j++) {
      const b0 = j * K;
      let c0 = 0, c1 = 0, c2 = 0, c3 = 0;
      for (let k = 0; k < K; k++) {
        const y = B[b0 + k];
        c0 += A[a0 + k] * y;
        c1 += A[a1 + k] * y;
        c2 += A[a2 + k] * y;
        c3 += A[a3 + k] * y;
      }
      store1(C, i * N + j, c0, bias, j, accumulate);
      store1(C, (i + 1) * N + j, c1, bias, j, accumulate);
      store1(C, (i + 2) * N + j, c2, bias, j, accumulate);
      store1(C, (i + 3) * N + j, c3, bias, j, accumulate);
    }
  }
  for (; i < M; i++) {
    const a0 = i * K;
    for (let j = 0; j < N; j++) {
      const b0 = j * K;
      let c = 0;
      for (let k = 0; k < K; k++) c += A[a0 + k] * B[b0 + k];
      store1(C, i * N + j, c, bias, j, accumulate);
    }
  }
}

function store4(
  C: Float32Array,
  o: number,
  v0: number,
  v1: number,
  v2: number,
  v3: number,
  bias: Float32Array | null,
  j: number,
  accumulate: boolean,
): void {
  store1(C, o, v0, bias, j, accumulate);
  store1(C, o + 1, v1, bias, j + 1, accumulate);
  store1(C, o + 2, v2, bias, j + 2, accumulate);
  store1(C, o + 3, v3, bias, j + 3, accumulate);
}

function store1(C: Float32Array, o: number, v: number, bias: Float32Array | null, j: number, accumulate: boolean): void {
  if (bias) v += bias[j];
  C[o] = accumulate ? C[o] + v : v;
}

/** out[c×r] = in[r×c]ᵀ */
export function transpose(input: Float32Array, rows: number, cols: number, out = new Float32Array(rows * cols)): Float32Array {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = input[base + c];
  }
  return out;
}

/** out[j] = Σ_i in[i×cols + j], summed in ascending i. */
export function sumRows(input: Float32Array, rows: number, cols: number, out: Float32Array = new Float32Array(cols)): Float32Array {
  const acc = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) acc[c] += input[base + c];
  }
  for (let c = 0; c < cols; c++) out[c] = acc[c];
  return out;
}
