// Builds the browser bundles: dist/browser/loom.js (src/index.ts as one ESM file), the WebAssembly
// kernels beside it (loaded by URL relative to the bundle), and the playground app, which imports
// ./loom.js at run time instead of carrying its own copy. Prints the core bundle's gzipped size.
import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist/browser');
mkdirSync(out, { recursive: true });

const common = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  sourcemap: 'linked',
  // Node-only paths import node:* (and Dawn's "webgpu" package) dynamically behind runtime checks;
  // browsers never reach them, and bundling them would fail.
  external: ['node:*', 'webgpu'],
  logLevel: 'warning',
};

await build({ ...common, entryPoints: [join(root, 'src/index.ts')], outfile: join(out, 'loom.js') });

const packageEntry = {
  name: 'loom-package-entry',
  setup(b) {
    b.onResolve({ filter: /(^|\/)src\/index(\.js|\.ts)?$/ }, () => ({ path: './loom.js', external: true }));
  },
};
await build({ ...common, entryPoints: [join(root, 'playground/app.ts')], outfile: join(out, 'playground.js'), plugins: [packageEntry] });

const kernelsDir = join(root, 'dist/src/kernels');
const wasm = existsSync(kernelsDir) ? readdirSync(kernelsDir).filter((f) => f.endsWith('.wasm')) : [];
if (wasm.length === 0) console.warn('build:browser: no .wasm kernels in dist/src/kernels (run npm run build:wasm); browsers will use the TypeScript kernels');
for (const f of wasm) copyFileSync(join(kernelsDir, f), join(out, f));

const sizes = ['loom.js', ...wasm, 'playground.js'].map((f) => {
  const bytes = readFileSync(join(out, f));
  return { file: f, bytes: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length };
});
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
for (const s of sizes) console.log(`dist/browser/${s.file}: ${kib(s.bytes)}, ${kib(s.gzip)} gzipped`);
