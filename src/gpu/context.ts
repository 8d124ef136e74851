/// <reference types="@webgpu/types" />
import { LoomError } from '../core/errors.js';

/** No WebGPU adapter or device could be had; callers fall back to the CPU path. */
export class GpuUnavailableError extends LoomError {
  override name = 'GpuUnavailableError';
}

/** A failed shader compile, pipeline creation or dispatch, with the WGSL entry it concerns. */
export class GpuError extends LoomError {
  override name = 'GpuError';
}

export interface GpuContextOptions {
  powerPreference?: GPUPowerPreference;
  /** Label used in error messages. */
  label?: string;
}

/** A float32 (or u32) array resident on the GPU: `length` elements in `buffer` (which may be larger, from the pool). */
export interface GpuArray {
  readonly buffer: GPUBuffer;
  readonly length: number;
}

type Binding = GPUBuffer | GpuArray;

/** A dispatch resolved once (pipeline, bind group, workgroup counts) and replayed by `replay` in later frames. */
export interface PreparedDispatch {
  readonly pipeline: GPUComputePipeline;
  readonly bindGroup: GPUBindGroup;
  readonly groups: readonly [number, number, number];
}

const STORAGE = 0x80 | 0x08 | 0x04; // STORAGE | COPY_DST | COPY_SRC
const UNIFORM = 0x40 | 0x08; // UNIFORM | COPY_DST
const READBACK = 0x01 | 0x08; // MAP_READ | COPY_DST
const MAP_READ_MODE = 0x01;

/**
 * One WebGPU device and what every kernel call shares: a size-bucketed buffer pool, pipeline and
 * bind-group caches, content-keyed uniform buffers, and frames. A frame records every dispatch of
 * a forward pass or training step into one command encoder; `flush` submits it once.
 */
export class GpuContext {
  readonly limits: GPUSupportedLimits;
  private readonly modules = new Map<string, GPUShaderModule>();
  /** By entry point, then by code: no per-dispatch string building. */
  private readonly pipelines = new Map<string, Map<string, GPUComputePipeline>>();
  private readonly pipelineIds = new WeakMap<GPUComputePipeline, number>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly uniforms = new Map<string, GPUBuffer>();
  private readonly pool = new Map<number, GPUBuffer[]>();
  private readonly readbackPool = new Map<number, GPUBuffer[]>();
  private readonly owned = new Set<GPUBuffer>();
  private nextId = 1;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private destroyed = false;
  /** Dispatches and submits since creation (for tests and benchmarks). */
  readonly stats = { dispatches: 0, submits: 0, pipelines: 0, buffers: 0 };

  constructor(
    readonly device: GPUDevice,
    readonly adapterInfo: { vendor: string; architecture: string; description: string },
    /** Held so the GPU instance (Dawn's, in Node) is not collected while the device lives. */
    readonly owner: { gpu: GPU; adapter: GPUAdapter } | null = null,
  ) {
    this.limits = device.limits;
  }

  /** Largest workgroup-memory size, for choosing kernel tiles. */
  get workgroupStorage(): number {
    return this.limits.maxComputeWorkgroupStorageSize;
  }

