import { gemmABt as gemmABtTs, sumRows as sumRowsTs, transpose } from './gemm.js';
import { KernelPool } from './pool.js';
import { reluBackwardInto, reluInto } from './relu.js';
import { WasmParamState, loadWasmKernels, loadWasmKernelsSync, type AdamWConstants, type AttentionBatch, type AttentionRowStats, type OptimizerUpdate, type SmoothActivation, type ConvGradientOptions, type ConvShape, type GemmLayout, type WasmKernels } from './wasm.js';

/**
 * Which implementation the engine's matrix products use: the float64-accumulating TypeScript
 * reference (gemm.ts) or the WebAssembly SIMD128 kernels (wasm.ts, float32 accumulation).
 *
 * Node loads the WebAssembly module synchronously when this module is imported; browsers call
 * `await initKernels()` once. Without the module (load failure, or LOOM_KERNELS=ts) every product
 * runs the reference. In 'auto' mode a product uses WebAssembly when B has at least
 * WASM_MIN_NK values; the rule ignores M so that splitting rows never changes the implementation,
 * and the WebAssembly kernels themselves give the same bits for any row split. A product too large
 * for linear memory (over 4 GiB of operands) runs on the reference.
 */
export type KernelBackend = 'ts' | 'wasm';
export type KernelMode = KernelBackend | 'auto';
export type { AttentionBatch, AttentionRowStats };

/** Smallest N·K (values in B) routed to WebAssembly in 'auto' mode. */
export const WASM_MIN_NK = 128;

const REF_LAYOUT: GemmLayout = { a: 'mk', b: 'nk' };
const AB_LAYOUT: GemmLayout = { a: 'mk', b: 'kn' };
const ATB_LAYOUT: GemmLayout = { a: 'km', b: 'kn' };

function envMode(): KernelMode {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const v = env?.LOOM_KERNELS?.trim().toLowerCase();
  return v === 'ts' || v === 'wasm' ? v : 'auto';
}

let mode: KernelMode = envMode();
let kernels: WasmKernels | null = mode === 'ts' ? null : loadWasmKernelsSync();

/**
 * Browsers (or any host without synchronous file access): loads the WebAssembly module from `url`
 * (default: loom-kernels.wasm next to this module) and resolves to the backend now in use. A failed
 * load leaves the reference in place and resolves to 'ts'.
 */
export async function initKernels(url?: string | URL): Promise<KernelBackend> {
  if (!kernels) {
    try {
      kernels = await loadWasmKernels(url);
    } catch {
      kernels = null;
    }
  }
  return kernelBackend();
}

/**
 * Forces an implementation for every size ('ts' or 'wasm') or restores the size rule ('auto').
 * Forcing 'wasm' throws when the module is not loaded.
 */
export function setKernelBackend(next: KernelMode): void {
  if (next !== 'ts' && next !== 'wasm' && next !== 'auto') throw new Error(`setKernelBackend: expected 'ts', 'wasm' or 'auto', got ${String(next)}`);
  if (next === 'wasm' && !kernels) kernels = loadWasmKernelsSync();
  if (next === 'wasm' && !kernels) throw new Error('setKernelBackend: the WebAssembly kernels are not loaded (call await initKernels() first)');
  mode = next;
}

/** The implementation large products run on now: 'wasm' when the module is loaded and not forced off. */
export function kernelBackend(): KernelBackend {
  return kernels && mode !== 'ts' ? 'wasm' : 'ts';
}

/** The current mode: 'ts', 'wasm' or 'auto'. */
export function kernelMode(): KernelMode {
  return mode;
}

let pool: KernelPool | null = null;

/** Products with at least this many multiply-adds go to the thread pool when one is set (results are the same bits either way). */
export const POOL_MIN_MACS = 1 << 20;

/**
 * Opt-in multi-threading: runs large WebAssembly products on `threads` threads (a KernelPool of
 * threads − 1 workers plus the caller). Outputs stay bit-identical to one thread. 1 stops the pool.
 * Resolves to the thread count in use (1 when the kernels are off or workers are unavailable).
 */
export async function setThreads(threads: number): Promise<number> {
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`setThreads: expected a positive integer, got ${String(threads)}`);
  pool?.close();
  pool = null;
  if (threads > 1 && kernels) {
    try {
      pool = await KernelPool.create(threads);
    } catch {
      pool = null;
    }
  }
  return kernelThreads();
}

