import { FormatError, ShapeError, SpecError } from './errors.js';

/** The 21 numeric types. The numeric values are persisted, so never renumber. */
export enum DType {
  Float64 = 0,
  Float32 = 1,
  Float16 = 2,
  BFloat16 = 3,
  FP8E4M3 = 4,
  FP8E5M2 = 5,
  Int64 = 6,
  Int32 = 7,
  Int16 = 8,
  Int8 = 9,
  Uint64 = 10,
  Uint32 = 11,
  Uint16 = 12,
  Uint8 = 13,
  Int4 = 14,
  Uint4 = 15,
  FP4 = 16,
  Int2 = 17,
  Uint2 = 18,
  Ternary = 19,
  Binary = 20,
}

const DTYPE_COUNT = 21;

export const ALL_DTYPES: readonly DType[] = Object.freeze(Array.from({ length: DTYPE_COUNT }, (_, i) => i as DType));

// Indexed by DType value.
const NAMES: readonly string[] = [
  'float64', 'float32', 'float16', 'bfloat16', 'fp8e4m3', 'fp8e5m2',
  'int64', 'int32', 'int16', 'int8', 'uint64', 'uint32', 'uint16', 'uint8',
  'int4', 'uint4', 'fp4', 'int2', 'uint2', 'ternary', 'binary',
];
const BITS: readonly number[] = [64, 32, 16, 16, 8, 8, 64, 32, 16, 8, 64, 32, 16, 8, 4, 4, 4, 2, 2, 2, 1];

const BY_NAME = new Map<string, DType>();
NAMES.forEach((n, i) => BY_NAME.set(n, i as DType));
for (const [alias, d] of [
  ['fp64', DType.Float64], ['f64', DType.Float64],
  ['fp32', DType.Float32], ['f32', DType.Float32],
  ['fp16', DType.Float16], ['f16', DType.Float16], ['half', DType.Float16],
  ['bf16', DType.BFloat16],
  ['fp8', DType.FP8E4M3],
  ['i64', DType.Int64], ['i32', DType.Int32], ['i16', DType.Int16], ['i8', DType.Int8],
  ['u64', DType.Uint64], ['u32', DType.Uint32], ['u16', DType.Uint16], ['u8', DType.Uint8],
  ['f4', DType.FP4],
] as const) {
  BY_NAME.set(alias, d);
}

function checkDType(d: DType): void {
  if (!Number.isInteger(d) || d < 0 || d >= DTYPE_COUNT) throw new RangeError(`not a DType: ${String(d)}`);
}

export function dtypeName(d: DType): string {
  checkDType(d);
  return NAMES[d];
}

/** Reads a dtype from a spec or flag; absent or empty means the engine default, float32. */
export function parseDType(s: unknown, path = 'dtype'): DType {
  if (s === undefined || s === '') return DType.Float32;
  if (typeof s === 'string') {
    const d = BY_NAME.get(s.toLowerCase());
    if (d !== undefined) return d;
  }
  throw new SpecError(path, `a dtype name (one of ${NAMES.join(', ')})`, s);
}

export function bitsPerElement(d: DType): number {
  checkDType(d);
  return BITS[d];
}

export function packedByteLength(d: DType, count: number): number {
  return Math.ceil((count * bitsPerElement(d)) / 8);
}

export function isUnsigned(d: DType): boolean {
  return d === DType.Uint64 || d === DType.Uint32 || d === DType.Uint16 || d === DType.Uint8 || d === DType.Uint4 || d === DType.Uint2;
}

// ---- element codecs ----

// Packing writes through typed views of the fresh output buffer, which is only right on little-endian hosts.
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// One scratch word for float32 bit access: avoids allocating per conversion.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

function f32Bits(v: number): number {
  scratchF32[0] = v;
  return scratchU32[0];
}

function bitsToF32(x: number): number {
  scratchU32[0] = x;
  return scratchF32[0];
}

/** Rounds `m >>> shift` to nearest, ties to even (m < 2^30, shift in 1..24); branch-free for random data. */
function rneShift(m: number, shift: number): number {
  return (m + (1 << (shift - 1)) - 1 + ((m >>> shift) & 1)) >>> shift;
}

function halfFromBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: units of 2^-24; float32 subnormals are far below that and round to 0.
    const shift = 126 - exp;
    if (exp === 0 || shift > 24) return sign;
    return sign | rneShift(mant | 0x800000, shift);
  }
  // A carry out of the mantissa bumps the exponent, up to Inf — exactly what RNE wants.
  return sign | rneShift((e << 23) | mant, 13);
}

/** IEEE binary16 bits of `v` (as float32), round-to-nearest-even, overflow → ±Inf. */
export function float32ToHalfBits(v: number): number {
  return halfFromBits(f32Bits(v));
}

let halfTable: Float32Array | null = null;

// Decoding through a 64K-entry table keeps the float16 unpack loop branch-free.
function getHalfTable(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) t[h] = sign * mant * 2 ** -24;
    else if (exp === 31) t[h] = mant === 0 ? sign * Infinity : NaN;
    else t[h] = sign * (1024 + mant) * 2 ** (exp - 25);
  }
  halfTable = t;
  return t;
}

export function halfBitsToFloat32(h: number): number {
  return getHalfTable()[h & 0xffff];
}

function bf16FromBits(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) return (x >>> 16) | 0x40;
  return (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
}

/** Top 16 bits of the float32, round-to-nearest-even; NaN stays a quiet NaN. */
export function float32ToBFloat16Bits(v: number): number {
  return bf16FromBits(f32Bits(v));
}

export function bfloat16BitsToFloat32(h: number): number {
  return bitsToF32((h & 0xffff) << 16);
}

/**
 * Shared encoder for the 8-bit floats, on float32 bits. `bias`/`mantBits` pick the format;
 * `maxBits` is the bit pattern of the largest finite value (as float32) and `maxCode` its code.
 * Finite values above max saturate; Inf goes to `infCode` (saturation for E4M3, which has no Inf).
 */
function fp8FromBits(x: number, bias: number, mantBits: number, maxBits: number, maxCode: number, infCode: number, nanCode: number): number {
  const sign = (x >>> 24) & 0x80;
  const a = x & 0x7fffffff;
  if (a > 0x7f800000) return nanCode;
  if (a === 0x7f800000) return sign | infCode;
  if (a > maxBits) return sign | maxCode;
  const exp = a >>> 23;
  const e = exp - 127 + bias;
  const dropped = 23 - mantBits;
  if (e >= 1) return sign | rneShift((e << 23) | (a & 0x7fffff), dropped);
  // Subnormal: units of 2^(1-bias-mantBits).
  const shift = 151 - bias - mantBits - exp;
  if (exp === 0 || shift > 24) return sign;
  return sign | rneShift((a & 0x7fffff) | 0x800000, shift);
}

const E4M3_MAX_BITS = 0x43e00000; // 448
const E5M2_MAX_BITS = 0x47600000; // 57344

/** OCP FP8 E4M3: saturating, NaN → 0x7F. */
export function float32ToE4M3(v: number): number {
  return fp8FromBits(f32Bits(v), 7, 3, E4M3_MAX_BITS, 0x7e, 0x7e, 0x7f);
}

/** OCP FP8 E5M2: finite overflow saturates to ±57344, ±Inf stays Inf, NaN → 0x7E. */
export function float32ToE5M2(v: number): number {
  return fp8FromBits(f32Bits(v), 15, 2, E5M2_MAX_BITS, 0x7b, 0x7c, 0x7e);
}

const E4M3_TABLE = new Float32Array(256);
const E5M2_TABLE = new Float32Array(256);
for (let b = 0; b < 256; b++) {
  const sign = b & 0x80 ? -1 : 1;
  {
    const exp = (b >>> 3) & 0xf;
    const mant = b & 7;
    E4M3_TABLE[b] = (b & 0x7f) === 0x7f ? NaN : exp === 0 ? sign * mant * 2 ** -9 : sign * (8 + mant) * 2 ** (exp - 10);
  }
  {
    const exp = (b >>> 2) & 0x1f;
    const mant = b & 3;
    E5M2_TABLE[b] = exp === 31 ? (mant === 0 ? sign * Infinity : NaN) : exp === 0 ? sign * mant * 2 ** -16 : sign * (4 + mant) * 2 ** (exp - 17);
  }
}

export function e4m3ToFloat32(b: number): number {
  return E4M3_TABLE[b & 0xff];
}

export function e5m2ToFloat32(b: number): number {
  return E5M2_TABLE[b & 0xff];
}

