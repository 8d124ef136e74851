import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ALL_DTYPES, DType, dtypeName, packedByteLength } from '../../src/core/dtype.js';
import { FormatError } from '../../src/core/errors.js';
import { WeightStore } from '../../src/core/weightStore.js';
import { randomArray } from '../helpers.js';

test('morph keeps versions packed: int4 holds 1/8 of the float32 bytes', () => {
  const store = new WeightStore(randomArray(4096, 1));
  const v = store.morph(DType.Int4);
  assert.equal(v.bytes.byteLength, 2048);
  assert.equal(store.sizeInBytes(DType.Int4), (4096 * 4) / 8);
  assert.equal(store.sizeInBytes(DType.Binary), 512);
  assert.equal(store.residentBytes(), 4096 * 4 + 2048);
});

test('getActive returns the dtype\'s values and never the master once morphed', () => {
  const master = randomArray(100, 2);
  const store = new WeightStore(master.slice());
  for (const dtype of ALL_DTYPES) {
    const active = store.getActive(dtype);
    assert.equal(active.length, 100);
    if (dtype === DType.Float32 || dtype === DType.Float64) assert.deepEqual(active, master, dtypeName(dtype));
    else if (dtype !== DType.Int32 && dtype !== DType.Int64 && dtype !== DType.Uint32 && dtype !== DType.Uint64) {
      assert.notDeepEqual(active, master, `${dtypeName(dtype)} should differ from float32`);
    }
  }
});

test('getActive decodes a packed version once and keeps it with the version; a master change decodes afresh', () => {
  const store = new WeightStore(randomArray(4096, 5));
  const first = store.getActive(DType.Int8);
  assert.equal(store.getActive(DType.Int8), first, 'the same decoded array on the next call');
  assert.deepEqual(first, new WeightStore(store.master.slice()).getActive(DType.Int8), 'the values a fresh decode gives');
  assert.equal(store.residentBytes(), 4096 * 4 + 4096 + 4096 * 4, 'master, int8 version and its decoded values');
  store.master[0] += 1;
  store.markMasterChanged();
  const second = store.getActive(DType.Int8);
  assert.notEqual(second, first);
  assert.deepEqual(second, new WeightStore(store.master.slice()).getActive(DType.Int8));
});

test('applying gradients drops stale packed versions', () => {
  const store = new WeightStore(randomArray(16, 3));
  const before = store.morph(DType.Int8);
  assert.deepEqual(store.versionDTypes(), [DType.Int8]);
  store.applyGradients(new Float32Array(16).fill(1), 0.5);
  assert.deepEqual(store.versionDTypes(), []);
  assert.notEqual(store.morph(DType.Int8), before);
});

test('unpack restores the master from a packed version', () => {
  const store = new WeightStore(randomArray(10, 4));
  const int8 = store.getActive(DType.Int8);
  store.unpack(DType.Int8);
  assert.deepEqual(store.master, int8);
  assert.deepEqual(store.getActive(DType.Int8), int8, 'the int8 version survives unpacking');
});

test('setLoaded checks the byte length against the parameter count', () => {
  const store = new WeightStore(10);
  assert.throws(() => store.setLoaded(DType.Int4, new Uint8Array(4), { scale: 1, zeroPoint: 0 }), FormatError);
  store.setLoaded(DType.Int4, new Uint8Array(packedByteLength(DType.Int4, 10)).fill(0x1f), { scale: 0.5, zeroPoint: 0 });
  assert.deepEqual([...store.master.slice(0, 2)], [0.5, -0.5]);
});

test('relocate moves the master into another array with the same values, and refuses a wrong length', () => {
  const store = new WeightStore(Float32Array.from([1, -2, 3.5]));
  const into = new Float32Array(3);
  assert.equal(store.relocate(into), into);
  assert.equal(store.master, into);
  assert.deepEqual([...into], [1, -2, 3.5]);
  assert.throws(() => store.relocate(new Float32Array(2)), /relocate: 2 values for 3 parameters/);
});