/**
 * Runs `work` with the kernels on `threads` threads (it receives the count actually running) and
 * stops the pool afterwards, once `work` (or the promise it returns) settles, whether it succeeds or throws.
 */
export async function withThreads<T>(threads: number, work: (running: number) => T | Promise<T>): Promise<T> {
  const running = await setThreads(threads);
  try {
    return await work(running);
  } finally {
    void setThreads(1);
  }
}

/** Threads the WebAssembly products run on (1 unless setThreads started a pool). */
export function kernelThreads(): number {
  return pool ? pool.threads : 1;
}

/** The thread pool setThreads started, or null (one thread). */
export function runningPool(): KernelPool | null {
  return pool;
}

/** Products the thread pool has split over its workers since setThreads started it (0 without a pool). */
export function kernelPoolJobs(): number {
  return pool ? pool.jobs : 0;
}

function runGemm(k: WasmKernels, A: Float32Array, B: Float32Array, C: Float32Array, M: number, N: number, K: number, layout: GemmLayout, bias: Float32Array | null, accumulate: boolean): boolean {
  if (pool && M * N * K >= POOL_MIN_MACS && pool.gemm(A, B, C, M, N, K, layout, bias, accumulate)) return true;
  return k.gemm(A, B, C, M, N, K, layout, bias, accumulate);
}

function pick(N: number, K: number): WasmKernels | null {
  if (!kernels || mode === 'ts') return null;
  return mode === 'wasm' || N * K >= WASM_MIN_NK ? kernels : null;
}

/** C[M×N] = A[M×K] · B[N×K]ᵀ (+ bias[N]); with `accumulate`, adds into C. Drop-in for gemm.ts's gemmABt. */
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
  const k = pick(N, K);
  if (!k || !runGemm(k, A, B, C, M, N, K, REF_LAYOUT, bias, accumulate)) gemmABtTs(A, B, C, M, N, K, bias, accumulate);
}

/** C[M×N] = A[M×K] · B[K×N] (+ bias[N]); with `accumulate`, adds into C. Reference: gemmABt(A, Bᵀ). */
export function gemmAB(
  A: Float32Array,
  B: Float32Array,
  C: Float32Array,
  M: number,
  N: number,
  K: number,
  bias: Float32Array | null = null,
  accumulate = false,
): void {
  const k = pick(N, K);
  if (!k || !runGemm(k, A, B, C, M, N, K, AB_LAYOUT, bias, accumulate)) gemmABtTs(A, transpose(B, K, N), C, M, N, K, bias, accumulate);
}

/** C[M×N] = A[K×M]ᵀ · B[K×N] (+ bias[N]); with `accumulate`, adds into C. Reference: gemmABt(Aᵀ, Bᵀ). */
export function gemmAtB(
  A: Float32Array,
  B: Float32Array,
  C: Float32Array,
  M: number,
  N: number,
  K: number,
  bias: Float32Array | null = null,
  accumulate = false,
): void {
  const k = pick(N, K);
  if (!k || !runGemm(k, A, B, C, M, N, K, ATB_LAYOUT, bias, accumulate)) gemmABtTs(transpose(A, K, M), transpose(B, K, N), C, M, N, K, bias, accumulate);
}

/** y[N] = W[N×K] · x[K] (+ bias[N]): gemmABt with M = 1. */
export function gemv(W: Float32Array, x: Float32Array, y: Float32Array, N: number, K: number, bias: Float32Array | null = null): void {
  gemmABt(x, W, y, 1, N, K, bias);
}

/** Arrays at least this long take the WebAssembly elementwise kernels (ReLU, finite checks, column sums) in 'auto' mode; both paths give the same bits. */
const WASM_MIN_ELEMENTWISE = 4096;

function elementwiseKernels(n: number): WasmKernels | null {
  return kernels && mode !== 'ts' && (mode === 'wasm' || n >= WASM_MIN_ELEMENTWISE) ? kernels : null;
}

/** out[i] = pre[i] > 0 ? pre[i] : 0 (out may be pre); NaN and −0 give +0. */
export function reluForward(pre: Float32Array, out: Float32Array): void {
  const done = elementwiseKernels(pre.length)?.activation('relu', pre, null, out) ?? 0;
  if (done < pre.length) reluInto(pre.subarray(done), out.subarray(done));
}

