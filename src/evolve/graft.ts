import { SpecError } from '../core/errors.js';
import { VolumetricNetwork } from '../grid/network.js';
import { networkToJson } from '../grid/persistence.js';
import { buildNetwork } from '../grid/spec.js';
import { COMBINE_MODES } from '../layers/containers.js';
import type { Layer } from '../layers/layer.js';

export interface GraftOptions {
  /** For combine_mode "filter": the gate layer spec (one output per network). Default: a Dense gate over `inputSize` features. */
  gate?: Record<string, unknown>;
  /** Input width, needed for the default filter gate. */
  inputSize?: number;
  /** Seed for the default gate's initialization. Default 1. */
  seed?: number;
}

/**
 * One network as a single nested layer spec: its only layer, or a Sequential of its layers in
 * traversal order. Weights travel with it; remote links cannot be nested and are refused.
 */
export function networkAsLayerSpec(net: VolumetricNetwork, path = 'network'): Record<string, unknown> {
  const layers = networkToJson(net).layers as Record<string, unknown>[];
  if (layers.length === 0) throw new SpecError(path, 'a network with at least one layer', 'an empty network');
  const linked = net.layers().find((l) => l.remote);
  if (linked) throw SpecError.at(path, `layer (${linked.z},${linked.y},${linked.x},${linked.l}) has a remote link, which cannot be grafted into a container`);
  const strip = (o: Record<string, unknown>) => ({ ...o, z: 0, y: 0, x: 0, l: 0 });
  if (layers.length === 1) return strip(layers[0]);
  return { z: 0, y: 0, x: 0, l: 0, type: 'Sequential', sequential_layers: layers.map(strip) };
}

function buildSingleLayer(spec: Record<string, unknown>, id: string): VolumetricNetwork {
  return buildNetwork({ id, depth: 1, rows: 1, cols: 1, layers_per_cell: 1, layers: [spec] });
}

/**
 * Grafts several networks into one Parallel layer: each network becomes a branch that reads the
 * same input, and `combineMode` (add, avg, concat, filter, grid_scatter) merges their outputs.
 * Returns a one-cell network holding that layer; `.cells[0]` is the layer itself.
 */
export function graftNetworks(networks: readonly VolumetricNetwork[], combineMode: string, options: GraftOptions = {}): VolumetricNetwork {
  if (networks.length === 0) throw new SpecError('networks', 'at least one network to graft', 'none');
  const mode = combineMode.toLowerCase();
  if (!(COMBINE_MODES as readonly string[]).includes(mode)) throw new SpecError('combineMode', `one of ${COMBINE_MODES.join(', ')}`, combineMode);
  const spec: Record<string, unknown> = {
    z: 0, y: 0, x: 0, l: 0,
    type: 'Parallel',
    combine_mode: mode,
    parallel_branches: networks.map((n, i) => networkAsLayerSpec(n, `networks[${i}]`)),
  };
  if (mode === 'filter') {
    if (options.gate) {
      spec.filter_gate = options.gate;
    } else {
      if (!options.inputSize) throw new SpecError('inputSize', 'the input width, to build the default filter gate (or pass gate)');
      spec.filter_gate = { type: 'Dense', input_height: options.inputSize, output_height: networks.length };
    }
  }
  return buildNetworkWithSeed(spec, 'graft', options.seed ?? 1);
}

function buildNetworkWithSeed(spec: Record<string, unknown>, id: string, seed: number): VolumetricNetwork {
  return buildNetwork({ id, depth: 1, rows: 1, cols: 1, layers_per_cell: 1, layers: [spec] }, { seed });
}

/** x + f(x): a Parallel "add" of an identity branch (an empty Sequential) and the whole network f. */
export function residualGraft(net: VolumetricNetwork): VolumetricNetwork {
  return buildSingleLayer(
    {
      z: 0, y: 0, x: 0, l: 0,
      type: 'Parallel',
      combine_mode: 'add',
      parallel_branches: [{ type: 'Sequential', sequential_layers: [] }, networkAsLayerSpec(net)],
    },
    'residual-graft',
  );
}

/** The grafted layer of a network made by graftNetworks / residualGraft. */
export function graftedLayer(net: VolumetricNetwork): Layer {
  return net.cells[0]!;
}
