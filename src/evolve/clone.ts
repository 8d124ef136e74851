import { WeightStore } from '../core/weightStore.js';
import { VolumetricNetwork } from '../grid/network.js';
import type { Layer } from '../layers/layer.js';

/** A deep copy of a layer: own config, own weight master (packed versions are rebuilt on demand), own children. */
export function cloneLayer(layer: Layer): Layer {
  const copy: Layer = {
    z: layer.z,
    y: layer.y,
    x: layer.x,
    l: layer.l,
    kind: layer.kind,
    activation: layer.activation,
    dtype: layer.dtype,
    config: structuredClone(layer.config),
    weights: layer.weights ? new WeightStore(layer.weights.master.slice()) : null,
    disabled: layer.disabled,
    remote: layer.remote ? { ...layer.remote } : null,
  };
  if (layer.children) copy.children = layer.children.map(cloneLayer);
  if (layer.namedChildren) {
    copy.namedChildren = Object.fromEntries(Object.entries(layer.namedChildren).map(([k, v]) => [k, cloneLayer(v)]));
  }
  return copy;
}

/** A deep copy of a network; nothing is shared with the source except the (immutable) layer kinds. */
export function cloneNetwork(net: VolumetricNetwork): VolumetricNetwork {
  const copy = new VolumetricNetwork(net.depth, net.rows, net.cols, net.layersPerCell, net.id);
  for (const layer of net.layers()) copy.setLayer(cloneLayer(layer));
  return copy;
}