/** gradPre[i] = pre[i] > 0 ? gradOut[i] : 0. */
export function reluBackward(gradOut: Float32Array, pre: Float32Array, gradPre: Float32Array): void {
  const done = elementwiseKernels(pre.length)?.activation('relu', pre, gradOut, gradPre) ?? 0;
  if (done < pre.length) reluBackwardInto(gradOut.subarray(done), pre.subarray(done), gradPre.subarray(done));
}

/**
 * Sigmoid, Tanh, SiLU or GELU (gradOut null: out = f(pre)) or its gradient (out = gradOut · f'(pre)) on the
 * WebAssembly kernels, for every length (their float32 bits differ from the TypeScript float64 loops',
 * so a value must not take one path alone and the other in a batch); false when the kernels are off
 * and the TypeScript loops must run.
 */
export function smoothActivation(kind: SmoothActivation, pre: Float32Array, gradOut: Float32Array | null, out: Float32Array): boolean {
  if (!kernels || mode === 'ts' || pre.length === 0) return false;
  return kernels.activation(kind, pre, gradOut, out) === pre.length;
}

/**
 * SwiGLU's gate on the WebAssembly kernels (WasmKernels.swiglu, float32, σ as smoothActivation's) for
 * every size while they are on, so a row gets the same bits alone or in any batch; false otherwise.
 */
export function swigluGate(relu2: boolean, rows: number, inter: number, gateUp: Float32Array, gHidden: Float32Array | null, out: Float32Array): boolean {
  if (!kernels || mode === 'ts' || rows === 0) return false;
  return kernels.swiglu(relu2, rows, inter, gateUp, gHidden, out);
}

/**
 * Softmax cross-entropy's gradient and row statistics on the WebAssembly kernels (see
 * WasmKernels.crossEntropy), for every size while the kernels are on; false when they are off (the
 * caller runs its float64 reference). Labels must be in range.
 */
export function crossEntropyRows(z: Float32Array, labels: Int32Array, rows: number, classes: number, grad: Float32Array, stats: Float64Array): boolean {
  if (!kernels || mode === 'ts' || rows === 0) return false;
  return kernels.crossEntropy(z, labels, rows, classes, grad, stats);
}

/**
 * Whether every value of `data` is finite: the WebAssembly kernels check the bulk (exponent bits,
 * four lanes at a time), this loop the rest (v·0 is 0 for finite v, NaN otherwise).
 */
export function allFinite(data: Float32Array): boolean {
  const k = elementwiseKernels(data.length);
  let from = 0;
  if (k) {
    const bulk = k.allFinite(data);
    if (bulk === false) return false;
    if (bulk) from = data.length & ~3;
  }
  let a0 = 0, a1 = 0;
  let i = from;
  for (; i + 2 <= data.length; i += 2) {
    a0 += data[i] * 0;
    a1 += data[i + 1] * 0;
  }
  if (i < data.length) a0 += data[i] * 0;
  return a0 + a1 === 0;
}

/** Column sums of input [rows×cols] (a bias gradient): float64 per column in ascending rows, the same bits on either path. */
export function sumRows(input: Float32Array, rows: number, cols: number, out: Float32Array = new Float32Array(cols)): Float32Array {
  const k = elementwiseKernels(rows * cols);
  if (!k || !k.sumRows(input, rows, cols, out)) sumRowsTs(input, rows, cols, out);
  return out;
}

const residentStates = new WeakMap<Float32Array, WasmParamState>();

/** An optimizer's state for one parameter vector in WebAssembly memory (see optimizerState): its buffers, without the update. */
export type ResidentOptimizerState = Pick<WasmParamState, 'w' | 'g' | 'state'>;

/**
 * Zeroed state buffers (`slots` of them) for `length` parameters in WebAssembly memory, next to
 * buffers for the parameters and the gradient, so the updates below copy nothing when handed them;
 * null when the kernels are off or the size is small.
 */
export function optimizerState(length: number, slots: number): ResidentOptimizerState | null {
  if (!kernels || mode === 'ts' || (mode !== 'wasm' && length < WASM_MIN_OPTIMIZER)) return null;
  try {
    const state = new WasmParamState(kernels.module, length, slots);
    residentStates.set(state.state[0] ?? state.g, state);
    return state;
  } catch {
    return null;
  }
}

