import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ALL_DTYPES,
  DType,
  bfloat16BitsToFloat32,
  bitsPerElement,
  dtypeName,
  e4m3ToFloat32,
  e5m2ToFloat32,
  float32ToBFloat16Bits,
  float32ToE4M3,
  float32ToE5M2,
  float32ToFP4Code,
  float32ToHalfBits,
  fp4CodeToFloat32,
  halfBitsToFloat32,
  isUnsigned,
  packWeights,
  packedByteLength,
  parseDType,
  quantParamsFor,
  simulatePrecision,
  unpackWeights,
} from '../../src/core/dtype.js';
import { FormatError, SpecError } from '../../src/core/errors.js';

const f32 = (bits: number): number => new Float32Array(new Uint32Array([bits]).buffer)[0];
const bytesOf = (u: Uint8Array): number[] => [...u];

// Own generator so this test depends on nothing but dtype.ts.
function lcgArray(n: number, seed: number, lo: number, hi: number): Float32Array {
  let s = seed >>> 0 || 1;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = lo + (s / 4294967296) * (hi - lo);
  }
  return a;
}

const NAMES = [
  'float64', 'float32', 'float16', 'bfloat16', 'fp8e4m3', 'fp8e5m2', 'int64', 'int32', 'int16', 'int8', 'uint64',
  'uint32', 'uint16', 'uint8', 'int4', 'uint4', 'fp4', 'int2', 'uint2', 'ternary', 'binary',
];

test('ALL_DTYPES, names, bits and signedness', () => {
  assert.deepEqual([...ALL_DTYPES], Array.from({ length: 21 }, (_, i) => i));
  assert.deepEqual(ALL_DTYPES.map(dtypeName), NAMES);
  assert.deepEqual(
    ALL_DTYPES.map(bitsPerElement),
    [64, 32, 16, 16, 8, 8, 64, 32, 16, 8, 64, 32, 16, 8, 4, 4, 4, 2, 2, 2, 1],
  );
  assert.deepEqual(
    ALL_DTYPES.filter(isUnsigned),
    [DType.Uint64, DType.Uint32, DType.Uint16, DType.Uint8, DType.Uint4, DType.Uint2],
  );
  for (const d of ALL_DTYPES) assert.equal(parseDType(dtypeName(d)), d);
});

test('packedByteLength for every type', () => {
  const expected: Record<string, [number, number, number, number]> = {
    // counts 0, 1, 7, 33
    float64: [0, 8, 56, 264], float32: [0, 4, 28, 132], float16: [0, 2, 14, 66], bfloat16: [0, 2, 14, 66],
    fp8e4m3: [0, 1, 7, 33], fp8e5m2: [0, 1, 7, 33], int64: [0, 8, 56, 264], int32: [0, 4, 28, 132],
    int16: [0, 2, 14, 66], int8: [0, 1, 7, 33], uint64: [0, 8, 56, 264], uint32: [0, 4, 28, 132],
    uint16: [0, 2, 14, 66], uint8: [0, 1, 7, 33], int4: [0, 1, 4, 17], uint4: [0, 1, 4, 17], fp4: [0, 1, 4, 17],
    int2: [0, 1, 2, 9], uint2: [0, 1, 2, 9], ternary: [0, 1, 2, 9], binary: [0, 1, 1, 5],
  };
  for (const d of ALL_DTYPES) {
    assert.deepEqual([0, 1, 7, 33].map((n) => packedByteLength(d, n)), expected[dtypeName(d)], dtypeName(d));
  }
});

