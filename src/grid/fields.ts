/**
 * The layer fields of the Loom JSON formats (network spec and persistence), in the order the
 * original writes them. One table drives parsing, validation and writing.
 */
export interface LayerConfig {
  inputHeight?: number;
  inputWidth?: number;
  inputDepth?: number;
  outputHeight?: number;
  outputWidth?: number;
  outputDepth?: number;
  inputChannels?: number;
  filters?: number;
  kernelSize?: number;
  stride?: number;
  padding?: number;
  outputPadding?: number;
  numHeads?: number;
  numKVHeads?: number;
  headDim?: number;
  queryDim?: number;
  dModel?: number;
  seqLength?: number;
  ropeFreqBase?: number;
  /** Loom-TS extension: RoPE frequency scaling, Hugging Face's rope_type "linear" or "llama3" (unset: none). */
  ropeScaling?: string;
  /** Scaling factor (both types); llama3 also takes the low/high frequency factors and the original context length. */
  ropeScalingFactor?: number;
  ropeLowFreqFactor?: number;
  ropeHighFreqFactor?: number;
  ropeOriginalMaxPositions?: number;
  vocabSize?: number;
  embeddingDim?: number;
  numClusters?: number;
  kmeansTemperature?: number;
  outputMode?: string;
  /** A name, or the original spec's enum number (0..9); Softmax's configure turns it into the name. */
  softmaxType?: string | number;
  temperature?: number;
  softmaxRows?: number;
  softmaxCols?: number;
  entmaxAlpha?: number;
  gumbelNoise?: boolean;
  combineMode?: string;
  useTiling?: boolean;
  tileSize?: number;
  mask?: boolean[];
  hierarchyLevels?: number[];
  /** Loom-TS extension: Dense/conv layers carry a bias vector after the weights (the original has none). */
  useBias?: boolean;
  /** Loom-TS extension: normalization epsilon (defaults: RMSNorm 1e-6, LayerNorm 1e-5, as the original). */
  epsilon?: number;
  /** Loom-TS extension: attention masks future positions. */
  causal?: boolean;
}

export type FieldKind = 'count' | 'number' | 'bool' | 'string' | 'nameOrIndex' | 'boolArray' | 'countArray';

export interface FieldDef {
  readonly json: string;
  readonly key: keyof LayerConfig;
  readonly kind: FieldKind;
}

const f = (json: string, key: keyof LayerConfig, kind: FieldKind): FieldDef => ({ json, key, kind });

/** Dimension and option fields, in persistence order. */
export const CONFIG_FIELDS: readonly FieldDef[] = [
  f('input_height', 'inputHeight', 'count'),
  f('input_width', 'inputWidth', 'count'),
  f('input_depth', 'inputDepth', 'count'),
  f('output_height', 'outputHeight', 'count'),
  f('output_width', 'outputWidth', 'count'),
  f('output_depth', 'outputDepth', 'count'),
  f('input_channels', 'inputChannels', 'count'),
  f('filters', 'filters', 'count'),
  f('kernel_size', 'kernelSize', 'count'),
  f('stride', 'stride', 'count'),
  f('padding', 'padding', 'count'),
  f('output_padding', 'outputPadding', 'count'),
  f('num_heads', 'numHeads', 'count'),
  f('num_kv_heads', 'numKVHeads', 'count'),
  f('head_dim', 'headDim', 'count'),
  f('query_dim', 'queryDim', 'count'),
  f('d_model', 'dModel', 'count'),
  f('seq_length', 'seqLength', 'count'),
  f('rope_freq_base', 'ropeFreqBase', 'number'),
  f('rope_scaling_type', 'ropeScaling', 'string'),
  f('rope_scaling_factor', 'ropeScalingFactor', 'number'),
  f('rope_low_freq_factor', 'ropeLowFreqFactor', 'number'),
  f('rope_high_freq_factor', 'ropeHighFreqFactor', 'number'),
  f('rope_original_max_position_embeddings', 'ropeOriginalMaxPositions', 'count'),
  f('vocab_size', 'vocabSize', 'count'),
  f('embedding_dim', 'embeddingDim', 'count'),
  f('num_clusters', 'numClusters', 'count'),
  f('kmeans_temperature', 'kmeansTemperature', 'number'),
  f('output_mode', 'outputMode', 'string'),
  f('softmax_type', 'softmaxType', 'nameOrIndex'),
  f('temperature', 'temperature', 'number'),
  f('softmax_rows', 'softmaxRows', 'count'),
  f('softmax_cols', 'softmaxCols', 'count'),
  f('entmax_alpha', 'entmaxAlpha', 'number'),
  f('gumbel_noise', 'gumbelNoise', 'bool'),
  f('combine_mode', 'combineMode', 'string'),
  f('use_tiling', 'useTiling', 'bool'),
  f('tile_size', 'tileSize', 'count'),
  f('mask', 'mask', 'boolArray'),
  f('hierarchy_levels', 'hierarchyLevels', 'countArray'),
  f('use_bias', 'useBias', 'bool'),
  f('epsilon', 'epsilon', 'number'),
  f('causal', 'causal', 'bool'),
];

/** Keys a layer entry may carry besides CONFIG_FIELDS. */
export const STRUCTURAL_KEYS: readonly string[] = [
  'z', 'y', 'x', 'l', 'type', 'activation', 'dtype',
  'weights', 'native', 'scale', 'zero_point',
  'parallel_branches', 'sequential_layers', 'filter_gate',
  'is_remote_link', 'target_z', 'target_y', 'target_x', 'target_l', 'is_disabled', 'tied_to',
  'meta_rules', 'meta_observed_layer',
];
