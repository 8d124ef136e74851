// Importing a layer module registers its kind; this file lists every layer family.
export { denseKind } from './dense.js';
export { residualKind } from './residual.js';
export { rmsNormKind, layerNormKind } from './norm.js';
export { embeddingKind } from './embedding.js';
export { kmeansKind } from './kmeans.js';
export { rnnKind, lstmKind } from './recurrent.js';
export { swigluKind } from './swiglu.js';
export { cnn1Kind, cnn2Kind, cnn3Kind } from './conv.js';
export { convTransposed1DKind, convTransposed2DKind, convTransposed3DKind } from './convTransposed.js';
export { softmaxKind, SOFTMAX_TYPES, type SoftmaxType } from './softmax.js';
export { attentionKind, createKVCache, attentionForwardCached, DEFAULT_ROPE_FREQ_BASE, type KVCache } from './attention.js';
export { sequentialKind, parallelKind, COMBINE_MODES, type CombineMode } from './containers.js';
export * from './activations.js';
export * from './layer.js';
export { findLayerKind, layerKindNames, registerLayerKind } from './registry.js';
