/**
 * Output buffers that a kernel overwrites completely. Zeroing a fresh multi-megabyte Float32Array
 * costs about as much as writing it (0.45 ms of a 6.4 MB conv output here); in Node,
 * Buffer.allocUnsafeSlow hands out the memory unzeroed (from 32 KiB up: 0.35 µs instead of 2.9 µs for a
 * zeroed 64 KiB array, measured). Browsers get an ordinary zeroed array.
 * Only for buffers every element of which is written before it is read: the contents are then the
 * same bits whichever way the memory came.
 */
const UNZEROED_MIN_VALUES = 1 << 13;

type UnsafeAlloc = (bytes: number) => { buffer: ArrayBuffer; byteOffset: number };
const allocUnsafeSlow = (globalThis as { Buffer?: { allocUnsafeSlow?: UnsafeAlloc } }).Buffer?.allocUnsafeSlow;

/** `reuse` when it holds exactly n values (a caller's buffer from an earlier pass), else overwrittenFloat32(n). */
export function reusedOrOverwritten(reuse: Float32Array | undefined, n: number): Float32Array {
  return reuse?.length === n ? reuse : overwrittenFloat32(n);
}

/** n float32 values, zeroed unless n is large and the host can skip it (see above). */
export function overwrittenFloat32(n: number): Float32Array<ArrayBuffer> {
  if (n < UNZEROED_MIN_VALUES || !allocUnsafeSlow) return new Float32Array(n);
  const b = allocUnsafeSlow(n * 4);
  return new Float32Array(b.buffer, b.byteOffset, n);
}
