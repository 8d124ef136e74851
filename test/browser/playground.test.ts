import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import { startStaticServer, type StaticServer } from '../../src/cli/serveCommand.js';
import { ROOT } from '../helpers.js';

const CHROMIUM = '/usr/bin/chromium';
/** The flags CI runs Chromium with: no GPU, so WebGPU has no adapter. */
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu'];
/** Chromium's software WebGPU adapter (SwiftShader, on the CPU): the GPU path runs for real without a GPU. */
const SWIFTSHADER_FLAGS = ['--headless', '--no-sandbox', '--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader'];
const BUNDLE_DIR = join(ROOT, 'dist/browser');
/** esbuild's metafile of the library build (scripts/buildBrowser.mjs writes it). */
const META = join(ROOT, 'dist/browser.meta.json');
/** Gzipped size cap of the core bundle: loom.js and the chunks it imports (about 97 KiB when this was written). */
const BUNDLE_GZIP_CAP = 200 * 1024;

type Loom = typeof import('../../src/index.js');

/** What playground/app.ts exposes as window.loomPlayground.snapshot(). */
interface Snapshot {
  backend: string;
  epoch: number;
  losses: number[];
  accuracies: number[];
  training: boolean;
  specError: string;
  trainError: string;
  tick: number;
  parameterCount: number;
  sizeInBytes: number;
  threads: number;
  poolJobs: number;
  threadsMessage: string;
  device: 'cpu' | 'gpu';
  gpuAvailable: boolean;
  gpuMessage: string;
}

interface HashRun {
  backend: 'ts' | 'wasm';
  /** Kernel threads asked for (setThreads); the run reports how many it got. */
  threads: number;
  /** Width of the two hidden layers: 256 with batch 32 makes products of 2^21 multiply-adds, above the pool's threshold. */
  hidden: number;
  batchSize: number;
}

interface HashResult {
  hash: string;
  losses: number[];
  backend: string;
  threads: number;
  /** Products the thread pool split during this run. */
  poolJobs: number;
}

/**
 * Trains a small seeded network and hashes its float32 weights. Runs unchanged in Node and, through
 * its source text, in Chromium, so both execute this exact function over their copy of the package.
 * Restores the kernel mode and thread count it found.
 */