test('parseDType: case-insensitive names, aliases, default, errors', () => {
  const aliases: [string, DType][] = [
    ['fp64', DType.Float64], ['f64', DType.Float64], ['fp32', DType.Float32], ['f32', DType.Float32],
    ['fp16', DType.Float16], ['f16', DType.Float16], ['half', DType.Float16], ['bf16', DType.BFloat16],
    ['fp8', DType.FP8E4M3], ['i64', DType.Int64], ['i32', DType.Int32], ['i16', DType.Int16], ['i8', DType.Int8],
    ['u64', DType.Uint64], ['u32', DType.Uint32], ['u16', DType.Uint16], ['u8', DType.Uint8], ['f4', DType.FP4],
  ];
  for (const [s, d] of aliases) {
    assert.equal(parseDType(s), d, s);
    assert.equal(parseDType(s.toUpperCase()), d, s.toUpperCase());
  }
  assert.equal(parseDType('BFloat16'), DType.BFloat16);
  assert.equal(parseDType('FP8E5M2'), DType.FP8E5M2);
  assert.equal(parseDType(undefined), DType.Float32);
  assert.equal(parseDType(''), DType.Float32);

  assert.throws(
    () => parseDType('int3', 'layers[2].dtype'),
    (e: unknown) => {
      assert.ok(e instanceof SpecError);
      assert.equal(e.path, 'layers[2].dtype');
      assert.match(e.message, /^layers\[2\]\.dtype: expected a dtype name \(one of float64, float32, .*, binary\), got "int3"$/);
      return true;
    },
  );
  assert.throws(() => parseDType('int3'), /^SpecError: dtype: expected a dtype name/);
  assert.throws(() => parseDType(8), SpecError);
  assert.throws(() => parseDType(null), SpecError);
});

