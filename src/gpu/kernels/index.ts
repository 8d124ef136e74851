import { ALL_ACTIVATIONS } from '../../layers/activations.js';
import { activationName } from '../../layers/activations.js';
import { CONV_FORWARD_WGSL, CONV_INPUT_GRAD_WGSL, CONV_WEIGHT_GRAD_WGSL } from './conv.js';
import { activationBackwardWgsl, activationWgsl, ADD_WGSL, CHANNEL_SUMS_WGSL } from './elementwise.js';
import { gemmWgsl, TILE_HUGE, TILE_HUGE_16K, TILE_LARGE, TILE_MEDIUM, TILE_SMALL, tileStorage } from './gemm.js';
import { CROSS_ENTROPY_WGSL, MSE_WGSL } from './loss.js';
import { ADAMW_WGSL, CLIP_COEF_WGSL, CLIP_SCALE_WGSL, RMSPROP_WGSL, SGD_WGSL, SUMSQ_PARTIAL_WGSL } from './optim.js';

export interface ShaderSource {
  name: string;
  code: string;
  /** Workgroup memory the kernel needs beyond WebGPU's default 16 KiB (only used where the device has it). */
  workgroupStorage?: number;
}

const extra: (() => ShaderSource[])[] = [];

/** Kernel modules register their shader variants here so tests can compile every one. */
export function registerShaders(list: () => ShaderSource[]): void {
  extra.push(list);
}

/** Every WGSL program the GPU backend can generate, named, for validation on Dawn's null backend. */
export function allShaders(): ShaderSource[] {
  const out: ShaderSource[] = [];
  for (const tile of [TILE_LARGE, TILE_MEDIUM, TILE_SMALL]) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const bias of [false, true]) {
          for (const aligned of [false, true]) {
            out.push({ name: `gemm ${tile.bm}x${tile.bn} A${transA ? 'ᵀ' : ''}B${transB ? 'ᵀ' : ''}${bias ? ' bias' : ''}${aligned ? ' aligned' : ''}`, code: gemmWgsl({ transA, transB, bias, aligned, tile }) });
          }
        }
      }
    }
  }
  for (const tile of [TILE_HUGE, TILE_HUGE_16K]) {
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]]) {
      out.push({ name: `gemm ${tile.bm}x${tile.bn} bk${tile.bk} prefetch unrolled A${transA ? 'ᵀ' : ''}B${transB ? 'ᵀ' : ''}`, code: gemmWgsl({ transA, transB, bias: false, aligned: true, tile }), workgroupStorage: tileStorage(tile) });
    }
  }
  // Double buffers within the 16 KiB of workgroup memory every WebGPU device has.
  for (const staging of ['prefetch', 'double'] as const) {
    for (const tile of staging === 'prefetch' ? [TILE_LARGE, { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 }] : [TILE_MEDIUM, { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 }]) {
      for (const [transA, transB] of [[false, false], [true, false], [false, true]]) {
        out.push({ name: `gemm ${tile.bm}x${tile.bn} bk${tile.bk} ${staging} A${transA ? 'ᵀ' : ''}B${transB ? 'ᵀ' : ''}`, code: gemmWgsl({ transA, transB, bias: false, aligned: true, tile: { ...tile, staging } }) });
      }
    }
  }
  for (const a of ALL_ACTIVATIONS) {
    out.push({ name: `activation ${activationName(a)}`, code: activationWgsl(a) });
    out.push({ name: `activation backward ${activationName(a)}`, code: activationBackwardWgsl(a) });
  }
  out.push({ name: 'add', code: ADD_WGSL }, { name: 'channel sums', code: CHANNEL_SUMS_WGSL });
  out.push({ name: 'mse', code: MSE_WGSL }, { name: 'cross entropy', code: CROSS_ENTROPY_WGSL });
  out.push({ name: 'sgd', code: SGD_WGSL }, { name: 'adamw', code: ADAMW_WGSL }, { name: 'rmsprop', code: RMSPROP_WGSL });
  out.push({ name: 'sum of squares', code: SUMSQ_PARTIAL_WGSL }, { name: 'clip coefficient', code: CLIP_COEF_WGSL }, { name: 'clip scale', code: CLIP_SCALE_WGSL });
  out.push({ name: 'conv forward', code: CONV_FORWARD_WGSL }, { name: 'conv input grad', code: CONV_INPUT_GRAD_WGSL }, { name: 'conv weight grad', code: CONV_WEIGHT_GRAD_WGSL });
  for (const list of extra) out.push(...list());
  return out;
}
