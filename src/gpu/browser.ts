/// <reference types="@webgpu/types" />
/**
 * The WebGPU backend in browsers: the same API as src/gpu/node.ts, on navigator.gpu instead of Dawn.
 * Nothing here (or in what it imports) touches a Node module, so bundlers can ship it to pages; the
 * browser build (scripts/buildBrowser.mjs) also puts this module where node.ts would be loaded.
 */
import type { VolumetricNetwork } from '../grid/network.js';
import { coordText } from '../layers/layer.js';
import { createGpuContext, GpuUnavailableError, type GpuContext, type GpuContextOptions } from './context.js';
import { gpuLayerKind } from './layers.js';
import './sequenceLayers.js';

export { createGpuContext, GpuContext, GpuError, GpuUnavailableError, type GpuArray, type GpuContextOptions } from './context.js';
export { gpuKindNames } from './layers.js';
export { GpuNetwork } from './network.js';
export { GpuLlama, type GpuLlamaOptions } from './llama.js';
export { trainGpu, type GpuOption } from './train.js';

/** What a page can expect from WebGPU here: an adapter (and what it is), or why there is none. */
export type WebGpuStatus =
  | { available: true; adapter: { vendor: string; architecture: string; description: string } }
  | { available: false; reason: string };

function navigatorGpu(): GPU | null {
  return (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu ?? null;
}

/** navigator.gpu; throws GpuUnavailableError where the browser (or an insecure page) has none. */
export async function browserGpu(): Promise<GPU> {
  const gpu = navigatorGpu();
  if (!gpu) {
    const secure = (globalThis as { isSecureContext?: boolean }).isSecureContext !== false;
    throw new GpuUnavailableError(
      secure ? 'this browser has no WebGPU (navigator.gpu is missing); using the CPU' : 'WebGPU needs a secure context (https or localhost); using the CPU',
    );
  }
  return gpu;
}

/** A GpuContext on navigator.gpu; throws GpuUnavailableError without an adapter or device. */
export async function createBrowserGpuContext(options: GpuContextOptions = {}): Promise<GpuContext> {
  return createGpuContext(await browserGpu(), options);
}

/**
 * Asks for an adapter without creating a device, so a page can offer GPU training only where it
 * would work. Browsers that expose navigator.gpu without a usable GPU (headless, blocklisted drivers,
 * --disable-gpu) answer with no adapter.
 */
export async function webGpuStatus(options: { powerPreference?: GPUPowerPreference } = {}): Promise<WebGpuStatus> {
  let gpu: GPU;
  try {
    gpu = await browserGpu();
  } catch (e) {
    return { available: false, reason: (e as Error).message };
  }
  try {
    const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
    if (!adapter) return { available: false, reason: 'navigator.gpu gave no adapter (no usable GPU, or GPU access is disabled); using the CPU' };
    const info = (adapter as GPUAdapter & { info?: Partial<GPUAdapterInfo> }).info ?? {};
    return { available: true, adapter: { vendor: info.vendor ?? '', architecture: info.architecture ?? '', description: info.description ?? '' } };
  } catch (e) {
    return { available: false, reason: `navigator.gpu.requestAdapter failed: ${(e as Error).message}; using the CPU` };
  }
}

/**
 * The layers of `net` that the GPU cannot train yet (a kind without GPU kernels, or a container), as
 * "Kind at (z,y,x,l)"; empty when trainGpu takes the whole network. Mirrors GpuNetwork's checks, so a
 * page can say so before it starts.
 */
export function gpuUnsupportedLayers(net: VolumetricNetwork): string[] {
  return net
    .plan()
    .filter(({ layer }) => !gpuLayerKind(layer) || layer.children?.length || layer.namedChildren)
    .map(({ layer }) => `${layer.kind.name} at ${coordText(layer)}`);
}

/**
 * node.ts's names, so that this module can stand in for node.ts in browser builds (the "browser"
 * field of package.json and scripts/buildBrowser.mjs swap it in): train({ gpu: true }) then reaches
 * navigator.gpu and never a Node package.
 */
export const nodeGpu = (): Promise<GPU> => browserGpu();
export const createNodeGpuContext = (options: GpuContextOptions = {}): Promise<GpuContext> => createBrowserGpuContext(options);
