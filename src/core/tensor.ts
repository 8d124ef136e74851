import { ShapeError } from './errors.js';

/**
 * A float32 tensor: flat data plus shape. `nested` carries the per-branch activation tree of
 * container layers so their backward pass can route gradients without outside bookkeeping.
 */
export class Tensor {
  readonly data: Float32Array;
  readonly shape: readonly number[];
  nested?: Tensor[];

  constructor(data: Float32Array, shape: readonly number[], nested?: Tensor[]) {
    const size = shapeSize(shape);
    if (size !== data.length) {
      throw new ShapeError(`shape [${shape.join(', ')}] holds ${size} values, but the data has ${data.length}`);
    }
    this.data = data;
    this.shape = [...shape];
    if (nested) this.nested = nested;
  }

  static zeros(shape: readonly number[]): Tensor {
    return new Tensor(new Float32Array(shapeSize(shape)), shape);
  }

  static from(shape: readonly number[], values: ArrayLike<number>): Tensor {
    return new Tensor(Float32Array.from(values), shape);
  }

  get size(): number {
    return this.data.length;
  }

  /** Leading dimension, the batch for every layer in this engine (1 for a rank-1 tensor). */
  get batch(): number {
    return this.shape.length >= 2 ? this.shape[0] : 1;
  }

  /** Values per batch row. */
  get rowSize(): number {
    const b = this.batch;
    return b === 0 ? 0 : this.data.length / b;
  }

  reshape(shape: readonly number[]): Tensor {
    return new Tensor(this.data, shape, this.nested);
  }

  clone(): Tensor {
    return new Tensor(this.data.slice(), this.shape, this.nested?.map((t) => t.clone()));
  }
}

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`invalid dimension ${d} in shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}
