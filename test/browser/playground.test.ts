import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import { startStaticServer, type StaticServer } from '../../src/cli/serveCommand.js';
import { ROOT } from '../helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const BUNDLE_DIR = join(ROOT, 'dist/browser');
/** Gzipped size cap of dist/browser/loom.js (the whole package; about 90 KiB when this was written). */
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
}

/**
 * Trains a small seeded network and hashes its float32 weights. Runs unchanged in Node and, through
 * its source text, in Chromium, so both execute this exact function over their copy of the package.
 */
async function trainAndHash(loom: Loom, backend: 'ts' | 'wasm'): Promise<{ hash: string; losses: number[]; backend: string }> {
  await loom.initKernels();
  loom.setKernelBackend(backend);
  try {
    const data = loom.makeSpirals({ classes: 3, pointsPerClass: 60, noise: 0.15, seed: 3 });
    const dense = (x: number, input: number, output: number, activation: string) => ({
      z: 0, y: 0, x, l: 0, type: 'Dense', activation, input_height: input, output_height: output, use_bias: true,
    });
    const net = loom.buildNetwork(
      { id: 'parity', depth: 1, rows: 1, cols: 3, layers_per_cell: 1, layers: [dense(0, 2, 32, 'Tanh'), dense(1, 32, 32, 'Sigmoid'), dense(2, 32, 3, 'Linear')] },
      { seed: 5 },
    );
    const result = loom.train(net, data, {
      epochs: 3,
      batchSize: 16,
      loss: 'cross_entropy',
      optimizer: new loom.AdamW({ lr: 0.01, weightDecay: 1e-4 }),
      seed: 9,
    });
    const masters = [...net.allLayers()].flatMap((l) => (l.weights ? [l.weights.master] : []));
    const bytes = new Uint8Array(masters.reduce((n, m) => n + m.byteLength, 0));
    let offset = 0;
    for (const m of masters) {
      bytes.set(new Uint8Array(m.buffer, m.byteOffset, m.byteLength), offset);
      offset += m.byteLength;
    }
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    return { hash: [...digest].map((b) => b.toString(16).padStart(2, '0')).join(''), losses: result.history.map((h) => h.loss), backend: loom.kernelBackend() };
  } finally {
    loom.setKernelBackend('auto');
  }
}

test('browser bundle: ESM, kernels beside it, no static node: imports, gzipped size under the cap', () => {
  const bundlePath = join(BUNDLE_DIR, 'loom.js');
  assert.ok(existsSync(bundlePath), `${bundlePath} is missing: run npm run build:browser`);
  assert.ok(existsSync(join(BUNDLE_DIR, 'loom-kernels.wasm')), 'dist/browser/loom-kernels.wasm is missing');
  const code = readFileSync(bundlePath);
  const text = code.toString('utf8');
  assert.doesNotMatch(text, /(^|[;\n}])\s*import[^(]*?from\s*["']node:/, 'a static node: import reached the browser bundle');
  assert.match(text, /loom-kernels\.wasm/);
  const gzip = gzipSync(code, { level: 9 }).length;
  console.log(`# dist/browser/loom.js: ${(code.length / 1024).toFixed(1)} KiB, ${(gzip / 1024).toFixed(1)} KiB gzipped`);
  assert.ok(gzip < BUNDLE_GZIP_CAP, `loom.js is ${gzip} bytes gzipped, above the cap of ${BUNDLE_GZIP_CAP}`);
});

const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent: the Chromium tests are skipped`;
if (skip) console.log(`# ${skip}`);

describe('playground in headless Chromium', { skip }, () => {
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];

  before(async () => {
    server = await startStaticServer({ port: 0 });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
    page = await browser.newPage({ viewport: { width: 1440, height: 1000 }, acceptDownloads: true });
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
    await page.goto(server.url);
    await page.waitForSelector('body[data-ready=true]', { timeout: 10_000 });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  const snapshot = () => page.evaluate(() => (window as unknown as { loomPlayground: { snapshot(): Snapshot } }).loomPlayground.snapshot());

  test('the page loads cross-origin isolated, with WebAssembly kernels and no console errors', async () => {
    assert.equal(await page.evaluate(() => crossOriginIsolated), true);
    const s = await snapshot();
    assert.equal(s.backend, 'wasm');
    assert.equal(s.specError, '');
    assert.ok(s.parameterCount > 0);
    assert.deepEqual(problems, []);
  });

  test('training runs and the loss falls; a screenshot is written', async () => {
    await page.click('#train');
    await page.waitForFunction(() => (window as unknown as { loomPlayground: { snapshot(): { epoch: number } } }).loomPlayground.snapshot().epoch >= 12, undefined, { timeout: 15_000 });
    await page.click('#train');
    const s = await snapshot();
    assert.equal(s.trainError, '');
    assert.ok(s.losses.length >= 12);
    const first = s.losses[0];
    const last = s.losses[s.losses.length - 1];
    assert.ok(last < 0.75 * first, `loss went from ${first} to ${last}`);
    assert.ok(s.accuracies[s.accuracies.length - 1] > s.accuracies[0]);
    const dir = join(ROOT, 'test-output');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'playground.png');
    await page.screenshot({ path: file, fullPage: true });
    assert.ok(readFileSync(file).length > 10_000);
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
      const node = await trainAndHash(loom, backend);
      const chromium = (await page.evaluate(
        `import('/loom.js').then((loom) => (${trainAndHash.toString()})(loom, ${JSON.stringify(backend)}))`,
      )) as Awaited<ReturnType<typeof trainAndHash>>;
      assert.equal(node.backend, backend);
      assert.equal(chromium.backend, backend);
      assert.equal(chromium.hash, node.hash, `${backend}: weight hashes differ`);
      // The float64 epoch losses may differ in their last bits: Node 20's Math.exp/log are not Chromium's
      // (both within an ulp). Rounded to float32, the precision the engine computes in, they agree.
      assert.deepEqual(chromium.losses.map(Math.fround), node.losses.map(Math.fround), `${backend}: loss histories differ`);
    }
    assert.deepEqual(problems, []);
  });
});
