import { spawnSync } from 'node:child_process';
import { raiseAllocatorThresholds } from './allocator.js';
import { ONE_CALL_LEGEND } from './phases.js';
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { gemmABt as gemmABtTs } from '../src/kernels/gemm.js';
import { createKernelPool } from '../src/kernels/pool.js';
import { QuantArena, panelBytes, placePanels } from '../src/kernels/quantWasm.js';
import { loadWasmKernelsSync } from '../src/kernels/wasm.js';

/**
 * GEMM kernel benchmark: float32 sgemm n³ and gemv for the Loom TS reference, the Loom WebAssembly
 * SIMD128 kernels, PyTorch CPU (1 and 2 threads) and TensorFlow.js (wasm backend), measured in the
 * same run. Prints a table to stderr and one JSON document to stdout.
 * Env: BENCH_SECONDS (per-case budget, default 1), BENCH_SIZES (default 256,1024,2048), BENCH_GEMV (default 4096).
 */
raiseAllocatorThresholds();
const PYTHON = '/usr/bin/python3';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PEERS = `${ROOT}bench/peers/`;
const budget = Number(process.env.BENCH_SECONDS ?? 1);
const sizes = (process.env.BENCH_SIZES ?? '256,1024,2048').split(',').filter(Boolean).map(Number);
const gemvN = Number(process.env.BENCH_GEMV ?? 4096);

interface CaseResult {
  case: string;
  /** Median ms per call over the timed samples. */
  ms: number;
  gflops: number;
  /** Best (minimum) ms per call over the same samples: robust to this VM's slow host phases. */
  best_ms: number;
  best_gflops: number;
  samples: number;
  [extra: string]: unknown;
}

interface EngineResult {
  engine: string;
  detail?: Record<string, unknown>;
  cases?: CaseResult[];
  error?: string;
}

/**
 * [median ms, best ms, sample count] per call; each sample is one call. The first call is a warm-up unless it
 * alone exceeds the budget (then it is the only sample, median and best alike). The best (minimum) sample is
 * kept next to the median because this VM's host alternates fast and slow phases for seconds to minutes.
 */