/** Parameter vectors at or above this length take the WebAssembly optimizer updates in 'auto' mode (both paths give the same bits). */
const WASM_MIN_OPTIMIZER = 1024;

/** Runs `update` on the kernels, in place when the arrays are an optimizerState's; false when the TypeScript loop must run. */
function updateOnKernels(w: Float32Array, g: Float32Array, state: Float32Array[], update: OptimizerUpdate): boolean {
  if (!kernels || mode === 'ts') return false;
  const n = w.length;
  const resident = residentStates.get(state[0] ?? g);
  if (resident && resident.length === n && resident.state.length === state.length && state.every((b, i) => b === resident.state[i])) {
    resident.update(w, g, update);
    return true;
  }
  return (mode === 'wasm' || n >= WASM_MIN_OPTIMIZER) && kernels.optimizerUpdate(w, g, state, update);
}

const f = Math.fround;

/**
 * One AdamW update of w, m and v in place from the gradient g, in float32 with one rounding per
 * operation, in PyTorch's order: w·decay; m + (g − m)·c1; v·b2 + (c2·g)·g; sqrt(v)/bc2 + eps;
 * then w − step·(m / d). The constants are rounded to float32 first. The TypeScript loop and the
 * WebAssembly kernel compute the same bits.
 */
export function adamwStep(w: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, constants: AdamWConstants): void {
  const k: AdamWConstants = { decay: f(constants.decay), c1: f(constants.c1), b2: f(constants.b2), c2: f(constants.c2), bc2: f(constants.bc2), eps: f(constants.eps), step: f(constants.step) };
  const { decay, c1, b2, c2, bc2, eps, step } = k;
  if (updateOnKernels(w, g, [m, v], (x, n, pw, pg, [pm, pv]) => x.adamw(n, pw, pg, pm, pv, decay, c1, b2, c2, bc2, eps, step))) return;
  for (let i = 0; i < w.length; i++) {
    const gi = g[i];
    const mi = f(m[i] + f(f(gi - m[i]) * c1));
    const vi = f(f(v[i] * b2) + f(f(c2 * gi) * gi));
    const d = f(f(f(Math.sqrt(vi)) / bc2) + eps);
    w[i] = f(f(w[i] * decay) - f(step * f(mi / d)));
    m[i] = mi;
    v[i] = vi;
  }
}

/** SGD settings for sgdStep; `first` marks the step that starts the momentum buffer. */
export interface SgdSettings {
  lr: number;
  momentum: number;
  dampening: number;
  nesterov: boolean;
  weightDecay: number;
  first: boolean;
}

/**
 * One SGD update of w (and the momentum buffer, when given) in place from g, in float32 with one
 * rounding per operation in PyTorch's order (torch.optim.SGD): g + decay·w; b = g on the first step,
 * else b·momentum + (1 − dampening)·g; g + momentum·b (Nesterov) or b; then w − lr·g. The constants are
 * rounded to float32 first. The TypeScript loop and the WebAssembly kernel compute the same bits.
 */
export function sgdStep(w: Float32Array, g: Float32Array, buf: Float32Array | null, o: SgdSettings): void {
  const [lr, momentum, keep, decay] = [f(o.lr), f(o.momentum), f(1 - o.dampening), f(o.weightDecay)];
  const { nesterov, first } = o;
  const flags = (buf ? 1 : 0) | (first ? 2 : 0) | (nesterov ? 4 : 0) | (decay !== 0 ? 8 : 0);
  if (updateOnKernels(w, g, buf ? [buf] : [], (x, n, pw, pg, [pb = 0]) => x.sgd(n, pw, pg, pb, decay, momentum, keep, lr, flags))) return;
  for (let i = 0; i < w.length; i++) {
    let gi = g[i];
    if (decay !== 0) gi = f(gi + f(decay * w[i]));
    if (buf) {
      buf[i] = first ? gi : f(f(buf[i] * momentum) + f(keep * gi));
      gi = nesterov ? f(gi + f(momentum * buf[i])) : buf[i];
    }
    w[i] = f(w[i] - f(lr * gi));
  }
}

