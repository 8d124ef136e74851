import { DType, dtypeName } from '../core/dtype.js';
import { encodeBase64 } from '../core/base64.js';
import { shortestFloat32 } from '../core/floatFormat.js';
import { activationName } from '../layers/activations.js';
import { requireFloatWeights } from '../engine/decode.js';
import type { Layer } from '../layers/layer.js';
import { CONFIG_FIELDS } from './fields.js';
import type { VolumetricNetwork } from './network.js';
import { buildNetwork, type BuildOptions } from './spec.js';

export interface NetworkJsonOptions {
  /** Encode each layer's parameters (default true); false gives the bare spec, as safetensors stores it beside its tensors. */
  weights?: boolean;
}

/**
 * The original's persistence JSON: the spec fields plus `weights` (base64 of the layer's parameters
 * natively packed in its active dtype), `native: true` and `scale`. Loom-TS adds `zero_point` for
 * unsigned types (omitted when 0, so the original's files read as written), keeps remote links, and
 * writes a grid layer that shares an earlier grid layer's parameters (a tied LM head) as
 * `tied_to: {z, y, x, l}` of that layer, without weights of its own.
 */
export function networkToJson(net: VolumetricNetwork, extra: Record<string, unknown> = {}, options: NetworkJsonOptions = {}): Record<string, unknown> {
  const owners = tiedOwners(net);
  const withWeights = options.weights ?? true;
  return {
    id: net.id,
    depth: net.depth,
    rows: net.rows,
    cols: net.cols,
    layers_per_cell: net.layersPerCell,
    layers: net.layers().map((layer) => {
      const owner = owners.get(layer);
      const out = layerToJson(layer, withWeights && !owner);
      if (owner) out.tied_to = { z: owner.z, y: owner.y, x: owner.x, l: owner.l };
      return out;
    }),
    ...extra,
  };
}

/** Grid layers whose weight store an earlier grid layer (in z, y, x, l order) already holds, mapped to that layer. */
export function tiedOwners(net: VolumetricNetwork): Map<Layer, Layer> {
  const firstHolder = new Map<unknown, Layer>();
  const owners = new Map<Layer, Layer>();
  for (const layer of net.layers()) {
    if (!layer.weights) continue;
    const owner = firstHolder.get(layer.weights);
    if (owner) owners.set(layer, owner);
    else firstHolder.set(layer.weights, layer);
  }
  return owners;
}

/** Pretty-printed with two-space indentation, as the original writes it. */
export function serializeNetwork(net: VolumetricNetwork, extra: Record<string, unknown> = {}): string {
  return JSON.stringify(networkToJson(net, extra), null, 2);
}

export function deserializeNetwork(text: string, options: BuildOptions = {}): VolumetricNetwork {
  return buildNetwork(text, options);
}

function layerToJson(layer: Layer, withWeights = true): Record<string, unknown> {
  const out: Record<string, unknown> = {
    z: layer.z,
    y: layer.y,
    x: layer.x,
    l: layer.l,
    type: layer.kind.name,
    activation: activationName(layer.activation),
    dtype: dtypeName(layer.dtype),
  };
  for (const field of CONFIG_FIELDS) {
    const v = layer.config[field.key];
    if (v === undefined || v === 0 || v === false || v === '' || (Array.isArray(v) && v.length === 0)) continue;
    out[field.json] = v;
  }
  if (withWeights) requireFloatWeights(layer, 'save');
  if (withWeights && layer.weights) {
    const version = layer.weights.morph(layer.dtype);
    out.weights = encodeBase64(version.bytes);
    out.native = true;
    out.scale = shortestFloat32(layer.dtype === DType.Float32 ? 1 : version.params.scale);
    if (version.params.zeroPoint !== 0) out.zero_point = version.params.zeroPoint;
  }
  if (layer.kind.childrenField && layer.children) out[layer.kind.childrenField] = layer.children.map((child) => layerToJson(child, withWeights));
  for (const [field, child] of Object.entries(layer.namedChildren ?? {})) out[field] = layerToJson(child, withWeights);
  if (layer.remote) {
    out.is_remote_link = true;
    out.target_z = layer.remote.z;
    out.target_y = layer.remote.y;
    out.target_x = layer.remote.x;
    out.target_l = layer.remote.l;
  }
  if (layer.disabled) out.is_disabled = true;
  return out;
}