const FP4_MAGNITUDES = [0, 0.5, 1, 1.5, 2, 3, 4, 6];
const FP4_TABLE = new Float32Array(16);
for (let c = 0; c < 16; c++) FP4_TABLE[c] = (c & 8 ? -1 : 1) * FP4_MAGNITUDES[c & 7];

/** Reference rule on magnitudes, used only to fill the lookup tables below. */
function fp4MagnitudeCode(a: number): number {
  // Thresholds are the midpoints; `<=` where the lower code is even, `<` where the upper one is.
  if (a <= 0.25) return 0;
  if (a < 0.75) return 1;
  if (a <= 1.25) return 2;
  if (a < 1.75) return 3;
  if (a <= 2.5) return 4;
  if (a < 3.5) return 5;
  if (a <= 5) return 6;
  return 7;
}

function fp4Reference(v: number): number {
  const c = fp4MagnitudeCode(Math.abs(v));
  return v < 0 && c !== 0 ? c | 8 : c;
}

// Every threshold is a multiple of 1/4, so the code is constant on each open quarter (k/4, (k+1)/4)
// and only exact multiples need their own entry. Indexed by k + 24 for k in -24..23, sign included:
// a compare chain (or a sign branch) would mispredict on random weights.
const FP4_OPEN = new Uint8Array(48);
const FP4_AT = new Uint8Array(48);
for (let k = -24; k < 24; k++) {
  FP4_OPEN[k + 24] = fp4Reference((k + 0.5) / 4);
  FP4_AT[k + 24] = fp4Reference(k / 4);
}

/**
 * FP4 (E2M1) code: nearest magnitude, ties to the even code, saturating at ±6, NaN → 0.
 * Values that round to zero get code 0 (never 8, "-0"), so repacking a decoded -0 is stable.
 */
export function float32ToFP4Code(v: number): number {
  const q = v * 4; // exact: a power-of-two multiply
  if (!(q >= -24 && q < 24)) return q >= 24 ? 7 : q < -24 ? 15 : 0; // saturate; NaN → 0
  const k = Math.floor(q);
  return q === k ? FP4_AT[k + 24] : FP4_OPEN[k + 24];
}

export function fp4CodeToFloat32(c: number): number {
  return FP4_TABLE[c & 15];
}

// ---- quantization ----

export interface QuantParams {
  scale: number;
  zeroPoint: number;
}

const MIN_F32 = 2 ** -149;

/** Scales are stored as float32 in files, so keep them float32 here too; never let them underflow to 0. */
function toScale(s: number): number {
  const f = Math.fround(s);
  return f > 0 ? f : MIN_F32;
}

function nextUpF32(f: number): number {
  return bitsToF32(f32Bits(f) + 1);
}

/**
 * For 32-bit codes the scale is rounded up instead: a value clamped at the range end would decode to
 * a float32 more than half a step away and re-encode to a different code, so in-range data must
 * never need clamping. (Small codes are unaffected: their decoded values re-encode exactly.)
 */
function toScaleUp(s: number): number {
  const f = toScale(s);
  return f < s ? nextUpF32(f) : f;
}

function isWide(d: DType): boolean {
  return d === DType.Int64 || d === DType.Int32 || d === DType.Uint64 || d === DType.Uint32;
}

interface IntRange {
  min: number;
  max: number;
  divisor: number;
}

const SIGNED: Partial<Record<DType, IntRange>> = {
  [DType.Int64]: { min: -2147483648, max: 2147483647, divisor: 2147483647 },
  [DType.Int32]: { min: -2147483648, max: 2147483647, divisor: 2147483647 },
  [DType.Int16]: { min: -32768, max: 32767, divisor: 32767 },
  [DType.Int8]: { min: -128, max: 127, divisor: 127 },
  [DType.Int4]: { min: -8, max: 7, divisor: 7 },
  [DType.Int2]: { min: -2, max: 1, divisor: 1 },
  [DType.Ternary]: { min: -1, max: 1, divisor: 1 },
};

function unsignedMax(d: DType): number {
  switch (d) {
    case DType.Uint64:
    case DType.Uint32:
      return 4294967295;
    case DType.Uint16:
      return 65535;
    case DType.Uint8:
      return 255;
    case DType.Uint4:
      return 15;
    case DType.Uint2:
      return 3;
    default:
      return 0;
  }
}

function isRawFloat(d: DType): boolean {
  return d === DType.Float64 || d === DType.Float32 || d === DType.Float16 || d === DType.BFloat16;
}