/** RMSprop settings for rmspropStep. */
export interface RmspropSettings {
  lr: number;
  alpha: number;
  eps: number;
  momentum: number;
  weightDecay: number;
}

/**
 * One RMSprop update of w and its averages in place from g, in float32 with one rounding per operation
 * in PyTorch's order (torch.optim.RMSprop): g + decay·w; s = s·alpha + (c·g)·g with c = 1 − alpha; with
 * `avg` (centered) a = a + (g − a)·c and r = sqrt(s − a·a) + eps, else r = sqrt(s) + eps; with `buf`
 * (momentum) b = b·momentum + g/r and w − lr·b, else w − lr·(g/r). The constants are rounded to
 * float32 first. The TypeScript loop and the WebAssembly kernel compute the same bits.
 */
export function rmspropStep(w: Float32Array, g: Float32Array, sq: Float32Array, avg: Float32Array | null, buf: Float32Array | null, o: RmspropSettings): void {
  const [lr, alpha, c, eps, momentum, decay] = [f(o.lr), f(o.alpha), f(1 - o.alpha), f(o.eps), f(o.momentum), f(o.weightDecay)];
  const flags = (avg ? 1 : 0) | (buf ? 2 : 0) | (decay !== 0 ? 8 : 0);
  const state = [sq, ...(avg ? [avg] : []), ...(buf ? [buf] : [])];
  const update: OptimizerUpdate = (x, n, pw, pg, [ps, ...rest]) => x.rmsprop(n, pw, pg, ps, avg ? rest[0] : 0, buf ? rest[rest.length - 1] : 0, decay, alpha, c, eps, momentum, lr, flags);
  if (updateOnKernels(w, g, state, update)) return;
  for (let i = 0; i < w.length; i++) {
    let gi = g[i];
    if (decay !== 0) gi = f(gi + f(decay * w[i]));
    const s = f(f(sq[i] * alpha) + f(f(c * gi) * gi));
    sq[i] = s;
    let r: number;
    if (avg) {
      const a = f(avg[i] + f(f(gi - avg[i]) * c));
      avg[i] = a;
      r = f(f(Math.sqrt(f(s - f(a * a)))) + eps);
    } else {
      r = f(f(Math.sqrt(s)) + eps);
    }
    const q = f(gi / r);
    if (buf) {
      buf[i] = f(f(buf[i] * momentum) + q);
      w[i] = f(w[i] - f(lr * buf[i]));
    } else {
      w[i] = f(w[i] - f(lr * q));
    }
  }
}

/** The compiled kernel module while the WebAssembly kernels are in use (not forced to 'ts'); null otherwise. */
export function wasmKernelModule(): WebAssembly.Module | null {
  return kernels && mode !== 'ts' ? kernels.module : null;
}

/**
 * Convolution forward on the WebAssembly kernels: out[B][F][P] = W·im2col(input) (+ bias[f]) in float32
 * (WasmKernels.conv), split over samples when a pool runs; a sample's bits never depend on the batch or
 * the split. With `relu`, also writes relu(out) there (reluForward's bits) while each run of samples is
 * in linear memory. False when the reference would run that product (kernels off or 'auto' below
 * WASM_MIN_NK): the caller then builds the columns itself.
 */
export function convForward(input: Float32Array, g: ConvShape, batch: number, filters: number, w: Float32Array, bias: Float32Array | null, out: Float32Array, relu: Float32Array | null = null): boolean {
  const K = g.channels * g.kD * g.kH * g.kW;
  const P = g.outD * g.outH * g.outW;
  if (!pick(batch * P, K)) return false;
  if (pool && batch > 1 && batch * P * K * filters >= POOL_MIN_MACS && pool.conv(input, g, batch, filters, w, bias, out, relu)) return true;
  return kernels!.conv(input, g, batch, filters, w, bias, out, relu);
}

/** RNN forward on the WebAssembly kernels (WasmKernels.rnnForward: float32 tanh with its own exp) under lstmForward's rule; false otherwise, and the caller runs the reference. */
export function rnnForward(S: number, B: number, nIn: number, H: number, xT: Float32Array, wIH: Float32Array, wHH: Float32Array, bias: Float32Array, h: Float32Array): boolean {
  const k = pick(H, H);
  return !!k && k.rnnForward(S, B, nIn, H, xT, wIH, wHH, bias, h);
}

