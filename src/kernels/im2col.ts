/**
 * im2col / col2im for 1D, 2D and 3D convolutions, all handled as 3D (unused axes have size 1,
 * kernel 1 and padding 0). Images are [batch][channels][inD][inH][inW]; the patch index q runs over
 * (channel, kd, kh, kw), the order of the conv weight [filters][channels][kD][kH][kW], so a
 * convolution of the whole batch becomes one GEMM against the columns.
 */

/** One convolution's shapes: input image, output grid, kernel, stride and per-axis padding. */
export interface ConvGeometry {
  channels: number;
  inD: number;
  inH: number;
  inW: number;
  outD: number;
  outH: number;
  outW: number;
  kD: number;
  kH: number;
  kW: number;
  stride: number;
  padD: number;
  padH: number;
  padW: number;
}

/** Output positions per sample (outD·outH·outW). */
export function positions(g: ConvGeometry): number {
  return g.outD * g.outH * g.outW;
}

/** Column width: channels·kD·kH·kW. */
export function patchSize(g: ConvGeometry): number {
  return g.channels * g.kD * g.kH * g.kW;
}

/** Input values per sample (channels·inD·inH·inW). */
export function imageSize(g: ConvGeometry): number {
  return g.channels * g.inD * g.inH * g.inW;
}

/** Extent of one axis of the zero-padded image: the input plus padding, or what the windows reach if that is more. */
function paddedExtent(n: number, out: number, k: number, s: number, p: number): number {
  return Math.max(n + 2 * p, (out - 1) * s + k);
}

/**
 * The zero-padded image layout plus, for each kernel offset t = (kd·kH + kh)·kW + kw and output
 * position p, the offset within one padded channel that the window reads. Padding the image once
 * per sample makes every read valid, so the column loops are plain gathers and scatters. The
 * offsets are shared by all channels: kD·kH·kW·P entries, a batch·channels-th of the columns.
 */
function paddedLayout(g: ConvGeometry): { map: Int32Array; Dp: number; Hp: number; Wp: number } {
  const { outD, outH, outW, kD, kH, kW, stride: s } = g;
  const Dp = paddedExtent(g.inD, outD, kD, s, g.padD);
  const Hp = paddedExtent(g.inH, outH, kH, s, g.padH);
  const Wp = paddedExtent(g.inW, outW, kW, s, g.padW);
  const map = new Int32Array(kD * kH * kW * outD * outH * outW);
  let o = 0;
  for (let kd = 0; kd < kD; kd++) {
    for (let kh = 0; kh < kH; kh++) {
      for (let kw = 0; kw < kW; kw++) {
        for (let od = 0; od < outD; od++) {
          for (let oh = 0; oh < outH; oh++) {
            const row = ((od * s + kd) * Hp + oh * s + kh) * Wp + kw;
            for (let ow = 0; ow < outW; ow++) map[o++] = row + ow * s;
          }
        }
      }
    }
  }
  return { map, Dp, Hp, Wp };
}

/**
 * The columns of `batch` images, transposed: colT[q][b·P + p] is the value that output position p
 * of sample b reads at patch index q (0 in the padding). [K][B·P], so each patch row is contiguous.
 */
export function im2col(input: Float32Array, g: ConvGeometry, batch: number, colT: Float32Array): void {
  const { channels: C, inD, inH, inW } = g;
  const { map, Dp, Hp, Wp } = paddedLayout(g);
  const P = positions(g);
  const kk = g.kD * g.kH * g.kW;
  const BP = batch * P;
  const padded = new Float32Array(C * Dp * Hp * Wp);
  const chP = Dp * Hp * Wp;
  for (let b = 0; b < batch; b++) {
    // The interior is overwritten for each sample; the border stays 0.
    let src = b * C * inD * inH * inW;
    for (let c = 0; c < C; c++) {
      for (let d = 0; d < inD; d++) {
        for (let h = 0; h < inH; h++, src += inW) {
          const dst = c * chP + ((d + g.padD) * Hp + h + g.padH) * Wp + g.padW;
          for (let w = 0; w < inW; w++) padded[dst + w] = input[src + w];
        }
      }
    }
    for (let c = 0; c < C; c++) {
      const base = c * chP;
      for (let t = 0; t < kk; t++) {
        const m = t * P;
        const dst = (c * kk + t) * BP + b * P;
        for (let p = 0; p < P; p++) colT[dst + p] = padded[base + map[m + p]];
      }
    }
  }
}