function timed(fn: () => void): [number, number, number] {
  let t0 = performance.now();
  fn();
  const first = performance.now() - t0;
  if (first >= budget * 1000) return [first, first, 1];
  const samples: number[] = [];
  const deadline = performance.now() + budget * 1000;
  while (performance.now() < deadline || samples.length < 3) {
    t0 = performance.now();
    fn();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return [samples[samples.length >> 1], samples[0], samples.length];
}

function random(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
}

/** Each shape as [label, M, N, K]: the sgemm cubes, then gemv as M = 1. */
const shapes: [string, number, number, number][] = [
  ...sizes.map((n): [string, number, number, number] => [`sgemm ${n}³`, n, n, n]),
  [`gemv ${gemvN}²`, 1, gemvN, gemvN],
];

function measure(label: string, M: number, N: number, K: number, fn: () => void): CaseResult {
  const [ms, best, samples] = timed(fn);
  const flop = 2 * M * N * K;
  return { case: label, ms, gflops: flop / (ms * 1e6), best_ms: best, best_gflops: flop / (best * 1e6), samples };
}

function loomTs(): EngineResult {
  const cases = shapes.map(([label, M, N, K]) => {
    const A = random(M * K, 1);
    const B = random(N * K, 2);
    const C = new Float32Array(M * N);
    return measure(label, M, N, K, () => gemmABtTs(A, B, C, M, N, K));
  });
  return { engine: 'loom-ts', detail: { what: 'src/kernels/gemm.ts gemmABt, float64 accumulation, 1 thread' }, cases };
}

/** Two timings per shape: the full call as the engine makes it (copies in and out included), and the kernel on staged operands. */
function loomWasm(): EngineResult[] {
  const k = loadWasmKernelsSync();
  if (!k) return [{ engine: 'loom-wasm', error: 'dist/src/kernels/loom-kernels.wasm did not load (npm run build:wasm)' }];
  const full: CaseResult[] = [];
  const kernel: CaseResult[] = [];
  for (const [label, M, N, K] of shapes) {
    const A = random(M * K, 1);
    const B = random(N * K, 2);
    const C = new Float32Array(M * N);
    full.push(measure(label, M, N, K, () => k.gemm(A, B, C, M, N, K)));
    const staged = k.stage(A, B, M, N, K, { a: 'mk', b: 'nk' }, null);
    if (staged) kernel.push(measure(label, M, N, K, () => staged.run()));
  }
  const what = 'assembly/kernels.ts, WebAssembly SIMD128 2×16 tile, float32 accumulation, 1 thread';
  return [
    { engine: 'loom-wasm', detail: { what: `${what}; A·Bᵀ call incl. copies into and out of linear memory` }, cases: full },
    { engine: 'loom-wasm kernel', detail: { what: `${what}; operands already in linear memory` }, cases: kernel },
  ];
}

/**
 * gemv with the matrix kept resident as 16-row panels (QuantArena.panelGemm: what DecodeSession runs
 * after quantizeNetwork(net, 'float32')), the call including the copies of x in and y out.
 */
function loomPanels(): EngineResult {
  const arena = QuantArena.create(panelBytes(gemvN, gemvN), gemvN, gemvN);
  if (!arena) return { engine: 'loom-wasm panels', error: 'the WebAssembly kernels did not load' };
  const W = random(gemvN * gemvN, 2);
  const at = placePanels(arena, W, gemvN, gemvN);
  const x = random(gemvN, 1);
  const y = new Float32Array(gemvN);
  const cases = [measure(`gemv ${gemvN}²`, 1, gemvN, gemvN, () => arena.panelGemm(at, gemvN, gemvN, x, 1, y, null))];
  return { engine: 'loom-wasm panels', detail: { what: 'assembly/kernels.ts panelGemm: W resident in 16-row k-major panels (inference weights), gemm\'s bits; call incl. copies of x and y' }, cases };
}

/** The thread pool on the same calls as 'loom-wasm' (copies in and out included), after one warm-up product per shape. */
async function loomThreads(threads: number): Promise<EngineResult> {
  let pool;
  try {
    pool = await createKernelPool(threads);
  } catch (e) {
    return { engine: `loom-wasm ${threads}T`, error: String(e) };
  }
  const cases: CaseResult[] = [];
  for (const [label, M, N, K] of shapes) {
    const A = random(M * K, 1);
    const B = random(N * K, 2);
    const C = new Float32Array(M * N);
    cases.push(measure(label, M, N, K, () => pool.gemm(A, B, C, M, N, K)));
  }
  pool.close();
  return { engine: `loom-wasm ${threads}T`, detail: { what: `src/kernels/pool.ts: ${threads} threads (worker_threads, shared memory), output tiles; A·Bᵀ call incl. copies` }, cases };
}

function child(engine: string, command: string, args: string[], timeoutS: number): EngineResult {
  if (!existsSync(command) && command.startsWith('/')) return { engine, error: `${command} not found` };
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: timeoutS * 1000, cwd: ROOT, maxBuffer: 1 << 20 });
  if (r.status !== 0) return { engine, error: (r.stderr || r.error?.message || 'failed').trim().split('\n').pop() };
  const out = JSON.parse(r.stdout) as { cases: CaseResult[] } & Record<string, unknown>;
  const { cases, ...detail } = out;
  return { engine, detail, cases };
}

function torch(threads: number): EngineResult {
  const timeout = 60 + 20 * budget * shapes.length;
  return child(`pytorch ${threads}T`, PYTHON, [`${PEERS}torch_kernels.py`, String(threads), String(budget), sizes.join(','), String(gemvN)], timeout);
}

function ort(threads: number): EngineResult {
  const timeout = 60 + 20 * budget * shapes.length;
  return child(`onnxruntime ${threads}T`, process.execPath, [`${PEERS}ort_kernels.mjs`, String(threads), String(budget), sizes.join(','), String(gemvN)], timeout);
}

function tfjs(): EngineResult {
  const timeout = 60 + 20 * budget * shapes.length;
  return child('tfjs-wasm', process.execPath, [`${PEERS}tfjs_kernels.mjs`, String(budget), sizes.join(','), String(gemvN)], timeout);
}

/**
 * This core's WebAssembly SIMD128 multiply+add throughput (assembly/kernels.ts simdPeak: as many f32x4
 * multiplies as adds, no memory traffic): the ceiling any WebAssembly GEMM kernel here can approach
 * without FMA (relaxed SIMD would give up identical results across CPUs).
 */
function simd128Peak(): { gflops: number; best_gflops: number } | null {
  const k = loadWasmKernelsSync();
  if (!k) return null;
  const { simdPeak } = new WebAssembly.Instance(k.module, {}).exports as { simdPeak(iterations: number, seed: number): number };
  const rounds = 1 << 22;
  const [ms, best] = timed(() => simdPeak(rounds, 1));
  // 7 multiplies and 7 adds of 4 lanes a round.
  const flop = rounds * 56;
  return { gflops: flop / (ms * 1e6), best_gflops: flop / (best * 1e6) };
}