  pipeline(code: string, entryPoint = 'main'): GPUComputePipeline {
    let byCode = this.pipelines.get(entryPoint);
    if (!byCode) this.pipelines.set(entryPoint, (byCode = new Map()));
    let p = byCode.get(code);
    if (p) return p;
    let module = this.modules.get(code);
    if (!module) {
      module = this.device.createShaderModule({ code });
      this.modules.set(code, module);
    }
    p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint } });
    byCode.set(code, p);
    this.pipelineIds.set(p, this.nextId++);
    this.stats.pipelines++;
    return p;
  }

  /**
   * Compiles `code` and reports WGSL errors as a GpuError naming `what` (used by tests and on first
   * use). `pipeline` false checks the WGSL only (a kernel for devices with more workgroup memory).
   */
  async validate(code: string, what: string, entryPoint = 'main', pipeline = true): Promise<void> {
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ code });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (pipeline) this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint } });
    const scope = await this.device.popErrorScope();
    if (errors.length > 0) throw new GpuError(`${what}: WGSL error at line ${errors[0].lineNum}: ${errors[0].message}`);
    if (scope) throw new GpuError(`${what}: ${scope.message}`);
  }

  /** A pooled storage buffer of at least `length` 4-byte elements; contents are undefined. */
  alloc(length: number): GpuArray {
    const bytes = bucket(Math.max(1, length) * 4);
    const free = this.pool.get(bytes);
    const buffer = free?.pop() ?? this.createBuffer(bytes, STORAGE);
    return { buffer, length };
  }

  /** Returns an array's buffer to the pool (only once no queued work reads it after later reuse matters: reuse is ordered on the queue). */
  release(a: GpuArray | null | undefined): void {
    if (!a) return;
    const bytes = a.buffer.size;
    let free = this.pool.get(bytes);
    if (!free) this.pool.set(bytes, (free = []));
    free.push(a.buffer);
  }

  upload(data: Float32Array | Uint32Array | Int32Array, into?: GpuArray): GpuArray {
    const a = into ?? this.alloc(data.length);
    this.device.queue.writeBuffer(a.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
    return a;
  }

  /** Writes `data` into `a` at element `offset` (queue order: before the next submit's work). */
  write(a: GpuArray, data: Float32Array | Uint32Array | Int32Array, offset = 0): void {
    this.device.queue.writeBuffer(a.buffer, offset * 4, data.buffer, data.byteOffset, data.byteLength);
  }

  /**
   * A uniform buffer holding `values` as 32-bit words (`f` marks float words), cached by content, so
   * the same shapes reuse the same buffer and bind groups across steps.
   */
  uniform(values: readonly number[], floats: readonly boolean[] = []): GPUBuffer {
    const words = new Uint32Array(Math.max(4, Math.ceil(values.length / 4) * 4));
    const asFloat = new Float32Array(words.buffer);
    values.forEach((v, i) => (floats[i] ? (asFloat[i] = v) : (words[i] = v >>> 0)));
    const key = Array.from(words).join(',');
    let b = this.uniforms.get(key);
    if (!b) {
      b = this.createBuffer(words.byteLength, UNIFORM);
      this.device.queue.writeBuffer(b, 0, words);
      this.uniforms.set(key, b);
    }
    return b;
  }

  /** A uniform buffer owned by the caller and rewritten each step (learning rates, step counts). */
  mutableUniform(words: number): GPUBuffer {
    return this.createBuffer(Math.max(16, Math.ceil(words / 4) * 16), UNIFORM);
  }

  /** Starts a frame if none is open. */
  begin(): void {
    this.checkAlive();
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
  }

  /** Records one dispatch of `code` with `bindings` at @group(0) @binding(0..n−1). */
  dispatch(code: string, bindings: readonly Binding[], groups: readonly [number, number?, number?]): void {
    const pipeline = this.pipeline(code);
    this.begin();
    if (!this.pass) this.pass = this.encoder!.beginComputePass();
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, this.bindGroup(pipeline, bindings));
    this.pass.dispatchWorkgroups(groups[0], groups[1] ?? 1, groups[2] ?? 1);
    this.stats.dispatches++;
  }

  /** Resolves a dispatch once, for frames that record the same work again and again (a decoded token). */
  prepare(code: string, bindings: readonly Binding[], groups: readonly [number, number?, number?]): PreparedDispatch {
    const pipeline = this.pipeline(code);
    return { pipeline, bindGroup: this.bindGroup(pipeline, bindings), groups: [groups[0], groups[1] ?? 1, groups[2] ?? 1] };
  }

  /** Records prepared dispatches into the open frame, in order. */
  replay(list: readonly PreparedDispatch[]): void {
    this.begin();
    if (!this.pass) this.pass = this.encoder!.beginComputePass();
    const pass = this.pass;
    let last: GPUComputePipeline | null = null;
    for (const d of list) {
      if (d.pipeline !== last) pass.setPipeline((last = d.pipeline));
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(d.groups[0], d.groups[1], d.groups[2]);
    }
    this.stats.dispatches += list.length;
  }

  copy(src: GpuArray, srcOffset: number, dst: GpuArray, dstOffset: number, length: number): void {
    this.begin();
    this.endPass();
    this.encoder!.copyBufferToBuffer(src.buffer, srcOffset * 4, dst.buffer, dstOffset * 4, length * 4);
  }

  /** Submits the open frame, if any. */
  flush(): void {
    this.endPass();
    if (!this.encoder) return;
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.stats.submits++;
  }

  /** Submits the frame with a copy of `a` (or its first `length` elements) appended, and returns the values. */
  async read(a: GpuArray, length = a.length): Promise<Float32Array> {
    return new Float32Array(await this.readBytes(a, length));
  }

  async readU32(a: GpuArray, length = a.length): Promise<Uint32Array> {
    return new Uint32Array(await this.readBytes(a, length));
  }

  /**
   * Submits the frame with a copy of `a` appended and returns the values' promise. The submit happens
   * before this returns, so a caller may record and submit more frames while the readback is under way.
   */
  private async readBytes(a: GpuArray, length: number): Promise<ArrayBuffer> {
    const bytes = bucket(length * 4);
    const staging = this.readbackPool.get(bytes)?.pop() ?? this.createBuffer(bytes, READBACK);
    this.begin();
    this.endPass();
    this.encoder!.copyBufferToBuffer(a.buffer, 0, staging, 0, length * 4);
    this.flush();
    await staging.mapAsync(MAP_READ_MODE, 0, length * 4);
    const out = staging.getMappedRange(0, length * 4).slice(0);
    staging.unmap();
    let free = this.readbackPool.get(bytes);
    if (!free) this.readbackPool.set(bytes, (free = []));
    free.push(staging);
    return out;
  }

  /** Waits until all submitted work has finished. */
  async finish(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
  }

  /** Frees every buffer and the device, so nothing keeps the process alive. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.encoder = null;
    this.pass = null;
    for (const b of this.owned) b.destroy();
    this.owned.clear();
    this.pool.clear();
    this.bindGroups.clear();
    this.uniforms.clear();
    this.device.destroy();
  }

  private bindGroup(pipeline: GPUComputePipeline, bindings: readonly Binding[]): GPUBindGroup {
    const buffers = bindings.map((b) => ('buffer' in b && 'length' in b ? (b as GpuArray).buffer : (b as GPUBuffer)));
    const key = `${this.pipelineIds.get(pipeline)}:${buffers.map((b) => this.idOf(b)).join(',')}`;
    let g = this.bindGroups.get(key);
    if (!g) {
      if (this.bindGroups.size > 8192) this.bindGroups.clear();
      g = this.device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
      });
      this.bindGroups.set(key, g);
    }
    return g;
  }

  private idOf(b: GPUBuffer): number {
    let id = this.bufferIds.get(b);
    if (id === undefined) this.bufferIds.set(b, (id = this.nextId++));
    return id;
  }

  private createBuffer(size: number, usage: number): GPUBuffer {
    this.checkAlive();
    const b = this.device.createBuffer({ size, usage });
    this.owned.add(b);
    this.stats.buffers++;
    return b;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  private checkAlive(): void {
    if (this.destroyed) throw new GpuError('the GPU context was destroyed');
  }
}

/** Pool buckets: sizes rounded up to 256 bytes below 64 KiB, then to an eighth of the next power of two. */
function bucket(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 256) * 256);
  if (b <= 65536) return b;
  const step = 2 ** Math.floor(Math.log2(b)) / 8;
  return Math.ceil(b / step) * step;
}

