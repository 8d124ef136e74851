import { GpuUnavailableError, type GpuContext } from '../../src/gpu/context.js';
import { createNodeGpuContext } from '../../src/gpu/node.js';

/** A context on a real adapter, or the reason there is none (tests then skip with it). */
export async function realGpu(): Promise<GpuContext | string> {
  try {
    const ctx = await createNodeGpuContext();
    return ctx;
  } catch (e) {
    if (e instanceof GpuUnavailableError) return `no GPU adapter: ${e.message}`;
    throw e;
  }
}

/** max |a − b| / max |b|: the error relative to the size of the reference values. */
export function relativeDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]));
    const d = Math.abs(actual[i] - expected[i]);
    diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
  }
  if (actual.length !== expected.length) return Infinity;
  return diff / Math.max(scale, 1e-30);
}
