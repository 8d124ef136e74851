import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { apiManifest, type ApiExport, type ApiManifest } from '../../src/analysis/introspection.js';
import { startStaticServer } from '../../src/cli/serveCommand.js';
import { LoomError } from '../../src/core/errors.js';
import * as api from '../../src/index.js';
import * as nodeApi from '../../src/node.js';
import { ROOT } from '../helpers.js';

const byName = (list: ApiExport[]) => new Map(list.map((e) => [e.name, e]));

test('the API manifest lists every export with kind, typed signatures, members and doc summary', async () => {
  const manifest = await apiManifest();
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
  assert.equal(manifest.package, pkg.name);
  assert.equal(manifest.version, pkg.version);
  const main = byName(manifest.entryPoints['.']);

  const buildNetwork = main.get('buildNetwork')!;
  assert.equal(buildNetwork.kind, 'function');
  assert.equal(buildNetwork.module, 'src/grid/spec.ts');
  assert.equal(buildNetwork.signatures![0].text, 'buildNetwork(document: unknown, options?: BuildOptions): VolumetricNetwork');
  assert.deepEqual(buildNetwork.signatures![0].parameters, [
    { name: 'document', type: 'unknown', optional: false, rest: false },
    { name: 'options', type: 'BuildOptions', optional: true, rest: false },
  ]);
  assert.match(buildNetwork.doc!, /^Builds a network from the Loom JSON network spec .*\.$/);

  // Overloads are listed one by one.
  const train = main.get('train')!;
  assert.equal(train.kind, 'function');
  assert.deepEqual(train.signatures!.map((s) => s.parameters.map((p) => `${p.name}: ${p.type}`)), [
    ['net: VolumetricNetwork', 'data: Dataset', 'config: TrainConfig & { gpu: true | object; }'],
    ['net: VolumetricNetwork', 'data: Dataset', 'config: TrainConfig'],
  ]);
  assert.deepEqual(train.signatures!.map((s) => s.returns), ['Promise<TrainResult>', 'TrainResult']);

  const population = main.get('Population')!;
  assert.equal(population.kind, 'class');
  assert.equal(population.constructors![0].text, 'new(seedNetwork: VolumetricNetwork, config: PopulationConfig)');
  const evaluate = population.members!.find((m) => m.name === 'evaluate')!;
  assert.equal(evaluate.kind, 'method');
  assert.match(evaluate.signatures![0].text, /^evaluate\(fitness: FitnessFunction\): /);
  assert.ok(!population.members!.some((m) => m.name.startsWith('#')), 'no private members');

  const activation = main.get('Activation')!;
  assert.equal(activation.kind, 'enum');
  assert.deepEqual(activation.members!.find((m) => m.name === 'ReLU'), { name: 'ReLU', value: 0 });
  assert.deepEqual(main.get('LOGIC_SHIFT_THRESHOLD'), {
    name: 'LOGIC_SHIFT_THRESHOLD', kind: 'const', module: 'src/evolve/dna.ts', type: '0.8',
    doc: "The original's threshold above which a cross-coordinate match counts as the same logic.",
  });
  const trainConfig = main.get('TrainConfig')!;
  assert.equal(trainConfig.kind, 'type');
  assert.equal(trainConfig.definition, 'interface');
  assert.deepEqual(trainConfig.members!.find((m) => m.name === 'epochs'), { name: 'epochs', type: 'number', optional: false });
  assert.equal(main.get('KernelBackend')!.definition, "'ts' | 'wasm'");
  assert.equal(main.get('apiManifest')!.signatures![0].text, 'apiManifest(location?: string | URL): Promise<ApiManifest>');

  const node = byName(manifest.entryPoints['./node']);
  assert.equal(node.get('importLlama')!.signatures![0].text, 'importLlama(dir: string, options?: ImportLlamaOptions): LlamaModel');
  assert.equal(node.get('LlamaModel')!.kind, 'type');
});

test('the manifest matches the live exports of each entry point (a stale build would not)', async () => {
  const manifest = await apiManifest();
  for (const [entry, namespace] of [['.', api], ['./node', nodeApi]] as const) {
    const listed = manifest.entryPoints[entry];
    const values = listed.filter((e) => e.kind !== 'type').map((e) => e.name).sort();
    assert.deepEqual(values, Object.keys(namespace).sort(), `${entry}: runtime exports`);
    assert.deepEqual(listed.map((e) => e.name), [...listed.map((e) => e.name)].sort(), `${entry}: sorted by name`);
    for (const e of listed) {
      const value = (namespace as Record<string, unknown>)[e.name];
      if (e.kind === 'function' || e.kind === 'class') assert.equal(typeof value, 'function', `${entry} ${e.name}`);
      // Parameter names agree with the compiled function's own (the last overload is the implementation's shape).
      if (e.kind === 'function' && typeof value === 'function') {
        const names = e.signatures!.at(-1)!.parameters.map((p) => p.name);
        assert.equal(names.length >= value.length, true, `${e.name}: ${names.length} parameters listed, the function declares ${value.length} required`);
      }
    }
  }
  assert.ok(manifest.entryPoints['.'].length > 300);
});

test('browsers fetch the manifest beside the bundle; the bundle carries no TypeScript compiler', async () => {
  const bundleDir = join(ROOT, 'dist/browser');
  const served = readFileSync(join(bundleDir, 'api.json'), 'utf8');
  assert.equal(served, readFileSync(join(ROOT, 'dist/src/api.json'), 'utf8'));
  const server = createServer((req, res) => {
    if (req.url === '/api.json') res.writeHead(200, { 'content-type': 'application/json' }).end(served);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const fetched: ApiManifest = await apiManifest(`${base}/api.json`);
    assert.deepEqual(fetched, JSON.parse(served));
    await assert.rejects(apiManifest(`${base}/missing.json`), (e: unknown) => e instanceof LoomError && /HTTP 404/.test(e.message));
  } finally {
    server.close();
  }
  const scripts = readdirSync(bundleDir).filter((f) => f.endsWith('.js'));
  const bundle = scripts.map((f) => readFileSync(join(bundleDir, f), 'utf8')).join('\n');
  assert.ok(bundle.includes('api.json'), 'the bundle resolves api.json');
  for (const marker of ['createProgram', 'getTypeChecker', 'createSourceFile']) assert.ok(!bundle.includes(marker), `the browser scripts include the compiler's ${marker}`);
  assert.ok(bundle.length < 2 * 1024 * 1024, `browser scripts: ${bundle.length} bytes`);
  await assert.rejects(apiManifest(join(ROOT, 'no-such-api.json')), (e: unknown) => e instanceof LoomError && /npm run build writes it/.test(e.message));
});

const CHROMIUM = '/usr/bin/chromium';

test('in Chromium, the bundle finds api.json beside itself', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent` }, async () => {
  const server = await startStaticServer({ port: 0, roots: [join(ROOT, 'dist/browser')] });
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  try {
    const page = await browser.newPage();
    await page.goto(`${server.url}api.json`);
    const got = await page.evaluate(async () => {
      const loom = await import('/loom.js' as string);
      const m = (await loom.apiManifest()) as ApiManifest;
      const train = m.entryPoints['.'].find((e) => e.name === 'train')!;
      return { package: m.package, count: m.entryPoints['.'].length, train: train.signatures!.at(-1)!.text };
    });
    const manifest = await apiManifest();
    assert.deepEqual(got, { package: manifest.package, count: manifest.entryPoints['.'].length, train: 'train(net: VolumetricNetwork, data: Dataset, config: TrainConfig): TrainResult' });
  } finally {
    await browser.close();
    await server.close();
  }
});
