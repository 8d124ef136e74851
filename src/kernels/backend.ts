import { gemmABt as gemmABtTs, transpose } from './gemm.js';
import { loadWasmKernels, loadWasmKernelsSync, type GemmLayout, type WasmKernels } from './wasm.js';

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
  if (!k?.gemm(A, B, C, M, N, K, REF_LAYOUT, bias, accumulate)) gemmABtTs(A, B, C, M, N, K, bias, accumulate);
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
  if (!k?.gemm(A, B, C, M, N, K, AB_LAYOUT, bias, accumulate)) gemmABtTs(A, transpose(B, K, N), C, M, N, K, bias, accumulate);
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
  if (!k?.gemm(A, B, C, M, N, K, ATB_LAYOUT, bias, accumulate)) gemmABtTs(transpose(A, K, M), transpose(B, K, N), C, M, N, K, bias, accumulate);
}

/** y[N] = W[N×K] · x[K] (+ bias[N]): gemmABt with M = 1. */
export function gemv(W: Float32Array, x: Float32Array, y: Float32Array, N: number, K: number, bias: Float32Array | null = null): void {
  gemmABt(x, W, y, 1, N, K, bias);
}
