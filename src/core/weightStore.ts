import { DType, dtypeName, packWeights, packedByteLength, quantParamsFor, unpackWeights, type QuantParams } from './dtype.js';
import { FormatError } from './errors.js';

/** One natively packed copy of a layer's parameters in a given dtype. */
export interface PackedVersion {
  readonly dtype: DType;
  /** The packed bytes exactly as persistence writes them. */
  readonly bytes: Uint8Array;
  readonly count: number;
  readonly params: QuantParams;
}

/** Float32 values of packed versions (getActive), held while their version is. */
const decodedVersions = new WeakMap<PackedVersion, Float32Array>();

/**
 * A layer's parameters: a float32 master (what optimizers update) plus packed versions per dtype
 * (an int4 version holds about 1/8 of the float32 bytes; that is what saves write). A forward pass in a
 * packed dtype computes with the version's decoded values, decoded on first use and kept with the
 * version, so repeated forwards do not decode again; Dense's packed kernels read the bytes directly.
 */
export class WeightStore {
  master: Float32Array;
  private readonly versions = new Map<DType, PackedVersion>();

  constructor(masterOrCount: Float32Array | number) {
    this.master = typeof masterOrCount === 'number' ? new Float32Array(masterOrCount) : masterOrCount;
  }

  get count(): number {
    return this.master.length;
  }

  /** Packs the master into `dtype` (once; cached until the master changes) and returns that version. */
  morph(dtype: DType): PackedVersion {
    const existing = this.versions.get(dtype);
    if (existing) return existing;
    const params = dtype === DType.Float32 ? { scale: 1, zeroPoint: 0 } : quantParamsFor(dtype, this.master);
    const bytes =
      dtype === DType.Float32
        ? new Uint8Array(this.master.buffer.slice(this.master.byteOffset, this.master.byteOffset + this.master.byteLength))
        : packWeights(dtype, this.master, params);
    const version: PackedVersion = { dtype, bytes, count: this.master.length, params };
    this.versions.set(dtype, version);
    return version;
  }

  /** The packed version of `dtype` if one exists (no packing). */
  version(dtype: DType): PackedVersion | undefined {
    return this.versions.get(dtype);
  }

  /** Dtypes currently held in packed form. */
  versionDTypes(): DType[] {
    return [...this.versions.keys()];
  }

  /**
   * Installs packed bytes read from a file as the canonical version of `dtype` and refreshes the
   * master from them, so saving again writes the same bytes and training starts from what was loaded.
   */
  setLoaded(dtype: DType, bytes: Uint8Array, params: QuantParams, source = 'weights'): void {
    const expected = packedByteLength(dtype, this.master.length);
    if (bytes.length !== expected) {
      throw new FormatError(
        source,
        `expected ${expected} bytes of ${dtypeName(dtype)} for ${this.master.length} parameters, got ${bytes.length}`,
      );
    }
    this.versions.clear();
    const version: PackedVersion = { dtype, bytes, count: this.master.length, params: { ...params } };
    this.versions.set(dtype, version);
    this.master = this.decode(version);
  }

  /** Restores the master from a packed version (what the original calls Unpack). */
  unpack(dtype: DType): void {
    const version = this.versions.get(dtype);
    if (!version) return;
    this.master = this.decode(version);
    for (const d of [...this.versions.keys()]) if (d !== dtype) this.versions.delete(d);
  }

  /**
   * The float32 values a forward pass in `dtype` computes with: the master for float32, else the
   * packed version decoded once and kept while the version lives (a master change drops both).
   * Read-only: write parameters through `master` and markMasterChanged.
   */
  getActive(dtype: DType): Float32Array {
    if (dtype === DType.Float32) return this.master;
    const version = this.morph(dtype);
    let values = decodedVersions.get(version);
    if (!values) decodedVersions.set(version, (values = this.decode(version)));
    return values;
  }

  /** Bytes the `dtype` version occupies (packed). */
  sizeInBytes(dtype: DType): number {
    return packedByteLength(dtype, this.master.length);
  }

  /** Bytes held in memory right now: master plus every packed version and its decoded values (getActive). */
  residentBytes(): number {
    let n = this.master.byteLength;
    for (const [d, v] of this.versions) if (d !== DType.Float32) n += v.bytes.byteLength + (decodedVersions.get(v)?.byteLength ?? 0);
    return n;
  }

  /**
   * Moves the master into `into` (the same values; an optimizer's WebAssembly-resident buffer, so its
   * kernel updates the parameters in place) and returns it. Holders of the old master array keep a
   * copy that no longer changes.
   */
  relocate(into: Float32Array): Float32Array {
    if (into.length !== this.master.length) throw new RangeError(`relocate: ${into.length} values for ${this.master.length} parameters`);
    into.set(this.master);
    this.master = into;
    return into;
  }

  /** Call after writing to `master` (optimizer step, mutation): stale packed versions are dropped. */
  markMasterChanged(): void {
    this.versions.clear();
  }

  /** Plain SGD step on the master; drops stale versions. */
  applyGradients(grads: Float32Array, learningRate: number): void {
    const m = this.master;
    for (let i = 0; i < m.length; i++) m[i] -= learningRate * grads[i];
    this.markMasterChanged();
  }

  private decode(version: PackedVersion): Float32Array {
    if (version.dtype === DType.Float32) {
      const copy = new Uint8Array(version.bytes);
      return new Float32Array(copy.buffer, 0, version.count);
    }
    return unpackWeights(version.dtype, version.bytes, version.count, version.params);
  }
}