/**
 * Round half away from zero (Go's math.Round). floor(x + 0.5) is fast (Math.round and Math.trunc are
 * several times slower in V8) but wrong for negative ties and when x + 0.5 rounds up; both show as
 * r − x ≥ 0.5 (computed exactly) and are rare, so the fix-up branch predicts well.
 */
function roundHalfAway(x: number): number {
  const r = Math.floor(x + 0.5);
  const d = r - x;
  return d > 0.5 || (d === 0.5 && x < 0) ? r - 1 : r;
}

/**
 * Integer code of w: clamp(round(w/scale) + zp, min, max). NaN is quantized as if it were 0 (code
 * `zp`, which decodes to 0); ±Inf clamp to the range ends. Never -0.
 * Clamping x to [min − zp, max − zp] before rounding gives the same result (the bounds are integers)
 * and is much faster in V8: clamped codes often equal a bound (ternary), and Math.min/max on equal
 * inputs takes a slow ±0 path; branchy clamps mixing small ints and doubles box every 32-bit code.
 */
function intCode(w: number, scale: number, zp: number, min: number, max: number): number {
  const x = w / scale;
  return roundHalfAway(Math.min(Math.max(x === x ? x : 0, min - zp), max - zp)) + zp;
}

/**
 * Parameters for packing `values` as `d`. Non-finite values are left out of the statistics.
 * Raw floats: {1, 0}. FP8: maxAbs/127. FP4: maxAbs/6. Signed ints: maxAbs/divisor. Binary: mean |w|.
 * Unsigned: affine over [min(lo,0), max(hi,0)] with an integer zero point.
 */
export function quantParamsFor(d: DType, values: Float32Array): QuantParams {
  checkDType(d);
  if (isRawFloat(d)) return { scale: 1, zeroPoint: 0 };
  const n = values.length;
  if (d === DType.Binary) {
    let sum = 0;
    let cnt = 0;
    for (let i = 0; i < n; i++) {
      const a = Math.abs(values[i]);
      if (a !== Infinity && a === a) {
        sum += a;
        cnt++;
      }
    }
    return { scale: sum > 0 ? toScale(sum / cnt) : 1, zeroPoint: 0 };
  }
  if (isUnsigned(d)) {
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (v < lo && v !== -Infinity) lo = v;
      else if (v > hi && v !== Infinity) hi = v;
    }
    if (hi - lo === 0) return { scale: 1, zeroPoint: 0 };
    const qmax = unsignedMax(d);
    let scale: number;
    let zp: number;
    if (isWide(d)) {
      // Rounding hi and the zero point up together can still land one past qmax; one ulp more fixes it.
      scale = toScaleUp((hi - lo) / qmax);
      zp = roundHalfAway(-lo / scale);
      while (roundHalfAway(hi / scale) + zp > qmax) {
        scale = nextUpF32(scale);
        zp = roundHalfAway(-lo / scale);
      }
    } else {
      scale = toScale((hi - lo) / qmax);
      zp = roundHalfAway(-lo / scale);
    }
    return { scale, zeroPoint: zp < 0 ? 0 : zp > qmax ? qmax : zp + 0 };
  }
  let maxAbs = 0;
  for (let i = 0; i < n; i++) {
    const a = Math.abs(values[i]);
    if (a > maxAbs && a !== Infinity) maxAbs = a;
  }
  if (maxAbs === 0) return { scale: 1, zeroPoint: 0 };
  let divisor: number;
  if (d === DType.FP8E4M3 || d === DType.FP8E5M2) divisor = 127;
  else if (d === DType.FP4) divisor = 6;
  else divisor = SIGNED[d]!.divisor;
  return { scale: isWide(d) ? toScaleUp(maxAbs / divisor) : toScale(maxAbs / divisor), zeroPoint: 0 };
}