/**
 * Requests an adapter and device from `gpu` (navigator.gpu in browsers, src/gpu/node.ts in Node),
 * with the adapter's largest buffer and workgroup-memory limits. Throws GpuUnavailableError with the
 * reason when there is none.
 */
export async function createGpuContext(gpu: GPU | undefined | null, options: GpuContextOptions = {}): Promise<GpuContext> {
  if (!gpu) throw new GpuUnavailableError('WebGPU is not available here (no navigator.gpu and no Node "webgpu" package); using the CPU');
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  if (!adapter) throw new GpuUnavailableError('no WebGPU adapter was found (no GPU or no driver); using the CPU');
  const want: Record<string, number> = {};
  for (const name of ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxStorageBuffersPerShaderStage'] as const) {
    want[name] = adapter.limits[name];
  }
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredLimits: want });
  } catch (e) {
    throw new GpuUnavailableError(`the WebGPU adapter refused a device: ${(e as Error).message}`);
  }
  const info = (adapter as GPUAdapter & { info?: Partial<GPUAdapterInfo> }).info ?? { vendor: '', architecture: '', description: '' };
  return new GpuContext(device, { vendor: info.vendor ?? '', architecture: info.architecture ?? '', description: info.description ?? '' }, { gpu, adapter });
}

/** Workgroup counts covering `n` invocations of `size` each, spread over x and y (x ≤ 65535). */
export function groups1d(n: number, size = 256): [number, number] {
  const g = Math.max(1, Math.ceil(n / size));
  if (g <= 65535) return [g, 1];
  const y = Math.ceil(g / 65535);
  return [Math.ceil(g / y), y];
}

/** WGSL prelude line computing a flat invocation index `i` for groups1d dispatches. */
export const FLAT_INDEX = (size = 256) => `let i = gid.x + gid.y * nwg.x * ${size}u;`;
