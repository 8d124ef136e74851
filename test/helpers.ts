import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildNetwork } from '../src/grid/spec.js';
import { kernelMode, setKernelBackend, type KernelMode } from '../src/kernels/backend.js';
import { loadWasmKernelsSync } from '../src/kernels/wasm.js';
import type { VolumetricNetwork } from '../src/grid/network.js';

/** Repository root (tests run from dist/test). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function fixture<T = any>(name: string): T {
  return JSON.parse(readFileSync(`${ROOT}test/fixtures/${name}`, 'utf8')) as T;
}

/** |a − b| ≤ atol + rtol·|b| element-wise, with the worst offender in the message. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol = 1e-5, atol = 1e-6, what = 'values'): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} vs ${expected.length}`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const excess = Math.abs(actual[i] - expected[i]) - (atol + rtol * Math.abs(expected[i]));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) assert.fail(`${what}[${worst}]: got ${actual[worst]}, expected ${expected[worst]} (rtol ${rtol}, atol ${atol})`);
}

export function maxRelativeDiff(actual: ArrayLike<number>, expected: ArrayLike<number>, floor = 1e-6): number {
  let m = 0;
  for (let i = 0; i < actual.length; i++) m = Math.max(m, Math.abs(actual[i] - expected[i]) / Math.max(floor, Math.abs(expected[i])));
  return m;
}

export interface DenseSpec {
  in: number;
  out: number;
  activation?: string;
  bias?: boolean;
  dtype?: string;
}

/** A 1×1×N grid with one Dense layer per column. */
export function mlp(layers: DenseSpec[], seed = 1): VolumetricNetwork {
  return buildNetwork(
    {
      depth: 1,
      rows: 1,
      cols: layers.length,
      layers_per_cell: 1,
      layers: layers.map((l, x) => ({
        z: 0, y: 0, x, l: 0,
        type: 'Dense',
        activation: l.activation ?? 'Linear',
        dtype: l.dtype ?? 'float32',
        input_height: l.in,
        output_height: l.out,
        use_bias: l.bias ?? true,
      })),
    },
    { seed },
  );
}

export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return a;
}

/**
 * A fresh instance of the WebAssembly kernels for calling their exports directly, with room for
 * `floats` float32 values from byte `at` (16-byte aligned, past the module's data).
 */
export function kernelInstance<T>(floats: number): { x: T & { memory: WebAssembly.Memory }; at: number } {
  const loaded = loadWasmKernelsSync();
  if (!loaded) throw new Error('the WebAssembly kernels did not load (npm run build:wasm)');
  const x = new WebAssembly.Instance(loaded.module, {}).exports as unknown as T & { memory: WebAssembly.Memory; heapBase(): number };
  const at = (x.heapBase() + 15) & ~15;
  const need = at + floats * 4;
  if (x.memory.buffer.byteLength < need) x.memory.grow(Math.ceil((need - x.memory.buffer.byteLength) / 65536));
  return { x, at };
}

/** Runs `body` with the engine's kernels in mode `mode` (setKernelBackend), then restores the mode it found. */
export function withKernelMode<T>(mode: KernelMode, body: () => T): T {
  const before = kernelMode();
  setKernelBackend(mode);
  try {
    return body();
  } finally {
    setKernelBackend(before);
  }
}

/** A skip reason while LOOM_KERNELS=ts turns the WebAssembly kernels off (tests of the kernels themselves then skip), else false. */
export const KERNELS_OFF = kernelMode() === 'ts' && 'LOOM_KERNELS=ts: the WebAssembly kernels are off';
