import { existsSync } from 'node:fs';
import { startStaticServer } from '../src/cli/serveCommand.js';

/**
 * The WebAssembly kernels and the MLP training step in headless Chromium (cross-origin isolated, so the
 * kernel pool runs on Web Workers), on the browser bundle in dist/browser: what a web page gets, next
 * to the Node figures of bench/kernels.ts and bench/run.ts. Prints a table to stderr and JSON to stdout.
 */
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const budget = Number(process.env.BENCH_SECONDS ?? 2);

type Loom = typeof import('../src/index.js');

export interface PageCase {
  case: string;
  ms: number;
  best_ms: number;
  samples: number;
  gflops?: number;
  best_gflops?: number;
  /** Products the kernel pool split during the samples. */
  pool_jobs?: number;
}

interface PageResult {
  userAgent: string;
  crossOriginIsolated: boolean;
  simd_peak_gflops: { median: number; best: number };
  cases: PageCase[];
}

/**
 * Runs in the page (through its source text): sgemm on the kernel module's own instance (operands
 * already in linear memory), A·Bᵀ through a 1- and a 2-thread KernelPool (copies included, as Node's
 * rows), and the bench/run.ts MLP training step on 1 and 2 threads.
 */
async function inPage(loom: Loom, budgetSeconds: number): Promise<PageResult> {
  const samplesOf = (fn: () => void): number[] => {
    fn();
    const out: number[] = [];
    const deadline = performance.now() + budgetSeconds * 1000;
    while (performance.now() < deadline || out.length < 3) {
      const t0 = performance.now();
      fn();
      out.push(performance.now() - t0);
    }
    return out.sort((a, b) => a - b);
  };
  const cases: PageCase[] = [];
  const record = (label: string, fn: () => void, flop = 0, inner = 1): void => {
    const s = samplesOf(() => {
      for (let i = 0; i < inner; i++) fn();
    }).map((ms) => ms / inner);
    const ms = s[s.length >> 1];
    const c: PageCase = { case: label, ms, best_ms: s[0], samples: s.length };
    if (flop > 0) Object.assign(c, { gflops: flop / (ms * 1e6), best_gflops: flop / (s[0] * 1e6) });
    cases.push(c);
  };
  const fill = (a: Float32Array, seed: number): Float32Array => {
    let s = seed >>> 0;
    for (let i = 0; i < a.length; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      a[i] = s / 4294967296 - 0.5;
    }
    return a;
  };

  const module = await WebAssembly.compileStreaming(fetch('/loom-kernels.wasm'));
  const k = new WebAssembly.Instance(module, {}).exports as unknown as {
    memory: WebAssembly.Memory;
    heapBase(): number;
    workBytes(): number;
    simdPeak(iterations: number, seed: number): number;
    gemm(M: number, N: number, K: number, a: number, aKM: number, b: number, bKN: number, c: number, bias: number, work: number): void;
  };
  // simdPeak: 2e6 iterations of 56 flops (assembly/kernels.ts).
  const peak = samplesOf(() => k.simdPeak(2e6, 1)).map((ms) => (2e6 * 56) / (ms * 1e6)); // fastest first
  const align = (n: number) => (n + 15) & ~15;
  const work = align(k.heapBase());
  for (const n of [256, 1024]) {
    const a = align(work + k.workBytes());
    const b = a + n * n * 4;
    const c = b + n * n * 4;
    const need = c + n * n * 4 - k.memory.buffer.byteLength;
    if (need > 0) k.memory.grow(Math.ceil(need / 65536));
    fill(new Float32Array(k.memory.buffer, a, n * n), 1);
    fill(new Float32Array(k.memory.buffer, b, n * n), 2);
    record(`sgemm ${n}³ kernel 1T`, () => k.gemm(n, n, n, a, 0, b, 0, c, 0, work), 2 * n * n * n);
  }
  const n = 1024;
  const A = fill(new Float32Array(n * n), 1);
  const B = fill(new Float32Array(n * n), 2);
  const C = new Float32Array(n * n);
  for (const threads of [1, 2]) {
    const pool = await loom.createKernelPool(threads);
    try {
      record(`sgemm ${n}³ ${threads}T`, () => pool.gemm(A, B, C, n, n, n), 2 * n * n * n);
    } finally {
      pool.close();
    }
  }

  const dense = (x: number, input: number, output: number, activation: string) => ({ z: 0, y: 0, x, l: 0, type: 'Dense', activation, input_height: input, output_height: output, use_bias: true });
  const net = loom.buildNetwork({ depth: 1, rows: 1, cols: 3, layers_per_cell: 1, layers: [dense(0, 784, 256, 'ReLU'), dense(1, 256, 128, 'ReLU'), dense(2, 128, 10, 'Linear')] }, { seed: 1 });
  const x = new loom.Tensor(Float32Array.from({ length: 64 * 784 }, (_, i) => ((i * 7919) % 1000) / 1000), [64, 784]);
  const labels = Int32Array.from({ length: 64 }, (_, i) => i % 10);
  const opt = new loom.AdamW({ lr: 1e-3 });
  const step = () => {
    const { output, trace } = loom.forwardNetwork(net, x, { keepTrace: true });
    const loss = loom.computeLoss('cross_entropy', output, { labels });
    const { gradients } = loom.backwardNetwork(net, trace!, loss.grad, { inputGradient: false, gradientBuffers: opt.gradientBuffers });
    opt.step(loom.parameterGradients(gradients));
    for (const { layer } of gradients) layer.weights!.markMasterChanged();
  };
  await loom.initKernels();
  for (const threads of [1, 2]) {
    await loom.setThreads(threads);
    for (let i = 0; i < 20; i++) step();
    const jobs = loom.kernelPoolJobs();
    record(`MLP 784-256-128-10 train step b64 ${threads}T`, step, 0, 5);
    cases[cases.length - 1].pool_jobs = loom.kernelPoolJobs() - jobs;
  }
  await loom.setThreads(1);
  return {
    userAgent: navigator.userAgent,
    crossOriginIsolated: (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true,
    simd_peak_gflops: { median: peak[peak.length >> 1], best: peak[0] },
    cases,
  };
}

async function main(): Promise<Record<string, unknown>> {
  if (!existsSync(CHROMIUM)) return { engine: 'chromium', error: `${CHROMIUM} is absent (apt-get install -y chromium)` };
  let chromium: typeof import('playwright-core').chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch {
    return { engine: 'chromium', error: 'playwright-core is not installed (npm install)' };
  }
  const server = await startStaticServer({ port: 0 });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  try {
    const page = await browser.newPage();
    await page.goto(server.url);
    const result = (await page.evaluate(`import('/loom.js').then((loom) => (${inPage.toString()})(loom, ${budget}))`)) as PageResult;
    return { engine: 'loom-wasm in Chromium', ...result };
  } finally {
    await browser.close();
    await server.close();
  }
}

const result = await main();
const fix = (v: number | undefined, d: number) => (v === undefined ? '' : v.toFixed(d));
if ('cases' in result) {
  const r = result as unknown as PageResult;
  const lines = [`Chromium (${/Chrome\/[\d.]+/.exec(r.userAgent)?.[0] ?? r.userAgent}), cross-origin isolated: ${r.crossOriginIsolated}`];
  lines.push(`${'case'.padEnd(40)} ${'med ms'.padStart(8)} ${'GFLOP/s'.padStart(8)} ${'best ms'.padStart(8)} ${'GFLOP/s'.padStart(8)}`);
  for (const c of r.cases) lines.push(`${c.case.padEnd(40)} ${fix(c.ms, 2).padStart(8)} ${fix(c.gflops, 1).padStart(8)} ${fix(c.best_ms, 2).padStart(8)} ${fix(c.best_gflops, 1).padStart(8)}`);
  lines.push(`SIMD128 mul+add peak in the page: ${fix(r.simd_peak_gflops.median, 1)} GFLOP/s median, ${fix(r.simd_peak_gflops.best, 1)} best`);
  process.stderr.write(`${lines.join('\n')}\n`);
} else {
  process.stderr.write(`chromium: ${String(result.error)}\n`);
}
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