/** What one weight becomes after pack → unpack with these params (zeroPoint is used by unsigned types only). */
export function simulatePrecision(w: number, d: DType, scale: number, zeroPoint = 0): number {
  checkDType(d);
  const v = Math.fround(w);
  switch (d) {
    case DType.Float64:
    case DType.Float32:
      return v;
    case DType.Float16:
      return halfBitsToFloat32(float32ToHalfBits(v));
    case DType.BFloat16:
      return bfloat16BitsToFloat32(float32ToBFloat16Bits(v));
    case DType.FP8E4M3:
      return Math.fround(E4M3_TABLE[float32ToE4M3(v / scale)] * scale);
    case DType.FP8E5M2:
      return Math.fround(E5M2_TABLE[float32ToE5M2(v / scale)] * scale);
    case DType.FP4:
      return Math.fround(FP4_TABLE[float32ToFP4Code(v / scale)] * scale);
    case DType.Binary:
      return Math.fround(v >= 0 ? scale : -scale);
  }
  if (isUnsigned(d)) return Math.fround((intCode(v, scale, zeroPoint, 0, unsignedMax(d)) - zeroPoint) * scale);
  const r = SIGNED[d]!;
  return Math.fround(intCode(v, scale, 0, r.min, r.max) * scale);
}

// Sub-byte types compute codes a chunk at a time, then pack whole bytes: cheaper than a read-modify-write
// of the output byte per element. CHUNK is a multiple of 8, so every chunk starts on a byte boundary.
const CHUNK = 4096;
const codeChunk = new Uint8Array(CHUNK);

/** Packs codeChunk[0..m) (low `bits` bits of each) into `out` starting at element `base`, first value highest. */
function packChunk(out: Uint8Array, base: number, m: number, bits: 4 | 2): void {
  const c = codeChunk;
  let o = (base * bits) >> 3;
  let j = 0;
  if (bits === 4) {
    for (; j + 1 < m; j += 2) out[o++] = ((c[j] & 15) << 4) | (c[j + 1] & 15);
    if (j < m) out[o] = (c[j] & 15) << 4;
  } else {
    for (; j + 3 < m; j += 4) out[o++] = ((c[j] & 3) << 6) | ((c[j + 1] & 3) << 4) | ((c[j + 2] & 3) << 2) | (c[j + 3] & 3);
    if (j < m) {
      let b = 0;
      for (let k = 0; j < m; j++, k++) b |= (c[j] & 3) << (6 - 2 * k);
      out[o] = b;
    }
  }
}

/**
 * Quantizes and packs natively (little-endian; sub-byte types first value in the high bits,
 * tails zero-padded). NaN never throws: ints store it as 0, FP4 as code 0, FP8 as its NaN code,
 * Binary as bit 0.
 */
