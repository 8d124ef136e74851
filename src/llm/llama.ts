import { FormatError } from '../core/errors.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { buildNetwork } from '../grid/spec.js';
import type { TensorSource } from '../io/safetensors.js';
import { ROPE_SCALING_TYPES, type RopeScaling } from '../layers/attention.js';
import type { Layer } from '../layers/layer.js';

/** The config.json fields a Llama-family decoder (LlamaForCausalLM, Qwen2ForCausalLM, SmolLM) is built from. */
export interface LlamaConfig {
  architecture: string;
  modelType: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKVHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** rope_type "linear" or "llama3" with its parameters; null for plain RoPE. */
  ropeScaling?: RopeScaling | null;
  tieWordEmbeddings: boolean;
  vocabSize: number;
  bosTokenId: number | null;
  /** eos_token_id as a list (config.json may give one id or several). */
  eosTokenIds: number[];
  maxPositionEmbeddings: number | null;
}

const SUPPORTED_ACTIVATIONS = new Set(['silu', 'swish']);

/** Reads and checks config.json; every problem is a FormatError naming the field. */
export function parseLlamaConfig(json: unknown, source = 'config.json'): LlamaConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new FormatError(source, 'expected a JSON object');
  const c = json as Record<string, unknown>;
  const fail = (field: string, expected: string): never => {
    throw new FormatError(source, `${field}: expected ${expected}, got ${JSON.stringify(c[field]) ?? 'nothing'}`);
  };
  const count = (field: string, fallback?: number): number => {
    const v = c[field] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) return fail(field, 'a positive integer');
    return v;
  };
  const positive = (v: unknown, field: string): number => {
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) return fail(field, 'a positive number');
    return v;
  };
  const optionalId = (field: string): number | null => {
    const v = c[field];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) return fail(field, 'a token id');
    return v;
  };
  const architectures = Array.isArray(c.architectures) ? c.architectures.filter((a): a is string => typeof a === 'string') : [];
  const architecture = architectures[0] ?? 'LlamaForCausalLM';
  const modelType = typeof c.model_type === 'string' ? c.model_type : 'llama';
  const act = c.hidden_act ?? 'silu';
  if (typeof act !== 'string' || !SUPPORTED_ACTIVATIONS.has(act)) fail('hidden_act', '"silu" (the SwiGLU gate)');

  const hiddenSize = count('hidden_size');
  const numHeads = count('num_attention_heads');
  const numKVHeads = count('num_key_value_heads', numHeads);
  if (numHeads % numKVHeads !== 0) fail('num_key_value_heads', `a divisor of num_attention_heads (${numHeads})`);
  const headDim = c.head_dim === undefined || c.head_dim === null ? hiddenSize / numHeads : count('head_dim');
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) fail('num_attention_heads', `a divisor of hidden_size giving an even head_dim (got ${headDim})`);

  // transformers 5 keeps RoPE settings in rope_parameters; older files have rope_theta and rope_scaling.
  const ropeField = c.rope_parameters !== undefined && c.rope_parameters !== null ? 'rope_parameters' : 'rope_scaling';
  const rope = c[ropeField];
  let ropeTheta = c.rope_theta;
  let ropeScaling: RopeScaling | null = null;
  if (rope !== undefined && rope !== null) {
    if (typeof rope !== 'object' || Array.isArray(rope)) fail(ropeField, 'an object');
    ropeScaling = parseRopeScaling(rope as Record<string, unknown>, ropeField, source);
    ropeTheta = (rope as Record<string, unknown>).rope_theta ?? ropeTheta;
  }
  const eps = c.rms_norm_eps ?? 1e-6;

  let eosTokenIds: number[] = [];
  const eos = c.eos_token_id;
  if (Array.isArray(eos)) {
    eosTokenIds = eos.map((v, i) => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : fail(`eos_token_id[${i}]`, 'a token id')));
  } else if (eos !== undefined && eos !== null) {
    eosTokenIds = [optionalId('eos_token_id')!];
  }
  const tie = c.tie_word_embeddings ?? true;
  if (typeof tie !== 'boolean') fail('tie_word_embeddings', 'true or false');
  const maxPos = c.max_position_embeddings;
  return {
    architecture,
    modelType,
    hiddenSize,
    intermediateSize: count('intermediate_size'),
    numLayers: count('num_hidden_layers'),
    numHeads,
    numKVHeads,
    headDim,
    rmsNormEps: positive(eps, 'rms_norm_eps'),
    ropeTheta: positive(ropeTheta ?? 10000, 'rope_theta'),
    ropeScaling,
    tieWordEmbeddings: tie as boolean,
    vocabSize: count('vocab_size'),
    bosTokenId: optionalId('bos_token_id'),
    eosTokenIds,
    maxPositionEmbeddings: typeof maxPos === 'number' && Number.isInteger(maxPos) && maxPos > 0 ? maxPos : null,
  };
}

