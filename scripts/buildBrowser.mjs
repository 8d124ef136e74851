// Builds the browser bundles in dist/browser:
//   loom.js       the package (src/index.ts) as ESM, and loom-gpu.js, the WebGPU backend on navigator.gpu
//                 (src/gpu/browser.ts); code they share sits in loom-chunk-*.js files beside them, so a page
//                 that loads both gets one copy of every class. train({ gpu: true }) loads the GPU chunk lazily.
//   poolWorker.js the kernel pool's Web Worker (src/kernels/poolWorker.ts), started by URL from the bundle
//   *.wasm        the WebAssembly kernels, loaded by URL relative to the bundle
//   playground.js the playground app, importing ./loom.js and ./loom-gpu.js at run time
// dist/browser.meta.json keeps esbuild's metafile (what each output holds and imports) for the tests.
// Prints the gzipped sizes of the core and of the core with the GPU backend.
import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist/browser');
mkdirSync(out, { recursive: true });
for (const f of readdirSync(out)) if (/^loom-chunk-.*\.js(\.map)?$/.test(f)) rmSync(join(out, f));

const common = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  sourcemap: 'linked',
  logLevel: 'warning',
};

// Browsers get src/gpu/browser.ts (navigator.gpu) wherever the GPU code would load src/gpu/node.ts (Dawn),
// so no bundle ever names the Node-only "webgpu" package; it is not marked external, and naming it fails the build.
const gpuDir = join(root, 'src/gpu');
const browserGpu = {
  name: 'loom-browser-gpu',
  setup(b) {
    b.onResolve({ filter: /^\.\/node(\.js|\.ts)?$/ }, (args) => (args.importer && dirname(args.importer) === gpuDir ? { path: join(gpuDir, 'browser.ts') } : undefined));
  },
};

// Node-only paths import node:* dynamically behind runtime checks; browsers never reach them.
const library = await build({
  ...common,
  entryPoints: { loom: join(root, 'src/index.ts'), 'loom-gpu': join(gpuDir, 'browser.ts') },
  outdir: out,
  splitting: true,
  chunkNames: 'loom-chunk-[hash]',
  external: ['node:*'],
  plugins: [browserGpu],
  metafile: true,
});
writeFileSync(join(root, 'dist/browser.meta.json'), JSON.stringify(library.metafile));

// The worker is one self-contained module: nothing external at all.
await build({ ...common, entryPoints: [join(root, 'src/kernels/poolWorker.ts')], outfile: join(out, 'poolWorker.js') });

const packageEntries = {
  name: 'loom-package-entries',
  setup(b) {
    b.onResolve({ filter: /(^|\/)src\/index(\.js|\.ts)?$/ }, () => ({ path: './loom.js', external: true }));
    b.onResolve({ filter: /(^|\/)src\/gpu\/browser(\.js|\.ts)?$/ }, () => ({ path: './loom-gpu.js', external: true }));
  },
};
await build({ ...common, entryPoints: [join(root, 'playground/app.ts')], outfile: join(out, 'playground.js'), plugins: [packageEntries] });

const kernelsDir = join(root, 'dist/src/kernels');
const wasm = existsSync(kernelsDir) ? readdirSync(kernelsDir).filter((f) => f.endsWith('.wasm')) : [];
if (wasm.length === 0) console.warn('build:browser: no .wasm kernels in dist/src/kernels (run npm run build:wasm); browsers will use the TypeScript kernels');
for (const f of wasm) copyFileSync(join(kernelsDir, f), join(out, f));

/** The output files an entry loads before it runs: itself and the chunks it imports statically. */
function staticClosure(entry) {
  const outputs = library.metafile.outputs;
  const key = (f) => Object.keys(outputs).find((k) => basename(k) === f);
  const seen = new Set();
  const visit = (k) => {
    if (seen.has(k)) return;
    seen.add(k);
    for (const i of outputs[k].imports) if (i.kind === 'import-statement' && !i.external) visit(key(basename(i.path)));
  };
  visit(key(entry));
  return [...seen].map((k) => basename(k));
}

const gzip = (f) => gzipSync(readFileSync(join(out, f)), { level: 9 }).length;
const raw = (f) => readFileSync(join(out, f)).length;
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
const total = (files, size) => files.reduce((n, f) => n + size(f), 0);
const core = staticClosure('loom.js');
const withGpu = [...new Set([...core, ...staticClosure('loom-gpu.js')])];
console.log(`core (loom.js + ${core.length - 1} chunk${core.length === 2 ? '' : 's'}): ${kib(total(core, raw))}, ${kib(total(core, gzip))} gzipped`);
console.log(`core + WebGPU (adds ${withGpu.filter((f) => !core.includes(f)).join(', ')}): ${kib(total(withGpu, raw))}, ${kib(total(withGpu, gzip))} gzipped`);
for (const f of [...wasm, 'poolWorker.js', 'playground.js']) console.log(`dist/browser/${f}: ${kib(raw(f))}, ${kib(gzip(f))} gzipped`);