test('float16 known answers', () => {
  assert.equal(float32ToHalfBits(1 / 3), 0x3555);
  assert.equal(float32ToHalfBits(1), 0x3c00);
  assert.equal(float32ToHalfBits(-2), 0xc000);
  assert.equal(float32ToHalfBits(65504), 0x7bff);
  assert.equal(float32ToHalfBits(65519), 0x7bff);
  assert.equal(float32ToHalfBits(65520), 0x7c00); // tie with the (odd) max rounds up to Inf
  assert.equal(float32ToHalfBits(1e10), 0x7c00);
  assert.equal(float32ToHalfBits(-Infinity), 0xfc00);
  assert.equal(float32ToHalfBits(2 ** -24), 0x0001);
  assert.equal(float32ToHalfBits(2 ** -25), 0x0000); // tie to even
  assert.equal(float32ToHalfBits(1.5 * 2 ** -25), 0x0001);
  assert.equal(float32ToHalfBits(3 * 2 ** -25), 0x0002); // 1.5 units ties to even 2
  assert.equal(float32ToHalfBits(2 ** -14), 0x0400);
  assert.equal(float32ToHalfBits(2 ** -14 - 2 ** -25), 0x0400); // rounds up out of the subnormals
  assert.equal(float32ToHalfBits(-0), 0x8000);
  assert.equal(float32ToHalfBits(1 + 2 ** -11), 0x3c00); // tie to even
  assert.equal(float32ToHalfBits(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(float32ToHalfBits(1e-10), 0);
  assert.equal(float32ToHalfBits(NaN) & 0x7c00, 0x7c00);
  assert.notEqual(float32ToHalfBits(NaN) & 0x3ff, 0);

  assert.equal(halfBitsToFloat32(0x3555), Math.fround(0.333251953125));
  assert.equal(halfBitsToFloat32(0x7bff), 65504);
  assert.equal(halfBitsToFloat32(0x0001), 2 ** -24);
  assert.equal(halfBitsToFloat32(0x7c00), Infinity);
  assert.equal(halfBitsToFloat32(0xfc00), -Infinity);
  assert.ok(Object.is(halfBitsToFloat32(0x8000), -0));
  assert.ok(Number.isNaN(halfBitsToFloat32(0x7e00)));
  // Every finite half survives decode → encode.
  for (let h = 0; h < 65536; h++) {
    if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue;
    assert.equal(float32ToHalfBits(halfBitsToFloat32(h)), h);
  }
});

test('bfloat16 rounds to nearest even', () => {
  assert.equal(float32ToBFloat16Bits(f32(0x3f808000)), 0x3f80); // tie, even stays
  assert.equal(float32ToBFloat16Bits(f32(0x3f818000)), 0x3f82); // tie, odd rounds up
  assert.equal(float32ToBFloat16Bits(f32(0x3f808001)), 0x3f81);
  assert.equal(float32ToBFloat16Bits(f32(0x3f807fff)), 0x3f80);
  assert.equal(float32ToBFloat16Bits(1), 0x3f80);
  assert.equal(float32ToBFloat16Bits(f32(0x7f7fffff)), 0x7f80); // max float32 rounds to Inf
  assert.equal(float32ToBFloat16Bits(-Infinity), 0xff80);
  const nan = float32ToBFloat16Bits(NaN);
  assert.ok(Number.isNaN(bfloat16BitsToFloat32(nan)));
  assert.notEqual(nan & 0x40, 0); // quiet
  assert.equal(bfloat16BitsToFloat32(0x3f82), f32(0x3f820000));
  assert.equal(bfloat16BitsToFloat32(0xc000), -2);
});

test('fp8 E4M3 and E5M2 known answers', () => {
  assert.equal(float32ToE4M3(448), 0x7e);
  assert.equal(e4m3ToFloat32(0x7e), 448);
  assert.equal(float32ToE4M3(500), 0x7e);
  assert.equal(float32ToE4M3(-1e9), 0xfe);
  assert.equal(float32ToE4M3(Infinity), 0x7e);
  assert.equal(float32ToE4M3(2 ** -9), 0x01);
  assert.equal(e4m3ToFloat32(0x01), 2 ** -9);
  assert.equal(float32ToE4M3(2 ** -10), 0x00); // tie to even
  assert.equal(float32ToE4M3(1), 0x38);
  assert.equal(float32ToE4M3(1.0625), 0x38); // tie to even
  assert.equal(float32ToE4M3(1.1875), 0x3a); // tie to even (up)
  assert.equal(float32ToE4M3(-1.5), 0xbc);
  assert.equal(float32ToE4M3(NaN), 0x7f);
  assert.ok(Number.isNaN(e4m3ToFloat32(0x7f)));
  assert.ok(Number.isNaN(e4m3ToFloat32(0xff)));

  assert.equal(float32ToE5M2(57344), 0x7b);
  assert.equal(e5m2ToFloat32(0x7b), 57344);
  assert.equal(float32ToE5M2(1e6), 0x7b);
  assert.equal(float32ToE5M2(-1e6), 0xfb);
  assert.equal(float32ToE5M2(Infinity), 0x7c);
  assert.equal(e5m2ToFloat32(0x7c), Infinity);
  assert.equal(e5m2ToFloat32(0xfc), -Infinity);
  assert.equal(float32ToE5M2(2 ** -16), 0x01);
  assert.equal(e5m2ToFloat32(0x01), 2 ** -16);
  assert.equal(float32ToE5M2(1), 0x3c);
  assert.ok(Number.isNaN(e5m2ToFloat32(float32ToE5M2(NaN))));

  // Every non-NaN code survives decode → encode.
  for (let b = 0; b < 256; b++) {
    if ((b & 0x7f) !== 0x7f) assert.equal(float32ToE4M3(e4m3ToFloat32(b)), b, `e4m3 ${b}`);
    if ((b & 0x7c) !== 0x7c || (b & 3) === 0) assert.equal(float32ToE5M2(e5m2ToFloat32(b)), b, `e5m2 ${b}`);
  }
});

test('fp4 magnitudes and rounding', () => {
  const mags = [0, 0.5, 1, 1.5, 2, 3, 4, 6];
  for (let c = 0; c < 8; c++) {
    assert.equal(fp4CodeToFloat32(c), mags[c]);
    assert.equal(fp4CodeToFloat32(c | 8), c === 0 ? -0 : -mags[c]);
    assert.equal(float32ToFP4Code(mags[c]), c);
    if (c > 0) assert.equal(float32ToFP4Code(-mags[c]), c | 8);
  }
  assert.equal(float32ToFP4Code(0.75), 2);
  assert.equal(float32ToFP4Code(2.5), 4);
  assert.equal(float32ToFP4Code(5), 6);
  assert.equal(float32ToFP4Code(0.25), 0);
  assert.equal(float32ToFP4Code(1.25), 2);
  assert.equal(float32ToFP4Code(1.75), 4);
  assert.equal(float32ToFP4Code(3.5), 6);
  assert.equal(float32ToFP4Code(0.26), 1);
  assert.equal(float32ToFP4Code(100), 7);
  assert.equal(float32ToFP4Code(-100), 15);
  assert.equal(float32ToFP4Code(-0.1), 0);
  assert.equal(float32ToFP4Code(NaN), 0);
});

test('sub-byte and multi-byte layouts', () => {
  const one = { scale: 1, zeroPoint: 0 };
  assert.deepEqual(bytesOf(packWeights(DType.Int4, new Float32Array([1, -1]), one)), [0x1f]);
  assert.deepEqual(bytesOf(packWeights(DType.Int4, new Float32Array([-8, 7, 3]), one)), [0x87, 0x30]);
  assert.deepEqual(bytesOf(packWeights(DType.Int2, new Float32Array([1, -1, -2, 0]), one)), [0b01111000]);
  assert.deepEqual(bytesOf(packWeights(DType.Ternary, new Float32Array([1, -1, 0, 1, 1]), one)), [0b01110001, 0b01000000]);
  assert.deepEqual(bytesOf(packWeights(DType.Uint2, new Float32Array([3, 0, 1, 2]), one)), [0b11000110]);
  assert.deepEqual(bytesOf(packWeights(DType.Uint4, new Float32Array([15, 1, 9]), one)), [0xf1, 0x90]);
  assert.deepEqual(bytesOf(packWeights(DType.FP4, new Float32Array([6, -0.5, 1]), one)), [0x79, 0x20]);
  assert.deepEqual(bytesOf(packWeights(DType.Binary, new Float32Array([1, -1, 1, 1, -1, -1, -1, 1]), one)), [0b10110001]);
  assert.deepEqual(bytesOf(packWeights(DType.Binary, new Float32Array([1, -1, 0, -0, 1, -1, -1, 1, 1]), one)), [0b10111001, 0x80]);
  assert.deepEqual(bytesOf(packWeights(DType.Int16, new Float32Array([-2, 258]), one)), [0xfe, 0xff, 0x02, 0x01]);
  assert.deepEqual(bytesOf(packWeights(DType.Uint16, new Float32Array([513]), one)), [0x01, 0x02]);
  assert.deepEqual(bytesOf(packWeights(DType.Int32, new Float32Array([-2]), one)), [0xfe, 0xff, 0xff, 0xff]);
  assert.deepEqual(bytesOf(packWeights(DType.Int64, new Float32Array([-2, 3]), one)), [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 3, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(bytesOf(packWeights(DType.Uint64, new Float32Array([5]), one)), [5, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(bytesOf(packWeights(DType.Float32, new Float32Array([1]), one)), [0, 0, 0x80, 0x3f]);
  assert.deepEqual(bytesOf(packWeights(DType.Float64, new Float32Array([1]), one)), [0, 0, 0, 0, 0, 0, 0xf0, 0x3f]);
  assert.deepEqual(bytesOf(packWeights(DType.Float16, new Float32Array([1]), one)), [0x00, 0x3c]);
  assert.deepEqual(bytesOf(packWeights(DType.BFloat16, new Float32Array([1]), one)), [0x80, 0x3f]);

  // Int64 is read as full two's complement, not just the low word.
  assert.deepEqual([...unpackWeights(DType.Int64, new Uint8Array([0, 0, 0, 0, 1, 0, 0, 0]), 1, one)], [4294967296]);
  assert.deepEqual([...unpackWeights(DType.Int64, new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 1, one)], [-1]);
  assert.deepEqual([...unpackWeights(DType.Int4, new Uint8Array([0x1f, 0x87]), 4, one)], [1, -1, -8, 7]);
  assert.deepEqual([...unpackWeights(DType.Int2, new Uint8Array([0b01111000]), 4, one)], [1, -1, -2, 0]);
  assert.deepEqual([...unpackWeights(DType.Binary, new Uint8Array([0b10110001]), 8, { scale: 0.5, zeroPoint: 0 })], [0.5, -0.5, 0.5, 0.5, -0.5, -0.5, -0.5, 0.5]);
});

test('scale rules', () => {
  const v = new Float32Array([0.5, -2, 1]);
  assert.deepEqual(quantParamsFor(DType.Int8, v), { scale: Math.fround(2 / 127), zeroPoint: 0 });
  assert.deepEqual(quantParamsFor(DType.Int16, v), { scale: Math.fround(2 / 32767), zeroPoint: 0 });
  // 32-bit codes: the float32 scale is rounded up (never below maxAbs/2147483647), so nothing in range clamps.
  for (const d of [DType.Int32, DType.Int64]) {
    const q = quantParamsFor(d, v);
    assert.equal(q.zeroPoint, 0);
    assert.equal(Math.fround(q.scale), q.scale);
    assert.ok(q.scale >= 2 / 2147483647 && q.scale < (2 / 2147483647) * (1 + 2 ** -22), `${dtypeName(d)} ${q.scale}`);
  }
  for (const d of [DType.Uint32, DType.Uint64]) {
    const q = quantParamsFor(d, v);
    assert.ok(q.scale >= 3 / 4294967295 && q.scale < (3 / 4294967295) * (1 + 2 ** -21), `${dtypeName(d)} ${q.scale}`);
    assert.ok(Math.abs(q.zeroPoint - 2 / q.scale) <= 0.5);
  }
  assert.deepEqual(quantParamsFor(DType.Int4, v), { scale: Math.fround(2 / 7), zeroPoint: 0 });
  assert.deepEqual(quantParamsFor(DType.Int2, v), { scale: 2, zeroPoint: 0 });
  assert.deepEqual(quantParamsFor(DType.Ternary, v), { scale: 2, zeroPoint: 0 });
  assert.deepEqual(quantParamsFor(DType.FP4, v), { scale: Math.fround(2 / 6), zeroPoint: 0 });
  assert.deepEqual(quantParamsFor(DType.FP8E4M3, v), { scale: Math.fround(2 / 127), zeroPoint: 0 });
  assert.deepEqual(quantParamsFor(DType.FP8E5M2, v), { scale: Math.fround(2 / 127), zeroPoint: 0 });
  assert.deepEqual(quantParamsFor(DType.Binary, v), { scale: Math.fround(3.5 / 3), zeroPoint: 0 });
  for (const d of [DType.Float64, DType.Float32, DType.Float16, DType.BFloat16]) {
    assert.deepEqual(quantParamsFor(d, v), { scale: 1, zeroPoint: 0 });
  }

  const u = new Float32Array([-1, 0.5, 1]);
  const s8 = Math.fround(2 / 255);
  // fround(2/255) is a little above 2/255, so −lo/scale = 127.4999… rounds to 127.
  assert.deepEqual(quantParamsFor(DType.Uint8, u), { scale: s8, zeroPoint: 127 });
  assert.deepEqual(quantParamsFor(DType.Uint4, u), { scale: Math.fround(2 / 15), zeroPoint: 7 });
  assert.deepEqual(quantParamsFor(DType.Uint2, u), { scale: Math.fround(2 / 3), zeroPoint: 1 });
  assert.deepEqual(quantParamsFor(DType.Uint8, new Float32Array([-1, 3])), { scale: Math.fround(4 / 255), zeroPoint: 64 });
  // All non-negative: lo is 0, so the zero point is 0 (the original engine's encoding).
  assert.deepEqual(quantParamsFor(DType.Uint8, new Float32Array([0.5, 3])), { scale: Math.fround(3 / 255), zeroPoint: 0 });
  // All non-positive: zero point at the top.
  assert.deepEqual(quantParamsFor(DType.Uint8, new Float32Array([-3, -0.5])), { scale: Math.fround(3 / 255), zeroPoint: 255 });

  // Zero or empty input, and non-finite values ignored.
  for (const d of ALL_DTYPES) {
    assert.deepEqual(quantParamsFor(d, new Float32Array(5)), { scale: 1, zeroPoint: 0 }, dtypeName(d));
    assert.deepEqual(quantParamsFor(d, new Float32Array(0)), { scale: 1, zeroPoint: 0 }, dtypeName(d));
  }
  assert.deepEqual(quantParamsFor(DType.Int8, new Float32Array([NaN, Infinity, -1.27])), { scale: Math.fround(1.27 / 127), zeroPoint: 0 });
  assert.deepEqual(quantParamsFor(DType.Binary, new Float32Array([NaN, 2, -4])), { scale: 3, zeroPoint: 0 });
});

/** How far a decoded value may be from the float32 input, for data inside the params' range. */
function tolerance(d: DType, w: number, scale: number): number {
  const a = Math.abs(w);
  const f32Slack = a * 2 ** -23;
  switch (d) {
    case DType.Float64:
    case DType.Float32:
      return 0;
    case DType.Float16:
      return a * 2 ** -11 + 2 ** -25;
    case DType.BFloat16:
      return a * 2 ** -8;
    case DType.FP8E4M3:
      return a * 2 ** -4 + 2 ** -10 * scale + f32Slack;
    case DType.FP8E5M2:
      return a * 2 ** -3 + 2 ** -17 * scale + f32Slack;
    case DType.FP4:
      return a / 4 + scale / 4 + f32Slack;
    case DType.Binary:
      return Infinity; // checked separately
    default:
      // Half a step, plus float32 rounding of code·scale (matters for 32-bit codes).
      return scale / 2 + f32Slack + scale * 1e-6;
  }
}

test('pack → unpack round trips for every dtype and odd lengths', () => {
  const ranges: [number, number][] = [[-1, 1], [-0.3, 2.5], [0.1, 4], [-7, -0.2], [-1e-3, 1e-3], [-3e4, 3e4]];
  let seed = 7;
  for (const d of ALL_DTYPES) {
    const name = dtypeName(d);
    for (const n of [1, 7, 33]) {
      for (const [lo, hi] of ranges) {
        const values = lcgArray(n, seed++, lo, hi);
        const q = quantParamsFor(d, values);
        const bytes = packWeights(d, values, q);
        const what = `${name} n=${n} [${lo}, ${hi}]`;
        assert.equal(bytes.length, packedByteLength(d, n), what);

        const decoded = unpackWeights(d, bytes, n, q);
        assert.equal(decoded.length, n);
        // Decoding into a caller's buffer gives the same values.
        const into = new Float32Array(n + 3);
        assert.equal(unpackWeights(d, bytes, n, q, into), into);
        assert.deepEqual(into.subarray(0, n), decoded, what);

        // Stable: repacking decoded values with the same params reproduces the bytes.
        assert.deepEqual(bytesOf(packWeights(d, decoded, q)), bytesOf(bytes), `${what}: repack`);

        // Padding bits of the last byte stay zero.
        const bits = bitsPerElement(d);
        if (bits < 8 && (n * bits) % 8 !== 0) assert.equal(bytes[bytes.length - 1] & ((1 << (8 - ((n * bits) % 8))) - 1), 0, `${what}: padding`);

        for (let i = 0; i < n; i++) {
          const sim = simulatePrecision(values[i], d, q.scale, q.zeroPoint);
          assert.equal(decoded[i], sim, `${what}[${i}]: unpack ${decoded[i]} vs simulatePrecision ${sim}`);
          assert.equal(Math.fround(decoded[i]), decoded[i]);
          if (d === DType.Binary) {
            assert.equal(decoded[i], values[i] >= 0 ? q.scale : -q.scale, `${what}[${i}]`);
          } else {
            const err = Math.abs(decoded[i] - values[i]);
            const tol = tolerance(d, values[i], q.scale);
            assert.ok(err <= tol, `${what}[${i}]: ${values[i]} → ${decoded[i]}, error ${err} > ${tol}`);
          }
        }
      }
    }
  }
});

test('round trips stay stable across magnitudes, offsets and ties', () => {
  let s = 2024;
  const rnd = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  for (let trial = 0; trial < 150; trial++) {
    const n = 1 + Math.floor(rnd() * 90);
    const mag = 10 ** (rnd() * 30 - 15);
    const offset = rnd() < 0.3 ? (rnd() - 0.5) * 3 * mag : 0;
    const values = new Float32Array(n);
    // Some values on a coarse grid, so exact ties and repeated extremes occur.
    for (let i = 0; i < n; i++) values[i] = rnd() < 0.2 ? (Math.round((rnd() * 2 - 1) * 8) / 8) * mag : (rnd() * 2 - 1) * mag + offset;
    for (const d of ALL_DTYPES) {
      const q = quantParamsFor(d, values);
      const bytes = packWeights(d, values, q);
      const decoded = unpackWeights(d, bytes, n, q);
      const what = `${dtypeName(d)} trial ${trial}`;
      assert.deepEqual(bytesOf(packWeights(d, decoded, q)), bytesOf(bytes), what);
      for (let i = 0; i < n; i++) assert.ok(Object.is(decoded[i], simulatePrecision(values[i], d, q.scale, q.zeroPoint)), `${what}[${i}]`);
    }
  }
});

test('raw float types store the float32 value itself', () => {
  const values = lcgArray(33, 99, -1e5, 1e5);
  const q = { scale: 123, zeroPoint: 4 }; // ignored
  assert.deepEqual(unpackWeights(DType.Float32, packWeights(DType.Float32, values, q), 33, q), values);
  assert.deepEqual(unpackWeights(DType.Float64, packWeights(DType.Float64, values, q), 33, q), values);
  const half = unpackWeights(DType.Float16, packWeights(DType.Float16, values, q), 33, q);
  for (let i = 0; i < 33; i++) assert.equal(half[i], halfBitsToFloat32(float32ToHalfBits(values[i])));
  // Out of half range: ±Inf, as documented.
  assert.deepEqual([...unpackWeights(DType.Float16, packWeights(DType.Float16, new Float32Array([7e4, -7e4]), q), 2, q)], [Infinity, -Infinity]);
});

test('unsigned types keep negative values', () => {
  const values = new Float32Array([-1, 0.5, 1]);
  for (const d of [DType.Uint8, DType.Uint16, DType.Uint4, DType.Uint2, DType.Uint32, DType.Uint64]) {
    const q = quantParamsFor(d, values);
    const decoded = unpackWeights(d, packWeights(d, values, q), 3, q);
    for (let i = 0; i < 3; i++) {
      assert.ok(Math.abs(decoded[i] - values[i]) <= q.scale / 2 + 1e-7, `${dtypeName(d)}[${i}]: ${values[i]} → ${decoded[i]}`);
    }
    assert.ok(decoded[0] < 0, dtypeName(d));
  }
  // Zero is exactly representable with the zero point.
  const q = quantParamsFor(DType.Uint8, new Float32Array([-1, 0, 3]));
  assert.equal(simulatePrecision(0, DType.Uint8, q.scale, q.zeroPoint), 0);
});

test('files of the original engine (zero point 0) decode as code·scale', () => {
  const bytes = new Uint8Array([0x3f, 0x0a]); // uint4 codes 3, 15, 0, 10
  assert.deepEqual([...unpackWeights(DType.Uint4, bytes, 4, { scale: 0.5, zeroPoint: 0 })], [1.5, 7.5, 0, 5]);
  assert.deepEqual([...unpackWeights(DType.Uint8, new Uint8Array([200]), 1, { scale: 0.25, zeroPoint: 0 })], [50]);
});

test('int rounding is half away from zero and clamps', () => {
  const q = { scale: 1, zeroPoint: 0 };
  const decode = (d: DType, vals: number[]) => [...unpackWeights(d, packWeights(d, new Float32Array(vals), q), vals.length, q)];
  assert.deepEqual(decode(DType.Int8, [0.5, -0.5, 1.5, -2.5, 0.49999997, 200, -200]), [1, -1, 2, -3, 0, 127, -128]);
  assert.deepEqual(decode(DType.Int4, [7.6, -9, 2.5]), [7, -8, 3]);
  assert.deepEqual(decode(DType.Ternary, [0.4, 0.5, -0.5, -3]), [0, 1, -1, -1]);
  assert.deepEqual(decode(DType.Int2, [5, -5, -1.5]), [1, -2, -2]);
  const i32 = packWeights(DType.Int32, new Float32Array([3e9, -3e9]), q);
  assert.deepEqual(bytesOf(i32), [0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0x80]);
  // 2147483647 is not a float32: the decoded value is its float32 rounding.
  assert.deepEqual([...unpackWeights(DType.Int32, i32, 2, q)], [2147483648, -2147483648]);
  assert.deepEqual(decode(DType.Uint16, [-3, 70000, 2.5]), [0, 65535, 3]);
});

test('NaN and Inf never throw', () => {
  const values = new Float32Array([NaN, Infinity, -Infinity, 1]);
  for (const d of ALL_DTYPES) {
    const q = quantParamsFor(d, values);
    assert.ok(Number.isFinite(q.scale) && q.scale > 0, dtypeName(d));
    const decoded = unpackWeights(d, packWeights(d, values, q), 4, q);
    for (let i = 0; i < 4; i++) assert.ok(Object.is(decoded[i], simulatePrecision(values[i], d, q.scale, q.zeroPoint)), `${dtypeName(d)}[${i}]`);
  }
  const q1 = { scale: 1, zeroPoint: 0 };
  assert.equal(simulatePrecision(NaN, DType.Int8, 1), 0);
  assert.equal(simulatePrecision(NaN, DType.Uint8, 0.1, 7), 0); // quantized as 0: code = zero point
  assert.equal(simulatePrecision(NaN, DType.FP4, 1), 0);
  assert.ok(Number.isNaN(simulatePrecision(NaN, DType.FP8E4M3, 1)));
  assert.ok(Number.isNaN(simulatePrecision(NaN, DType.Float16, 1)));
  assert.equal(simulatePrecision(Infinity, DType.Int4, 0.5), 3.5);
  assert.equal(simulatePrecision(-Infinity, DType.FP8E4M3, 2), -896);
  assert.equal(simulatePrecision(Infinity, DType.FP8E5M2, 2), Infinity);
  assert.deepEqual(bytesOf(packWeights(DType.Int8, new Float32Array([NaN]), q1)), [0]);
});

test('simulatePrecision matches single-element packing', () => {
  assert.equal(simulatePrecision(0.3, DType.Int8, 0.01), Math.fround(30 * 0.01));
  assert.equal(simulatePrecision(0.3, DType.Float32, 5), Math.fround(0.3));
  assert.equal(simulatePrecision(0.1, DType.Float64, 5), Math.fround(0.1));
  assert.equal(simulatePrecision(1 / 3, DType.Float16, 5), halfBitsToFloat32(0x3555));
  assert.equal(simulatePrecision(-0.2, DType.Binary, 0.7), Math.fround(-0.7));
  assert.equal(simulatePrecision(2.6, DType.FP4, 0.5), 3); // 5.2 units → 6
  assert.equal(simulatePrecision(2.4, DType.FP4, 0.5), 2); // 4.8 units → 4
});

test('unpackWeights rejects a wrong byte length', () => {
  const q = { scale: 1, zeroPoint: 0 };
  assert.throws(() => unpackWeights(DType.Int4, new Uint8Array(3), 7, q), FormatError);
  assert.throws(() => unpackWeights(DType.Float32, new Uint8Array(27), 7, q), /^FormatError: weights: /);
  assert.throws(() => unpackWeights(DType.Binary, new Uint8Array(2), 8, q), FormatError);
  assert.throws(() => unpackWeights(DType.Int64, new Uint8Array(8), 2, q), FormatError);
  assert.throws(() => unpackWeights(DType.Int8, new Uint8Array(4), 4, q, new Float32Array(3)), /output holds 3 values/);
  // Views into a larger buffer at odd offsets decode fine.
  const big = new Uint8Array(13);
  big.set([0, 0, 0x80, 0x3f], 1);
  assert.deepEqual([...unpackWeights(DType.Float32, big.subarray(1, 5), 1, q)], [1]);
});