const SUPPORTED_ROPE_TYPES = ['default', ...ROPE_SCALING_TYPES];

/** rope_parameters / rope_scaling: the type ("type" in older files) and, for linear and llama3, their numbers. */
function parseRopeScaling(r: Record<string, unknown>, field: string, source: string): RopeScaling | null {
  const typeKey = r.rope_type !== undefined ? 'rope_type' : 'type';
  const type = r[typeKey] ?? 'default';
  if (typeof type !== 'string' || !SUPPORTED_ROPE_TYPES.includes(type)) {
    throw new FormatError(
      source,
      `${field}.${typeKey}: expected ${SUPPORTED_ROPE_TYPES.map((t) => JSON.stringify(t)).join(', ')}, got ${JSON.stringify(type)} (other RoPE scalings are not supported)`,
    );
  }
  const partial = r.partial_rotary_factor;
  if (partial !== undefined && partial !== null && partial !== 1) {
    throw new FormatError(source, `${field}.partial_rotary_factor: expected 1 (RoPE on whole heads), got ${JSON.stringify(partial)}`);
  }
  if (type === 'default') return null;
  const positive = (key: string): number => {
    const v = r[key];
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) {
      throw new FormatError(source, `${field}.${key}: expected a positive number for rope_type "${type}", got ${JSON.stringify(v) ?? 'nothing'}`);
    }
    return v;
  };
  if (type === 'linear') return { type, factor: positive('factor') };
  const lowFreqFactor = positive('low_freq_factor');
  const highFreqFactor = positive('high_freq_factor');
  if (!(highFreqFactor > lowFreqFactor)) {
    throw new FormatError(source, `${field}.high_freq_factor: expected a number above low_freq_factor (${lowFreqFactor}), got ${highFreqFactor}`);
  }
  const originalMaxPositions = positive('original_max_position_embeddings');
  if (!Number.isInteger(originalMaxPositions)) {
    throw new FormatError(source, `${field}.original_max_position_embeddings: expected a positive integer, got ${originalMaxPositions}`);
  }
  return { type: 'llama3', factor: positive('factor'), lowFreqFactor, highFreqFactor, originalMaxPositions };
}

/** The attention layer's spec fields for a RoPE scaling. */
function ropeScalingFields(scaling: RopeScaling | null | undefined): Record<string, unknown> {
  if (!scaling) return {};
  if (scaling.type === 'linear') return { rope_scaling_type: 'linear', rope_scaling_factor: scaling.factor };
  return {
    rope_scaling_type: 'llama3',
    rope_scaling_factor: scaling.factor,
    rope_low_freq_factor: scaling.lowFreqFactor,
    rope_high_freq_factor: scaling.highFreqFactor,
    rope_original_max_position_embeddings: scaling.originalMaxPositions,
  };
}

/** Layers per decoder block cell: RMSNorm, attention, Residual, RMSNorm, SwiGLU, Residual. */
const BLOCK_LAYERS = 6;

