import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { createGpuContext, GpuUnavailableError, type GpuContext } from '../../src/gpu/context.js';
import { allShaders } from '../../src/gpu/kernels/index.js';
import '../../src/gpu/layers.js';
import '../../src/gpu/llama.js';
import { nodeGpu } from '../../src/gpu/node.js';

/** Runs `body` on a Dawn null-backend context (shaders compile and validate, nothing executes). */
async function withNullContext(t: TestContext, body: (ctx: GpuContext) => Promise<void>): Promise<void> {
  let ctx;
  try {
    ctx = await createGpuContext(await nodeGpu(['backend=null']));
  } catch (e) {
    if (e instanceof GpuUnavailableError) return t.skip(`webgpu package unavailable: ${e.message}`);
    throw e;
  }
  try {
    await body(ctx);
  } finally {
    ctx.destroy();
  }
}

test('every WGSL shader compiles and validates on Dawn (null backend)', (t) =>
  withNullContext(t, async (ctx) => {
    const shaders = allShaders();
    assert.ok(shaders.length > 50, `expected many shader variants, got ${shaders.length}`);
    const names = new Set<string>();
    for (const s of shaders) {
      assert.ok(!names.has(s.name), `duplicate shader name ${s.name}`);
      names.add(s.name);
      // Kernels for devices with more workgroup memory than this one: the WGSL is still checked.
      await ctx.validate(s.code, s.name, 'main', (s.workgroupStorage ?? 0) <= ctx.workgroupStorage);
    }
  }));

test('a broken shader is reported as a GpuError naming it', (t) =>
  withNullContext(t, async (ctx) => {
    await assert.rejects(ctx.validate('@compute @workgroup_size(1) fn main() { let x = nope; }', 'broken'), /broken: WGSL error at line 1/);
  }));

test('no GPU object gives a GpuUnavailableError with a clear message', async () => {
  await assert.rejects(createGpuContext(undefined), (e: unknown) => e instanceof GpuUnavailableError && /using the CPU/.test((e as Error).message));
  const noAdapter = { requestAdapter: async () => null } as unknown as GPU;
  await assert.rejects(createGpuContext(noAdapter), (e: unknown) => e instanceof GpuUnavailableError && /no WebGPU adapter/.test((e as Error).message));
});
