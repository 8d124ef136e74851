import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FormatError, LoomError, SpecError } from '../../src/core/errors.js';
import { buildNetwork } from '../../src/grid/spec.js';

test('error messages stay on one line even when user text holds control characters', () => {
  assert.equal(new SpecError('layers[0].a\nb', 'a number', 'x\ty').message, 'layers[0].a\\nb: expected a number, got "x\\ty"');
  assert.equal(SpecError.at('k\r', 'unknown field').message, 'k\\r: unknown field');
  assert.equal(new FormatError('f\u0001', 'bad\u2028line').message.includes('\n'), false);
  assert.equal(new LoomError('a\u0000b').message, 'a\\u0000b');
  try {
    buildNetwork(JSON.parse('{"layers":[{"type":"Dense","input_height":2,"output_height":2,"bad\\nkey":1}]}'));
    assert.fail('expected a SpecError');
  } catch (e) {
    assert.ok(e instanceof SpecError);
    assert.equal((e as Error).message.split('\n').length, 1, (e as Error).message);
    assert.match((e as Error).message, /bad\\nkey/);
  }
});
