// onnxruntime-node peer for bench/kernels.ts (CPU execution provider, MLAS): a one-node MatMul graph,
// C = A·B with both operands as inputs, for the sgemm cubes and gemv (x[1×n]·W[n×n]).
// The ONNX model bytes are written here by a small protobuf encoder (no onnx package needed).
// Prints one JSON object. Usage: node ort_kernels.mjs <threads> <seconds> <sgemm sizes> <gemv n>
import ort from 'onnxruntime-node';

const threads = Number(process.argv[2] ?? 1);
const budget = Number(process.argv[3] ?? 1);
const sizes = (process.argv[4] ?? '256').split(',').filter(Boolean).map(Number);
const gemvN = Number(process.argv[5] ?? 4096);

// Protobuf wire format: varints, and length-delimited fields (wire type 2) for strings and messages.
const varint = (n) => {
  const out = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
};
const int = (field, n) => [...varint((field << 3) | 0), ...varint(n)];
const bytes = (field, data) => [...varint((field << 3) | 2), ...varint(data.length), ...data];
const str = (field, s) => bytes(field, [...new TextEncoder().encode(s)]);

/** ValueInfoProto: name, TypeProto{tensor_type{elem_type FLOAT, shape{dim{dim_value}}}}. */
const valueInfo = (name, dims) =>
  [...str(1, name), ...bytes(2, bytes(1, [...int(1, 1), ...bytes(2, dims.flatMap((d) => bytes(1, int(1, d))))]))];

function matMulModel(m, k, n) {
  const node = [...str(1, 'A'), ...str(1, 'B'), ...str(2, 'C'), ...str(4, 'MatMul')];
  const graph = [...bytes(1, node), ...str(2, 'matmul'), ...bytes(11, valueInfo('A', [m, k])), ...bytes(11, valueInfo('B', [k, n])), ...bytes(12, valueInfo('C', [m, n]))];
  const opset = [...str(1, ''), ...int(2, 17)];
  return Uint8Array.from([...int(1, 8), ...str(2, 'loom-bench'), ...bytes(8, opset), ...bytes(7, graph)]);
}

function random(n, seed) {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
}

/**
 * [median ms, best (minimum) ms, sample count] per call; each sample is one call. The first call is a warm-up unless
 * it alone exceeds the budget (then it is the only sample). The best is kept because the VM alternates fast and slow
 * host phases.
 */
async function timed(fn) {
  let t0 = performance.now();
  await fn();
  const first = performance.now() - t0;
  if (first >= budget * 1000) return [first, first, 1];
  const samples = [];
  const deadline = performance.now() + budget * 1000;
  while (performance.now() < deadline || samples.length < 3) {
    t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  samples.sort((x, y) => x - y);
  return [samples[samples.length >> 1], samples[0], samples.length];
}

const options = { executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' };
const cases = [];
const shapes = [...sizes.map((n) => [`sgemm ${n}³`, n, n, n]), [`gemv ${gemvN}²`, 1, gemvN, gemvN]];
for (const [label, m, n, k] of shapes) {
  const session = await ort.InferenceSession.create(matMulModel(m, k, n), options);
  const feeds = { A: new ort.Tensor('float32', random(m * k, 1), [m, k]), B: new ort.Tensor('float32', random(k * n, 2), [k, n]) };
  const [ms, best, samples] = await timed(() => session.run(feeds));
  cases.push({ case: label, ms, gflops: (2 * m * n * k) / (ms * 1e6), best_ms: best, best_gflops: (2 * m * n * k) / (best * 1e6), samples });
  await session.release();
}
console.log(JSON.stringify({ peer: 'onnxruntime-node', version: ort.env.versions?.common ?? 'unknown', threads, execution_provider: 'cpu', cases }));
