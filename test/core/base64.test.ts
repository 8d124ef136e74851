import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeBase64, encodeBase64 } from '../../src/core/base64.js';
import { FormatError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';

function portableEncode(bytes: Uint8Array): string {
  const saved = globalThis.Buffer;
  (globalThis as { Buffer?: unknown }).Buffer = undefined;
  try {
    return encodeBase64(bytes);
  } finally {
    globalThis.Buffer = saved;
  }
}

test('base64: RFC 4648 vectors, both encoders, round trips of every length up to 64 and a large buffer', () => {
  const vectors: [string, string][] = [['', ''], ['f', 'Zg=='], ['fo', 'Zm8='], ['foo', 'Zm9v'], ['foob', 'Zm9vYg=='], ['fooba', 'Zm9vYmE='], ['foobar', 'Zm9vYmFy']];
  for (const [plain, encoded] of vectors) {
    const bytes = new TextEncoder().encode(plain);
    assert.equal(encodeBase64(bytes), encoded);
    assert.equal(portableEncode(bytes), encoded);
    assert.deepEqual(decodeBase64(encoded), bytes);
  }
  const rng = new Rng(3);
  for (const n of [...Array.from({ length: 65 }, (_, i) => i), 100_003]) {
    const bytes = Uint8Array.from({ length: n }, () => Math.floor(rng.uniform() * 256));
    const view = new Uint8Array(bytes.buffer, 0, n);
    const text = encodeBase64(view);
    assert.equal(portableEncode(view), text, `length ${n}`);
    assert.deepEqual(decodeBase64(text), bytes, `length ${n}`);
  }
  const offset = new Uint8Array([9, 1, 2, 3, 9]).subarray(1, 4);
  assert.equal(encodeBase64(offset), 'AQID');
  assert.equal(portableEncode(offset), 'AQID');
});

test('base64: malformed text is a FormatError naming the source and offset', () => {
  assert.throws(() => decodeBase64('abc', 'layers[0].weights'), (e: unknown) => e instanceof FormatError && /layers\[0\]\.weights/.test((e as Error).message) && /multiple of 4/.test((e as Error).message));
  assert.throws(() => decodeBase64('ab!d'), (e: unknown) => e instanceof FormatError && /offset 2/.test((e as Error).message));
});