/**
 * The grid for a config: cell x = 0 holds the Embedding, cells 1..L one decoder block each
 * (l = 0..5: RMSNorm → attention → Residual → RMSNorm → SwiGLU → Residual, each Residual's skip a
 * remote link to the block's input or the first residual), cell L + 1 the final RMSNorm and the LM
 * head (Dense without bias; with tie_word_embeddings `tied_to` the Embedding, so the two share one
 * parameter vector, in memory and in saved files). Weights are initialized randomly (seeded);
 * loadLlamaWeights fills them.
 */
export function llamaNetworkSpec(config: LlamaConfig): Record<string, unknown> {
  const { hiddenSize: d, numLayers: L } = config;
  const layers: Record<string, unknown>[] = [{ x: 0, l: 0, type: 'Embedding', vocab_size: config.vocabSize, embedding_dim: d }];
  const norm = (x: number, l: number) => ({ x, l, type: 'RMSNorm', input_height: d, epsilon: config.rmsNormEps });
  const link = (x: number, l: number) => ({ is_remote_link: true, target_z: 0, target_y: 0, target_x: x, target_l: l });
  for (let i = 0; i < L; i++) {
    const x = i + 1;
    layers.push(
      norm(x, 0),
      {
        x, l: 1, type: 'MultiHeadAttention', d_model: d, num_heads: config.numHeads, num_kv_heads: config.numKVHeads,
        head_dim: config.headDim, rope_freq_base: config.ropeTheta, ...ropeScalingFields(config.ropeScaling), causal: true,
      },
      { x, l: 2, type: 'Residual', ...link(i === 0 ? 0 : x - 1, i === 0 ? 0 : BLOCK_LAYERS - 1) },
      norm(x, 3),
      { x, l: 4, type: 'SwiGLU', input_height: d, output_height: config.intermediateSize, activation: 'Silu' },
      { x, l: 5, type: 'Residual', ...link(x, 2) },
    );
  }
  const tie = config.tieWordEmbeddings ? { tied_to: { z: 0, y: 0, x: 0, l: 0 } } : {};
  layers.push(norm(L + 1, 0), { x: L + 1, l: 1, type: 'Dense', input_height: d, output_height: config.vocabSize, ...tie });
  return { id: config.architecture, depth: 1, rows: 1, cols: L + 2, layers_per_cell: BLOCK_LAYERS, layers };
}

/** The grid's layers by role. */
export interface LlamaLayers {
  embedding: Layer;
  blocks: { inputNorm: Layer; attention: Layer; postNorm: Layer; mlp: Layer }[];
  finalNorm: Layer;
  lmHead: Layer;
}

export function llamaLayers(net: VolumetricNetwork, config: LlamaConfig): LlamaLayers {
  const at = (x: number, l: number): Layer => {
    const layer = net.getLayer(0, 0, x, l);
    if (!layer) throw new FormatError(net.id, `no layer at (0,0,${x},${l}) where the Llama layout has one`);
    return layer;
  };
  const L = config.numLayers;
  return {
    embedding: at(0, 0),
    blocks: Array.from({ length: L }, (_, i) => ({ inputNorm: at(i + 1, 0), attention: at(i + 1, 1), postNorm: at(i + 1, 3), mlp: at(i + 1, 4) })),
    finalNorm: at(L + 1, 0),
    lmHead: at(L + 1, 1),
  };
}

/** Builds the grid for `config` and loads the Hugging Face tensors of `source` into it. */
export function buildLlama(config: LlamaConfig, source: TensorSource): VolumetricNetwork {
  // loadLlamaWeights writes every parameter (absent biases as zeros): no random initialization first.
  const net = buildNetwork(llamaNetworkSpec(config), { initialize: false });
  loadLlamaWeights(net, config, source);
  return net;
}

/**
 * Copies HF tensors into the layers' parameter vectors. Layouts match without transposes: nn.Linear
 * weights are [out, in] like Dense/attention/SwiGLU rows; q_proj rows are head-major with each
 * head's RoPE pairs (i, i + head_dim/2), HF's rotate-half convention, which attention.ts uses.
 * With tied embeddings the LM head shares the Embedding's WeightStore (no copy), as the spec's tie says.
 */