/**
 * One attention head on the WebAssembly kernels (WasmKernels.attentionForward: float32 softmax with its
 * own exp) when the size rule sends a head-dim square product there, whatever nQ and nK, so cached decoding
 * and the full forward take the same path; false otherwise, and the caller runs the reference.
 */
export function attentionForward(nQ: number, nK: number, hd: number, q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, causal: boolean, qPos0: number, scale: number, stats: AttentionRowStats | null): boolean {
  const wasm = pick(hd, hd);
  return !!wasm && wasm.attentionForward(nQ, nK, hd, q, k, v, out, causal, qPos0, scale, stats);
}

/**
 * Every head of a batch of self-attention on the WebAssembly kernels (WasmKernels.attentionBatch; the pool's
 * threads share the heads when one runs and the batch is large enough; the same bits either way and as
 * attentionForward head by head), under attentionForward's rule; false otherwise.
 */
export function attentionBatch(a: AttentionBatch, qkv: Float32Array, attn: Float32Array, stats: Float32Array): boolean {
  const wasm = pick(a.hd, a.hd);
  if (!wasm) return false;
  if (pool && attentionMacs(a) >= POOL_MIN_MACS && pool.attention(a, qkv, attn, stats)) return true;
  return wasm.attentionBatch(a, qkv, attn, stats);
}

/** attentionBatch's gradients (WasmKernels.attentionBatchBackward, or the pool's threads over the KV groups), under the same rule. */
export function attentionBatchBackward(a: AttentionBatch, qkv: Float32Array, gAttn: Float32Array, stats: Float32Array, gq: Float32Array, gk: Float64Array, gv: Float64Array): boolean {
  const wasm = pick(a.hd, a.hd);
  if (!wasm) return false;
  if (pool && attentionMacs(a) >= POOL_MIN_MACS && pool.attentionBackward(a, qkv, gAttn, stats, gq, gk, gv)) return true;
  return wasm.attentionBatchBackward(a, qkv, gAttn, stats, gq, gk, gv);
}

/** Multiply-adds of a batch's scores and weighted values (every head, full score blocks). */
function attentionMacs(a: AttentionBatch): number {
  return 2 * a.batch * a.heads * a.seq * a.seq * a.hd;
}

/**
 * LSTM forward on the WebAssembly kernels (WasmKernels.lstmForward: float32 gate math with its own exp)
 * when the size rule sends the recurrent product W_hh there; false otherwise, and the caller runs the
 * reference.
 */
export function lstmForward(S: number, B: number, nIn: number, H: number, xT: Float32Array, wIH: Float32Array, wHH: Float32Array, bias: Float32Array, gates: Float32Array, c: Float32Array, h: Float32Array): boolean {
  const k = pick(4 * H, H);
  return !!k && k.lstmForward(S, B, nIn, H, xT, wIH, wHH, bias, gates, c, h);
}

/** LSTM backward through time on the WebAssembly kernels (WasmKernels.lstmBackward), under the same rule as lstmForward. */
export function lstmBackward(S: number, B: number, H: number, gates: Float32Array, c: Float32Array, gOut: Float32Array, wHH: Float32Array, dG: Float32Array): boolean {
  const k = pick(4 * H, H);
  return !!k && k.lstmBackward(S, B, H, gates, c, gOut, wHH, dG);
}

/**
 * Convolution backward on the WebAssembly kernels (WasmKernels.convBackward, float32) under the same
 * rule as convForward: gradW [F][K] and, when gradIn is given, the input gradient; with `grad`, the
 * ReLU mask and the bias gradient are computed in linear memory too. False when the reference should run.
 */
export function convBackward(input: Float32Array, g: ConvShape, batch: number, filters: number, w: Float32Array, gradPre: Float32Array, gradW: Float32Array, gradIn: Float32Array | null, grad: ConvGradientOptions = {}): boolean {
  const K = g.channels * g.kD * g.kH * g.kW;
  const P = g.outD * g.outH * g.outW;
  const k = pick(batch * P, K);
  if (!k) return false;
  if (pool && batch > 1 && batch * P * K * filters >= POOL_MIN_MACS && pool.convBackward(input, g, batch, filters, w, gradPre, gradW, gradIn, grad)) return true;
  return k.convBackward(input, g, batch, filters, w, gradPre, gradW, gradIn, grad);
}