async function trainAndHash(loom: Loom, run: HashRun): Promise<HashResult> {
  await loom.initKernels();
  const threadsBefore = loom.kernelThreads();
  loom.setKernelBackend(run.backend);
  try {
    const threads = await loom.setThreads(run.threads);
    const jobsBefore = loom.kernelPoolJobs();
    const data = loom.makeSpirals({ classes: 3, pointsPerClass: 60, noise: 0.15, seed: 3 });
    const dense = (x: number, input: number, output: number, activation: string) => ({
      z: 0, y: 0, x, l: 0, type: 'Dense', activation, input_height: input, output_height: output, use_bias: true,
    });
    const h = run.hidden;
    const net = loom.buildNetwork(
      { id: 'parity', depth: 1, rows: 1, cols: 3, layers_per_cell: 1, layers: [dense(0, 2, h, 'Tanh'), dense(1, h, h, 'Sigmoid'), dense(2, h, 3, 'Linear')] },
      { seed: 5 },
    );
    const result = loom.train(net, data, {
      epochs: 3,
      batchSize: run.batchSize,
      loss: 'cross_entropy',
      optimizer: new loom.AdamW({ lr: 0.01, weightDecay: 1e-4 }),
      seed: 9,
    });
    const poolJobs = loom.kernelPoolJobs() - jobsBefore;
    const masters = [...net.allLayers()].flatMap((l) => (l.weights ? [l.weights.master] : []));
    const bytes = new Uint8Array(masters.reduce((n, m) => n + m.byteLength, 0));
    let offset = 0;
    for (const m of masters) {
      bytes.set(new Uint8Array(m.buffer, m.byteOffset, m.byteLength), offset);
      offset += m.byteLength;
    }
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    const hash = [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
    return { hash, losses: result.history.map((e) => e.loss), backend: loom.kernelBackend(), threads, poolJobs };
  } finally {
    loom.setKernelBackend('auto');
    await loom.setThreads(threadsBefore);
  }
}

/** trainAndHash in the page, on the page's copy of the bundle (/loom.js). */
function trainAndHashIn(page: Page, run: HashRun): Promise<HashResult> {
  return page.evaluate(`import('/loom.js').then((loom) => (${trainAndHash.toString()})(loom, ${JSON.stringify(run)}))`) as Promise<HashResult>;
}

interface Metafile {
  inputs: Record<string, { imports: { path: string; kind: string; external?: boolean }[] }>;
  outputs: Record<string, { imports: { path: string; kind: string; external?: boolean }[]; inputs: Record<string, unknown> }>;
}

/** The output files (basenames) an entry loads before it runs: itself and the chunks it imports statically. */
function staticClosure(meta: Metafile, entry: string): string[] {
  const byName = new Map(Object.keys(meta.outputs).map((k) => [basename(k), k]));
  const seen = new Set<string>();
  const visit = (name: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    for (const i of meta.outputs[byName.get(name)!].imports) if (i.kind === 'import-statement' && !i.external) visit(basename(i.path));
  };
  visit(entry);
  return [...seen];
}

const gzipOf = (files: string[]) => files.reduce((n, f) => n + gzipSync(readFileSync(join(BUNDLE_DIR, f)), { level: 9 }).length, 0);
const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;

test('browser bundle: ESM core, kernels and the pool worker beside it, no static node: imports, gzipped size under the cap', () => {
  for (const f of ['loom.js', 'loom-gpu.js', 'poolWorker.js', 'loom-kernels.wasm', 'loom-kernels-shared.wasm']) {
    assert.ok(existsSync(join(BUNDLE_DIR, f)), `dist/browser/${f} is missing: run npm run build:browser`);
  }
  const meta = JSON.parse(readFileSync(META, 'utf8')) as Metafile;
  const core = staticClosure(meta, 'loom.js');
  const withGpu = [...new Set([...core, ...staticClosure(meta, 'loom-gpu.js')])];
  const text = [...withGpu, 'poolWorker.js'].map((f) => readFileSync(join(BUNDLE_DIR, f), 'utf8'));
  for (const [i, code] of text.entries()) {
    assert.doesNotMatch(code, /(^|[;\n}])\s*import[^(]*?from\s*["']node:/, `a static node: import reached ${[...withGpu, 'poolWorker.js'][i]}`);
    assert.doesNotMatch(code, /import\(\s*["']webgpu["']\s*\)|from\s*["']webgpu["']/, 'a browser file imports the Node "webgpu" package');
  }
  const coreText = core.map((f) => readFileSync(join(BUNDLE_DIR, f), 'utf8')).join('\n');
  for (const url of ['loom-kernels.wasm', 'loom-kernels-shared.wasm', 'poolWorker.js']) assert.ok(coreText.includes(`"./${url}"`), `the core does not load ./${url} by URL`);
  // No GPU code in the core: train({ gpu: true }) loads it on demand.
  assert.ok(!core.some((f) => Object.keys(meta.outputs[`dist/browser/${f}`].inputs).some((i) => i.startsWith('src/gpu/'))), 'src/gpu reached the core bundle');
  const coreGzip = gzipOf(core);
  const gpuGzip = gzipOf(withGpu);
  console.log(`# core: ${core.join(' ')}: ${kib(coreGzip)} gzipped; with WebGPU (+${withGpu.filter((f) => !core.includes(f)).join(' ')}): ${kib(gpuGzip)} gzipped`);
  assert.ok(coreGzip < BUNDLE_GZIP_CAP, `the core is ${coreGzip} bytes gzipped, above the cap of ${BUNDLE_GZIP_CAP}`);
});

test('browser bundle: the WebGPU path imports no Node module (metafile) and type-checks without Node types', () => {
  const meta = JSON.parse(readFileSync(META, 'utf8')) as Metafile;
  const gpuInputs = Object.keys(meta.inputs).filter((i) => i.startsWith('src/gpu/'));
  assert.ok(gpuInputs.includes('src/gpu/browser.ts') && gpuInputs.includes('src/gpu/train.ts'), `GPU modules in the build: ${gpuInputs.join(' ')}`);
  assert.ok(!gpuInputs.includes('src/gpu/node.ts'), 'src/gpu/node.ts (Dawn) was bundled for browsers');
  for (const f of staticClosure(meta, 'loom-gpu.js')) {
    for (const i of meta.outputs[`dist/browser/${f}`].imports) assert.ok(!i.external, `${f} imports ${i.path} (${i.kind}) from outside the bundle`);
  }
  for (const input of gpuInputs) {
    for (const i of meta.inputs[input].imports) assert.ok(!/^node:|^webgpu$/.test(i.path), `${input} imports ${i.path}`);
  }
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', join(ROOT, 'test/browser/tsconfig.gpu.json')], { encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    assert.fail(`src/gpu/browser.ts does not type-check without Node types:\n${(e as { stdout?: string }).stdout ?? e}`);
  }
});

const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent: the Chromium tests are skipped`;
if (skip) console.log(`# ${skip}`);

test('a bundler building dist/src for browsers swaps Dawn for navigator.gpu (package.json "browser" field)', async () => {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [join(ROOT, 'dist/src/index.js')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    external: ['node:*'],
    write: false,
    logLevel: 'silent',
    metafile: true,
  });
  const inputs = Object.keys(result.metafile.inputs);
  assert.ok(inputs.includes('dist/src/gpu/browser.js'), 'dist/src/gpu/browser.js was not bundled');
  assert.ok(!inputs.includes('dist/src/gpu/node.js'), 'dist/src/gpu/node.js (Dawn) was bundled for browsers');
  assert.doesNotMatch(result.outputFiles[0].text, /import\(\s*["']webgpu["']\s*\)/);
});

/**
 * Opens the playground in `browser`, collecting console errors, page errors and failed requests in
 * `problems` and the URLs of the Web Workers the page starts in `workers`.
 */
async function openPlayground(browser: Browser, url: string, problems: string[], workers: string[] = []): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1440, height: 1000 }, acceptDownloads: true });
  page.on('worker', (w) => workers.push(w.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  await page.goto(url);
  await page.waitForSelector('body[data-ready=true]', { timeout: 15_000 });
  return page;
}

const snapshotOf = (page: Page) => page.evaluate(() => (window as unknown as { loomPlayground: { snapshot(): Snapshot } }).loomPlayground.snapshot());

/** Trains in the page until `epochs` epochs are in, then pauses; returns the snapshot. */
async function trainEpochs(page: Page, epochs: number, timeout = 20_000): Promise<Snapshot> {
  const from = (await snapshotOf(page)).epoch;
  await page.click('#train');
  await page.waitForFunction((n) => (window as unknown as { loomPlayground: { snapshot(): { epoch: number } } }).loomPlayground.snapshot().epoch >= n, from + epochs, { timeout });
  await page.click('#train');
  await page.waitForFunction(() => !(window as unknown as { loomPlayground: { snapshot(): { training: boolean } } }).loomPlayground.snapshot().training);
  return snapshotOf(page);
}

/** The wide network of trainAndHash: its products are split over the pool's threads. */
const WIDE = { hidden: 256, batchSize: 32 } as const;

describe('playground in headless Chromium (cross-origin isolated)', { skip }, () => {
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];
  const poolWorkers: string[] = [];

  before(async () => {
    server = await startStaticServer({ port: 0 });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
    page = await openPlayground(browser, server.url, problems, poolWorkers);
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  const snapshot = () => snapshotOf(page);

  test('the page loads cross-origin isolated, with WebAssembly kernels, 2 threads and no console errors', async () => {
    assert.equal(await page.evaluate(() => crossOriginIsolated), true);
    await page.selectOption('#threads', '2');
    await page.waitForFunction(() => (window as unknown as { loomPlayground: { snapshot(): Snapshot } }).loomPlayground.snapshot().threads === 2);
    const s = await snapshot();
    assert.equal(s.backend, 'wasm');
    assert.equal(s.specError, '');
    assert.ok(s.parameterCount > 0);
    assert.match(s.threadsMessage, /^2 kernel threads \(the page and 1 Web Worker/);
    assert.match(await page.textContent('#chips') ?? '', /cross-origin isolated · 2 threads/);
    assert.ok(poolWorkers.length >= 1, 'no pool worker was started');
    assert.ok(poolWorkers.every((u) => u === `${server.url}poolWorker.js`), poolWorkers.join(' '));
    assert.deepEqual(problems, []);
  });

  test('without a WebGPU adapter (--disable-gpu), Train on GPU is off and the page says training runs on the CPU', async () => {
    const s = await snapshot();
    assert.equal(s.gpuAvailable, false);
    assert.equal(await page.isDisabled('#use-gpu'), true);
    const note = await page.textContent('#gpu-status') ?? '';
    assert.equal(await page.isVisible('#gpu-status'), true);
    assert.match(note, /^Train on GPU is unavailable: .*(no adapter|no WebGPU).*; using the CPU\.$/);
    assert.match(await page.textContent('#chips') ?? '', /no WebGPU adapter/);
    assert.deepEqual(problems, []);
  });

  test('training runs and the loss falls; a screenshot is written', async () => {
    const s = await trainEpochs(page, 12);
    assert.equal(s.trainError, '');
    assert.equal(s.device, 'cpu');
    assert.ok(s.losses.length >= 12);
    const first = s.losses[0];
    const last = s.losses[s.losses.length - 1];
    assert.ok(last < 0.75 * first, `loss went from ${first} to ${last}`);
    assert.ok(s.accuracies[s.accuracies.length - 1] > s.accuracies[0]);
    assert.match(await page.textContent('#train-status') ?? '', /· CPU, 2 threads$/);
    const dir = join(ROOT, 'test-output');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'playground.png');
    await page.screenshot({ path: file, fullPage: true });
    assert.ok(readFileSync(file).length > 10_000);
    assert.deepEqual(problems, []);
  });

  test('the wide preset trains on 2 threads: the pool splits its products', async () => {
    await page.selectOption('#preset', { label: 'wide MLP (1×1×3, 256 wide)' });
    const jobs = (await snapshot()).poolJobs;
    const s = await trainEpochs(page, 2);
    assert.equal(s.threads, 2);
    assert.equal(s.trainError, '');
    assert.ok(s.poolJobs > jobs, `the pool ran ${s.poolJobs - jobs} products`);
    assert.ok(s.losses[s.losses.length - 1] < s.losses[0]);
    await page.selectOption('#preset', { index: 0 });
    assert.deepEqual(problems, []);
  });

  test('morphing every layer to int8 shrinks the model and reports its accuracy', async () => {
    const before = (await snapshot()).sizeInBytes;
    await page.selectOption('#morph-layer', 'all');
    await page.selectOption('#morph-dtype', { label: 'int8' });
    await page.click('#morph');
    const rows = await page.$$eval('#morph-table tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent ?? '')));
    assert.equal(rows.length, 2);
    assert.equal(rows[1][1], 'int8');
    assert.match(rows[1][2], /^\d+\.\d%$/);
    assert.ok((await snapshot()).sizeInBytes < before / 3);
  });

  test('the step mesh ticks and the output settles to the forward pass', async () => {
    for (let i = 0; i < 4; i++) await page.click('#tick');
    const s = await snapshot();
    assert.equal(s.tick, 4);
    assert.match(await page.textContent('#mesh-status') ?? '', /tick 4 · latency \d+ .*= forward pass/);
    assert.deepEqual(problems, []);
  });

  test('a model downloaded as safetensors loads back through the file input', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#save-st')]);
    const bytes = readFileSync((await download.path())!);
    const [json] = await Promise.all([page.waitForEvent('download'), page.click('#save-json')]);
    assert.match(readFileSync((await json.path())!, 'utf8'), /"layers"/);
    await page.setInputFiles('#load', { name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: bytes });
    await page.waitForFunction(() => document.getElementById('io-status')!.textContent!.startsWith('loaded'));
    assert.match(await page.textContent('#io-status') ?? '', /loaded model\.safetensors: \d+ parameters/);
    assert.match(await page.inputValue('#spec'), /"dtype":"int8"/);
    assert.deepEqual(problems, []);
  });

  test('an invalid spec shows its error inline', async () => {
    await page.fill('#spec', '{"layers": [');
    await page.waitForSelector('#spec-error:not([hidden])');
    assert.match(await page.textContent('#spec-error') ?? '', /^JSON: /);
    await page.fill('#spec', '{"cols": 1, "layers": [{"z": 0, "y": 0, "x": 0, "l": 0, "type": "Dense", "input_height": 2, "output_height": -4}]}');
    await page.waitForFunction(() => /output_height/.test(document.getElementById('spec-error')!.textContent ?? ''));
    assert.match(await page.textContent('#spec-error') ?? '', /layers\[0\]\.output_height: expected/);
  });

  test('the same spec and seed train to bit-identical weights in Chromium and in Node', async () => {
    const loom = (await import('../../src/index.js')) as Loom;
    for (const backend of ['wasm', 'ts'] as const) {
      const run: HashRun = { backend, threads: 1, hidden: 32, batchSize: 16 };
      const node = await trainAndHash(loom, run);
      const chromium = await trainAndHashIn(page, run);
      assert.equal(node.backend, backend);
      assert.equal(chromium.backend, backend);
      assert.equal(chromium.hash, node.hash, `${backend}: weight hashes differ`);
      // The float64 epoch losses may differ in their last bits: Node 20's Math.exp/log are not Chromium's
      // (both within an ulp). Rounded to float32, the precision the engine computes in, they agree.
      assert.deepEqual(chromium.losses.map(Math.fround), node.losses.map(Math.fround), `${backend}: loss histories differ`);
    }
    assert.deepEqual(problems, []);
  });

  test('threads: 1, 2 and 4 kernel threads in Chromium (Web Workers) and 1 and 2 in Node train to the same weights', async () => {
    const loom = (await import('../../src/index.js')) as Loom;
    const runs: [string, HashResult][] = [];
    for (const threads of [1, 2]) runs.push([`Node, ${threads} thread(s)`, await trainAndHash(loom, { backend: 'wasm', threads, ...WIDE })]);
    const workersBefore = poolWorkers.length;
    for (const threads of [1, 2, 4]) runs.push([`Chromium, ${threads} thread(s)`, await trainAndHashIn(page, { backend: 'wasm', threads, ...WIDE })]);
    for (const [what, r] of runs) {
      const asked = Number(/(\d) thread/.exec(what)![1]);
      assert.equal(r.threads, asked, `${what}: got ${r.threads} threads`);
      assert.equal(r.backend, 'wasm');
      if (asked > 1) assert.ok(r.poolJobs > 0, `${what}: the pool split no product`);
      else assert.equal(r.poolJobs, 0, `${what}: a single-threaded run used the pool`);
      assert.equal(r.hash, runs[0][1].hash, `${what}: weights differ from ${runs[0][0]}`);
      assert.deepEqual(r.losses.map(Math.fround), runs[0][1].losses.map(Math.fround), `${what}: losses differ`);
    }
    // The 2- and 4-thread runs started 1 + 3 Web Workers from the bundle's poolWorker.js.
    assert.ok(poolWorkers.length - workersBefore >= 4, `${poolWorkers.length - workersBefore} pool workers started`);
    assert.ok((await snapshot()).threads >= 1);
    assert.deepEqual(problems, []);
  });

  test('a pool whose worker script is missing rejects with a readable error in Chromium and in Node', async () => {
    const loom = (await import('../../src/index.js')) as Loom;
    const missing = new URL('missing-pool-worker.js', new URL(`file://${ROOT}dist/`));
    await assert.rejects(loom.createKernelPool(2, undefined, missing), /missing-pool-worker\.js|Cannot find module/);
    const before = problems.length;
    const message = await page.evaluate(() =>
      import('/loom.js' as string).then((loom: Loom) => loom.createKernelPool(3, undefined, new URL('/missing-pool-worker.js', location.href)).then(() => 'started', (e: Error) => e.message)),
    );
    assert.match(message, /^loom kernel pool: Web Worker http:\/\/127\.0\.0\.1:\d+\/missing-pool-worker\.js failed to load$/);
    // Chromium reports the failed loads themselves; nothing else went wrong.
    assert.ok(problems.slice(before).every((p) => p.includes('/missing-pool-worker.js')), problems.slice(before).join('\n'));
    problems.length = before;
  });
});

describe('playground in headless Chromium without cross-origin isolation', { skip }, () => {
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];
  const workers: string[] = [];

  before(async () => {
    server = await startStaticServer({ port: 0, crossOriginIsolation: false });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
    page = await openPlayground(browser, server.url, problems, workers);
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('the page runs single-threaded, says why, trains, and gets the same weights as Node', async () => {
    assert.equal(await page.evaluate(() => crossOriginIsolated), false);
    const s = await snapshotOf(page);
    assert.equal(s.threads, 1);
    assert.match(s.threadsMessage, /^single-threaded: the page is not cross-origin isolated/);
    assert.equal(await page.isDisabled('#threads'), true);
    assert.match(await page.textContent('#chips') ?? '', /not isolated: single-threaded/);
    const trained = await trainEpochs(page, 3);
    assert.equal(trained.trainError, '');
    assert.ok(trained.losses[trained.losses.length - 1] < trained.losses[0]);
    const loom = (await import('../../src/index.js')) as Loom;
    const chromium = await trainAndHashIn(page, { backend: 'wasm', threads: 2, ...WIDE });
    assert.equal(chromium.threads, 1, 'setThreads(2) should fall back to 1 thread');
    assert.equal(chromium.hash, (await trainAndHash(loom, { backend: 'wasm', threads: 1, ...WIDE })).hash);
    assert.deepEqual(workers, []);
    assert.deepEqual(problems, []);
  });
});

/**
 * The WebGPU path for real, on Chromium's software adapter (SwiftShader): CI has no GPU, so this is
 * the one place the browser GPU backend trains. Skipped where Chromium offers no such adapter.
 */
describe('playground in headless Chromium with a WebGPU adapter (SwiftShader)', { skip }, () => {
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  let noAdapter: string | false = false;
  const problems: string[] = [];

  before(async () => {
    server = await startStaticServer({ port: 0 });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: SWIFTSHADER_FLAGS });
    page = await openPlayground(browser, server.url, problems);
    const s = await snapshotOf(page);
    if (!s.gpuAvailable) noAdapter = `Chromium offers no WebGPU adapter here (${s.gpuMessage})`;
    // Chromium warns on the console about the software adapter; that is not a page problem.
    problems.length = 0;
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('Train on GPU is offered and trains on WebGPU; the loss falls', async (t) => {
    if (noAdapter) return t.skip(noAdapter);
    assert.match(await page.textContent('#gpu-status') ?? '', /^WebGPU adapter: /);
    await page.check('#use-gpu');
    const s = await trainEpochs(page, 6, 60_000);
    assert.equal(s.trainError, '');
    assert.equal(s.device, 'gpu');
    assert.match(await page.textContent('#train-status') ?? '', /· WebGPU$/);
    assert.ok(s.losses[s.losses.length - 1] < 0.95 * s.losses[0], `loss went from ${s.losses[0]} to ${s.losses[s.losses.length - 1]}`);
    assert.deepEqual(problems, []);
  });

  test('the mixed cube trains on the GPU when every kind in it has GPU kernels, otherwise on the CPU with a message naming the layer', async (t) => {
    if (noAdapter) return t.skip(noAdapter);
    const kinds = await page.evaluate(() => import('/loom-gpu.js' as string).then((m: { gpuKindNames(): string[] }) => m.gpuKindNames()));
    const cube = ['Dense', 'Residual', 'LayerNorm', 'SwiGLU', 'RMSNorm'];
    const missing = cube.filter((k) => !kinds.includes(k));
    await page.selectOption('#preset', { label: 'mixed cube (2×2×2)' });
    await page.check('#use-gpu');
    const s = await trainEpochs(page, 2, 60_000);
    assert.equal(s.trainError, '');
    if (missing.length === 0) {
      assert.equal(s.device, 'gpu');
      assert.ok(s.losses[s.losses.length - 1] < s.losses[0], `loss went from ${s.losses[0]} to ${s.losses[s.losses.length - 1]}`);
    } else {
      assert.equal(s.device, 'cpu');
      assert.match(await page.textContent('#gpu-status') ?? '', new RegExp(`^No GPU kernels yet for .*${missing[0]} at .*: this network trains on the CPU\\.$`));
    }
    assert.deepEqual(problems, []);
  });

  test('train({ gpu: true }) through the core bundle reaches navigator.gpu and matches the CPU weights closely', async (t) => {
    if (noAdapter) return t.skip(noAdapter);
    const r = await page.evaluate(async () => {
      const loom = (await import('/loom.js' as string)) as Loom;
      const data = loom.makeSpirals({ classes: 3, pointsPerClass: 60, noise: 0.15, seed: 3 });
      const dense = (x: number, input: number, output: number, activation: string) => ({ z: 0, y: 0, x, l: 0, type: 'Dense', activation, input_height: input, output_height: output, use_bias: true });
      const spec = { id: 'gpu', depth: 1, rows: 1, cols: 3, layers_per_cell: 1, layers: [dense(0, 2, 32, 'Tanh'), dense(1, 32, 32, 'Sigmoid'), dense(2, 32, 3, 'Linear')] };
      const config = () => ({ epochs: 3, batchSize: 16, loss: 'cross_entropy' as const, optimizer: new loom.AdamW({ lr: 0.01, weightDecay: 1e-4 }), seed: 9 });
      const cpu = loom.buildNetwork(spec, { seed: 5 });
      const cpuRun = loom.train(cpu, data, config());
      const gpu = loom.buildNetwork(spec, { seed: 5 });
      const gpuRun = await loom.train(gpu, data, { ...config(), gpu: true });
      const weights = (net: typeof cpu) => [...net.allLayers()].flatMap((l) => (l.weights ? [...l.weights.master] : []));
      return { cpu: weights(cpu), gpu: weights(gpu), cpuLosses: cpuRun.history.map((e) => e.loss), gpuLosses: gpuRun.history.map((e) => e.loss) };
    });
    let worst = 0;
    const scale = Math.max(...r.cpu.map(Math.abs));
    r.cpu.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - r.gpu[i]))));
    assert.ok(worst <= 1e-4 * scale, `GPU weights differ from the CPU's by up to ${worst} (scale ${scale})`);
    r.cpuLosses.forEach((v, i) => assert.ok(Math.abs(v - r.gpuLosses[i]) <= 1e-4 * v, `epoch ${i + 1}: CPU loss ${v}, GPU loss ${r.gpuLosses[i]}`));
    assert.deepEqual(problems, []);
  });
});