export function loadLlamaWeights(net: VolumetricNetwork, config: LlamaConfig, source: TensorSource): void {
  const prefix = source.has('model.embed_tokens.weight') ? 'model.' : '';
  const { hiddenSize: d, headDim: hd, intermediateSize: inter, vocabSize: vocab } = config;
  const q = config.numHeads * hd;
  const kv = config.numKVHeads * hd;
  const read = (name: string, shape: readonly number[], into: Float32Array, at: number): void => {
    if (!source.has(name)) throw new FormatError(source.source, `missing tensor ${name} (expected shape [${shape.join(', ')}])`);
    const info = source.info(name);
    if (info.shape.length !== shape.length || info.shape.some((v, i) => v !== shape[i])) {
      throw new FormatError(source.source, `tensor ${name} has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}] from config.json`);
    }
    into.set(source.float32(name), at);
  };
  const optional = (name: string, shape: readonly number[], into: Float32Array, at: number): void => {
    if (source.has(name)) read(name, shape, into, at);
    else into.fill(0, at, at + shape.reduce((a, b) => a * b, 1));
  };
  const layers = llamaLayers(net, config);
  const master = (layer: Layer): Float32Array => layer.weights!.master;

  read(`${prefix}embed_tokens.weight`, [vocab, d], master(layers.embedding), 0);
  layers.blocks.forEach((b, i) => {
    const p = `${prefix}layers.${i}.`;
    read(`${p}input_layernorm.weight`, [d], master(b.inputNorm), 0);
    read(`${p}post_attention_layernorm.weight`, [d], master(b.postNorm), 0);
    // Attention: Wq [q×d], Wk [kv×d], Wv [kv×d], Wo [d×q], bq, bk, bv, bo.
    const a = master(b.attention);
    const wk = q * d;
    const wv = wk + kv * d;
    const wo = wv + kv * d;
    const bq = wo + d * q;
    read(`${p}self_attn.q_proj.weight`, [q, d], a, 0);
    read(`${p}self_attn.k_proj.weight`, [kv, d], a, wk);
    read(`${p}self_attn.v_proj.weight`, [kv, d], a, wv);
    read(`${p}self_attn.o_proj.weight`, [d, q], a, wo);
    optional(`${p}self_attn.q_proj.bias`, [q], a, bq);
    optional(`${p}self_attn.k_proj.bias`, [kv], a, bq + q);
    optional(`${p}self_attn.v_proj.bias`, [kv], a, bq + q + kv);
    optional(`${p}self_attn.o_proj.bias`, [d], a, bq + q + 2 * kv);
    // SwiGLU: W_gate [inter×d], W_up [inter×d], W_down [d×inter], b_gate, b_up, b_down.
    const m = master(b.mlp);
    const n = inter * d;
    read(`${p}mlp.gate_proj.weight`, [inter, d], m, 0);
    read(`${p}mlp.up_proj.weight`, [inter, d], m, n);
    read(`${p}mlp.down_proj.weight`, [d, inter], m, 2 * n);
    optional(`${p}mlp.gate_proj.bias`, [inter], m, 3 * n);
    optional(`${p}mlp.up_proj.bias`, [inter], m, 3 * n + inter);
    optional(`${p}mlp.down_proj.bias`, [d], m, 3 * n + 2 * inter);
  });
  read(`${prefix}norm.weight`, [d], master(layers.finalNorm), 0);
  if (config.tieWordEmbeddings) {
    layers.lmHead.weights = layers.embedding.weights;
  } else {
    if (!source.has('lm_head.weight')) {
      throw new FormatError(source.source, `missing tensor lm_head.weight (expected shape [${vocab}, ${d}]; config.json says tie_word_embeddings is false)`);
    }
    read('lm_head.weight', [vocab, d], master(layers.lmHead), 0);
  }
  for (const layer of net.allLayers()) layer.weights?.markMasterChanged();
}