export function packWeights(d: DType, values: Float32Array, q: QuantParams): Uint8Array {
  checkDType(d);
  const n = values.length;
  const out = new Uint8Array(packedByteLength(d, n));
  const scale = q.scale;
  // Float32Array views are always 4-byte aligned, so the raw bits can be read without a scratch copy.
  const raw = new Uint32Array(values.buffer, values.byteOffset, n);
  switch (d) {
    case DType.Float64: {
      const dv = new DataView(out.buffer);
      for (let i = 0; i < n; i++) dv.setFloat64(i * 8, values[i], true);
      return out;
    }
    case DType.Float32: {
      const dv = new DataView(out.buffer);
      for (let i = 0; i < n; i++) dv.setUint32(i * 4, raw[i], true);
      return out;
    }
    case DType.Float16:
      for (let i = 0; i < n; i++) {
        const h = halfFromBits(raw[i]);
        out[2 * i] = h & 0xff;
        out[2 * i + 1] = h >>> 8;
      }
      return out;
    case DType.BFloat16:
      for (let i = 0; i < n; i++) {
        const h = bf16FromBits(raw[i]);
        out[2 * i] = h & 0xff;
        out[2 * i + 1] = h >>> 8;
      }
      return out;
    case DType.FP8E4M3:
      for (let i = 0; i < n; i++) out[i] = float32ToE4M3(values[i] / scale);
      return out;
    case DType.FP8E5M2:
      for (let i = 0; i < n; i++) out[i] = float32ToE5M2(values[i] / scale);
      return out;
    case DType.FP4:
      for (let base = 0; base < n; base += CHUNK) {
        const m = Math.min(CHUNK, n - base);
        for (let j = 0; j < m; j++) codeChunk[j] = float32ToFP4Code(values[base + j] / scale);
        packChunk(out, base, m, 4);
      }
      return out;
    case DType.Binary:
      for (let i = 0; i < n; i++) if (values[i] >= 0) out[i >> 3] |= 0x80 >>> (i & 7);
      return out;
  }
  if (isUnsigned(d)) {
    const zp = q.zeroPoint;
    const qmax = unsignedMax(d);
    switch (d) {
      case DType.Uint64:
      case DType.Uint32: {
        // Words: 2 per element for uint64 (the high word stays 0).
        const step = d === DType.Uint64 ? 2 : 1;
        if (HOST_LE) {
          // An explicit `>>> 0` is measurably faster in V8 than storing the (possibly > 2^31) double as is.
          const w = new Uint32Array(out.buffer);
          if (step === 1) for (let i = 0; i < n; i++) w[i] = intCode(values[i], scale, zp, 0, qmax) >>> 0;
          else for (let i = 0; i < n; i++) w[2 * i] = intCode(values[i], scale, zp, 0, qmax) >>> 0;
        } else {
          const dv = new DataView(out.buffer);
          for (let i = 0; i < n; i++) dv.setUint32(i * step * 4, intCode(values[i], scale, zp, 0, qmax), true);
        }
        return out;
      }
      case DType.Uint16:
        for (let i = 0; i < n; i++) {
          const c = intCode(values[i], scale, zp, 0, qmax);
          out[2 * i] = c & 0xff;
          out[2 * i + 1] = c >>> 8;
        }
        return out;
      case DType.Uint8:
        for (let i = 0; i < n; i++) out[i] = intCode(values[i], scale, zp, 0, qmax);
        return out;
      case DType.Uint4:
      default: {
        // Uint4, Uint2
        const bits = d === DType.Uint4 ? 4 : 2;
        for (let base = 0; base < n; base += CHUNK) {
          const m = Math.min(CHUNK, n - base);
          for (let j = 0; j < m; j++) codeChunk[j] = intCode(values[base + j], scale, zp, 0, qmax);
          packChunk(out, base, m, bits);
        }
        return out;
      }
    }
  }
  const { min, max } = SIGNED[d]!;
  switch (d) {
    case DType.Int64:
      // Codes fit int32: low word, then its sign extension.
      if (HOST_LE) {
        const w = new Int32Array(out.buffer);
        for (let i = 0; i < n; i++) {
          const c = intCode(values[i], scale, 0, min, max);
          w[2 * i] = c;
          w[2 * i + 1] = c >> 31;
        }
      } else {
        const dv = new DataView(out.buffer);
        for (let i = 0; i < n; i++) {
          const c = intCode(values[i], scale, 0, min, max);
          dv.setInt32(i * 8, c, true);
          dv.setInt32(i * 8 + 4, c >> 31, true);
        }
      }
      return out;
    case DType.Int32:
      if (HOST_LE) {
        const w = new Int32Array(out.buffer);
        for (let i = 0; i < n; i++) w[i] = intCode(values[i], scale, 0, min, max);
      } else {
        const dv = new DataView(out.buffer);
        for (let i = 0; i < n; i++) dv.setInt32(i * 4, intCode(values[i], scale, 0, min, max), true);
      }
      return out;
    case DType.Int16:
      for (let i = 0; i < n; i++) {
        const c = intCode(values[i], scale, 0, min, max);
        out[2 * i] = c & 0xff;
        out[2 * i + 1] = (c >> 8) & 0xff;
      }
      return out;
    case DType.Int8:
      for (let i = 0; i < n; i++) out[i] = intCode(values[i], scale, 0, min, max) & 0xff;
      return out;
    default: {
      // Int4, Int2, Ternary: two's complement fields (the Uint8Array store keeps the low 8 bits, the packer masks).
      const bits = d === DType.Int4 ? 4 : 2;
      for (let base = 0; base < n; base += CHUNK) {
        const m = Math.min(CHUNK, n - base);
        for (let j = 0; j < m; j++) codeChunk[j] = intCode(values[base + j], scale, 0, min, max);
        packChunk(out, base, m, bits);
      }
      return out;
    }
  }
}

/**
 * Decodes packed bytes into the float32 values a forward pass sees (every one float32-exact).
 * Writes into `out` when given (it must hold at least `count` values) and returns it.
 */
