import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startStaticServer, type StaticServer } from '../../src/cli/serveCommand.js';
import { LoomError } from '../../src/core/errors.js';

let dir: string;
let server: StaticServer;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'loom-serve-'));
  mkdirSync(join(dir, 'a'));
  mkdirSync(join(dir, 'b'));
  writeFileSync(join(dir, 'a/index.html'), '<!doctype html><title>x</title>');
  writeFileSync(join(dir, 'b/index.html'), 'shadowed');
  writeFileSync(join(dir, 'b/k.wasm'), new Uint8Array([0, 97, 115, 109]));
  writeFileSync(join(dir, 'secret.txt'), 'outside both roots');
  server = await startStaticServer({ port: 0, roots: [join(dir, 'a'), join(dir, 'b')] });
});

after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A raw request, so paths like /../x reach the server as written. */
function get(path: string, method = 'GET'): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('serve: binds 127.0.0.1 and sends cross-origin isolation headers', async () => {
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  const r = await get('/');
  assert.equal(r.status, 200);
  assert.equal(r.body, '<!doctype html><title>x</title>');
  assert.equal(r.headers['cross-origin-opener-policy'], 'same-origin');
  assert.equal(r.headers['cross-origin-embedder-policy'], 'require-corp');
  assert.equal(r.headers['content-type'], 'text/html; charset=utf-8');
});

test('serve: later roots fill in, .wasm gets its MIME type', async () => {
  const r = await get('/k.wasm');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/wasm');
});

test('serve: nothing outside the roots, GET and HEAD only', async () => {
  for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/..%2fsecret.txt', '/missing.js', '/%00']) {
    assert.equal((await get(path)).status, 404, path);
  }
  assert.equal((await get('/', 'POST')).status, 405);
  const head = await get('/k.wasm', 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
});

test('serve: a port in use is a LoomError naming it', async () => {
  await assert.rejects(startStaticServer({ port: server.port, roots: [dir] }), (e: unknown) => e instanceof LoomError && e.message.includes(`port ${server.port} is in use`));
});
