/// <reference types="@webgpu/types" />
import { createGpuContext, GpuUnavailableError, type GpuContext, type GpuContextOptions } from './context.js';

/**
 * The GPU object in Node from the optional `webgpu` package (Dawn). `flags` are Dawn's, e.g.
 * 'backend=null' for validation without a GPU.
 */
export async function nodeGpu(flags: readonly string[] = []): Promise<GPU> {
  let mod: { create(flags: string[]): GPU; globals: Record<string, unknown> };
  try {
    mod = (await import('webgpu' as string)) as typeof mod;
  } catch (e) {
    throw new GpuUnavailableError(`the optional "webgpu" package is not installed (${(e as Error).message.split('\n')[0]}); using the CPU`);
  }
  // The WebGPU constants (GPUBufferUsage, ...) that browsers define globally.
  for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  return mod.create([...flags]);
}

/** A GpuContext in Node (Dawn); throws GpuUnavailableError without an adapter. */
export async function createNodeGpuContext(options: GpuContextOptions & { flags?: readonly string[] } = {}): Promise<GpuContext> {
  return createGpuContext(await nodeGpu(options.flags ?? []), options);
}