const started = performance.now();
const loadBefore = loadavg();
const peak = simd128Peak();
const engines: EngineResult[] = [...loomWasm(), loomPanels(), await loomThreads(2), loomTs(), tfjs(), torch(1), torch(2), ort(1), ort(2)];
const loadAfter = loadavg();

const baseline = engines.find((e) => e.engine === 'loom-wasm kernel');
const ratioTo = (c: CaseResult) => {
  const b = baseline?.cases?.find((x) => x.case === c.case);
  return b ? c.gflops / b.gflops : NaN;
};
/** The same ratio from the best samples (NaN when either side lacks best_gflops, e.g. an old peer). */
const bestRatioTo = (c: CaseResult) => {
  const b = baseline?.cases?.find((x) => x.case === c.case);
  return b && typeof c.best_gflops === 'number' && typeof b.best_gflops === 'number' ? c.best_gflops / b.best_gflops : NaN;
};

const lines: string[] = [];
const pad = (s: string, n: number) => s.padEnd(n);
const num = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : '–').padStart(9);
lines.push(
  `${pad('case', 14)}${pad('engine', 18)}${'med ms'.padStart(9)}${'GFLOP/s'.padStart(9)}${'× wasm'.padStart(9)}` +
    `${'best ms'.padStart(9)}${'GFLOP/s'.padStart(9)}${'× wasm'.padStart(9)}`,
);
for (const [label] of shapes) {
  for (const e of engines) {
    const c = e.cases?.find((x) => x.case === label);
    if (c) {
      const best = typeof c.best_ms === 'number' ? c.best_ms : NaN;
      const bestG = typeof c.best_gflops === 'number' ? c.best_gflops : NaN;
      lines.push(`${pad(label, 14)}${pad(e.engine, 18)}${num(c.ms, 2)}${num(c.gflops, 1)}${num(ratioTo(c), 2)}${num(best, 2)}${num(bestG, 1)}${num(bestRatioTo(c), 2)}`);
    }
  }
}
for (const e of engines) if (e.error) lines.push(`${e.engine}: ${e.error}`);
const torchBlas = engines.find((e) => e.engine.startsWith('pytorch') && e.detail)?.detail?.blas as Record<string, unknown> | undefined;
if (torchBlas) lines.push(`pytorch BLAS: ${String(torchBlas.openblas_config ?? torchBlas.build_blas_info)} (${((torchBlas.loaded_blas_libraries as string[]) ?? []).join(', ')})`);
const kernel1024 = baseline?.cases?.find((c) => c.case === 'sgemm 1024³');
if (peak) {
  const share = (g: number | undefined, p: number) => (typeof g === 'number' ? `${((100 * g) / p).toFixed(0)} %` : '–');
  lines.push(
    `this core's SIMD128 mul+add peak (WebAssembly loop, this run): ${peak.gflops.toFixed(1)} GFLOP/s median, ${peak.best_gflops.toFixed(1)} best; ` +
      // Bests over bests only: a median peak taken in a slow host phase can sit below the kernel's median.
      `the sgemm 1024³ kernel's best reaches ${share(kernel1024?.best_gflops, peak.best_gflops)} of the best`,
  );
}
lines.push(ONE_CALL_LEGEND);
lines.push(`× wasm = GFLOP/s relative to the Loom WebAssembly kernel on staged operands (median columns: medians; best columns: bests); load average ${loadBefore[0].toFixed(2)} → ${loadAfter[0].toFixed(2)}; ${((performance.now() - started) / 1000).toFixed(1)} s`);
process.stderr.write(`${lines.join('\n')}\n`);

for (const e of engines)
  for (const c of e.cases ?? []) {
    c.relative_to_loom_wasm_kernel = ratioTo(c);
    c.best_relative_to_loom_wasm_kernel = bestRatioTo(c);
  }
process.stdout.write(
  `${JSON.stringify(
    {
      machine: { node: process.version, platform: `${process.platform}-${process.arch}`, cpu: cpus()[0]?.model, cores: cpus().length, load_average_before: loadBefore, load_average_after: loadAfter, simd128_mul_add_peak: peak },
      budget_seconds_per_case: budget,
      timing: 'ms/gflops: median of the timed samples (one call each); best_ms/best_gflops: the fastest sample (this VM alternates fast and slow host phases, so medians taken at different moments differ)',
      layouts: 'loom: C = A·Bᵀ (A[M×K], B[N×K]); peers: plain C = A·B (their fastest path); gemv: y = W·x (loom, torch.mv), x·W (tfjs)',
      engines,
    },
    null,
    2,
  )}\n`,
);