export function unpackWeights(d: DType, bytes: Uint8Array, count: number, q: QuantParams, out?: Float32Array): Float32Array {
  checkDType(d);
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`unpackWeights: bad count ${count}`);
  const expected = packedByteLength(d, count);
  if (bytes.length !== expected) {
    throw new FormatError('weights', `${count} ${NAMES[d]} values need ${expected} bytes, got ${bytes.length}`);
  }
  if (out === undefined) out = new Float32Array(count);
  else if (out.length < count) throw new ShapeError(`unpackWeights: output holds ${out.length} values, need ${count}`);
  const o = out;
  const n = count;
  const scale = q.scale;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (d) {
    case DType.Float64:
      for (let i = 0; i < n; i++) o[i] = dv.getFloat64(i * 8, true);
      return o;
    case DType.Float32:
      for (let i = 0; i < n; i++) o[i] = dv.getFloat32(i * 4, true);
      return o;
    case DType.Float16: {
      const t = getHalfTable();
      for (let i = 0; i < n; i++) o[i] = t[bytes[2 * i] | (bytes[2 * i + 1] << 8)];
      return o;
    }
    case DType.BFloat16: {
      // Writing the bits through a Uint32 view of `o` avoids a float round trip per element.
      const ob = new Uint32Array(o.buffer, o.byteOffset, n);
      for (let i = 0; i < n; i++) ob[i] = ((bytes[2 * i] << 16) | (bytes[2 * i + 1] << 24)) >>> 0;
      return o;
    }
    case DType.FP8E4M3:
      for (let i = 0; i < n; i++) o[i] = E4M3_TABLE[bytes[i]] * scale;
      return o;
    case DType.FP8E5M2:
      for (let i = 0; i < n; i++) o[i] = E5M2_TABLE[bytes[i]] * scale;
      return o;
    case DType.FP4:
      for (let i = 0; i < n; i++) o[i] = FP4_TABLE[(bytes[i >> 1] >>> ((~i & 1) << 2)) & 15] * scale;
      return o;
    case DType.Binary: {
      const pos = Math.fround(scale);
      // ±1 times the scale rather than a select: random signs would mispredict a branch.
      for (let i = 0; i < n; i++) o[i] = pos * ((((bytes[i >> 3] >>> (7 - (i & 7))) & 1) << 1) - 1);
      return o;
    }
  }
  // Storing into a Float32Array performs the single float32 rounding of code·scale.
  const zp = isUnsigned(d) ? q.zeroPoint : 0;
  switch (d) {
    case DType.Uint64:
      for (let i = 0; i < n; i++) o[i] = (dv.getUint32(i * 8 + 4, true) * 4294967296 + dv.getUint32(i * 8, true) - zp) * scale;
      return o;
    case DType.Uint32:
      for (let i = 0; i < n; i++) o[i] = (dv.getUint32(i * 4, true) - zp) * scale;
      return o;
    case DType.Uint16:
      for (let i = 0; i < n; i++) o[i] = ((bytes[2 * i] | (bytes[2 * i + 1] << 8)) - zp) * scale;
      return o;
    case DType.Uint8:
      for (let i = 0; i < n; i++) o[i] = (bytes[i] - zp) * scale;
      return o;
    case DType.Uint4:
      for (let i = 0; i < n; i++) o[i] = (((bytes[i >> 1] >>> ((~i & 1) << 2)) & 15) - zp) * scale;
      return o;
    case DType.Uint2:
      for (let i = 0; i < n; i++) o[i] = (((bytes[i >> 2] >>> ((3 - (i & 3)) << 1)) & 3) - zp) * scale;
      return o;
    case DType.Int64:
      for (let i = 0; i < n; i++) o[i] = (dv.getInt32(i * 8 + 4, true) * 4294967296 + dv.getUint32(i * 8, true)) * scale;
      return o;
    case DType.Int32:
      for (let i = 0; i < n; i++) o[i] = dv.getInt32(i * 4, true) * scale;
      return o;
    case DType.Int16:
      for (let i = 0; i < n; i++) o[i] = (((bytes[2 * i] | (bytes[2 * i + 1] << 8)) << 16) >> 16) * scale;
      return o;
    case DType.Int8:
      for (let i = 0; i < n; i++) o[i] = ((bytes[i] << 24) >> 24) * scale;
      return o;
    case DType.Int4:
      // Shift the nibble to the top of an int32 and back down to sign-extend it.
      for (let i = 0; i < n; i++) o[i] = ((bytes[i >> 1] << (24 + ((i & 1) << 2))) >> 28) * scale;
      return o;
    default: // Int2, Ternary
      for (let i = 0; i < n; i++) o[i] = ((bytes[i >> 2] << (24 + ((i & 3) << 1))) >> 30) * scale;
      return o;
  }
}
