import { dtypeName } from '../core/dtype.js';
import { Tensor } from '../core/tensor.js';
import { forwardNetwork } from '../engine/run.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { activationName } from '../layers/activations.js';
import { walkLayer, type Coord, type Layer } from '../layers/layer.js';

export interface LayerTelemetry extends Coord {
  type: string;
  activation: string;
  dtype: string;
  /** Parameters of this layer and everything nested in it. */
  parameters: number;
  disabled: boolean;
  remote?: Coord;
  combineMode?: string;
  /** Shapes seen in a probe pass (only when the blueprint was taken with a probe shape). */
  inputShape?: number[];
  outputShape?: number[];
  branches?: LayerTelemetry[];
}

export interface ModelTelemetry {
  id: string;
  grid: { depth: number; rows: number; cols: number; layersPerCell: number };
  totalLayers: number;
  totalParameters: number;
  sizeBytes: number;
  layers: LayerTelemetry[];
}

/**
 * The structure of a network as JSON-ready data. With `probeShape`, one forward pass on zeros
 * records each grid layer's input and output shapes (no per-type shape rules needed).
 */
export function networkBlueprint(net: VolumetricNetwork, modelId = net.id, probeShape?: readonly number[]): ModelTelemetry {
  const shapes = new Map<number, { input: number[]; output: number[] }>();
  if (probeShape) {
    const { trace } = forwardNetwork(net, Tensor.zeros(probeShape), { keepTrace: true });
    trace!.plan.forEach((step, k) => shapes.set(step.index, { input: [...trace!.values[step.inputValue].shape], output: [...trace!.values[k + 1].shape] }));
  }
  const layers = [...net.entries()].map(([index, layer]) => {
    const t = layerTelemetry(layer);
    const s = shapes.get(index);
    if (s) {
      t.inputShape = s.input;
      t.outputShape = s.output;
    }
    return t;
  });
  return {
    id: modelId,
    grid: { depth: net.depth, rows: net.rows, cols: net.cols, layersPerCell: net.layersPerCell },
    totalLayers: layers.length,
    totalParameters: net.parameterCount(),
    sizeBytes: net.sizeInBytes(),
    layers,
  };
}

export function layerTelemetry(layer: Layer): LayerTelemetry {
  let parameters = 0;
  for (const l of walkLayer(layer)) parameters += l.weights?.count ?? 0;
  const t: LayerTelemetry = {
    z: layer.z,
    y: layer.y,
    x: layer.x,
    l: layer.l,
    type: layer.kind.name,
    activation: activationName(layer.activation),
    dtype: dtypeName(layer.dtype),
    parameters,
    disabled: layer.disabled,
  };
  if (layer.remote) t.remote = { ...layer.remote };
  if (layer.config.combineMode) t.combineMode = layer.config.combineMode;
  const nested = [...(layer.children ?? []), ...Object.values(layer.namedChildren ?? {})];
  if (nested.length > 0) t.branches = nested.map(layerTelemetry);
  return t;
}

/** Blueprints of several models in one document, as the original's NetworkBlueprint. */
export function networksBlueprint(models: Record<string, VolumetricNetwork>): { models: ModelTelemetry[] } {
  return { models: Object.entries(models).map(([id, net]) => networkBlueprint(net, id)) };
}