/**
 * The adjoint of im2col: adds every element of colT ([K][B·P]) back onto the image position it was
 * read from (padding positions are dropped). Sums in float64 in a fixed order, adds `bias[c]` to
 * every value of channel c when given, and stores float32 into `out` ([B][C][D][H][W]).
 */
export function col2im(colT: Float32Array, g: ConvGeometry, batch: number, out: Float32Array, bias: Float32Array | null = null): void {
  const { channels: C, inD, inH, inW } = g;
  const { map, Dp, Hp, Wp } = paddedLayout(g);
  const P = positions(g);
  const kk = g.kD * g.kH * g.kW;
  const BP = batch * P;
  const chP = Dp * Hp * Wp;
  const acc = new Float64Array(C * chP);
  for (let b = 0; b < batch; b++) {
    acc.fill(0);
    for (let c = 0; c < C; c++) {
      const base = c * chP;
      for (let t = 0; t < kk; t++) {
        const m = t * P;
        const src = (c * kk + t) * BP + b * P;
        for (let p = 0; p < P; p++) acc[base + map[m + p]] += colT[src + p];
      }
    }
    let dst = b * C * inD * inH * inW;
    for (let c = 0; c < C; c++) {
      const bc = bias ? bias[c] : 0;
      for (let d = 0; d < inD; d++) {
        for (let h = 0; h < inH; h++, dst += inW) {
          const src = c * chP + ((d + g.padD) * Hp + h + g.padH) * Wp + g.padW;
          for (let w = 0; w < inW; w++) out[dst + w] = acc[src + w] + bc;
        }
      }
    }
  }
}

/** out[r][b·cols + j] = in[b][r][j]: a batch of [rows][cols] blocks laid side by side as [rows][batch·cols]. */
export function batchToRowMajor(input: Float32Array, batch: number, rows: number, cols: number, out = new Float32Array(batch * rows * cols)): Float32Array {
  const width = batch * cols;
  for (let b = 0; b < batch; b++) {
    for (let r = 0; r < rows; r++) {
      const src = (b * rows + r) * cols;
      out.set(input.subarray(src, src + cols), r * width + b * cols);
    }
  }
  return out;
}

/**
 * out[b][r][j] = in[r][b·cols + j] (+ bias[r]): the inverse of batchToRowMajor, e.g. a GEMM result
 * [filters][B·P] back to NCHW, with each filter's bias added in the same pass.
 */
export function rowMajorToBatch(input: Float32Array, batch: number, rows: number, cols: number, out: Float32Array, bias: Float32Array | null = null): void {
  const width = batch * cols;
  for (let r = 0; r < rows; r++) {
    const v = bias ? bias[r] : 0;
    for (let b = 0; b < batch; b++) {
      const src = r * width + b * cols;
      const dst = (b * rows + r) * cols;
      if (bias) for (let j = 0; j < cols; j++) out[dst + j] = input[src + j] + v;
      else out.set(input.subarray(src, src + cols), dst);
    }
  }
}

/** out[b][j][r] = in[b][r][j]: transposes each [rows][cols] block of a batch. */
export function transposeBatch(input: Float32Array, batch: number, rows: number, cols: number, out = new Float32Array(batch * rows * cols)): Float32Array {
  const block = rows * cols;
  for (let b = 0; b < batch; b++) {
    const base = b * block;
    for (let r = 0; r < rows; r++) {
      const src = base + r * cols;
      for (let j = 0; j < cols; j++) out[base + j * rows + r] = input[src + j];
    }
  }
  return out;
}
